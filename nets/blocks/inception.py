"""(placeholder: filled in by the family that needs these blocks)"""

__all__: list[str] = []

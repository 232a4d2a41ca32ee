"""(placeholder: the family is being written)"""

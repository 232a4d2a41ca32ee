"""The old name of ``weights.torchvision_resnet`` and ``weights.torchvision_vgg_alexnet``
(this module held just those three families); kept so that imports of it keep working."""

from .torchvision_resnet import RESNET_RULES, convert_resnet, stage_block  # noqa: F401
from .torchvision_vgg_alexnet import (  # noqa: F401
    ALEXNET_TABLE,
    VGG_CLASSIFIER,
    convert_alexnet,
    convert_vgg,
    vgg_table,
)

"""The families, one file each: a table of variants and one builder, in the stem / stages /
head anatomy of ``nets.base``. Importing this package registers every model."""

from . import (  # noqa: F401
    alexnet,
    densenet,
    efficientnet,
    efficientnet_lite,
    googlenet,
    inception_resnet_v2,
    inception_v3,
    inception_v4,
    lenet,
    mobilenet_v1,
    mobilenet_v2,
    mobilenet_v3,
    nasnet,
    resnet,
    resnet_v2,
    seresnet,
    unet,
    vgg,
    xception,
)

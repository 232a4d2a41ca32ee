"""Classic ImageNet CNNs written by hand, block by block.

>>> import nets
>>> model = nets.create_model("resnet50", weights="imagenet")
"""

from weights.errors import (
    CheckpointFormatError,
    CorruptCheckpointError,
    DownloadError,
    IncompatibleCheckpointError,
    UnknownTagError,
    WeightsError,
)

from . import (
    alexnet,  # noqa: F401
    efficientnet_lite,  # noqa: F401
    lenet,  # noqa: F401
    resnet,  # noqa: F401  (registers the family)
    vgg,  # noqa: F401
)
from .base import ClassifierHead, FeatureInfo, MLPHead, Network
from .blocks import (
    BasicBlock,
    Bottleneck,
    Conv2dSame,
    ConvNormAct,
    DepthwiseSeparable,
    InvertedResidual,
)
from .errors import ImageError, InputSizeError, NetsError, UnknownModelError
from .factory import create_model, load_pretrained
from .features import FeatureExtractor, feature_extractor
from .registry import ModelSpec, get_spec, list_models, register_model

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "CheckpointFormatError",
    "ClassifierHead",
    "Conv2dSame",
    "ConvNormAct",
    "CorruptCheckpointError",
    "DepthwiseSeparable",
    "DownloadError",
    "FeatureExtractor",
    "FeatureInfo",
    "ImageError",
    "IncompatibleCheckpointError",
    "InputSizeError",
    "InvertedResidual",
    "MLPHead",
    "ModelSpec",
    "NetsError",
    "Network",
    "UnknownModelError",
    "UnknownTagError",
    "WeightsError",
    "create_model",
    "feature_extractor",
    "get_spec",
    "list_models",
    "load_pretrained",
    "register_model",
]

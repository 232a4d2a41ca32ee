"""Classic ImageNet CNNs written by hand, block by block.

>>> import nets
>>> model = nets.create_model("resnet50", weights="imagenet")
"""

__version__ = "0.1.0"  # the package's version (pyproject.toml reads it from here)

from weights.errors import (
    CheckpointFormatError,
    CorruptCheckpointError,
    DownloadError,
    IncompatibleCheckpointError,
    UnknownTagError,
    WeightsError,
)

# Importing the families registers their models.
from . import models, visualize  # noqa: F401
from .base import AuxOutputs, ClassifierHead, FeatureInfo, FeatureInfoList, MLPHead, Network
from .blocks import *  # noqa: F403
from .blocks import __all__ as _blocks
from .cost import count_macs
from .errors import (
    ImageError,
    InputSizeError,
    NetsError,
    UnknownModelError,
    UnknownOptionError,
)
from .factory import create_model, load_pretrained
from .features import FeatureExtractor, feature_extractor
from .inference import optimize_for_inference
from .precision import half_precision_headroom
from .pretrained import PretrainedCfg
from .registry import (
    ModelSpec,
    get_spec,
    list_models,
    register_derived,
    register_model,
    register_variants,
)
from .visualize import VisualizeError

__all__ = [
    *_blocks,
    "AuxOutputs",
    "CheckpointFormatError",
    "ClassifierHead",
    "CorruptCheckpointError",
    "DownloadError",
    "FeatureExtractor",
    "FeatureInfo",
    "FeatureInfoList",
    "ImageError",
    "IncompatibleCheckpointError",
    "InputSizeError",
    "MLPHead",
    "ModelSpec",
    "NetsError",
    "PretrainedCfg",
    "Network",
    "UnknownModelError",
    "UnknownOptionError",
    "UnknownTagError",
    "VisualizeError",
    "WeightsError",
    "count_macs",
    "create_model",
    "feature_extractor",
    "get_spec",
    "half_precision_headroom",
    "list_models",
    "load_pretrained",
    "optimize_for_inference",
    "register_derived",
    "register_model",
    "register_variants",
    "visualize",
]

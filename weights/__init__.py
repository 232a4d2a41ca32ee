"""Foreign checkpoint formats -> our state dicts; the weights store and registry.

This package knows file formats and key names, never a module class: ``nets`` asks it
for a state dict in our names and loads it.
"""

from .errors import (
    CheckpointFormatError,
    ChecksumError,
    CorruptCheckpointError,
    DownloadError,
    DtypeError,
    IncompatibleCheckpointError,
    TrainingCheckpointError,
    UnknownTagError,
    UnsafeCheckpointError,
    WeightsError,
)
from .imagenet import categories, decode_predictions
from .io import (
    check_dtypes,
    dtype_counts,
    load_pickle,
    read_checkpoint,
    save_safetensors,
    sha256_of,
    sniff_format,
)
from .loading import LoadedWeights, adapt_input_conv, check_state_dict, resolve
from .preprocess import channel_stats, transforms
from .registry import Preprocessing, WeightTag, default_tag, get_tag, list_tags, tags_for
from .store import cache_dir

__all__ = [
    "CheckpointFormatError",
    "ChecksumError",
    "CorruptCheckpointError",
    "DownloadError",
    "DtypeError",
    "IncompatibleCheckpointError",
    "LoadedWeights",
    "Preprocessing",
    "TrainingCheckpointError",
    "UnknownTagError",
    "UnsafeCheckpointError",
    "WeightTag",
    "WeightsError",
    "adapt_input_conv",
    "cache_dir",
    "categories",
    "check_dtypes",
    "check_state_dict",
    "channel_stats",
    "decode_predictions",
    "default_tag",
    "dtype_counts",
    "get_tag",
    "list_tags",
    "load_pickle",
    "read_checkpoint",
    "resolve",
    "save_safetensors",
    "sha256_of",
    "sniff_format",
    "tags_for",
    "transforms",
]

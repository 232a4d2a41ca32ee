"""keras.applications' InceptionV3."""

from __future__ import annotations

from .reader import Move
from .record import KerasModel, Signature, standard_files

# Inception v3: Keras names its convs and BatchNorms by creation order only (see
# reader.creation_order), which is the order of our modules:
INCEPTION_V3_BRANCHES = {
    "A": ("branch1x1", "branch5x5_1", "branch5x5_2", "branch3x3dbl_1", "branch3x3dbl_2",
          "branch3x3dbl_3", "branch_pool"),
    "B": ("branch3x3", "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"),
    "C": ("branch1x1", "branch7x7_1", "branch7x7_2", "branch7x7_3", "branch7x7dbl_1",
          "branch7x7dbl_2", "branch7x7dbl_3", "branch7x7dbl_4", "branch7x7dbl_5", "branch_pool"),
    "D": ("branch3x3_1", "branch3x3_2", "branch7x7x3_1", "branch7x7x3_2", "branch7x7x3_3",
          "branch7x7x3_4"),
    "E": ("branch1x1", "branch3x3_1", "branch3x3_2a", "branch3x3_2b", "branch3x3dbl_1",
          "branch3x3dbl_2", "branch3x3dbl_3a", "branch3x3dbl_3b", "branch_pool"),
}  # fmt: skip
INCEPTION_V3_MODULES = (  # (our module, block type), mixed0 .. mixed10 in Keras
    ("stages.0.mixed5b", "A"), ("stages.0.mixed5c", "A"), ("stages.0.mixed5d", "A"),
    ("stages.1.mixed6a", "B"), ("stages.1.mixed6b", "C"), ("stages.1.mixed6c", "C"),
    ("stages.1.mixed6d", "C"), ("stages.1.mixed6e", "C"),
    ("stages.2.mixed7a", "D"), ("stages.2.mixed7b", "E"), ("stages.2.mixed7c", "E"),
)  # fmt: skip


def inception_v3_order() -> list[str]:
    """Our ConvNormAct prefixes in Keras' creation order (94)."""
    out = [f"stem.{n}" for n in ("conv1a", "conv2a", "conv2b", "conv3b", "conv4a")]
    for module, kind in INCEPTION_V3_MODULES:
        out += [f"{module}.{b}" for b in INCEPTION_V3_BRANCHES[kind]]
    return out


MODELS: dict[str, KerasModel] = {
    m.keras_name: m
    for m in (
        KerasModel(
            keras_name="InceptionV3",
            arch="keras_inception_v3",
            mode="tf",
            input_size=299,
            # No layer has a name of its own but the classifier: 94 unnamed conv/BN pairs.
            signature=Signature(unnamed={"conv2d": 94, "batch_normalization": 94}),
            moves=(Move("predictions", "head.fc", "dense"),),
            unnamed=tuple(inception_v3_order()),  # BatchNorms without gamma: scale=False
            weights_dir="inception_v3/",
            **standard_files("inception_v3"),
            md5=("9a0d58056eeedaa3f26cb7ebd46da564", "bcbd6486424b2319ff4ef7d526e38f63"),
            top1=77.9,
            top5=93.7,
            params=(23_817_352, 21_768_352),
        ),
    )
}

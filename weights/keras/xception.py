"""keras.applications' Xception."""

from __future__ import annotations

from .reader import Move, conv_bn
from .record import KerasModel, Signature, standard_files

# Xception: Keras blocks 2 .. 13 are our XceptionBlocks (nets.models.xception.BLOCKS) in their
# stages; the four strided blocks' 1x1 shortcut convs and their BatchNorms have no names of
# their own (``conv2d``, ``batch_normalization``, in creation order, as in Inception v3), one
# per strided block, in block order.
XCEPTION_BLOCKS = (
    "stages.0.0", "stages.1.0", *(f"stages.2.{j}" for j in range(9)), "stages.3.0",
)  # fmt: skip
XCEPTION_SKIPS = ("stages.0.0", "stages.1.0", "stages.2.0", "stages.3.0")


def xception_moves() -> tuple[Move, ...]:
    moves = [
        *conv_bn("block1_conv1", "block1_conv1_bn", "stem.conv1"),
        *conv_bn("block1_conv2", "block1_conv2_bn", "stem.conv2"),
    ]
    for k, ours in enumerate(XCEPTION_BLOCKS, start=2):
        reps = 3 if 5 <= k <= 12 else 2  # the middle flow's blocks have three
        for j in range(reps):
            keras = f"block{k}_sepconv{j + 1}"
            moves += conv_bn(keras, f"{keras}_bn", f"{ours}.convs.{j}", "separable")
    for j in (1, 2):
        keras = f"block14_sepconv{j}"
        moves += conv_bn(keras, f"{keras}_bn", f"stages.3.conv{j + 2}", "separable")
    return (*moves, Move("predictions", "head.fc", "dense"))


MODELS: dict[str, KerasModel] = {
    m.keras_name: m
    for m in (
        KerasModel(
            keras_name="Xception",
            arch="keras_xception",
            mode="tf",
            input_size=299,
            signature=Signature(layers=("block1_conv1", "block14_sepconv2")),
            moves=xception_moves(),
            unnamed=tuple(f"{ours}.skip" for ours in XCEPTION_SKIPS),
            weights_dir="xception/",
            **standard_files("xception"),
            md5=("0a58e3b7378bc2990ea3b43d5981f1f6", "b0042744bf5b25fce3cb969f33bebb97"),
            top1=79.0,
            top5=94.5,
            params=(22_855_952, 20_806_952),
        ),
    )
}

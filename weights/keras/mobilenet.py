"""keras.applications' MobileNet (v1) and MobileNetV2 at alpha 1.0."""

from __future__ import annotations

from collections.abc import Sequence

from .reader import Move, conv_bn
from .record import KerasModel, Signature, by_resolution
from .tensors import conv_as_dense

# MobileNet v1's depthwise strides, conv_dw_1 .. conv_dw_13, and MobileNetV2's block strides,
# expanded_conv then block_1 .. block_16. Only for a conversion without a model to load into:
# the loading path hands over the model's keys, and our grouping is read from those
# (``KerasModel.moves_for_blocks``).
MOBILENET_STRIDES = (1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1)
MOBILENET_V2_STRIDES = (1, 2, 1, 2, 1, 1, 2, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1)


def mobilenet_moves(blocks: Sequence[str]) -> tuple[Move, ...]:
    """``blocks``: our prefixes of conv_dw_1 .. conv_dw_13 (with their conv_pw), in order."""
    moves = [*conv_bn("conv1", "conv1_bn", "stem")]
    for i, ours in enumerate(blocks, start=1):
        moves += conv_bn(f"conv_dw_{i}", f"conv_dw_{i}_bn", f"{ours}.depthwise", "depthwise")
        moves += conv_bn(f"conv_pw_{i}", f"conv_pw_{i}_bn", f"{ours}.pointwise")
    return (*moves, Move("conv_preds", "head.fc", "dense", conv_as_dense))


def mobilenet_v2_moves(blocks: Sequence[str]) -> tuple[Move, ...]:
    """``blocks``: our prefixes of expanded_conv, block_1 .. block_16, in order; Conv_1, the
    final 1x1 conv, ends the last one's stage."""
    moves = [*conv_bn("Conv1", "bn_Conv1", "stem")]
    for i, ours in enumerate(blocks):
        keras = "expanded_conv" if i == 0 else f"block_{i}"
        moves += conv_bn(f"{keras}_expand", f"{keras}_expand_BN", f"{ours}.expand")
        moves += conv_bn(
            f"{keras}_depthwise", f"{keras}_depthwise_BN", f"{ours}.depthwise", "depthwise"
        )
        moves += conv_bn(f"{keras}_project", f"{keras}_project_BN", f"{ours}.project")
    last_stage = blocks[-1].rpartition(".")[0]
    moves += conv_bn("Conv_1", "Conv_1_bn", f"{last_stage}.conv_head")
    return (*moves, Move("predictions", "head.fc", "dense"))


MODELS: dict[str, KerasModel] = {
    m.keras_name: m
    for m in (
        KerasModel(
            keras_name="MobileNet",
            arch="keras_mobilenet",
            mode="tf",
            input_size=224,
            # alpha = 1.0: the stem has 32 filters.
            signature=Signature(layers=("conv_dw_13", "conv_pw_13"), widths={"conv1/kernel": 32}),
            moves=mobilenet_moves(by_resolution(MOBILENET_STRIDES)),
            moves_for_blocks=mobilenet_moves,
            weights_dir="mobilenet/",
            file="mobilenet_1_0_224_tf.h5",
            notop_file="mobilenet_1_0_224_tf_no_top.h5",
            md5=("", ""),  # keras.applications gives no file_hash for MobileNet
            top1=70.4,
            top5=89.5,
            params=(4_231_976, 3_206_976),
        ),
        KerasModel(
            keras_name="MobileNetV2",
            arch="keras_mobilenet_v2",
            mode="tf",
            input_size=224,
            # alpha = 1.0: the last conv has 1280 filters.
            signature=Signature(
                layers=("block_16_project", "Conv1"), widths={"Conv_1/kernel": 1280}
            ),
            moves=mobilenet_v2_moves(by_resolution(MOBILENET_V2_STRIDES)),
            moves_for_blocks=mobilenet_v2_moves,
            weights_dir="mobilenet_v2/",
            file="mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5",
            notop_file="mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
            md5=("", ""),  # none given either
            top1=71.3,
            top5=90.1,
            params=(3_504_872, 2_223_872),
        ),
    )
}

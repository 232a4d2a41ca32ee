"""keras.applications' EfficientNetB0 .. B7."""

from __future__ import annotations

import math

from .reader import Move, conv_bn
from .record import KerasModel, Signature, by_resolution

MODELS: dict[str, KerasModel] = {}

# keras.applications' EfficientNet (keras/src/applications/efficientnet.py) names its blocks
# by group and repeat: "block<g><letter>_" for group g = 1 .. 7 and repeat a, b, c ... Inside a
# block: expand_conv/expand_bn (absent in group 1, expand ratio 1), dwconv/bn, se_reduce and
# se_expand (1x1 convs with a bias), project_conv/project_bn. Around them: stem_conv/stem_bn,
# top_conv/top_bn (our last stage's conv_head) and the Dense "predictions". The model's
# preprocessing layer "normalization" (mean, variance, count) has no module of ours: its
# constants are the file's preprocessing (weights.keras.conversion), not weights.
EFFICIENTNET_REPEATS = (1, 2, 2, 3, 3, 4, 1)  # Keras' DEFAULT_BLOCKS_ARGS, B0
EFFICIENTNET_STRIDES = (1, 2, 2, 2, 1, 2, 1)
# Keras' Normalization layer: its weights are preprocessing (mean, variance) and a count.
NORMALIZATION = "normalization"


def efficientnet_repeats(depth_mult: float) -> tuple[int, ...]:
    """Each group's blocks at a depth coefficient: Keras' round_repeats, ceil(d * repeats)."""
    return tuple(int(math.ceil(depth_mult * r)) for r in EFFICIENTNET_REPEATS)


def efficientnet_blocks(depth_mult: float) -> list[tuple[str, str, int]]:
    """(Keras prefix, our block, group) of every block in order. Our stages group blocks by
    resolution (nets.blocks.mbconv: a new stage at each stride-2 group), so Keras' flat
    block list runs through them with by_resolution."""
    keras, strides, groups = [], [], []
    for g, (n, stride) in enumerate(
        zip(efficientnet_repeats(depth_mult), EFFICIENTNET_STRIDES, strict=True)
    ):
        for j in range(n):
            keras.append(f"block{g + 1}{chr(ord('a') + j)}_")
            strides.append(stride if j == 0 else 1)
            groups.append(g)
    return list(zip(keras, by_resolution(tuple(strides)), groups, strict=True))


def efficientnet_moves(depth_mult: float) -> tuple[Move, ...]:
    blocks = efficientnet_blocks(depth_mult)
    moves = [*conv_bn("stem_conv", "stem_bn", "stem")]
    for k, ours, group in blocks:
        # Group 1 (expand ratio 1) is our DepthwiseSeparable: no expand, "pointwise" projects.
        if group:
            moves += conv_bn(f"{k}expand_conv", f"{k}expand_bn", f"{ours}.expand")
        moves += conv_bn(f"{k}dwconv", f"{k}bn", f"{ours}.depthwise", "depthwise")
        moves += [
            Move(f"{k}se_reduce", f"{ours}.attn.reduce"),
            Move(f"{k}se_expand", f"{ours}.attn.expand"),
        ]
        project = "project" if group else "pointwise"
        moves += conv_bn(f"{k}project_conv", f"{k}project_bn", f"{ours}.{project}")
    last_stage = blocks[-1][1].rpartition(".")[0]
    moves += conv_bn("top_conv", "top_bn", f"{last_stage}.conv_head")
    return (*moves, Move("predictions", "head.fc", "dense"))


def efficientnet_signature(depth_mult: float, top_chs: int) -> Signature:
    """Each group's exact length (its last block present, the next letter absent) and the
    top conv's width: B1 and B2 have the same lengths, B0 and B1 the same width."""
    repeats = efficientnet_repeats(depth_mult)
    last = tuple(f"block{g + 1}{chr(ord('a') + n - 1)}_dwconv" for g, n in enumerate(repeats))
    after = tuple(f"block{g + 1}{chr(ord('a') + n)}_dwconv" for g, n in enumerate(repeats))
    return Signature(
        layers=("stem_conv", "top_conv", *last),
        absent=after,
        widths={"top_conv/kernel": top_chs},
    )


def _efficientnet(b: int, depth_mult: float, input_size: int, top_chs: int, **figures):
    return KerasModel(
        keras_name=f"EfficientNetB{b}",
        arch=f"keras_efficientnet_b{b}",
        mode="efficientnet",
        input_size=input_size,
        signature=efficientnet_signature(depth_mult, top_chs),
        moves=efficientnet_moves(depth_mult),
        normalization=NORMALIZATION,
        base_url="https://storage.googleapis.com/keras-applications/",  # its BASE_WEIGHTS_PATH
        weights_dir="",
        file=f"efficientnetb{b}.h5",
        notop_file=f"efficientnetb{b}_notop.h5",
        **figures,
    )


# Figures: file_hash (MD5) from keras/src/applications/efficientnet.py's WEIGHTS_HASHES (with
# the top, without it); top-1/top-5 from keras.io/api/applications' table; the counts are
# Keras' trainable parameters (keras.applications.EfficientNetB<n>(weights=None), Keras
# 3.15; tests/weights/test_keras_efficientnet.py). Depth coefficient, resolution and the top conv's
# width, round_filters(1280) at the width coefficient (1.0, 1.0, 1.1, 1.2, 1.4, 1.6, 1.8, 2.0):
MODELS.update(
    {
        m.keras_name: m
        for m in (
            _efficientnet(
                0,
                1.0,
                224,
                1280,
                md5=("902e53a9f72be733fc0bcb005b3ebbac", "50bc09e76180e00e4465e1a485ddc09d"),
                top1=77.1,
                top5=93.3,
                params=(5_288_548, 4_007_548),
            ),
            _efficientnet(
                1,
                1.1,
                240,
                1280,
                md5=("1d254153d4ab51201f1646940f018540", "74c4e6b3e1f6a1eea24c589628592432"),
                top1=79.1,
                top5=94.4,
                params=(7_794_184, 6_513_184),
            ),
            _efficientnet(
                2,
                1.2,
                260,
                1408,
                md5=("b15cce36ff4dcbd00b6dd88e7857a6ad", "111f8e2ac8aa800a7a99e3239f7bfb39"),
                top1=80.1,
                top5=94.9,
                params=(9_109_994, 7_700_994),
            ),
            _efficientnet(
                3,
                1.4,
                300,
                1536,
                md5=("ffd1fdc53d0ce67064dc6a9c7960ede0", "af6d107764bb5b1abb91932881670226"),
                top1=81.6,
                top5=95.7,
                params=(12_233_232, 10_696_232),
            ),
            _efficientnet(
                4,
                1.8,
                380,
                1792,
                md5=("18c95ad55216b8f92d7e70b3a046e2fc", "ebc24e6d6c33eaebbd558eafbeedf1ba"),
                top1=82.9,
                top5=96.4,
                params=(19_341_616, 17_548_616),
            ),
            _efficientnet(
                5,
                2.2,
                456,
                2048,
                md5=("ace28f2a6363774853a83a0b21b9421a", "38879255a25d3c92d5e44e04ae6cec6f"),
                top1=83.6,
                top5=96.7,
                params=(30_389_784, 28_340_784),
            ),
            _efficientnet(
                6,
                2.6,
                528,
                2304,
                md5=("165f6e37dce68623721b423839de8be5", "9ecce42647a20130c1f39a5d4cb75743"),
                top1=84.0,
                top5=96.8,
                params=(43_040_704, 40_735_704),
            ),
            _efficientnet(
                7,
                3.1,
                600,
                2560,
                md5=("8c03f828fec3ef71311cd463b6759d99", "cbcfe4450ddf6f3ad90b1b398090fe4a"),
                top1=84.3,
                top5=97.0,
                params=(66_347_960, 63_786_960),
            ),
        )
    }
)

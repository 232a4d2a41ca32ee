"""keras.applications' NASNetMobile and NASNetLarge (NASNet-A)."""

from __future__ import annotations

from .reader import Move, conv_bn
from .record import KerasModel, Signature

MODELS: dict[str, KerasModel] = {}

# keras.applications' NASNet names its layers by cell: the stem cells "stem_1", "stem_2", the
# normal cells "0" .. "N-1", N+1 .. 2N, 2N+1 .. 3N and the reduction cells "reduce_N",
# "reduce_2N" (nets.models.nasnet: stages.0.0; stages.1.0 then stages.1.1 ..; stages.2.0 ..;
# stages.3.0 ..). Inside a cell: ``{normal,reduction}_conv_1_<id>``/``_bn_1_<id>`` (our
# conv1x1); the "adjust" of prev: ``adjust_conv_1_<id>``, ``adjust_conv_2_<id>``,
# ``adjust_bn_<id>`` (a factorized reduction) or ``adjust_conv_projection_<id>``,
# ``adjust_bn_<id>`` (a 1x1 projection); each separable branch two SeparableConv2D and BN
# layers, ``separable_conv_{1,2}_<cell>_<branch>_<id>`` and ``separable_conv_{1,2}_bn_...``.
NASNET_NORMAL_BRANCHES = ("left1", "right1", "left2", "right2", "left5")
# Keras names the reduction cell's fifth separable branch "left4" (as its fourth block's pool);
# ours is left5.
NASNET_REDUCTION_BRANCHES = {
    "left1": "left1", "right1": "right1", "right2": "right2", "right3": "right3", "left4": "left5"
}  # fmt: skip


def _nasnet_cell(kind: str, cell_id: str, ours: str, adjust: str | None) -> list[Move]:
    """One Keras cell (kind "normal" or "reduction") onto our cell ``ours``."""
    moves = [*conv_bn(f"{kind}_conv_1_{cell_id}", f"{kind}_bn_1_{cell_id}", f"{ours}.conv1x1")]
    if adjust == "reduce":  # prev is twice as large: the factorized reduction
        moves += [
            Move(f"adjust_conv_1_{cell_id}", f"{ours}.adjust.conv1"),
            Move(f"adjust_conv_2_{cell_id}", f"{ours}.adjust.conv2"),
            Move(f"adjust_bn_{cell_id}", f"{ours}.adjust.bn", "bn"),
        ]
    elif adjust == "project":
        moves += conv_bn(
            f"adjust_conv_projection_{cell_id}", f"adjust_bn_{cell_id}", f"{ours}.adjust"
        )
    branches = (
        {b: b for b in NASNET_NORMAL_BRANCHES} if kind == "normal" else NASNET_REDUCTION_BRANCHES
    )
    for keras_branch, our_branch in branches.items():
        name = f"{kind}_{keras_branch}_{cell_id}"
        for j in (1, 2):
            moves += conv_bn(
                f"separable_conv_{j}_{name}",
                f"separable_conv_{j}_bn_{name}",
                f"{ours}.{our_branch}.{j - 1}",
                "separable",
            )
    return moves


def nasnet_moves(num_blocks: int) -> tuple[Move, ...]:
    """Keras' NASNet with ``num_blocks`` normal cells per group. Which adjust each cell has
    follows from the wiring (the same in Mobile and Large): the second stem cell and the first
    normal cell of each group read a prev twice their size (a factorized reduction), every
    other cell but the first a prev of another width (a projection)."""
    n = num_blocks
    moves = [*conv_bn("stem_conv1", "stem_bn1", "stem")]
    moves += _nasnet_cell("reduction", "stem_1", "stages.0.0", None)
    moves += _nasnet_cell("reduction", "stem_2", "stages.1.0", "reduce")
    for group in range(3):
        if group:
            moves += _nasnet_cell(
                "reduction", f"reduce_{group * n}", f"stages.{group + 1}.0", "project"
            )
        for i in range(n):
            cell_id = str(group * n + (1 if group else 0) + i)  # 0 .. N-1, N+1 .. 2N, ...
            adjust = "reduce" if i == 0 else "project"
            moves += _nasnet_cell("normal", cell_id, f"stages.{group + 1}.{i + 1}", adjust)
    return (*moves, Move("predictions", "head.fc", "dense"))


def _nasnet(keras_name: str, arch: str, num_blocks: int, **figures) -> KerasModel:
    size = "mobile" if num_blocks == 4 else "large"
    return KerasModel(
        keras_name=keras_name,
        arch=arch,
        mode="tf",
        input_size=224 if num_blocks == 4 else 331,
        # The last reduction cell is "reduce_8" (Mobile, N = 4) or "reduce_12" (Large, N = 6).
        signature=Signature(layers=("stem_conv1", f"reduction_conv_1_reduce_{2 * num_blocks}")),
        moves=nasnet_moves(num_blocks),
        weights_dir="nasnet/",
        file=f"NASNet-{size}.h5",
        notop_file=f"NASNet-{size}-no-top.h5",
        **figures,
    )


# Figures: file_hash (MD5) from keras/src/applications/nasnet.py (Keras 3.x); top-1/top-5
# from keras.io/api/applications' table (74.4/91.9 and 82.5/96.0); the counts are Keras'
# trainable parameters (its totals add BatchNorm's moving statistics: 5,326,716 and
# 88,949,818), with the top and without it (the 1056/4032 x 1000 classifier and its bias).
MODELS.update(
    {
        m.keras_name: m
        for m in (
            _nasnet(
                "NASNetMobile",
                "keras_nasnet_mobile",
                4,
                md5=("020fb642bf7360b370c678b08e0adf61", "1ed92395b5b598bdda52abe5c0dbfd63"),
                top1=74.4,
                top5=91.9,
                params=(5_289_978, 5_289_978 - 1_057_000),
            ),
            _nasnet(
                "NASNetLarge",
                "keras_nasnet_large",
                6,
                md5=("11577c9a518f0070763c2b964a382f17", "d81d89dc07e6e56530c4e77faddd61b5"),
                top1=82.5,
                top5=96.0,
                params=(88_753_150, 88_753_150 - 4_033_000),
            ),
        )
    }
)

"""timm's ``nasnetalarge`` checkpoint (NASNet-A Large, Cadene's port of the TF-slim weights)
-> ours (``nets.models.nasnet``).

timm names the network flat: ``conv0`` (stem conv and BN), ``cell_stem_0``, ``cell_stem_1``,
``cell_0`` .. ``cell_17`` (normal cells, six per group), ``reduction_cell_0``,
``reduction_cell_1`` and ``last_linear``. Ours groups the cells by resolution: cell_stem_0 ->
``stages.0.0``; cell_stem_1, cell_0 .. cell_5 -> ``stages.1.0`` .. ``stages.1.6``;
reduction_cell_0, cell_6 .. cell_11 -> ``stages.2.0`` ..; reduction_cell_1, cell_12 ..
cell_17 -> ``stages.3.0`` ...

Inside a cell (timm -> ours):

- ``conv_1x1`` (ReLU, conv, BN) -> ``conv1x1``; ``conv_prev_1x1`` -> ``adjust`` (projection);
  ``path_1.conv``, ``path_2.conv``, ``final_path_bn`` -> ``adjust.conv1``, ``adjust.conv2``,
  ``adjust.bn`` (the factorized reduction, in cell_stem_1 and the first normal cell of each
  group, timm's ``FirstCell``);
- ``comb_iter_<k>_{left,right}`` is block k + 1 (``left<k+1>``/``right<k+1>``); only the
  separable branches hold weights: ``separable_1.depthwise_conv2d``,
  ``separable_1.pointwise_conv2d``, ``bn_sep_1`` -> ``0.conv.depthwise``,
  ``0.conv.pointwise``, ``0.bn``, and ``separable_2``/``bn_sep_2`` -> ``1.*``.

Only names change: both sides are PyTorch modules of the same shapes, so no tensor is
transposed or reshaped. timm pads the reduction cells' 3x3/2 max-pools with -inf
(``MaxPool2dSame``), hence the arch ``nasnetalarge`` (``pool_pad_value=-inf``), not Keras'
``keras_nasnet_large``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ..layouts import has_keys, register_layout
from ..registry import Preprocessing, WeightTag, register
from ..renames import StateDict, apply_prefixes

# Which blocks of each kind of cell have separable branches (timm comb_iter index, side).
NORMAL_BRANCHES = ((0, "left"), (0, "right"), (1, "left"), (1, "right"), (4, "left"))
REDUCTION_BRANCHES = ((0, "left"), (0, "right"), (1, "right"), (2, "right"), (4, "left"))
SEPARABLE = {
    "separable_1.depthwise_conv2d": "0.conv.depthwise",
    "separable_1.pointwise_conv2d": "0.conv.pointwise",
    "bn_sep_1": "0.bn",
    "separable_2.depthwise_conv2d": "1.conv.depthwise",
    "separable_2.pointwise_conv2d": "1.conv.pointwise",
    "bn_sep_2": "1.bn",
}
FACTORIZED = {"path_1.conv": "conv1", "path_2.conv": "conv2", "final_path_bn": "bn"}


def _cell(timm: str, ours: str, reduction: bool, adjust: str | None) -> dict[str, str]:
    out = {
        f"{timm}.conv_1x1.conv": f"{ours}.conv1x1.conv",
        f"{timm}.conv_1x1.bn": f"{ours}.conv1x1.bn",
    }
    if adjust == "reduce":
        out.update({f"{timm}.{t}": f"{ours}.adjust.{o}" for t, o in FACTORIZED.items()})
    elif adjust == "project":
        out[f"{timm}.conv_prev_1x1.conv"] = f"{ours}.adjust.conv"
        out[f"{timm}.conv_prev_1x1.bn"] = f"{ours}.adjust.bn"
    for k, side in REDUCTION_BRANCHES if reduction else NORMAL_BRANCHES:
        for t, o in SEPARABLE.items():
            out[f"{timm}.comb_iter_{k}_{side}.{t}"] = f"{ours}.{side}{k + 1}.{o}"
    return out


def table(num_blocks: int = 6) -> dict[str, str]:
    """The module-prefix rename table for timm's NASNet-A with ``num_blocks`` normal cells
    per group (timm builds only Large, 6)."""
    n = num_blocks
    out = {"conv0.conv": "stem.conv", "conv0.bn": "stem.bn", "last_linear": "head.fc"}
    out |= _cell("cell_stem_0", "stages.0.0", True, None)
    out |= _cell("cell_stem_1", "stages.1.0", True, "reduce")
    for group in range(3):
        if group:
            out |= _cell(f"reduction_cell_{group - 1}", f"stages.{group + 1}.0", True, "project")
        for i in range(n):
            adjust = "reduce" if i == 0 else "project"  # timm's FirstCell, then NormalCell
            out |= _cell(f"cell_{group * n + i}", f"stages.{group + 1}.{i + 1}", False, adjust)
    return out


TABLE = table()


def convert(arch: str, state_dict: Mapping[str, torch.Tensor]) -> StateDict:
    return apply_prefixes(state_dict, TABLE)


looks_like = has_keys(
    "cell_stem_0.conv_1x1.conv.weight",
    "reduction_cell_1.conv_1x1.conv.weight",
    "last_linear.weight",
)


register_layout("timm", ["nasnetalarge"], looks_like, convert)

# timm 1.0's pretrained_cfg for nasnetalarge.tf_in1k: 331 crop with crop_pct 0.911, so the
# resize is round(331 / 0.911) = 363; bicubic; inputs in [-1, 1] (mean 0.5, std 0.5).
_FILE = "nasnetalarge-dc4a7b8b.pth"
register(
    WeightTag(
        name="nasnetalarge.tf_in1k",
        arch="nasnetalarge",
        source="timm",
        file_name=_FILE,
        sha256="",  # timm publishes no digest; the store records it on first download
        url="https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-weights/"
        + _FILE,
        preprocessing=Preprocessing(
            input_size=331,
            resize_size=363,
            interpolation="bicubic",
            mean=(0.5, 0.5, 0.5),
            std=(0.5, 0.5, 0.5),
        ),
        # The TF-slim checkpoint's figures (NASNet-A 6 @ 4032), as the table of
        # tensorflow.org's tf.keras.applications.nasnet page gives them; timm's evaluation of
        # the port is not among the sources we can cite.
        top1=82.7,
        top5=96.2,
        num_params=88_753_150,
        notes=(
            "NASNet-A Large's TF-slim ImageNet weights ported to PyTorch by Cadene, as timm "
            "serves them; top-1/top-5 are the TF-slim checkpoint's (https://www.tensorflow.org/"
            "versions/r2.11/api_docs/python/tf/keras/applications/nasnet), not timm's own "
            "evaluation of the port"
        ),
    ),
    default=True,
)

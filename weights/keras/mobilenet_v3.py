"""keras.applications' MobileNetV3Large and MobileNetV3Small: alpha 1.0 and 0.75, and the
minimalistic models."""

from __future__ import annotations

from collections.abc import Sequence

from .reader import Move, conv_bn
from .record import KerasModel, Signature, by_resolution
from .tensors import conv_as_dense

MODELS: dict[str, KerasModel] = {}

# keras.applications.MobileNetV3Large / MobileNetV3Small -> nets.models.mobilenet_v3's
# keras_* archs.
# Keras 3 names the layers ``conv``/``conv_bn`` (stem), ``expanded_conv_`` (block 0, no
# expansion) and ``expanded_conv_<i>_`` + ``expand``, ``depthwise``, ``squeeze_excite_conv``,
# ``squeeze_excite_conv_1``, ``project`` (each conv's BatchNorm ``<conv>_bn``), then
# ``conv_1``/``conv_1_bn`` (the last 1x1 conv), ``conv_2`` (the head's 1x1 conv) and
# ``logits``. The published files were written by tf.keras 2, whose names had slashes:
# ``Conv``, ``Conv/BatchNorm``, ``expanded_conv/depthwise/BatchNorm``,
# ``expanded_conv_3/squeeze_excite/Conv_1``, ``Conv_1``, ``Conv_2``, ``Logits``, which
# reader.normalise turns into ``Conv_BatchNorm``, ``expanded_conv_depthwise_BatchNorm``
# ...; Keras 3 loads those files by layer order, not by name. The moves carry both names (a
# layer the file lacks is skipped; the strict check reports anything left unmapped).
MOBILENET_V3_STRIDES = {
    "large": (1, 2, 1, 2, 1, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1),
    "small": (2, 2, 1, 2, 1, 1, 1, 1, 2, 1, 1),
}
# The last block's output channels, _depth(160 * alpha) and _depth(96 * alpha): tells alpha.
MOBILENET_V3_LAST = {("large", 1.0): 160, ("large", 0.75): 120, ("small", 1.0): 96,
                     ("small", 0.75): 72}  # fmt: skip


def _mobilenet_v3_moves_named(blocks: Sequence[str], tf_keras: bool) -> list[Move]:
    """One naming scheme: Keras 3's (``tf_keras=False``) or tf.keras 2's, normalised."""
    conv, bn = ("Conv", "_BatchNorm") if tf_keras else ("conv", "_bn")
    moves = [*conv_bn(conv, f"{conv}{bn}", "stem")]
    for i, ours in enumerate(blocks):
        k = "expanded_conv_" if i == 0 else f"expanded_conv_{i}_"
        for part in ("expand", "depthwise", "project"):
            kind = "depthwise" if part == "depthwise" else "conv"
            moves += conv_bn(f"{k}{part}", f"{k}{part}{bn}", f"{ours}.{part}", kind)
        # The SE's two 1x1 convs, with bias (rows without SE have none: skipped).
        moves += [
            Move(f"{k}squeeze_excite_{conv}", f"{ours}.attn.reduce"),
            Move(f"{k}squeeze_excite_{conv}_1", f"{ours}.attn.expand"),
        ]
    last_stage = blocks[-1].rpartition(".")[0]
    moves += conv_bn(f"{conv}_1", f"{conv}_1{bn}", f"{last_stage}.conv_head")
    # The head's 1x1 convs run on the pooled 1x1 map (GlobalAveragePooling2D keepdims=True),
    # so they are Linears: conv_as_dense reshapes the kernel (1, 1, in, out) to (in, out) and
    # transposes it to Linear's (out, in); the biases carry over as they are.
    moves += [
        Move(f"{conv}_2", "head.fc1", "dense", conv_as_dense),
        Move("Logits" if tf_keras else "logits", "head.fc", "dense", conv_as_dense),
    ]
    return moves


def mobilenet_v3_moves(blocks: Sequence[str]) -> tuple[Move, ...]:
    """``blocks``: our prefixes of expanded_conv_, expanded_conv_1 .. in order; conv_1 ends
    the last one's stage. Keras 3's names, then tf.keras 2's where they differ."""
    keras3 = _mobilenet_v3_moves_named(blocks, tf_keras=False)
    names = {m.keras for m in keras3}
    tf2 = [m for m in _mobilenet_v3_moves_named(blocks, tf_keras=True) if m.keras not in names]
    return (*keras3, *tf2)


def _mobilenet_v3(size: str, alpha: float, minimalistic: bool, **figures) -> KerasModel:
    """One published configuration: Keras' file names, and a signature from the number of
    blocks (large 15, small 11), the last block's width (alpha) and the SE layers (absent
    in the minimalistic models); either naming scheme matches."""
    strides = MOBILENET_V3_STRIDES[size]
    last = len(strides) - 1
    if minimalistic:
        suffix, options = "_minimalistic", "(minimalistic=True)"
    elif alpha != 1.0:
        suffix, options = f"_{round(alpha * 100):03d}", f"(alpha={alpha})"
    else:
        suffix, options = "", ""
    # Keras' model_name: "{large,small}[_minimalistic]_224_{alpha}_float".
    model_name = f"{size}{'_minimalistic' if minimalistic else ''}_224_{alpha}_float"
    return KerasModel(
        keras_name=f"MobileNetV3{size.capitalize()}{options}",
        arch=f"keras_mobilenet_v3_{size}{suffix}",
        mode="tf",
        input_size=224,
        signature=Signature(
            layers=("expanded_conv_depthwise", "expanded_conv_project"),
            last_block={
                r"expanded_conv_(\d+)_project": last,
                r"expanded_conv_(\d+)_squeeze_excite_[cC]onv": 0 if minimalistic else last,
            },
            widths={f"expanded_conv_{last}_project/kernel": MOBILENET_V3_LAST[size, alpha]},
        ),
        moves=mobilenet_v3_moves(by_resolution(strides)),
        moves_for_blocks=mobilenet_v3_moves,
        weights_dir="mobilenet_v3/",
        file=f"weights_mobilenet_v3_{model_name}.h5",
        notop_file=f"weights_mobilenet_v3_{model_name}_no_top_v2.h5",
        figures=(
            "top-1 from the table in keras.applications' mobilenet_v3.py docstring (keras.io's "
            "applications table does not list MobileNetV3; no top-5 is published)"
        ),
        notes=(
            "Keras builds the preprocessing into the model, a Rescaling(1/127.5, offset=-1) "
            "layer on 0-255 input (include_preprocessing=True), and its "
            "mobilenet_v3.preprocess_input passes input through; ours is a plain network, "
            "so that rescaling is this tag's mean/std 0.5 on [0, 1] input (mode 'tf'). The "
            "Rescaling layer has no weights: a file saved with include_preprocessing=False "
            "is the same file, and both conventions put [-1, 1] into the first conv"
        ),
        **figures,
    )


# Figures: file_hash (MD5, with and without the top) from keras/src/applications/
# mobilenet_v3.py's WEIGHTS_HASHES (Keras 3.x); top-1 from its docstring's table; the counts
# are Keras' trainable parameters (keras.applications.MobileNetV3X(weights=None, alpha=...,
# minimalistic=..., include_top=...) in Keras 3.15; its totals add BatchNorm's moving
# statistics; tests/weights/test_keras_mobilenet_v3.py checks both).
MODELS.update(
    (m.keras_name, m)
    for m in (
        _mobilenet_v3(
            "large",
            1.0,
            False,
            md5=("59e551e166be033d707958cf9e29a6a7", "07fb09a5933dd0c8eaafa16978110389"),
            top1=75.6,
            top5=None,
            params=(5_483_032, 2_971_952),
        ),
        _mobilenet_v3(
            "large",
            0.75,
            False,
            md5=("765b44a33ad4005b3ac83185abf1d0eb", "40af19a13ebea4e2ee0c676887f69a2e"),
            top1=73.3,
            top5=None,
            params=(3_993_528, 1_789_648),
        ),
        _mobilenet_v3(
            "large",
            1.0,
            True,
            md5=("675e7b876c45c57e9e63e6d90a36599c", "ec5221f64a2f6d1ef965a614bdae7973"),
            top1=72.3,
            top5=None,
            params=(3_924_288, 1_413_208),
        ),
        _mobilenet_v3(
            "small",
            1.0,
            False,
            md5=("8768d4c2e7dee89b9d02b2d03d65d862", "d3e8ec802a04aa4fc771ee12a9a9b836"),
            top1=68.1,
            top5=None,
            params=(2_542_856, 927_008),
        ),
        _mobilenet_v3(
            "small",
            0.75,
            False,
            md5=("cb65d4e5be93758266aa0a7f2c6708b7", "ebdb5cc8e0b497cd13a7c275d475c819"),
            top1=65.4,
            top5=None,
            params=(2_041_872, 573_480),
        ),
        _mobilenet_v3(
            "small",
            1.0,
            True,
            md5=("99cd97fb2fcdad2bf028eb838de69e37", "cde8136e733e811080d9fcd8a252f7e4"),
            top1=61.9,
            top5=None,
            params=(2_044_736, 428_888),
        ),
    )
)

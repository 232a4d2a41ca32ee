"""One record per keras.applications model we convert: its files, figures, how its file is
recognised, and the table from its layer names to our modules.

A new application is a new ``KerasModel`` in ``MODELS``: its ``signature`` (the layer names
that tell its file from every other's) and its ``moves`` (``weights.keras_reader.Move`` rows),
plus, where Keras leaves layers unnamed, our modules in Keras' creation order (``unnamed``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

import torch

from .keras_reader import Move, conv_bn, creation_order
from .keras_tensors import conv_as_dense, flatten_dense_kernel


@dataclass(frozen=True)
class Signature:
    """What a file's layer names (after ``keras_reader.normalise``) must show."""

    layers: tuple[str, ...] = ()  # present
    absent: tuple[str, ...] = ()
    # A pattern with one group, a block number -> the highest number in the file.
    last_block: Mapping[str, int] = field(default_factory=dict)
    # A creation-order base name (``conv2d``) -> how many layers carry it.
    unnamed: Mapping[str, int] = field(default_factory=dict)
    # A kernel -> its output channels (telling width multiplier 1.0 from the others).
    widths: Mapping[str, int] = field(default_factory=dict)

    def matches(self, state_dict: Mapping[str, torch.Tensor], layers: set[str]) -> bool:
        return (
            all(n in layers for n in self.layers)
            and not any(n in layers for n in self.absent)
            and all(_last_block(layers, p) == n for p, n in self.last_block.items())
            and all(len(creation_order(layers, b)) == n for b, n in self.unnamed.items())
            and all(
                (t := state_dict.get(k)) is not None and t.shape[-1] == n
                for k, n in self.widths.items()
            )
        )


def _last_block(layers: set[str], pattern: str) -> int:
    return max((int(m[1]) for n in layers if (m := re.fullmatch(pattern, n))), default=0)


@dataclass(frozen=True)
class KerasModel:
    keras_name: str  # keras.applications.<name>
    arch: str  # ours
    mode: str  # preprocessing mode (weights.keras_format.MODES)
    input_size: int
    signature: Signature
    moves: tuple[Move, ...]
    weights_dir: str  # under KERAS_BASE_URL
    file: str  # with the top
    notop_file: str
    md5: tuple[str, str]  # keras.applications' file_hash (MD5) of the two files, "" if none
    top1: float  # keras.io/api/applications (top-1, ImageNet val), or ``figures``
    top5: float | None  # None where none is published
    # Our parameter counts (= Keras' trainable parameters) with and without the top; Keras'
    # totals add BatchNorm's moving statistics (REFERENCE.md; tests/test_keras.py checks both).
    params: tuple[int, int]
    # Our ConvNormActs for Keras' unnamed conv2d/batch_normalization layers, in creation order.
    unnamed: tuple[str, ...] = ()
    # The caffe-mode models were trained on BGR: this first conv's input channels reverse.
    bgr_conv: str = ""
    # Where our stages group Keras' blocks by resolution (MobileNets): the moves for our
    # block prefixes, read from the model's keys when the loading path hands them over
    # (``moves`` is this for the prefixes of a table, for a conversion without a model).
    moves_for_blocks: Callable[[Sequence[str]], tuple[Move, ...]] | None = None
    # Where top1/top5 come from, for the tags' notes, and what else the tags should say.
    figures: str = "top-1/top-5 from https://keras.io/api/applications/"
    notes: str = ""
    # The base name of a Keras Normalization layer in the model (EfficientNet): its mean and
    # variance are the file's preprocessing (weights.keras_format.file_metadata), not weights.
    normalization: str = ""
    # Where the files are when not under keras_format.KERAS_BASE_URL (EfficientNet's are not).
    base_url: str = ""


def _std(name: str) -> dict[str, str]:
    """The file names most keras.applications models use, with and without the top."""
    return {
        "file": f"{name}_weights_tf_dim_ordering_tf_kernels.h5",
        "notop_file": f"{name}_weights_tf_dim_ordering_tf_kernels_notop.h5",
    }


# -- the tables --------------------------------------------------------------------------------
def vgg_moves(depths: tuple[int, ...]) -> tuple[Move, ...]:
    return (
        *(
            Move(f"block{s + 1}_conv{j + 1}", f"stages.{s}.{j}.conv")
            for s, depth in enumerate(depths)
            for j in range(depth)
        ),
        Move("fc1", "head.fc1", "dense", partial(flatten_dense_kernel, channels=512)),
        Move("fc2", "head.fc2", "dense"),
        Move("predictions", "head.fc", "dense"),
    )


def resnet_moves(depths: tuple[int, ...]) -> tuple[Move, ...]:
    """Keras' ResNet50/101/152 (v1): ``depths`` are the blocks of conv2 .. conv5."""
    moves = [*conv_bn("conv1_conv", "conv1_bn", "stem.conv1")]
    for s, depth in enumerate(depths):
        for b in range(depth):
            keras, ours = f"conv{s + 2}_block{b + 1}", f"stages.{s}.{b}"
            for n in (1, 2, 3):
                moves += conv_bn(f"{keras}_{n}_conv", f"{keras}_{n}_bn", f"{ours}.conv{n}")
            # Keras' "_0" is the projection shortcut of a stage's first block.
            moves += conv_bn(f"{keras}_0_conv", f"{keras}_0_bn", f"{ours}.downsample")
    return (*moves, Move("predictions", "head.fc", "dense"))


# MobileNet v1's depthwise strides, conv_dw_1 .. conv_dw_13, and MobileNetV2's block strides,
# expanded_conv then block_1 .. block_16. Only for a conversion without a model to load into:
# the loading path hands over the model's keys, and our grouping is read from those
# (``KerasModel.moves_for_blocks``).
MOBILENET_STRIDES = (1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1)
MOBILENET_V2_STRIDES = (1, 2, 1, 2, 1, 1, 2, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1)
# Our blocks hold a depthwise ConvNormAct each: ``<block>.depthwise.conv.weight``.
DEPTHWISE = "depthwise.conv.weight"


def by_resolution(strides: tuple[int, ...]) -> list[str]:
    """Our ``stages.<s>.<j>`` of each block: a new stage at every stride-2 block, as
    ``nets.mobilenet_v1.group_by_resolution`` builds our stages."""
    out, stage, index = [], 0, -1
    for i, stride in enumerate(strides):
        if stride > 1 and i > 0:
            stage, index = stage + 1, 0
        else:
            index += 1
        out.append(f"stages.{stage}.{index}")
    return out


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


def densenet_moves(blocks: tuple[int, ...]) -> tuple[Move, ...]:
    moves = [*conv_bn("conv1_conv", "conv1_bn", "stem.conv1")]
    for s, n_layers in enumerate(blocks):
        if s > 0:
            # Keras' transition before block s + 2 is pool{s + 1}: bn, 1x1 conv, 2x2 avg pool.
            moves += [
                Move(f"pool{s + 1}_bn", f"stages.{s}.transition.norm", "bn"),
                Move(f"pool{s + 1}_conv", f"stages.{s}.transition.conv"),
            ]
        for i in range(n_layers):
            keras, ours = f"conv{s + 2}_block{i + 1}", f"stages.{s}.block.{i}"
            moves += [
                Move(f"{keras}_0_bn", f"{ours}.norm1", "bn"),
                Move(f"{keras}_1_conv", f"{ours}.conv1"),
                Move(f"{keras}_1_bn", f"{ours}.norm2", "bn"),
                Move(f"{keras}_2_conv", f"{ours}.conv2"),
            ]
    moves.append(Move("bn", f"stages.{len(blocks) - 1}.norm", "bn"))
    return (*moves, Move("predictions", "head.fc", "dense"))


# Inception v3: Keras names its convs and BatchNorms by creation order only (see
# keras_reader.creation_order), which is the order of our modules:
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


# Xception: Keras blocks 2 .. 13 are our XceptionBlocks (nets.xception.BLOCKS) in their
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


# InceptionResNetV2: Keras' conv2d_bn units are unnamed (conv2d_N / batch_normalization_N, in
# creation order, which is the order of our ConvNormActs below); named are only the residual
# blocks' 1x1 projections with a bias and no BatchNorm (``block35_1_conv`` .. ``block35_10``,
# ``block17_1`` .. ``block17_20``, ``block8_1`` .. ``block8_10``) and ``conv_7b``/``conv_7b_bn``.
IRV2_BRANCHES = {
    "block35": ("branch0", "branch1.0", "branch1.1", "branch2.0", "branch2.1", "branch2.2"),
    "block17": ("branch0", "branch1.0", "branch1.1", "branch1.2"),
    "block8": ("branch0", "branch1.0", "branch1.1", "branch1.2"),
}
IRV2_BLOCKS = (("block35", 2, 10), ("block17", 3, 20), ("block8", 4, 10))  # Keras name, stage, n


def inception_resnet_v2_order() -> list[str]:
    """Our ConvNormAct prefixes in Keras' creation order of its unnamed conv2d_bn (203)."""
    out = ["stem", "stages.0.conv2a", "stages.0.conv2b", "stages.1.conv3b", "stages.1.conv4a"]
    mixed = {
        "stages.2.mixed_5b": ("branch0", "branch1.0", "branch1.1", "branch2.0", "branch2.1",
                              "branch2.2", "branch3.1"),
        "stages.3.mixed_6a": ("branch0", "branch1.0", "branch1.1", "branch1.2"),
        "stages.4.mixed_7a": ("branch0.0", "branch0.1", "branch1.0", "branch1.1", "branch2.0",
                              "branch2.1", "branch2.2"),
    }  # fmt: skip
    for (module, branches), (kind, stage, n) in zip(mixed.items(), IRV2_BLOCKS, strict=True):
        out += [f"{module}.{b}" for b in branches]
        for i in range(n):
            out += [f"stages.{stage}.{i}.{b}" for b in IRV2_BRANCHES[kind]]
    return out


def inception_resnet_v2_moves() -> tuple[Move, ...]:
    moves = [
        Move(f"{kind}_{i + 1}_conv", f"stages.{stage}.{i}.project")  # with its bias
        for kind, stage, n in IRV2_BLOCKS
        for i in range(n)
    ]
    moves += conv_bn("conv_7b", "conv_7b_bn", "stages.4.conv7b")
    return (*moves, Move("predictions", "head.fc", "dense"))


# -- the records -------------------------------------------------------------------------------
def _densenet(depth: int, blocks: tuple[int, ...], **figures) -> KerasModel:
    """DenseNet121/169/201: one builder, told apart by the last two dense blocks' lengths."""
    return KerasModel(
        keras_name=f"DenseNet{depth}",
        arch=f"keras_densenet{depth}",
        mode="torch",
        input_size=224,
        signature=Signature(
            layers=("conv1_conv", "conv2_block1_0_bn"),
            last_block={
                r"conv4_block(\d+)_1_conv": blocks[2],
                r"conv5_block(\d+)_1_conv": blocks[3],
            },
        ),
        moves=densenet_moves(blocks),
        weights_dir="densenet/",
        **_std(f"densenet{depth}"),
        **figures,
    )


MODELS: dict[str, KerasModel] = {
    m.keras_name: m
    for m in (
        KerasModel(
            keras_name="VGG16",
            arch="vgg16",
            mode="caffe",
            input_size=224,
            signature=Signature(layers=("block1_conv1", "block5_conv3"), absent=("block5_conv4",)),
            moves=vgg_moves((2, 2, 3, 3, 3)),
            bgr_conv="stages.0.0.conv",
            weights_dir="vgg16/",
            **_std("vgg16"),
            md5=("64373286793e3c8b2b4e3219cbf3544b", "6d6bbae143d832006294945121d1f1fc"),
            top1=71.3,
            top5=90.1,
            params=(138_357_544, 14_714_688),
        ),
        KerasModel(
            keras_name="VGG19",
            arch="vgg19",
            mode="caffe",
            input_size=224,
            signature=Signature(layers=("block1_conv1", "block5_conv3", "block5_conv4")),
            moves=vgg_moves((2, 2, 4, 4, 4)),
            bgr_conv="stages.0.0.conv",
            weights_dir="vgg19/",
            **_std("vgg19"),
            md5=("cbe5617147190e668d6c5d5026f83318", "253f8cb515780f3b799900260a226db6"),
            top1=71.3,
            top5=90.0,
            params=(143_667_240, 20_024_384),
        ),
        KerasModel(
            keras_name="ResNet50",
            arch="keras_resnet50",
            mode="caffe",
            input_size=224,
            # ResNet101/152 share the names and have more blocks in conv4; ResNet50 has six.
            # ResNet50V2 has the same block names too, but no conv1_bn (its stem has no BN).
            signature=Signature(
                layers=("conv1_conv", "conv1_bn", "conv5_block3_3_conv"),
                last_block={r"conv4_block(\d+)_3_conv": 6},
            ),
            moves=resnet_moves((3, 4, 6, 3)),
            bgr_conv="stem.conv1.conv",
            weights_dir="resnet/",
            **_std("resnet50"),
            md5=("2cb95161c43110f7111970584f804107", "4d473c1dd8becc155b73f8504c6f6626"),
            top1=74.9,
            top5=92.1,
            params=(25_583_592, 23_534_592),
        ),
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
        _densenet(
            121,
            (6, 12, 24, 16),
            md5=("9d60b8095a5708f2dcce2bca79d332c7", "30ee3e1110167f948a6b9946edeeb738"),
            top1=75.0,
            top5=92.3,
            params=(7_978_856, 6_953_856),
        ),
        _densenet(
            169,
            (6, 12, 32, 32),
            md5=("d699b8f76981ab1b30698df4c175e90b", "b8c4d4c20dd625c148057b9ff1c1176b"),
            top1=76.2,
            top5=93.2,
            params=(14_149_480, 12_484_480),
        ),
        _densenet(
            201,
            (6, 12, 48, 32),
            md5=("1ceb130c1ea1b78c3bf6114dbdfd8807", "c13680b51ded0fb44dff2d8f86ac8bb1"),
            top1=77.3,
            top5=93.6,
            params=(20_013_928, 18_092_928),
        ),
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
            **_std("inception_v3"),
            md5=("9a0d58056eeedaa3f26cb7ebd46da564", "bcbd6486424b2319ff4ef7d526e38f63"),
            top1=77.9,
            top5=93.7,
            params=(23_817_352, 21_768_352),
        ),
        KerasModel(
            keras_name="Xception",
            arch="keras_xception",
            mode="tf",
            input_size=299,
            signature=Signature(layers=("block1_conv1", "block14_sepconv2")),
            moves=xception_moves(),
            unnamed=tuple(f"{ours}.skip" for ours in XCEPTION_SKIPS),
            weights_dir="xception/",
            **_std("xception"),
            md5=("0a58e3b7378bc2990ea3b43d5981f1f6", "b0042744bf5b25fce3cb969f33bebb97"),
            top1=79.0,
            top5=94.5,
            params=(22_855_952, 20_806_952),
        ),
        KerasModel(
            keras_name="InceptionResNetV2",
            arch="keras_inception_resnet_v2",
            mode="tf",
            input_size=299,
            signature=Signature(layers=("conv_7b", "block8_10_conv")),
            moves=inception_resnet_v2_moves(),
            unnamed=tuple(inception_resnet_v2_order()),  # BatchNorms without gamma
            weights_dir="inception_resnet_v2/",
            **_std("inception_resnet_v2"),
            md5=("e693bd0210a403b3192acc6073ad2e96", "d19885ff4a710c122648d3b5c3b684e4"),
            top1=80.3,
            top5=95.3,
            params=(55_813_192, 54_276_192),
        ),
    )
}


# -- Keras' deeper ResNets (v1) and ResNet v2 ---------------------------------------------------
# Figures: keras.io/api/applications (top-1/top-5); MD5s: keras.applications' resnet.py
# WEIGHTS_HASHES; counts: ours = Keras' trainable parameters (tests/test_keras.py).
RESNET_V2_LAST_STRIDE = (2, 2, 2, 1)  # Keras' stride sits in the last block of conv2 .. conv5


def resnet_v2_moves(depths: tuple[int, ...]) -> tuple[Move, ...]:
    """Keras' ResNet50V2/101V2/152V2 -> ``nets.resnet_v2``: Keras' ``conv<k>_block<b>`` in
    order, each onto our block; our stages begin at each stride-2 block (the last block of
    Keras' conv2 .. conv4), so they run one block later than Keras' stacks."""
    keras = [f"conv{s + 2}_block{b + 1}" for s, depth in enumerate(depths) for b in range(depth)]
    strides = [
        last if b == depth - 1 else 1
        for depth, last in zip(depths, RESNET_V2_LAST_STRIDE, strict=True)
        for b in range(depth)
    ]
    moves = [Move("conv1_conv", "stem.conv1.conv")]  # a bias, no BatchNorm
    for k, ours in zip(keras, by_resolution(strides), strict=True):
        moves += [
            Move(f"{k}_preact_bn", f"{ours}.preact.bn", "bn"),
            # The 1x1 projection shortcut, in each stack's first block only (a file without it
            # leaves the row unused; the strict check reports any block that needs one).
            Move(f"{k}_0_conv", f"{ours}.downsample.conv"),
            *conv_bn(f"{k}_1_conv", f"{k}_1_bn", f"{ours}.conv1"),
            *conv_bn(f"{k}_2_conv", f"{k}_2_bn", f"{ours}.conv2"),
            Move(f"{k}_3_conv", f"{ours}.conv3.conv"),  # a bias, no BatchNorm
        ]
    moves.append(Move("post_bn", f"stages.{len(depths) - 1}.norm", "bn"))
    return (*moves, Move("predictions", "head.fc", "dense"))


def _keras_resnet(depth: int, blocks: tuple[int, ...], v2: bool, **figures) -> KerasModel:
    """ResNet101/152 (v1, caffe mode, the layout of ResNet50) and ResNet50V2/101V2/152V2 (tf
    mode): one file-naming scheme, told apart by conv3/conv4's lengths and v2's post_bn."""
    name = f"resnet{depth}{'v2' if v2 else ''}"
    conv = "preact_bn" if v2 else "3_conv"
    return KerasModel(
        keras_name=f"ResNet{depth}{'V2' if v2 else ''}",
        arch=f"resnet{depth}_v2" if v2 else f"keras_resnet{depth}",
        mode="tf" if v2 else "caffe",
        input_size=224,
        signature=Signature(
            layers=("conv1_conv", "post_bn") if v2 else ("conv1_conv", "conv1_bn"),
            last_block={
                rf"conv3_block(\d+)_{conv}": blocks[1],
                rf"conv4_block(\d+)_{conv}": blocks[2],
            },
        ),
        moves=resnet_v2_moves(blocks) if v2 else resnet_moves(blocks),
        bgr_conv="" if v2 else "stem.conv1.conv",
        weights_dir="resnet/",
        **_std(name),
        **figures,
    )


MODELS.update(
    (m.keras_name, m)
    for m in (
        _keras_resnet(
            101,
            (3, 4, 23, 3),
            False,
            md5=("f1aeb4b969a6efcfb50fad2f0c20cfc5", "88cf7a10940856eca736dc7b7e228a21"),
            top1=76.4,
            top5=92.8,
            params=(44_601_832, 42_552_832),
        ),
        _keras_resnet(
            152,
            (3, 8, 36, 3),
            False,
            md5=("100835be76be38e30d865e96f2aaae62", "ee4c566cf9a93f14d82f913c2dc6dd0c"),
            top1=76.6,
            top5=93.1,
            params=(60_268_520, 58_219_520),
        ),
        _keras_resnet(
            50,
            (3, 4, 6, 3),
            True,
            md5=("3ef43a0b657b3be2300d5770ece849e0", "fac2f116257151a9d068a22e544a4917"),
            top1=76.0,
            top5=93.0,
            params=(25_568_360, 23_519_360),
        ),
        _keras_resnet(
            101,
            (3, 4, 23, 3),
            True,
            md5=("6343647c601c52e1368623803854d971", "c0ed64b8031c3730f411d2eb4eea35b5"),
            top1=77.2,
            top5=93.8,
            params=(44_577_896, 42_528_896),
        ),
        _keras_resnet(
            152,
            (3, 8, 36, 3),
            True,
            md5=("a49b44d1979771252814e80f8ec446f9", "ed17cf2e0169df9d443503ef94b23b33"),
            top1=78.0,
            top5=94.2,
            params=(60_236_904, 58_187_904),
        ),
    )
)


# -- NASNet-A (issue 14) -----------------------------------------------------------------------
# keras.applications' NASNet names its layers by cell: the stem cells "stem_1", "stem_2", the
# normal cells "0" .. "N-1", N+1 .. 2N, 2N+1 .. 3N and the reduction cells "reduce_N",
# "reduce_2N" (nets.nasnet: stages.0.0; stages.1.0 then stages.1.1 ..; stages.2.0 ..;
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


# -- MobileNetV3 (issue 14) --------------------------------------------------------------------
# keras.applications.MobileNetV3Large / MobileNetV3Small -> nets.mobilenet_v3's keras_* archs.
# Keras 3 names the layers ``conv``/``conv_bn`` (stem), ``expanded_conv_`` (block 0, no
# expansion) and ``expanded_conv_<i>_`` + ``expand``, ``depthwise``, ``squeeze_excite_conv``,
# ``squeeze_excite_conv_1``, ``project`` (each conv's BatchNorm ``<conv>_bn``), then
# ``conv_1``/``conv_1_bn`` (the last 1x1 conv), ``conv_2`` (the head's 1x1 conv) and
# ``logits``. The published files were written by tf.keras 2, whose names had slashes:
# ``Conv``, ``Conv/BatchNorm``, ``expanded_conv/depthwise/BatchNorm``,
# ``expanded_conv_3/squeeze_excite/Conv_1``, ``Conv_1``, ``Conv_2``, ``Logits``, which
# keras_reader.normalise turns into ``Conv_BatchNorm``, ``expanded_conv_depthwise_BatchNorm``
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
# statistics; tests/test_keras_mobilenet_v3.py checks both).
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


# -- EfficientNetB0 .. B7 (issue 14) -----------------------------------------------------------
# keras.applications' EfficientNet (keras/src/applications/efficientnet.py) names its blocks
# by group and repeat: "block<g><letter>_" for group g = 1 .. 7 and repeat a, b, c ... Inside a
# block: expand_conv/expand_bn (absent in group 1, expand ratio 1), dwconv/bn, se_reduce and
# se_expand (1x1 convs with a bias), project_conv/project_bn. Around them: stem_conv/stem_bn,
# top_conv/top_bn (our last stage's conv_head) and the Dense "predictions". The model's
# preprocessing layer "normalization" (mean, variance, count) has no module of ours: its
# constants are the file's preprocessing (weights.keras_format), not weights.
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
# 3.15; tests/test_keras_efficientnet.py). Depth coefficient, resolution and the top conv's
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

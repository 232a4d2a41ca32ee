"""keras.applications' InceptionResNetV2."""

from __future__ import annotations

from .reader import Move, conv_bn
from .record import KerasModel, Signature, standard_files

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


MODELS: dict[str, KerasModel] = {
    m.keras_name: m
    for m in (
        KerasModel(
            keras_name="InceptionResNetV2",
            arch="keras_inception_resnet_v2",
            mode="tf",
            input_size=299,
            signature=Signature(layers=("conv_7b", "block8_10_conv")),
            moves=inception_resnet_v2_moves(),
            unnamed=tuple(inception_resnet_v2_order()),  # BatchNorms without gamma
            weights_dir="inception_resnet_v2/",
            **standard_files("inception_resnet_v2"),
            md5=("e693bd0210a403b3192acc6073ad2e96", "d19885ff4a710c122648d3b5c3b684e4"),
            top1=80.3,
            top5=95.3,
            params=(55_813_192, 54_276_192),
        ),
    )
}

"""keras.applications' ResNet50/101/152 (v1, caffe mode) and ResNet50V2/101V2/152V2 (tf mode):
one file-naming scheme, one builder."""

from __future__ import annotations

from .reader import Move, conv_bn
from .record import KerasModel, Signature, by_resolution, standard_files


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


MODELS: dict[str, KerasModel] = {
    m.keras_name: m
    for m in (
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
            **standard_files("resnet50"),
            md5=("2cb95161c43110f7111970584f804107", "4d473c1dd8becc155b73f8504c6f6626"),
            top1=74.9,
            top5=92.1,
            params=(25_583_592, 23_534_592),
        ),
    )
}


# -- Keras' deeper ResNets (v1) and ResNet v2 ---------------------------------------------------
# Figures: keras.io/api/applications (top-1/top-5); MD5s: keras.applications' resnet.py
# WEIGHTS_HASHES; counts: ours = Keras' trainable parameters (tests/weights/test_keras.py).
RESNET_V2_LAST_STRIDE = (2, 2, 2, 1)  # Keras' stride sits in the last block of conv2 .. conv5


def resnet_v2_moves(depths: tuple[int, ...]) -> tuple[Move, ...]:
    """Keras' ResNet50V2/101V2/152V2 -> ``nets.models.resnet_v2``: Keras' ``conv<k>_block<b>`` in
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
        **standard_files(name),
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

"""keras.applications' DenseNet121, DenseNet169 and DenseNet201."""

from __future__ import annotations

from .reader import Move, conv_bn
from .record import KerasModel, Signature, standard_files


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
        **standard_files(f"densenet{depth}"),
        **figures,
    )


MODELS: dict[str, KerasModel] = {
    m.keras_name: m
    for m in (
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
    )
}

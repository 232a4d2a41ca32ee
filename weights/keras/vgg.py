"""keras.applications' VGG16 and VGG19."""

from __future__ import annotations

from functools import partial

from .reader import Move
from .record import KerasModel, Signature, standard_files
from .tensors import flatten_dense_kernel


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
            **standard_files("vgg16"),
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
            **standard_files("vgg19"),
            md5=("cbe5617147190e668d6c5d5026f83318", "253f8cb515780f3b799900260a226db6"),
            top1=71.3,
            top5=90.0,
            params=(143_667_240, 20_024_384),
        ),
    )
}

"""Every keras.applications model we convert, by its Keras name, family by family."""

from __future__ import annotations

from . import (
    densenet,
    efficientnet,
    inception_resnet_v2,
    inception_v3,
    mobilenet,
    mobilenet_v3,
    nasnet,
    resnet,
    vgg,
    xception,
)
from .record import KerasModel

FAMILIES = (
    vgg,
    resnet,
    mobilenet,
    mobilenet_v3,
    densenet,
    inception_v3,
    xception,
    inception_resnet_v2,
    nasnet,
    efficientnet,
)

MODELS: dict[str, KerasModel] = {}
for _family in FAMILIES:
    for _name, _model in _family.MODELS.items():
        if _name in MODELS:
            raise ValueError(f"keras.applications.{_name} has two records")
        MODELS[_name] = _model

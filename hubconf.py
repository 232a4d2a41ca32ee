"""torch.hub entry points: every registered model by its name.

    model = torch.hub.load("path/to/this/checkout", "resnet50", source="local", weights="imagenet")

(``torch.hub.list`` and ``torch.hub.help`` read GitHub repositories only; ``nets.list_models()``
names the same entry points.)

Each entry point is ``nets.create_model(name, **kwargs)``: ``weights=`` takes what it takes
(``"imagenet"``, a tag, a checkpoint path, ``None``/``"none"``), and timm's
``pretrained=True`` means ``weights="imagenet"``.
"""

import nets as _nets

dependencies = ["torch", "torchvision", "safetensors"]


def _entry_point(name):
    def build(**kwargs):
        return _nets.create_model(name, **kwargs)

    build.__name__ = build.__qualname__ = name
    spec = _nets.get_spec(name)
    build.__doc__ = f"{name} ({spec.family}; {spec.paper or 'see nets list'}): nets.create_model"
    return build


for _name in _nets.list_models():
    globals()[_name] = _entry_point(_name)

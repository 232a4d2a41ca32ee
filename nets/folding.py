"""Graph surgery for inference, pure and deterministic: which BatchNorm follows which conv
(read from the data flow of one forward pass, not from per-family tables), folding each such
pair into the conv, and removing the modules that do nothing in eval mode. The fast path
(``nets.inference``) applies these before it chooses what runs each input shape.

A pair is folded only when the conv's output goes to that BatchNorm and nowhere else, and
each is called once. This covers ``ConvNormAct`` everywhere, DenseNet's ``conv1 -> norm2``
and any block written later; pre-activation BatchNorms (DenseNet's ``norm1``) that read a
concatenation are left as they are, since no conv output feeds them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torch.overrides import TorchFunctionMode
from torchvision.ops import StochasticDepth

__all__ = ["find_conv_bn_pairs", "fold_batchnorm", "strip_identities"]


class _FlowRecorder(TorchFunctionMode):
    """Counts, for every tensor, how many torch functions computing tensors read it."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: dict[int, int] = {}
        self.keep: list[torch.Tensor] = []  # keeps tensors alive so that ids stay unique

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        results = [o for o in _flatten(out) if isinstance(o, torch.Tensor)]
        if not results:
            return out  # metadata (x.dim(), x.shape): not a use of the values
        self.keep += results
        for a in _flatten((args, kwargs)):
            if isinstance(a, torch.Tensor) and not isinstance(a, nn.Parameter):
                self.reads[id(a)] = self.reads.get(id(a), 0) + 1
        return out


def _flatten(obj: object) -> list:
    if isinstance(obj, (list, tuple)):
        return [y for x in obj for y in _flatten(x)]
    if isinstance(obj, dict):
        return [y for x in obj.values() for y in _flatten(x)]
    return [obj]


def find_conv_bn_pairs(model: nn.Module, example: torch.Tensor) -> list[tuple[str, str]]:
    """``(conv_name, bn_name)`` for each BatchNorm2d whose only input is the output of one
    Conv2d that nothing else reads, found by running ``model`` once on ``example``."""
    names = {m: n for n, m in model.named_modules()}
    calls: dict[nn.Module, int] = {}
    produced: dict[int, nn.Module] = {}  # id(conv output) -> conv
    fed: list[tuple[nn.Module, nn.Module]] = []  # (conv, bn) where bn read a conv output
    handles = []

    def count(module: nn.Module, *_: object) -> None:
        calls[module] = calls.get(module, 0) + 1

    def conv_out(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        produced[id(output)] = module

    def bn_in(module: nn.Module, inputs: tuple) -> None:
        conv = produced.get(id(inputs[0]))
        if conv is not None:
            fed.append((conv, module))
            bn_in.ids[module] = id(inputs[0])

    bn_in.ids = {}
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.BatchNorm2d)):
            handles.append(m.register_forward_pre_hook(count))
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_out))
        elif isinstance(m, nn.BatchNorm2d):
            handles.append(m.register_forward_pre_hook(bn_in))
    recorder = _FlowRecorder()
    try:
        with torch.no_grad(), recorder:
            model(example)
    finally:
        for h in handles:
            h.remove()
    pairs = []
    for conv, bn in fed:
        sole_reader = recorder.reads.get(bn_in.ids[bn], 0) == 1
        if sole_reader and calls.get(conv) == 1 and calls.get(bn) == 1:
            pairs.append((names[conv], names[bn]))
    return pairs


def _set(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def fold_batchnorm(model: nn.Module, pairs: Sequence[tuple[str, str]]) -> nn.Module:
    """Fold each ``(conv, bn)`` of ``pairs`` in ``model`` (eval mode, in place): the conv gets
    the BatchNorm's scale and shift in its weight and bias, the BatchNorm becomes Identity."""
    for conv_name, bn_name in pairs:
        conv = model.get_submodule(conv_name)
        bn = model.get_submodule(bn_name)
        if not bn.track_running_stats or bn.running_mean is None:
            continue  # batch statistics at eval time: nothing fixed to fold
        _set(model, conv_name, fuse_conv_bn_eval(conv.eval(), bn.eval()))
        _set(model, bn_name, nn.Identity())
    return model


def strip_identities(model: nn.Module) -> None:
    """Dropout and stochastic depth do nothing in eval mode; drop the module calls."""
    for name, m in list(model.named_modules()):
        if name and isinstance(m, (nn.Dropout, StochasticDepth)):
            _set(model, name, nn.Identity())

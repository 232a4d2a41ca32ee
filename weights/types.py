"""Types every part of ``weights`` shares."""

from __future__ import annotations

import torch

# A checkpoint's tensors by key, as ``torch.nn.Module.state_dict`` gives them.
StateDict = dict[str, torch.Tensor]

"""LeNet-5 (LeCun, Bottou, Bengio and Haffner, 1998, "Gradient-Based Learning Applied to
Document Recognition", Section II.B and Appendix A).

Input 32x32x1, 10 classes by default. The layers, as data in ``LENET5`` below:

====  =========================================================  ========  ==========
name  layer                                                      output    parameters
====  =========================================================  ========  ==========
C1    conv 6@5x5, no padding                                     6@28x28   6*(25+1)
S2    trainable subsampling: 2x2 sum * coefficient + bias        6@14x14   6*2
C3    conv 16@5x5 on the S2 maps chosen by Table I               16@10x10  60*25 + 16
S4    trainable subsampling                                      16@5x5    16*2
C5    conv 120@5x5 (1x1 output at 32x32 input)                   120@1x1   120*(400+1)
F6    fully connected 84                                         84        84*(120+1)
out   fully connected 10                                         10        10*(84+1)
====  =========================================================  ========  ==========

60,850 parameters in all (C3's Table I has 60 input-map connections: six maps read 3
contiguous S2 maps, six read 4 contiguous, three read 4 discontinuous, one reads all 6).

Followed from the paper:

- the layer sizes above, with valid (unpadded) 5x5 convolutions;
- S2/S4: the four inputs of a unit are added, multiplied by one trainable coefficient per
  map and shifted by one trainable bias per map (2 parameters per map);
- C3's partial connection table (Table I), implemented as a convolution over all six S2
  maps whose kernel is scattered from the 60 connected 5x5 kernels, so the absent
  connections are neither parameters nor ever non-zero;
- the squashing function f(a) = 1.7159 tanh(2a/3) (Appendix A) after every layer up to
  F6: C1, S2, C3, S4, C5, F6;
- initial weights uniform in [-2.4/F, 2.4/F], F the unit's fan-in (Appendix A); the paper
  does not say how biases start, they start at zero here.

Simplified or left out:

- the output layer is a plain Linear classifier (``head.fc``) instead of the paper's
  Euclidean RBF units with fixed 7x12 bitmap codes, so the usual cross-entropy applies
  (the paper trains with its MAP criterion);
- input normalisation (background -0.1, foreground 1.175) is left to preprocessing;
- F6 sees C5 through an adaptive average pool to 1x1, a no-op at 32x32 input that lets a
  larger input (whose C5 map is larger than 1x1, as the paper remarks) still classify.

``simplified=True`` builds the common textbook variant instead: C3 connected to all six
maps (16*(150+1) parameters), parameter-free 2x2 average pooling for S2/S4 (no activation
after it), and plain ``tanh``: 61,706 parameters.

Anatomy: no stem; stage 0 = C1, S2 (stride 2), stage 1 = C3, S4 (stride 4), stage 2 = C5
(stride 4; its valid 5x5 conv shrinks the map without a stride); the head holds F6
(``head.fc1``) and the classifier (``head.fc``). The convolutions are unpadded, so a
stage's map is smaller than input/stride. The smallest input is 32x32 (31 leaves C5 no
output).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..base import Network, fully_connected_head
from ..blocks import ConvNormAct
from ..registry import register_model

# Table I of the paper: row i marks ("X") the C3 feature maps that read S2 map i.
C3_TABLE = (
    # C3 map: 0123456789012345
    "X---XXX--XXXX-XX",  # S2 map 0
    "XX---XXX--XXXX-X",  # S2 map 1
    "XXX---XXX--X-XXX",  # S2 map 2
    "-XXX--XXXX--X-XX",  # S2 map 3
    "--XXX--XXXX-XX-X",  # S2 map 4
    "---XXX--XXXX-XXX",  # S2 map 5
)


class Layer(NamedTuple):
    name: str  # the paper's name, also the module's
    kind: str  # "conv", "table_conv" (C3 with Table I) or "subsample"
    out_chs: int
    kernel: int


# LeNet-5's feature layers, one tuple per stage.
LENET5 = (
    (Layer("c1", "conv", 6, 5), Layer("s2", "subsample", 6, 2)),
    (Layer("c3", "table_conv", 16, 5), Layer("s4", "subsample", 16, 2)),
    (Layer("c5", "conv", 120, 5),),
)
F6 = 84
MIN_INPUT_SIZE = 32


class ScaledTanh(nn.Module):
    """LeCun's squashing function f(a) = A tanh(S a) with A = 1.7159, S = 2/3 (Appendix A):
    f(1) = 1 and f(-1) = -1, and the gain is largest around the targets' range."""

    def __init__(self, amplitude: float = 1.7159, slope: float = 2 / 3) -> None:
        super().__init__()
        self.amplitude, self.slope = amplitude, slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.amplitude * torch.tanh(self.slope * x)

    def extra_repr(self) -> str:
        return f"amplitude={self.amplitude}, slope={self.slope:.4f}"


class Subsampling(nn.Module):
    """LeNet's trainable subsampling: the sum of each non-overlapping k x k window, times a
    trainable coefficient per map, plus a trainable bias per map (the squashing function
    follows as a separate module)."""

    def __init__(self, channels: int, kernel_size: int = 2) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The window's sum as its average times its area: exact for the paper's 2x2 (a power
        # of two). Not divisor_override=1, which torch's ONNX exporter (torch 2.14) drops,
        # exporting the average: onnxruntime's logits were off by the whole logit scale.
        x = F.avg_pool2d(x, self.kernel_size) * (self.kernel_size * self.kernel_size)
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, kernel_size={self.kernel_size}"


class TableConv2d(nn.Module):
    """A convolution where output map j reads only the input maps ``table[i][j]`` marks.

    Only the connected kernels are parameters: ``weight`` is (connections, k, k) and is
    scattered into a zero (out, in, k, k) kernel on each call, so gradients reach only the
    connected kernels and the parameter count is connections * k * k + out (biases).
    """

    def __init__(self, table: tuple[str, ...], kernel_size: int) -> None:
        super().__init__()
        self.in_channels, self.out_channels = len(table), len(table[0])
        self.kernel_size = (kernel_size, kernel_size)
        pairs = [
            (j, i)
            for j in range(self.out_channels)
            for i in range(self.in_channels)
            if table[i][j] == "X"
        ]
        self.pairs = pairs  # (output map, input map) of each connected kernel, in order
        out_idx, in_idx = zip(*pairs, strict=True)
        # Structure, not state: the table is part of the architecture, not of the checkpoint.
        self.register_buffer("out_idx", torch.tensor(out_idx), persistent=False)
        self.register_buffer("in_idx", torch.tensor(in_idx), persistent=False)
        self.weight = nn.Parameter(torch.empty(len(pairs), kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(self.out_channels))
        # Each output map's fan-in (3, 4 or 6 maps of k x k in C3), for LeCun's initialisation.
        self.fan_in = [
            sum(row[j] == "X" for row in table) * kernel_size**2 for j in range(self.out_channels)
        ]
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default conv initialisation, U(-1/sqrt(F), 1/sqrt(F)) for weights and
        biases, with F each output map's own fan-in."""
        with torch.no_grad():
            for k, (j, _) in enumerate(self.pairs):
                nn.init.uniform_(
                    self.weight[k], -1 / math.sqrt(self.fan_in[j]), 1 / math.sqrt(self.fan_in[j])
                )
            for j, fan_in in enumerate(self.fan_in):
                nn.init.uniform_(
                    self.bias[j : j + 1], -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in)
                )

    def full_weight(self) -> torch.Tensor:
        """The dense (out, in, k, k) kernel, zero where Table I has no connection."""
        w = self.weight.new_zeros((self.out_channels, self.in_channels) + self.kernel_size)
        return w.index_put((self.out_idx, self.in_idx), self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.full_weight(), self.bias)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"connections={self.weight.shape[0]}"
        )


class LeNet(Network):
    first_conv = "stages.0.c1.conv"

    def __init__(
        self,
        *,
        num_classes: int = 10,
        include_top: bool = True,
        pooling: str | None = "avg",
        in_chans: int = 1,
        drop_rate: float = 0.0,
        simplified: bool = False,
    ) -> None:
        super().__init__(in_chans=in_chans, min_input_size=MIN_INPUT_SIZE)
        act = nn.Tanh if simplified else ScaledTanh
        self.stem = nn.Identity()
        stages, channels, reductions = [], [], []
        in_chs, reduction = in_chans, 1
        for layers in LENET5:
            modules = OrderedDict()
            for layer in layers:
                if layer.kind == "subsample" and simplified:
                    modules[layer.name] = nn.Sequential(
                        OrderedDict(pool=nn.AvgPool2d(layer.kernel))
                    )
                    reduction *= layer.kernel
                elif layer.kind == "subsample":
                    modules[layer.name] = nn.Sequential(
                        OrderedDict(pool=Subsampling(layer.out_chs, layer.kernel), act=act())
                    )
                    reduction *= layer.kernel
                elif layer.kind == "table_conv" and not simplified:
                    modules[layer.name] = nn.Sequential(
                        OrderedDict(conv=TableConv2d(C3_TABLE, layer.kernel), act=act())
                    )
                else:
                    modules[layer.name] = ConvNormAct(
                        in_chs, layer.out_chs, layer.kernel, 1, 0, bias=True, norm=False, act=act
                    )
                in_chs = layer.out_chs
            stages.append(nn.Sequential(modules))
            channels.append(in_chs)
            reductions.append(reduction)
        self._set_stages(stages, channels, reductions)
        self.head = fully_connected_head(
            in_chs,
            1,
            (F6,),
            num_classes,
            include_top=include_top,
            pooling=pooling,
            drop_rate=drop_rate,
            act=act,
        )
        for m in self.modules():
            self._init_lecun(m)

    @staticmethod
    def _init_lecun(m: nn.Module) -> None:
        """Weights uniform in [-2.4/F, 2.4/F], F the fan-in (the paper's Appendix A)."""
        with torch.no_grad():
            if isinstance(m, TableConv2d):
                # Each C3 map has its own fan-in (3, 4 or 6 maps of 5x5).
                for k, (j, _) in enumerate(m.pairs):
                    nn.init.uniform_(m.weight[k], -2.4 / m.fan_in[j], 2.4 / m.fan_in[j])
                nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.Conv2d, nn.Linear)):
                bound = 2.4 / m.weight[0].numel()
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)
            elif isinstance(m, Subsampling):
                nn.init.uniform_(m.weight, -2.4 / m.kernel_size**2, 2.4 / m.kernel_size**2)
                nn.init.zeros_(m.bias)

    def init_classifier(self, fc: nn.Linear) -> None:
        self._init_lecun(fc)


def lenet5(**kwargs) -> LeNet:
    return LeNet(**kwargs)


register_model(
    "lenet5",
    lenet5,
    family="lenet",
    input_size=32,
    min_input_size=MIN_INPUT_SIZE,
    paper=(
        "LeCun, Bottou, Bengio and Haffner, Gradient-Based Learning Applied to Document "
        "Recognition, Proc. IEEE 1998"
    ),
    # LeNet-5 reads 32x32 grey digits into 10 classes; create_model uses these unless given.
    num_classes=10,
    in_chans=1,
)

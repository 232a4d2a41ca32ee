"""U-Net (Ronneberger, Fischer and Brox, 2015, "U-Net: Convolutional Networks for Biomedical
Image Segmentation"), and U-Net with any registered network as its encoder.

``unet``: the paper's network. A contracting path of five levels (64, 128, 256, 512, 1024
channels), each two 3x3 conv-ReLU, 2x2 max-pools between them; an expanding path of four
2x2 up-convolutions, each followed by the concatenated skip and two 3x3 convs; a 1x1 conv
to the classes. ``padding="valid"`` is the paper's (572x572 in, 388x388 out);
``padding="same"`` (the default) keeps the input size.

``unet_<name>`` (``unet_resnet34``, ``unet_efficientnet_lite0``, ... any registered model):
that network's ``stem`` and ``stages`` are the encoder, loadable with its ImageNet weights
(``encoder_weights="imagenet"``), and the decoder takes a skip at every stride that
``feature_info`` declares, then doubles up to the input's resolution; the logits are
resized to the input's size where the encoder's strides do not divide it.

Anatomy, read for a dense-prediction network: ``stem`` and ``stages`` are the encoder (the
paper's first level is stage 0, at stride 1, and the stem is empty), so freezing below
stage k and layer-wise learning rates work as for a classifier. ``forward_features(x)``
returns the list of every stage's map (the skips and the bottom), shallowest first;
``forward_head(features, pre_logits=False)`` is the decoder and the 1x1 classifier
``head.fc`` (``pre_logits=True``: the decoder's last map). Output: (N, classes, H, W).
"""

# No ``from __future__ import annotations``: torch.fx records forward's annotations in its
# graph, and TorchScript cannot read them back as strings (scripting the graph of
# torchvision's create_feature_extractor failed with "Unknown type name '_torch_Tensor_'").
from collections import OrderedDict
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..base import Network
from ..blocks import DoubleConv, NormLayer, UNetDecoder
from ..errors import NetsError, UnknownModelError
from ..factory import create_model
from ..registry import ModelSpec, get_spec, register_derived, register_model

PAPER = (
    "Ronneberger, Fischer and Brox, U-Net: Convolutional Networks for Biomedical Image "
    "Segmentation, MICCAI 2015"
)
WIDTHS = (64, 128, 256, 512, 1024)  # the paper's five levels
VALID_MIN_INPUT = 188
NUM_CLASSES = 2  # the paper's (cell / background); the trainer passes the data's


class UNetHead(nn.Module):
    """The decoder, then the 1x1 classifier ``fc`` (``include_top=False``: none)."""

    def __init__(self, decoder: UNetDecoder, num_classes: int, include_top: bool) -> None:
        super().__init__()
        self.decoder = decoder
        self.num_features = decoder.out_chs
        self.fc = nn.Conv2d(decoder.out_chs, num_classes, 1) if include_top else nn.Identity()

    def forward(self, features: list[torch.Tensor], pre_logits: bool = False) -> torch.Tensor:
        x = self.decoder(features)
        return x if pre_logits else self.fc(x)

    def reset(self, num_classes: int) -> None:
        self.fc = nn.Conv2d(self.num_features, num_classes, 1) if num_classes else nn.Identity()


class UNet(Network):
    """An encoder's ``stem`` and ``stages`` with a ``UNetDecoder`` head.

    Built with ``encoder=None``, the paper's contracting path of ``widths`` (``norm`` adds
    BatchNorm to every conv); with an encoder (a ``Network``), that network's stem and
    stages, shared, not copied. ``resize_to_input`` resizes the logits (bilinear) to the
    input's height and width, for encoders whose strides need not divide it. ``norm_layer``
    replaces the BatchNorm that ``norm`` adds (given alone, it turns ``norm`` on).
    """

    first_conv = "stages.0.convs.conv1.conv"

    def __init__(
        self,
        encoder: Network | None = None,
        *,
        num_classes: int = NUM_CLASSES,
        in_chans: int = 3,
        include_top: bool = True,
        pooling: str | None = None,  # noqa: ARG002 (a dense map is not pooled)
        widths: Sequence[int] = WIDTHS,
        decoder_channels: Sequence[int] | None = None,
        upsample: str = "transpose",
        padding: str = "same",
        norm: bool | None = None,
        norm_layer: NormLayer | None = None,
        resize_to_input: bool | None = None,
    ) -> None:
        if norm is False and norm_layer is not None:
            raise ValueError("norm_layer replaces the BatchNorm of norm=True, not norm=False")
        if encoder is None:
            super().__init__(in_chans=in_chans)
            norm = bool(norm) or norm_layer is not None
            self.stem = nn.Identity()
            stages: list[nn.Module] = []
            for level, width in enumerate(widths):
                convs = DoubleConv(
                    widths[level - 1] if level else in_chans,
                    width,
                    padding=padding,
                    norm=norm,
                    norm_layer=norm_layer,
                )
                # The paper's max-pool starts each lower level (2x2/2: halves the map).
                parts = [("pool", nn.MaxPool2d(2))] if level else []
                stages.append(nn.Sequential(OrderedDict([*parts, ("convs", convs)])))
            self._set_stages(stages, widths, [2**k for k in range(len(widths))])
            if decoder_channels is None:
                decoder_channels = tuple(reversed(widths[:-1]))
            resize = False if resize_to_input is None else resize_to_input
        else:
            super().__init__(in_chans=encoder.in_chans, min_input_size=encoder.min_input_size)
            norm = True if norm is None else norm
            self.stem, self.stages = encoder.stem, encoder.stages
            # How the encoder runs its stages (NASNet's cells pass two maps along).
            self._encoder_type = type(encoder)
            self.feature_info = list(encoder.feature_info)
            self.first_conv = encoder.first_conv
            resize = padding == "same" if resize_to_input is None else resize_to_input
        decoder = UNetDecoder(
            [f.channels for f in self.feature_info],
            [f.reduction for f in self.feature_info],
            decoder_channels,
            upsample=upsample,
            padding=padding,
            norm=norm,
            norm_layer=norm_layer,
        )
        self.head = UNetHead(decoder, num_classes, include_top)
        self.resize_to_input = resize
        self.padding = padding
        # Unpadded convs eat 4 pixels per level: 188 is the smallest input that leaves
        # every map of both paths at least 4 pixels (and gives 4x4 out).
        self._valid_min_input = VALID_MIN_INPUT if padding == "valid" else 0

    @property
    def min_input_size(self) -> int:
        # create_model sets the registered minimum; this keeps the larger one.
        return max(self._min_input_size, getattr(self, "_valid_min_input", 0))

    @min_input_size.setter
    def min_input_size(self, value: int) -> None:
        self._min_input_size = value

    @property
    def num_features(self) -> int:
        """Channels of the decoder's last map, what the 1x1 classifier reads."""
        return self.head.num_features

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:  # type: ignore[override]
        self.check_input(x)
        if torch.jit.is_scripting():
            # TorchScript compiles no generator: the stages one after the other (an encoder
            # whose stages pass two maps along, NASNet's, does not script).
            features = []
            x = self.stem(x)
            for stage in self.stages:
                x = stage(x)
                features.append(x)
            return features
        return list(self.stage_outputs(x))  # shallowest first; the last is the bottom of the U

    def stage_outputs(self, x: torch.Tensor) -> Iterator[torch.Tensor]:
        encoder_type = getattr(self, "_encoder_type", Network)
        return encoder_type.stage_outputs(self, x)  # it reads only self.stem and self.stages

    def forward_head(  # type: ignore[override]
        self, features: list[torch.Tensor], pre_logits: bool = False
    ) -> torch.Tensor:
        return self.head(features, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.forward_head(self.forward_features(x))  # (N, classes, h, w)
        if self.resize_to_input:
            out = F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return out  # (N, classes, H, W)

    def get_classifier(self) -> nn.Module:
        return self.head.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        if global_pool is not None:
            raise NetsError(f"{self.arch} classifies every pixel: it has no pooling to set")
        self.head.reset(num_classes)


def unet(**kwargs) -> UNet:
    return UNet(**kwargs)


def unet_with_encoder(
    encoder: str,
    *,
    encoder_weights: str | None = None,
    in_chans: int = 3,
    include_top: bool = True,
    pooling: str | None = None,
    num_classes: int = NUM_CLASSES,
    norm_layer: NormLayer | None = None,
    **kwargs,
) -> UNet:
    """U-Net on the registered network ``encoder`` (its classifier dropped; with
    ``encoder_weights``, its pretrained stem and stages loaded strictly). ``norm_layer``
    goes to the encoder and the decoder alike."""
    # Only when given: an encoder without BatchNorm (AlexNet) takes no norm_layer.
    options = {} if norm_layer is None else dict(norm_layer=norm_layer)
    backbone = create_model(
        encoder,
        weights=encoder_weights,
        include_top=False,
        pooling=None,
        in_chans=in_chans,
        **options,
    )
    model = UNet(
        backbone, num_classes=num_classes, include_top=include_top, norm_layer=norm_layer, **kwargs
    )
    # What the encoder was (or would be) trained on is what the U-Net's input should be.
    cfg = backbone.pretrained_cfg
    model.pretrained_cfg = cfg.replace(
        preprocessing_from=f"the encoder's: {cfg.preprocessing_from}"
    )
    return model


def _unet_spec(name: str, encoder: str) -> ModelSpec:
    spec = get_spec(encoder)
    if spec.family == "unet":
        raise UnknownModelError(f"unknown model {name!r}: a U-Net cannot be a U-Net's encoder")
    return ModelSpec(
        name,
        "unet",
        lambda **kw: unet_with_encoder(encoder, **kw),
        {"num_classes": NUM_CLASSES, "in_chans": spec.kwargs.get("in_chans", 3)},
        spec.input_size,
        spec.min_input_size,
        f"{PAPER}; encoder: {spec.paper}",
    )


register_model(
    "unet",
    unet,
    family="unet",
    input_size=572,
    min_input_size=16,  # four 2x2 pools leave a 1x1 bottom
    paper=PAPER,
    num_classes=NUM_CLASSES,
)
register_derived("unet_", _unet_spec)

"""Conditional multi-scale patch discriminator (pix2pixHD, Wang et al. 2018, Sec. 3.2; SPADE,
Park et al. 2019, with spectral norm and instance norm).

Each scale is a PatchGAN (Isola et al. 2017): a 4x4 stride-2 conv with leaky ReLU, then
``num_layers - 1`` 4x4 convs (stride 2 except the last), each normalised, widths doubling up to
``max_width``, then a 4x4 conv to one logit per patch. Scale k sees the input average-pooled k
times (3x3, stride 2). The condition (label map, edges, ...) is concatenated to the image:
``D(image, condition)``. Every scale returns all its intermediate features, logits last, so the
same call feeds the GAN loss and discriminator feature matching
(:func:`~lightning_modules.layers.losses.feature_matching_loss`). Convs followed by instance
norm have no bias (the norm removes it). CoCosNet (Zhang et al. 2020) pads by 1 instead of 2 and
puts a self-attention layer before the last normalised conv (``padding=1, attention=True``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lightning_modules.layers.spade import SelfAttention
from lightning_modules.layers.spectral import conv2d

NORMS = ("instance", "none")


def _conv(in_channels: int, out_channels: int, stride: int, spectral_norm: bool,
          padding: int, bias: bool = True) -> nn.Conv2d:
    return conv2d(in_channels, out_channels, 4, stride, padding, bias, spectral_norm=spectral_norm)


class PatchDiscriminator(nn.Module):
    """One scale; ``forward`` returns ``[feature_1, ..., feature_n, logits]`` (with
    ``attention``, the layer before the last normalised conv attends over its input; the
    features returned are the layers' own outputs)."""

    def __init__(self, in_channels: int, width: int = 64, num_layers: int = 4,
                 max_width: int = 512, norm: str = "instance", spectral_norm: bool = True,
                 padding: int = 2, attention: bool = False) -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm '{norm}' is not one of {NORMS}")
        layers = [nn.Sequential(nn.Conv2d(in_channels, width, 4, 2, padding=padding),
                                nn.LeakyReLU(0.2))]
        channels = width
        for index in range(1, num_layers):
            out = min(channels * 2, max_width)
            stride = 1 if index == num_layers - 1 else 2
            if attention and index == num_layers - 1:
                self.attention = SelfAttention(channels, spectral_norm)
            block = [_conv(channels, out, stride, spectral_norm, padding, bias=norm == "none")]
            if norm == "instance":
                block.append(nn.InstanceNorm2d(out, affine=False))
            layers.append(nn.Sequential(*block, nn.LeakyReLU(0.2)))
            channels = out
        layers.append(nn.Sequential(nn.Conv2d(channels, 1, 4, 1, padding=padding)))
        self.layers = nn.ModuleList(layers)
        self.attention_index = num_layers - 1 if attention else -1

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for index, layer in enumerate(self.layers):
            if index == self.attention_index:
                x = self.attention(x)
            x = layer(x)
            outputs.append(x)
        return outputs


class MultiScalePatchDiscriminator(nn.Module):
    """``D(images, condition)`` -> one list per scale (finest first): intermediate features,
    then the logits map.

    Args:
        image_channels: channels of the judged images.
        condition_channels: channels of the condition concatenated to them (0: unconditional).
        num_scales: discriminators, each on the input average-pooled once more.
        width / num_layers / max_width / norm / spectral_norm / padding / attention: of every
            scale's PatchGAN (``padding`` 2: pix2pixHD and SPADE; 1: CoCosNet).
    """

    def __init__(self, image_channels: int = 3, condition_channels: int = 0,
                 num_scales: int = 2, width: int = 64, num_layers: int = 4,
                 max_width: int = 512, norm: str = "instance", spectral_norm: bool = True,
                 padding: int = 2, attention: bool = False) -> None:
        super().__init__()
        self.condition_channels = condition_channels
        self.scales = nn.ModuleList(
            PatchDiscriminator(image_channels + condition_channels, width, num_layers,
                               max_width, norm, spectral_norm, padding, attention)
            for _ in range(num_scales))

    def forward(self, images: torch.Tensor, condition: torch.Tensor | None = None
                ) -> list[list[torch.Tensor]]:
        if (condition is None) != (self.condition_channels == 0):
            raise ValueError(f"this discriminator takes a condition of "
                             f"{self.condition_channels} channels; got "
                             f"{'none' if condition is None else condition.shape[1]}")
        x = images if condition is None else torch.cat([images, condition], dim=1)
        outputs = []
        for index, scale in enumerate(self.scales):
            if index:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            outputs.append(scale(x))
        return outputs

"""Adaptive convolutions (Chandran et al., "Adaptive Convolutions for Structure-Aware Style
Transfer", CVPR 2021, Sec. 3.1-3.2) and the AdaIN statistics transfer (Huang & Belongie 2017).

AdaConv predicts, per sample, from a style tensor ``W`` (``s_d x s_h x s_w``):

* depthwise spatial kernels ``c_out x c_in / n_groups x k x k`` (a conv of ``W``),
* pointwise kernels ``c_out x c_out / n_groups x 1 x 1`` and biases ``c_out`` (from ``W``
  average-pooled to ``s_d x 1 x 1``),

and applies them to the instance-normalised input: grouped spatial conv, grouped pointwise
conv, bias. The whole batch runs as **one grouped convolution** (the batch folded into the
groups) instead of a loop over samples. The block then applies its own fixed, learned conv.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def adain(content: torch.Tensor, style: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """AdaIN (Huang & Belongie 2017, Eq. 8): ``sigma(s) * (c - mu(c)) / sigma(c) + mu(s)`` with
    per-channel spatial statistics, ``sigma = sqrt(unbiased variance + eps)`` as the reference
    code computes it."""
    c_mean, c_std = _stats(content, eps)
    s_mean, s_std = _stats(style, eps)
    return (content - c_mean) / c_std * s_std + s_mean


def _stats(x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    flat = x.flatten(2)
    mean = flat.mean(dim=2)[:, :, None, None]
    std = (flat.var(dim=2) + eps).sqrt()[:, :, None, None]
    return mean, std


class KernelPredictor(nn.Module):
    """``W`` (``B x s_d x s_h x s_w``) -> (spatial ``B x c_out x c_in/g x k x k``, pointwise
    ``B x c_out x c_out/g x 1 x 1``, bias ``B x c_out``).

    The spatial kernels come from a conv of ``W`` whose output is ``k x k`` (``s_h = s_w = k``
    with a same-padded ``k x k`` conv); pointwise kernels and biases from ``W`` pooled to
    ``s_d x 1 x 1`` through 1x1 convs."""

    def __init__(self, style_channels: int, in_channels: int, out_channels: int,
                 n_groups: int, kernel_size: int = 3) -> None:
        super().__init__()
        if in_channels % n_groups or out_channels % n_groups:
            raise ValueError(f"channels {in_channels} -> {out_channels} are not divisible into "
                             f"{n_groups} groups")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.n_groups, self.kernel_size = n_groups, kernel_size
        self.spatial = nn.Conv2d(style_channels, out_channels * in_channels // n_groups,
                                 kernel_size, padding=kernel_size // 2, padding_mode="reflect")
        self.pointwise = nn.Conv2d(style_channels, out_channels * out_channels // n_groups, 1)
        self.bias = nn.Conv2d(style_channels, out_channels, 1)

    def forward(self, style: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch, k = style.shape[0], self.kernel_size
        if style.shape[2:] != (k, k):
            style_spatial = F.adaptive_avg_pool2d(style, k)
        else:
            style_spatial = style
        spatial = self.spatial(style_spatial).reshape(
            batch, self.out_channels, self.in_channels // self.n_groups, k, k)
        pooled = style.mean(dim=(2, 3), keepdim=True)
        pointwise = self.pointwise(pooled).reshape(
            batch, self.out_channels, self.out_channels // self.n_groups, 1, 1)
        return spatial, pointwise, self.bias(pooled).flatten(1)


def adaptive_conv(x: torch.Tensor, spatial: torch.Tensor, pointwise: torch.Tensor,
                  bias: torch.Tensor, n_groups: int) -> torch.Tensor:
    """Per-sample kernels applied to ``x`` (already normalised) as one grouped convolution: the
    batch is folded into the channels and the groups (``B * n_groups`` groups)."""
    batch, channels, height, width = x.shape
    out_channels, k = spatial.shape[1], spatial.shape[-1]
    folded = x.reshape(1, batch * channels, height, width)
    padding = k // 2
    if padding:
        folded = F.pad(folded, (padding,) * 4, mode="reflect")
    y = F.conv2d(folded, spatial.reshape(batch * out_channels, *spatial.shape[2:]),
                 groups=batch * n_groups)
    y = F.conv2d(y, pointwise.reshape(batch * out_channels, *pointwise.shape[2:]),
                 bias.reshape(-1), groups=batch * n_groups)
    return y.reshape(batch, out_channels, height, width)


class AdaConv2d(nn.Module):
    """AdaConv followed by the block's fixed conv (Sec. 3.2):
    ``conv(adaptive_conv(instance_norm(x); kernels(W)))``.

    Args:
        in_channels / out_channels: of the block; the adaptive part keeps ``in_channels``.
        style_channels: ``s_d`` of the style tensor ``W``.
        n_groups: groups of the adaptive depthwise / pointwise convs.
        kernel_size: of the predicted spatial kernels and of the fixed conv.
    """

    def __init__(self, in_channels: int, out_channels: int, style_channels: int,
                 n_groups: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.n_groups = n_groups
        self.predictor = KernelPredictor(style_channels, in_channels, in_channels, n_groups,
                                         kernel_size)
        self.norm = nn.InstanceNorm2d(in_channels, affine=False)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size,
                              padding=kernel_size // 2, padding_mode="reflect")

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        spatial, pointwise, bias = self.predictor(style)
        return self.conv(adaptive_conv(self.norm(x), spatial, pointwise, bias, self.n_groups))


class StyleAdaConv(nn.Module):
    """AdaConv driven by a 1-D style vector ``w`` (the StyleGAN2 variant, Sec. 4): a linear
    map turns ``w`` into the style tensor ``W`` (``style_channels x k x k``), whose predicted
    depthwise / pointwise kernels and biases act on the instance-normalised input, followed by
    the layer's fixed conv; ``upsample`` doubles the resolution first (nearest neighbour).
    ``forward(x, w)``, a drop-in for :class:`~lightning_modules.layers.modulation.
    ModulatedConv2d` in a :class:`~lightning_modules.layers.stylegan2.StyledConv`."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, style_dim: int,
                 upsample: bool = False, style_channels: int = 64, n_groups: int | None = None
                 ) -> None:
        super().__init__()
        self.upsample, self.style_channels, self.kernel_size = upsample, style_channels, \
            kernel_size
        self.to_style = nn.Linear(style_dim, style_channels * kernel_size ** 2)
        self.adaconv = AdaConv2d(in_channels, out_channels, style_channels,
                                 n_groups or in_channels, kernel_size)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        k = self.kernel_size
        style = self.to_style(w).reshape(-1, self.style_channels, k, k)
        return self.adaconv(x, style)


def adaconv_factory(style_channels: int = 64, group_size: int = 1):
    """A :data:`~lightning_modules.layers.stylegan2.ConvFactory` of :class:`StyleAdaConv`:
    ``n_groups = in_channels / group_size`` (1: depthwise, as the paper's finest scales)."""

    def make(in_channels: int, out_channels: int, kernel_size: int, style_dim: int,
             upsample: bool = False, blur_taps=None) -> StyleAdaConv:
        return StyleAdaConv(in_channels, out_channels, kernel_size, style_dim, upsample,
                            style_channels, max(1, in_channels // group_size))

    return make

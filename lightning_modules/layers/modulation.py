"""Modulation layers: how a style or condition steers a feature map.

* :class:`ModulatedConv2d` - StyleGAN2 weight modulation / demodulation (Karras et al. 2020,
  Eq. 1-3), computed as input scaling, one shared convolution and output scaling.
* :class:`AdaIN` - adaptive instance normalisation (Huang & Belongie 2017, Eq. 8).
* :class:`FiLM` - feature-wise affine modulation (Perez et al. 2018, Eq. 1-2).
* :class:`SFT` - spatial feature transform (Wang et al. 2018, Eq. 3).
* :class:`SPADE` - spatially-adaptive normalisation (Park et al. 2019, Eq. 1), with positional
  normalisation (:func:`positional_norm`, Li et al. 2019) as CoCosNet uses it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lightning_modules.layers.ops import Blur, EqualLinear


class ModulatedConv2d(nn.Module):
    """Convolution whose weights are scaled per input channel by a style, then (optionally)
    demodulated so each output channel has unit expected variance:

    ``w'_ijk = s_i * w_ijk``, ``w''_ijk = w'_ijk / sqrt(sum_ik w'_ijk^2 + eps)``.

    ``upsample`` runs a stride-2 transposed convolution followed by a FIR blur; ``downsample``
    blurs first and convolves with stride 2. The style affine is initialised with bias 1.

    ``style_on_input=True`` is the Swapping Autoencoder variant (its official code's
    ``new_demodulation``): the input is scaled by the style, normalised to unit RMS over channels
    when demodulating, and convolved with one weight demodulated on its own,
    ``w''_ijk = w_ijk / sqrt(sum_ik w_ijk^2 + eps)``, shared by the whole batch.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, style_dim: int,
                 demodulate: bool = True, upsample: bool = False, downsample: bool = False,
                 blur_taps: Sequence[float] = (1, 3, 3, 1), eps: float = 1e-8,
                 style_on_input: bool = False) -> None:
        super().__init__()
        if upsample and downsample:
            raise ValueError("ModulatedConv2d cannot both upsample and downsample")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.demodulate, self.eps = kernel_size, demodulate, eps
        self.upsample, self.downsample = upsample, downsample
        self.style_on_input = style_on_input
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size,
                                               kernel_size))
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size**2)
        self.affine = EqualLinear(style_dim, in_channels, bias_init=1.0)
        factor = 2
        if upsample:
            p = (len(blur_taps) - factor) - (kernel_size - 1)
            self.blur = Blur(blur_taps, ((p + 1) // 2 + factor - 1, p // 2 + 1), factor)
        elif downsample:
            p = (len(blur_taps) - factor) + (kernel_size - 1)
            self.blur = Blur(blur_taps, ((p + 1) // 2, p // 2))

    def demodulation(self, scales: torch.Tensor) -> torch.Tensor:
        """``B x out`` factors ``1 / sqrt(sum_ik (s_i w_ijk)^2 + eps)`` for input scales
        ``B x in`` (the style times the equalised-lr scale): ``(s^2) (sum_k w^2)^T``."""
        return torch.rsqrt(scales.pow(2) @ self.weight.pow(2).sum(dim=(2, 3)).t() + self.eps)

    def forward_style_on_input(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        scales = self.affine(style)
        if self.demodulate:
            scales = scales * torch.rsqrt(scales.pow(2).mean(dim=1, keepdim=True) + self.eps)
        x = x * scales[:, :, None, None]
        weight = self.weight * self.scale
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.pow(2).sum(dim=(1, 2, 3), keepdim=True)
                                          + self.eps)
        if self.upsample:
            return self.blur(F.conv_transpose2d(x, weight.transpose(0, 1), stride=2))
        if self.downsample:
            return F.conv2d(self.blur(x), weight, stride=2)
        return F.conv2d(x, weight, padding=self.kernel_size // 2)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """The input scaled per channel, one convolution with the shared weight, the output
        scaled by the demodulation: equal to convolving each sample with its own modulated
        weight, without materialising (or saving for backward) ``B x out x in x k x k`` weights
        (NVlabs' non-fused path; for the path-length penalty's double backward most of all)."""
        if self.style_on_input:
            return self.forward_style_on_input(x, style)
        scales = self.affine(style) * self.scale  # B x in
        x = x * scales[:, :, None, None]
        if self.upsample:
            out = F.conv_transpose2d(x, self.weight.transpose(0, 1), stride=2)
        elif self.downsample:
            out = F.conv2d(self.blur(x), self.weight, stride=2)
        else:
            out = F.conv2d(x, self.weight, padding=self.kernel_size // 2)
        if self.demodulate:
            out = out * self.demodulation(scales)[:, :, None, None]
        return self.blur(out) if self.upsample else out

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, {self.kernel_size}, "
                f"demodulate={self.demodulate}, upsample={self.upsample}, "
                f"downsample={self.downsample}")


def instance_stats(x: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample, per-channel mean and standard deviation over the spatial dimensions."""
    mean = x.mean(dim=(2, 3), keepdim=True)
    std = (x.var(dim=(2, 3), keepdim=True, unbiased=False) + eps).sqrt()
    return mean, std


class AdaIN(nn.Module):
    """``AdaIN(x, s) = gamma(s) * (x - mu(x)) / sigma(x) + beta(s)`` with gamma and beta from an
    affine map of the style (gamma initialised around 1)."""

    def __init__(self, channels: int, style_dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.affine = EqualLinear(style_dim, 2 * channels)
        self.affine.bias.data[:channels] = 1.0
        self.eps = eps

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.affine(style)[:, :, None, None].chunk(2, dim=1)
        mean, std = instance_stats(x, self.eps)
        return gamma * (x - mean) / std + beta


class FiLM(nn.Module):
    """``FiLM(x, c) = gamma(c) * x + beta(c)``, per channel, from a conditioning vector."""

    def __init__(self, channels: int, condition_dim: int) -> None:
        super().__init__()
        self.affine = nn.Linear(condition_dim, 2 * channels)
        nn.init.zeros_(self.affine.weight)
        with torch.no_grad():
            self.affine.bias.copy_(torch.cat([torch.ones(channels), torch.zeros(channels)]))

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.affine(condition)[:, :, None, None].chunk(2, dim=1)
        return gamma * x + beta


def _condition_net(in_channels: int, hidden: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, hidden, 3, padding=1), nn.LeakyReLU(0.1),
                         nn.Conv2d(hidden, out_channels, 3, padding=1))


class SFT(nn.Module):
    """Spatial feature transform: ``SFT(x | c) = gamma(c) * x + beta(c)`` with gamma and beta
    predicted *per pixel* from condition maps ``c`` (resized to ``x``). Like the SFT-GAN code,
    the network predicts ``gamma - 1`` so that a zero output is the identity."""

    def __init__(self, channels: int, condition_channels: int, hidden: int = 64) -> None:
        super().__init__()
        self.gamma_net = _condition_net(condition_channels, hidden, channels)
        self.beta_net = _condition_net(condition_channels, hidden, channels)

    def modulation(self, condition: torch.Tensor, size: tuple[int, int]
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        condition = F.interpolate(condition, size=size, mode="bilinear", align_corners=False)
        return 1.0 + self.gamma_net(condition), self.beta_net(condition)

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.modulation(condition, x.shape[2:])
        return gamma * x + beta


def positional_norm(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Positional normalisation (PONO, Li et al. 2019): every position's features minus their
    mean over channels, divided by ``sqrt(unbiased variance over channels + eps)`` (CoCosNet's
    parameter-free norm inside SPADE)."""
    return (x - x.mean(dim=1, keepdim=True)) / (x.var(dim=1, keepdim=True) + eps).sqrt()


class PositionalNorm2d(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return positional_norm(x)


SPADE_NORMS = ("instance", "batch", "positional")


class ChannelSubsetConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose input may hold only some of its input channels: ``forward(x,
    channels)`` convolves ``x`` (``len(channels)`` channels) with those weight columns
    (:func:`drop_zero_constant_channels`); ``channels=None`` is the plain convolution."""

    def forward(self, x: torch.Tensor, channels: torch.Tensor | None = None) -> torch.Tensor:
        weight = self.weight if channels is None else self.weight.index_select(1, channels)
        return self._conv_forward(x, weight, self.bias)


class SPADE(nn.Module):
    """``SPADE(x, m) = norm(x) * (1 + gamma(m)) + beta(m)``: parameter-free normalisation
    (``instance``, ``batch`` or ``positional``, the latter CoCosNet's PONO) modulated per pixel
    by maps predicted from the segmentation ``m`` (nearest-resized to ``x``) through a shared
    conv + ReLU trunk; ``padding_mode="reflect"`` pads the 3x3 convs by reflection (CoCosNet)."""

    def __init__(self, channels: int, label_channels: int, hidden: int = 128,
                 norm: str = "instance", padding_mode: str = "zeros") -> None:
        super().__init__()
        if norm == "instance":
            self.norm: nn.Module = nn.InstanceNorm2d(channels, affine=False)
        elif norm == "batch":
            self.norm = nn.BatchNorm2d(channels, affine=False)
        elif norm == "positional":
            self.norm = PositionalNorm2d()
        else:
            raise ValueError(f"norm must be one of {SPADE_NORMS}, got '{norm}'")

        def conv(cin: int, cout: int, kind: type[nn.Conv2d] = nn.Conv2d) -> nn.Conv2d:
            return kind(cin, cout, 3, padding=1, padding_mode=padding_mode)

        self.shared = nn.Sequential(conv(label_channels, hidden, ChannelSubsetConv2d), nn.ReLU())
        self.gamma = conv(hidden, channels)
        self.beta = conv(hidden, channels)

    def modulation(self, segmentation: torch.Tensor, size: tuple[int, int],
                   channels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``channels``: the segmentation holds only these channels of the one the trunk was
        built for (:func:`drop_zero_constant_channels`); the others were zero."""
        segmentation = F.interpolate(segmentation, size=size, mode="nearest")
        features = self.shared[1](self.shared[0](segmentation, channels))
        return self.gamma(features), self.beta(features)

    def forward(self, x: torch.Tensor, segmentation: torch.Tensor,
                channels: torch.Tensor | None = None) -> torch.Tensor:
        gamma, beta = self.modulation(segmentation, x.shape[2:], channels)
        return self.norm(x) * (1.0 + gamma) + beta


def drop_zero_constant_channels(condition: torch.Tensor, constant_from: int
                                ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(condition[:, kept], kept)``: every channel before ``constant_from``, and those from it
    on that are non-zero somewhere in the batch. For condition maps whose channels from
    ``constant_from`` on are constants (a one-hot label map: no gradient flows into them), a
    convolution over the kept channels with the matching weight columns equals the full one,
    values and gradients, since a zero channel adds nothing to the output or to the weight's
    gradient; its cost follows the classes present (ADE20k images average about ten of its
    151) instead of all."""
    constant = condition[:, constant_from:].detach()
    present = constant.transpose(0, 1).reshape(constant.shape[1], -1).ne(0).any(dim=1)
    kept = torch.cat([torch.arange(constant_from, device=condition.device),
                      constant_from + present.nonzero().flatten()])
    return condition.index_select(1, kept), kept

"""Low-level StyleGAN2 operations in pure PyTorch (no custom CUDA builds).

* :func:`upfirdn2d`: upsample by zero insertion, pad (negative pads crop), FIR filter (a true
  convolution), downsample by keeping every ``down``-th sample (Karras et al. 2020, App. B).
* Equalized learning rate (Karras et al. 2018, Sec. 4.1): weights are stored as N(0, 1) / lr_mul
  and scaled by ``lr_mul / sqrt(fan_in)`` at run time.
* Bias + leaky ReLU (slope 0.2) with gain sqrt(2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)


def _pads(pad: Sequence[int]) -> tuple[int, int, int, int]:
    """(x0, x1, y0, y1) from (p0, p1) (same on both axes) or (x0, x1, y0, y1)."""
    if len(pad) == 2:
        return pad[0], pad[1], pad[0], pad[1]
    if len(pad) == 4:
        return tuple(pad)  # type: ignore[return-value]
    raise ValueError(f"pad must have 2 or 4 entries, got {pad}")


def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: int = 1, down: int = 1,
              pad: Sequence[int] = (0, 0)) -> torch.Tensor:
    """Upsample, pad, FIR-filter and downsample the NCHW tensor ``x``.

    ``kernel`` is 2-D (``kh x kw``) or 1-D; a 1-D kernel ``k`` means the separable filter
    ``outer(k, k)`` and runs as two 1-D passes. The kernel is applied as a convolution (flipped),
    so asymmetric kernels match the reference definition. ``pad`` is ``(p0, p1)`` on both axes or
    ``(x0, x1, y0, y1)``; negative entries crop.
    """
    x0, x1, y0, y1 = _pads(pad)
    batch, channels, height, width = x.shape
    if up > 1:  # zero insertion: each sample followed by up-1 zeros on both axes
        x = x.reshape(batch, channels, height, 1, width, 1)
        x = F.pad(x, (0, up - 1, 0, 0, 0, up - 1))
        x = x.reshape(batch, channels, height * up, width * up)
    if x0 == x1 >= 0 and y0 == y1 >= 0:  # the convolution pads (no padded copy of x)
        conv_pad_y, conv_pad_x = y0, x0
    else:
        conv_pad_y = conv_pad_x = 0
        x = F.pad(x, (max(x0, 0), max(x1, 0), max(y0, 0), max(y1, 0)))
        if min(x0, x1, y0, y1) < 0:
            x = x[:, :, max(-y0, 0): x.shape[2] - max(-y1, 0),
                  max(-x0, 0): x.shape[3] - max(-x1, 0)]
    kernel = kernel.to(x.dtype)
    if kernel.dim() == 1:
        taps = kernel.flip(0)
        horizontal = taps.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
        vertical = taps.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
        x = F.conv2d(x, horizontal, stride=(1, down), padding=(0, conv_pad_x), groups=channels)
        return F.conv2d(x, vertical, stride=(down, 1), padding=(conv_pad_y, 0), groups=channels)
    weight = kernel.flip(0, 1)[None, None].expand(channels, 1, -1, -1)
    return F.conv2d(x, weight, stride=down, padding=(conv_pad_y, conv_pad_x), groups=channels)


def make_kernel(taps: Sequence[float], separable: bool = False) -> torch.Tensor:
    """Normalised FIR kernel from 1-D taps: ``outer(k, k) / sum`` (2-D), or ``k / sum(k)`` when
    ``separable`` (then ``upfirdn2d`` applies it on both axes, the same filter)."""
    k = torch.as_tensor(taps, dtype=torch.float32)
    if k.dim() == 1 and not separable:
        k = k[None, :] * k[:, None]
    return k / k.sum()


class Blur(nn.Module):
    """FIR low-pass filter with padding; ``upsample_factor`` f scales the kernel by f**2 to keep
    the signal's gain after zero insertion. ``reflect`` pads by reflection instead of zeros.
    The kernel is a non-persistent buffer; a one-tap kernel without padding is skipped."""

    def __init__(self, taps: Sequence[float], pad: Sequence[int], upsample_factor: int = 1,
                 reflect: bool = False) -> None:
        super().__init__()
        self.register_buffer("kernel", make_kernel(taps) * upsample_factor**2, persistent=False)
        self.pad, self.reflect = tuple(pad), reflect
        self.identity = len(taps) == 1 and upsample_factor == 1 and not any(self.pad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.identity:  # the one-tap kernel [1] (anti-aliasing off)
            return x
        if self.reflect:
            p0, p1 = self.pad
            return upfirdn2d(F.pad(x, (p0, p1, p0, p1), mode="reflect"), self.kernel)
        return upfirdn2d(x, self.kernel, pad=self.pad)


class Upsample2x(nn.Module):
    """2x upsampling with a FIR filter (the to-RGB skip path of StyleGAN2)."""

    def __init__(self, taps: Sequence[float] = (1, 3, 3, 1), factor: int = 2) -> None:
        super().__init__()
        self.factor = factor
        self.register_buffer("kernel", make_kernel(taps) * factor**2, persistent=False)
        p = len(taps) - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)


class Downsample2x(nn.Module):
    """2x downsampling with a FIR filter."""

    def __init__(self, taps: Sequence[float] = (1, 3, 3, 1), factor: int = 2) -> None:
        super().__init__()
        self.factor = factor
        self.register_buffer("kernel", make_kernel(taps), persistent=False)
        p = len(taps) - factor
        self.pad = ((p + 1) // 2, p // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, down=self.factor, pad=self.pad)


class _ScaledLeakyGrad(torch.autograd.Function):
    """The gradient of the scaled leaky ReLU as a map of the incoming gradient ``g``:
    ``g * gain`` where ``out > 0``, else ``g * gain * slope`` (the mask from the saved output;
    ``gain > 0`` keeps the sign). The map is linear in ``g``, so its backward is the same map;
    ``gain_first`` orders the products as autograd's chain over the separate ops does at each
    order (first: gain then slope; second: slope then gain), keeping results bitwise equal."""

    generate_vmap_rule = True  # torch.func transforms (vmap, grad) work through it

    @staticmethod
    def forward(grad: torch.Tensor, out: torch.Tensor, slope: float, gain: float,
                gain_first: bool) -> torch.Tensor:
        # aten's leaky_relu_backward is ``where(out > 0, g, g * slope)`` in one pass
        if gain_first:
            return torch.ops.aten.leaky_relu_backward(grad * gain, out, slope, True)
        return torch.ops.aten.leaky_relu_backward(grad, out, slope, True).mul_(gain)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        _, out, ctx.slope, ctx.gain, ctx.gain_first = inputs
        ctx.save_for_backward(out)

    @staticmethod
    def backward(ctx, grad_grad: torch.Tensor):
        (out,) = ctx.saved_tensors
        return (_ScaledLeakyGrad.apply(grad_grad, out, ctx.slope, ctx.gain, not ctx.gain_first),
                None, None, None, None)


class _FusedBiasLeakyReLU(torch.autograd.Function):
    """Forward ``leaky_relu(x + bias) * gain`` keeping only the output for backward (autograd
    of the three separate ops keeps two activation-sized tensors alive per layer: the leaky
    ReLU's input and the next layer's input). Twice differentiable, as R1 needs, and bitwise
    the values and gradients of the separate ops."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor, bias: torch.Tensor | None, slope: float, gain: float
                ) -> torch.Tensor:
        out = x + bias.view(1, -1, *([1] * (x.dim() - 2))) if bias is not None else x.clone()
        return F.leaky_relu_(out, slope).mul_(gain)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        _, bias, ctx.slope, ctx.gain = inputs
        ctx.has_bias = bias is not None
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (out,) = ctx.saved_tensors
        grad_x = _ScaledLeakyGrad.apply(grad, out, ctx.slope, ctx.gain, True)
        grad_bias = None
        if ctx.has_bias and ctx.needs_input_grad[1]:
            grad_bias = grad_x.sum(dim=[d for d in range(grad_x.dim()) if d != 1])
        return grad_x, grad_bias, None, None


def bias_leaky_relu(x: torch.Tensor, bias: torch.Tensor | None = None,
                    negative_slope: float = LRELU_SLOPE, gain: float = LRELU_GAIN
                    ) -> torch.Tensor:
    """``leaky_relu(x + bias) * gain`` with the bias broadcast over dimension 1; one fused
    autograd node that saves only its output (NVlabs' ``bias_act`` idea, written for CPU and
    GPU alike)."""
    if gain <= 0:
        raise ValueError(f"bias_leaky_relu needs gain > 0, got {gain}")
    return _FusedBiasLeakyReLU.apply(x, bias, negative_slope, gain)


class BiasLeakyReLU(nn.Module):
    """Learned per-channel bias followed by leaky ReLU with gain sqrt(2)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return bias_leaky_relu(x, self.bias)


class EqualLinear(nn.Module):
    """Linear layer with equalized learning rate; ``activation=True`` fuses bias + leaky ReLU."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 bias_init: float = 0.0, lr_mul: float = 1.0, activation: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init))) if bias else None
        self.scale = lr_mul / math.sqrt(in_features)
        self.lr_mul, self.activation = lr_mul, activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias * self.lr_mul
        in_features = self.weight.shape[1]
        if x.numel() < in_features * in_features:
            # fewer rows than input features: scaling the output, (x W^T) s, costs less than
            # scaling the weight, x (W s)^T, forward and backward; equal up to float rounding
            y = F.linear(x, self.weight) * self.scale
            if self.activation:
                return bias_leaky_relu(y, bias)
            return y if bias is None else y + bias
        weight = self.weight * self.scale
        if self.activation:
            return bias_leaky_relu(F.linear(x, weight), bias)
        return F.linear(x, weight, bias)

    def extra_repr(self) -> str:
        out_features, in_features = self.weight.shape
        return f"{in_features}, {out_features}, lr_mul={self.lr_mul}, act={self.activation}"


class EqualConv2d(nn.Module):
    """Conv2d with equalized learning rate."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size,
                                               kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size**2)
        self.stride, self.padding = stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, self.stride, self.padding)

    def extra_repr(self) -> str:
        out_channels, in_channels, k, _ = self.weight.shape
        return f"{in_channels}, {out_channels}, {k}, stride={self.stride}, padding={self.padding}"


class PixelNorm(nn.Module):
    """Normalise each feature vector to unit RMS (Karras et al. 2018, Sec. 4.2)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)

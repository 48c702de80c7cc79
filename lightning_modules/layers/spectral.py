"""Spectral normalisation of convolutions (Miyato et al., ICLR 2018, Sec. 2.1 and Algorithm 1),
computed where it is cheapest.

:class:`SpectralNormConv2d` holds what ``torch.nn.utils.spectral_norm`` holds (``weight_orig``,
``weight_u``, ``weight_v``: the same state-dict keys, the same random ``u`` / ``v`` drawn in the
same order, one power iteration per training forward) and computes the same function
``conv(x, W / sigma) + b`` with ``sigma = u^T W v``. Convolution is linear in its weight, so
``conv(x, W / sigma) = conv(x, W) / sigma``: where the weight has more elements than the output
(the wide, low-resolution layers of SPADE generators and CoCosNet's correspondence), the output
is divided instead of the weight. That removes the weight-sized division forward and its
weight-sized gradient terms backward, and keeps no normalised copy of the weight for backward.
Results equal the weight-divided form to float rounding.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn


class SpectralNormConv2d(nn.Conv2d):
    """``nn.Conv2d`` with spectral norm on its weight; same arguments as ``nn.Conv2d``.

    The weight is initialised by ``nn.Conv2d`` and ``u``, ``v`` drawn afterwards, as
    ``nn.utils.spectral_norm(nn.Conv2d(...))`` does, so seeded models are unchanged.
    """

    def __init__(self, *args, eps: float = 1e-12, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        weight = self._parameters.pop("weight")
        with torch.no_grad():
            rows, columns = weight.flatten(1).shape
            u = F.normalize(weight.new_empty(rows).normal_(0, 1), dim=0, eps=eps)
            v = F.normalize(weight.new_empty(columns).normal_(0, 1), dim=0, eps=eps)
        self.weight_orig = weight
        self.register_buffer("weight_u", u)
        self.register_buffer("weight_v", v)
        self.eps = eps
        #: set by :func:`~lightning_modules.layers.checkpointing.checkpointed`: the sigma its
        #: forward pass computed, used again when the block is recomputed
        self.fixed_sigma: torch.Tensor | None = None

    def sigma(self) -> torch.Tensor:
        """``u^T W v``; in training, after one power iteration that updates ``u`` and ``v`` in
        place (the update survives DataParallel replicas, as torch's does)."""
        matrix = self.weight_orig.flatten(1)
        u, v = self.weight_u, self.weight_v
        if self.training:
            with torch.no_grad():
                v = F.normalize(torch.mv(matrix.t(), u), dim=0, eps=self.eps, out=v)
                u = F.normalize(torch.mv(matrix, v), dim=0, eps=self.eps, out=u)
            # clones: a second forward before backward (D(real), D(fake)) updates the buffers
            u = u.clone(memory_format=torch.contiguous_format)
            v = v.clone(memory_format=torch.contiguous_format)
        return torch.dot(u, torch.mv(matrix, v))

    def output_numel(self, x: torch.Tensor) -> int:
        size = 1
        for side, kernel, stride, padding, dilation in zip(
                x.shape[2:], self.kernel_size, self.stride, self.padding, self.dilation,
                strict=True):
            size *= (side + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
        return x.shape[0] * self.out_channels * size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sigma = self.sigma() if self.fixed_sigma is None else self.fixed_sigma
        if isinstance(self.padding, str) or self.weight_orig.numel() <= self.output_numel(x):
            return self._conv_forward(x, self.weight_orig / sigma, self.bias)
        out = self._conv_forward(x, self.weight_orig, None) / sigma
        return out if self.bias is None else out + self.bias.view(1, -1, 1, 1)


def spectral_norm_convs(module: nn.Module) -> list[SpectralNormConv2d]:
    """Every :class:`SpectralNormConv2d` in ``module`` (itself included)."""
    return [m for m in module.modules() if isinstance(m, SpectralNormConv2d)]


@contextmanager
def power_iteration_paused(module: nn.Module) -> Iterator[None]:
    """Spectral-norm convs in ``module`` use their current ``u`` / ``v`` without a power
    iteration: a second call then normalises by the sigma of the first, as if both inputs had
    been one batch (what SPADE-style code does by concatenating fake and real)."""
    convs = [conv for conv in spectral_norm_convs(module) if conv.training]
    for conv in convs:
        conv.training = False
    try:
        yield
    finally:
        for conv in convs:
            conv.training = True


def conv2d(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
           padding: int = 0, bias: bool = True, padding_mode: str = "zeros",
           spectral_norm: bool = False) -> nn.Conv2d:
    """An ``nn.Conv2d``, or a :class:`SpectralNormConv2d` with ``spectral_norm``."""
    cls = SpectralNormConv2d if spectral_norm else nn.Conv2d
    return cls(in_channels, out_channels, kernel_size, stride, padding, bias=bias,
               padding_mode=padding_mode)

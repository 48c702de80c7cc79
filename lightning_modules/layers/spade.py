"""Blocks of SPADE generators (Park et al., CVPR 2019, Sec. 3 and Fig. 4) and the self-attention
they use (SAGAN, Zhang et al. 2019, Sec. 3; the BigGAN layout with 2x max-pooled keys).

* :class:`SPADEResBlock`: ``shortcut(x) + conv_1(act(norm_1(conv_0(act(norm_0(x, m))), m)))``,
  a learned 1x1 shortcut ``conv_s(norm_s(x, m))`` where the width changes, leaky ReLU 0.2,
  spectral norm on every conv (optional), middle width ``min(in, out)``.
* :class:`SelfAttention`: ``x + gain * o(g beta^T)`` with ``beta = softmax(theta^T phi)`` over
  the 2x max-pooled positions; ``theta``, ``phi`` at 1/8 of the width, ``g`` at 1/2.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lightning_modules.layers.modulation import SPADE
from lightning_modules.layers.spectral import conv2d


class SPADEResBlock(nn.Module):
    """Residual block with SPADE before each conv; ``forward(x, segmentation)``.

    Args:
        in_channels / out_channels: of the block.
        label_channels: channels of the segmentation (or any condition map) of every SPADE.
        hidden: width of SPADE's shared trunk (128 in SPADE and CoCosNet).
        norm: SPADE's parameter-free norm (``instance``, ``batch``, ``positional``).
        padding_mode: of every 3x3 conv (CoCosNet: ``reflect``).
        spectral_norm: on the block's own convs (not on SPADE's).
    """

    def __init__(self, in_channels: int, out_channels: int, label_channels: int,
                 hidden: int = 128, norm: str = "instance", padding_mode: str = "zeros",
                 spectral_norm: bool = True) -> None:
        super().__init__()
        middle = min(in_channels, out_channels)

        def spade(channels: int) -> SPADE:
            return SPADE(channels, label_channels, hidden, norm, padding_mode)

        def conv(cin: int, cout: int) -> nn.Module:
            return conv2d(cin, cout, 3, padding=1, padding_mode=padding_mode,
                          spectral_norm=spectral_norm)

        self.norm_0, self.conv_0 = spade(in_channels), conv(in_channels, middle)
        self.norm_1, self.conv_1 = spade(middle), conv(middle, out_channels)
        self.learned_shortcut = in_channels != out_channels
        if self.learned_shortcut:
            self.norm_s = spade(in_channels)
            self.conv_s = conv2d(in_channels, out_channels, 1, bias=False,
                                 spectral_norm=spectral_norm)

    def forward(self, x: torch.Tensor, segmentation: torch.Tensor,
                channels: torch.Tensor | None = None) -> torch.Tensor:
        """``channels``: see :meth:`~lightning_modules.layers.modulation.SPADE.modulation`."""
        shortcut = (self.conv_s(self.norm_s(x, segmentation, channels))
                    if self.learned_shortcut else x)
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, segmentation, channels), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, segmentation, channels), 0.2))
        return shortcut + dx


class SelfAttention(nn.Module):
    """SAGAN self-attention, ``x + gain * o``; ``gain`` starts at 0 (the block starts as the
    identity). Spatial sizes must be even (keys and values are 2x max-pooled)."""

    def __init__(self, channels: int, spectral_norm: bool = True) -> None:
        super().__init__()
        self.channels = channels

        def conv(cin: int, cout: int) -> nn.Module:
            return conv2d(cin, cout, 1, bias=False, spectral_norm=spectral_norm)

        self.theta, self.phi = conv(channels, channels // 8), conv(channels, channels // 8)
        self.g, self.o = conv(channels, channels // 2), conv(channels // 2, channels)
        self.gamma = nn.Parameter(torch.tensor(0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = x.shape
        query = self.theta(x).flatten(2)                      # B x C/8 x N
        key = F.max_pool2d(self.phi(x), 2).flatten(2)          # B x C/8 x N/4
        value = F.max_pool2d(self.g(x), 2).flatten(2)          # B x C/2 x N/4
        attention = torch.softmax(query.transpose(1, 2) @ key, dim=-1)   # B x N x N/4
        # attention @ value^T, not value @ attention^T: the backward pass then gets the
        # N x N/4 gradient contiguous (no transposed copy of the largest tensor, and a
        # contiguous softmax backward)
        attended = (attention @ value.transpose(1, 2)).transpose(1, 2)       # B x C/2 x N
        attended = attended.reshape(batch, -1, height, width)
        return x + self.gamma * self.o(attended)

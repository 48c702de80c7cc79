"""Exponential moving average of network weights with the half-life measured in images seen
(NVlabs stylegan2-ada semantics: ``beta = 0.5 ** (batch / half_life_images)``, the half-life
optionally ramped up as ``min(half_life, images_seen * rampup)``)."""

from __future__ import annotations

import torch
from torch import nn


def ema_beta(batch_images: int, images_seen: int, half_life_kimg: float,
             rampup: float | None = None) -> float:
    """Decay for one update after ``batch_images`` more images (all ranks together)."""
    half_life = half_life_kimg * 1000.0
    if rampup is not None:
        half_life = min(half_life, images_seen * rampup)
    return 0.5 ** (batch_images / max(half_life, 1e-8))


@torch.no_grad()
def update_ema(ema: nn.Module, source: nn.Module, beta: float) -> None:
    """``ema = beta * ema + (1 - beta) * source`` for parameters; buffers are copied."""
    ema_parameters, parameters = list(ema.parameters()), list(source.parameters())
    torch._foreach_lerp_(ema_parameters, [p.detach() for p in parameters], 1.0 - beta)
    for ema_buffer, buffer in zip(ema.buffers(), source.buffers(), strict=True):
        ema_buffer.copy_(buffer)

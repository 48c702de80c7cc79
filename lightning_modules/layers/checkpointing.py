"""Activation checkpointing (Chen et al. 2016, "Training Deep Nets with Sublinear Memory Cost")
for blocks with spectral-norm convolutions.

:func:`checkpointed` runs a block keeping only its inputs for the backward pass, which runs the
block's forward again to get what it needs. A spectral-norm conv's power iteration changes
``u`` and ``v`` on every training forward, and another call of the same block (CoCosNet runs
its exemplar adaptor on the exemplar and on the ground truth) changes them again before the
backward pass. So each conv's ``sigma`` is computed once, outside the checkpointed function,
and handed to the recomputation as an input: values, gradients and the ``u`` / ``v`` buffers
are the ones of the plain forward pass.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from lightning_modules.layers.spectral import SpectralNormConv2d, spectral_norm_convs


@contextmanager
def _fixed_sigmas(convs: Sequence[SpectralNormConv2d], sigmas: Sequence[torch.Tensor]
                  ) -> Iterator[None]:
    for conv, sigma in zip(convs, sigmas, strict=True):
        conv.fixed_sigma = sigma
    try:
        yield
    finally:
        for conv in convs:
            conv.fixed_sigma = None


def checkpointed(block: nn.Module, *inputs: torch.Tensor) -> torch.Tensor:
    """``block(*inputs)``, its activations recomputed in the backward pass instead of kept
    (without gradients enabled, a plain call)."""
    if not torch.is_grad_enabled():
        return block(*inputs)
    convs = spectral_norm_convs(block)
    sigmas = [conv.sigma() for conv in convs]  # the one power iteration of this call

    def run(*arguments: torch.Tensor) -> torch.Tensor:
        with _fixed_sigmas(convs, arguments[len(inputs):]):
            return block(*arguments[:len(inputs)])

    return checkpoint(run, *inputs, *sigmas, use_reentrant=False)


def maybe_checkpointed(enabled: bool, block: nn.Module, *inputs: torch.Tensor) -> torch.Tensor:
    """:func:`checkpointed` when ``enabled``, else ``block(*inputs)``."""
    return checkpointed(block, *inputs) if enabled else block(*inputs)

"""GAN losses and regularizers as small pure functions (plus the path-length state).

* non-saturating logistic loss (Goodfellow et al. 2014, Sec. 3): D minimises
  ``softplus(-D(x)) + softplus(D(G(z)))``, G minimises ``softplus(-D(G(z)))``;
* R1 penalty (Mescheder et al. 2018, Eq. 9): ``E ||grad_x D(x)||^2`` on real data, used as
  ``gamma / 2 * R1``;
* path-length regularization (Karras et al. 2020, Eq. 4):
  ``E (||J_w^T y||_2 - a)^2`` with ``y ~ N(0, I) / sqrt(H W)`` and ``a`` a running mean.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def d_logistic_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator non-saturating loss: mean softplus(-real) + mean softplus(fake)."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def g_nonsaturating_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator non-saturating loss: mean softplus(-D(G(z)))."""
    return F.softplus(-fake_logits).mean()


def r1_penalty(real_logits: torch.Tensor, real_images: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``||d sum(D(x)) / dx_i||^2``; ``real_images`` must require grad.
    The graph is kept (``create_graph``) so the penalty can be back-propagated into D."""
    (gradients,) = torch.autograd.grad(real_logits.sum(), real_images, create_graph=True)
    return gradients.pow(2).flatten(1).sum(dim=1).mean()


def path_lengths(images: torch.Tensor, ws: torch.Tensor, projection: torch.Tensor
                 ) -> torch.Tensor:
    """Per-sample ``sqrt(mean_layers ||J_w^T y||^2)`` for ``ws`` (``B x L x D``) and a random
    image-space projection ``projection`` (``N(0, 1)`` scaled by ``1 / sqrt(H W)``)."""
    (gradients,) = torch.autograd.grad((images * projection).sum(), ws, create_graph=True)
    return gradients.pow(2).sum(dim=2).mean(dim=1).sqrt()


def path_projection(images: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """``N(0, 1)`` noise shaped like ``images``, scaled by ``1 / sqrt(H W)``."""
    return noise / math.sqrt(images.shape[2] * images.shape[3])


class PathLengthPenalty(nn.Module):
    """Path-length penalty with its exponential running mean ``a`` (a checkpointed buffer).

    Under DDP the batch mean that updates ``a`` is averaged over ranks, so every rank keeps the
    same ``a`` and the result matches one process with the whole batch.
    """

    def __init__(self, decay: float = 0.01) -> None:
        super().__init__()
        self.decay = decay
        self.register_buffer("mean", torch.zeros(()))

    def forward(self, images: torch.Tensor, ws: torch.Tensor, noise: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """(penalty, per-sample path lengths); updates the running mean."""
        lengths = path_lengths(images, ws, path_projection(images, noise))
        batch_mean = lengths.detach().mean()
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(batch_mean)
            batch_mean /= dist.get_world_size()
        new_mean = self.mean + self.decay * (batch_mean - self.mean)
        self.mean.copy_(new_mean)
        return (lengths - new_mean).pow(2).mean(), lengths

"""GAN losses and regularizers as small pure functions (plus the path-length state).

* non-saturating logistic loss (Goodfellow et al. 2014, Sec. 3): D minimises
  ``softplus(-D(x)) + softplus(D(G(z)))``, G minimises ``softplus(-D(G(z)))``;
* R1 penalty (Mescheder et al. 2018, Eq. 9): ``E ||grad_x D(x)||^2`` on real data, used as
  ``gamma / 2 * R1``;
* path-length regularization (Karras et al. 2020, Eq. 4):
  ``E (||J_w^T y||_2 - a)^2`` with ``y ~ N(0, I) / sqrt(H W)`` and ``a`` a running mean;
* hinge loss (Lim & Ye 2017; SPADE, Park et al. 2019): D minimises
  ``relu(1 - D(x)) + relu(1 + D(G(z)))``, G minimises ``-D(G(z))``;
* discriminator feature matching (pix2pixHD, Wang et al. 2018, Eq. 4): L1 between D's
  intermediate features of generated and real images, summed over layers and scales, divided by
  the number of discriminators (scales).

Multi-scale discriminators return one list per scale: its intermediate features, then its
logits last (:class:`~lightning_modules.layers.discriminators.MultiScalePatchDiscriminator`).
The GAN losses accept such lists and average over scales.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

#: logits, or one list per discriminator scale whose last entry is that scale's logits
Logits = torch.Tensor | Sequence[Sequence[torch.Tensor]]
#: loss -> its detached value, backpropagated at once (GANModule.backward_now)
Spend = Callable[[torch.Tensor], torch.Tensor]


def spender(spend: Spend | None) -> Spend:
    """``spend``, or the identity when a loss is computed outside a training phase (its terms
    then keep their graphs and are summed before one backward)."""
    return spend or (lambda loss: loss)


def per_scale(loss: Callable[[torch.Tensor], torch.Tensor], logits: Logits) -> torch.Tensor:
    """``loss`` of plain logits, or its mean over the scales of a multi-scale output."""
    if torch.is_tensor(logits):
        return loss(logits)
    return sum(loss(scale[-1]) for scale in logits) / len(logits)


def logistic_real_loss(logits: Logits) -> torch.Tensor:
    """Logits that should say "real": mean softplus(-x)."""
    return per_scale(lambda x: F.softplus(-x).mean(), logits)


def logistic_fake_loss(logits: Logits) -> torch.Tensor:
    """Logits that should say "fake": mean softplus(x)."""
    return per_scale(lambda x: F.softplus(x).mean(), logits)


def d_logistic_loss(real_logits: Logits, fake_logits: Logits) -> torch.Tensor:
    """Discriminator non-saturating loss: mean softplus(-real) + mean softplus(fake)."""
    return logistic_real_loss(real_logits) + logistic_fake_loss(fake_logits)


def g_nonsaturating_loss(fake_logits: Logits) -> torch.Tensor:
    """Generator non-saturating loss: mean softplus(-D(G(z)))."""
    return logistic_real_loss(fake_logits)


def d_hinge_loss(real_logits: Logits, fake_logits: Logits) -> torch.Tensor:
    """Discriminator hinge loss: mean relu(1 - real) + mean relu(1 + fake)."""
    return per_scale(lambda x: F.relu(1 - x).mean(), real_logits) + \
        per_scale(lambda x: F.relu(1 + x).mean(), fake_logits)


def g_hinge_loss(fake_logits: Logits) -> torch.Tensor:
    """Generator hinge loss: -mean D(G(z))."""
    return per_scale(lambda x: -x.mean(), fake_logits)


def feature_matching_loss(fake_outputs: Sequence[Sequence[torch.Tensor]],
                          real_outputs: Sequence[Sequence[torch.Tensor]]) -> torch.Tensor:
    """``sum_scales sum_layers mean|D_l(fake) - D_l(real)| / num_scales`` over every
    intermediate feature (the logits, each list's last entry, are left out); real features are
    constants."""
    total = 0
    for fake_scale, real_scale in zip(fake_outputs, real_outputs, strict=True):
        for fake, real in zip(fake_scale[:-1], real_scale[:-1], strict=True):
            total = total + F.l1_loss(fake, real.detach())
    return total / len(fake_outputs)


def squared_gradient_norms(outputs: torch.Tensor, inputs: Sequence[torch.Tensor]
                           ) -> list[torch.Tensor]:
    """``||d sum(outputs) / d input_b||^2`` per sample ``b`` of each input (inputs must require
    grad); the graph is kept (``create_graph``) so a penalty can be back-propagated."""
    gradients = torch.autograd.grad(outputs.sum(), list(inputs), create_graph=True)
    return [gradient.pow(2).flatten(1).sum(dim=1) for gradient in gradients]


def r1_penalty(real_logits: torch.Tensor, real_images: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``||d sum(D(x)) / dx_i||^2``; ``real_images`` must require grad.
    The graph is kept (``create_graph``) so the penalty can be back-propagated into D."""
    return squared_gradient_norms(real_logits, [real_images])[0].mean()


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

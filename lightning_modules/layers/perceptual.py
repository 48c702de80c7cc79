"""Losses on frozen feature networks (:mod:`lightning_modules.pretrained`), by layer name.

Each function takes ``{tap: features}`` dicts, so a module computes an image's features once and
feeds several losses; :class:`PerceptualLoss` wraps a network and its layer weights.

* perceptual / VGG feature-matching loss (Johnson et al. 2016; pix2pixHD, Wang et al. 2018):
  ``sum_l w_l * d(f_l(x), f_l(y))`` with ``d`` the mean L1 or mean squared error;
* style moment loss (AdaIN, Huang & Belongie 2017, Eq. 12):
  ``sum_l ||mu(f_l(x)) - mu(f_l(s))||^2 + ||sigma(f_l(x)) - sigma(f_l(s))||^2`` as mean squared
  errors over channels (as the AdaIN reference code), summed or averaged over layers;
* Gram-matrix style loss (Gatys et al. 2016, Eq. 3-5): ``G = F F^T / (C H W)``, mean squared
  error between Gram matrices, weighted per layer;
* contextual loss (Mechrez et al., ECCV 2018, Eq. 1-5): see :func:`contextual_loss`.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

Features = Mapping[str, torch.Tensor]
DISTANCES = ("l1", "mse")


def feature_distance(output: torch.Tensor, target: torch.Tensor, distance: str) -> torch.Tensor:
    if distance == "l1":
        return F.l1_loss(output, target)
    if distance == "mse":
        return F.mse_loss(output, target)
    raise ValueError(f"distance '{distance}' is not one of {DISTANCES}")


def perceptual_loss(output: Features, target: Features, layer_weights: Mapping[str, float],
                    distance: str = "l1") -> torch.Tensor:
    """``sum_l w_l * d(f_l(output), f_l(target))``; target features are constants."""
    return sum(weight * feature_distance(output[layer], target[layer].detach(), distance)
               for layer, weight in layer_weights.items())


def mean_std(features: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample, per-channel mean and ``sqrt(unbiased variance + eps)`` over space."""
    flat = features.flatten(2)
    return flat.mean(dim=2), (flat.var(dim=2) + eps).sqrt()


def style_moment_loss(output: Features, style: Features, layers: list[str],
                      reduction: str = "sum") -> torch.Tensor:
    """AdaIN's style loss: MSE of channel means plus MSE of channel stds, per layer, summed
    (``reduction="sum"``, AdaIN and RElbers' AdaConv) or averaged (``"mean"``) over layers."""
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' or 'mean', got '{reduction}'")
    total = 0
    for layer in layers:
        mean_out, std_out = mean_std(output[layer])
        mean_style, std_style = mean_std(style[layer].detach())
        total = total + F.mse_loss(mean_out, mean_style) + F.mse_loss(std_out, std_style)
    return total / len(layers) if reduction == "mean" else total


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """``F F^T / (C H W)`` per sample: ``B x C x C``."""
    batch, channels = features.shape[:2]
    flat = features.reshape(batch, channels, -1)
    return flat @ flat.transpose(1, 2) / flat[0].numel()


def gram_loss(output: Features, style: Features, layer_weights: Mapping[str, float]
              ) -> torch.Tensor:
    """``sum_l w_l * MSE(G(f_l(output)), G(f_l(style)))``."""
    return sum(weight * F.mse_loss(gram_matrix(output[layer]),
                                   gram_matrix(style[layer].detach()))
               for layer, weight in layer_weights.items())


def contextual_loss(output: torch.Tensor, target: torch.Tensor, bandwidth: float = 0.1,
                    centering: str | None = "position", match: str = "target",
                    eps: float = 1e-5) -> torch.Tensor:
    """Contextual loss (Mechrez et al. 2018) of ``B x C x H x W`` features, per sample.

    1. centre both feature sets by the target's mean: over channels at each position
       (``"position"``, CoCosNet's choice) or over positions for each channel (``"channel"``,
       the paper's), or not at all (None);
    2. cosine distances ``d_ij`` between every output position i and target position j;
    3. relative distances ``d_ij / (min_k d_ik + eps)``;
    4. affinities ``w_ij = exp((1 - d~_ij) / bandwidth)``, normalised over j;
    5. ``match="target"`` (the paper): ``CX = mean_j max_i A_ij``, every target feature finds
       an output feature; ``match="output"`` (CoCosNet's ``ContextualLoss_forward``, with
       ``eps=1e-3``): ``CX = mean_i max_j A_ij``. The loss is ``-log CX``.
    Returns a ``B`` vector."""
    if match not in ("target", "output"):
        raise ValueError(f"match must be 'target' or 'output', got '{match}'")
    if centering == "position":
        mean = target.mean(dim=1, keepdim=True)
    elif centering == "channel":
        mean = target.mean(dim=(2, 3), keepdim=True)
    elif centering is None:
        mean = 0
    else:
        raise ValueError(f"centering must be 'position', 'channel' or None, got '{centering}'")
    output, target = output - mean, target - mean
    output = F.normalize(output.flatten(2), dim=1, eps=1e-10)   # B x C x N
    target = F.normalize(target.flatten(2), dim=1, eps=1e-10)
    distances = 1 - output.transpose(1, 2) @ target            # B x N_out x N_target
    relative = distances / (distances.min(dim=2, keepdim=True).values + eps)
    affinity = torch.softmax((1 - relative) / bandwidth, dim=2)
    best = affinity.max(dim=1 if match == "target" else 2).values
    return -torch.log(best.mean(dim=1))


class PerceptualLoss(nn.Module):
    """``loss(output, target)``: :func:`perceptual_loss` on a frozen feature network's taps
    (images in [-1, 1]); gradients reach ``output`` only."""

    def __init__(self, network: nn.Module, layer_weights: Mapping[str, float],
                 distance: str = "l1") -> None:
        super().__init__()
        if distance not in DISTANCES:
            raise ValueError(f"distance '{distance}' is not one of {DISTANCES}")
        self.network, self.layer_weights, self.distance = network, dict(layer_weights), distance

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        taps = list(self.layer_weights)
        with torch.no_grad():
            target_features = self.network(target, taps)
        return perceptual_loss(self.network(output, taps), target_features, self.layer_weights,
                               self.distance)

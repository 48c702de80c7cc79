"""CoCosNet's loss terms (Zhang et al., CVPR 2020, Sec. 3.3), as the official code computes them
(``Pix2PixModel.compute_generator_loss``). Each is a pure function; the module weights them.

* VGG feature matching to the ground truth on self-reference samples (Eq. 10's
  ``L_perc``-like term, ``fm``): ``sum_l w_l mean(|phi_l(x) - phi_l(y)| * s_b)`` with layer
  weights 1/32 ... 1 over relu1_2 ... relu5_2 and sample weights ``s_b = self_b / (sum self +
  1e-5)`` (only self-reference samples have a ground truth);
* contextual loss to the exemplar (Eq. 9): ``8 CX(relu5_2) + 4 CX(relu4_2) + 2 CX(pool(relu3_2))``
  with CoCosNet's "forward" contextual loss (each output feature's best exemplar match);
* warped-mask loss (``warp_mask_losstype direct``): negative log-likelihood of the input's label
  under the exemplar's one-hot map warped by the correspondence, at 1/4 resolution, ignoring
  class 0 and classes the exemplar does not contain;
* warp-self: ``mean(|warped exemplar - y| * s_b)``; warp-cycle: L1 between the warp-cycled
  exemplar and the exemplar pooled to the correspondence resolution (Eq. 6).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

from lightning_modules.layers.perceptual import contextual_loss

#: VGG-19 taps of the feature-matching loss and their weights (official ``weights``)
FEATURE_MATCHING_LAYERS = {"relu1_2": 1 / 32, "relu2_2": 1 / 16, "relu3_2": 1 / 8,
                           "relu4_2": 1 / 4, "relu5_2": 1.0}
#: taps of the contextual loss: (weight, average pooling factor)
CONTEXTUAL_LAYERS = {"relu5_2": (8.0, 1), "relu4_2": (4.0, 1), "relu3_2": (2.0, 2)}
VGG_TAPS = list(FEATURE_MATCHING_LAYERS)


def self_reference_weights(is_self: torch.Tensor) -> torch.Tensor:
    """``self_b / (sum_b self_b + 1e-5)`` as a ``B x 1 x 1 x 1`` tensor."""
    is_self = is_self.float()
    return (is_self / (is_self.sum() + 1e-5)).reshape(-1, 1, 1, 1)


def weighted_l1(output: torch.Tensor, target: torch.Tensor, weights: torch.Tensor
                ) -> torch.Tensor:
    """``mean(|output - target| * weights)`` (weights broadcast per sample)."""
    return ((output - target).abs() * weights).mean()


def vgg_feature_matching(fake: Mapping[str, torch.Tensor], real: Mapping[str, torch.Tensor],
                         weights: torch.Tensor,
                         layer_weights: Mapping[str, float] = FEATURE_MATCHING_LAYERS
                         ) -> torch.Tensor:
    return sum(w * weighted_l1(fake[layer], real[layer].detach(), weights)
               for layer, w in layer_weights.items())


def exemplar_contextual_loss(fake: Mapping[str, torch.Tensor],
                             exemplar: Mapping[str, torch.Tensor],
                             layers: Mapping[str, tuple[float, int]] = CONTEXTUAL_LAYERS,
                             bandwidth: float = 0.1) -> torch.Tensor:
    total = 0
    for layer, (weight, pool) in layers.items():
        output, target = fake[layer], exemplar[layer].detach()
        if pool > 1:
            output, target = F.avg_pool2d(output, pool), F.avg_pool2d(target, pool)
        total = total + weight * contextual_loss(output, target, bandwidth, "position",
                                                 match="output", eps=1e-3).mean()
    return total


def warped_mask_loss(warped_label: torch.Tensor, label: torch.Tensor,
                     exemplar_label: torch.Tensor) -> torch.Tensor:
    """``sum(w * -log(p + 1e-10)) / (sum w + 1e-5)`` where ``p`` is the warped exemplar
    one-hot map (``B x C x h x w``) at the input's class, the label maps (``B x H x W``
    int) are nearest-resized to ``h x w``, and ``w`` is 0 on class 0 and on input classes
    absent from the exemplar."""
    size = warped_label.shape[2:]

    def resized(labels: torch.Tensor) -> torch.Tensor:
        return F.interpolate(labels[:, None].float(), size=size, mode="nearest")[:, 0].long()

    target, reference = resized(label), resized(exemplar_label)
    classes = warped_label.shape[1]
    present = F.one_hot(reference.flatten(1), classes).amax(dim=1)          # B x C
    weights = present.gather(1, target.flatten(1)).reshape_as(target).float()
    weights = weights * (target != 0)
    nll = -torch.log(warped_label + 1e-10).gather(1, target[:, None])[:, 0]
    return (nll * weights).sum() / (weights.sum() + 1e-5)

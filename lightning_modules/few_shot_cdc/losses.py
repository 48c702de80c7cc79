"""Few-shot adaptation via cross-domain correspondence (Ojha et al., CVPR 2021): the loss object
owns every phase (NVlabs' layout).

- Cross-domain distance consistency (Sec. 3.1, Eq. 2-3): for N latents, the source and target
  generators' features of one styled conv (chosen at random per anchor row, never the 4x4 map)
  give, per anchor i, cosine similarities to the other N-1 samples; softmax over them gives
  ``P_source`` and ``P_target``; the loss is ``KL(P_source || P_target)`` averaged over all
  N(N-1) entries (PyTorch's ``KLDivLoss`` default, as the official code), weighted by lambda.
  Both generators get the same latents; their noise maps are drawn independently, as the
  official code does (``randomize_noise`` in both calls), or shared (``shared_noise``).
- Relaxed realism (Sec. 3.2, Eq. 4): latents drawn from the anchor region (one anchor per
  training image, N(anchor, std^2)) meet the image-level discriminator; other latents (style
  mixing) meet the patch-level discriminator. The module decides which, per iteration.
- R1 on reals and path length on the generator, lazily, as StyleGAN2.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from lightning_modules.errors import ConfigError
from lightning_modules.layers.losses import (
    Spend,
    g_nonsaturating_loss,
    logistic_fake_loss,
    logistic_real_loss,
    r1_penalty,
    spender,
)
from lightning_modules.layers.stylegan2 import ConvAct, Generator
from lightning_modules.stylegan2.loss import Draw, StyleGAN2Loss

#: images -> logits (image-level: N x 1, patch-level: N x 1 x h x w)
Critic = Callable[[torch.Tensor], torch.Tensor]


def similarity_softmax(features: torch.Tensor) -> torch.Tensor:
    """Row i: softmax over j != i of cos(features[i], features[j]); ``N x (N-1)``."""
    flat = F.normalize(features.flatten(1), dim=1)
    cosine = flat @ flat.t()
    count = cosine.shape[0]
    off_diagonal = ~torch.eye(count, dtype=torch.bool, device=cosine.device)
    return torch.softmax(cosine[off_diagonal].view(count, count - 1), dim=1)


def cross_domain_distance_loss(source_features: list[torch.Tensor],
                               target_features: list[torch.Tensor],
                               layers: list[int]) -> torch.Tensor:
    """Eq. 3 with anchor row i compared at layer ``layers[i]``: mean over the N(N-1) entries of
    ``P_source * (log P_source - log P_target)``."""
    count = len(layers)
    source_rows, target_rows = [], []
    for i, layer in enumerate(layers):
        source_rows.append(similarity_softmax(source_features[layer])[i])
        target_rows.append(similarity_softmax(target_features[layer])[i])
    source = torch.stack(source_rows)
    target = torch.stack(target_rows)
    assert source.shape == (count, count - 1)
    # = F.kl_div(log target, source, reduction="mean") (the official code); written out because
    # PyTorch announces that reduction "mean" will change meaning.
    return (source * (torch.log(source) - torch.log(target))).mean()


class CDCLoss(StyleGAN2Loss):
    """Phases: ``d_main`` / ``d_reg`` against a critic (image- or patch-level), ``g_main``
    (non-saturating + ``distance_weight * L_dist``), ``g_reg`` (path length, inherited)."""

    def __init__(self, distance_weight: float = 1000.0, distance_batch: int = 4,
                 anchor_std: float = 0.1, r1_gamma: float = 10.0, pl_weight: float = 2.0,
                 pl_batch_shrink: int = 2, style_mixing_prob: float = 0.9,
                 shared_noise: bool = False) -> None:
        super().__init__(r1_gamma, pl_weight, pl_batch_shrink, style_mixing_prob=style_mixing_prob)
        if distance_batch < 3:
            raise ConfigError(f"distance_batch must be >= 3 (softmax over N-1 >= 2 entries), got "
                             f"{distance_batch}")
        self.distance_weight, self.distance_batch = distance_weight, distance_batch
        self.anchor_std, self.shared_noise = anchor_std, shared_noise

    def generate_from(self, generator: Generator, batch: int, draw: Draw, draw_shared: Draw,
                      anchors: torch.Tensor | None) -> torch.Tensor:
        """Anchor-region latents (``anchors`` given) or the usual mixed latents."""
        if anchors is None:
            return self.generate(generator, batch, draw, draw_shared)
        choice = (draw(batch, kind="uniform") * anchors.shape[0]).long().clamp_max(
            anchors.shape[0] - 1)
        z = anchors[choice] + self.anchor_std * draw(batch, anchors.shape[1])
        noise = [draw(batch, *shape[1:]) for shape in generator.noise_shapes(batch)]
        return generator(z, noise=noise)

    def d_main(self, generator: Generator, critic: Critic, real: torch.Tensor, draw: Draw,
               draw_shared: Draw, anchors: torch.Tensor | None = None,
               observe_real: Callable[[torch.Tensor], None] | None = None,
               spend: Spend | None = None) -> dict:
        """``observe_real`` receives the real logits (ADA's overfitting statistic); ``spend``
        backpropagates the real and the fake half at once (one D graph alive at a time)."""
        with torch.no_grad():
            fake = self.generate_from(generator, real.shape[0], draw, draw_shared, anchors)
        keep = spender(spend)
        real_logits = critic(real)
        if observe_real is not None:
            observe_real(real_logits)
        real_half = keep(logistic_real_loss(real_logits))
        return {"logistic": real_half + keep(logistic_fake_loss(critic(fake)))}

    def d_reg(self, critic: Critic, real: torch.Tensor, gain: float) -> dict:
        real = real.detach().requires_grad_(True)
        logits = critic(real).flatten(1).mean(dim=1, keepdim=True)  # patch logits: their mean
        penalty = r1_penalty(logits, real)
        return {"r1": self.r1_gamma / 2 * penalty * gain + 0 * logits[0, 0]}

    def g_main(self, generator: Generator, critic: Critic, batch: int, draw: Draw,
               draw_shared: Draw, anchors: torch.Tensor | None = None,
               source: Generator | None = None, spend: Spend | None = None) -> dict:
        """``spend`` backpropagates the adversarial term before the distance term's generator
        pass, so one generator graph is alive at a time."""
        fake = self.generate_from(generator, batch, draw, draw_shared, anchors)
        terms = {"nonsaturating": spender(spend)(g_nonsaturating_loss(critic(fake)))}
        if source is not None and self.distance_weight > 0:
            terms["distance_consistency"] = self.distance_weight * self.distance_loss(
                generator, source, draw, draw_shared)
        return terms

    def distance_loss(self, generator: Generator, source: Generator, draw: Draw,
                      draw_shared: Draw) -> torch.Tensor:
        """L_dist for ``distance_batch`` latents shared by both generators; the noise maps
        are drawn once per generator (official) or once for both (``shared_noise``)."""
        count = self.distance_batch
        z = draw_shared(count, generator.style_dim)

        def noise_maps() -> list[torch.Tensor]:
            return [draw_shared(count, *shape[1:]) for shape in generator.noise_shapes(count)]

        source_noise = noise_maps()
        target_noise = source_noise if self.shared_noise else noise_maps()
        num_features = len(generator.styled_convs)
        layers = (1 + draw_shared(count, kind="uniform") * (num_features - 1)).long()
        layers = layers.clamp(1, num_features - 1).tolist()
        with torch.no_grad():
            _, source_features = source(z, noise=source_noise, return_features=True)
        _, target_features = generator(z, noise=target_noise, return_features=True)
        return cross_domain_distance_loss(source_features, target_features, layers)


class PatchHead(nn.Module):
    """Patch-level critic head (Sec. 3.2): a 3x3 equalized conv, bias and leaky ReLU (x sqrt 2)
    from a D feature map to ``1 x h x w`` logits (the official ``Extra``: a ``ConvLayer`` with
    its activation)."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.conv = ConvAct(in_channels, 1, 3)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.conv(features)

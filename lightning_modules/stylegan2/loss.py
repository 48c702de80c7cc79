"""StyleGAN2 training loss: one object owns every phase (NVlabs' ``StyleGAN2Loss`` layout).

D_main: logistic loss on reals and generated images. D_reg: ``gamma / 2 * R1`` on reals, times
the lazy interval. G_main: non-saturating loss with style mixing. G_reg: path-length penalty on
a ``1 / batch_shrink`` sub-batch, times the weight and the interval (Karras et al. 2020, App. C).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from lightning_modules.layers.losses import (
    PathLengthPenalty,
    Spend,
    g_nonsaturating_loss,
    logistic_fake_loss,
    logistic_real_loss,
    r1_penalty,
    spender,
)
from lightning_modules.layers.stylegan2 import Discriminator, Generator

#: GANModule.draw / draw_shared: (*shape, kind="normal" | "uniform") -> tensor
Draw = Callable[..., torch.Tensor]


class StyleGAN2Loss(nn.Module):
    def __init__(self, r1_gamma: float = 10.0, pl_weight: float = 2.0, pl_batch_shrink: int = 2,
                 pl_decay: float = 0.01, style_mixing_prob: float = 0.9) -> None:
        super().__init__()
        self.r1_gamma, self.pl_weight, self.pl_batch_shrink = r1_gamma, pl_weight, pl_batch_shrink
        self.style_mixing_prob = style_mixing_prob
        self.path_length = PathLengthPenalty(pl_decay)

    def generate(self, generator: Generator, batch: int, draw: Draw, draw_shared: Draw,
                 return_ws: bool = False):
        """Images from fresh latents, mixing two styles with ``style_mixing_prob``; per-sample
        randomness (latents, noise maps) comes from ``draw``, per-batch decisions (mixing,
        crossover) from ``draw_shared``."""
        z = [draw(batch, generator.style_dim)]
        mix, crossover = draw_shared(2, kind="uniform").tolist()
        inject_index = None
        if mix < self.style_mixing_prob:
            z.append(draw(batch, generator.style_dim))
            inject_index = 1 + int(crossover * (generator.n_latent - 1))
        noise = [draw(batch, *shape[1:]) for shape in generator.noise_shapes(batch)]
        return generator(z, inject_index=inject_index, noise=noise, return_ws=return_ws)

    def d_main(self, generator: Generator, discriminator: Discriminator, real: torch.Tensor,
               draw: Draw, draw_shared: Draw, spend: Spend | None = None
               ) -> dict[str, torch.Tensor]:
        """``spend`` backpropagates the real and the fake half at once, one D graph alive at a
        time; the gradient sum is unchanged."""
        with torch.no_grad():
            fake = self.generate(generator, real.shape[0], draw, draw_shared)
        keep = spender(spend)
        real_half = keep(logistic_real_loss(discriminator(real)))
        return {"logistic": real_half + keep(logistic_fake_loss(discriminator(fake)))}

    def d_reg(self, discriminator: Discriminator, real: torch.Tensor, gain: float
              ) -> dict[str, torch.Tensor]:
        real = real.detach().requires_grad_(True)
        real_logits = discriminator(real)
        penalty = r1_penalty(real_logits, real)
        # 0 * logits keeps every D output in the graph (needed for gradient bookkeeping)
        return {"r1": self.r1_gamma / 2 * penalty * gain + 0 * real_logits[0, 0]}

    def g_main(self, generator: Generator, discriminator: Discriminator, batch: int,
               draw: Draw, draw_shared: Draw) -> dict[str, torch.Tensor]:
        fake = self.generate(generator, batch, draw, draw_shared)
        return {"nonsaturating": g_nonsaturating_loss(discriminator(fake))}

    def g_reg(self, generator: Generator, batch: int, draw: Draw, draw_shared: Draw,
              gain: float) -> dict[str, torch.Tensor]:
        sub_batch = max(1, batch // self.pl_batch_shrink)
        images, ws = self.generate(generator, sub_batch, draw, draw_shared, return_ws=True)
        penalty, _ = self.path_length(images, ws, draw(sub_batch, *images.shape[1:]))
        return {"path_length": self.pl_weight * gain * penalty + 0 * images[0, 0, 0, 0]}

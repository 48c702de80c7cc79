"""Unconditional StyleGAN2 (Karras et al., CVPR 2020) as a GANModule: the base that few-shot
adaptation starts from, and the smallest complete example of the scaffold.

Per iteration, as rosinality's train.py: D_main; D_reg (R1) every ``d_reg_every``; G_main;
G_reg (path length) every ``g_reg_every``; then the EMA update.
"""

from __future__ import annotations

from typing import Any

import torch

from datamodules.keys import IMAGE
from lightning_modules.gan_module import GANModule, OptimizerSpec, Phase
from lightning_modules.layers.adaconv import adaconv_factory
from lightning_modules.layers.stylegan2 import ConvFactory, Discriminator, Generator
from lightning_modules.stylegan2.loss import StyleGAN2Loss


@torch.no_grad()
def sample_images(generator: Generator, n: int, seed: int = 0, truncation: float = 1.0
                  ) -> torch.Tensor:
    """``n`` images of ``generator`` whose latents and noise maps come from ``seed`` alone (on
    the CPU generator, so every device gives the same latents)."""
    device = generator.const.device
    rng = torch.Generator().manual_seed(seed)
    z = torch.randn(n, generator.style_dim, generator=rng).to(device)
    noise = [torch.randn(shape, generator=rng).to(device) for shape in generator.noise_shapes(n)]
    truncation_w = generator.mean_w(generator=rng) if truncation < 1 else None
    return generator(z, truncation=truncation, truncation_w=truncation_w, noise=noise)


class StyleGAN2Sampling:
    """What every StyleGAN2-based module shares: rosinality's phase order, sampling from the EMA
    generator and the metrics protocol. Needs ``generator`` (and optionally ``generator_ema``),
    ``loss`` (``r1_gamma``, ``pl_weight``), ``d_reg_every`` and ``g_reg_every``."""

    def phases(self) -> list[Phase]:
        phases = [Phase("D_main", "discriminator")]
        if self.loss.r1_gamma > 0:
            phases.append(Phase("D_reg", "discriminator", self.d_reg_every, higher_order=True))
        phases.append(Phase("G_main", "generator"))
        if self.loss.pl_weight > 0:
            phases.append(Phase("G_reg", "generator", self.g_reg_every, higher_order=True))
        return phases

    @property
    def sampling_generator(self) -> Generator:
        return getattr(self, "generator_ema", self.generator)

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0, truncation: float = 1.0) -> torch.Tensor:
        """``n`` images from the EMA generator (if any); latents and noise maps come from
        ``seed`` alone, so the same call always gives the same images."""
        return sample_images(self.sampling_generator, n, seed, truncation)

    def generate_for_metrics(self, batch: Any) -> torch.Tensor:
        """Metrics protocol: as many generated images as the batch holds real ones."""
        real = batch[IMAGE]
        z = torch.randn(real.shape[0], self.generator.style_dim, device=real.device)
        return self.sampling_generator(z)


class StyleGAN2(StyleGAN2Sampling, GANModule):
    """Args follow rosinality's train.py names; ``channels`` overrides the width table (tiny
    models), ``mbstd_group_size: 0`` removes minibatch stddev. ``**kwargs``: the
    :class:`GANModule` options (``max_kimg``, ``ema_half_life_kimg`` (default 10), ``seed``,
    ``optimizers``, ...)."""

    ema_pairs = {"generator": "generator_ema"}

    def __init__(self, size: int = 32, style_dim: int = 512, n_mlp: int = 8,
                 channel_multiplier: int = 2, channels: dict[int, int] | None = None,
                 mbstd_group_size: int = 4, lr: float = 0.002, r1_gamma: float = 10.0,
                 d_reg_every: int = 16, pl_weight: float = 2.0, g_reg_every: int = 4,
                 pl_batch_shrink: int = 2, style_mixing_prob: float = 0.9,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.save_hyperparameters()
        self.generator = Generator(size, style_dim, n_mlp, channel_multiplier, channels,
                                   conv_factory=self.conv_factory())
        self.discriminator = Discriminator(size, channel_multiplier, channels, mbstd_group_size)
        self.loss = StyleGAN2Loss(r1_gamma, pl_weight, pl_batch_shrink,
                                  style_mixing_prob=style_mixing_prob)
        self.lr, self.d_reg_every, self.g_reg_every = lr, d_reg_every, g_reg_every
        self.setup_ema()

    def conv_factory(self) -> ConvFactory | None:
        """The generator's styled-conv factory (None: StyleGAN2's weight modulation)."""
        return None

    def optimizer_specs(self) -> dict[str, OptimizerSpec]:
        g_interval = self.g_reg_every if self.loss.pl_weight > 0 else 0
        d_interval = self.d_reg_every if self.loss.r1_gamma > 0 else 0
        return {"generator": OptimizerSpec([self.generator], self.lr, reg_interval=g_interval),
                "discriminator": OptimizerSpec([self.discriminator], self.lr,
                                               reg_interval=d_interval)}

    def loss_D_main(self, batch: Any, gain: float) -> dict[str, torch.Tensor]:
        return self.loss.d_main(self.generator, self.discriminator, batch[IMAGE], self.draw,
                                self.draw_shared, spend=self.backward_now)

    def loss_D_reg(self, batch: Any, gain: float) -> dict[str, torch.Tensor]:
        return self.loss.d_reg(self.discriminator, batch[IMAGE], gain)

    def loss_G_main(self, batch: Any, gain: float) -> dict[str, torch.Tensor]:
        return self.loss.g_main(self.generator, self.discriminator, batch[IMAGE].shape[0],
                                self.draw, self.draw_shared)

    def loss_G_reg(self, batch: Any, gain: float) -> dict[str, torch.Tensor]:
        return self.loss.g_reg(self.generator, batch[IMAGE].shape[0], self.draw,
                               self.draw_shared, gain)


class StyleGAN2AdaConv(StyleGAN2):
    """StyleGAN2 whose styled convs are AdaConv driven by w (Chandran et al. 2021, Sec. 4):
    per layer, w -> style tensor ``W`` (``adaconv_style_channels x 3 x 3``) -> depthwise and
    pointwise kernels and biases on the instance-normalised input, then the layer's fixed conv
    (:class:`~lightning_modules.layers.adaconv.StyleAdaConv`). ``adaconv_group_size``: input
    channels per group (1: depthwise). Everything else is :class:`StyleGAN2`'s."""

    def __init__(self, adaconv_style_channels: int = 64, adaconv_group_size: int = 1,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)

    def conv_factory(self) -> ConvFactory:
        return adaconv_factory(self.hparams.adaconv_style_channels,
                               self.hparams.adaconv_group_size)

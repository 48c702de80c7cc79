"""Swapping Autoencoder for Deep Image Manipulation (Park et al., NeurIPS 2020).

Training alternates, as the official optimizer does, on separate batches::

    iteration 0, 2, 4, ...  D step: D_main (+ D_reg, R1 and patch R1, every 16th D step)
    iteration 1, 3, 5, ...  G step: G_main (encoder and generator together)

with two Adams (E+G: lr, betas (0, 0.99); D + patch D: lazy-R1 corrected). Length is counted
in images seen (``max_kimg``; the paper trains 25 000 kimg). Option names are the official
ones so configs can be compared line by line.
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from datamodules.keys import IMAGE
from lightning_modules.errors import ConfigError
from lightning_modules.gan_module import GANModule, OptimizerSpec, Phase
from lightning_modules.swapping_autoencoder.losses import LossWeights, SwapAELoss
from lightning_modules.swapping_autoencoder.networks import (
    Encoder,
    Generator,
    PatchDiscriminator,
    image_discriminator,
)


class SwappingAutoencoder(GANModule):
    """Args: the official options (see ``experiments/swapping_autoencoder/*.yaml``), plus
    ``netD_max_channels`` and ``patch_pair_widths`` (widths the official code hard-codes) and
    the :class:`~lightning_modules.gan_module.GANModule` options. ``ema_half_life_kimg`` is
    None (no EMA) by default, as in the official code. ``patch_chunk_images``: the D step runs
    the co-occurrence terms and their R1 this many images at a time, backpropagating each chunk
    at once (an image's patch terms involve only its own crops, so the gradient is the same up
    to float rounding); ``null`` runs the whole batch in one graph. Lower peak memory, and
    faster on CPU (``experiments/benchmarks/swapae_iteration.py``). ``channels_last`` is
    ``auto`` by default here: channels-last was 8-12% faster on Intel Xeons with AVX-512 and
    35% slower on an AMD EPYC in that benchmark, so the first iterations time both layouts
    (:mod:`lightning_modules.layout`)."""

    ema_pairs = {"encoder": "encoder_ema", "generator": "generator_ema"}

    def __init__(self, crop_size: int = 256, spatial_code_ch: int = 8,
                 global_code_ch: int = 2048, netE_scale_capacity: float = 1.0,
                 netE_num_downsampling_sp: int = 4, netE_num_downsampling_gl: int = 2,
                 netE_nc_steepness: float = 2.0, netG_scale_capacity: float = 1.0,
                 netG_num_base_resnet_layers: int = 2, netG_use_noise: bool = True,
                 netD_scale_capacity: float = 1.0, netD_max_channels: int = 512,
                 netPatchD_scale_capacity: float = 4.0, netPatchD_max_nc: int = 384,
                 patch_pair_widths: tuple[int, ...] = (2048, 2048, 1024),
                 patch_size: int = 128, patch_num_crops: int = 8,
                 patch_min_scale: float = 0.125, patch_max_scale: float = 0.25,
                 patch_use_aggregation: bool = True, use_antialias: bool = True,
                 lambda_R1: float = 10.0, lambda_patch_R1: float = 1.0, lambda_L1: float = 1.0,
                 lambda_GAN: float = 1.0, lambda_PatchGAN: float = 1.0, lr: float = 0.002,
                 beta1: float = 0.0, beta2: float = 0.99, R1_once_every: int = 16,
                 max_kimg: float | None = 25000.0, ema_half_life_kimg: float | None = None,
                 patch_chunk_images: int | None = 1,
                 channels_last: bool | Literal["auto"] = "auto",
                 **kwargs: Any) -> None:
        super().__init__(max_kimg=max_kimg, ema_half_life_kimg=ema_half_life_kimg,
                         channels_last=channels_last, **kwargs)
        self.save_hyperparameters()
        if patch_chunk_images is not None and patch_chunk_images < 1:
            raise ConfigError(f"patch_chunk_images must be >= 1 or null, got {patch_chunk_images}")
        self.encoder = Encoder(spatial_code_ch, global_code_ch, netE_scale_capacity,
                               netE_num_downsampling_sp, netE_num_downsampling_gl,
                               netE_nc_steepness, use_antialias)
        self.generator = Generator(spatial_code_ch, global_code_ch, netG_scale_capacity,
                                   netE_num_downsampling_sp, netG_num_base_resnet_layers,
                                   netG_use_noise, use_antialias)
        self.image_discriminator = (image_discriminator(crop_size, netD_scale_capacity,
                                                        netD_max_channels, use_antialias)
                                    if lambda_GAN > 0 else None)
        self.patch_discriminator = (PatchDiscriminator(patch_size, netPatchD_scale_capacity,
                                                       netPatchD_max_nc, patch_pair_widths,
                                                       use_antialias)
                                    if lambda_PatchGAN > 0 else None)
        self.loss = SwapAELoss(LossWeights(lambda_L1, lambda_GAN, lambda_PatchGAN, lambda_R1,
                                           lambda_patch_R1),
                               patch_size, patch_num_crops, (patch_min_scale, patch_max_scale),
                               patch_use_aggregation, patch_chunk_images)
        self.discriminator_steps = 0
        self.setup_ema()

    # -- the contracts (lightning_modules/contracts.py): encode, decode, swap ------------------
    @property
    def inference_networks(self) -> tuple[Encoder, Generator]:
        """EMA copies when trained with EMA, else the trained networks."""
        return (getattr(self, "encoder_ema", self.encoder),
                getattr(self, "generator_ema", self.generator))

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(structure_code ``B x 8 x H/16 x W/16``, texture_code ``B x 2048``), unit norm."""
        return self.inference_networks[0](images)

    def fixed_noise(self, structure_code: torch.Tensor, seed: int) -> list[torch.Tensor]:
        """One noise map per styled conv (``1 x 1 x H x W``, shared by the batch) from
        ``seed``: the same seed gives the same images, so swaps do not flicker."""
        rng = torch.Generator().manual_seed(seed)
        shapes = self.generator.noise_shapes(1, tuple(structure_code.shape[2:]))
        return [torch.randn(shape, generator=rng).to(structure_code) for shape in shapes]

    def decode(self, structure_code: torch.Tensor, texture_code: torch.Tensor,
               noise_seed: int | None = 0) -> torch.Tensor:
        """Images in [-1, 1] (roughly; unclamped) from the codes; noise fixed by
        ``noise_seed`` (None: fresh random noise)."""
        noise = None if noise_seed is None else self.fixed_noise(structure_code, noise_seed)
        return self.inference_networks[1](structure_code, texture_code, noise)

    def swap(self, structure_images: torch.Tensor, texture_images: torch.Tensor,
             noise_seed: int | None = 0) -> torch.Tensor:
        """Image i: the structure of ``structure_images[i]`` in the texture of
        ``texture_images[i]``."""
        structure_code, _ = self.encode(structure_images)
        _, texture_code = self.encode(texture_images)
        return self.decode(structure_code, texture_code, noise_seed)

    def generate_for_metrics(self, batch: Any) -> torch.Tensor:
        """Metrics protocol: swaps of adjacent images of the batch (FID of swaps, as the paper)."""
        images = batch[IMAGE]
        return self.swap(images, images.roll(1, dims=0))

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path, map_location="cpu", **kwargs):
        """Lightning's loader, on CPU unless told otherwise."""
        return super().load_from_checkpoint(checkpoint_path, map_location=map_location,
                                            **kwargs)

    # -- training ------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        super().setup(stage)
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer else None
        batch_size = getattr(datamodule, "batch_size", None)
        if batch_size is not None and batch_size % 2:
            raise ConfigError(f"data.init_args.batch_size is {batch_size}: the Swapping "
                             "Autoencoder swaps adjacent images, so the per-GPU batch must be "
                             "even.")

    def discriminators(self) -> list[torch.nn.Module]:
        return [d for d in (self.image_discriminator, self.patch_discriminator) if d is not None]

    def optimizer_specs(self) -> dict[str, OptimizerSpec]:
        hp = self.hparams
        betas = (hp.beta1, hp.beta2)
        specs = {"generator": OptimizerSpec([self.generator, self.encoder], hp.lr, betas)}
        if self.discriminators():
            specs["discriminator"] = OptimizerSpec(self.discriminators(), hp.lr, betas,
                                                   reg_interval=hp.R1_once_every)
        return specs

    def phases(self) -> list[Phase]:
        return [Phase("D_main", "discriminator"),
                Phase("D_reg", "discriminator", self.hparams.R1_once_every, higher_order=True),
                Phase("G_main", "generator")]

    def due_phases(self) -> list[Phase]:
        d_main, d_reg, g_main = self.phases()
        if self.iteration % 2 == 1 or not self.discriminators():
            return [g_main]
        needs_r1 = self.hparams.lambda_R1 > 0 or self.hparams.lambda_patch_R1 > 0
        # the official counter counts D steps from 1; R1 runs when it is a multiple of 16
        if needs_r1 and (self.discriminator_steps + 1) % self.hparams.R1_once_every == 0:
            return [d_main, d_reg]
        return [d_main]

    def uniform(self, batch: int, *shape: int) -> torch.Tensor:
        return self.draw(batch, *shape, kind="uniform")

    def noise(self, batch: int, code_size: tuple[int, int]) -> list[torch.Tensor]:
        return [self.draw(batch, *shape[1:]) for shape in
                self.generator.noise_shapes(batch, code_size)]

    @staticmethod
    def real_images(batch: Any) -> torch.Tensor:
        real = batch[IMAGE]
        if real.shape[0] % 2:
            raise ConfigError(f"odd batch of {real.shape[0]} images: the per-GPU batch size "
                              "must be even")
        return real

    def loss_D_main(self, batch: Any, gain: float) -> dict[str, torch.Tensor]:
        """Eq. 1-3, discriminator side: image D on real, reconstruction and swap; patch D."""
        self.discriminator_steps += 1
        return self.loss.d_main(self.encoder, self.generator, self.image_discriminator,
                                self.patch_discriminator, self.real_images(batch), self.uniform,
                                self.noise, spend=self.backward_now)

    def loss_D_reg(self, batch: Any, gain: float) -> dict[str, torch.Tensor]:
        """Lazy R1 on the image D and the patch D."""
        return self.loss.d_reg(self.image_discriminator, self.patch_discriminator,
                               self.real_images(batch), self.uniform, gain,
                               spend=self.backward_now)

    def loss_G_main(self, batch: Any, gain: float) -> dict[str, torch.Tensor]:
        """Eq. 1-4, encoder and generator side: L1 reconstruction, GAN, co-occurrence GAN."""
        terms, metrics = self.loss.g_main(self.encoder, self.generator, self.image_discriminator,
                                          self.patch_discriminator, self.real_images(batch),
                                          self.uniform, self.noise, spend=self.backward_now)
        for name, value in metrics.items():
            self.log(f"G_main/{name}", value)
        return terms

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["corrlab"]["discriminator_steps"] = self.discriminator_steps

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        self.discriminator_steps = int(checkpoint.get("corrlab", {}).get(
            "discriminator_steps", 0))

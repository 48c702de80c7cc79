"""Few-shot adaptation via cross-domain correspondence (Ojha et al., CVPR 2021) as a GANModule.

Algorithm (per iteration, batch of the k target images):
1. ``image_level = iteration % subspace_freq == 0``: latents from the anchor region and the
   image-level D; otherwise style-mixed latents and the patch-level D (Sec. 3.2).
2. D_main, then D_reg (R1) every ``d_reg_every`` iterations, against that critic.
3. G_main: non-saturating loss against that critic + lambda * L_dist (Sec. 3.1).
4. G_reg: path length every ``g_reg_every``; then the EMA update.
The source generator (the checkpoint's EMA generator) is frozen and never updated.

Differences from the official code (few-shot-gan-adaptation), on purpose: no hard-coded GPU
count (corrlab_ddp, any number), one ``source_checkpoint`` option instead of ``--ckpt`` /
``--ckpt_source``, and no assertion that the checkpoint's file name names a known source.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from datamodules.keys import IMAGE
from lightning_modules.checkpoints import CheckpointError, load_rosinality_stylegan2, safe_load
from lightning_modules.errors import ConfigError
from lightning_modules.few_shot_cdc.losses import CDCLoss, PatchHead
from lightning_modules.gan_module import GANModule, OptimizerSpec
from lightning_modules.layers.augment import AdaptiveAugment
from lightning_modules.layers.stylegan2 import Discriminator, Generator
from lightning_modules.stylegan2 import StyleGAN2, sample_images
from lightning_modules.stylegan2.module import StyleGAN2Sampling


@dataclass
class SourceModel:
    generator: Generator
    generator_ema: Generator
    discriminator: Discriminator
    generator_optimizer: dict | None = None
    discriminator_optimizer: dict | None = None


def load_source(path: str | Path, trust: bool = False) -> SourceModel:
    """A rosinality checkpoint (``g``, ``g_ema``, ``d``, optimizer states if present) or a
    corrlab StyleGAN2 checkpoint; ``trust``: allow pickled objects beyond tensors."""
    path = Path(path)
    checkpoint = safe_load(path, trust=trust)
    if isinstance(checkpoint, dict) and "state_dict" in checkpoint:
        source = StyleGAN2.load_from_checkpoint(path, map_location="cpu")
        optimizers = checkpoint.get("optimizer_states") or [None, None]
        return SourceModel(source.generator, source.sampling_generator, source.discriminator,
                           *optimizers[:2])
    imported = load_rosinality_stylegan2(path, trust=trust)
    if imported.generator_ema is None or imported.discriminator is None:
        raise CheckpointError(f"{path}: few-shot adaptation needs 'g_ema' (the source "
                              "generator) and 'd' in the checkpoint.")
    generator = imported.generator or copy.deepcopy(imported.generator_ema)
    return SourceModel(generator, imported.generator_ema, imported.discriminator,
                       imported.generator_optimizer, imported.discriminator_optimizer)


class FewShotCDC(StyleGAN2Sampling, GANModule):
    """Args:
        source_checkpoint: the pretrained StyleGAN2 (rosinality or corrlab format).
        num_anchors: anchor latents, one per training image (must equal the datamodule's k).
        distance_weight: lambda of L_dist (paper: 1000); 0 gives plain fine-tuning's G loss.
        distance_batch: N latents per L_dist evaluation.
        anchor_std: standard deviation of the anchor region.
        subspace_freq: every this many iterations, anchor latents + image-level D.
        patch_resolution: the patch head reads the residual branch (before the skip) of the
            D block that outputs this resolution (official: 32).
        use_patch_d: False trains every iteration with the image-level D and ordinary latents
            (the plain fine-tuning baseline together with ``distance_weight: 0``).
        trust_checkpoint: read a source checkpoint that holds pickled Python objects beyond
            tensors and plain containers (refused by default: unpickling runs code).
        augment: ADA-style augmentation of everything the critics see
            (:mod:`~lightning_modules.layers.augment`); off by default, as the paper.
        augment_p: starting augmentation probability (kept fixed if ``ada_target`` is None).
        ada_target: r_t target of the adaptive probability (ADA: 0.6).
        ada_speed_kimg: thousands of images for p to go 0 -> 1. ADA's 500 assumes runs of
            thousands of kimg; the default is the length of a default CDC run.
        Other arguments as :class:`~lightning_modules.stylegan2.StyleGAN2`; the EMA half-life
        1.25 kimg at batch 4 is the official per-step decay 0.5 ** (32 / 10000).
    """

    ema_pairs = {"generator": "generator_ema"}

    def __init__(self, source_checkpoint: str, num_anchors: int = 10,
                 distance_weight: float = 1000.0, distance_batch: int = 4,
                 anchor_std: float = 0.1, subspace_freq: int = 4, patch_resolution: int = 32,
                 use_patch_d: bool = True, lr: float = 0.002, r1_gamma: float = 10.0,
                 d_reg_every: int = 16, pl_weight: float = 2.0, g_reg_every: int = 4,
                 pl_batch_shrink: int = 2, style_mixing_prob: float = 0.9,
                 max_kimg: float | None = 20.0, ema_half_life_kimg: float | None = 1.25,
                 seed: int | None = None, trust_checkpoint: bool = False,
                 augment: bool = False, augment_p: float = 0.0,
                 ada_target: float | None = 0.6, ada_speed_kimg: float = 20.0,
                 shared_noise: bool = False, **kwargs: Any) -> None:
        super().__init__(max_kimg=max_kimg, ema_half_life_kimg=ema_half_life_kimg, seed=seed,
                         **kwargs)
        self.save_hyperparameters()
        source = load_source(source_checkpoint, trust_checkpoint)
        self.source_generator = source.generator_ema.eval().requires_grad_(False)
        self.generator = source.generator
        self.discriminator = source.discriminator
        channels = self.discriminator.channels
        block_outputs = sorted(r for r in channels if r < self.discriminator.size)
        if patch_resolution not in block_outputs:
            raise ConfigError(f"patch_resolution {patch_resolution} is not the output resolution "
                             f"of a discriminator block ({block_outputs})")
        self.patch_resolution = patch_resolution
        self.patch_head = PatchHead(channels[patch_resolution])
        self.loss = CDCLoss(distance_weight, distance_batch, anchor_std, r1_gamma, pl_weight,
                            pl_batch_shrink, style_mixing_prob, shared_noise)
        anchor_rng = torch.Generator().manual_seed(0 if seed is None else seed)
        self.register_buffer("anchors", torch.randn(num_anchors, self.generator.style_dim,
                                                    generator=anchor_rng))
        self.subspace_freq, self.use_patch_d = subspace_freq, use_patch_d
        self.lr, self.d_reg_every, self.g_reg_every = lr, d_reg_every, g_reg_every
        self._source_optimizers = (source.generator_optimizer, source.discriminator_optimizer)
        self.augment = AdaptiveAugment(ada_target, ada_speed_kimg, initial_p=augment_p) \
            if augment else None
        self.setup_ema()
        if ema_half_life_kimg is not None:
            self.generator_ema.load_state_dict(source.generator_ema.state_dict())

    # -- the two realism modes (Sec. 3.2) ------------------------------------------------------
    @property
    def image_level(self) -> bool:
        return not self.use_patch_d or self.iteration % self.subspace_freq == 0

    def image_critic(self, images: torch.Tensor) -> torch.Tensor:
        return self.discriminator(self.augmented(images))

    def patch_critic(self, images: torch.Tensor) -> torch.Tensor:
        """``N x 1 x r x r`` logits from the residual branch of the D block that outputs
        ``patch_resolution`` px (the official patch discriminator's feature; the layers after
        it are not run)."""
        features = self.discriminator.residual_branch(self.augmented(images),
                                                      self.patch_resolution)
        return self.patch_head(features)

    def augmented(self, images: torch.Tensor) -> torch.Tensor:
        return images if self.augment is None else self.augment(images, self.draw)

    def observe_real_logits(self, real_logits: torch.Tensor) -> None:
        """ADA's overfitting statistic, fed by every D_main step."""
        if self.augment is not None:
            self.augment.observe(real_logits, self.world_size)
            if self._trainer is not None:
                self.log("augment/p", float(self.augment.p), on_step=True, on_epoch=False)

    # -- GANModule -----------------------------------------------------------------------------
    def optimizer_specs(self) -> dict[str, OptimizerSpec]:
        """The patch head shares the discriminator's Adam settings; Adam keeps its state per
        parameter, so one Adam over both equals the official separate ``e_optim``."""
        g_interval = self.g_reg_every if self.loss.pl_weight > 0 else 0
        d_interval = self.d_reg_every if self.loss.r1_gamma > 0 else 0
        return {"generator": OptimizerSpec([self.generator], self.lr, reg_interval=g_interval),
                "discriminator": OptimizerSpec([self.discriminator, self.patch_head], self.lr,
                                               reg_interval=d_interval)}

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        optimizers = super().configure_optimizers()
        for optimizer, state in zip(optimizers, self._source_optimizers, strict=True):
            if state:
                load_matching_adam_state(optimizer, state)
        return optimizers

    def critic_and_anchors(self) -> tuple[Any, torch.Tensor | None]:
        """Sec. 3.2: every ``subspace_freq``-th iteration the image-level D with anchor-region
        latents, otherwise the patch-level critic with style-mixed latents."""
        critic = self.image_critic if self.image_level else self.patch_critic
        return critic, self.anchors if self.image_level and self.use_patch_d else None

    def loss_D_main(self, batch: Any, gain: float) -> dict[str, torch.Tensor]:
        critic, anchors = self.critic_and_anchors()
        return self.loss.d_main(self.generator, critic, batch[IMAGE], self.draw,
                                self.draw_shared, anchors, observe_real=self.observe_real_logits,
                                spend=self.backward_now)

    def loss_D_reg(self, batch: Any, gain: float) -> dict[str, torch.Tensor]:
        return self.loss.d_reg(self.critic_and_anchors()[0], batch[IMAGE], gain)

    def loss_G_main(self, batch: Any, gain: float) -> dict[str, torch.Tensor]:
        """Adversarial term plus the cross-domain distance consistency loss (Eq. 2-4)."""
        critic, anchors = self.critic_and_anchors()
        return self.loss.g_main(self.generator, critic, batch[IMAGE].shape[0], self.draw,
                                self.draw_shared, anchors, self.source_generator,
                                spend=self.backward_now)

    def loss_G_reg(self, batch: Any, gain: float) -> dict[str, torch.Tensor]:
        return self.loss.g_reg(self.generator, batch[IMAGE].shape[0], self.draw,
                               self.draw_shared, gain)

    def setup(self, stage: str) -> None:
        super().setup(stage)
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer else None
        crop_size = getattr(datamodule, "crop_size", None)
        if crop_size is not None and crop_size != self.generator.size:
            raise ConfigError(f"data.init_args.crop_size is {crop_size} but the source generator "
                              f"({self.hparams.source_checkpoint}) makes {self.generator.size} px "
                              "images; the critics compare real and generated images of one size: "
                              f"set crop_size to {self.generator.size}.")
        k = getattr(datamodule, "k", None)
        if k is not None and k != self.anchors.shape[0]:
            raise ConfigError(f"model.init_args.num_anchors is {self.anchors.shape[0]} but the "
                             f"datamodule has k={k} training images; CDC uses one anchor per "
                             "image: set them equal.")

    def train(self, mode: bool = True) -> FewShotCDC:
        super().train(mode)
        self.source_generator.eval()  # frozen: never in training mode
        return self

    # -- the contracts (sample, generate_for_metrics: StyleGAN2Sampling) -----------------------
    @torch.no_grad()
    def sample_source(self, n: int, seed: int = 0, truncation: float = 1.0) -> torch.Tensor:
        """The frozen source generator's images for the same latents and noise as
        :meth:`sample`: corresponding pairs."""
        return sample_images(self.source_generator, n, seed, truncation)


def load_matching_adam_state(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Load an Adam state saved for the first parameters of ``optimizer``'s single group
    (extra parameters, such as the patch head, start fresh); keep the current learning rate
    and betas (the config, not the source run, sets them)."""
    group = optimizer.param_groups[0]
    saved_group = state["param_groups"][0]
    count = len(saved_group["params"])
    if len(optimizer.param_groups) != 1 or count > len(group["params"]):
        raise CheckpointError("source optimizer state does not fit the adapted networks.")
    hyper = {key: group[key] for key in ("lr", "betas", "eps")}
    extended = {"state": state["state"],
                "param_groups": [{**saved_group, "params": list(range(len(group["params"])))}]}
    optimizer.load_state_dict(extended)
    optimizer.param_groups[0].update(hyper)

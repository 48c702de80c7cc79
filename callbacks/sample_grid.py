"""A grid of generated images logged every N training steps, for any module that implements
the metrics contract ``generate_for_metrics(batch) -> images``
(:class:`lightning_modules.contracts.GeneratesForMetrics`)."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from torchvision.utils import make_grid

from callbacks.image_logging import log_image
from lightning_modules.contracts import GeneratesForMetrics, require


class SampleGrid(L.Callback):
    """Log ``generate_for_metrics`` of a fixed batch (the first training batch seen) as a grid,
    after the first batch, every ``every_n_batches`` training batches, and when training ends.
    (Batches, not ``global_step``: GAN modules take several optimizer steps per batch.)

    Args:
        every_n_batches: interval in training batches.
        max_images: at most this many images in the grid.
        key: logger key.
    """

    def __init__(self, every_n_batches: int = 500, max_images: int = 16,
                 key: str = "samples") -> None:
        self.every_n_batches, self.max_images, self.key = every_n_batches, max_images, key
        self.fixed_batch: Any = None
        self.batches = 0

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        require(pl_module, GeneratesForMetrics, "SampleGrid")

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.fixed_batch is None:
            self.fixed_batch = batch
        if self.batches % self.every_n_batches == 0:
            self.log_grid(trainer, pl_module)
        self.batches += 1

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.fixed_batch is not None:
            self.log_grid(trainer, pl_module)

    @torch.no_grad()
    def log_grid(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        was_training = pl_module.training
        pl_module.eval()
        images = pl_module.generate_for_metrics(self.fixed_batch)[: self.max_images]
        pl_module.train(was_training)
        grid = make_grid(images.float().cpu(), nrow=max(1, math.isqrt(len(images))),
                         padding=1, pad_value=1.0)
        log_image(trainer, self.key, grid)

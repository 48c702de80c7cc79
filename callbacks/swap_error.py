"""Ground-truth swap error on shapes & textures: the renderer knows the correct swap
``render(structure_a, texture_b)``, so swap quality is measured directly as the L1 distance (in
[-1, 1] units) between ``swap(image_a, image_b)`` and it, on a fixed list of pairs."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from datamodules.synthetic import TRAIN_FAMILIES, image_seeds, render
from datamodules.transforms import to_image_tensor


def swap_pairs_with_truth(num_pairs: int, size: int, seed: int = 12345,
                          families: tuple[str, ...] = TRAIN_FAMILIES
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(structure images, texture images, true swaps), each ``num_pairs x 3 x size x size``."""
    structures, textures, truths = [], [], []
    for i in range(num_pairs):
        structure_a, texture_a = image_seeds(seed, 2 * i)
        structure_b, texture_b = image_seeds(seed, 2 * i + 1)
        structures.append(render(structure_a, texture_a, size, families)[0])
        textures.append(render(structure_b, texture_b, size, families)[0])
        truths.append(render(structure_a, texture_b, size, families)[0])
    stack = lambda images: torch.stack([to_image_tensor(image) for image in images])
    return stack(structures), stack(textures), stack(truths)


class GroundTruthSwapError(L.Callback):
    """Logs ``swap/l1_to_true_swap`` at the start and end of training and every
    ``every_kimg``; ``history`` keeps ``(kimg, value)``. Needs ``swap(structure, texture)``."""

    def __init__(self, num_pairs: int = 32, size: int = 64, every_kimg: float = 10.0,
                 seed: int = 12345) -> None:
        self.num_pairs, self.size, self.every_kimg, self.seed = num_pairs, size, every_kimg, seed
        self.history: list[tuple[float, float]] = []
        self.next_kimg = 0.0
        self._pairs = None

    @torch.no_grad()
    def measure(self, pl_module: L.LightningModule) -> float:
        if self._pairs is None:
            self._pairs = swap_pairs_with_truth(self.num_pairs, self.size, self.seed)
        structures, textures, truths = (t.to(pl_module.device) for t in self._pairs)
        was_training = pl_module.training
        pl_module.eval()
        swaps = pl_module.swap(structures, textures)
        pl_module.train(was_training)
        return float((swaps.clamp(-1, 1) - truths).abs().mean())

    def record(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        kimg = getattr(pl_module, "images_seen", 0) / 1000.0
        value = self.measure(pl_module)
        self.history.append((kimg, value))
        self.next_kimg = kimg + self.every_kimg
        for logger in trainer.loggers:
            logger.log_metrics({"swap/l1_to_true_swap": value, "progress/kimg": kimg},
                               step=trainer.global_step)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.record(trainer, pl_module)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        if getattr(pl_module, "images_seen", 0) / 1000.0 >= self.next_kimg:
            self.record(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.record(trainer, pl_module)
        first, last = self.history[0], self.history[-1]
        print(f"ground-truth swap L1: {first[1]:.4f} at {first[0]:.1f} kimg -> "
              f"{last[1]:.4f} at {last[0]:.1f} kimg")

"""Ground-truth swap error on shapes & textures: the renderer knows the correct swap
``render(structure_a, texture_b)``, so swap quality is measured directly as the L1 distance (in
[-1, 1] units), and optionally the LPIPS distance, between ``swap(image_a, image_b)`` and it,
on a fixed list of pairs."""

from __future__ import annotations

import lightning as L
import torch

from callbacks.accuracy import structure_accuracy, texture_accuracy
from callbacks.metric_logging import log_provenance
from callbacks.schedule import KimgSchedule, KimgScheduledCallback, kimg_of
from datamodules.synthetic import TRAIN_FAMILIES, image_seeds, render
from datamodules.transforms import to_image_tensor
from lightning_modules.contracts import Swaps, require


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


def _image_labels(num_pairs: int, size: int, seed: int, which: int) -> torch.Tensor:
    """``num_pairs x size x size`` label maps of image ``2 i + which`` of every pair."""
    return torch.stack([torch.from_numpy(render(image_seeds(seed, 2 * i + which)[0], 0, size)[1])
                        .long() for i in range(num_pairs)])


def swap_truth_labels(num_pairs: int, size: int, seed: int = 12345) -> torch.Tensor:
    """``num_pairs x size x size`` label maps of the true swaps of
    :func:`swap_pairs_with_truth` (the structure image's layout)."""
    return _image_labels(num_pairs, size, seed, 0)


def swap_texture_labels(num_pairs: int, size: int, seed: int = 12345) -> torch.Tensor:
    """``num_pairs x size x size`` label maps of the texture images of
    :func:`swap_pairs_with_truth`."""
    return _image_labels(num_pairs, size, seed, 1)


class GroundTruthSwapError(KimgScheduledCallback):
    """Logs ``swap/l1_to_true_swap`` (and ``swap/lpips_to_true_swap`` when ``lpips_net`` is
    set), ``swap/structure_accuracy`` and ``swap/texture_accuracy`` (:mod:`callbacks.accuracy`)
    at the start and end of training and every ``every_kimg``; ``history`` keeps
    ``(kimg, l1)``. Needs ``swap(structure, texture)``."""

    def __init__(self, num_pairs: int = 32, size: int = 64, every_kimg: float = 10.0,
                 seed: int = 12345, lpips_net: str | None = None,
                 lpips_weights_path: str | None = None) -> None:
        self.num_pairs, self.size, self.every_kimg, self.seed = num_pairs, size, every_kimg, seed
        self.lpips_net, self.lpips_weights_path = lpips_net, lpips_weights_path
        self.lpips = None
        self.history: list[tuple[float, float]] = []
        self.lpips_history: list[tuple[float, float]] = []
        self.schedule = KimgSchedule(every_kimg)
        self._pairs = self._labels = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        require(pl_module, Swaps, "GroundTruthSwapError")
        if self.lpips_net is not None and self.lpips is None:
            from lightning_modules.pretrained import (
                LPIPS,  # fails here, before training, without weights
            )

            self.lpips = LPIPS(self.lpips_net, self.lpips_weights_path)

    @torch.no_grad()
    def swaps(self, pl_module: L.LightningModule) -> tuple[torch.Tensor, torch.Tensor]:
        """(swaps clamped to [-1, 1], true swaps) of the fixed pairs."""
        if self._pairs is None:
            self._pairs = swap_pairs_with_truth(self.num_pairs, self.size, self.seed)
        structures, textures, truths = (t.to(pl_module.device) for t in self._pairs)
        was_training = pl_module.training
        pl_module.eval()
        swaps = pl_module.swap(structures, textures)
        pl_module.train(was_training)
        return swaps.clamp(-1, 1), truths

    def record(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        kimg = kimg_of(pl_module)
        swaps, truths = self.swaps(pl_module)
        value = float((swaps - truths).abs().mean())
        if self._labels is None:
            self._labels = swap_truth_labels(self.num_pairs, self.size, self.seed)
        labels = self._labels.to(swaps.device)
        metrics = {"swap/l1_to_true_swap": value, "progress/kimg": kimg,
                   "swap/structure_accuracy": float(structure_accuracy(swaps, labels).mean()),
                   "swap/texture_accuracy": float(texture_accuracy(swaps, truths,
                                                                   labels).mean())}
        self.history.append((kimg, value))
        if self.lpips is not None:
            perceptual = float(self.lpips.to(swaps.device)(swaps, truths).mean())
            self.lpips_history.append((kimg, perceptual))
            metrics["swap/lpips_to_true_swap"] = perceptual
            log_provenance(trainer, "swap/lpips_to_true_swap",
                           {"value": perceptual, "kimg": kimg, "num_pairs": self.num_pairs,
                            **self.lpips.provenance})
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)

    def run(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.record(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        for label, history in (("L1", self.history), ("LPIPS", self.lpips_history)):
            if history:
                first, last = history[0], history[-1]
                print(f"ground-truth swap {label}: {first[1]:.4f} at {first[0]:.1f} kimg -> "
                      f"{last[1]:.4f} at {last[0]:.1f} kimg")

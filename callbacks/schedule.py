"""The one "every N kimg" schedule of corrlab's callbacks.

Training length is counted in images seen (the module's ``images_seen``), never in optimizer
steps, so periodic callbacks (grids, tables, metrics) fire every ``every_kimg`` thousand images:
after the first training batch whose count reaches the next due point, then ``every_kimg``
later. ``at_train_start`` / ``at_train_end`` add the two ends of training; ``corrlab validate`` runs
each scheduled callback once.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.trainer.states import TrainerFn

from lightning_modules.errors import ConfigError


def kimg_of(pl_module: L.LightningModule) -> float:
    """Thousands of images the module has trained on (0 for modules that do not count)."""
    return getattr(pl_module, "images_seen", 0) / 1000.0


class KimgSchedule:
    """``every_kimg`` (None: never during training), plus the two ends of training."""

    def __init__(self, every_kimg: float | None, at_train_start: bool = True,
                 at_train_end: bool = True) -> None:
        if every_kimg is not None and every_kimg <= 0:
            raise ConfigError(f"every_kimg must be > 0 or null, got {every_kimg}")
        self.every_kimg, self.at_train_start, self.at_train_end = every_kimg, at_train_start, \
            at_train_end
        self.next_kimg = every_kimg if every_kimg is not None else float("inf")

    def restart(self, kimg: float) -> None:
        """The next due point is one interval after ``kimg`` (a run starting or resuming)."""
        self.next_kimg = kimg + self.every_kimg if self.every_kimg is not None else float("inf")

    def due(self, kimg: float) -> bool:
        """Whether the callback runs after a batch that brought the count to ``kimg``; if so, the
        next due point moves one interval on."""
        if kimg < self.next_kimg:
            return False
        self.restart(kimg)
        return True


class KimgScheduledCallback(L.Callback):
    """A callback that runs :meth:`run` at the start of training, every ``every_kimg`` and at
    the end, as its :attr:`schedule` says; :meth:`prepare` runs once before the first
    :meth:`run` (fixed samples, references)."""

    schedule: KimgSchedule

    def prepare(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Called when training starts, before anything is run."""

    def run(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        raise NotImplementedError

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.prepare(trainer, pl_module)
        self.schedule.restart(kimg_of(pl_module))
        if self.schedule.at_train_start:
            self.run(trainer, pl_module)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.schedule.due(kimg_of(pl_module)):
            self.run(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.schedule.at_train_end:
            self.run(trainer, pl_module)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """``corrlab validate`` (and so ``corrlab evaluate``): one run on the checkpoint;
        validation inside ``fit`` leaves the schedule alone."""
        if trainer.state.fn == TrainerFn.VALIDATING and not trainer.sanity_checking:
            self.prepare(trainer, pl_module)
            self.run(trainer, pl_module)

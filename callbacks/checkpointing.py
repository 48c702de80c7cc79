"""Checkpoints for long GAN runs: ``last.ckpt`` every ``every_kimg`` of images seen, snapshots
that are kept, and preemption: SIGTERM or SIGUSR1 saves at the end of the current iteration (a
safe point: all phases done, counters advanced) and stops; under SLURM the job is requeued and
the requeued job resumes from ``last.ckpt`` (``--ckpt_path last``, see ``experiments/slurm/``).

Files are written by the trainer's ``CheckpointIO`` (``corrlab`` installs
:class:`~lightning_modules.checkpoint_io.AtomicCheckpointIO`: never half-written).
"""

from __future__ import annotations

import logging
import math
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.distributed as dist
from lightning.pytorch.callbacks import ModelCheckpoint

from lightning_modules.distributed import rank_and_world
from lightning_modules.errors import ConfigError

log = logging.getLogger(__name__)

PREEMPTION_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


def crossed(before_kimg: float, after_kimg: float, every_kimg: float | None) -> bool:
    """Whether a multiple of ``every_kimg`` lies in ``(before_kimg, after_kimg]``."""
    if not every_kimg:
        return False
    return math.floor(after_kimg / every_kimg + 1e-9) > math.floor(before_kimg / every_kimg
                                                                   + 1e-9)


def max_over_ranks(value: int, device: torch.device | str = "cpu") -> int:
    """The largest ``value`` of all ranks, on every rank (``device``: where the process
    group's backend reduces, the GPU for NCCL)."""
    if rank_and_world()[1] == 1:
        return value
    tensor = torch.tensor([value], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return int(tensor.item())


def slurm_job_id() -> str | None:
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    if array_job:
        return f"{array_job}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ.get("SLURM_JOB_ID")


class KimgCheckpoint(ModelCheckpoint):
    """``last.ckpt`` every ``every_kimg`` and at the end of training; ``snapshot_kimg``: also
    keep ``kimg<N>.ckpt`` at those multiples. ``handle_signals``: SIGTERM / SIGUSR1 save
    ``last.ckpt`` at the end of the running iteration and stop training (all ranks together);
    ``requeue``: after a SIGUSR1 under SLURM, ``scontrol requeue`` the job.

    Needs a module counting ``images_seen`` (every corrlab GAN module)."""

    def __init__(self, every_kimg: float = 10.0, snapshot_kimg: float | None = None,
                 handle_signals: bool = True, requeue: bool = True,
                 dirpath: str | None = None) -> None:
        super().__init__(dirpath=dirpath, save_last=True, save_top_k=0,
                         save_on_train_epoch_end=False)
        if every_kimg <= 0:
            raise ConfigError(f"KimgCheckpoint: every_kimg must be > 0, got {every_kimg}")
        self.every_kimg, self.snapshot_kimg = every_kimg, snapshot_kimg
        self.handle_signals, self.requeue = handle_signals, requeue
        self.received_signal: int | None = None
        self._last_saved_kimg: float | None = None
        self._previous_handlers: dict[int, Any] = {}

    # -- signals -------------------------------------------------------------------------------
    def _on_signal(self, signum: int, frame: Any) -> None:
        self.received_signal = signum  # acted on at the next safe point

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Installed here, after Lightning registered its own SIGTERM handler, to replace it:
        # Lightning's raises SIGTERMException at the start of the next batch, which can beat
        # the save below and, under DDP, split the ranks between two exit paths.
        if self.handle_signals and not self._previous_handlers:
            for signum in PREEMPTION_SIGNALS:
                self._previous_handlers[signum] = signal.signal(signum, self._on_signal)

    def restore_signal_handlers(self) -> None:
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers = {}

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule,
                     exception: BaseException) -> None:
        self.restore_signal_handlers()

    # -- saving --------------------------------------------------------------------------------
    def save(self, trainer: L.Trainer, name: str) -> str:
        path = str(Path(self.dirpath) / f"{name}{self.FILE_EXTENSION}")
        trainer.save_checkpoint(path)
        return path

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        kimg = pl_module.images_seen / 1000.0
        before = kimg - pl_module.batch_size(batch) * pl_module.world_size / 1000.0
        # the signal any rank received (under torchrun / SLURM every rank gets it; when only
        # rank 0 does, the others learn it here, at the same iteration)
        signum = max_over_ranks(self.received_signal or 0, pl_module.device)
        stop = signum > 0
        if self.snapshot_kimg and crossed(before, kimg, self.snapshot_kimg):
            self.save(trainer, f"kimg{kimg:09.3f}")
        if stop or crossed(before, kimg, self.every_kimg):
            self.last_model_path = self.save(trainer, self.CHECKPOINT_NAME_LAST)
            self._last_saved_kimg = kimg
        if stop:
            log.warning("Signal %s: saved %s at %.3f kimg; stopping.", signum,
                        self.last_model_path, kimg)
            trainer.should_stop = True
            if (self.requeue and signum == signal.SIGUSR1 and slurm_job_id()
                    and trainer.is_global_zero):
                subprocess.run(["scontrol", "requeue", slurm_job_id()], check=False)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.restore_signal_handlers()
        kimg = pl_module.images_seen / 1000.0
        if self._last_saved_kimg != kimg:
            self.last_model_path = self.save(trainer, self.CHECKPOINT_NAME_LAST)
            self._last_saved_kimg = kimg

    # ModelCheckpoint's own epoch / validation-end saving is replaced by the above.
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pass

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pass

"""Callbacks the resume tests add to ``corrlab fit`` runs (by class path, from the command line).

``LossRecorder`` appends each iteration's logged losses to a JSON-lines file, flushed and
fsynced per line so a SIGKILL loses nothing already recorded. ``KillAt`` SIGKILLs the whole
process group (every DDP rank) at the end of an iteration: what a node failure looks like.
``PoisonAt`` writes NaN into a discriminator weight, so the next phase's loss is non-finite.
"""

from __future__ import annotations

import json
import os
import random
import signal

import lightning as L
import numpy as np
import torch


class LossRecorder(L.Callback):
    """Also draws from the global Python, NumPy and torch generators each iteration (as user
    code in the training process might), so the records show whether their states resume."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs,
                           batch, batch_idx: int) -> None:
        if not trainer.is_global_zero:
            return
        losses = {key: float(value) for key, value in trainer.callback_metrics.items()
                  if "/" in key and not key.startswith("progress/")}
        losses["rng/python"] = random.random()
        losses["rng/numpy"] = float(np.random.rand())
        losses["rng/torch"] = float(torch.rand(()))
        record = {"iteration": pl_module.iteration, "losses": losses}
        with open(self.path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            os.fsync(handle.fileno())


class KillAt(L.Callback):
    def __init__(self, iteration: int) -> None:
        self.iteration = iteration

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs,
                           batch, batch_idx: int) -> None:
        if pl_module.iteration == self.iteration and trainer.is_global_zero:
            os.killpg(os.getpgid(0), signal.SIGKILL)


class PoisonAt(L.Callback):
    def __init__(self, iteration: int) -> None:
        self.iteration = iteration

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs,
                           batch, batch_idx: int) -> None:
        if pl_module.iteration == self.iteration:
            with torch.no_grad():
                next(pl_module.image_discriminator.parameters()).fill_(float("nan"))

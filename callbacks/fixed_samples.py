"""Fixed samples for callbacks that show or measure the same images over a run."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import default_collate

from lightning_modules.errors import ConfigError


def first_items(trainer: L.Trainer, count: int, what: str) -> dict[str, torch.Tensor]:
    """The first ``count`` items of the datamodule's validation set (else its training set),
    collated into one batch dict; item i is drawn with sample seed i, so any randomness of an
    item (a style image drawn for it, an exemplar) is the same in every run. ``what`` names the
    caller in errors."""
    datamodule = trainer.datamodule
    if getattr(datamodule, "train_set", None) is None and hasattr(datamodule, "setup"):
        datamodule.setup("fit")
    dataset = getattr(datamodule, "val_set", None) or datamodule.train_set
    count = min(count, len(dataset))
    if count < 1:
        raise ConfigError(f"{what}: the datamodule has no validation items to show.")
    return default_collate([dataset[(i, i)] for i in range(count)])

"""Metric values with their provenance, to every logger and to ``metrics.json``.

Numbers go through ``pl_module.log`` (so ``trainer.validate`` returns them and checkpoints can
monitor them). The provenance (image counts, cache key, weights hash, resize method) goes to
each logger in the form it can hold: CSV rows, a W&B summary, TensorBoard text. Rank 0 also
writes ``<run dir>/metrics.json`` (the latest record per metric) and appends every record to
``metrics.jsonl``, which is what ``corrlab validate`` leaves behind for papers.
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only

from lightning_modules.checkpoint_io import atomic_write


def run_dir(trainer: L.Trainer) -> Path:
    """The run folder: the first logger's folder, else ``default_root_dir``."""
    for logger in trainer.loggers:
        if getattr(logger, "log_dir", None):
            return Path(logger.log_dir)
    return Path(trainer.default_root_dir)


def write_json_atomic(path: Path, payload: object) -> None:
    """Write JSON through :func:`~lightning_modules.checkpoint_io.atomic_write`."""
    text = json.dumps(payload, indent=2, sort_keys=True) + "\n"
    atomic_write(path, lambda handle: handle.write(text.encode()))


@rank_zero_only
def log_provenance(trainer: L.Trainer, name: str, record: dict) -> None:
    """Send ``record`` (numbers and strings describing metric ``name``) to every logger and to
    the run's ``metrics.json`` / ``metrics.jsonl``."""
    flat = {f"{name}/{key}": value for key, value in record.items()}
    for logger in trainer.loggers:
        if isinstance(logger, CSVLogger):
            logger.log_metrics(flat, step=trainer.global_step)
        elif isinstance(logger, WandbLogger):
            logger.experiment.summary.update(flat)
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.add_text(f"{name}/provenance", "```\n" + json.dumps(
                record, indent=2, sort_keys=True) + "\n```", global_step=trainer.global_step)
    folder = run_dir(trainer)
    folder.mkdir(parents=True, exist_ok=True)
    summary_path = folder / "metrics.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    summary[name] = record
    write_json_atomic(summary_path, summary)
    with open(folder / "metrics.jsonl", "a") as handle:
        handle.write(json.dumps({"metric": name, **record}, sort_keys=True) + "\n")

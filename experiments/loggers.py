"""Default loggers of a corrlab run: CSV and TensorBoard always, W&B offline unless online use is
asked for. All of them write below ``<runs_dir>/<experiment>/<version>/``."""

from __future__ import annotations

import os
import re
from pathlib import Path

from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger, WandbLogger

from lightning_modules.errors import ConfigError

LOGGER_NAMES = ("csv", "tensorboard", "wandb")
_VERSION_ENV = "CORRLAB_RUN_VERSION"


def wandb_mode() -> str:
    """``online`` when ``WANDB_MODE=online`` or an API key is set (and no other mode forced),
    ``disabled`` when ``WANDB_MODE=disabled``, else ``offline``."""
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode in ("online", "offline", "disabled"):
        return mode
    if mode == "dryrun":
        return "offline"
    return "online" if os.environ.get("WANDB_API_KEY") else "offline"


def next_version(experiment_dir: Path) -> str:
    """``version_N`` with N one past the largest existing; DDP workers reuse rank 0's choice."""
    pinned = os.environ.get(_VERSION_ENV)
    if pinned and int(os.environ.get("LOCAL_RANK", "0")) > 0:
        return pinned
    numbers = [int(m.group(1)) for p in experiment_dir.glob("version_*")
               if (m := re.fullmatch(r"version_(\d+)", p.name))]
    version = f"version_{max(numbers, default=-1) + 1}"
    os.environ[_VERSION_ENV] = version  # inherited by the DDP worker processes Lightning starts
    return version


def default_loggers(runs_dir: str, experiment: str, names: list[str],
                    version: str | None = None) -> list[Logger]:
    """The loggers named in ``names`` (any of :data:`LOGGER_NAMES`), sharing one run folder."""
    unknown = [n for n in names if n not in LOGGER_NAMES]
    if unknown:
        raise ConfigError(f"--loggers: unknown logger(s) {unknown}; choose from {LOGGER_NAMES}")
    version = version or next_version(Path(runs_dir) / experiment)
    run_dir = Path(runs_dir) / experiment / version
    loggers: list[Logger] = []
    if "csv" in names:
        loggers.append(CSVLogger(runs_dir, name=experiment, version=version))
        _ = loggers[-1].experiment  # create the run folder while it is still empty
    if "tensorboard" in names:
        loggers.append(TensorBoardLogger(runs_dir, name=experiment, version=version,
                                         default_hp_metric=False))
    if "wandb" in names and wandb_mode() != "disabled":
        run_dir.mkdir(parents=True, exist_ok=True)
        loggers.append(WandbLogger(name=f"{experiment}/{version}", project="corrlab",
                                   save_dir=str(run_dir), offline=wandb_mode() == "offline",
                                   group=experiment))
    return loggers

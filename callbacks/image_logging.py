"""Send images to every logger the trainer has: TensorBoard (``add_image``), W&B
(``log_image``) and CSV (a PNG file under ``<log_dir>/images/<key>/``, since a CSV cannot hold
pixels). Callbacks own all logging side effects; modules never call this."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from PIL import Image

log = logging.getLogger(__name__)
_warned: set[str] = set()


def images_to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float images (any layout) -> uint8, rounded. Saved PNGs and metric features use
    this one conversion, so FID of saved samples equals FID measured in training."""
    return ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def to_hwc_uint8(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """A CHW float image in [-1, 1] (or an HWC uint8 array) as HWC uint8."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3:
            raise ValueError("numpy images must be HWC uint8")
        return image
    if image.dim() != 3:
        raise ValueError(f"expected one CHW image, got shape {tuple(image.shape)}")
    return images_to_uint8(image).permute(1, 2, 0).cpu().numpy()


def save_png(image: np.ndarray, path: Path) -> Path:
    """Write an HWC uint8 image atomically (a temporary file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    Image.fromarray(image).save(partial, format="PNG")
    partial.replace(path)
    return path


@rank_zero_only
def log_image(trainer: L.Trainer, key: str, image: torch.Tensor | np.ndarray,
              step: int | None = None) -> None:
    """Log one image (CHW float in [-1, 1], or HWC uint8) under ``key`` to every logger."""
    array = to_hwc_uint8(image)
    step = trainer.global_step if step is None else step
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(key, array, global_step=step, dataformats="HWC")
        elif isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[array], step=step)
        elif isinstance(logger, CSVLogger):
            safe_key = key.replace("/", "_")
            save_png(array, Path(logger.log_dir) / "images" / safe_key / f"{step:09d}.png")
        elif hasattr(logger, "log_image"):
            logger.log_image(key=key, images=[array], step=step)
        elif type(logger).__name__ not in _warned:
            _warned.add(type(logger).__name__)
            log.warning("%s cannot receive images; '%s' not logged there.",
                        type(logger).__name__, key)

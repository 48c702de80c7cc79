"""Image tables for any module with ``visualize(batch) -> {column: images}``
(:class:`lightning_modules.contracts.Visualizes`): one row per fixed sample, one column per
named image (input | exemplar | warped exemplar | output | truth), a title row on top.

Logged to every logger like the swap grid and saved as PNG under ``<run>/image_tables/``, at
the start and end of training and every ``every_kimg``; the samples are the first
``num_samples`` validation items, fixed for the whole run, so tables are comparable over time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import move_data_to_device
from PIL import Image, ImageDraw
from torchvision.utils import make_grid

from callbacks.fixed_samples import first_items
from callbacks.image_logging import log_image, save_png, to_hwc_uint8
from callbacks.schedule import KimgSchedule, KimgScheduledCallback
from lightning_modules.contracts import Visualizes, require


def image_table(columns: dict[str, torch.Tensor], padding: int = 2,
                title_height: int = 14) -> np.ndarray:
    """HWC uint8: the columns side by side (sample i in row i), titles above them."""
    names = list(columns)
    rows = {tuple(images.shape[0:1]) for images in columns.values()}
    sizes = {tuple(images.shape[2:]) for images in columns.values()}
    if len(rows) != 1 or len(sizes) != 1:
        raise ValueError(f"visualize() columns must hold the same number of images of one size, "
                         f"got {({n: tuple(c.shape) for n, c in columns.items()})}")
    count = next(iter(rows))[0]
    cells = torch.stack([columns[name][i].float().cpu().expand(3, -1, -1)
                         for i in range(count) for name in names])
    grid = to_hwc_uint8(make_grid(cells, nrow=len(names), padding=padding, pad_value=1.0))
    header = Image.new("RGB", (grid.shape[1], title_height), (255, 255, 255))
    draw = ImageDraw.Draw(header)
    width = next(iter(sizes))[1] + padding
    for index, name in enumerate(names):
        draw.text((padding + index * width + 2, 1), fit_title(draw, name, width - 4),
                  fill=(0, 0, 0))
    return np.concatenate([np.asarray(header), grid], axis=0)


def fit_title(draw: ImageDraw.ImageDraw, name: str, width: float) -> str:
    """``name`` shortened to ``width`` pixels (``warped_exemplar`` -> ``warped_ex.``) so that
    it does not run into the next column's title."""
    if draw.textlength(name) <= width:
        return name
    while len(name) > 1 and draw.textlength(name + ".") > width:
        name = name[:-1]
    return name + "."


class ImageTable(KimgScheduledCallback):
    """Args:
        every_kimg: interval in thousands of images seen (None: start and end only).
        num_samples: rows (the first validation items).
        key: logger key; PNGs go to ``<run>/image_tables/<key>_<kimg>kimg.png``.
    """

    def __init__(self, every_kimg: float | None = 10.0, num_samples: int = 4,
                 key: str = "image_table") -> None:
        self.schedule = KimgSchedule(every_kimg)
        self.num_samples, self.key = num_samples, key
        self.batch: Any = None
        self.saved: list[Path] = []

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        require(pl_module, Visualizes, "ImageTable")

    def prepare(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.batch = first_items(trainer, self.num_samples, "ImageTable")

    @torch.no_grad()
    def run(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.batch is None or not trainer.is_global_zero:
            return
        was_training = pl_module.training
        pl_module.eval()
        columns = pl_module.visualize(move_data_to_device(self.batch, pl_module.device))
        pl_module.train(was_training)
        table = image_table({name: images.clamp(-1, 1) for name, images in columns.items()})
        step = int(getattr(pl_module, "images_seen", trainer.global_step))
        log_image(trainer, self.key, table, step=step)
        folder = Path(trainer.log_dir or trainer.default_root_dir) / "image_tables"
        self.saved.append(save_png(table, folder / f"{self.key}_{step / 1000:09.3f}kimg.png"))

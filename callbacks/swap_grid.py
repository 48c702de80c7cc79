"""Swap grids (Park et al. 2020, Fig. 4 layout) for any module with ``swap`` and ``encode``.

Every ``every_kimg`` thousand images (and at the start and end of training) an (N+1) x (N+1)
grid is logged to every logger and saved as PNG under ``<log_dir>/swap_grids/``: the first row
holds the texture references, the first column the structure references, and cell (i, j) is
``swap(structure_i, texture_j)``. Images and noise are fixed, so grids are comparable over time.
The structure codes are also rendered as RGB through their 3 principal components.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torchvision.utils import make_grid

from callbacks.fixed_samples import first_items
from callbacks.image_logging import log_image, save_png, to_hwc_uint8
from callbacks.schedule import KimgSchedule, KimgScheduledCallback
from datamodules.keys import IMAGE
from lightning_modules.contracts import EncodesDecodes, Swaps, require
from lightning_modules.errors import ConfigError


def swap_grid(structure_images: torch.Tensor, texture_images: torch.Tensor,
              swaps: torch.Tensor, padding: int = 2) -> torch.Tensor:
    """One CHW image: blank corner, texture references along the top, structure references
    down the left, ``swaps[i, j]`` (``N x M x 3 x H x W``) at row i + 1, column j + 1."""
    rows, columns = swaps.shape[:2]
    blank = torch.ones_like(texture_images[:1])
    cells = [blank, *texture_images]
    for i in range(rows):
        cells += [structure_images[i:i + 1], *swaps[i].split(1)]
    cells = torch.cat([c.reshape(1, *c.shape[-3:]) for c in cells])
    return make_grid(cells, nrow=columns + 1, padding=padding, pad_value=1.0)


def structure_code_rgb(structure_code: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Structure codes (``B x C x h x w``) as RGB in [-1, 1] through the 3 principal components
    of all their pixels, nearest-upsampled to ``size``."""
    batch, channels, height, width = structure_code.shape
    pixels = structure_code.permute(0, 2, 3, 1).reshape(-1, channels).float()
    pixels = pixels - pixels.mean(dim=0)
    _, _, directions = torch.linalg.svd(pixels, full_matrices=False)
    projected = pixels @ directions[:3].T
    if projected.shape[1] < 3:
        projected = F.pad(projected, (0, 3 - projected.shape[1]))
    low, high = projected.min(dim=0).values, projected.max(dim=0).values
    rgb = (projected - low) / (high - low).clamp_min(1e-8) * 2 - 1
    rgb = rgb.reshape(batch, height, width, 3).permute(0, 3, 1, 2)
    return F.interpolate(rgb, size=size, mode="nearest")


class SwapGrid(KimgScheduledCallback):
    """Args:
        every_kimg: interval in thousands of images seen (the module's ``images_seen``).
        num_images: N structure and N texture references (the first 2N validation images).
        noise_seed: seed of the fixed generator noise.
        key: logger key of the grid (the structure codes go to ``<key>/structure_code``).
    """

    def __init__(self, every_kimg: float = 50.0, num_images: int = 4, noise_seed: int = 0,
                 key: str = "swap_grid") -> None:
        self.every_kimg, self.num_images = every_kimg, num_images
        self.noise_seed, self.key = noise_seed, key
        self.references: torch.Tensor | None = None
        self.schedule = KimgSchedule(every_kimg)
        self.saved: list[Path] = []

    def reference_images(self, trainer: L.Trainer) -> torch.Tensor:
        images = first_items(trainer, 2 * self.num_images, "SwapGrid")[IMAGE]
        if len(images) < 2:
            raise ConfigError("SwapGrid needs at least 2 reference images")
        return images

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        require(pl_module, Swaps, "SwapGrid")
        require(pl_module, EncodesDecodes, "SwapGrid")

    def prepare(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.references = self.reference_images(trainer)

    def run(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.log_grid(trainer, pl_module)

    @torch.no_grad()
    def log_grid(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.references is None or not trainer.is_global_zero:
            return
        images = self.references.to(pl_module.device)
        half = len(images) // 2
        structure_images, texture_images = images[:half], images[half:2 * half]
        was_training = pl_module.training
        pl_module.eval()
        swaps = torch.stack([pl_module.swap(structure_images[i:i + 1].expand(half, -1, -1, -1),
                                            texture_images, noise_seed=self.noise_seed)
                             for i in range(half)])
        structure_code, _ = pl_module.encode(structure_images)
        pl_module.train(was_training)
        grid = swap_grid(structure_images.cpu(), texture_images.cpu(), swaps.float().cpu())
        codes = make_grid(structure_code_rgb(structure_code, images.shape[2:]).cpu(),
                          nrow=half, padding=2, pad_value=1.0)
        step = int(getattr(pl_module, "images_seen", trainer.global_step))
        log_image(trainer, self.key, grid, step=step)
        log_image(trainer, f"{self.key}/structure_code", codes, step=step)
        folder = Path(trainer.log_dir or trainer.default_root_dir) / "swap_grids"
        path = save_png(to_hwc_uint8(grid), folder / f"{self.key}_{step / 1000:09.3f}kimg.png")
        self.saved.append(path)

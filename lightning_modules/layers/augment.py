"""Adaptive discriminator augmentation, ADA-style (Karras et al., NeurIPS 2020).

Every image the discriminator sees (reals, fakes, the reals of R1) passes through the same
differentiable pipeline; each transform is applied to each image with probability ``p``
(Sec. 2.2: p < 0.8 keeps the augmentations from leaking into the generator):

- geometric, combined into one affine warp (bilinear, reflection padding): x-flip, rotation by a
  multiple of 90 degrees, integer translation (up to 1/8 of the side), isotropic scaling
  (log-normal, std 0.2 ln 2), arbitrary rotation, fractional translation (std 1/8);
- colour: brightness (+N(0, 0.2)), contrast (x log-normal, std 0.5 ln 2), saturation
  (x log-normal, std ln 2 around the per-pixel luma).

``p`` is tuned by the overfitting heuristic r_t = E[sign(D(real))] (Sec. 3, Eq. 1): every
``interval`` D steps, p moves by ``sign(r_t - target) * images / (speed_kimg * 1000)``. This is
the "bgc" pipeline without ADA's luma flip and hue rotation and with bilinear instead of
wavelet resampling.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from lightning_modules.errors import ConfigError

#: (batch, *shape, kind="normal" | "uniform") -> tensor of that many per-image random values
Draw = Callable[..., torch.Tensor]

LUMA = (0.299, 0.587, 0.114)


def _chosen(draw: Draw, batch: int, p: float) -> torch.Tensor:
    """``batch`` 0/1 floats: 1 where a transform is applied (probability ``p``)."""
    return (draw(batch, kind="uniform") < p).float()


def _rotation(angle: torch.Tensor) -> torch.Tensor:
    cos, sin = torch.cos(angle), torch.sin(angle)
    zero, one = torch.zeros_like(angle), torch.ones_like(angle)
    return torch.stack([torch.stack([cos, -sin, zero], -1), torch.stack([sin, cos, zero], -1),
                        torch.stack([zero, zero, one], -1)], -2)


def _translation(tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    zero, one = torch.zeros_like(tx), torch.ones_like(tx)
    return torch.stack([torch.stack([one, zero, tx], -1), torch.stack([zero, one, ty], -1),
                        torch.stack([zero, zero, one], -1)], -2)


def _scaling(sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    zero, one = torch.zeros_like(sx), torch.ones_like(sx)
    return torch.stack([torch.stack([sx, zero, zero], -1), torch.stack([zero, sy, zero], -1),
                        torch.stack([zero, zero, one], -1)], -2)


def geometric_matrix(batch: int, side: int, p: float, draw: Draw) -> torch.Tensor:
    """``batch x 3 x 3`` maps from output to input coordinates in [-1, 1] (affine_grid's)."""
    flip = 1 - 2 * _chosen(draw, batch, p) * (draw(batch, kind="uniform") < 0.5).float()
    quarter = _chosen(draw, batch, p) * torch.floor(draw(batch, kind="uniform") * 4)
    pixel = 2.0 / side
    shift = _chosen(draw, batch, p)[:, None] * torch.round(
        (draw(batch, 2, kind="uniform") * 2 - 1) * 0.125 * side) * pixel
    scale = torch.exp2(_chosen(draw, batch, p) * draw(batch) * 0.2)
    angle = _chosen(draw, batch, p) * (draw(batch, kind="uniform") * 2 - 1) * math.pi
    fraction = _chosen(draw, batch, p)[:, None] * draw(batch, 2) * 0.125 * 2
    return (_scaling(flip, torch.ones_like(flip)) @ _rotation(quarter * math.pi / 2)
            @ _translation(shift[:, 0], shift[:, 1]) @ _scaling(scale, scale)
            @ _rotation(angle) @ _translation(fraction[:, 0], fraction[:, 1]))


def augment(images: torch.Tensor, p: float, draw: Draw) -> torch.Tensor:
    """The pipeline at probability ``p`` (images in [-1, 1], ``N x C x H x W``);
    differentiable with respect to ``images``. ``p == 0`` returns ``images`` unchanged."""
    if p <= 0:
        return images
    batch, channels = images.shape[:2]
    matrix = geometric_matrix(batch, images.shape[-1], p, draw).to(images)
    grid = F.affine_grid(matrix[:, :2], list(images.shape), align_corners=False)
    images = F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection",
                           align_corners=False)
    per_image = (batch, 1, 1, 1)
    brightness = _chosen(draw, batch, p) * draw(batch) * 0.2
    images = images + brightness.to(images).view(per_image)
    contrast = torch.exp2(_chosen(draw, batch, p) * draw(batch) * 0.5)
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    images = mean + (images - mean) * contrast.to(images).view(per_image)
    saturation = torch.exp2(_chosen(draw, batch, p) * draw(batch))
    if channels == 3:
        luma = (images * images.new_tensor(LUMA).view(1, 3, 1, 1)).sum(1, keepdim=True)
        images = luma + (images - luma) * saturation.to(images).view(per_image)
    return images


class AdaptiveAugment(nn.Module):
    """ADA's controller: holds ``p`` (a buffer, so checkpoints resume it) and the running
    sign statistic of the real logits.

    Args:
        target: the r_t the controller steers to (paper: 0.6).
        speed_kimg: images (in thousands) over which p can go from 0 to 1 (paper: 500).
        interval: adjust every this many D steps (paper: 4).
        initial_p: starting probability; with ``target=None`` it stays fixed.
    """

    def __init__(self, target: float | None = 0.6, speed_kimg: float = 500.0, interval: int = 4,
                 initial_p: float = 0.0) -> None:
        super().__init__()
        if not 0 <= initial_p <= 1 or interval < 1 or speed_kimg <= 0:
            raise ConfigError(f"augmentation: need 0 <= initial_p <= 1 (got {initial_p}), "
                             f"interval >= 1 (got {interval}), speed_kimg > 0 (got {speed_kimg})")
        self.target, self.speed_kimg, self.interval = target, speed_kimg, interval
        self.register_buffer("p", torch.tensor(float(initial_p), dtype=torch.float64))
        # running sums since the last adjustment: [sum of signs, count, D steps]
        self.register_buffer("stats", torch.zeros(3, dtype=torch.float64))

    def forward(self, images: torch.Tensor, draw: Draw) -> torch.Tensor:
        return augment(images, float(self.p), draw)

    @torch.no_grad()
    def observe(self, real_logits: torch.Tensor, world_size: int = 1) -> None:
        """Record one D step's real logits (patch logits: their per-image mean); adjust ``p``
        every ``interval`` steps from r_t summed over all ranks."""
        if self.target is None:
            return
        signs = torch.sign(real_logits.detach().flatten(1).mean(dim=1)).double()
        self.stats += torch.stack([signs.sum(), signs.new_tensor(signs.numel()),
                                   signs.new_tensor(1.0)])
        if self.stats[2] < self.interval:
            return
        sums = self.stats[:2].clone()
        if world_size > 1 and torch.distributed.is_available() and \
                torch.distributed.is_initialized():
            torch.distributed.all_reduce(sums)
        rate = sums[0] / sums[1]
        step = torch.sign(rate - self.target) * sums[1] / (self.speed_kimg * 1000)
        self.p.copy_((self.p + step).clamp(0.0, 1.0))
        self.stats.zero_()

    def rate(self) -> float:
        """r_t of the steps recorded since the last adjustment (nan if none)."""
        return float(self.stats[0] / self.stats[1]) if self.stats[1] > 0 else float("nan")

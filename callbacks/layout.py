"""Does an image have the layout it should? A texture-blind layout measure for shapes & textures.

In shapes & textures every region has its own hue and a pattern only blends two shades of it,
so the edges of the hue field mark region boundaries (the layout) and mostly ignore the
pattern. :func:`structure_similarity` correlates two images' hue-edge maps: about 0.8 for two
images with the same layout in different texture families, 0.1 for different layouts, at any
texture scale (``tests/test_few_shot_cdc.py``). Used by the few-shot CDC report (layout kept
by adaptation) and the style-transfer ground-truth callback (structure kept by stylisation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, int(round(3 * sigma)))
    taps = torch.exp(-torch.arange(-radius, radius + 1, dtype=torch.float64) ** 2
                     / (2 * sigma**2))
    taps = (taps / taps.sum()).float()
    return taps[:, None] * taps[None, :]


def layout_edges(images: torch.Tensor, sigma: float = 0.7) -> torch.Tensor:
    """Edges of the hue (chroma direction) field: ``N x H x W``.

    In shapes & textures every region has its own hue and a pattern only blends two shades of
    it (same hue within 0.08 of a turn), so hue edges mark region boundaries (layout) and
    mostly ignore the pattern; near-gray pixels, whose hue is undefined, contribute little.
    """
    rgb = (images.float() + 1) / 2
    luma = (rgb * rgb.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    chroma = torch.cat([rgb[:, 2:3] - luma, rgb[:, 0:1] - luma], dim=1)  # (B - Y, R - Y)
    kernel = _gaussian_kernel(sigma * images.shape[-1] / 32)[None, None].repeat(2, 1, 1, 1)
    pad = kernel.shape[-1] // 2
    chroma = F.conv2d(F.pad(chroma, (pad,) * 4, mode="reflect"), kernel, groups=2)
    direction = chroma / (chroma.norm(dim=1, keepdim=True) + 0.02)
    padded = F.pad(direction, (1, 1, 1, 1), mode="replicate")
    gx = padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2]
    gy = padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1]
    return (gx.square() + gy.square()).sum(dim=1).sqrt()


def structure_similarity(images_a: torch.Tensor, images_b: torch.Tensor) -> torch.Tensor:
    """Per pair, Pearson correlation of the two :func:`layout_edges` maps (1: same layout)."""
    a = layout_edges(images_a).flatten(1)
    b = layout_edges(images_b).flatten(1)
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    return (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1) + 1e-12)

"""Albumentations pipelines built from config values.

Order: resize the short side to ``load_size`` (area interpolation when shrinking, cubic when
enlarging), crop ``crop_size`` (random for training, centre for evaluation), optional horizontal
flip, normalise to [-1, 1], to a CHW float tensor. Extra image targets (``additional_targets``)
get the same geometry, which is how paired data stays aligned.

Label maps are albumentations ``mask`` targets (``mask=`` or ``additional_targets`` of type
``"mask"``): the same crop and flip, resized with **nearest neighbour** (never interpolated, so
a label map keeps exactly its set of class values), never normalised, integer dtype kept.
"""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np
import torch
from albumentations.pytorch import ToTensorV2

from lightning_modules.errors import ConfigError


def build_transform(crop_size: int, load_size: int | None = None, train: bool = True,
                    flip: bool = True, additional_targets: dict[str, str] | None = None,
                    normalize: bool = True) -> A.Compose:
    """The corrlab image pipeline; see the module docstring. ``normalize=False`` stops after
    the geometry and returns HWC uint8 (the input of metric feature extractors)."""
    if crop_size < 1:
        raise ConfigError(f"crop_size must be positive, got {crop_size}")
    if load_size is not None and load_size < crop_size:
        raise ConfigError(f"load_size ({load_size}) must be >= crop_size ({crop_size})")
    steps: list = []
    if load_size is not None:
        steps.append(ShortSideResize(load_size))
    steps.append(A.RandomCrop(crop_size, crop_size) if train else
                 A.CenterCrop(crop_size, crop_size))
    if train and flip:
        steps.append(A.HorizontalFlip(p=0.5))
    if normalize:
        steps += [A.Normalize(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
                              max_pixel_value=255.0),
                  ToTensorV2()]
    return A.Compose(steps, additional_targets=additional_targets or {}, seed=0)


class ShortSideResize(A.DualTransform):
    """Resize so the short side is ``size``: images with area interpolation when shrinking,
    cubic when enlarging (one fixed interpolation would alias or blur one of the two cases);
    label maps (masks) with nearest neighbour. Deterministic, so every target of a sample
    (paired data, label maps) gets the same geometry."""

    def __init__(self, size: int) -> None:
        super().__init__(p=1.0)
        self.size = size

    def new_size(self, img: np.ndarray) -> tuple[int, int] | None:
        height, width = img.shape[:2]
        if min(height, width) == self.size:
            return None
        scale = self.size / min(height, width)
        return max(self.size, round(width * scale)), max(self.size, round(height * scale))

    def apply(self, img: np.ndarray, **params) -> np.ndarray:
        size = self.new_size(img)
        if size is None:
            return img
        shrinking = size[0] < img.shape[1]
        return cv2.resize(img, size, interpolation=cv2.INTER_AREA if shrinking else
                          cv2.INTER_CUBIC)

    def apply_to_mask(self, mask: np.ndarray, **params) -> np.ndarray:
        size = self.new_size(mask)
        if size is None:
            return mask
        return cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)


def to_image_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 HWC -> float CHW in [-1, 1], the same scaling as the pipelines' normalisation."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 127.5 - 1.0

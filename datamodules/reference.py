"""The real images that metrics (FID, KID) compare a model against.

A datamodule decides which images those are (``reference_set()``): the training domain for
unpaired data, the targets of paired data, the k shots of few-shot data. They are prepared as
the model sees them in evaluation (short-side resize, centre crop) and stay uint8, the input of
the Inception network. The content hash names the exact bytes, so a cache of their statistics
is invalidated when any image changes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from datamodules.sources import ImageSource
from datamodules.synthetic import SyntheticSource
from datamodules.transforms import build_transform

_RENDERER_HASH = hashlib.sha256(
    (Path(__file__).parent / "synthetic.py").read_bytes()).hexdigest()[:16]


def source_content_hash(source: ImageSource, indices: list[int]) -> str:
    """sha256 over the names and stored bytes of the listed images. Synthetic images are named
    by their parameters and the renderer's code instead (they are rendered, not stored)."""
    digest = hashlib.sha256()
    if isinstance(source, SyntheticSource):
        digest.update(f"{source.location}|{source.image_side}|{_RENDERER_HASH}".encode())
        digest.update(np.asarray(indices, dtype=np.int64).tobytes())
        return digest.hexdigest()
    for index in indices:
        data = source.read_bytes(index)
        digest.update(f"{source.names[index]}|{len(data)}|".encode())
        digest.update(data)
    return digest.hexdigest()


@dataclass
class ReferenceSet:
    """``indices`` of ``source`` at ``crop_size`` (after resizing the short side to
    ``load_size``; ``None``: as stored). ``half``: ``left``/``right`` half of side-by-side A|B
    images."""

    source: ImageSource
    indices: list[int]
    crop_size: int | None
    load_size: int | None = None
    half: str | None = None

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def location(self) -> str:
        return self.source.location + (f" ({self.half} half)" if self.half else "")

    @property
    def geometry(self) -> str:
        """How stored images become the compared ones (part of the statistics cache key)."""
        if self.crop_size is None:
            return "as stored"
        resize = f"short side {self.load_size} (area/cubic), " if self.load_size else ""
        half = f"{self.half} half, " if self.half else ""
        return f"{half}{resize}centre crop {self.crop_size}"

    def content_hash(self, limit: int | None = None) -> str:
        return source_content_hash(self.source, self.indices[:limit])

    def dataset(self, limit: int | None = None) -> Dataset:
        return _ReferenceImages(self, self.indices[:limit])


class _ReferenceImages(Dataset):
    """uint8 CHW tensors of a :class:`ReferenceSet` (deterministic: centre crop, no flip)."""

    def __init__(self, reference: ReferenceSet, indices: list[int]) -> None:
        self.reference, self.indices = reference, indices
        self.transform = None
        if reference.crop_size is not None:
            self.transform = build_transform(reference.crop_size, reference.load_size,
                                             train=False, normalize=False)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int) -> torch.Tensor:
        image = self.reference.source.load(self.indices[item])
        if self.reference.half is not None:
            width = image.shape[1] // 2
            image = image[:, :width] if self.reference.half == "left" else \
                image[:, width:2 * width]
        if self.transform is not None:
            image = self.transform(image=image)["image"]
        return torch.from_numpy(np.require(image, requirements=["C", "W"])).permute(2, 0, 1)

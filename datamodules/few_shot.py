"""Few-shot target domains: exactly k images, repeated to a virtual epoch (Ojha et al. 2021
adapt from 10 images)."""

from __future__ import annotations

import logging

import torch

from datamodules.base import SYNTHETIC, ImageDataModule, SeededDataset
from datamodules.decode import DataError
from datamodules.reference import ReferenceSet
from datamodules.synthetic import HELD_OUT_FAMILY
from datamodules.unpaired import ImageDataset
from lightning_modules.errors import ConfigError

log = logging.getLogger(__name__)


class RepeatedDataset(SeededDataset):
    """The k images of ``images`` cycled to ``length`` items (a virtual epoch)."""

    def __init__(self, images: ImageDataset, length: int) -> None:
        self.images, self.length, self.transforms = images, length, images.transforms

    def __len__(self) -> int:
        return self.length

    def get(self, item: int) -> dict:
        return self.images.get(item % len(self.images))


#: a synthetic test set draws from another dataset seed than the k shots
TEST_SET_SEED_OFFSET = 1000


class FewShotDataModule(ImageDataModule):
    """Exactly ``k`` training images (the first k in sorted name order).

    Args:
        source: folder / zip / LMDB of the target domain, or ``synthetic`` (the held-out
            ``rings`` texture family).
        k: number of training images; fewer usable images in the source is an error.
        epoch_length: samples per virtual epoch (the k images repeated, augmented).
        test_set: the full target-domain set that FID compares generated images with (the CDC
            paper's R_test: folder / zip / LMDB, or ``synthetic`` for held-out ``rings`` images
            of another dataset seed); None compares with the k training images.
        **kwargs: see :class:`~datamodules.base.ImageDataModule`.
    """

    def __init__(self, source: str = SYNTHETIC, k: int = 10, epoch_length: int = 1000,
                 test_set: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        if k < 1:
            raise ConfigError(f"k must be >= 1, got {k}")
        self.source, self.k, self.epoch_length = source, k, epoch_length
        self.test_set = test_set
        self.shots: ImageDataset | None = None

    def build_datasets(self) -> tuple[SeededDataset, SeededDataset]:
        source = self.open(self.source, families=(HELD_OUT_FAMILY,), num_images=self.k)
        indices = self.validated(source)
        if len(indices) < self.k:
            raise DataError(f"{source.location}: few-shot training needs k={self.k} images but "
                            f"only {len(indices)} usable image(s) were found. Add images or "
                            "lower `k`.")
        if len(indices) > self.k:
            log.info("%s holds %d images; using the first k=%d in name order.",
                     source.location, len(indices), self.k)
        self.shots = ImageDataset(source, indices[:self.k], self.transform(train=True))
        val = ImageDataset(source, indices[:self.k], self.transform(train=False))
        return RepeatedDataset(self.shots, max(self.epoch_length, self.batch_size)), val

    def reference_set(self) -> ReferenceSet:
        """``test_set`` (the paper's FID protocol: the full target set), else the k training
        images."""
        if self.test_set is not None:
            source = self.open(self.test_set, families=(HELD_OUT_FAMILY,),
                               seed_offset=TEST_SET_SEED_OFFSET)
            return ReferenceSet(source, self.validated(source), self.crop_size, self.load_size)
        if self.shots is None:
            self.setup("fit")
        return ReferenceSet(self.shots.source, self.shots.indices, self.crop_size,
                            self.load_size)

    def train_images(self) -> torch.Tensor:
        """The k training images, resized and centre-cropped, ``k x 3 x H x W`` in [-1, 1]
        (for metrics such as FID against the target set or intra-cluster LPIPS)."""
        if self.shots is None:
            self.setup("fit")
        center = self.transform(train=False)
        return torch.stack([center(image=self.shots.source.load(i))["image"]
                            for i in self.shots.indices])

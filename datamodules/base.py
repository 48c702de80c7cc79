"""What every corrlab datamodule shares: opening and validating sources at ``setup`` (before any
training step), the albumentations pipelines, and deterministic, per-worker seeded loaders."""

from __future__ import annotations

import functools
import itertools
import logging
import os
import random
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, get_worker_info

from datamodules.decode import DataError
from datamodules.reference import ReferenceSet
from datamodules.sources import VALIDATION_MODES, ImageSource, open_source, validate_source
from datamodules.synthetic import TRAIN_FAMILIES, SyntheticSource
from datamodules.transforms import build_transform
from lightning_modules.errors import ConfigError

log = logging.getLogger(__name__)

SYNTHETIC = "synthetic"


class SeededDataset(Dataset):
    """A dataset whose randomness (augmentation, independent sampling) comes from its own
    generators. The training sampler hands out ``(item, sample_seed)`` keys and the generators
    are re-seeded from ``sample_seed`` for that one sample, so what a sample looks like depends
    only on (seed, epoch, position in the epoch's order): not on the worker that loads it, the
    number of workers or ranks, or whether the run was resumed. Plain integer keys (validation,
    direct indexing) use the generators as they stand (seeded per worker by :func:`seed_worker`).

    Subclasses implement :meth:`get`."""

    transforms: tuple = ()

    def reseed(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        for transform in self.transforms:
            transform.set_random_seed(int(seed))

    def get(self, item: int) -> dict:
        raise NotImplementedError

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        if isinstance(key, tuple):
            item, seed = key
            self.reseed(seed)
            return self.get(item)
        if not hasattr(self, "rng"):  # indexed before any loader or worker seeded it
            self.reseed(0)
        return self.get(key)


def sample_seed(seed: int, epoch: int, position: int) -> int:
    """Augmentation seed of the sample at ``position`` of ``epoch``'s global order."""
    return int(np.random.SeedSequence([seed, epoch, position]).generate_state(1)[0])


class ResumableSampler(DistributedSampler):
    """The shared, seeded per-epoch permutation of :class:`DistributedSampler` (rank r of N
    reads positions r, r + N, ...), yielding ``(index, sample_seed)`` keys, and able to start
    an epoch part-way through (:meth:`resume`) so a resumed run reads what an uninterrupted one
    would have."""

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, shuffle: bool,
                 seed: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle,
                         seed=seed)
        self.skip = 0

    def resume(self, epoch: int, samples_done: int) -> None:
        """The next iteration over this sampler is ``epoch`` without its first
        ``samples_done`` samples (of this rank)."""
        self.set_epoch(epoch)
        self.skip = samples_done

    def __iter__(self):
        start, self.skip = self.skip, 0
        positions = range(self.rank, self.total_size, self.num_replicas)
        keys = zip(super().__iter__(), positions, strict=True)
        for index, position in itertools.islice(keys, start, None):
            yield index, sample_seed(self.seed, self.epoch, position)


def worker_seed(rank: int) -> int:
    """A seed that differs per worker and per rank and follows ``seed_everything``."""
    return int(np.random.SeedSequence([torch.initial_seed(), rank]).generate_state(1)[0])


def seed_worker(worker_id: int, rank: int) -> None:
    """DataLoader ``worker_init_fn``: seeds Python, NumPy and the dataset's own generators."""
    seed = worker_seed(rank)
    random.seed(seed)
    np.random.seed(seed)
    get_worker_info().dataset.reseed(seed)


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _rank() -> int:
    return torch.distributed.get_rank() if _distributed() else 0


def _world_size() -> int:
    return torch.distributed.get_world_size() if _distributed() else 1


class ImageDataModule(L.LightningDataModule):
    """Base class: subclasses implement :meth:`build_datasets`.

    Args:
        batch_size: images per GPU (per process) in each training batch.
        crop_size: side of the square crop fed to the model.
        load_size: resize the short side to this before cropping (None: no resize).
        flip: random horizontal flips in training.
        num_workers: DataLoader worker processes.
        skip_bad_images: skip unreadable / too small files with a warning instead of failing.
        check_images: ``full`` decodes every image at setup (catches truncated files), ``header``
            reads headers only (fast for huge sets), ``off`` skips the check.
        allow_upscale: accept images smaller than the crop and enlarge them.
        synthetic_images: number of images when a source is ``synthetic``.
        synthetic_seed: dataset seed of synthetic sources.
        synthetic_texture_scale: multiplies the synthetic pattern frequencies (< 1: coarser
            patterns, which small CPU models learn sooner).
        num_val_images: validation images (the first ones of the training source).
        shuffle: shuffle the training set each epoch.

    Training order comes from one permutation per epoch (seeded by ``seed_everything`` and the
    epoch) that every rank shares: rank r of N reads positions r, r + N, ... of it. So N
    processes with batch B read exactly the global batches of one process with batch N*B.
    """

    def __init__(self, batch_size: int = 8, crop_size: int = 64, load_size: int | None = None,
                 flip: bool = True, num_workers: int = 2, skip_bad_images: bool = False,
                 check_images: str = "full", allow_upscale: bool = False,
                 synthetic_images: int = 1024, synthetic_seed: int = 0,
                 synthetic_texture_scale: float = 1.0, num_val_images: int = 64,
                 shuffle: bool = True) -> None:
        super().__init__()
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if check_images not in VALIDATION_MODES:
            raise ConfigError(f"check_images: '{check_images}' is not one of {VALIDATION_MODES}")
        self.batch_size, self.crop_size, self.load_size = batch_size, crop_size, load_size
        self.flip, self.num_workers = flip, num_workers
        self.skip_bad_images, self.check_images = skip_bad_images, check_images
        self.allow_upscale = allow_upscale
        self.synthetic_images, self.synthetic_seed = synthetic_images, synthetic_seed
        self.synthetic_texture_scale = synthetic_texture_scale
        self.num_val_images, self.shuffle = num_val_images, shuffle
        self.train_set: SeededDataset | None = None
        self.val_set: SeededDataset | None = None

    # -- sources -------------------------------------------------------------------------------
    def open(self, source: str, families: tuple[str, ...] = TRAIN_FAMILIES,
             num_images: int | None = None, seed_offset: int = 0) -> ImageSource:
        if source == SYNTHETIC:
            return SyntheticSource(num_images or self.synthetic_images,
                                   self.load_size or self.crop_size,
                                   self.synthetic_seed + seed_offset, families,
                                   self.synthetic_texture_scale)
        return open_source(source)

    def validated(self, source: ImageSource, side_by_side: bool = False) -> list[int]:
        """Indices of the usable images of ``source`` (raises on the first bad one)."""
        min_side = 0 if self.allow_upscale else self.crop_size
        return validate_source(source, min_side, self.check_images, self.skip_bad_images,
                               side_by_side=side_by_side).good

    def transform(self, train: bool, **kwargs: Any):
        return build_transform(self.crop_size, self.load_size, train=train, flip=self.flip,
                               **kwargs)

    def reference_set(self) -> ReferenceSet:
        """The real images metrics (FID, KID) compare generated images with."""
        raise NotImplementedError(f"{type(self).__name__} does not define reference_set().")

    # -- Lightning hooks -----------------------------------------------------------------------
    def build_datasets(self) -> tuple[SeededDataset, SeededDataset]:
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            self.train_set, self.val_set = self.build_datasets()
            log.info("%s: %d training samples", type(self).__name__, len(self.train_set))
            if len(self.train_set) < self.batch_size:
                raise DataError(f"{type(self).__name__}: {len(self.train_set)} training samples "
                                f"but batch_size is {self.batch_size}; lower batch_size.")

    def _loader(self, dataset: SeededDataset, train: bool) -> DataLoader:
        rank, world = _rank(), _world_size()
        seed = worker_seed(rank)
        dataset.reseed(seed)  # used as is when num_workers == 0
        sampler = None
        if train:
            sampler = ResumableSampler(dataset, world, rank, self.shuffle,
                                       seed=int(os.environ.get("PL_GLOBAL_SEED", 0)))
        return DataLoader(
            dataset, batch_size=self.batch_size, sampler=sampler, drop_last=train,
            num_workers=self.num_workers, persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            worker_init_fn=functools.partial(seed_worker, rank=rank),
            # the loader's own generator: creating an iterator (each epoch, and at a resume)
            # must not draw from the global torch generator the training process resumes
            generator=torch.Generator().manual_seed(seed))

    def train_dataloader(self) -> DataLoader:
        """The training loader; when the model reports ``iteration`` (iterations already trained,
        as :class:`~lightning_modules.gan_module.GANModule` does after a resume), it starts at
        the batch an uninterrupted run would read next."""
        loader = self._loader(self.train_set, train=True)
        module = self.trainer.lightning_module if self.trainer is not None else None
        done = int(getattr(module, "iteration", 0) or 0)
        if done and len(loader):
            epoch, batches_done = divmod(done, len(loader))
            loader.sampler.resume(epoch, batches_done * self.batch_size)
        return loader

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, train=False)

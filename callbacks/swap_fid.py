"""Swap FID, the protocol of the Swapping Autoencoder paper (Park et al., NeurIPS 2020, Sec. 4.2):
FID between swaps ``swap(structure_i, texture_i)`` and the structure images, over a fixed list
of (structure, texture) pairs of the reference set. The list is saved as JSON (with the content
hash of the images it indexes) and reused, so runs and checkpoints are compared on the same
pairs; a list made for other images is refused.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import Subset

from callbacks.features import RealStatistics, real_statistics
from callbacks.fid import FID
from callbacks.metric_logging import write_json_atomic
from datamodules.reference import ReferenceSet
from lightning_modules.contracts import Swaps
from lightning_modules.distributed import rank_and_world
from lightning_modules.errors import ConfigError
from lightning_modules.pretrained.weights import corrlab_cache_dir


def make_swap_pairs(num_images: int, num_pairs: int, seed: int = 0) -> list[list[int]]:
    """``num_pairs`` (structure, texture) positions, texture != structure, seeded."""
    if num_images < 2:
        raise ConfigError("swap pairs need at least 2 reference images")
    rng = np.random.default_rng(seed)
    structures = rng.integers(num_images, size=num_pairs)
    offsets = rng.integers(1, num_images, size=num_pairs)  # never 0: texture != structure
    return [[int(s), int((s + o) % num_images)] for s, o in zip(structures, offsets, strict=True)]


def load_or_make_pairs(path: Path, reference: ReferenceSet, content_hash: str, num_pairs: int,
                       seed: int) -> list[list[int]]:
    if path.is_file():
        stored = json.loads(path.read_text())
        if stored.get("reference_content_sha256") != content_hash:
            raise ConfigError(f"{path}: these swap pairs index other images (content hash "
                             f"{stored.get('reference_content_sha256', '?')[:12]}, reference "
                             f"set {content_hash[:12]}). Delete the file or point pairs_file "
                             "elsewhere.")
        return stored["pairs"]
    pairs = make_swap_pairs(len(reference), num_pairs, seed)
    if rank_and_world()[0] == 0:
        write_json_atomic(path, {"reference_content_sha256": content_hash,
                                 "reference": reference.location, "seed": seed, "pairs": pairs})
    return pairs


class SwapFID(FID):
    """``metrics/swap_fid``: needs ``swap(structure_images, texture_images)`` on the module.

    Args:
        num_pairs: pairs in the list (the generated-image count).
        pairs_file: where the list lives (default: the corrlab cache, named by the reference
            set's content hash, so every run on the same data uses the same list).
        pair_seed: seed used when the list is made.
        **kwargs: see :class:`~callbacks.fid.FID` (``num_images`` is ``num_pairs``).
    """

    needs = Swaps

    def __init__(self, num_pairs: int = 5000, pairs_file: str | None = None, pair_seed: int = 0,
                 name: str = "swap_fid", **kwargs: Any) -> None:
        super().__init__(num_images=num_pairs, name=name, **kwargs)
        self.pairs_file, self.pair_seed = pairs_file, pair_seed
        self.pairs: list[list[int]] | None = None
        self._reference: ReferenceSet | None = None

    def _prepare(self, trainer: L.Trainer) -> ReferenceSet:
        if self._reference is None:
            reference = trainer.datamodule.reference_set()
            content = reference.content_hash()
            path = Path(self.pairs_file) if self.pairs_file else (
                Path(self.cache_dir or corrlab_cache_dir()) / "swap_pairs" /
                f"{content[:16]}-{self.num_images}-{self.pair_seed}.json")
            self.pairs = load_or_make_pairs(path, reference, content, self.num_images,
                                            self.pair_seed)
            self.pairs_path, self._content = path, content
            self._images = reference.dataset()
            self._reference = reference
        return self._reference

    def real_statistics(self, trainer: L.Trainer, device: torch.device) -> RealStatistics:
        if self._real is None:
            reference = self._prepare(trainer)
            structures = Subset(self._images, [s for s, _ in self.pairs])
            pairs_hash = hashlib.sha256(json.dumps(self.pairs).encode()).hexdigest()
            content = hashlib.sha256(f"{self._content}|{pairs_hash}".encode()).hexdigest()
            self._real = real_statistics(self.extractor(device), structures, content,
                                         reference.crop_size, self.cache_dir, self.num_workers,
                                         self.progress, reference.geometry)
        return self._real

    def generation_batch(self, trainer: L.Trainer, index: int) -> Any:
        self._prepare(trainer)
        start = index * self.batch_size
        chosen = [self.pairs[(start + t) % len(self.pairs)] for t in range(self.batch_size)]
        load = lambda position: self._images[position].float() / 127.5 - 1.0  # noqa: E731
        return (torch.stack([load(s) for s, _ in chosen]),
                torch.stack([load(t) for _, t in chosen]))

    def generate(self, pl_module: L.LightningModule, batch: Any) -> torch.Tensor:
        structures, textures = batch
        return pl_module.swap(structures, textures)

    def evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict:
        record = super().evaluate(trainer, pl_module)
        record["pairs_file"] = str(self.pairs_path)
        return record

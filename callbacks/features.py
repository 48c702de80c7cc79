"""Inception features, fast, and cached real-image statistics.

Speed without changing the numbers: batch norm folded into the convolutions, channels-last
memory, inference mode, images decoded in DataLoader workers, and real statistics computed once
per (content, resolution, resize, weights, layer). ``experiments/benchmarks/fid_speed.py``
measures the gain against torch-fidelity and checks the FIDs agree.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from datamodules.decode import DataError
from lightning_modules.checkpoint_io import atomic_torch_save
from lightning_modules.distributed import rank_and_world
from lightning_modules.pretrained.inception import (
    FEATURE_LAYER,
    RESIZE_METHOD,
    InceptionWeights,
    load_inception,
)
from lightning_modules.pretrained.weights import corrlab_cache_dir


def fold_batchnorm(network: nn.Module) -> nn.Module:
    """Replace every conv -> eval-mode batch norm pair of torch-fidelity's ``BasicConv2d`` with
    one biased convolution: ``w * g / sqrt(v + eps)``, ``b - m * g / sqrt(v + eps)``."""
    for module in network.modules():
        conv, norm = getattr(module, "conv", None), getattr(module, "bn", None)
        if not (isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d)):
            continue
        scale = norm.weight.double() / torch.sqrt(norm.running_var.double() + norm.eps)
        fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                          conv.padding, conv.dilation, conv.groups, bias=True)
        fused.weight.data = (conv.weight.double() * scale[:, None, None, None]).float()
        fused.bias.data = (norm.bias.double() - norm.running_mean.double() * scale).float()
        module.conv, module.bn = fused, nn.Identity()
    return network


class InceptionFeatures:
    """2048-d Inception pool features of uint8 NCHW images (any size; torch-fidelity resizes
    to 299 with TF1 bilinear inside the network)."""

    def __init__(self, weights: InceptionWeights, device: torch.device | str = "cpu",
                 batch_size: int = 64) -> None:
        self.weights, self.device, self.batch_size = weights, torch.device(device), batch_size
        self.network = fold_batchnorm(load_inception(weights, "cpu")).to(
            self.device, memory_format=torch.channels_last).requires_grad_(False).eval()

    @property
    def provenance(self) -> dict:
        return {"weights_sha256": self.weights.sha256, "weights_origin": self.weights.origin,
                "weights_file": str(self.weights.source_file), "feature_layer": FEATURE_LAYER,
                "resize": RESIZE_METHOD}

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected uint8 N x 3 x H x W images, got {images.dtype} "
                             f"{tuple(images.shape)}")
        chunks = []
        for start in range(0, images.shape[0], self.batch_size):
            batch = images[start:start + self.batch_size].to(self.device, non_blocking=True)
            (features,) = self.network(batch.contiguous(memory_format=torch.channels_last))
            chunks.append(features.float().cpu())
        return torch.cat(chunks) if chunks else torch.zeros(0, 2048)

    def default_workers(self) -> int:
        """Decoding workers: none on CPU (measured: workers competing with the network for
        the cores made extraction ~25% slower on 2 cores), else up to 4."""
        return 0 if self.device.type == "cpu" else min(4, os.cpu_count() or 1)

    def extract(self, dataset: Dataset, num_workers: int | None = None, progress: bool = True,
                description: str = "features") -> torch.Tensor:
        """Features of every item of a dataset of uint8 CHW tensors, in order."""
        workers = self.default_workers() if num_workers is None else num_workers
        loader = DataLoader(dataset, batch_size=self.batch_size, shuffle=False,
                            num_workers=workers, pin_memory=self.device.type == "cuda")
        features = []
        with tqdm(total=len(dataset), desc=description, unit="img", disable=not progress,
                  file=sys.stderr, dynamic_ncols=True) as bar:
            for batch in loader:
                features.append(self(batch))
                bar.update(batch.shape[0])
        return torch.cat(features) if features else torch.zeros(0, 2048)


# --- multi-process ---------------------------------------------------------------------------

def gather_interleaved(local: torch.Tensor) -> torch.Tensor:
    """Rows computed by rank r for global items r, r + W, r + 2W, ... -> all rows in global
    order, on every rank. Every item counts exactly once (no sampler padding)."""
    world = rank_and_world()[1]
    if world == 1:
        return local
    backend_device = local.device
    if torch.distributed.get_backend() == "nccl":
        backend_device = torch.device("cuda", torch.cuda.current_device())
    count = torch.tensor([local.shape[0]], device=backend_device)
    counts = [torch.zeros_like(count) for _ in range(world)]
    torch.distributed.all_gather(counts, count)
    counts = [int(c) for c in counts]
    padded = torch.zeros(max(counts), *local.shape[1:], dtype=local.dtype, device=backend_device)
    padded[:local.shape[0]] = local.to(backend_device)
    gathered = [torch.zeros_like(padded) for _ in range(world)]
    torch.distributed.all_gather(gathered, padded)
    total = sum(counts)
    result = torch.zeros(total, *local.shape[1:], dtype=local.dtype)
    for rank, (rows, count) in enumerate(zip(gathered, counts, strict=True)):
        result[rank::world] = rows[:count].cpu()
    return result.to(local.device)


class _Strided(Dataset):
    """Items r, r + W, ... of a dataset (this rank's share, in global order)."""

    def __init__(self, dataset: Dataset, rank: int, world: int) -> None:
        self.dataset, self.positions = dataset, list(range(rank, len(dataset), world))

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, item: int):
        return self.dataset[self.positions[item]]


def extract_distributed(extractor: InceptionFeatures, dataset: Dataset,
                        num_workers: int | None = None,
                        progress: bool = True, description: str = "features") -> torch.Tensor:
    """Features of the whole dataset; under DDP each rank extracts a 1/W share, then all
    ranks receive every row in dataset order."""
    rank, world = rank_and_world()
    local = extractor.extract(_Strided(dataset, rank, world), num_workers,
                              progress and rank == 0, description)
    return gather_interleaved(local)


# --- cached real statistics ------------------------------------------------------------------

@dataclass
class RealStatistics:
    features: torch.Tensor           # N x 2048 float32 (KID needs them)
    cache_key: str
    cache_file: Path
    from_cache: bool
    description: dict = field(default_factory=dict)

    @property
    def count(self) -> int:
        return int(self.features.shape[0])


def cache_key(content_hash: str, resolution: int | None, extractor: InceptionFeatures,
              count: int, geometry: str | None = None) -> tuple[str, dict]:
    """The key of a real set's statistics and the fields it is made of (``geometry``: how the
    stored images were resized and cropped to ``resolution``)."""
    fields = {"content_sha256": content_hash, "resolution": resolution, "count": count,
              "geometry": geometry,
              "resize": RESIZE_METHOD, "weights_sha256": extractor.weights.sha256,
              "feature_layer": FEATURE_LAYER}
    key = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:24]
    return key, fields


def real_statistics(extractor: InceptionFeatures, dataset: Dataset, content_hash: str,
                    resolution: int | None, cache_dir: str | Path | None = None,
                    num_workers: int | None = None, progress: bool = True,
                    geometry: str | None = None) -> RealStatistics:
    """Features of the real images, from the cache when the key matches; else extracted (with a
    progress bar), then written atomically by rank 0."""
    key, fields = cache_key(content_hash, resolution, extractor, len(dataset), geometry)
    path = Path(cache_dir or corrlab_cache_dir()) / "fid_stats" / f"real-{key}.pt"
    if path.is_file():
        stored = torch.load(path, map_location="cpu", weights_only=True)
        if stored.get("fields") == fields:
            return RealStatistics(stored["features"], key, path, True, fields)
    features = extract_distributed(extractor, dataset, num_workers, progress,
                                   f"real images ({len(dataset)}) for FID statistics")
    if rank_and_world()[0] == 0:
        atomic_torch_save({"fields": fields, "features": features}, path)
    return RealStatistics(features, key, path, False, fields)


def fid_kid(real: torch.Tensor, fake: torch.Tensor, kid: bool = True,
            kid_subset_size: int = 1000, kid_subsets: int = 100, seed: int = 2020) -> dict:
    """FID (and KID mean/std) with torch-fidelity's own statistics and metric functions."""
    from torch_fidelity.metric_fid import (
        KEY_METRIC_FID,
        fid_features_to_statistics,
        fid_statistics_to_metric,
    )
    from torch_fidelity.metric_kid import (
        KEY_METRIC_KID_MEAN,
        KEY_METRIC_KID_STD,
        kid_features_to_metric,
    )
    if min(real.shape[0], fake.shape[0]) < 2:
        raise DataError(f"FID needs at least 2 images per set, got {real.shape[0]} real and "
                         f"{fake.shape[0]} generated.")
    real64, fake64 = real.double(), fake.double()
    values = {"fid": float(fid_statistics_to_metric(fid_features_to_statistics(real64),
                                                    fid_features_to_statistics(fake64),
                                                    verbose=False)[KEY_METRIC_FID])}
    if kid:
        subset = min(kid_subset_size, real.shape[0], fake.shape[0])
        result = kid_features_to_metric(real, fake, kid_subsets=kid_subsets,
                                        kid_subset_size=subset, verbose=False, rng_seed=seed)
        values.update(kid=float(result[KEY_METRIC_KID_MEAN]),
                      kid_std=float(result[KEY_METRIC_KID_STD]), kid_subset_size=subset)
    return values


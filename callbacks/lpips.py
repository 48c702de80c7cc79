"""Metrics built on LPIPS (Zhang et al., CVPR 2018; the network is
:class:`lightning_modules.pretrained.LPIPS`, real weights offline).

- :func:`intra_cluster_lpips`: the diversity metric of few-shot CDC (Ojha et al., CVPR 2021,
  Sec. 4.2): each generated image joins the cluster of its nearest training image (LPIPS);
  the score is the mean pairwise LPIPS within each cluster (first ``max_members`` members),
  averaged over clusters that have a pair (a lone member has no pairwise distance, as in the
  official code, where its NaN mean is dropped).
- :class:`ReconstructionLPIPS`: LPIPS between images and their reconstructions
  (Swapping Autoencoder, ``decode(encode(x))``).
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import lightning as L
import torch

from callbacks.fixed_samples import first_items
from callbacks.metric_logging import log_provenance
from callbacks.schedule import KimgSchedule, KimgScheduledCallback, kimg_of
from datamodules.keys import IMAGE
from lightning_modules.contracts import EncodesDecodes, HasTrainImages, Samples, require
from lightning_modules.pretrained.lpips import LPIPS


def lpips_matrix(lpips: LPIPS, images_a: torch.Tensor, images_b: torch.Tensor,
                 batch_size: int = 64) -> torch.Tensor:
    """``D[i, j] = lpips(images_a[i], images_b[j])``."""
    rows = []
    for i in range(images_a.shape[0]):
        row = [lpips(images_a[i:i + 1].expand(len(chunk), -1, -1, -1), chunk)
               for chunk in images_b.split(batch_size)]
        rows.append(torch.cat(row))
    return torch.stack(rows)


def intra_cluster_lpips(generated: torch.Tensor, training: torch.Tensor, lpips: LPIPS,
                        max_members: int = 50, batch_size: int = 64) -> dict:
    """CDC's intra-cluster LPIPS (see the module docstring). Returns the score, the cluster of
    every generated image and each cluster's mean (None where it has no pair)."""
    distances = lpips_matrix(lpips, generated, training, batch_size)
    assignment = distances.argmin(dim=1)
    per_cluster: list[float | None] = []
    for cluster in range(training.shape[0]):
        members = torch.nonzero(assignment == cluster).flatten()[:max_members].tolist()
        pairs = list(combinations(members, 2))
        if not pairs:
            per_cluster.append(None)
            continue
        first = generated[[i for i, _ in pairs]]
        second = generated[[j for _, j in pairs]]
        values = torch.cat([lpips(a, b) for a, b in zip(first.split(batch_size),
                                                         second.split(batch_size), strict=True)])
        per_cluster.append(float(values.mean()))
    scored = [value for value in per_cluster if value is not None]
    if not scored:
        raise ValueError("intra-cluster LPIPS: no cluster holds two generated images; "
                         "generate more images.")
    return {"intra_cluster_lpips": sum(scored) / len(scored), "assignment": assignment,
            "per_cluster": per_cluster}


class ReconstructionLPIPS(KimgScheduledCallback):
    """``metrics/reconstruction_lpips``: mean LPIPS between validation images and
    ``decode(*encode(images))`` (Swapping Autoencoder, Sec. 4.1), each validation epoch (the
    first ``max_images`` images of the epoch, all ranks), and during training on the first
    ``max_images`` validation images at the start / end of training and every ``every_kimg``."""

    def __init__(self, net: str = "alex", weights_path: str | None = None,
                 max_images: int = 256, every_kimg: float | None = None,
                 at_train_start: bool = False, at_train_end: bool = False) -> None:
        self.net, self.weights_path, self.max_images = net, weights_path, max_images
        self.schedule = KimgSchedule(every_kimg, at_train_start, at_train_end)
        self.lpips: LPIPS | None = None
        self._values: list[torch.Tensor] = []
        self._count = 0

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        require(pl_module, EncodesDecodes, "ReconstructionLPIPS")
        self.lpips = LPIPS(self.net, self.weights_path)

    @torch.no_grad()
    def distances(self, pl_module: L.LightningModule, images: torch.Tensor) -> torch.Tensor:
        was_training = pl_module.training
        pl_module.eval()
        reconstructions = pl_module.decode(*pl_module.encode(images)).clamp(-1, 1)
        pl_module.train(was_training)
        return self.lpips.to(images.device)(images, reconstructions).cpu()

    def run(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """During training: the first ``max_images`` validation images, on rank 0."""
        if not trainer.is_global_zero:
            return
        images = first_items(trainer, self.max_images, "ReconstructionLPIPS")[IMAGE]
        value = float(self.distances(pl_module, images.to(pl_module.device)).mean())
        for logger in trainer.loggers:
            logger.log_metrics({"metrics/reconstruction_lpips": value,
                                "progress/kimg": kimg_of(pl_module)}, step=trainer.global_step)
        log_provenance(trainer, "metrics/reconstruction_lpips",
                       {"value": value, "num_images": len(images), "kimg": kimg_of(pl_module),
                        "images": "first validation images", **self.lpips.provenance})

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Validation measures its own epoch's images (below), not :meth:`run`'s."""

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._values, self._count = [], 0

    @torch.no_grad()
    def on_validation_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                                outputs: Any, batch: Any, batch_idx: int,
                                dataloader_idx: int = 0) -> None:
        if self._count >= self.max_images:
            return
        images = batch[IMAGE][:self.max_images - self._count]
        self._values.append(self.distances(pl_module, images))
        self._count += images.shape[0]

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not self._values:
            return
        local = torch.cat(self._values)
        total = torch.stack([local.sum(), torch.tensor(float(local.numel()))])
        total = pl_module.all_gather(total.to(pl_module.device))
        if total.dim() == 2:
            total = total.sum(dim=0)
        value = float(total[0] / total[1])
        pl_module.log("metrics/reconstruction_lpips", value, rank_zero_only=True)
        log_provenance(trainer, "metrics/reconstruction_lpips",
                       {"value": value, "num_images": int(total[1]), "kimg": kimg_of(pl_module),
                        **self.lpips.provenance})


class IntraClusterLPIPS(L.Callback):
    """``metrics/intra_cluster_lpips`` of ``sample(num_images, seed)`` against the datamodule's
    ``train_images()`` (few-shot CDC), at the end of each validation epoch, on rank 0."""

    def __init__(self, num_images: int = 1000, seed: int = 0, max_members: int = 50,
                 net: str = "alex", weights_path: str | None = None,
                 batch_size: int = 64) -> None:
        self.num_images, self.seed, self.max_members = num_images, seed, max_members
        self.net, self.weights_path, self.batch_size = net, weights_path, batch_size
        self.lpips: LPIPS | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        require(pl_module, Samples, "IntraClusterLPIPS")
        require(trainer.datamodule, HasTrainImages, "IntraClusterLPIPS")
        self.lpips = LPIPS(self.net, self.weights_path)

    @torch.no_grad()
    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.global_rank != 0:
            return
        device = pl_module.device
        generated = torch.cat([pl_module.sample(min(self.batch_size, self.num_images - start),
                                                seed=self.seed + start).clamp(-1, 1)
                               for start in range(0, self.num_images, self.batch_size)])
        training = trainer.datamodule.train_images().to(device)
        result = intra_cluster_lpips(generated, training, self.lpips.to(device),
                                     self.max_members, self.batch_size)
        value = result["intra_cluster_lpips"]
        pl_module.log("metrics/intra_cluster_lpips", value, rank_zero_only=True)
        log_provenance(trainer, "metrics/intra_cluster_lpips",
                       {"value": value, "num_images": self.num_images,
                        "num_clusters": training.shape[0], "max_members": self.max_members,
                        **self.lpips.provenance})

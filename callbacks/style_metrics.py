"""Real-data style-transfer metrics (no ground truth): FID of stylised images against the style
set, content LPIPS (stylised vs content), the style moment distance (stylised vs style, VGG-19
channel means and standard deviations over relu1_1 ... relu4_1) and ArtFID
(Wright & Ommer 2022): ``ArtFID = (1 + content LPIPS) * (1 + FID)``.

The stylised images are ``stylize(a, b)`` of validation batches (``a`` content, ``b`` style); the
real set is the datamodule's ``reference_set()`` (the style domain of an
``UnpairedDataModule`` with ``source_b``). Every value is logged with its provenance.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from callbacks.fid import FID
from callbacks.metric_logging import log_provenance
from datamodules.keys import A, B
from lightning_modules.contracts import Stylizes
from lightning_modules.layers.perceptual import style_moment_loss

STYLE_LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1"]


class ArtFID(FID):
    """FID (``metrics/style_fid``) plus ``metrics/content_lpips``,
    ``metrics/style_moment_distance`` and ``metrics/artfid`` over the same stylised images.
    Args as :class:`~callbacks.fid.FID`, plus ``lpips_net``."""

    needs = Stylizes

    def __init__(self, lpips_net: str = "alex", name: str = "style_fid", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.lpips_net = lpips_net
        self.lpips = self.vgg = None
        self._sums = torch.zeros(3, dtype=torch.float64)  # lpips sum, moment sum, count

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        from lightning_modules.pretrained import LPIPS, vgg19

        self.lpips, self.vgg = LPIPS(self.lpips_net), vgg19()

    def generate(self, pl_module: L.LightningModule, batch: Any) -> torch.Tensor:
        content, style = batch[A], batch[B]
        images = pl_module.stylize(content, style).clamp(-1, 1)
        lpips = self.lpips.to(images.device)(images, content)
        vgg = self.vgg.to(images.device)
        moments = torch.stack([style_moment_loss(vgg(images[i:i + 1], STYLE_LAYERS),
                                                 vgg(style[i:i + 1], STYLE_LAYERS),
                                                 STYLE_LAYERS) for i in range(len(images))])
        self._sums += torch.stack([lpips.sum().double().cpu(), moments.sum().double().cpu(),
                                   torch.tensor(float(len(images)), dtype=torch.float64)])
        return images

    def evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict:
        self._sums.zero_()
        record = super().evaluate(trainer, pl_module)
        sums = self._sums.clone()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            sums = sums.to(pl_module.device)
            torch.distributed.all_reduce(sums)
            sums = sums.cpu()
        content_lpips = float(sums[0] / sums[2])
        record.update(content_lpips=content_lpips, style_moment_distance=float(sums[1] / sums[2]),
                      artfid=(1 + content_lpips) * (1 + record["fid"]),
                      lpips_net=self.lpips_net,
                      lpips_weights_sha256=self.lpips.provenance["weights_sha256"],
                      vgg_weights_sha256=self.vgg.weights.sha256)
        return record

    def _evaluate_and_log(self, trainer: L.Trainer, pl_module: L.LightningModule,
                          module_log: bool = True) -> None:
        super()._evaluate_and_log(trainer, pl_module, module_log)
        record = self.last
        numbers = {f"metrics/{key}": record[key]
                   for key in ("content_lpips", "style_moment_distance", "artfid")}
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.log_metrics(numbers, step=trainer.global_step)
        log_provenance(trainer, "metrics/artfid", {"value": record["artfid"], **record})

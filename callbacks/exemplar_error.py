"""Ground-truth error of exemplar-based translation on shapes & textures (CoCosNet).

Synthetic paired data with exemplars carries the truth ``render(layout of the input, texture of
the exemplar)``, and for self-reference exemplars (the target under a known random warp) the
true correspondence ``exemplar_flow``. On the datamodule's first ``num_pairs`` validation items
(fixed draws) this callback logs:

- ``exemplar/l1_to_truth``, ``exemplar/lpips_to_truth``: the output against the truth, and the
  same for the warped exemplar (``..._warped_...``) and the trivial answer "copy the exemplar"
  (``..._exemplar_...``); likewise ``exemplar/structure_accuracy`` and
  ``exemplar/texture_accuracy`` (:mod:`callbacks.accuracy`, against the input's label map);
- ``exemplar/epe``: mean end-point error in pixels of the model's arg-max correspondence
  against the true one (where the exemplar has one), ``exemplar/within_1px`` the fraction of
  pixels within 1 px, and ``exemplar/epe_identity`` the error of matching every pixel to
  itself, the trivial answer.
"""

from __future__ import annotations

import lightning as L
import torch

from callbacks.accuracy import structure_accuracy, texture_accuracy
from callbacks.fixed_samples import first_items
from callbacks.metric_logging import log_provenance
from callbacks.schedule import KimgSchedule, KimgScheduledCallback, kimg_of
from datamodules.keys import EXEMPLAR, EXEMPLAR_FLOW, LABEL, TRUTH
from lightning_modules.contracts import Corresponds, Visualizes, require
from lightning_modules.errors import ConfigError


def end_point_errors(field: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Per-pixel ``||field - flow||`` where ``flow`` is known (finite): a flat vector."""
    known = torch.isfinite(flow).all(dim=1)                     # B x H x W
    return (field - flow.nan_to_num()).norm(dim=1)[known]


def identity_field(flow: torch.Tensor) -> torch.Tensor:
    """Every pixel matched to its own position."""
    batch, _, height, width = flow.shape
    ys, xs = torch.meshgrid(torch.arange(height, dtype=flow.dtype),
                            torch.arange(width, dtype=flow.dtype), indexing="ij")
    return torch.stack([xs, ys]).to(flow.device).expand(batch, -1, -1, -1)


class GroundTruthExemplarError(KimgScheduledCallback):
    """Args:
        num_pairs: validation items measured (the same draws every time).
        every_kimg: also during training (start and end always).
        lpips_net: ``alex`` or ``vgg`` (None: L1 only).
    """

    def __init__(self, num_pairs: int = 32, every_kimg: float | None = 10.0,
                 lpips_net: str | None = "alex", lpips_weights_path: str | None = None
                 ) -> None:
        self.num_pairs, self.lpips_net, self.lpips_weights_path = num_pairs, lpips_net, \
            lpips_weights_path
        self.schedule = KimgSchedule(every_kimg)
        self.lpips = None
        self.history: list[dict[str, float]] = []
        self._batch: dict[str, torch.Tensor] | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        require(pl_module, Visualizes, "GroundTruthExemplarError")
        require(pl_module, Corresponds, "GroundTruthExemplarError")
        if self.lpips_net is not None and self.lpips is None:
            from lightning_modules.pretrained import LPIPS  # fails here, before training

            self.lpips = LPIPS(self.lpips_net, self.lpips_weights_path)

    def fixed_batch(self, trainer: L.Trainer) -> dict[str, torch.Tensor]:
        if self._batch is None:
            batch = first_items(trainer, self.num_pairs, "GroundTruthExemplarError")
            if TRUTH not in batch or EXEMPLAR_FLOW not in batch:
                raise ConfigError("GroundTruthExemplarError needs synthetic paired data with "
                                  "exemplars (the truth and the true correspondence)")
            self._batch = batch
        return self._batch

    @torch.no_grad()
    def measure(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, float]:
        batch = {key: value.to(pl_module.device) for key, value in
                 self.fixed_batch(trainer).items()}
        was_training = pl_module.training
        pl_module.eval()
        columns = pl_module.visualize(batch)
        field = pl_module.correspondence_field(batch)
        pl_module.train(was_training)
        truth = batch[TRUTH]
        values = {}
        for name, images in (("", columns["output"]), ("_warped", columns["warped_exemplar"]),
                             ("_exemplar", batch[EXEMPLAR])):
            images = images.clamp(-1, 1)
            values[f"exemplar/l1{name}_to_truth"] = float((images - truth).abs().mean())
            values[f"exemplar/structure_accuracy{name}"] = float(
                structure_accuracy(images, batch[LABEL]).mean())
            values[f"exemplar/texture_accuracy{name}"] = float(
                texture_accuracy(images, truth, batch[LABEL]).mean())
            if self.lpips is not None:
                values[f"exemplar/lpips{name}_to_truth"] = float(
                    self.lpips.to(images.device)(images, truth).mean())
        flow = batch[EXEMPLAR_FLOW]
        errors = end_point_errors(field, flow)
        if errors.numel():
            values["exemplar/epe"] = float(errors.mean())
            values["exemplar/within_1px"] = float((errors <= 1).float().mean())
            values["exemplar/epe_identity"] = float(
                end_point_errors(identity_field(flow), flow).mean())
        return values

    def run(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        values = {**self.measure(trainer, pl_module), "progress/kimg": kimg_of(pl_module)}
        self.history.append(values)
        for logger in trainer.loggers:
            logger.log_metrics(values, step=trainer.global_step)
        record = {"value": values["exemplar/l1_to_truth"], "kimg": kimg_of(pl_module),
                  "num_pairs": self.num_pairs, **values}
        if self.lpips is not None:
            record.update(self.lpips.provenance)
        log_provenance(trainer, "exemplar/ground_truth", record)

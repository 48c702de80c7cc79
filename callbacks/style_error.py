"""Ground-truth style-transfer error on shapes & textures.

The correct stylisation of a content image ``render(s_a, t_a)`` by a style image
``render(s_b, t_b)`` is ``render(s_a, t_b)``: the content's layout in the style's texture. On a
fixed list of such triples this callback logs, for the module's ``stylize(content, style)``:

- ``style/l1_to_truth`` and ``style/lpips_to_truth`` (with ``lpips_net``),
- the same distances for the two trivial answers, the content image and the style image itself
  (``style/l1_content_to_truth``, ``style/l1_style_to_truth``, ...), so a reader sees what
  "better" means,
- ``style/layout_kept``: the hue-edge layout correlation (:mod:`callbacks.layout`) between the
  stylised image and the content (the truth scores about 0.8, another layout about 0.1),
- ``style/structure_accuracy`` and ``style/texture_accuracy`` (:mod:`callbacks.accuracy`),
  and the same for the two trivial answers.
"""

from __future__ import annotations

import lightning as L
import torch

from callbacks.accuracy import structure_accuracy, texture_accuracy
from callbacks.layout import structure_similarity
from callbacks.metric_logging import log_provenance
from callbacks.schedule import KimgSchedule, KimgScheduledCallback, kimg_of
from callbacks.swap_error import swap_pairs_with_truth, swap_truth_labels
from datamodules.synthetic import TRAIN_FAMILIES
from lightning_modules.contracts import Stylizes, require


def style_scores(images: torch.Tensor, content: torch.Tensor, truth: torch.Tensor,
                 lpips: torch.nn.Module | None = None) -> dict[str, float]:
    """``l1`` and ``lpips`` to the truth, and ``layout_kept`` (hue-edge correlation with the
    content), means over the batch."""
    scores = {"l1": float((images - truth).abs().mean()),
              "layout_kept": float(structure_similarity(images, content).mean())}
    if lpips is not None:
        scores["lpips"] = float(lpips.to(images.device)(images, truth).mean())
    return scores


class GroundTruthStyleError(KimgScheduledCallback):
    """Args:
        num_pairs / size / seed: the fixed (content, style, truth) triples.
        every_kimg: also during training (start and end always).
        lpips_net: ``alex`` or ``vgg`` for LPIPS distances (None: L1 only).
        families: texture families of the triples.
    """

    def __init__(self, num_pairs: int = 32, size: int = 64, every_kimg: float | None = 10.0,
                 seed: int = 12345, lpips_net: str | None = "alex",
                 lpips_weights_path: str | None = None,
                 families: tuple[str, ...] = TRAIN_FAMILIES) -> None:
        self.num_pairs, self.size, self.seed, self.families = num_pairs, size, seed, families
        self.lpips_net, self.lpips_weights_path = lpips_net, lpips_weights_path
        self.schedule = KimgSchedule(every_kimg)
        self.lpips = None
        self.history: list[dict[str, float]] = []
        self._triples = self._labels = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        require(pl_module, Stylizes, "GroundTruthStyleError")
        if self.lpips_net is not None and self.lpips is None:
            from lightning_modules.pretrained import LPIPS  # fails here, before training

            self.lpips = LPIPS(self.lpips_net, self.lpips_weights_path)

    @torch.no_grad()
    def measure(self, pl_module: L.LightningModule) -> dict[str, float]:
        if self._triples is None:
            self._triples = swap_pairs_with_truth(self.num_pairs, self.size, self.seed,
                                                  tuple(self.families))
            self._labels = swap_truth_labels(self.num_pairs, self.size, self.seed)
        content, style, truth = (t.to(pl_module.device) for t in self._triples)
        labels = self._labels.to(pl_module.device)
        was_training = pl_module.training
        pl_module.eval()
        stylised = pl_module.stylize(content, style).clamp(-1, 1)
        pl_module.train(was_training)
        values = {}
        for name, images in (("", stylised), ("_content", content), ("_style", style)):
            scores = style_scores(images, content, truth, self.lpips)
            values[f"style/layout{name}_kept"] = scores.pop("layout_kept")
            values[f"style/structure_accuracy{name}"] = float(
                structure_accuracy(images, labels).mean())
            values[f"style/texture_accuracy{name}"] = float(
                texture_accuracy(images, truth, labels).mean())
            values.update({f"style/{metric}{name}_to_truth": value
                           for metric, value in scores.items()})
        return values

    def run(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        values = {**self.measure(pl_module), "progress/kimg": kimg_of(pl_module)}
        self.history.append(values)
        for logger in trainer.loggers:
            logger.log_metrics(values, step=trainer.global_step)
        record = {"value": values["style/l1_to_truth"], "kimg": kimg_of(pl_module),
                  "num_pairs": self.num_pairs, "size": self.size, **values}
        if self.lpips is not None:
            record.update(self.lpips.provenance)
        log_provenance(trainer, "style/ground_truth", record)

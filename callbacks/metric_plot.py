"""At the end of training, plot every logged loss against kimg (or step) from the CSV logger's
``metrics.csv`` into ``<log_dir>/losses.png`` and send it to every logger."""

from __future__ import annotations

import csv
import fnmatch
import logging
from pathlib import Path

import lightning as L
import numpy as np
from lightning.pytorch.loggers import CSVLogger

from callbacks.image_logging import log_image

log = logging.getLogger(__name__)


def read_metrics(path: Path) -> dict[str, list[tuple[float, float]]]:
    """``metric -> [(x, value)]`` from a Lightning ``metrics.csv``; x is ``progress/kimg`` of
    the same row when logged, else the step. Provenance columns (``metrics/<metric>/<field>``,
    written by :func:`callbacks.metric_logging.log_provenance`) and text values are skipped."""
    series: dict[str, list[tuple[float, float]]] = {}
    with open(path, newline="") as handle:
        last_kimg = None
        for row in csv.DictReader(handle):
            if row.get("progress/kimg"):
                last_kimg = float(row["progress/kimg"])
            x = last_kimg if last_kimg is not None else float(row.get("step") or 0)
            for name, value in row.items():
                if name in ("epoch", "step", "progress/kimg") or value in ("", None) or \
                        name.count("/") > 1:
                    continue
                try:
                    number = float(value)
                except ValueError:
                    continue
                series.setdefault(name, []).append((x, number))
    return series


def plot_metrics(series: dict[str, list[tuple[float, float]]], path: Path,
                 patterns: tuple[str, ...] = ("*",), smooth: int = 5) -> Path:
    """One panel per metric (moving average over ``smooth`` points), saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(n for n in series if any(fnmatch.fnmatch(n, p) for p in patterns))
    if not names:
        raise ValueError(f"no logged metric matches {patterns}")
    columns = min(3, len(names))
    rows = -(-len(names) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4 * columns, 2.6 * rows),
                                squeeze=False)
    for axis, name in zip(axes.flat, names, strict=False):
        x, y = (np.array(v) for v in zip(*series[name], strict=True))
        if len(y) >= smooth > 1:
            y = np.convolve(y, np.ones(smooth) / smooth, mode="valid")
            x = x[smooth - 1:]
        axis.plot(x, y, linewidth=1)
        axis.set_title(name, fontsize=9)
        axis.set_xlabel("kimg", fontsize=8)
    for axis in list(axes.flat)[len(names):]:
        axis.axis("off")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


class MetricPlot(L.Callback):
    """Args:
        patterns: shell patterns of the metrics to plot (default: every phase's terms).
        filename: written in the CSV logger's folder.
    """

    def __init__(self, patterns: tuple[str, ...] = ("D_*", "G_*", "swap/*", "train/*"),
                 filename: str = "losses.png") -> None:
        self.patterns, self.filename = tuple(patterns), filename
        self.path: Path | None = None

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        csv_loggers = [lg for lg in trainer.loggers if isinstance(lg, CSVLogger)]
        if not csv_loggers or not trainer.is_global_zero:
            return
        logger = csv_loggers[0]
        logger.save()
        metrics_file = Path(logger.log_dir) / "metrics.csv"
        if not metrics_file.is_file():
            return
        try:
            self.path = plot_metrics(read_metrics(metrics_file), Path(logger.log_dir) /
                                     self.filename, self.patterns)
        except ValueError as error:  # never fail a finished run (or its final checkpoint)
            log.warning("MetricPlot: %s; no plot written (set `patterns`).", error)
            return
        from PIL import Image

        log_image(trainer, "losses", np.asarray(Image.open(self.path).convert("RGB")))

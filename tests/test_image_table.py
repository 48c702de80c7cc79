"""ImageTable: a module's visualize() columns as one table per schedule point, logged to every
logger; the shared kimg schedule of callbacks; contract errors naming the missing method."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from PIL import Image

from callbacks import ImageTable
from callbacks.schedule import KimgSchedule
from datamodules import PairedDataModule
from datamodules.keys import INPUT, TARGET
from tests.tiny_module import TinyTranslator


class _Translator(TinyTranslator):
    def loss_main(self, batch: dict, gain: float) -> dict[str, torch.Tensor]:
        return {"L1": (self.net(batch[INPUT]) - batch[TARGET]).abs().mean()}

    def visualize(self, batch: dict) -> dict[str, torch.Tensor]:
        return {"input": batch[INPUT], "output": self.net(batch[INPUT]), "truth": batch[TARGET]}


def test_long_column_titles_are_shortened_to_their_column():
    from callbacks.image_table import image_table

    images = torch.zeros(2, 3, 32, 32)
    long = image_table({"warped_exemplar_of_a_long_name": images, "output": images})
    short = image_table({"w": images, "output": images})
    assert long.shape == short.shape == (14 + 2 * 34 + 2, 2 * 34 + 2, 3)
    # from the first column's edge on, the title row is what it is without the long name
    assert np.array_equal(long[:14, 34:], short[:14, 34:])
    assert (long[:14, :34] < 128).sum() > (short[:14, :34] < 128).sum()  # shortened, not empty


def test_kimg_schedule():
    schedule = KimgSchedule(2.0)
    schedule.restart(1.0)
    assert [schedule.due(k) for k in (1.5, 3.0, 3.5, 4.9, 5.0)] == [False, True, False, False,
                                                                    True]
    never = KimgSchedule(None)
    assert not never.due(1e9)


def test_image_table_logs_one_row_per_sample(tmp_path: Path):
    L.seed_everything(0)
    module = _Translator(max_kimg=0.024, seed=0)
    data = PairedDataModule("synthetic", batch_size=4, crop_size=16, synthetic_images=16,
                            num_workers=0)
    table = ImageTable(every_kimg=0.008, num_samples=3)
    trainer = L.Trainer(accelerator="cpu", max_epochs=-1, logger=CSVLogger(tmp_path),
                        callbacks=[table], enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0)
    trainer.fit(module, data)
    # start (0), every 8 images (after iterations 2, 4, 6 -> 8, 16, 24 images) and the end
    kimgs = [float(path.stem.split("_")[-1].removesuffix("kimg")) for path in table.saved]
    assert kimgs == [0.0, 0.008, 0.016, 0.024, 0.024]
    image = Image.open(table.saved[-1])
    assert image.size == (3 * 16 + 4 * 2, 14 + 3 * 16 + 4 * 2)  # title row + 3 samples x 3
    logged = sorted((Path(trainer.loggers[0].log_dir) / "images" / "image_table").glob("*.png"))
    assert len(logged) == 4  # the CSV logger's copy, one per step (the last step twice)
    pixels = torch.from_numpy(np.asarray(image)).float()
    truth_column = pixels[14 + 2:14 + 2 + 16, 2 + 2 * 18:2 + 2 * 18 + 16]
    assert truth_column.std() > 0  # real images, not blank cells


def test_image_table_needs_visualize():
    with pytest.raises(TypeError, match=r"TinyTranslator.visualize\(\)"):
        ImageTable().setup(None, TinyTranslator(), "fit")


def test_metric_plot_never_fails_a_finished_run(tmp_path: Path, caplog):
    from callbacks import KimgCheckpoint, MetricPlot
    from datamodules import UnpairedDataModule

    for patterns, plotted in ((("nothing/*",), False), (("main/*",), True)):
        plot = MetricPlot(patterns=patterns)
        trainer = L.Trainer(accelerator="cpu", max_epochs=-1, logger=CSVLogger(tmp_path),
                            callbacks=[plot, KimgCheckpoint(every_kimg=1.0)],
                            enable_progress_bar=False, enable_model_summary=False,
                            limit_val_batches=0, log_every_n_steps=1)
        trainer.fit(TinyTranslator(max_kimg=0.008),
                    UnpairedDataModule(batch_size=4, crop_size=8, synthetic_images=8,
                                       num_workers=0))
        assert (plot.path is not None) == plotted
        assert (Path(trainer.loggers[0].log_dir) / "checkpoints" / "last.ckpt").is_file()
    assert "no plot written" in caplog.text

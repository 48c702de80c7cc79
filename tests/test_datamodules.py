"""Batch shapes, dtype and range of every datamodule; pairing; few-shot k; determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch import seed_everything
from PIL import Image

from datamodules import FewShotDataModule, PairedDataModule, UnpairedDataModule
from datamodules.decode import DataError
from datamodules.synthetic import render


def first_batch(datamodule) -> dict:
    datamodule.setup("fit")
    return next(iter(datamodule.train_dataloader()))


def assert_images(tensor: torch.Tensor, batch: int, size: int) -> None:
    assert tensor.shape == (batch, 3, size, size) and tensor.dtype == torch.float32
    assert tensor.min() >= -1.0 and tensor.max() <= 1.0 and tensor.std() > 0.05


def test_unpaired_single_domain_from_folder(image_folder: Path):
    batch = first_batch(UnpairedDataModule(str(image_folder), batch_size=3, crop_size=32,
                                           num_workers=0))
    assert set(batch) == {"image"}
    assert_images(batch["image"], 3, 32)


def test_unpaired_two_domains_are_sampled_independently():
    datamodule = UnpairedDataModule("synthetic", source_b="synthetic", batch_size=4,
                                    crop_size=32, num_workers=0, synthetic_images=8)
    batch = first_batch(datamodule)
    assert set(batch) == {"a", "b"}
    assert_images(batch["a"], 4, 32)
    assert_images(batch["b"], 4, 32)
    dataset = datamodule.train_set
    partners = {tuple(dataset[0]["b"].flatten()[:16].tolist()) for _ in range(10)}
    assert len(partners) > 1  # the same A image meets different B images


def test_load_size_resizes_the_short_side_before_cropping(image_folder: Path):
    datamodule = UnpairedDataModule(str(image_folder), batch_size=2, crop_size=36,
                                    load_size=40, flip=False, num_workers=0)
    datamodule.setup("fit")
    image = datamodule.val_set[0]["image"]  # a.png is 48x40: short side already 40
    expected = datamodule.val_set.source.load(0)[2:38, 6:42]  # centre 36x36 crop
    np.testing.assert_allclose(image.permute(1, 2, 0).numpy(), expected / 127.5 - 1, atol=1e-6)


def test_paired_folders_matched_by_name_share_geometry(tmp_path: Path):
    inputs, targets = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    targets.mkdir()
    rng = np.random.default_rng(1)
    for name in ("x", "y", "z"):
        pixels = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(inputs / f"{name}.png")
        Image.fromarray(255 - pixels).save(targets / f"{name}.png")  # target = negative
    datamodule = PairedDataModule(str(inputs), target_source=str(targets), batch_size=3,
                                  crop_size=32, num_workers=0)
    batch = first_batch(datamodule)
    assert_images(batch["input"], 3, 32)
    # same random crop and flip on both: the target is still the exact negative
    torch.testing.assert_close(batch["target"], -batch["input"], atol=1e-5, rtol=0)
    (targets / "z.png").unlink()
    with pytest.raises(DataError, match=r"1 input\(s\) without a target .*\(z\)"):
        PairedDataModule(str(inputs), target_source=str(targets), crop_size=32,
                         batch_size=1).setup("fit")


def test_paired_side_by_side_and_direction(tmp_path: Path):
    folder = tmp_path / "ab"
    folder.mkdir()
    left = np.full((32, 32, 3), 10, np.uint8)
    right = np.full((32, 32, 3), 240, np.uint8)
    for i in range(2):
        Image.fromarray(np.concatenate([left, right], axis=1)).save(folder / f"{i}.png")
    a_to_b = first_batch(PairedDataModule(str(folder), batch_size=2, crop_size=32,
                                          num_workers=0))
    assert torch.all(a_to_b["input"] < -0.9) and torch.all(a_to_b["target"] > 0.8)
    b_to_a = first_batch(PairedDataModule(str(folder), batch_size=2, crop_size=32,
                                          num_workers=0, direction="BtoA"))
    assert torch.all(b_to_a["input"] > 0.8)
    with pytest.raises(DataError, match=r"each half of a side-by-side pair\) is 32x32, smaller "):
        PairedDataModule(str(folder), batch_size=2, crop_size=48, num_workers=0).setup("fit")


def test_paired_synthetic_is_label_map_to_image():
    datamodule = PairedDataModule("synthetic", batch_size=2, crop_size=32, num_workers=0,
                                  synthetic_images=4, flip=False)
    datamodule.setup("fit")
    sample = datamodule.val_set[0]
    image, _ = render(*datamodule.val_set.inputs.seeds(0), 32)
    np.testing.assert_allclose(sample["target"].permute(1, 2, 0).numpy(), image / 127.5 - 1,
                               atol=1e-6)
    assert len(torch.unique(sample["input"].reshape(3, -1), dim=1).T) <= 6  # flat label colours


def test_few_shot_uses_exactly_k_images_and_repeats_them(image_folder: Path):
    datamodule = FewShotDataModule(str(image_folder), k=4, epoch_length=20, batch_size=2,
                                   crop_size=32, num_workers=0)
    batch = first_batch(datamodule)
    assert_images(batch["image"], 2, 32)
    assert len(datamodule.train_set) == 20
    shots = datamodule.train_images()
    assert shots.shape == (4, 3, 32, 32)
    assert datamodule.shots.indices == [0, 1, 2, 3]
    with pytest.raises(DataError, match="needs k=7 images but only 6 usable"):
        FewShotDataModule(str(image_folder), k=7, crop_size=32, batch_size=1).setup("fit")


def test_few_shot_synthetic_renders_the_held_out_family():
    datamodule = FewShotDataModule("synthetic", k=10, batch_size=4, crop_size=32,
                                   num_workers=0)
    assert datamodule.train_images().shape == (10, 3, 32, 32)
    assert datamodule.shots.source.families == ("rings",)


def test_few_shot_fid_reference_is_the_test_set_when_given(image_folder: Path):
    shots_only = FewShotDataModule(str(image_folder), k=4, crop_size=32, num_workers=0)
    assert shots_only.reference_set().indices == [0, 1, 2, 3]
    with_test = FewShotDataModule(str(image_folder), k=4, crop_size=32, num_workers=0,
                                  test_set=str(image_folder))
    assert len(with_test.reference_set()) == 6  # the whole target set, as the CDC paper
    synthetic = FewShotDataModule("synthetic", k=4, crop_size=32, test_set="synthetic",
                                  synthetic_images=12, num_workers=0)
    reference = synthetic.reference_set()
    assert len(reference) == 12 and reference.source.families == ("rings",)
    synthetic.setup("fit")
    shots = {synthetic.shots.source.load(i).tobytes() for i in synthetic.shots.indices}
    assert len(shots) == 4
    assert not shots & {reference.source.load(i).tobytes() for i in range(12)}


def test_bad_images_fail_at_setup_or_are_skipped(image_folder: Path):
    (image_folder / "zero.jpg").write_bytes(b"")
    with pytest.raises(DataError, match="zero.jpg: file is empty"):
        UnpairedDataModule(str(image_folder), crop_size=32, batch_size=2).setup("fit")
    datamodule = UnpairedDataModule(str(image_folder), crop_size=32, batch_size=2,
                                    skip_bad_images=True, num_workers=0)
    datamodule.setup("fit")
    assert len(datamodule.train_set) == 6
    with pytest.raises(DataError, match="smaller than the 50-pixel crop"):
        UnpairedDataModule(str(image_folder), crop_size=50, batch_size=2).setup("fit")
    datamodule = UnpairedDataModule(str(image_folder), crop_size=50, load_size=50,
                                    batch_size=2, allow_upscale=True, skip_bad_images=True,
                                    num_workers=0)
    assert_images(first_batch(datamodule)["image"], 2, 50)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_seeded_loading_is_reproducible(num_workers: int):
    def batches(seed: int) -> list[torch.Tensor]:
        seed_everything(seed, workers=True)
        datamodule = UnpairedDataModule("synthetic", batch_size=4, crop_size=24, load_size=32,
                                        num_workers=num_workers, synthetic_images=16)
        datamodule.setup("fit")
        loader = datamodule.train_dataloader()
        return [batch["image"] for _, batch in zip(range(3), loader, strict=False)]

    first, second, other = batches(7), batches(7), batches(8)
    for a, b in zip(first, second, strict=True):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert any(not torch.equal(a, b) for a, b in zip(first, other, strict=True))

"""Conditional data: label maps (nearest resize, same geometry, integer, one-hot, don't care),
exemplars (self-reference with a known warp, retrieval by VGG-19 features, CoCosNet list files),
the synthetic ground truth and determinism of every draw."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from datamodules import PairedDataModule
from datamodules.decode import DataError
from datamodules.keys import (
    EXEMPLAR,
    EXEMPLAR_FLOW,
    EXEMPLAR_IS_SELF,
    EXEMPLAR_LABEL,
    LABEL,
    LABEL_ONEHOT,
    TARGET,
    TRUTH,
)
from datamodules.synthetic import LABEL_COLORS, render
from datamodules.transforms import to_image_tensor

VALUES = (0, 3, 5, 2)  # one per quadrant


def label_folders(root: Path, count: int = 4, size: tuple[int, int] = (60, 50),
                  extra_value: int | None = None) -> tuple[Path, Path]:
    """Label maps (quadrants of VALUES, mode L) and targets coloured by label."""
    labels, images = root / "labels", root / "images"
    labels.mkdir(parents=True)
    images.mkdir()
    width, height = size
    for i in range(count):
        grid = np.zeros((height, width), np.uint8)
        cx, cy = width // 2 + i, height // 2 - i
        grid[:cy, :cx], grid[:cy, cx:], grid[cy:, :cx], grid[cy:, cx:] = VALUES
        if extra_value is not None and i == count - 1:
            grid[height // 2, width // 2] = extra_value
        Image.fromarray(grid, mode="L").save(labels / f"{i:03d}.png")
        Image.fromarray(LABEL_COLORS[grid % len(LABEL_COLORS)]).save(images / f"{i:03d}.png")
    return labels, images


def test_label_maps_keep_their_values_and_geometry(tmp_path):
    labels, images = label_folders(tmp_path)
    resized = PairedDataModule(str(labels), target_source=str(images), label_nc=6,
                               crop_size=32, load_size=40, batch_size=2, num_workers=0)
    resized.setup("fit")
    for seed in range(6):
        sample = resized.train_set[(seed % 4, seed)]
        assert sample[LABEL].dtype == torch.int64 and sample[LABEL].shape == (32, 32)
        assert set(sample[LABEL].unique().tolist()) == set(VALUES)  # nearest: no new values
        assert sample[LABEL_ONEHOT].shape == (6, 32, 32)
        assert torch.equal(sample[LABEL_ONEHOT].argmax(0), sample[LABEL])
        assert sample[LABEL_ONEHOT].sum(0).eq(1).all()
    exact = PairedDataModule(str(labels), target_source=str(images), label_nc=6, crop_size=32,
                             batch_size=2, num_workers=0)  # no resize: pixel-exact alignment
    exact.setup("fit")
    flipped = []
    for seed in range(8):
        sample = exact.train_set[(1, seed)]
        colours = to_image_tensor(LABEL_COLORS[sample[LABEL].numpy()])
        assert torch.equal(colours, sample[TARGET])  # same crop and flip as the image
        flipped.append(int(sample[LABEL][0, 0]))
    assert len(set(flipped)) > 1  # crops and flips did vary


def test_out_of_range_labels_are_an_error_or_dont_care(tmp_path):
    labels, images = label_folders(tmp_path, extra_value=255)
    with pytest.raises(DataError, match="003.png"):
        PairedDataModule(str(labels), target_source=str(images), label_nc=6, crop_size=32,
                         batch_size=2, num_workers=0).setup("fit")
    data = PairedDataModule(str(labels), target_source=str(images), label_nc=6,
                            contain_dontcare_label=True, crop_size=50, batch_size=2,
                            num_workers=0, flip=False)
    data.setup("fit")
    sample = data.val_set[3]
    assert sample[LABEL_ONEHOT].shape[0] == 7 and int(sample[LABEL].max()) == 6


def synthetic(**kwargs) -> PairedDataModule:
    options = dict(batch_size=2, crop_size=32, num_workers=0, synthetic_images=12, flip=False)
    data = PairedDataModule("synthetic", **{**options, **kwargs})
    data.setup("fit")
    return data


def test_self_exemplar_is_a_known_warp_of_the_target():
    data = synthetic(exemplar="self")
    errors, shuffled_errors = [], []
    for seed in range(6):
        sample = data.train_set[(seed, seed)]
        assert bool(sample[EXEMPLAR_IS_SELF]) and torch.equal(sample[TRUTH], sample[TARGET])
        flow = sample[EXEMPLAR_FLOW]
        valid = ~flow.isnan().any(0)
        assert valid.float().mean() > 0.5
        grid = (flow.nan_to_num(0) + 0.5) / 32 * 2 - 1  # pixel -> [-1, 1], align_corners=False
        pulled = F.grid_sample(sample[EXEMPLAR][None], grid.permute(1, 2, 0)[None],
                               align_corners=False)[0]
        errors.append(float((pulled - sample[TARGET]).abs()[:, valid].mean()))
        pulled_label = F.grid_sample(sample[EXEMPLAR_LABEL][None, None].float(),
                                     grid.permute(1, 2, 0)[None], mode="nearest",
                                     align_corners=False)[0, 0]
        agree = (pulled_label == sample[LABEL].float())[valid].float().mean()
        assert agree > 0.9
        shuffled = sample[TARGET].roll(5, dims=2)
        shuffled_errors.append(float((pulled - shuffled).abs()[:, valid].mean()))
    assert max(errors) < 0.1 < min(shuffled_errors)


def test_synthetic_exemplars_come_with_the_true_translation():
    data = synthetic(exemplar="retrieval", exemplar_top_k=3, exemplar_real_prob=1.0)
    source = data.train_set.inputs
    for item in range(4):
        sample = data.train_set[(item, item)]
        assert not bool(sample[EXEMPLAR_IS_SELF]) and sample[EXEMPLAR_FLOW].isnan().all()
        matches = [j for j in data.train_set.exemplars.candidates[item]
                   if torch.equal(sample[EXEMPLAR], to_image_tensor(source.load(j)))]
        assert len(matches) == 1
        structure, _ = source.seeds(item)
        _, texture = source.seeds(matches[0])
        truth = render(structure, texture, 32, source.families, source.texture_scale)[0]
        assert torch.equal(sample[TRUTH], to_image_tensor(truth))
        assert torch.equal(sample[EXEMPLAR_LABEL],
                           torch.from_numpy(source.render_with_labels(matches[0])[1]).long())


def test_draws_are_deterministic_per_sample_seed():
    data = synthetic(exemplar="retrieval", exemplar_top_k=3, exemplar_real_prob=0.5)
    first, again = data.train_set[(2, 77)], data.train_set[(2, 77)]
    assert all(torch.equal(first[k].nan_to_num(-9), again[k].nan_to_num(-9)) for k in first)
    kinds = {bool(data.train_set[(2, seed)][EXEMPLAR_IS_SELF]) for seed in range(12)}
    assert kinds == {True, False}  # both kinds drawn at probability 0.5
    batch = next(iter(data.train_dataloader()))
    assert {EXEMPLAR, EXEMPLAR_FLOW, EXEMPLAR_LABEL, TRUTH, LABEL_ONEHOT} <= set(batch)


def test_retrieval_finds_duplicates_and_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("CORRLAB_CACHE", str(tmp_path / "cache"))
    inputs, targets = tmp_path / "inputs", tmp_path / "targets"
    inputs.mkdir()
    targets.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):  # images 2k and 2k+1 are identical
        image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        for name in (f"{2 * i}.png", f"{2 * i + 1}.png"):
            Image.fromarray(image).save(targets / name)
            Image.fromarray(255 - image).save(inputs / name)
    options = dict(target_source=str(targets), exemplar="retrieval", exemplar_top_k=2,
                   crop_size=32, batch_size=2, num_workers=0)
    data = PairedDataModule(str(inputs), **options)
    data.setup("fit")
    names = data.train_set.targets.names
    for item, others in data.train_set.exemplars.candidates.items():
        twin = int(Path(names[item]).stem) ^ 1
        assert int(Path(names[others[0]]).stem) == twin and item not in others
    assert len(list((tmp_path / "cache" / "exemplar_lists").glob("*.json"))) == 1

    def no_network(*args, **kwargs):
        raise AssertionError("the cached list should be used")

    monkeypatch.setattr("lightning_modules.pretrained.features.vgg19", no_network)
    cached = PairedDataModule(str(inputs), **options)
    cached.setup("fit")
    assert cached.train_set.exemplars.candidates == data.train_set.exemplars.candidates


def test_exemplar_list_files(tmp_path):
    labels, images = label_folders(tmp_path)
    listing = tmp_path / "train_ref.txt"
    listing.write_text("000.png 002.png 003.png\n001.jpg,000.jpg\n")
    data = PairedDataModule(str(labels), target_source=str(images), label_nc=6, crop_size=32,
                            batch_size=2, num_workers=0, exemplar="list",
                            exemplar_list=str(listing))
    data.setup("fit")
    assert data.train_set.exemplars.candidates == {0: [2, 3], 1: [0]}
    listing.write_text("000.png nowhere.png\n")
    with pytest.raises(DataError, match="train_ref.txt:1: nowhere.png"):
        PairedDataModule(str(labels), target_source=str(images), label_nc=6, crop_size=32,
                         batch_size=2, num_workers=0, exemplar="list",
                         exemplar_list=str(listing)).setup("fit")

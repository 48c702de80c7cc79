"""The shapes & textures renderer: determinism, factor independence, families."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pytest

from datamodules.synthetic import (
    FAMILIES,
    HELD_OUT_FAMILY,
    NUM_LABELS,
    SHAPE_KINDS,
    TRAIN_FAMILIES,
    SyntheticSource,
    render,
    sample_structure,
    sample_texture,
)
from tests.conftest import ROOT

DIGEST_SCRIPT = """
import hashlib
from datamodules.synthetic import render
digest = hashlib.sha256()
for s in range(6):
    image, labels = render(s, 100 + s, 48)
    digest.update(image.tobytes()); digest.update(labels.tobytes())
print(digest.hexdigest())
"""


def test_same_seeds_give_identical_bytes_in_two_processes():
    digests = {subprocess.run([sys.executable, "-c", DIGEST_SCRIPT], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout.strip() for _ in range(2)}
    local = hashlib.sha256()
    for s in range(6):
        image, labels = render(s, 100 + s, 48)
        local.update(image.tobytes())
        local.update(labels.tobytes())
    assert digests == {local.hexdigest()}


def test_output_types_and_seed_sensitivity():
    image, labels = render(1, 2, 40)
    assert image.shape == (40, 40, 3) and image.dtype == np.uint8
    assert labels.shape == (40, 40) and labels.dtype == np.uint8 and labels.max() < NUM_LABELS
    assert not np.array_equal(render(1, 3, 40)[0], image)  # texture changes pixels ...
    np.testing.assert_array_equal(render(1, 3, 40)[1], labels)  # ... but not the layout
    assert not np.array_equal(render(4, 2, 40)[1], labels)  # structure changes the layout


def test_true_swap_combines_layout_of_one_and_appearance_of_other():
    structure_a, texture_b = 11, 22
    swapped, swapped_labels = render(structure_a, texture_b, 64)
    np.testing.assert_array_equal(swapped_labels, render(structure_a, 999, 64)[1])
    # Same texture seed -> each region label gets the same colours in both images.
    other, other_labels = render(33, texture_b, 64)
    for label in set(np.unique(swapped_labels)) & set(np.unique(other_labels)):
        mean_a = swapped[swapped_labels == label].mean(axis=0)
        mean_b = other[other_labels == label].mean(axis=0)
        assert np.abs(mean_a - mean_b).max() < 40


def test_every_shape_kind_and_family_occurs_and_rings_are_held_out():
    kinds = {shape.kind for seed in range(200) for shape in sample_structure(seed).shapes}
    assert kinds == set(SHAPE_KINDS) and len(SHAPE_KINDS) >= 4
    assert {sample_texture(seed).family for seed in range(200)} == set(TRAIN_FAMILIES)
    assert len(TRAIN_FAMILIES) >= 4 and HELD_OUT_FAMILY not in TRAIN_FAMILIES
    assert HELD_OUT_FAMILY in FAMILIES
    assert {sample_texture(s, (HELD_OUT_FAMILY,)).family for s in range(20)} == {HELD_OUT_FAMILY}
    with pytest.raises(ValueError, match="unknown"):
        sample_texture(0, ("plaid",))


def test_synthetic_source_is_deterministic_and_indexed():
    source = SyntheticSource(8, 32, seed=5)
    again = SyntheticSource(8, 32, seed=5)
    assert len(source) == 8 and source.size(0) == (32, 32)
    np.testing.assert_array_equal(source.load(3), again.load(3))
    assert not np.array_equal(source.load(3), SyntheticSource(8, 32, seed=6).load(3))
    structure_seed, texture_seed = source.seeds(3)
    np.testing.assert_array_equal(source.load(3), render(structure_seed, texture_seed, 32)[0])


def _edge_density(image: np.ndarray) -> float:
    gray = image.astype(np.float64).mean(axis=2)
    return float(np.abs(np.diff(gray, axis=0)).mean() + np.abs(np.diff(gray, axis=1)).mean())


def test_texture_scale_coarsens_patterns_and_keeps_layout_and_palette():
    from datamodules import UnpairedDataModule

    default, coarse = SyntheticSource(24, 32, seed=2), SyntheticSource(24, 32, seed=2,
                                                                       texture_scale=0.4)
    np.testing.assert_array_equal(SyntheticSource(24, 32, seed=2, texture_scale=1.0).load(5),
                                  default.load(5))
    fine_edges = np.mean([_edge_density(default.load(i)) for i in range(24)])
    coarse_edges = np.mean([_edge_density(coarse.load(i)) for i in range(24)])
    assert coarse_edges < 0.75 * fine_edges
    for i in range(4):  # the layout (label map) is untouched
        _, labels = default.render_with_labels(i)
        _, coarse_labels = coarse.render_with_labels(i)
        np.testing.assert_array_equal(labels, coarse_labels)
    data = UnpairedDataModule(synthetic_texture_scale=0.4, crop_size=32)
    assert data.open("synthetic").texture_scale == 0.4
    with pytest.raises(ValueError, match="texture_scale"):
        SyntheticSource(4, 32, texture_scale=0)

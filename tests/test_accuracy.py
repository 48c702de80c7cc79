"""Structure and texture accuracy (callbacks/accuracy.py): exact values on hand-made images,
and on shapes & textures each trivial answer fails the accuracy it should fail."""

from __future__ import annotations

import pytest
import torch

from callbacks.accuracy import (
    PALETTE_TOLERANCE,
    ground_truth_scores,
    palette_distances,
    structure_accuracy,
    texture_accuracy,
    two_prototypes,
)
from callbacks.swap_error import swap_pairs_with_truth, swap_truth_labels


def two_regions(colors: list[tuple[float, float, float]], split: int = 8, size: int = 16
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(1 x 3 x size x size image in [-1, 1] with flat colours, 1 x size x size labels): label 0
    left of column ``split``, label 1 right of it."""
    labels = torch.zeros(1, size, size, dtype=torch.long)
    labels[..., 8:] = 1
    image = torch.empty(1, 3, size, size)
    image[..., :split] = torch.tensor(colors[0]).view(3, 1, 1)
    image[..., split:] = torch.tensor(colors[1]).view(3, 1, 1)
    return image * 2 - 1, labels


def test_two_prototypes_finds_the_two_shades_dark_first():
    pixels = torch.tensor([[0.9, 0.1, 0.1]] * 30 + [[0.2, 0.0, 0.0]] * 10)
    centres = two_prototypes(pixels[torch.randperm(40)])
    assert torch.allclose(centres, torch.tensor([[0.2, 0.0, 0.0], [0.9, 0.1, 0.1]]))


def test_structure_accuracy_is_the_mean_iou_of_the_colour_segmentation():
    image, labels = two_regions([(1, 0, 0), (0, 0, 1)])
    assert structure_accuracy(image, labels).item() == pytest.approx(1.0)
    # the colour boundary 4 columns right of the true one: region 1 holds red and blue, region
    # 0 only red; a red pixel is as near to both regions' red prototype and goes to the first
    # (label 0), so columns 0-11 are predicted 0 (IoU 8/12) and 12-15 are 1 (IoU 4/8)
    shifted, _ = two_regions([(1, 0, 0), (0, 0, 1)], split=12)
    assert structure_accuracy(shifted, labels).item() == pytest.approx((8 / 12 + 4 / 8) / 2)
    # any palette: only the layout counts
    recoloured, _ = two_regions([(0.1, 0.8, 0.3), (0.9, 0.9, 0.2)])
    assert structure_accuracy(recoloured, labels).item() == pytest.approx(1.0)
    flat, _ = two_regions([(0.5, 0.5, 0.5), (0.5, 0.5, 0.5)])
    assert structure_accuracy(flat, labels).item() == pytest.approx(0.5 / 2)  # all label 0


def test_texture_accuracy_compares_each_regions_palette_within_the_tolerance():
    truth, labels = two_regions([(1, 0, 0), (0, 0, 1)])
    close = (PALETTE_TOLERANCE * 0.9) / 3 ** 0.5  # per channel: just inside the tolerance
    near, _ = two_regions([(1 - close, close, close), (0, 0, 1)])
    far, _ = two_regions([(1, 0, 0), (0, 0.3, 0.7)])
    distances = palette_distances(far, truth, labels)[0]
    assert distances[0].item() == pytest.approx(0)
    assert distances[1].item() == pytest.approx((0.3**2 + 0.3**2) ** 0.5, abs=1e-5)
    assert texture_accuracy(near, truth, labels).item() == 1.0
    assert texture_accuracy(far, truth, labels).item() == 0.5


def test_on_shapes_and_textures_each_trivial_answer_fails_one_accuracy():
    structure, texture, truth, labels = (*swap_pairs_with_truth(24, 64, seed=7),
                                         swap_truth_labels(24, 64, seed=7))
    scores = {name: ground_truth_scores(images, truth, labels) for name, images in
              (("truth", truth), ("structure", structure), ("texture", texture),
               ("grey", torch.zeros_like(truth)))}
    assert scores["truth"]["texture_accuracy"] == 1.0 and scores["truth"]["l1"] == 0
    assert scores["truth"]["structure_accuracy"] > 0.8
    # copying the structure image keeps the layout but not the texture
    assert scores["structure"]["structure_accuracy"] > 0.8
    assert scores["structure"]["texture_accuracy"] < 0.2
    # copying the texture image: neither the layout nor (where layouts differ) the palette
    assert scores["texture"]["structure_accuracy"] < 0.5
    assert scores["texture"]["texture_accuracy"] < 0.7
    assert scores["grey"]["structure_accuracy"] < 0.3
    assert scores["grey"]["texture_accuracy"] == 0.0
    # yet by pixel L1 the texture copy looks best (patterns in image coordinates)
    assert scores["texture"]["l1"] < scores["structure"]["l1"]


def test_swap_truth_labels_are_the_structure_images_layout():
    from datamodules.synthetic import image_seeds, render

    labels = swap_truth_labels(3, 32, seed=5)
    structure_seed, texture_seed = image_seeds(5, 4)   # pair 2's structure image
    assert torch.equal(labels[2], torch.from_numpy(render(structure_seed, texture_seed,
                                                          32)[1]).long())


def test_reading_the_texture_image_perfectly_scores_the_shown_region_fraction():
    """An oracle that copies the truth's palette wherever the texture image shows the region's
    label, and draws the other regions in another texture, scores at least the shown fraction
    on every pair, and above it only where a guessed palette happens to match."""
    from datamodules.synthetic import image_seeds, render
    from datamodules.transforms import to_image_tensor
    from experiments.ground_truth import EVALUATION_SEED, shown_region_fraction

    pairs, size, seed = 12, 64, EVALUATION_SEED
    _, _, truth = swap_pairs_with_truth(pairs, size, seed)
    labels = swap_truth_labels(pairs, size, seed)
    texture_labels = torch.stack([torch.from_numpy(render(image_seeds(seed, 2 * i + 1)[0], 0,
                                                          size)[1]).long()
                                  for i in range(pairs)])
    guessed = torch.stack([to_image_tensor(render(image_seeds(seed, 2 * i)[0],
                                                  image_seeds(seed + 1, i)[1], size)[0])
                           for i in range(pairs)])
    shown = torch.stack([torch.isin(label_map, texture.unique())
                         for label_map, texture in zip(labels, texture_labels, strict=True)])
    oracle = torch.where(shown[:, None], truth, guessed)

    fraction = shown_region_fraction(pairs, size, seed)
    accuracy = texture_accuracy(oracle, truth, labels)
    assert 0 < fraction.mean() < 1 and (fraction < 1).any()
    assert (accuracy >= fraction - 1e-6).all()
    assert accuracy.mean() < fraction.mean() + 0.15
    assert texture_accuracy(guessed, truth, labels).mean() < fraction.mean() - 0.3

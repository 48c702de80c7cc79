"""Aligned (input, target) pairs: two folders matched by file name, or side-by-side A|B images
(pix2pix layout), or synthetic label maps -> images. Both images get the same crop and flip."""

from __future__ import annotations

from pathlib import PurePosixPath

import numpy as np

from datamodules.base import SYNTHETIC, ImageDataModule, SeededDataset
from datamodules.decode import DataError
from datamodules.reference import ReferenceSet
from datamodules.sources import ImageSource
from datamodules.synthetic import SyntheticSource, labels_to_rgb
from lightning_modules.errors import ConfigError

DIRECTIONS = ("AtoB", "BtoA")


def _stem(name: str) -> str:
    return str(PurePosixPath(name).with_suffix(""))


def match_by_name(inputs: ImageSource, targets: ImageSource) -> list[tuple[int, int]]:
    """(input index, target index) of files with the same relative name minus extension."""
    target_index = {_stem(name): i for i, name in enumerate(targets.names)}
    input_index = {_stem(name): i for i, name in enumerate(inputs.names)}
    missing_targets = sorted(set(input_index) - set(target_index))
    missing_inputs = sorted(set(target_index) - set(input_index))
    if missing_targets or missing_inputs:
        def sample(names: list[str]) -> str:
            return ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")
        problems = []
        if missing_targets:
            problems.append(f"{len(missing_targets)} input(s) without a target in "
                            f"{targets.location} ({sample(missing_targets)})")
        if missing_inputs:
            problems.append(f"{len(missing_inputs)} target(s) without an input in "
                            f"{inputs.location} ({sample(missing_inputs)})")
        raise DataError("paired data: " + "; ".join(problems) + ". Pairs are matched by file "
                        "name without extension; rename or remove the unmatched files.")
    return [(input_index[stem], target_index[stem]) for stem in sorted(input_index)]


class PairedDataset(SeededDataset):
    """``{"input", "target"}`` with identical geometry (albumentations additional target)."""

    def __init__(self, inputs: ImageSource, targets: ImageSource | None,
                 pairs: list[tuple[int, int]], transform, direction: str = "AtoB") -> None:
        self.inputs, self.targets, self.pairs = inputs, targets, pairs
        self.transforms, self.direction = (transform,), direction

    def __len__(self) -> int:
        return len(self.pairs)

    def load_pair(self, item: int) -> tuple[np.ndarray, np.ndarray]:
        input_index, target_index = self.pairs[item]
        if isinstance(self.inputs, SyntheticSource):
            image, labels = self.inputs.render_with_labels(input_index)
            return labels_to_rgb(labels), image
        if self.targets is None:  # side-by-side A|B
            both = self.inputs.load(input_index)
            half = both.shape[1] // 2
            a, b = both[:, :half], both[:, half:2 * half]
        else:
            a, b = self.inputs.load(input_index), self.targets.load(target_index)
            if a.shape != b.shape:
                raise DataError(f"{self.inputs.describe(input_index)} is {a.shape[1]}x"
                                f"{a.shape[0]} but its target "
                                f"{self.targets.describe(target_index)} is {b.shape[1]}x"
                                f"{b.shape[0]}; paired images must have the same size.")
        return (a, b) if self.direction == "AtoB" else (b, a)

    def get(self, item: int) -> dict:
        input_image, target_image = self.load_pair(item)
        out = self.transforms[0](image=input_image, target=target_image)
        return {"input": out["image"], "target": out["target"]}


class PairedDataModule(ImageDataModule):
    """Paired data.

    Args:
        source: input images, side-by-side A|B images (``target_source: null``), or
            ``synthetic`` (input = colour-coded label map, target = rendered image).
        target_source: target images, matched to inputs by file name without extension.
        direction: ``AtoB`` (input = A) or ``BtoA``.
        **kwargs: see :class:`~datamodules.base.ImageDataModule`.
    """

    def __init__(self, source: str = SYNTHETIC, target_source: str | None = None,
                 direction: str = "AtoB", **kwargs) -> None:
        super().__init__(**kwargs)
        if direction not in DIRECTIONS:
            raise ConfigError(f"direction: '{direction}' is not one of {DIRECTIONS}")
        self.source, self.target_source, self.direction = source, target_source, direction

    def reference_set(self) -> ReferenceSet:
        """The target side of every training pair (what the model should produce)."""
        self.setup("fit")
        data: PairedDataset = self.train_set
        a_to_b = self.direction == "AtoB"
        if isinstance(data.inputs, SyntheticSource):
            if not a_to_b:
                raise ConfigError("reference_set: synthetic paired data with direction BtoA "
                                 "targets label maps; image metrics do not apply.")
            return ReferenceSet(data.inputs, [i for i, _ in data.pairs], self.crop_size,
                                self.load_size)
        if data.targets is None:
            return ReferenceSet(data.inputs, [i for i, _ in data.pairs], self.crop_size,
                                self.load_size, half="right" if a_to_b else "left")
        if a_to_b:
            return ReferenceSet(data.targets, [t for _, t in data.pairs], self.crop_size,
                                self.load_size)
        return ReferenceSet(data.inputs, [i for i, _ in data.pairs], self.crop_size,
                            self.load_size)

    def build_datasets(self) -> tuple[SeededDataset, SeededDataset]:
        inputs = self.open(self.source)
        side_by_side = self.target_source is None and self.source != SYNTHETIC
        good_inputs = set(self.validated(inputs, side_by_side=side_by_side))
        if self.target_source is None:
            targets = None
            pairs = [(i, i) for i in sorted(good_inputs)]
        else:
            targets = self.open(self.target_source)
            good_targets = set(self.validated(targets))
            pairs = [(i, t) for i, t in match_by_name(inputs, targets)
                     if i in good_inputs and t in good_targets]
        extra = {"additional_targets": {"target": "image"}}
        train = PairedDataset(inputs, targets, pairs, self.transform(True, **extra),
                              self.direction)
        val = PairedDataset(inputs, targets, pairs[:self.num_val_images],
                            self.transform(False, **extra), self.direction)
        return train, val

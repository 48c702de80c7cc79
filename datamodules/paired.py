"""Aligned (input, target) pairs: two folders matched by file name, or side-by-side A|B images
(pix2pix layout), label maps -> images, or synthetic label maps -> images; optionally with an
exemplar per sample (exemplar-based translation). Everything of a sample gets the same crop and
flip; label maps stay integer class indices (nearest-neighbour resize)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from datamodules.base import SYNTHETIC, ImageDataModule, SeededDataset
from datamodules.decode import DataError, decode_label_map
from datamodules.exemplars import (
    flow_of,
    name_stem,
    no_flow,
    random_affine,
    read_exemplar_list,
    retrieval_list,
    warp,
)
from datamodules.keys import (
    EXEMPLAR,
    EXEMPLAR_FLOW,
    EXEMPLAR_INPUT,
    EXEMPLAR_IS_SELF,
    EXEMPLAR_LABEL,
    INPUT,
    LABEL,
    LABEL_ONEHOT,
    TARGET,
    TRUTH,
)
from datamodules.reference import ReferenceSet
from datamodules.sources import ImageSource
from datamodules.synthetic import NUM_LABELS, SyntheticSource, labels_to_rgb, render
from datamodules.transforms import to_image_tensor
from lightning_modules.errors import ConfigError
from lightning_modules.pretrained.weights import corrlab_cache_dir

DIRECTIONS = ("AtoB", "BtoA")


def match_by_name(inputs: ImageSource, targets: ImageSource) -> list[tuple[int, int]]:
    """(input index, target index) of files with the same relative name minus extension."""
    target_index = {name_stem(name): i for i, name in enumerate(targets.names)}
    input_index = {name_stem(name): i for i, name in enumerate(inputs.names)}
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


@dataclass(frozen=True)
class LabelSpec:
    """Label maps: ``label_nc`` classes, plus a "don't care" class ``label_nc`` for values
    ``>= label_nc`` when ``dontcare``; otherwise such a value is an error naming the file."""

    label_nc: int
    dontcare: bool = False

    @property
    def channels(self) -> int:
        return self.label_nc + int(self.dontcare)

    def check(self, labels: np.ndarray, where: str) -> np.ndarray:
        if labels.size and (labels.min() < 0 or (labels.max() >= self.label_nc and
                                                 not self.dontcare)):
            raise DataError(f"{where}: label values {sorted(np.unique(labels).tolist())[-3:]} "
                            f"outside 0..{self.label_nc - 1}; raise label_nc or set "
                            "contain_dontcare_label: true.")
        return np.minimum(labels, self.label_nc).astype(np.int32)

    def one_hot(self, labels: torch.Tensor) -> torch.Tensor:
        return F.one_hot(labels.long(), self.channels).permute(2, 0, 1).float()


@dataclass(frozen=True)
class ExemplarSpec:
    """How each sample's exemplar is chosen (see :mod:`datamodules.exemplars`)."""

    candidates: dict[int, list[int]]   # pair index -> other pair indices ({} : self only)
    real_prob: float                   # probability of a candidate rather than self-reference
    max_rotation: float = 15.0
    scale: tuple[float, float] = (0.9, 1.1)
    max_shift: float = 0.1


class PairedDataset(SeededDataset):
    """Aligned pairs with identical geometry (albumentations additional targets); label maps,
    exemplars and the truth as :mod:`datamodules.keys` documents."""

    def __init__(self, inputs: ImageSource, targets: ImageSource | None,
                 pairs: list[tuple[int, int]], transform, direction: str = "AtoB",
                 labels: LabelSpec | None = None, exemplars: ExemplarSpec | None = None,
                 exemplar_transform=None, limit: int | None = None) -> None:
        self.inputs, self.targets, self.pairs, self.limit = inputs, targets, pairs, limit
        self.transforms = (transform,) + ((exemplar_transform,) if exemplar_transform else ())
        self.direction, self.labels, self.exemplars = direction, labels, exemplars
        self.synthetic = isinstance(inputs, SyntheticSource)
        self.rng = np.random.default_rng(0)

    def __len__(self) -> int:
        return len(self.pairs) if self.limit is None else min(self.limit, len(self.pairs))

    def load_pair(self, item: int) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
        """(input image or None for label-map inputs, target image, label map or None)."""
        input_index, target_index = self.pairs[item]
        if self.synthetic:
            image, labels = self.inputs.render_with_labels(input_index)
            return labels_to_rgb(labels), image, labels.astype(np.int32)
        if self.labels is not None:  # the input source holds label maps
            where = self.inputs.describe(input_index)
            labels = decode_label_map(self.inputs.read_bytes(input_index), where)
            target = self.targets.load(target_index)
            if labels.shape != target.shape[:2]:
                raise DataError(f"{where} is {labels.shape[1]}x{labels.shape[0]} but its target "
                                f"{self.targets.describe(target_index)} is {target.shape[1]}x"
                                f"{target.shape[0]}; paired images must have the same size.")
            return None, target, self.labels.check(labels, where)
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
        return ((a, b) if self.direction == "AtoB" else (b, a)) + (None,)

    def get(self, item: int) -> dict:
        input_image, target_image, labels = self.load_pair(item)
        other = self.choose_exemplar(item)
        targets = {"image": target_image}
        if input_image is not None:
            targets[INPUT] = input_image
        if labels is not None:
            targets["mask"] = labels
        if self.synthetic and self.exemplars is not None:  # the truth: this layout, its texture
            texture_item = item if other is None else other
            structure_seed = self.inputs.seeds(self.pairs[item][0])[0]
            texture_seed = self.inputs.seeds(self.pairs[texture_item][0])[1]
            targets[TRUTH] = render(structure_seed, texture_seed, self.inputs.image_side,
                                    self.inputs.families, self.inputs.texture_scale)[0]
        out = self.transforms[0](**targets)
        sample = {TARGET: to_image_tensor(out["image"])}
        if input_image is not None:
            sample[INPUT] = to_image_tensor(out[INPUT])
        if labels is not None:
            sample[LABEL] = torch.from_numpy(np.ascontiguousarray(out["mask"])).long()
            if self.labels is not None:
                sample[LABEL_ONEHOT] = self.labels.one_hot(sample[LABEL])
        if self.exemplars is not None:
            sample.update(self.exemplar(out, other))
        return sample

    def choose_exemplar(self, item: int) -> int | None:
        """A candidate pair index with probability ``real_prob``, else None (self-reference)."""
        spec = self.exemplars
        if spec is None:
            return None
        candidates = spec.candidates.get(item) or []
        if candidates and self.rng.uniform() < spec.real_prob:
            return candidates[int(self.rng.integers(len(candidates)))]
        return None

    def exemplar(self, out: dict, other: int | None) -> dict:
        size = out["image"].shape[0]
        if other is None:  # self-reference: the target under a known warp
            matrix = random_affine(self.rng, size, self.exemplars.max_rotation,
                                   self.exemplars.scale, self.exemplars.max_shift)
            sample = {EXEMPLAR: to_image_tensor(warp(out["image"], matrix)),
                      EXEMPLAR_FLOW: flow_of(matrix, size),
                      EXEMPLAR_IS_SELF: torch.tensor(True)}
            if INPUT in out and not self.synthetic:
                sample[EXEMPLAR_INPUT] = to_image_tensor(warp(out[INPUT], matrix))
            if "mask" in out:
                sample[EXEMPLAR_LABEL] = torch.from_numpy(
                    warp(np.ascontiguousarray(out["mask"]), matrix, labels=True)).long()
        else:
            other_input, image, labels = self.load_pair(other)
            geometry = {"image": image, **({"mask": labels} if labels is not None else {})}
            if other_input is not None and not self.synthetic:
                geometry[INPUT] = other_input
            moved = self.transforms[1](**geometry)
            sample = {EXEMPLAR: to_image_tensor(moved["image"]), EXEMPLAR_FLOW: no_flow(size),
                      EXEMPLAR_IS_SELF: torch.tensor(False)}
            if INPUT in moved:
                sample[EXEMPLAR_INPUT] = to_image_tensor(moved[INPUT])
            if labels is not None:
                sample[EXEMPLAR_LABEL] = torch.from_numpy(
                    np.ascontiguousarray(moved["mask"])).long()
        if TRUTH in out:
            sample[TRUTH] = to_image_tensor(out[TRUTH])
        return sample


EXEMPLAR_MODES = (None, "self", "retrieval", "list")


class PairedDataModule(ImageDataModule):
    """Paired data. Batches: ``target``, and ``input`` (an image-like condition: image, edges,
    pose map, colour-coded label map) unless the inputs are label maps; with label maps
    ``label`` and ``label_onehot``; with exemplars ``exemplar``, ``exemplar_flow``,
    ``exemplar_is_self`` (and ``exemplar_label`` with label maps, ``exemplar_input`` with
    image-like inputs such as edges or pose); on ``synthetic`` data
    ``truth``. Keys: :mod:`datamodules.keys`.

    Args:
        source: input images, side-by-side A|B images (``target_source: null``), label maps
            (with ``label_nc``), or ``synthetic`` (input = colour-coded label map, label = its
            class indices, target = rendered image).
        target_source: target images, matched to inputs by file name without extension.
        direction: ``AtoB`` (input = A) or ``BtoA``.
        label_nc: the inputs are label maps (one class index per pixel, grayscale or palette
            PNG) with this many classes; resized with nearest neighbour, never normalised.
        contain_dontcare_label: values ``>= label_nc`` become one extra "don't care" class.
        exemplar: None, ``self`` (the target under a random known warp), ``retrieval`` (with
            probability ``exemplar_real_prob`` one of the ``exemplar_top_k`` nearest training
            targets by VGG-19 features, else self-reference) or ``list`` (candidates from
            ``exemplar_list``, CoCosNet's ``*_ref.txt`` format).
        exemplar_max_rotation / exemplar_scale / exemplar_max_shift: the self-reference warp
            (degrees, scale range, fraction of the side), plus a random horizontal flip.
        **kwargs: see :class:`~datamodules.base.ImageDataModule`.
    """

    def __init__(self, source: str = SYNTHETIC, target_source: str | None = None,
                 direction: str = "AtoB", label_nc: int | None = None,
                 contain_dontcare_label: bool = False, exemplar: str | None = None,
                 exemplar_list: str | None = None, exemplar_top_k: int = 5,
                 exemplar_real_prob: float = 0.7, exemplar_max_rotation: float = 15.0,
                 exemplar_scale: tuple[float, float] = (0.9, 1.1),
                 exemplar_max_shift: float = 0.1, **kwargs) -> None:
        super().__init__(**kwargs)
        if direction not in DIRECTIONS:
            raise ConfigError(f"direction: '{direction}' is not one of {DIRECTIONS}")
        if exemplar not in EXEMPLAR_MODES:
            raise ConfigError(f"exemplar: '{exemplar}' is not one of {EXEMPLAR_MODES}")
        if (exemplar == "list") != (exemplar_list is not None):
            raise ConfigError("exemplar: 'list' needs exemplar_list (a *_ref.txt file), and "
                              "exemplar_list needs exemplar: list")
        if label_nc is not None and (label_nc < 1 or target_source is None):
            raise ConfigError("label_nc: the inputs are label maps with label_nc >= 1 classes, "
                              "and their images come from target_source")
        if not 0 <= exemplar_real_prob <= 1:
            raise ConfigError(f"exemplar_real_prob must be in [0, 1], got {exemplar_real_prob}")
        self.source, self.target_source, self.direction = source, target_source, direction
        self.label_nc, self.contain_dontcare_label = label_nc, contain_dontcare_label
        self.exemplar, self.exemplar_list, self.exemplar_top_k = exemplar, exemplar_list, \
            exemplar_top_k
        self.exemplar_real_prob = exemplar_real_prob
        self.exemplar_warp = (exemplar_max_rotation, tuple(exemplar_scale), exemplar_max_shift)

    def reference_set(self) -> ReferenceSet:
        """The target side of every training pair (what the model should produce)."""
        self.setup("fit")
        return self._targets(self.train_set)

    def _targets(self, data: PairedDataset) -> ReferenceSet:
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

    def label_spec(self, inputs: ImageSource) -> LabelSpec | None:
        if isinstance(inputs, SyntheticSource):
            return LabelSpec(NUM_LABELS)
        if self.label_nc is None:
            return None
        return LabelSpec(self.label_nc, self.contain_dontcare_label)

    def exemplar_spec(self, data: PairedDataset) -> ExemplarSpec | None:
        """Candidates (pair positions) per pair position, from the retrieval or the list."""
        if self.exemplar is None:
            return None
        candidates: dict[int, list[int]] = {}
        if self.exemplar != "self":
            targets = self._targets(data)
            if targets.half is not None:
                raise ConfigError("exemplar retrieval and lists need separate target images "
                                  "(target_source) or synthetic data, not side-by-side A|B.")
            position = {index: p for p, index in enumerate(targets.indices)}
            if self.exemplar == "retrieval":
                by_index = retrieval_list(targets.source, targets.indices, self.crop_size,
                                          self.load_size, self.exemplar_top_k,
                                          corrlab_cache_dir())
            else:
                by_index = read_exemplar_list(self.exemplar_list, targets.source.names)
            candidates = {position[i]: [position[j] for j in others if j in position]
                          for i, others in by_index.items() if i in position}
        rotation, scale, shift = self.exemplar_warp
        return ExemplarSpec(candidates, self.exemplar_real_prob, rotation, scale, shift)

    def check_labels(self, data: PairedDataset) -> None:
        """With ``check_images: full``, every label map's values are checked at set-up."""
        if data.labels is None or data.synthetic or self.check_images != "full":
            return
        for input_index, _ in data.pairs:
            where = data.inputs.describe(input_index)
            data.labels.check(decode_label_map(data.inputs.read_bytes(input_index), where),
                              where)

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
        extra = {"additional_targets": {INPUT: "image", TRUTH: "image"}, "normalize": False}
        labels = self.label_spec(inputs)
        train = PairedDataset(inputs, targets, pairs, self.transform(True, **extra),
                              self.direction, labels)
        self.check_labels(train)
        exemplars = self.exemplar_spec(train)
        exemplar_extra = {"additional_targets": {INPUT: "image"}, "normalize": False}
        train = PairedDataset(inputs, targets, pairs, self.transform(True, **extra),
                              self.direction, labels, exemplars,
                              self.transform(True, **exemplar_extra))
        val = PairedDataset(inputs, targets, pairs, self.transform(False, **extra),
                            self.direction, labels, exemplars,
                            self.transform(False, **exemplar_extra),
                            limit=self.num_val_images)
        return train, val

"""Exemplars for exemplar-based translation (CoCosNet, Zhang et al. 2020, Sec. 3.3 and the
official code's data loaders).

* **self-reference**: the target itself under a random geometric warp (rotation, scale,
  shift, flip) whose correspondence is known: :func:`random_affine` and :func:`warp`;
* **retrieval**: another training image, one of the top-k nearest by VGG-19 features after the
  last pooling (``pool5``), cosine distance: :func:`retrieval_list`, computed once with a
  progress bar and cached under ``$CORRLAB_CACHE/exemplar_lists/`` like FID statistics;
* **a list file** in CoCosNet's ``*_ref.txt`` format: one line per image, the image's name, then
  its candidate exemplars' names (separated by spaces or commas): :func:`read_exemplar_list`.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path, PurePosixPath

import cv2
import numpy as np
import torch
from tqdm.auto import tqdm

from datamodules.decode import DataError
from datamodules.sources import ImageSource
from datamodules.transforms import build_transform, to_image_tensor


def random_affine(rng: np.random.Generator, size: int, max_rotation: float = 15.0,
                  scale: tuple[float, float] = (0.9, 1.1), max_shift: float = 0.1,
                  flip: bool = True) -> np.ndarray:
    """A 2 x 3 matrix mapping target pixel coordinates (x, y) to exemplar coordinates: a
    rotation (degrees) and scale about the centre, a shift (fraction of the side), and a
    horizontal flip with probability 1/2."""
    angle = np.deg2rad(rng.uniform(-max_rotation, max_rotation))
    factor = rng.uniform(*scale)
    shift = rng.uniform(-max_shift, max_shift, 2) * size
    mirror = -1.0 if flip and rng.uniform() < 0.5 else 1.0
    centre = (size - 1) / 2
    linear = factor * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    linear = linear @ np.diag([mirror, 1.0])
    offset = centre + shift - linear @ np.array([centre, centre])
    return np.concatenate([linear, offset[:, None]], axis=1)


def warp(image: np.ndarray, matrix: np.ndarray, labels: bool = False) -> np.ndarray:
    """``exemplar(matrix @ p) = image(p)``: the image moved by the target -> exemplar map;
    bilinear with reflected borders for images, nearest neighbour for label maps."""
    height, width = image.shape[:2]
    return cv2.warpAffine(image, matrix, (width, height),
                          flags=cv2.INTER_NEAREST if labels else cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT_101)


def flow_of(matrix: np.ndarray, size: int) -> torch.Tensor:
    """``2 x size x size``: the exemplar (x, y) of every target pixel; NaN where it falls
    outside the exemplar (no true correspondence there)."""
    ys, xs = np.meshgrid(np.arange(size, dtype=np.float64), np.arange(size, dtype=np.float64),
                         indexing="ij")
    mapped = np.einsum("ij,jhw->ihw", matrix[:, :2], np.stack([xs, ys])) + \
        matrix[:, 2, None, None]
    outside = ((mapped < -0.5) | (mapped > size - 0.5)).any(axis=0)
    mapped[:, outside] = np.nan
    return torch.from_numpy(mapped.astype(np.float32))


def no_flow(size: int) -> torch.Tensor:
    """The flow of an exemplar with no known correspondence: all NaN."""
    return torch.full((2, size, size), float("nan"))


def name_stem(name: str) -> str:
    """A relative file name without its extension (how paired and exemplar files match)."""
    return str(PurePosixPath(name).with_suffix(""))


def read_exemplar_list(path: str | Path, names: list[str]) -> dict[int, list[int]]:
    """CoCosNet ``*_ref.txt``: ``image candidate candidate ...`` per line (names with or without
    extension and folders as stored). Returns image index -> candidate indices; a name that is
    not in the data is an error naming the line."""
    index = {name_stem(name): i for i, name in enumerate(names)}
    index.update({PurePosixPath(name_stem(name)).name: i for i, name in enumerate(names)})
    result: dict[int, list[int]] = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        words = [w for w in re.split(r"[\s,]+", line.strip()) if w]
        if not words:
            continue
        missing = [w for w in words if name_stem(w) not in index]
        if missing:
            raise DataError(f"{path}:{number}: {missing[0]} is not an image of the data set; "
                            "each line names an image, then its candidate exemplars.")
        result[index[name_stem(words[0])]] = [index[name_stem(w)] for w in words[1:]]
    if not result:
        raise DataError(f"{path}: no exemplar lines found")
    return result


def retrieval_list(source: ImageSource, indices: list[int], crop_size: int,
                   load_size: int | None, top_k: int, cache_dir: Path,
                   progress: bool = True, batch_size: int = 16) -> dict[int, list[int]]:
    """For every listed image, the ``top_k`` other listed images nearest by cosine distance of
    VGG-19 ``pool5`` features (Caffe weights) of the evaluation crop; cached by content, size,
    k and weights."""
    from datamodules.reference import source_content_hash
    from lightning_modules.checkpoint_io import atomic_write
    from lightning_modules.pretrained import features as pretrained

    fields = {"content": source_content_hash(source, indices), "crop": crop_size,
              "load": load_size, "top_k": top_k, "features": "vgg19 pool5 cosine",
              "weights_sha256": pretrained.find_vgg_weights(19).sha256}
    key = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:24]
    path = cache_dir / "exemplar_lists" / f"{key}.json"
    if path.is_file():
        stored = json.loads(path.read_text())
        if stored["fields"] == fields:
            return {int(k): v for k, v in stored["neighbours"].items()}
    network = pretrained.vgg19()
    transform = build_transform(crop_size, load_size, train=False, normalize=False)
    features = []
    with torch.inference_mode(), tqdm(total=len(indices), desc="exemplar retrieval features",
                                       disable=not progress, file=sys.stderr) as bar:
        for start in range(0, len(indices), batch_size):
            chunk = indices[start:start + batch_size]
            images = torch.stack([to_image_tensor(transform(image=source.load(i))["image"])
                                  for i in chunk])
            features.append(network(images, ["pool5"])["pool5"].flatten(1))
            bar.update(len(chunk))
    unit = torch.nn.functional.normalize(torch.cat(features).double(), dim=1)
    similarity = unit @ unit.T
    similarity.fill_diagonal_(-float("inf"))  # never the image itself
    k = min(top_k, len(indices) - 1)
    nearest = similarity.topk(k, dim=1).indices.tolist()
    neighbours = {indices[row]: [indices[j] for j in columns]
                  for row, columns in enumerate(nearest)}
    text = json.dumps({"fields": fields, "neighbours": neighbours}).encode()
    atomic_write(path, lambda handle: handle.write(text))
    return neighbours

"""Structure and texture accuracy against shapes & textures ground truth.

Pixel L1 to the true answer rewards the wrong answer: patterns are drawn in absolute image
coordinates, so copying the texture image scores better than a right swap whose stripes are
shifted. Two accuracies separate the two factors instead, each failed by one trivial answer:

- **structure** (:func:`structure_accuracy`): segment the image by colour, guided by the
  truth's label map: fit two colour prototypes (k-means, k = 2: a region's pattern blends two
  shades) to the image's pixels in every true region, give every pixel the region of its
  nearest prototype, and score the mean IoU of that segmentation against the label map. An
  image with the truth's layout in *any* palette scores high (copying the structure image
  passes); an image whose colours do not follow the layout scores low (the texture image, a
  flat or mean image fail).
- **texture** (:func:`texture_accuracy`): region by region, do the image's two colour
  prototypes match the truth's (within ``tolerance`` in RGB, [0, 1] units)? Copying the
  structure image fails (another palette); copying the texture image fails where its layout
  differs from the truth's (each region label has its own colours).

Both are computed per image (``N`` values); the truth itself scores the ceiling of each (below
1 where two regions happen to share colours).
"""

from __future__ import annotations

import torch

#: the palette tolerance of :func:`texture_accuracy`: L2 distance in RGB [0, 1] units
PALETTE_TOLERANCE = 0.15


def two_prototypes(pixels: torch.Tensor, iterations: int = 8) -> torch.Tensor:
    """``2 x 3`` k-means centres of ``P x 3`` pixels, started at the darkest and brightest
    quarter's means and ordered dark to bright (so two palettes compare centre by centre)."""
    luma = pixels.sum(dim=1)
    order = luma.argsort()
    quarter = max(1, len(order) // 4)
    centres = torch.stack([pixels[order[:quarter]].mean(0), pixels[order[-quarter:]].mean(0)])
    for _ in range(iterations):
        nearest = torch.cdist(pixels, centres).argmin(dim=1)
        for k in range(2):
            if (nearest == k).any():
                centres[k] = pixels[nearest == k].mean(0)
    return centres[centres.sum(dim=1).argsort()]


def _region_prototypes(image: torch.Tensor, labels: torch.Tensor
                       ) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """(``HW x 3`` pixels in [0, 1], {label: its two prototypes}) of one image."""
    pixels = ((image.float().clamp(-1, 1) + 1) / 2).flatten(1).T
    flat = labels.flatten()
    return pixels, {int(label): two_prototypes(pixels[flat == label])
                    for label in flat.unique()}


def structure_accuracy(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per image, mean IoU over the true regions of the prototype segmentation (module
    docstring); ``images`` ``N x 3 x H x W`` in [-1, 1], ``labels`` ``N x H x W``."""
    scores = []
    for image, label_map in zip(images, labels, strict=True):
        pixels, prototypes = _region_prototypes(image, label_map)
        names = list(prototypes)
        distances = torch.cdist(pixels, torch.cat([prototypes[n] for n in names]))
        predicted = torch.tensor(names, device=pixels.device)[distances.argmin(dim=1) // 2]
        flat = label_map.flatten().to(pixels.device)
        ious = [((predicted == n) & (flat == n)).sum() / ((predicted == n) | (flat == n)).sum()
                for n in names]
        scores.append(torch.stack(ious).float().mean())
    return torch.stack(scores)


def palette_distances(images: torch.Tensor, truth: torch.Tensor, labels: torch.Tensor
                      ) -> list[torch.Tensor]:
    """Per image, per true region: mean RGB distance ([0, 1] units) between the image's two
    prototypes and the truth's in that region."""
    result = []
    for image, true_image, label_map in zip(images, truth, labels, strict=True):
        _, mine = _region_prototypes(image, label_map)
        _, true = _region_prototypes(true_image, label_map)
        result.append(torch.stack([(mine[n] - true[n]).norm(dim=1).mean() for n in true]))
    return result


def texture_accuracy(images: torch.Tensor, truth: torch.Tensor, labels: torch.Tensor,
                     tolerance: float = PALETTE_TOLERANCE) -> torch.Tensor:
    """Per image, the fraction of true regions whose palette is within ``tolerance`` of the
    truth's."""
    return torch.stack([(d <= tolerance).float().mean()
                        for d in palette_distances(images, truth, labels)])


def ground_truth_scores(images: torch.Tensor, truth: torch.Tensor, labels: torch.Tensor,
                        lpips: torch.nn.Module | None = None) -> dict[str, float]:
    """Means over the batch: ``structure_accuracy``, ``texture_accuracy``,
    ``palette_distance``, ``l1`` and (with ``lpips``) ``lpips`` to the truth."""
    images, truth = images.clamp(-1, 1), truth.clamp(-1, 1)
    scores = {"structure_accuracy": float(structure_accuracy(images, labels).mean()),
              "texture_accuracy": float(texture_accuracy(images, truth, labels).mean()),
              "palette_distance": float(torch.cat(palette_distances(images, truth,
                                                                    labels)).mean()),
              "l1": float((images - truth).abs().mean())}
    if lpips is not None:
        scores["lpips"] = float(lpips.to(images.device)(images, truth).mean())
    return scores

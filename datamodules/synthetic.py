""""Shapes & textures": a built-in dataset with ground-truth structure and texture factors.

An image is rendered from two independent seeds (docs/ARCHITECTURE.md, "Data"):

* a **structure** seed fixes the layout: a background split in two regions by a line, and 1-3
  shapes (disc, rectangle, triangle, diamond) with position, size, aspect and rotation;
* a **texture** seed fixes the appearance: a palette (two colours per region label) and one
  pattern family (stripes, checkers, dots, smooth noise; ``rings`` is held out for few-shot use)
  with its angle, frequency and phase.

Because ``render(structure_a, texture_b)`` can be drawn, the correct swap of two images is known.
Rendering is pure NumPy float64 from PCG64 draws, so the same seeds give the same bytes in any
process. Every image comes with its label map: 0/1 background regions, ``2 + k`` shape kind k.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, replace

import numpy as np

from datamodules.sources import ImageSource
from lightning_modules.errors import ConfigError

SHAPE_KINDS = ("disc", "rectangle", "triangle", "diamond")
TRAIN_FAMILIES = ("stripes", "checkers", "dots", "noise")
HELD_OUT_FAMILY = "rings"
FAMILIES = TRAIN_FAMILIES + (HELD_OUT_FAMILY,)
NUM_LABELS = 2 + len(SHAPE_KINDS)
SUPERSAMPLING = 2

# Fixed colours of the label map as an RGB image (paired data: label map -> image).
LABEL_COLORS = np.array([[40, 40, 40], [120, 120, 120], [230, 60, 60], [60, 200, 60],
                         [60, 90, 230], [230, 200, 40]], dtype=np.uint8)


@dataclass(frozen=True)
class Shape:
    kind: str
    center: tuple[float, float]  # (x, y) in [0, 1] image coordinates
    radius: float                # half-extent as a fraction of the image side
    aspect: float                # y extent / x extent
    angle: float                 # rotation in radians


@dataclass(frozen=True)
class Structure:
    horizon_angle: float
    horizon_offset: float
    shapes: tuple[Shape, ...]


@dataclass(frozen=True)
class Texture:
    family: str
    colors: np.ndarray  # NUM_LABELS x 2 x 3 in [0, 1]: the two colours each region blends
    angle: float
    frequency: float    # cycles per image side
    phase: float
    dot_radius: float
    waves: np.ndarray   # K x 4 (fx, fy, phase, amplitude) of the smooth-noise family


def sample_structure(seed: int) -> Structure:
    """Layout drawn from ``seed``: horizon line and 1-3 shapes of any kind."""
    rng = np.random.default_rng(seed)
    horizon_angle = rng.uniform(-0.4, 0.4)
    horizon_offset = rng.uniform(0.3, 0.7)
    shapes = []
    for _ in range(int(rng.integers(1, 4))):
        kind = SHAPE_KINDS[int(rng.integers(len(SHAPE_KINDS)))]
        center = (float(rng.uniform(0.2, 0.8)), float(rng.uniform(0.2, 0.8)))
        radius = float(rng.uniform(0.1, 0.25))
        aspect = 1.0 if kind == "disc" else float(rng.uniform(0.6, 1.4))
        shapes.append(Shape(kind, center, radius, aspect, float(rng.uniform(0, np.pi))))
    return Structure(float(horizon_angle), float(horizon_offset), tuple(shapes))


def sample_texture(seed: int, families: tuple[str, ...] = TRAIN_FAMILIES) -> Texture:
    """Appearance drawn from ``seed``: palette and one pattern family out of ``families``."""
    unknown = set(families) - set(FAMILIES)
    if unknown or not families:
        raise ConfigError(f"texture families {sorted(unknown) or '[]'} unknown; "
                         f"choose from {FAMILIES}")
    rng = np.random.default_rng(seed)
    family = families[int(rng.integers(len(families)))]
    base_hue = rng.uniform()
    colors = np.empty((NUM_LABELS, 2, 3))
    for label in range(NUM_LABELS):
        hue = (base_hue + label * 0.618034 + rng.uniform(-0.05, 0.05)) % 1.0
        saturation, value = rng.uniform(0.4, 0.9), rng.uniform(0.55, 0.95)
        colors[label, 0] = colorsys.hsv_to_rgb(hue, saturation, value)
        colors[label, 1] = colorsys.hsv_to_rgb((hue + 0.08) % 1.0, saturation * 0.6,
                                               value * rng.uniform(0.35, 0.6))
    waves = np.stack([rng.uniform(-4, 4, 6), rng.uniform(-4, 4, 6), rng.uniform(0, 2 * np.pi, 6),
                      rng.uniform(0.5, 1.0, 6)], axis=1)
    return Texture(family, colors, float(rng.uniform(0, np.pi)), float(rng.uniform(3, 9)),
                   float(rng.uniform(0, 2 * np.pi)), float(rng.uniform(0.18, 0.32)), waves)


def _grid(size: int, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [0, 1] of a ``size * factor`` square grid."""
    n = size * factor
    axis = (np.arange(n) + 0.5) / n
    return np.meshgrid(axis, axis, indexing="xy")


def _inside(shape: Shape, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    cos, sin = np.cos(shape.angle), np.sin(shape.angle)
    dx, dy = x - shape.center[0], y - shape.center[1]
    u = (cos * dx + sin * dy) / shape.radius
    v = (-sin * dx + cos * dy) / (shape.radius * shape.aspect)
    if shape.kind == "disc":
        return u * u + v * v <= 1.0
    if shape.kind == "rectangle":
        return (np.abs(u) <= 0.8) & (np.abs(v) <= 0.8)
    if shape.kind == "diamond":
        return np.abs(u) + np.abs(v) <= 1.0
    # triangle: apex up, intersection of three half-planes
    return (v <= 0.5) & (np.sqrt(3.0) * u - v <= 1.0) & (-np.sqrt(3.0) * u - v <= 1.0)


def label_map(structure: Structure, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Region label of every coordinate: 0/1 background halves, ``2 + kind`` for shapes."""
    normal = (np.sin(structure.horizon_angle), np.cos(structure.horizon_angle))
    below = normal[0] * (x - 0.5) + normal[1] * (y - structure.horizon_offset) > 0
    labels = below.astype(np.uint8)
    for shape in structure.shapes:  # later shapes are drawn on top
        labels[_inside(shape, x, y)] = 2 + SHAPE_KINDS.index(shape.kind)
    return labels


def _soft(signal: np.ndarray, sharpness: float = 3.0) -> np.ndarray:
    return 0.5 + 0.5 * np.tanh(sharpness * signal) / np.tanh(sharpness)


def pattern(texture: Texture, x: np.ndarray, y: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Blend weight in [0, 1] between each region's two colours; the phase shifts per region so
    region boundaries stay visible."""
    phase = texture.phase + 0.9 * labels
    cos, sin = np.cos(texture.angle), np.sin(texture.angle)
    along, across = cos * x + sin * y, -sin * x + cos * y
    freq = texture.frequency
    if texture.family == "stripes":
        return _soft(np.sin(2 * np.pi * freq * along + phase))
    if texture.family == "checkers":
        return _soft(np.sin(2 * np.pi * freq * along + phase) * np.sin(2 * np.pi * freq * across))
    if texture.family == "dots":
        cell_u = (freq * along + phase / (2 * np.pi)) % 1.0 - 0.5
        cell_v = (freq * across) % 1.0 - 0.5
        return _soft((texture.dot_radius - np.hypot(cell_u, cell_v)) * 12.0)
    if texture.family == "noise":
        fx, fy, wave_phase, amplitude = (texture.waves[:, i, None, None] for i in range(4))
        waves = amplitude * np.sin(2 * np.pi * (fx * x + fy * y) + wave_phase + phase)
        return _soft(waves.sum(axis=0) / np.sqrt(0.5 * (amplitude**2).sum()), 1.5)
    # rings (held-out family): concentric circles around a point set by the angle
    center_x, center_y = 0.5 + 0.3 * cos, 0.5 + 0.3 * sin
    return _soft(np.sin(2 * np.pi * freq * np.hypot(x - center_x, y - center_y) + phase))


def render_factors(structure: Structure, texture: Texture, size: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(image ``size x size x 3`` uint8, label map ``size x size`` uint8) of the two factors."""
    x, y = _grid(size, SUPERSAMPLING)
    labels_fine = label_map(structure, x, y)
    weight = pattern(texture, x, y, labels_fine)[..., None]
    colors = texture.colors[labels_fine]
    fine = (1.0 - weight) * colors[..., 0, :] + weight * colors[..., 1, :]
    image = fine.reshape(size, SUPERSAMPLING, size, SUPERSAMPLING, 3).mean(axis=(1, 3))
    image = np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    return image, label_map(structure, *_grid(size, 1))


def coarsened(texture: Texture, scale: float) -> Texture:
    """``texture`` with every pattern frequency times ``scale`` (< 1: coarser patterns)."""
    if scale == 1.0:
        return texture
    return replace(texture, frequency=texture.frequency * scale,
                   waves=texture.waves * np.array([scale, scale, 1.0, 1.0]))


def render(structure_seed: int, texture_seed: int, size: int,
           families: tuple[str, ...] = TRAIN_FAMILIES, texture_scale: float = 1.0
           ) -> tuple[np.ndarray, np.ndarray]:
    """Render the image of ``structure_seed`` drawn in the texture of ``texture_seed``, its
    pattern frequencies times ``texture_scale``."""
    return render_factors(sample_structure(structure_seed),
                          coarsened(sample_texture(texture_seed, tuple(families)),
                                    texture_scale), size)


def labels_to_rgb(labels: np.ndarray) -> np.ndarray:
    """Label map as an RGB uint8 image with fixed colours (the input of paired synthetic data)."""
    return LABEL_COLORS[labels]


def image_seeds(dataset_seed: int, index: int) -> tuple[int, int]:
    """Independent (structure_seed, texture_seed) of image ``index`` of a synthetic dataset."""
    structure_seed, texture_seed = np.random.SeedSequence([dataset_seed, index]).generate_state(2)
    return int(structure_seed), int(texture_seed)


class SyntheticSource(ImageSource):
    """``num_images`` shapes & textures images; image i uses :func:`image_seeds` (seed, i);
    ``texture_scale`` multiplies the pattern frequencies (< 1: coarser, easier for small
    models)."""

    def __init__(self, num_images: int, size: int, seed: int = 0,
                 families: tuple[str, ...] = TRAIN_FAMILIES, texture_scale: float = 1.0) -> None:
        if num_images < 1 or size < 8:
            raise ConfigError(f"synthetic source needs num_images >= 1 and size >= 8, "
                             f"got {num_images} and {size}")
        if texture_scale <= 0:
            raise ConfigError(f"synthetic texture_scale must be > 0, got {texture_scale}")
        self.num_images, self.image_side, self.seed = num_images, size, seed
        self.families, self.texture_scale = tuple(families), texture_scale
        sample_texture(0, self.families)  # validates the family names now
        scale = "" if texture_scale == 1.0 else f", texture_scale={texture_scale:g}"
        self.location = f"synthetic(seed={seed}, families={','.join(self.families)}{scale})"
        self.names = [f"{i:06d}.png" for i in range(num_images)]

    def seeds(self, index: int) -> tuple[int, int]:
        return image_seeds(self.seed, index)

    def render_with_labels(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return render(*self.seeds(index), self.image_side, self.families, self.texture_scale)

    def load(self, index: int) -> np.ndarray:
        return self.render_with_labels(index)[0]

    def size(self, index: int) -> tuple[int, int]:
        return self.image_side, self.image_side

    def read_bytes(self, index: int) -> bytes:
        raise TypeError("synthetic images are rendered, not stored; use load()")

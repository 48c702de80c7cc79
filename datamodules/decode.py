"""Decoding image bytes to RGB uint8, the one pixel format every corrlab pipeline starts from.

Conventions (documented in the README):

* EXIF orientation is applied, so pixels are as a viewer shows them.
* Grayscale, palette, CMYK and 1-bit images are converted to RGB.
* Transparency (RGBA, LA, palette with a transparent index) is **composited on white**.
* 16-bit images (PNG ``I;16``/``I;16B``/``I``) are scaled to 8 bits by ``value >> 8``, i.e.
  ``65535 -> 255``; Pillow's own ``convert`` would clip them instead.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps

from lightning_modules.errors import CorrlabError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


class DataError(CorrlabError, ValueError):
    """Bad input data, with a message that names the file and says what to do."""


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _to_rgb(image: Image.Image) -> np.ndarray:
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        values = np.asarray(image, dtype=np.int64)
        # 16-bit data stored in 32-bit "I" mode (Pillow opens 16-bit grayscale PNG as "I").
        gray = np.clip(values >> 8, 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "F":
        gray = np.clip(np.asarray(image), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "P":
        image = image.convert("RGBA") if "transparency" in image.info else image.convert("RGB")
        mode = image.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    if mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image)


def decode_image(data: bytes, name: str) -> np.ndarray:
    """Decode encoded image bytes to an ``H x W x 3`` uint8 array; ``name`` is used in errors."""
    if len(data) == 0:
        raise DataError(f"{name}: file is empty (0 bytes). Delete or replace it, or set "
                        "`skip_bad_images: true` to skip bad files with a warning.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                image.load()  # full decode: a truncated file fails here, not in a worker later
                image = ImageOps.exif_transpose(image)
                return np.ascontiguousarray(_to_rgb(image))
    except DataError:
        raise
    except Exception as error:  # Pillow raises OSError, SyntaxError, ValueError, ...
        raise DataError(f"{name}: cannot decode image ({error}). The file is probably truncated "
                        "or not an image: re-download or delete it, or set "
                        "`skip_bad_images: true` to skip bad files with a warning.") from error


def image_size(data: bytes, name: str) -> tuple[int, int]:
    """(width, height) after EXIF orientation, read from the header only (no pixel decode)."""
    if len(data) == 0:
        raise DataError(f"{name}: file is empty (0 bytes). Delete or replace it, or set "
                        "`skip_bad_images: true` to skip bad files with a warning.")
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            orientation = image.getexif().get(0x0112, 1)
    except Exception as error:
        raise DataError(f"{name}: cannot read image header ({error}). Delete or replace it, or "
                        "set `skip_bad_images: true`.") from error
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def decode_label_map(data: bytes, name: str) -> np.ndarray:
    """Decode a label map (class index per pixel: 8/16-bit grayscale or palette PNG) to an
    ``H x W`` int64 array of indices, never converted to colours."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            if image.mode not in ("L", "P", "I", "I;16", "I;16B", "I;16L", "1"):
                raise DataError(f"{name}: a label map must store one class index per pixel "
                                f"(grayscale or palette PNG), but this image is {image.mode}; "
                                "convert colour-coded label maps to indices first.")
            return np.asarray(image, dtype=np.int64)
    except DataError:
        raise
    except Exception as error:
        raise DataError(f"{name}: cannot decode label map ({error}).") from error

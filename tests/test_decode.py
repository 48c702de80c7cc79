"""Every image decodes to RGB uint8: grayscale, RGBA, palette, 16-bit, EXIF orientation."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from datamodules.decode import DataError, decode_image, image_size


def encode(image: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def test_grayscale_is_replicated_to_three_channels():
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8) * 3
    rgb = decode_image(encode(Image.fromarray(gray, "L")), "gray.png")
    assert rgb.shape == (8, 8, 3) and rgb.dtype == np.uint8
    for channel in range(3):
        np.testing.assert_array_equal(rgb[..., channel], gray)


def test_rgba_is_composited_on_white():
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[0, 0] = (200, 0, 0, 255)     # opaque red stays red
    rgba[0, 1] = (0, 0, 0, 0)         # fully transparent becomes white
    rgba[1, 0] = (0, 0, 0, 128)       # half-transparent black becomes mid grey
    rgb = decode_image(encode(Image.fromarray(rgba, "RGBA")), "alpha.png")
    np.testing.assert_array_equal(rgb[0, 0], (200, 0, 0))
    np.testing.assert_array_equal(rgb[0, 1], (255, 255, 255))
    assert np.all(np.abs(rgb[1, 0].astype(int) - 127) <= 1)


def test_palette_image_with_and_without_transparency():
    rgb_source = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [255, 0, 0]]], np.uint8)
    palette = Image.fromarray(rgb_source).quantize(colors=4)
    np.testing.assert_array_equal(decode_image(encode(palette), "p.png"), rgb_source)
    transparent_index = palette.getpixel((1, 1))  # red pixels become transparent -> white
    decoded = decode_image(encode(palette, transparency=transparent_index), "pt.png")
    np.testing.assert_array_equal(decoded[1, 1], (255, 255, 255))
    np.testing.assert_array_equal(decoded[0, 1], (0, 255, 0))


def test_sixteen_bit_png_is_scaled_not_clipped():
    values = np.array([[0, 256, 32768, 65535]], dtype=np.uint16)
    image = Image.fromarray(values)  # mode I;16
    rgb = decode_image(encode(image), "deep.png")
    np.testing.assert_array_equal(rgb[0, :, 0], [0, 1, 128, 255])


def test_exif_orientation_is_applied():
    pixels = np.zeros((10, 30, 3), np.uint8)
    pixels[:, :10] = 255  # left third white
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    data = encode(image, "JPEG", exif=exif.tobytes(), quality=100)
    decoded = decode_image(data, "rotated.jpg")
    assert decoded.shape[:2] == (30, 10)
    assert image_size(data, "rotated.jpg") == (10, 30)
    assert decoded[:10].mean() > 200 and decoded[20:].mean() < 50  # white part now on top


def test_empty_and_truncated_files_name_the_file():
    with pytest.raises(DataError, match="zero.png: file is empty"):
        decode_image(b"", "zero.png")
    jpeg = encode(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3),
                                                                    dtype=np.uint8)), "JPEG")
    with pytest.raises(DataError, match="cut.jpg: cannot decode image"):
        decode_image(jpeg[: len(jpeg) // 2], "cut.jpg")

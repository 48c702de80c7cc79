"""Folder, zip and LMDB sources; conversion round trips; validation of bad inputs."""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datamodules.convert import convert
from datamodules.convert import main as data_main
from datamodules.decode import DataError
from datamodules.sources import FolderSource, LmdbSource, ZipSource, open_source, validate_source


def test_folder_lists_images_recursively_and_sorted(image_folder: Path):
    source = open_source(image_folder)
    assert isinstance(source, FolderSource)
    assert source.names == ["a.png", "b.jpg", "f.jpeg", "sub/c.PNG", "sub/d.bmp",
                            "sub/deeper/e.webp"]
    assert source.load(1).shape == (48, 64, 3)


@pytest.mark.parametrize("fmt", ["zip", "lmdb"])
def test_conversion_round_trip_gives_identical_pixels(image_folder: Path, tmp_path: Path, fmt):
    destination = tmp_path / ("data.zip" if fmt == "zip" else "data.lmdb")
    summary = convert(str(image_folder), str(destination))
    assert summary["images"] == 6 and summary["format"] == fmt
    folder, converted = open_source(image_folder), open_source(destination)
    assert isinstance(converted, ZipSource if fmt == "zip" else LmdbSource)
    assert converted.names == folder.names
    for i in range(len(folder)):
        np.testing.assert_array_equal(converted.load(i), folder.load(i))
    # sources survive pickling into DataLoader workers and reopen their handle there
    clone = pickle.loads(pickle.dumps(converted))
    np.testing.assert_array_equal(clone.load(3), folder.load(3))


def test_data_command_prints_a_summary(image_folder: Path, tmp_path: Path, capsys):
    assert data_main(["convert", str(image_folder), str(tmp_path / "out.lmdb")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["images"] == 6 and summary["min_short_side"] == 40
    assert summary["extensions"][".png"] == 2
    assert data_main(["info", str(tmp_path / "out.lmdb")]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 6
    # an existing destination is refused, never overwritten
    assert data_main(["convert", str(image_folder), str(tmp_path / "out.lmdb")]) == 2
    assert "already exists" in capsys.readouterr().err


def test_missing_and_empty_sources(tmp_path: Path):
    with pytest.raises(DataError, match="nowhere: data path does not exist"):
        open_source(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images")
    with pytest.raises(DataError, match="empty: contains no images"):
        open_source(tmp_path / "empty")


def _add_bad_files(folder: Path) -> None:
    (folder / "zero.png").write_bytes(b"")
    good = (folder / "b.jpg").read_bytes()
    (folder / "cut.jpg").write_bytes(good[: len(good) // 2])
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(folder / "tiny.png")


@pytest.mark.parametrize("bad, message", [("zero.png", "file is empty"),
                                          ("cut.jpg", "cannot decode image"),
                                          ("tiny.png", "30x20, smaller than the 32-pixel crop")])
def test_each_bad_file_is_named(image_folder: Path, bad: str, message: str):
    _add_bad_files(image_folder)
    for other in {"zero.png", "cut.jpg", "tiny.png"} - {bad}:
        (image_folder / other).unlink()
    with pytest.raises(DataError) as error:
        validate_source(open_source(image_folder), min_side=32)
    assert str(image_folder / bad) in str(error.value) and message in str(error.value)


def test_skip_bad_images_warns_with_a_count(image_folder: Path, caplog):
    _add_bad_files(image_folder)
    source = open_source(image_folder)
    with caplog.at_level(logging.WARNING):
        report = validate_source(source, min_side=32, skip_bad_images=True)
    assert len(report.bad) == 3 and len(report.good) == 6
    assert "Skipping 3 bad image(s) of 9" in caplog.text
    assert [source.names[i] for i in report.good] == [
        "a.png", "b.jpg", "f.jpeg", "sub/c.PNG", "sub/d.bmp", "sub/deeper/e.webp"]


def test_header_mode_misses_truncation_but_full_mode_catches_it(image_folder: Path):
    good = (image_folder / "b.jpg").read_bytes()
    (image_folder / "cut.jpg").write_bytes(good[: len(good) // 2])
    source = open_source(image_folder)
    assert len(validate_source(source, mode="header").good) == 7
    with pytest.raises(DataError, match="cut.jpg"):
        validate_source(source, mode="full")

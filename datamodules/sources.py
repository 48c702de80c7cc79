"""Image sources: a folder, a zip file or an LMDB database behind one interface.

Every source lists its images in a fixed, sorted order of relative names and returns RGB uint8
arrays (see :mod:`datamodules.decode`). File handles (zip, LMDB) are opened lazily per process,
so sources are safe to use in DataLoader workers.

LMDB layout written by ``corrlab data convert``: one entry per image, key = relative name
(UTF-8), value = the original encoded bytes, plus the key ``__corrlab_index__`` holding a JSON
list of the names in order. Storing the original bytes makes every round trip pixel-identical.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import zipfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datamodules.decode import DataError, decode_image, image_size, is_image_name

log = logging.getLogger(__name__)

LMDB_INDEX_KEY = b"__corrlab_index__"
VALIDATION_MODES = ("full", "header", "off")


class ImageSource:
    """A fixed, ordered list of images. Subclasses implement ``names`` and ``read_bytes``."""

    location: str
    names: list[str]

    def __len__(self) -> int:
        return len(self.names)

    def read_bytes(self, index: int) -> bytes:
        raise NotImplementedError

    def describe(self, index: int) -> str:
        """Where image ``index`` lives, for error messages."""
        return f"{self.location}:{self.names[index]}"

    def load(self, index: int) -> np.ndarray:
        """Image ``index`` as an ``H x W x 3`` uint8 RGB array."""
        return decode_image(self.read_bytes(index), self.describe(index))

    def size(self, index: int) -> tuple[int, int]:
        """(width, height) of image ``index``, from the header only."""
        return image_size(self.read_bytes(index), self.describe(index))

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_handle", None)  # handles are reopened lazily in each process
        state.pop("_handle_pid", None)
        return state


class FolderSource(ImageSource):
    """All images below a folder, recursively, by extension (case-insensitive)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.root = Path(path)
        self.location = str(self.root)
        self.names = sorted(
            p.relative_to(self.root).as_posix()
            for p in self.root.rglob("*")
            if p.is_file() and is_image_name(p.name) and not p.name.startswith(".")
        )

    def read_bytes(self, index: int) -> bytes:
        return (self.root / self.names[index]).read_bytes()

    def describe(self, index: int) -> str:
        return str(self.root / self.names[index])


_HANDLE_LOCK = threading.Lock()
_LMDB_ENVIRONMENTS: dict[tuple[int, str], object] = {}


class _LazyHandle(ImageSource):
    """A source whose file handle is opened once per process (fork-safe, thread-safe)."""

    def _open(self):
        raise NotImplementedError

    @property
    def handle(self):
        if getattr(self, "_handle_pid", None) != os.getpid():
            with _HANDLE_LOCK:
                if getattr(self, "_handle_pid", None) != os.getpid():
                    self._handle = self._open()
                    self._handle_pid = os.getpid()
        return self._handle


class ZipSource(_LazyHandle):
    """Image members of a zip file (folders inside the archive are walked too)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        try:
            with zipfile.ZipFile(self.path) as archive:
                self.names = sorted(
                    info.filename for info in archive.infolist()
                    if not info.is_dir() and is_image_name(info.filename)
                    and not Path(info.filename).name.startswith(".")
                )
        except zipfile.BadZipFile as error:
            raise DataError(f"{self.path}: not a readable zip file ({error}).") from error

    def _open(self) -> zipfile.ZipFile:
        return zipfile.ZipFile(self.path)

    def read_bytes(self, index: int) -> bytes:
        return self.handle.read(self.names[index])


class LmdbSource(_LazyHandle):
    """An LMDB database written by ``corrlab data convert`` (see the module docstring)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        with self.handle.begin() as txn:
            index = txn.get(LMDB_INDEX_KEY)
        if index is None:
            raise DataError(f"{self.path}: LMDB database has no '{LMDB_INDEX_KEY.decode()}' key; "
                            "it was not written by `corrlab data convert`. Convert the image "
                            "folder with `corrlab data convert FOLDER OUT.lmdb`.")
        self.names = json.loads(index)

    def _open(self):
        import lmdb

        # LMDB allows one environment per file and process: share it between sources.
        key = (os.getpid(), str(self.path.resolve()))
        if key not in _LMDB_ENVIRONMENTS:
            try:
                _LMDB_ENVIRONMENTS[key] = lmdb.open(
                    str(self.path), readonly=True, lock=False, readahead=False, meminit=False,
                    subdir=self.path.is_dir(), max_readers=512)
            except lmdb.Error as error:
                raise DataError(f"{self.path}: cannot open LMDB database ({error}).") from error
        return _LMDB_ENVIRONMENTS[key]

    def read_bytes(self, index: int) -> bytes:
        with self.handle.begin(buffers=False) as txn:
            data = txn.get(self.names[index].encode("utf-8"))
        if data is None:
            raise DataError(f"{self.describe(index)}: listed in the LMDB index but missing.")
        return data


def is_lmdb(path: Path) -> bool:
    return (path.is_dir() and (path / "data.mdb").is_file()) or path.suffix == ".lmdb" or \
        path.name == "data.mdb"


def open_source(path: str | os.PathLike) -> ImageSource:
    """Open a folder, ``.zip`` file or LMDB database (a folder holding ``data.mdb``)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path}: data path does not exist. Check the `source` option of the "
                        "datamodule (or use `source: synthetic` for the built-in dataset).")
    if is_lmdb(path):
        source: ImageSource = LmdbSource(path.parent if path.name == "data.mdb" else path)
    elif path.is_dir():
        source = FolderSource(path)
    elif path.suffix.lower() == ".zip":
        source = ZipSource(path)
    else:
        raise DataError(f"{path}: not a folder, .zip file or LMDB database.")
    if len(source) == 0:
        raise DataError(f"{path}: contains no images (looked for "
                        f"{', '.join(sorted({'.jpg', '.png', '.webp', '.bmp', '.tif'}))}, ...). "
                        "Point `source` at the folder that holds the images.")
    return source


@dataclass
class ValidationReport:
    """Which images passed validation; ``bad`` maps a description to the reason."""

    good: list[int]
    bad: dict[str, str]


def _check(source: ImageSource, index: int, min_side: int, mode: str,
           side_by_side: bool) -> str | None:
    try:
        if mode == "full":
            height, width = source.load(index).shape[:2]
        else:
            width, height = source.size(index)
    except DataError as error:
        return str(error)
    if side_by_side:
        width //= 2
    if min(width, height) < min_side:
        half = " (each half of a side-by-side pair)" if side_by_side else ""
        return (f"{source.describe(index)}: image{half} is {width}x{height}, smaller than the "
                f"{min_side}-pixel crop. Remove it, lower `crop_size`, or set "
                "`allow_upscale: true` to upscale small images.")
    return None


def validate_source(source: ImageSource, min_side: int = 0, mode: str = "full",
                    skip_bad_images: bool = False, threads: int | None = None,
                    indices: Sequence[int] | None = None,
                    side_by_side: bool = False) -> ValidationReport:
    """Check every image before training: decodable (``full``: fully decoded, catching truncated
    files; ``header``: header only) and at least ``min_side`` pixels on its short side.

    Raises :class:`DataError` naming the first bad file, or with ``skip_bad_images`` logs a
    warning with the count and returns the good indices.
    """
    if mode not in VALIDATION_MODES:
        raise DataError(f"check_images: '{mode}' is not one of {VALIDATION_MODES}.")
    indices = list(range(len(source))) if indices is None else list(indices)
    if mode == "off":
        return ValidationReport(good=indices, bad={})
    threads = threads or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(threads) as pool:  # Pillow releases the GIL while decoding
        problems = list(pool.map(lambda i: _check(source, i, min_side, mode, side_by_side),
                                 indices))
    bad = {source.describe(i): p for i, p in zip(indices, problems, strict=True) if p}
    if bad and not skip_bad_images:
        first = next(iter(bad.values()))
        more = f" ({len(bad) - 1} more bad files)" if len(bad) > 1 else ""
        raise DataError(first + more)
    if bad:
        log.warning("Skipping %d bad image(s) of %d in %s (skip_bad_images: true). First: %s",
                    len(bad), len(indices), source.location, next(iter(bad.values())))
    good = [i for i, p in zip(indices, problems, strict=True) if not p]
    if not good:
        raise DataError(f"{source.location}: no usable images left after skipping bad files.")
    return ValidationReport(good=good, bad=bad)

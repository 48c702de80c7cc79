"""``corrlab data``: convert an image folder to a zip file or LMDB database, or summarise a source.

The original encoded bytes are stored unchanged, so a converted dataset decodes to the same
pixels as the folder it came from. Every image is validated first; bad files stop the conversion
(naming the file) unless ``--skip-bad`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import zipfile
from collections import Counter
from pathlib import Path

from datamodules.decode import DataError
from datamodules.sources import LMDB_INDEX_KEY, ImageSource, open_source, validate_source
from lightning_modules.errors import report_errors


def summarize(source: ImageSource, indices: list[int]) -> dict:
    """Count, sizes and extensions of the listed images (header reads only)."""
    sizes = [source.size(i) for i in indices]
    short = [min(size) for size in sizes]
    return {
        "source": source.location,
        "images": len(indices),
        "min_short_side": min(short),
        "max_short_side": max(short),
        "most_common_sizes": {f"{w}x{h}": n for (w, h), n in Counter(sizes).most_common(3)},
        "extensions": dict(Counter(Path(source.names[i]).suffix.lower() for i in indices)),
    }


def write_zip(source: ImageSource, indices: list[int], destination: Path) -> int:
    total = 0
    with zipfile.ZipFile(destination, "w", compression=zipfile.ZIP_STORED) as archive:
        for i in indices:
            data = source.read_bytes(i)
            archive.writestr(source.names[i], data)
            total += len(data)
    return total


def write_lmdb(source: ImageSource, indices: list[int], destination: Path) -> int:
    import lmdb

    names = [source.names[i] for i in indices]
    total = 0
    map_size = 1 << 30  # address space only (sparse on Linux); doubled when a batch overflows
    env = lmdb.open(str(destination), map_size=map_size, subdir=True, meminit=False)
    try:
        for start in range(0, len(indices), 256):
            while True:
                try:
                    with env.begin(write=True) as txn:
                        size = 0
                        for i in indices[start:start + 256]:
                            data = source.read_bytes(i)
                            txn.put(source.names[i].encode("utf-8"), data)
                            size += len(data)
                    total += size
                    break
                except lmdb.MapFullError:
                    map_size *= 2
                    env.set_mapsize(map_size)
        with env.begin(write=True) as txn:
            txn.put(LMDB_INDEX_KEY, json.dumps(names).encode("utf-8"))
        env.sync()
    finally:
        env.close()
    return total


def convert(source_path: str, destination: str, fmt: str | None = None,
            skip_bad: bool = False, validation: str = "full") -> dict:
    """Convert ``source_path`` to ``destination`` (zip or lmdb) and return a summary dict."""
    source = open_source(source_path)
    destination_path = Path(destination)
    fmt = fmt or ("zip" if destination_path.suffix.lower() == ".zip" else "lmdb")
    if fmt not in ("zip", "lmdb"):
        raise DataError(f"--format: '{fmt}' is not one of zip, lmdb")
    if destination_path.exists():
        raise DataError(f"{destination_path}: already exists; choose a new output path.")
    report = validate_source(source, 0, validation, skip_bad)
    # Write to a temporary name and rename at the end: an interrupted conversion leaves nothing
    # that looks like a finished dataset.
    partial = destination_path.with_name(destination_path.name + ".partial")
    if partial.exists():
        raise DataError(f"{partial}: left over from an interrupted conversion; delete it first.")
    writer = write_zip if fmt == "zip" else write_lmdb
    stored = writer(source, report.good, partial)
    os.replace(partial, destination_path)
    summary = summarize(source, report.good)
    summary.update(destination=str(destination_path), format=fmt, stored_bytes=stored,
                   skipped_bad_files=len(report.bad))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="corrlab data", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    convert_cmd = commands.add_parser("convert", help="folder/zip/LMDB -> zip or LMDB")
    convert_cmd.add_argument("source", help="image folder, .zip file or LMDB folder")
    convert_cmd.add_argument("destination", help="output: NAME.zip, or a folder for LMDB")
    convert_cmd.add_argument("--format", choices=("zip", "lmdb"), default=None,
                             help="default: zip for a .zip destination, else lmdb")
    convert_cmd.add_argument("--skip-bad", action="store_true",
                             help="leave out unreadable files with a warning")
    convert_cmd.add_argument("--validation", choices=("full", "header"), default="full")
    info_cmd = commands.add_parser("info", help="summarise a folder, zip or LMDB source")
    info_cmd.add_argument("source")
    args = parser.parse_args(argv)

    def run() -> None:
        if args.command == "convert":
            summary = convert(args.source, args.destination, args.format, args.skip_bad,
                              args.validation)
        else:
            source = open_source(args.source)
            summary = summarize(source, validate_source(source, 0, "header", True).good)
        print(json.dumps(summary, indent=2))

    return report_errors(run)


if __name__ == "__main__":
    sys.exit(main())

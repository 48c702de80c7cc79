"""Data throughput: images/s of decode + augment at 256 px, per worker, from a folder, a zip
and an LMDB database, against decode alone in the same process (the reference).

    python experiments/benchmarks/data_throughput.py [--images 160] [--markdown OUT.md]

Images are shapes & textures renders saved as JPEG at 320x288 (quality 90), so every row pays a
real decode, a short-side resize 288 -> 256, a random 256 crop, a flip and normalisation.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from datamodules import UnpairedDataModule
from datamodules.convert import convert
from datamodules.sources import open_source
from datamodules.synthetic import render
from datamodules.transforms import build_transform
from experiments.benchmarks.report import emit, environment


def make_folder(folder: Path, count: int) -> None:
    folder.mkdir(parents=True)
    for i in range(count):
        image = Image.fromarray(render(i, 10_000 + i, 288)[0]).resize((320, 288))
        image.save(folder / f"{i:05d}.jpg", quality=90)


def rate(fn, count: int, repeats: int = 3) -> float:
    """Best images/s over ``repeats`` passes of ``fn(i)`` for i < count."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(count):
            fn(i)
        best = min(best, time.perf_counter() - start)
    return count / best


def loader_rate(folder: Path, workers: int, batches: int = 8) -> float:
    datamodule = UnpairedDataModule(str(folder), batch_size=16, crop_size=256, load_size=256,
                                    num_workers=workers, check_images="header")
    datamodule.setup("fit")
    iterator = iter(datamodule.train_dataloader())
    next(iterator)  # start the workers
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * 16 / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=160)
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    transform = build_transform(256, 256, train=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "jpeg"
        make_folder(folder, args.images)
        convert(str(folder), str(Path(tmp) / "set.zip"))
        convert(str(folder), str(Path(tmp) / "set.lmdb"))
        folder_source = open_source(folder)
        reference = rate(folder_source.load, args.images)
        rows.append(("folder, decode only (reference)", reference))
        for label, path in (("folder", folder), ("zip", Path(tmp) / "set.zip"),
                            ("lmdb", Path(tmp) / "set.lmdb")):
            source = open_source(path)
            rows.append((f"{label}, decode + augment",
                         rate(lambda i, s=source: transform(image=s.load(i)), args.images)))
        cores = os.cpu_count() or 1
        rows.append((f"UnpairedDataModule loader, {cores} workers (total)",
                     loader_rate(folder, cores)))
    lines = [
        f"# Data throughput ({args.images} JPEG images 320x288 -> 256 px)",
        "",
        environment(),
        "",
        "| pipeline | images/s | vs reference |",
        "|---|---:|---:|",
    ]
    lines += [f"| {name} | {value:.0f} | {value / reference:.2f} |" for name, value in rows]
    emit(lines, args.markdown)


if __name__ == "__main__":
    main()

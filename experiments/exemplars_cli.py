"""``corrlab exemplars SOURCE --out LIST``: the exemplar list of an image set for
exemplar-based translation (CoCosNet's ``*_ref.txt`` format: one line per image, the image's
name, then its ``--top-k`` candidate exemplars, nearest first).

Neighbours are the other images nearest by cosine similarity of VGG-19 ``pool5`` features
(Caffe weights) of each image's evaluation crop (``--crop-size``, after resizing the short side
to ``--load-size``) — the retrieval ``PairedDataModule(exemplar: retrieval)`` uses, written
out so it can be inspected, edited and reused with ``exemplar: list``. Features are cached by
content (``--cache-dir``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from datamodules.exemplars import retrieval_list
from datamodules.sources import open_source
from lightning_modules.checkpoint_io import atomic_write
from lightning_modules.errors import ConfigError, report_errors


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="corrlab exemplars",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="target images: folder, .zip or LMDB")
    parser.add_argument("--out", required=True, help="the list file to write")
    parser.add_argument("--top-k", type=int, default=10, help="candidates per image")
    parser.add_argument("--crop-size", type=int, default=256)
    parser.add_argument("--load-size", type=int, default=None,
                        help="short side before the centre crop (default: the crop size)")
    parser.add_argument("--cache-dir", default=".cache/corrlab")
    return parser.parse_args(argv)


def write_list(args: argparse.Namespace) -> str:
    if args.top_k < 1:
        raise ConfigError(f"--top-k must be at least 1, got {args.top_k}")
    source = open_source(args.source)
    if len(source) < 2:
        raise ConfigError(f"{args.source}: {len(source)} image(s); exemplars need at least 2")
    indices = list(range(len(source)))
    neighbours = retrieval_list(source, indices, args.crop_size, args.load_size, args.top_k,
                                Path(args.cache_dir))
    lines = [" ".join([source.names[i], *(source.names[j] for j in neighbours[i])])
             for i in indices]
    text = ("\n".join(lines) + "\n").encode()
    atomic_write(Path(args.out), lambda handle: handle.write(text))
    return f"{args.out}: {len(lines)} images, {min(args.top_k, len(source) - 1)} candidates each"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    return report_errors(lambda: print(write_list(args)))


if __name__ == "__main__":
    sys.exit(main())

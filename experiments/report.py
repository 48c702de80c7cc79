"""Print where a run's outputs are and how its ground-truth swap error, accuracies and metrics
moved; with ``--shipped``, the same for the shipped trained model evaluated on the same
references (``make demo``), and one image with both swap grids side by side.

    python -m experiments.report runs/demo            (latest version of the experiment)
    python -m experiments.report runs/demo/version_3
    python -m experiments.report runs/demo --shipped runs/demo/shipped_model
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from pathlib import Path

from PIL import Image

#: ground-truth swap columns of ``metrics.csv`` (GroundTruthSwapError) and how they read
SWAP_COLUMNS = {"swap/l1_to_true_swap": "ground-truth swap L1 (lower is better)",
                "swap/structure_accuracy": "swap structure accuracy (higher is better)",
                "swap/texture_accuracy": "swap texture accuracy (higher is better)"}


def latest_run(path: Path) -> Path:
    if (path / "metrics.csv").is_file():
        return path
    versions = [p for p in path.glob("version_*") if re.fullmatch(r"version_\d+", p.name)]
    if not versions:
        raise SystemExit(f"{path}: no run folder (version_N) found")
    return max(versions, key=lambda p: int(p.name.split("_")[1]))


def swap_error_history(metrics: Path, column: str = "swap/l1_to_true_swap"
                       ) -> list[tuple[float, float]]:
    """``(kimg, value)`` of every row of ``metrics.csv`` that logged ``column``."""
    if not metrics.is_file():
        return []
    with open(metrics, newline="") as handle:
        return [(float(row.get("progress/kimg") or 0), float(row[column]))
                for row in csv.DictReader(handle) if row.get(column)]


def metric_records(run: Path) -> dict[str, list[dict]]:
    """Every record of ``metrics.jsonl`` (written by the metric callbacks), by metric name."""
    records: dict[str, list[dict]] = {}
    path = run / "metrics.jsonl"
    if path.is_file():
        for line in path.read_text().splitlines():
            record = json.loads(line)
            records.setdefault(record["metric"], []).append(record)
    return records


def describe_metric(name: str, records: list[dict]) -> str:
    value_key = "fid" if "fid" in records[0] else "value"
    first, last = records[0], records[-1]
    text = f"{name.removeprefix('metrics/')} (lower is better): {first[value_key]:.4f}"
    if len(records) > 1:
        text += f" at {first.get('kimg', 0):g} kimg -> {last[value_key]:.4f}"
    text += f" at {last.get('kimg', 0):g} kimg"
    if "num_fake" in last:
        text += (f"  ({last['num_fake']} generated vs {last['num_real']} real images, "
                 f"Inception {last['weights_sha256'][:12]} from {last['weights_origin']})")
    elif "net" in last:
        count = last.get("num_images", last.get("num_pairs"))
        text += (f"  ({count} images, LPIPS {last['net']}, backbone "
                 f"{last['weights_sha256'][:12]} from {last['weights_origin']})")
    return text


def describe_run(run: Path) -> Path | None:
    """Print the run's outputs and figures; returns its last swap grid."""
    grids = sorted((run / "swap_grids").glob("*.png"))
    print(f"run folder:   {run}")
    if grids:
        print(f"swap grid:    {grids[-1]}  ({len(grids)} in {run / 'swap_grids'})")
    for name, label in (("metrics.csv", "metrics:"), ("losses.png", "loss plot:")):
        if (run / name).is_file():
            print(f"{label:<13} {run / name}")
    checkpoints = sorted((run / "checkpoints").glob("*.ckpt"))
    if checkpoints:
        print(f"checkpoint:   {checkpoints[-1]}")
    for column, label in SWAP_COLUMNS.items():
        history = swap_error_history(run / "metrics.csv", column)
        if history:
            (k0, v0), (k1, v1) = history[0], history[-1]
            moved = f"{v0:.4f} at {k0:g} kimg -> " if len(history) > 1 else ""
            print(f"{label}: {moved}{v1:.4f} at {k1:g} kimg")
    for name, records in metric_records(run).items():
        print(describe_metric(name, records))
    return grids[-1] if grids else None


def side_by_side(left: Path, right: Path, out: Path, gap: int = 16) -> Path:
    """``left`` and ``right`` next to each other on white, top-aligned."""
    images = [Image.open(path).convert("RGB") for path in (left, right)]
    canvas = Image.new("RGB", (sum(i.width for i in images) + gap,
                               max(i.height for i in images)), "white")
    canvas.paste(images[0], (0, 0))
    canvas.paste(images[1], (images[0].width + gap, 0))
    canvas.save(out)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m experiments.report",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("run", nargs="?", default="runs/demo",
                        help="a run folder, or an experiment folder (its latest version_N)")
    parser.add_argument("--shipped", type=Path,
                        help="the shipped trained model's evaluation folder (corrlab validate)")
    args = parser.parse_args(argv)
    run = latest_run(Path(args.run))
    grid = describe_run(run)
    if args.shipped:
        print("\nshipped trained model, the same references:")
        shipped_grid = describe_run(args.shipped)
        if grid and shipped_grid:
            both = side_by_side(grid, shipped_grid, run.parent / "demo_vs_shipped.png")
            print(f"\nswap grids side by side (this run | shipped model): {both}")
    print(f"TensorBoard:  .venv/bin/tensorboard --logdir {run.parent}")


if __name__ == "__main__":
    main()

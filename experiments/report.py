"""Print where a run's outputs are and how its ground-truth swap error and metrics moved.

    python -m experiments.report runs/demo            (latest version of the experiment)
    python -m experiments.report runs/demo/version_3
"""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path


def latest_run(path: Path) -> Path:
    if (path / "metrics.csv").is_file():
        return path
    versions = [p for p in path.glob("version_*") if re.fullmatch(r"version_\d+", p.name)]
    if not versions:
        raise SystemExit(f"{path}: no run folder (version_N) found")
    return max(versions, key=lambda p: int(p.name.split("_")[1]))


def swap_error_history(metrics: Path) -> list[tuple[float, float]]:
    with open(metrics, newline="") as handle:
        return [(float(row.get("progress/kimg") or 0), float(row["swap/l1_to_true_swap"]))
                for row in csv.DictReader(handle) if row.get("swap/l1_to_true_swap")]


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


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    run = latest_run(Path(args[0] if args else "runs/demo"))
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
    history = swap_error_history(run / "metrics.csv") if (run / "metrics.csv").is_file() else []
    if history:
        (k0, v0), (k1, v1) = history[0], history[-1]
        print(f"ground-truth swap L1 (lower is better): {v0:.4f} at {k0:g} kimg -> "
              f"{v1:.4f} at {k1:g} kimg")
    for name, records in metric_records(run).items():
        print(describe_metric(name, records))
    print(f"TensorBoard:  .venv/bin/tensorboard --logdir {run.parent}")


if __name__ == "__main__":
    main()

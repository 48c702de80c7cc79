"""``corrlab evaluate --config X --ckpt_path Y``: run a config's metric callbacks (FID-type and
ground-truth ones) on a checkpoint (``corrlab validate``) and write one result record per
metric, with everything the registry needs to trust it: the command, commit, hardware, data
content hash, checkpoint sha256 and the metric's own provenance (weights, resize, sample
counts).

    corrlab evaluate --config experiments/stylegan2/shapes32.yaml --ckpt_path last.ckpt \\
        [--quick] [--out runs/results/records.jsonl] [--runs_dir runs]
    corrlab results --merge runs/results/records.jsonl     # into experiments/*/results.yaml

``--quick`` caps every FID-type callback at 64 generated and 128 real images (a smoke test, not
a paper number: the record says ``quick: true``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import yaml

from experiments.benchmarks.report import cpu_model
from lightning_modules.errors import ConfigError, report_errors
from lightning_modules.pretrained.weights import file_sha256

ROOT = Path(__file__).resolve().parents[1]
#: init arguments of the FID-type callbacks capped by --quick, and their caps
QUICK = {"num_images": 64, "num_pairs": 64, "num_real": 128, "kid_subset_size": 32}
FID_CALLBACKS = ("FID", "SwapFID", "ArtFID")


def commit() -> str:
    """``git rev-parse HEAD``, with ``+dirty`` when tracked files differ from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              check=False).stdout.strip()
    head = git("rev-parse", "HEAD") or "unknown"
    return head + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def hardware() -> str:
    device = (torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU")
    return f"{device}; {cpu_model()}, {os.cpu_count()} cores, {platform.machine()}, " \
           f"torch {torch.__version__}"


def quick_config(config: Path, folder: Path) -> Path:
    """``config`` with every FID-type callback's counts capped (:data:`QUICK`)."""
    settings = yaml.safe_load(config.read_text())
    for callback in (settings.get("trainer") or {}).get("callbacks") or []:
        name = callback["class_path"].split(".")[-1]
        if name in FID_CALLBACKS:
            args = callback.setdefault("init_args", {})
            count = "num_pairs" if name == "SwapFID" else "num_images"  # SwapFID's own name
            for key in (count, "num_real", "kid_subset_size"):
                args[key] = min(args.get(key) or QUICK[key], QUICK[key])
    path = folder / config.name
    path.write_text(yaml.safe_dump(settings))
    return path


def metric_records(metrics_jsonl: Path) -> list[dict]:
    if not metrics_jsonl.is_file():
        return []
    return [json.loads(line) for line in metrics_jsonl.read_text().splitlines() if line]


def evaluate(args: argparse.Namespace, argv: list[str]) -> list[dict]:
    config, checkpoint = Path(args.config), Path(args.ckpt_path)
    for path, what in ((config, "--config"), (checkpoint, "--ckpt_path")):
        if not path.is_file():
            raise ConfigError(f"{what} {path}: no such file")
    with tempfile.TemporaryDirectory() as work:
        used = quick_config(config, Path(work)) if args.quick else config
        runs = Path(work) / "runs"
        command = [sys.executable, "-m", "experiments", "validate", "--config", str(used),
                   "--ckpt_path", str(checkpoint), "--runs_dir", str(runs), "--experiment",
                   "evaluate", "--version", "run", "--loggers", "[csv]",
                   # one (empty) validation step, so the metric callbacks' validation hook runs
                   # even where a training config turns validation off
                   "--trainer.limit_val_batches", "1", *args.extra]
        done = subprocess.run(command, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                              capture_output=True, text=True)
        if done.returncode:
            raise ConfigError(f"corrlab validate failed (exit {done.returncode}):\n"
                              f"{done.stderr[-2000:]}")
        found = metric_records(runs / "evaluate" / "run" / "metrics.jsonl")
    if not found:
        raise ConfigError(f"{config}: its callbacks logged no metric at validation (a config "
                          f"needs a FID-type or ground-truth callback for corrlab evaluate)")
    try:
        relative = str(config.resolve().relative_to(ROOT / "experiments"))
    except ValueError:
        relative = str(config)
    checkpoint_sha = file_sha256(checkpoint)
    base = {"config": relative, "command": "corrlab evaluate " + shlex.join(argv),
            "commit": commit(), "hardware": hardware(), "checkpoint_sha256": checkpoint_sha,
            "quick": bool(args.quick)}
    if args.training_command:
        base["training_command"] = args.training_command
    records = []
    for record in found:
        name = str(record["metric"]).split("/")[-1]
        value = next((record[key] for key in (name, "value", "fid") if key in record), None)
        records.append({**base, "metric": name, "value": value,
                        "data_sha256": record.get("real_content_sha256", ""),
                        "provenance": record})
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
    return records


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="corrlab evaluate",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--ckpt_path", required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--training-command",
                        help="how the checkpoint was trained (kept in the records)")
    parser.add_argument("--out", default="runs/results/records.jsonl")
    parser.add_argument("extra", nargs="*", help="further `corrlab validate` options (after --)")
    args = parser.parse_args(argv)

    def run() -> None:
        for record in evaluate(args, argv):
            print(json.dumps({k: record[k] for k in ("config", "metric", "value", "quick")}))
        print(f"records appended to {args.out}; merge with: corrlab results --merge {args.out}")

    return report_errors(run)


if __name__ == "__main__":
    sys.exit(main())

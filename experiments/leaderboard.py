"""The ground-truth leaderboard on shapes & textures: every paper's demo config trained with
several seeds, scored against the truth beside the trivial answers
(:mod:`experiments.ground_truth`).

    python -m experiments.leaderboard [--rows ROW ...] [--seeds 0 1 2] [--kimg-scale 1]
                                      [--out runs/leaderboard]          (make leaderboard)

For each row and seed it trains ``corrlab fit --config <the row's demo config>`` with the seed
(the config's metric callbacks left out, a checkpoint at the end; a finished run is reused),
scores the checkpoint, and writes

- ``<out>/leaderboard.json``: every score, per seed, with the budget and training time;
- ``<out>/table.md``: mean +- std over seeds per row, and the trivial answers;
- ``<out>/records.jsonl``: one registry record per row and metric (mean over seeds, with the
  per-seed values, checkpoints' sha256, commit, hardware, data hash), which
  ``corrlab results --merge`` adds to ``experiments/<paper>/results.yaml``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from experiments import ground_truth
from experiments.evaluate import commit, hardware
from lightning_modules.errors import ConfigError, report_errors
from lightning_modules.pretrained.weights import file_sha256

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Row:
    config: str                     # relative to experiments/
    task: str                       # swap | style | exemplar | adaptation
    overrides: tuple[str, ...] = field(default_factory=tuple)
    #: the leaderboard budget when it differs from the demo config's ``max_kimg`` (README)
    kimg: float | None = None


ROWS = {
    "swapping_autoencoder": Row("swapping_autoencoder/demo.yaml", "swap"),
    "adain": Row("adaconv/demo_adain.yaml", "style"),
    "adaconv": Row("adaconv/demo_adaconv.yaml", "style"),
    # CoCosNet at half the demo's widths (2.3 M weights, shippable) and 12 kimg, the learning
    # rates decayed linearly to 0 over the second half as the official schedule: at a constant
    # rate the exemplar's texture came in one seed of three at 8 and at 12 kimg (README)
    "cocosnet": Row("cocosnet/demo.yaml", "exemplar",
                    ("--model.init_args.ngf", "8", "--model.init_args.spade_hidden", "16",
                     "--model.init_args.decay_kimg", "6"),
                    kimg=12.0),
    "cdc": Row("few_shot_cdc/demo.yaml", "adaptation"),
    "finetune": Row("few_shot_cdc/demo.yaml", "adaptation",
                    ("--model.init_args.distance_weight", "0",
                     "--model.init_args.use_patch_d", "false")),
}
#: the metrics of each task the table shows: (key, heading, higher is better)
COLUMNS = {
    "swap": [("structure_accuracy", "structure acc.", True),
             ("texture_accuracy", "texture acc.", True), ("lpips", "LPIPS to truth", False),
             ("reconstruction_lpips", "recon. LPIPS", False)],
    "style": [("structure_accuracy", "structure acc.", True),
              ("texture_accuracy", "texture acc.", True), ("lpips", "LPIPS to truth", False)],
    "exemplar": [("structure_accuracy", "structure acc.", True),
                 ("texture_accuracy", "texture acc.", True),
                 ("lpips", "LPIPS to truth", False), ("epe", "EPE (px)", False)],
    "adaptation": [("layout_kept", "layout kept", True), ("fid_to_target", "FID to target",
                                                          False)],
}


def leaderboard_config(row: Row, kimg_scale: float, folder: Path) -> tuple[Path, float]:
    """The row's config with only a final checkpoint as callback (scoring is done here, on
    held-out pairs) and ``max_kimg`` (the row's budget, else the demo config's) times
    ``kimg_scale``; returns (path, max_kimg)."""
    source = ROOT / "experiments" / row.config
    settings = yaml.safe_load(source.read_text())
    init_args = settings["model"]["init_args"]
    if "max_kimg" not in init_args:
        raise ConfigError(f"{source}: a leaderboard config needs model.init_args.max_kimg")
    max_kimg = float(row.kimg or init_args["max_kimg"]) * kimg_scale
    init_args["max_kimg"] = max_kimg
    trainer = settings.setdefault("trainer", {})
    trainer["callbacks"] = [{"class_path": "KimgCheckpoint",
                             "init_args": {"every_kimg": max_kimg}}]
    trainer["enable_progress_bar"] = False
    path = folder / row.config.replace("/", "__")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return path, max_kimg


def train(name: str, row: Row, seed: int, kimg_scale: float, out: Path) -> dict:
    """Train one (row, seed) unless a run of the same settings (config text, overrides and
    budget) finished there; returns its ``done.json``."""
    run = out / name / f"seed{seed}"
    done = run / "done.json"
    config, max_kimg = leaderboard_config(row, kimg_scale, out / "configs")
    settings = hashlib.sha256("\n".join([config.read_text(), *row.overrides]).encode()
                              ).hexdigest()
    if done.is_file():
        finished = json.loads(done.read_text())
        if finished.get("settings_sha256") == settings:  # the config text holds max_kimg
            return finished
    command = [sys.executable, "-m", "experiments", "fit", "--config", str(config),
               "--seed_everything", str(seed), "--runs_dir", str(out), "--experiment", name,
               "--version", f"seed{seed}", "--loggers", "[csv]", *row.overrides]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode:
        raise ConfigError(f"leaderboard row {name}, seed {seed}: training failed (exit "
                          f"{result.returncode}):\n{result.stdout[-3000:]}")
    checkpoint = run / "checkpoints" / "last.ckpt"
    finished = {"checkpoint": str(checkpoint), "checkpoint_sha256": file_sha256(checkpoint),
                "max_kimg": max_kimg, "settings_sha256": settings,
                "train_seconds": time.perf_counter() - start,
                "command": shlex.join(["corrlab", *command[3:]])}
    done.write_text(json.dumps(finished, indent=2))
    return finished


def score(row: Row, checkpoint: str, pairs: int, samples: int, fid_images: int, lpips) -> dict:
    if row.task == "swap":
        return ground_truth.swap_scores(checkpoint, pairs, lpips)
    if row.task == "style":
        return ground_truth.style_scores(checkpoint, pairs, lpips)
    if row.task == "exemplar":
        from experiments.few_shot_cdc.correspondence import run_data_options

        return ground_truth.exemplar_scores(checkpoint, run_data_options(checkpoint), pairs,
                                            lpips)
    return ground_truth.adaptation_scores(checkpoint, samples, fid_images)


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def row_label(name: str, entry: dict) -> str:
    """The row's name and the config options it overrides: ``cocosnet (ngf 8, ...)``."""
    overrides = entry.get("overrides") or []
    options = [f"{option.rsplit('.', 1)[-1]} {value}"
               for option, value in zip(overrides[::2], overrides[1::2], strict=True)]
    return f"{name} ({', '.join(options)})" if options else name


def table(results: dict) -> list[str]:
    """Markdown: one block per task; the model rows as mean +- std over seeds, then each
    trivial answer (the same for every seed: one evaluation set)."""
    lines = []
    for task, columns in COLUMNS.items():
        rows = {name: entry for name, entry in results["rows"].items() if entry["task"] == task}
        if not rows:
            continue
        lines += [f"| {task} | seeds | kimg | train min | "
                  + " | ".join(f"{heading} {'↑' if up else '↓'}" for _, heading, up in columns)
                  + " |", "|---|---:|---:|---:|" + "---:|" * len(columns)]
        baselines = {}
        for name, entry in rows.items():
            cells = []
            for key, _, _ in columns:
                values = [s["model"][key] for s in entry["seeds"].values()
                          if s["model"].get(key) is not None]
                cells.append("{:.3f} ± {:.3f}".format(*mean_std(values)) if values else "")
            minutes = statistics.fmean(s["train_seconds"] for s in entry["seeds"].values()) / 60
            lines.append(f"| {row_label(name, entry)} | {len(entry['seeds'])} | "
                         f"{entry['max_kimg']:g} | {minutes:.1f} | " + " | ".join(cells) + " |")
            first = next(iter(entry["seeds"].values()))
            baselines.update({k: v for k, v in first.items() if k != "model"
                              and isinstance(v, dict)})
        for answer, scores in sorted(baselines.items()):
            cells = [f"{scores[key]:.3f}" if scores.get(key) is not None else ""
                     for key, _, _ in columns]
            lines.append(f"| {answer} | | | | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def records(results: dict) -> list[dict]:
    """Registry records: per row and metric, the mean over seeds, with what
    :func:`from_registry` needs to rebuild the table (per-seed values and training times, the
    trivial answers' scores)."""
    out = []
    for name, entry in results["rows"].items():
        seeds = entry["seeds"]
        metrics = {key for s in seeds.values() for key, v in s["model"].items() if v is not None}
        first = next(iter(seeds.values()))
        baselines = {k: v for k, v in first.items() if k != "model" and isinstance(v, dict)}
        for metric in sorted(metrics):
            values = [s["model"].get(metric) for s in seeds.values()]
            mean, std = mean_std([v for v in values if v is not None])
            out.append({"config": entry["config"], "metric": f"leaderboard/{name}/{metric}",
                        "value": mean, "std": std, "command": results["command"],
                        "commit": results["commit"], "hardware": results["hardware"],
                        "data_sha256": first["data_sha256"],
                        "checkpoint_sha256": ",".join(s["checkpoint_sha256"]
                                                      for s in seeds.values()),
                        "quick": results["kimg_scale"] < 1,
                        "provenance": {
                            "task": entry["task"], "max_kimg": entry["max_kimg"],
                            "overrides": entry.get("overrides", []),
                            "per_seed": dict(zip(map(str, seeds), values, strict=True)),
                            "train_seconds": {str(k): s["train_seconds"]
                                              for k, s in seeds.items()},
                            "training_commands": [s["command"] for s in seeds.values()],
                            "baselines": {answer: scores.get(metric)
                                          for answer, scores in baselines.items()
                                          if scores.get(metric) is not None},
                            "evaluation_pairs": results["pairs"],
                            **adaptation_sizes(entry["task"], results),
                            **results.get("lpips", {})}})
    return out


def adaptation_sizes(task: str, results: dict) -> dict:
    """An adaptation row's sample and FID reference counts, for its records' provenance."""
    if task != "adaptation":
        return {}
    return {"samples": results["samples"], "fid_reference_images": results["fid_images"]}


def from_registry(entries: list[dict]) -> dict:
    """The ``results`` layout :func:`table` reads, rebuilt from registry records (the
    README's leaderboard table is generated this way)."""
    rows: dict = {}
    for record in entries:
        _, name, metric = record["metric"].split("/", 2)
        provenance = record["provenance"]
        entry = rows.setdefault(name, {"config": record.get("config", ""),
                                       "task": provenance["task"],
                                       "max_kimg": provenance["max_kimg"],
                                       "overrides": provenance.get("overrides", []),
                                       "seeds": {}})
        for seed, value in provenance["per_seed"].items():
            scores = entry["seeds"].setdefault(seed, {
                "model": {}, "train_seconds": provenance["train_seconds"][seed]})
            scores["model"][metric] = value
            if seed == next(iter(provenance["per_seed"])):
                for answer, baseline in provenance["baselines"].items():
                    scores.setdefault(answer, {})[metric] = baseline
    return {"rows": rows}


def run(args: argparse.Namespace, argv: list[str]) -> str:
    from lightning_modules.pretrained import LPIPS

    unknown = [name for name in args.rows if name not in ROWS]
    if unknown:
        raise ConfigError(f"--rows {unknown}: unknown; choose from {', '.join(ROWS)}")
    if any(ROWS[name].task == "adaptation" for name in args.rows):
        for option, value in (("--samples", args.samples), ("--fid-images", args.fid_images)):
            if value < 2:
                raise ConfigError(f"{option} {value}: an adaptation row's FID needs at least 2")
    out = Path(args.out)
    lpips = LPIPS("alex")
    results = {"command": "python -m experiments.leaderboard " + shlex.join(argv),
               "commit": commit(), "hardware": hardware(), "kimg_scale": args.kimg_scale,
               "pairs": args.pairs, "samples": args.samples, "fid_images": args.fid_images,
               "lpips": lpips.provenance, "rows": {}}
    for name in args.rows:
        row = ROWS[name]
        entry = results["rows"][name] = {"config": row.config, "task": row.task,
                                         "overrides": list(row.overrides), "seeds": {}}
        for seed in args.seeds:
            finished = train(name, row, seed, args.kimg_scale, out)
            print(f"{name} seed {seed}: trained {finished['max_kimg']:g} kimg in "
                  f"{finished['train_seconds'] / 60:.1f} min", flush=True)
            scores = score(row, finished["checkpoint"], args.pairs, args.samples,
                           args.fid_images, lpips)
            entry["max_kimg"] = finished["max_kimg"]
            entry["seeds"][seed] = {**scores, **finished}
    (out / "leaderboard.json").write_text(json.dumps(results, indent=2))
    text = "\n".join(table(results))
    (out / "table.md").write_text(text)
    with open(out / "records.jsonl", "w") as handle:
        for record in records(results):
            handle.write(json.dumps(record) + "\n")
    return f"{text}\nwritten: {out / 'leaderboard.json'}, {out / 'table.md'}, " \
           f"{out / 'records.jsonl'} (merge: corrlab results --merge {out / 'records.jsonl'})"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m experiments.leaderboard",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", nargs="+", default=list(ROWS), help=", ".join(ROWS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--kimg-scale", type=float, default=1.0,
                        help="multiplies every row's budget (< 1: a smoke test)")
    parser.add_argument("--pairs", type=int, default=64, help="evaluation pairs per row")
    parser.add_argument("--samples", type=int, default=128,
                        help="samples per adaptation checkpoint (layout kept, FID)")
    parser.add_argument("--fid-images", type=int, default=256,
                        help="held-out target images each adaptation FID compares against")
    parser.add_argument("--out", default="runs/leaderboard")
    args = parser.parse_args(argv)
    return report_errors(lambda: print(run(args, argv)))


if __name__ == "__main__":
    sys.exit(main())

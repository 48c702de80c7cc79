"""The ground-truth leaderboard (experiments/leaderboard.py) on a tiny budget: every row trains,
is scored beside the trivial answers, and lands in the registry and the README's table."""

from __future__ import annotations

import json
import shutil
import statistics
from dataclasses import replace
from pathlib import Path

import yaml

from experiments.leaderboard import ROWS, from_registry, leaderboard_config, main, table
from experiments.results import (
    EXPERIMENTS,
    MEASURED_FIELDS,
    leaderboard_table,
    merge,
    registry_problems,
)


def test_leaderboard_config_keeps_only_a_final_checkpoint_and_scales_the_budget(tmp_path):
    path, max_kimg = leaderboard_config(ROWS["cocosnet"], 0.5, tmp_path)
    demo = yaml.safe_load((EXPERIMENTS / "cocosnet" / "demo.yaml").read_text())
    settings = yaml.safe_load(path.read_text())
    # CoCosNet's row has its own budget, longer than the demo's
    assert ROWS["cocosnet"].kimg > demo["model"]["init_args"]["max_kimg"]
    assert max_kimg == settings["model"]["init_args"]["max_kimg"] == ROWS["cocosnet"].kimg * 0.5
    assert settings["trainer"]["callbacks"] == [
        {"class_path": "KimgCheckpoint", "init_args": {"every_kimg": max_kimg}}]
    assert settings["data"] == demo["data"]
    # a row without one trains for the demo's budget
    assert ROWS["adain"].kimg is None
    adain = yaml.safe_load((EXPERIMENTS / "adaconv" / "demo_adain.yaml").read_text())
    assert leaderboard_config(ROWS["adain"], 0.5, tmp_path)[1] \
        == adain["model"]["init_args"]["max_kimg"] * 0.5


def test_leaderboard_on_a_tiny_budget_trains_scores_and_records_every_row(tmp_path: Path,
                                                                            capsys, monkeypatch):
    out = tmp_path / "leaderboard"
    common = ["--kimg-scale", "0.01", "--pairs", "4", "--samples", "8", "--fid-images", "16",
              "--out", str(out)]
    assert main(["--rows", *ROWS, "--seeds", "0", *common]) == 0
    # adaptation rows record how many samples and FID reference images scored them
    adaptation = [json.loads(line)["provenance"] for line in
                  (out / "records.jsonl").read_text().splitlines()
                  if json.loads(line)["provenance"]["task"] == "adaptation"]
    assert adaptation and all(provenance["samples"] == 8 and
                              provenance["fid_reference_images"] == 16
                              for provenance in adaptation)
    first_done = (out / "adain" / "seed0" / "done.json").read_text()
    # a second call reuses finished runs and adds seed 1
    assert main(["--rows", "adain", "cocosnet", "--seeds", "0", "1", *common]) == 0
    printed = capsys.readouterr().out
    assert (out / "adain" / "seed0" / "done.json").read_text() == first_done
    assert (out / "adain" / "seed1" / "checkpoints" / "last.ckpt").is_file()

    # corrlab evaluate runs the demo config's ground-truth callbacks on a leaderboard checkpoint
    from experiments.evaluate import main as evaluate

    evaluated = tmp_path / "evaluate.jsonl"
    assert evaluate(["--config", str(EXPERIMENTS / "adaconv" / "demo_adain.yaml"), "--ckpt_path",
                     str(out / "adain" / "seed0" / "checkpoints" / "last.ckpt"), "--quick",
                     "--out", str(evaluated)]) == 0
    record = next(json.loads(line) for line in evaluated.read_text().splitlines()
                  if json.loads(line)["metric"] == "ground_truth")
    assert record["value"] == record["provenance"]["style/l1_to_truth"] > 0
    assert 0 <= record["provenance"]["style/structure_accuracy"] <= 1

    # the AdaConv demo report scores the same accuracies
    from experiments.adaconv.report import main as adaconv_report

    adaconv_report([str(out / "adain" / "seed0" / "checkpoints" / "last.ckpt"), "--pairs", "4",
                    "--out", str(tmp_path / "report")])
    report = json.loads((tmp_path / "report" / "report.json").read_text())["results"]
    assert report["truth"]["texture_accuracy"] == 1.0
    assert report["content image (trivial)"]["structure_accuracy"] > 0.7
    assert "structure acc." in capsys.readouterr().out

    results = json.loads((out / "leaderboard.json").read_text())
    assert list(results["rows"]) == ["adain", "cocosnet"]
    for entry in results["rows"].values():
        assert list(entry["seeds"]) == ["0", "1"]
        for seed in entry["seeds"].values():
            assert {"copy structure (trivial)", "copy texture (trivial)",
                    "mean image (trivial)"} <= set(seed)
            for scores in (seed["model"], seed["copy structure (trivial)"]):
                assert 0 <= scores["structure_accuracy"] <= 1
                assert 0 <= scores["texture_accuracy"] <= 1
    # the layout baseline passes structure, the exemplar baseline does better on texture
    cocosnet = results["rows"]["cocosnet"]["seeds"]["0"]
    assert cocosnet["copy structure (trivial)"]["structure_accuracy"] > \
        cocosnet["copy texture (trivial)"]["structure_accuracy"]
    assert cocosnet["copy texture (trivial)"]["texture_accuracy"] > \
        cocosnet["copy structure (trivial)"]["texture_accuracy"]
    assert "epe" in cocosnet["model"] and "epe" in cocosnet["identity matching (trivial)"]

    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    for record in records:
        assert all(field in record for field in MEASURED_FIELDS) and record["quick"]
        values = [v for v in record["provenance"]["per_seed"].values() if v is not None]
        assert record["value"] == statistics.fmean(values)
        assert record["std"] == statistics.stdev(values)
    assert "| adain | 2 |" in printed and " ± " in printed
    # a row's overrides are named in the table (CoCosNet: the shipped model's widths and its
    # learning-rate decay)
    assert "| cocosnet (ngf 8, spade_hidden 16, decay_kimg 6) | 2 |" in printed
    # the registry's records rebuild the same table, and the README block includes it
    assert table(from_registry(records)) == table(results)
    registry = tmp_path / "experiments"
    shutil.copytree(EXPERIMENTS, registry, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    for path in registry.glob("*/results.yaml"):   # without the leaderboard measured here
        entries = yaml.safe_load(path.read_text())
        for entry in entries["configs"].values():
            entry["measured"] = [r for r in (entry or {}).get("measured") or []
                                 if not r["metric"].startswith("leaderboard/")]
        path.write_text(yaml.safe_dump(entries, sort_keys=False))
    assert leaderboard_table(registry) == []
    merge(out / "records.jsonl", registry, include_quick=True)
    assert registry_problems(registry) == []
    assert leaderboard_table(registry)[2:] == table(results)
    # a later leaderboard replaces the earlier one's records (here: one seed less)
    later = out / "later.jsonl"
    with open(later, "w") as handle:
        for record in records:
            per_seed = record["provenance"]["per_seed"]
            handle.write(json.dumps({**record, "checkpoint_sha256": "other", "provenance": {
                **record["provenance"], "per_seed": {"0": per_seed["0"]}}}) + "\n")
    merge(later, registry, include_quick=True)
    entry = yaml.safe_load((registry / "cocosnet" / "results.yaml").read_text())
    measured = entry["configs"]["demo.yaml"]["measured"]
    assert [r["checkpoint_sha256"] for r in measured
            if r["metric"] == "leaderboard/cocosnet/epe"] == ["other"]
    assert "| cocosnet (ngf 8, spade_hidden 16, decay_kimg 6) | 1 |" in "\n".join(
        leaderboard_table(registry))

    # changed settings (here an override; an edited config alike) retrain instead of reusing
    monkeypatch.setitem(ROWS, "adain", replace(ROWS["adain"],
                                               overrides=("--model.init_args.lr", "0.001")))
    assert main(["--rows", "adain", "--seeds", "0", *common]) == 0
    assert (out / "adain" / "seed0" / "done.json").read_text() != first_done


def test_leaderboard_names_an_unknown_row(tmp_path: Path, capsys):
    assert main(["--rows", "pix2pix", "--out", str(tmp_path)]) != 0
    assert "pix2pix" in capsys.readouterr().err


def test_leaderboard_refuses_too_few_fid_images_before_training(tmp_path: Path, capsys):
    assert main(["--rows", "adain", "cdc", "--fid-images", "1", "--out", str(tmp_path)]) != 0
    assert "--fid-images 1" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing trained

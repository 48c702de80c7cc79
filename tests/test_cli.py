"""The ``corrlab`` command: LightningCLI configs, the run folder layout and every logger's files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from experiments.cli import main
from tests.conftest import HANG_GUARD_S, ROOT

TINY_CONFIG = """
model:
  class_path: tests.tiny_module.TinyAutoencoder
data:
  class_path: UnpairedDataModule
  init_args: {batch_size: 4, crop_size: 24, num_workers: 0, synthetic_images: 12}
trainer:
  max_steps: 6
  log_every_n_steps: 1
  accelerator: cpu
  enable_progress_bar: false
  enable_model_summary: false
  callbacks:
    - class_path: SampleGrid
      init_args: {every_n_batches: 3}
"""


def write_config(folder: Path, text: str = TINY_CONFIG, name: str = "tiny.yaml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_print_config_shows_every_datamodule_value(tmp_path: Path, capsys):
    config = write_config(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(config), "--data.init_args.load_size", "32",
              "--print_config"])
    assert exit_info.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    data = printed["data"]
    assert data["class_path"] == "datamodules.UnpairedDataModule"
    assert data["init_args"]["crop_size"] == 24 and data["init_args"]["load_size"] == 32
    assert data["init_args"]["check_images"] == "full"  # defaults are shown too
    assert printed["seed_everything"] == 0 and "deterministic" in printed["trainer"]
    assert printed["loggers"] == ["csv", "tensorboard", "wandb"]


def test_mistyped_config_key_is_rejected_before_training(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = write_config(tmp_path, TINY_CONFIG.replace("crop_size", "crop_sise"))
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(config)])
    assert exit_info.value.code != 0
    message = capsys.readouterr().err
    assert "Option 'crop_sise' is not accepted" in message
    assert "datamodules.UnpairedDataModule. Did you mean 'crop_size'?" in message
    valid = message.split("Valid options: ")[1].splitlines()[0].split(", ")
    assert {"crop_size", "batch_size", "source", "num_workers"} <= set(valid)  # with the base's
    assert "crop_sise" not in valid
    assert not (tmp_path / "runs").exists()


def test_mistyped_trainer_key_lists_the_trainer_options(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = write_config(tmp_path, TINY_CONFIG.replace("max_steps", "max_stepz"))
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(config)])
    message = capsys.readouterr().err
    assert "'max_stepz' is not an option of lightning.pytorch.Trainer. Did you mean " \
           "'max_steps'?" in message
    assert "accelerator" in message.split("Valid options: ")[1]
    assert not (tmp_path / "runs").exists()


def run_corrlab(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), WANDB_MODE="offline", WANDB_SILENT="true")
    return subprocess.run([sys.executable, "-m", "experiments", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=HANG_GUARD_S)


def test_fit_writes_scalars_and_images_to_every_logger(tmp_path: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = write_config(tmp_path)
    result = run_corrlab(["fit", "--config", str(config)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / "runs" / "tiny" / "version_0"
    assert (run_dir / "config.yaml").is_file()
    assert list((run_dir / "checkpoints").glob("*.ckpt"))

    # CSV: scalars in metrics.csv, images as PNG files
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert "train/l1" in rows[0].split(",") and len(rows) >= 7
    pngs = sorted((run_dir / "images" / "samples").glob("*.png"))
    assert len(pngs) >= 2 and Image.open(pngs[0]).mode == "RGB"

    # TensorBoard: scalar and image tags in the event file
    events = EventAccumulator(str(run_dir), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    assert "train/l1" in events.Tags()["scalars"] and len(events.Scalars("train/l1")) >= 6
    assert "samples" in events.Tags()["images"]

    # W&B (offline): the run's record file holds the scalar, the media folder the images
    wandb_runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(wandb_runs) == 1
    record = next(wandb_runs[0].glob("run-*.wandb")).read_bytes()
    assert b"train/l1" in record
    assert list((wandb_runs[0] / "files" / "media" / "images").glob("samples_*.png"))

    # validate from the checkpoint through the same config
    checkpoint = next((run_dir / "checkpoints").glob("*.ckpt"))
    result = run_corrlab(["validate", "--config", str(config), "--ckpt_path", str(checkpoint),
                          "--loggers", "[csv]", "--version", "validation"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "val/l1" in (tmp_path / "runs" / "tiny" / "validation" / "metrics.csv").read_text()

    # a second run gets the next version folder
    result = run_corrlab(["fit", "--config", str(config), "--loggers", "[csv]",
                          "--trainer.max_steps", "1"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    second = tmp_path / "runs" / "tiny" / "version_1"
    assert (second / "metrics.csv").is_file() and not (second / "wandb").exists()
    assert yaml.safe_load((second / "config.yaml").read_text())["trainer"]["max_steps"] == 1


def test_data_subcommand_is_reachable_from_corrlab(image_folder: Path, tmp_path: Path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "convert", str(image_folder), str(tmp_path / "set.zip")])
    assert exit_info.value.code == 0
    assert '"images": 6' in capsys.readouterr().out
    assert (tmp_path / "set.zip").is_file()


def test_stylegan2_config_trains_through_the_cli(tmp_path: Path, metric_env):
    config = ROOT / "experiments" / "stylegan2" / "shapes32.yaml"
    fid_args = [f"--trainer.callbacks.init_args.{k}" for k in ("num_images", "num_real",
                                                               "batch_size", "kid_subset_size")]
    result = run_corrlab(["fit", "--config", str(config), "--model.init_args.max_kimg", "0.032",
                          "--data.init_args.num_workers", "0", "--trainer.log_every_n_steps",
                          "1", "--loggers", "[csv]",
                          fid_args[0], "16", fid_args[1], "32", fid_args[2], "8",
                          fid_args[3], "16"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / "runs" / "shapes32" / "version_0"
    header, *rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert {"D_main/logistic", "G_main/nonsaturating", "progress/kimg"} <= set(header.split(","))
    kimg = [float(r.split(",")[header.split(",").index("progress/kimg")]) for r in rows
            if r.split(",")[header.split(",").index("progress/kimg")]]
    assert kimg[-1] == pytest.approx(0.032)
    assert list((run_dir / "images" / "samples").glob("*.png"))
    fid = json.loads((run_dir / "metrics.json").read_text())["metrics/fid"]  # at_train_end
    assert fid["num_fake"] == 16 and fid["num_real"] == 32 and fid["fid"] > 0

    # corrlab evaluate on that checkpoint (--quick), then the records merged into a registry
    records = tmp_path / "records.jsonl"
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    result = run_corrlab(["evaluate", "--config", str(config), "--ckpt_path", str(checkpoint),
                          "--quick", "--out", str(records), "--",
                          "--data.init_args.num_workers", "0"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads(records.read_text().splitlines()[0])
    assert record["config"] == "stylegan2/shapes32.yaml" and record["metric"] == "fid"
    assert record["quick"] is True and record["value"] == record["provenance"]["fid"] > 0
    assert record["provenance"]["num_fake"] == 64 and record["provenance"]["num_real"] == 128
    assert len(record["checkpoint_sha256"]) == 64 and len(record["data_sha256"]) == 64
    assert record["commit"] and "cores" in record["hardware"]
    registry = tmp_path / "registry"
    shutil.copytree(ROOT / "experiments" / "stylegan2", registry / "stylegan2")
    merge = ["results", "--merge", str(records), "--root", str(registry)]
    assert run_corrlab(merge, cwd=tmp_path).stdout.strip().endswith("0 record(s) added, 1 skipped")
    assert "1 record(s) added" in run_corrlab([*merge, "--include-quick"], cwd=tmp_path).stdout
    assert "0 record(s) added" in run_corrlab([*merge, "--include-quick"], cwd=tmp_path).stdout
    from experiments.results import registry_problems

    assert registry_problems(registry) == []
    measured = yaml.safe_load((registry / "stylegan2" / "results.yaml").read_text())
    assert measured["configs"]["shapes32.yaml"]["measured"][-1]["quick"] is True


def tiny_budget_copy(config: Path, folder: Path, **callback_args: dict) -> Path:
    """``config`` with the given callbacks' options replaced (``SwapFID={"num_pairs": 16}``):
    the shipped config's code path on a test-sized budget."""
    settings = yaml.safe_load(config.read_text())
    for callback in settings["trainer"]["callbacks"]:
        name = callback["class_path"].split(".")[-1]
        if name in callback_args:
            callback.setdefault("init_args", {}).update(callback_args[name])
    path = folder / config.name
    path.write_text(yaml.safe_dump(settings))
    return path


def test_swapping_autoencoder_demo_config_writes_its_outputs(tmp_path: Path, metric_env):
    config = tiny_budget_copy(ROOT / "experiments" / "swapping_autoencoder" / "demo.yaml",
                              tmp_path, SwapFID={"num_pairs": 16, "kid_subset_size": 8},
                              GroundTruthSwapError={"num_pairs": 8},
                              ReconstructionLPIPS={"max_images": 8})
    result = run_corrlab(["fit", "--config", str(config), "--experiment", "demo",
                          "--model.init_args.max_kimg", "0.032", "--data.init_args.num_workers",
                          "0", "--trainer.enable_progress_bar", "false", "--loggers", "[csv]"],
                         cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / "runs" / "demo" / "version_0"
    grids = sorted((run_dir / "swap_grids").glob("*.png"))
    assert len(grids) >= 2  # at the start and at the end
    assert Image.open(grids[-1]).size == (5 * 64 + 6 * 2, 5 * 64 + 6 * 2)  # 4 x 4 swaps + refs
    assert (run_dir / "losses.png").is_file() and (run_dir / "checkpoints" / "last.ckpt").is_file()
    metrics = (run_dir / "metrics.csv").read_text()
    assert "swap/l1_to_true_swap" in metrics and "G_main/G_L1" in metrics
    assert "swap/lpips_to_true_swap" in metrics and "swap/structure_accuracy" in metrics
    report = subprocess.run([sys.executable, "-m", "experiments.report", "runs/demo"],
                            cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                            capture_output=True, text=True, check=True).stdout
    assert "swap grid:" in report and "ground-truth swap L1" in report
    assert "lpips_to_true_swap (lower is better)" in report
    assert "reconstruction_lpips (lower is better)" in report
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    swap_fid = [r for r in records if r["metric"] == "metrics/swap_fid"]
    assert len(swap_fid) == 2 and all(r["num_fake"] == r["num_real"] == 16 for r in swap_fid)
    assert swap_fid[1]["real_from_cache"] is False  # held in memory, extracted once per run
    assert "swap_fid (lower is better)" in report
    reconstruction = [r for r in records if r["metric"] == "metrics/reconstruction_lpips"]
    assert len(reconstruction) == 2 and reconstruction[0]["num_images"] == 8
    assert reconstruction[0]["net"] == "alex" and "weights_sha256" in reconstruction[0]
    # what make demo does next, on this run's checkpoint exported as make demo-model exports
    # the shipped one: evaluate it on the same references, then both grids side by side
    from experiments.export_checkpoint import export_checkpoint

    shipped = tmp_path / "shipped.ckpt"
    export_checkpoint(run_dir / "checkpoints" / "last.ckpt", shipped)
    result = run_corrlab(["validate", "--config", str(config), "--ckpt_path", str(shipped),
                          "--experiment", "demo", "--version", "shipped_model",
                          "--trainer.limit_val_batches", "1", "--trainer.enable_progress_bar",
                          "false", "--loggers", "[csv]"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    report = subprocess.run([sys.executable, "-m", "experiments.report", "runs/demo",
                             "--shipped", "runs/demo/shipped_model"],
                            cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                            capture_output=True, text=True, check=True).stdout
    shipped_part = report.split("shipped trained model")[1]
    assert "swap structure accuracy (higher is better)" in shipped_part
    assert "swap texture accuracy (higher is better)" in shipped_part
    both = np.asarray(Image.open(tmp_path / "runs" / "demo" / "demo_vs_shipped.png"))
    side = 5 * 64 + 6 * 2
    assert both.shape == (side, 2 * side + 16, 3)
    # the slim copy holds the trained weights: its grid is the run's last one, pixel for pixel
    shipped_grid = next((tmp_path / "runs" / "demo" / "shipped_model" / "swap_grids")
                        .glob("*.png"))
    assert np.array_equal(both[:, -side:], np.asarray(Image.open(shipped_grid).convert("RGB")))
    assert np.abs(both[:, -side:].astype(int)
                  - np.asarray(Image.open(grids[-1]).convert("RGB")).astype(int)).max() <= 1


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    listed = capsys.readouterr().out
    for command in ("fit", "validate", "test", "predict", "fid", "lpips", "data", "stylize",
                    "exemplars", "evaluate", "results"):
        assert f"\n  {command} " in listed, command


def test_user_errors_print_one_message_and_a_traceback_only_on_request(tmp_path, capsys,
                                                                        monkeypatch):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(4):
        Image.new("RGB", (32, 32)).save(folder / f"{i}.png")
    (folder / "broken.png").write_text("not an image")
    config = write_config(tmp_path)
    args = ["fit", "--config", str(config), "--data.init_args.source", str(folder),
            "--runs_dir", str(tmp_path / "runs"), "--loggers", "[csv]"]
    monkeypatch.delenv("CORRLAB_TRACEBACK", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "corrlab: error: " in err and "broken.png" in err and "Traceback" not in err
    from datamodules.decode import DataError

    with pytest.raises(DataError, match="broken.png"):  # --traceback: the exception itself
        main([*args, "--traceback"])


CONFIGS = sorted(p for p in (ROOT / "experiments").rglob("*.yaml") if p.name != "results.yaml")


@pytest.mark.parametrize("config", CONFIGS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_shipped_config_parses(config: Path, capsys):
    """Every key of every config in experiments/ exists with a valid type (a typo in a paper
    config fails here, not hours into a cluster job); callbacks are checked by class."""
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(config), "--print_config"])
    assert exit_info.value.code == 0, capsys.readouterr().err
    printed = yaml.safe_load(capsys.readouterr().out)
    written = yaml.safe_load(config.read_text())
    assert printed["model"]["class_path"].endswith(written["model"]["class_path"].split(".")[-1])
    assert {c["class_path"].split(".")[-1] for c in printed["trainer"]["callbacks"]} == \
        {c["class_path"].split(".")[-1] for c in written["trainer"]["callbacks"]}


def write_images(folder: Path, names: list[str], seed: int, size: int = 32) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name in names:
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / name)


def test_corrlab_lpips_pairs_files_by_name(tmp_path: Path, metric_env, capsys):
    from datamodules.transforms import to_image_tensor
    from lightning_modules.pretrained import LPIPS

    write_images(tmp_path / "a", ["x.png", "y.png", "z.png"], seed=0)
    write_images(tmp_path / "b", ["z.jpg", "x.png", "y.png"], seed=1)  # other order, other type
    with pytest.raises(SystemExit) as exit_info:
        main(["lpips", str(tmp_path / "a"), str(tmp_path / "b"), "--per-pair",
              "--batch-size", "2"])
    assert exit_info.value.code == 0
    result = json.loads(capsys.readouterr().out)
    network = LPIPS("alex")
    expected = {}
    for name in ("x", "y", "z"):
        image_a = to_image_tensor(np.asarray(Image.open(tmp_path / "a" / f"{name}.png")))
        other = next((tmp_path / "b").glob(f"{name}.*"))
        image_b = to_image_tensor(np.asarray(Image.open(other).convert("RGB")))
        expected[f"{name}.png"] = float(network(image_a[None], image_b[None]))
    assert result["per_pair"] == pytest.approx(expected, rel=1e-5)
    assert result["count"] == 3 and result["net"] == "alex"
    assert result["lpips"] == pytest.approx(np.mean(list(expected.values())), rel=1e-6)
    assert result["std"] == pytest.approx(np.std(list(expected.values())), rel=1e-5)
    assert result["weights_sha256"] == network.backbone.weights.sha256
    write_images(tmp_path / "b", ["extra.png"], seed=2)
    with pytest.raises(SystemExit) as exit_info:
        main(["lpips", str(tmp_path / "a"), str(tmp_path / "b")])
    assert exit_info.value.code == 2
    assert "corrlab: error:" in capsys.readouterr().err


def test_corrlab_fid_no_cache_leaves_no_temporary_folder(tmp_path: Path, metric_env, capsys,
                                                         monkeypatch):
    import tempfile

    from lightning_modules.pretrained.inception import fid_helper_weights

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    write_images(tmp_path / "a", [f"{i}.png" for i in range(3)], seed=0)
    write_images(tmp_path / "b", [f"{i}.png" for i in range(3)], seed=1)
    with pytest.raises(SystemExit) as exit_info:  # TorchScript weights: converted on the fly
        main(["fid", str(tmp_path / "a"), str(tmp_path / "b"), "--no-cache", "--quiet",
              "--weights", str(fid_helper_weights())])
    assert exit_info.value.code == 0
    assert json.loads(capsys.readouterr().out)["num_a"] == 3
    assert list(scratch.iterdir()) == []


def test_corrlab_exemplars_writes_a_retrieval_list(tmp_path: Path, capsys):
    folder = tmp_path / "targets"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):  # images 2k and 2k+1 are identical
        image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        for name in (f"{2 * i}.png", f"{2 * i + 1}.png"):
            Image.fromarray(image).save(folder / name)
    out = tmp_path / "train_ref.txt"
    args = ["exemplars", str(folder), "--out", str(out), "--top-k", "2", "--crop-size", "32",
            "--cache-dir", str(tmp_path / "cache")]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 0, capsys.readouterr().err
    lines = [line.split() for line in out.read_text().splitlines()]
    assert len(lines) == 6 and all(len(words) == 3 for words in lines)
    for name, first, second in lines:  # the twin first, never the image itself
        assert int(Path(first).stem) == int(Path(name).stem) ^ 1 and name not in (first, second)
    # the written list is what PairedDataModule(exemplar: list) reads
    from datamodules.exemplars import read_exemplar_list

    names = sorted(p.name for p in folder.iterdir())
    assert sorted(read_exemplar_list(out, names)) == list(range(6))
    with pytest.raises(SystemExit) as exit_info:
        main([*args[:-4], "--top-k", "0"])
    assert exit_info.value.code == 2 and "--top-k" in capsys.readouterr().err


def test_cocosnet_demo_config_writes_its_outputs(tmp_path: Path, metric_env):
    config = tiny_budget_copy(ROOT / "experiments" / "cocosnet" / "demo.yaml", tmp_path,
                              GroundTruthExemplarError={"num_pairs": 4},
                              ImageTable={"num_samples": 2})
    result = run_corrlab(["fit", "--config", str(config), "--experiment", "cocosnet_demo",
                          "--version", "demo", "--model.init_args.max_kimg", "0.008",
                          "--data.init_args.synthetic_images", "24",
                          "--trainer.enable_progress_bar", "false", "--loggers", "[csv]"],
                         cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / "runs" / "cocosnet_demo" / "demo"
    tables = sorted((run_dir / "image_tables").glob("*.png"))
    assert len(tables) == 2  # at the start and at the end
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    report = subprocess.run([sys.executable, "-m", "experiments.cocosnet.report",
                             "runs/cocosnet_demo/demo"], cwd=tmp_path,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True,
                            text=True, check=True).stdout
    for row in ("output L1 to the truth", "warped exemplar LPIPS to the truth",
                "output structure accuracy", "output texture accuracy",
                "correspondence end-point error (px)"):
        assert row in report, report
    # what make cocosnet-demo does next: the shipped model (make cocosnet-model: the leaderboard
    # row's widths, exported slim in float16; here on a tiny budget) on the same pairs
    import shlex

    from experiments.export_checkpoint import export_checkpoint
    from experiments.leaderboard import ROWS
    from tests.conftest import makefile_variable

    model_args = shlex.split(makefile_variable("COCOSNET_MODEL_ARGS"))
    assert tuple(model_args) == ROWS["cocosnet"].overrides  # the shipped model's widths
    common = ["--config", str(config), "--experiment", "cocosnet_model",
              "--data.init_args.synthetic_images", "24", "--trainer.enable_progress_bar",
              "false", "--loggers", "[csv]", *model_args]
    result = run_corrlab(["fit", *common, "--version", "seed0", "--model.init_args.max_kimg",
                          "0.008"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    shipped = tmp_path / "shipped.ckpt"
    export_checkpoint(tmp_path / "runs" / "cocosnet_model" / "seed0" / "checkpoints" /
                      "last.ckpt", shipped, half=True)
    common[common.index("cocosnet_model")] = "cocosnet_demo"
    result = run_corrlab(["validate", *common, "--ckpt_path", str(shipped), "--version",
                          "shipped_model", "--trainer.limit_val_batches", "1"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    report = subprocess.run([sys.executable, "-m", "experiments.cocosnet.report",
                             "runs/cocosnet_demo/demo", "--shipped",
                             "runs/cocosnet_demo/shipped_model"], cwd=tmp_path,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True,
                            text=True, check=True).stdout
    header = next(line for line in report.splitlines() if line.startswith("| |"))
    assert "shipped model (0.008 kimg)" in header, report
    texture = next(line for line in report.splitlines()
                   if line.startswith("| output texture accuracy"))
    assert len(texture.strip("|").split("|")) == 5  # label, init, end, shipped, trivial
    both = Image.open(tmp_path / "runs" / "cocosnet_demo" / "demo_vs_shipped.png")
    table = Image.open(tables[-1])
    assert both.size == (2 * table.width + 16, table.height)

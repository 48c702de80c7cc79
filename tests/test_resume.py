"""Exact resume (issue 7): a run killed with SIGKILL and resumed from its last checkpoint ends
bitwise identical to an uninterrupted run (parameters, optimizer states, EMA, counters, and the
logged losses), for the Swapping Autoencoder, few-shot CDC, and 2-process DDP (gloo).
Also: SIGTERM / SIGUSR1 save at the next safe point and stop, and SLURM requeue is asked for."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import HANG_GUARD_S, ROOT, fixtures_dir, rosinality_fixture_size

SWAPAE = {
    "class_path": "lightning_modules.swapping_autoencoder.SwappingAutoencoder",
    "init_args": dict(crop_size=32, spatial_code_ch=4, global_code_ch=32,
                      netE_scale_capacity=0.125, netE_num_downsampling_sp=3,
                      netE_num_downsampling_gl=1, netG_scale_capacity=0.0625,
                      netD_scale_capacity=0.0625, netD_max_channels=16,
                      netPatchD_scale_capacity=0.25, netPatchD_max_nc=16,
                      patch_pair_widths=[16, 16, 8], patch_size=16, patch_num_crops=2,
                      R1_once_every=4, ema_half_life_kimg=0.01,
                      channels_last=True),  # not auto: its choice depends on measured times
}
CDC = {
    "class_path": "lightning_modules.few_shot_cdc.FewShotCDC",
    "init_args": dict(source_checkpoint=str(fixtures_dir() / "rosinality_stylegan2" /
                                            "checkpoint.pt"),
                      num_anchors=4, patch_resolution=16, subspace_freq=2),
}


def write_config(tmp_path: Path, model: dict, data: dict, iterations: int, global_batch: int,
                 every_iterations: int) -> Path:
    model = {"class_path": model["class_path"],
             "init_args": {**model["init_args"], "max_kimg": iterations * global_batch / 1000}}
    config = {
        "seed_everything": 0,
        "model": model,
        "data": data,
        "trainer": {"accelerator": "cpu", "max_epochs": -1, "limit_val_batches": 0,
                    "log_every_n_steps": 1, "enable_progress_bar": False,
                    "enable_model_summary": False,
                    "callbacks": [{"class_path": "KimgCheckpoint", "init_args": {
                        "every_kimg": every_iterations * global_batch / 1000}}]},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def corrlab_fit(config: Path, tmp_path: Path, version: str, extra_callbacks: list[dict],
                *args: str, wait: bool = True) -> subprocess.Popen | subprocess.CompletedProcess:
    command = [sys.executable, "-m", "experiments", "fit", "--config", str(config),
               "--runs_dir", str(tmp_path / "runs"), "--experiment", "resume",
               "--version", version, "--loggers", "[csv]", *args]
    for callback in extra_callbacks:
        command += ["--trainer.callbacks+", json.dumps(callback)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled"}
    if not wait:
        return subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return subprocess.run(command, cwd=ROOT, env=env, start_new_session=True,
                          capture_output=True, text=True, timeout=HANG_GUARD_S)


def recorder(path: Path) -> dict:
    return {"class_path": "tests.resume_helpers.LossRecorder", "init_args": {"path": str(path)}}


def read_losses(path: Path) -> dict[int, dict[str, float]]:
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return {record["iteration"]: record["losses"] for record in records}


def last_checkpoint(tmp_path: Path, version: str) -> Path:
    return tmp_path / "runs" / "resume" / version / "checkpoints" / "last.ckpt"


def assert_same_training_state(straight: dict, resumed: dict) -> None:
    assert straight["corrlab"]["iteration"] == resumed["corrlab"]["iteration"]
    assert straight["corrlab"]["images_seen"] == resumed["corrlab"]["images_seen"]
    assert straight["state_dict"].keys() == resumed["state_dict"].keys()
    for key, value in straight["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key
    for ours, theirs in zip(straight["optimizer_states"], resumed["optimizer_states"],
                            strict=True):
        for index, state in ours["state"].items():
            for name, value in state.items():
                assert torch.equal(value, theirs["state"][index][name]), (index, name)


def kill_and_resume(tmp_path: Path, config: Path, iterations: int, every: int,
                    args: tuple[str, ...] = ()) -> None:
    """Straight run; run killed at a random iteration after its first checkpoint; resume."""
    straight = corrlab_fit(config, tmp_path, "straight", [recorder(tmp_path / "straight.jsonl")],
                           *args)
    assert straight.returncode == 0, straight.stdout + straight.stderr
    kill_at = random.randint(every + 1, iterations - 2)
    print(f"killing at iteration {kill_at} (checkpoints every {every})")
    killed = corrlab_fit(config, tmp_path, "killed",
                         [recorder(tmp_path / "killed.jsonl"),
                          {"class_path": "tests.resume_helpers.KillAt",
                           "init_args": {"iteration": kill_at}}], *args)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    checkpoint = torch.load(last_checkpoint(tmp_path, "killed"), weights_only=False)
    resumed_from = checkpoint["corrlab"]["iteration"]
    assert resumed_from == (kill_at // every) * every  # the last checkpoint before the kill
    resumed = corrlab_fit(config, tmp_path, "resumed", [recorder(tmp_path / "resumed.jsonl")],
                          "--ckpt_path", str(last_checkpoint(tmp_path, "killed")), *args)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr

    assert_same_training_state(
        torch.load(last_checkpoint(tmp_path, "straight"), weights_only=False),
        torch.load(last_checkpoint(tmp_path, "resumed"), weights_only=False))
    expected = read_losses(tmp_path / "straight.jsonl")
    assert sorted(expected) == list(range(1, iterations + 1))
    before = read_losses(tmp_path / "killed.jsonl")
    after = read_losses(tmp_path / "resumed.jsonl")
    assert sorted(after) == list(range(resumed_from + 1, iterations + 1))
    logged = {**{i: v for i, v in before.items() if i <= resumed_from}, **after}
    assert sorted(logged) == sorted(expected)
    for iteration, losses in logged.items():
        assert losses, iteration
        for key, value in losses.items():  # bitwise: the same float
            assert value == expected[iteration][key], (iteration, key)


def synthetic_data(batch: int, workers: int, images: int = 40) -> dict:
    return {"class_path": "UnpairedDataModule",
            "init_args": {"source": "synthetic", "synthetic_images": images, "crop_size": 32,
                          "batch_size": batch, "num_workers": workers}}


def test_swapping_autoencoder_resumes_bitwise_after_sigkill(tmp_path: Path):
    # 40 images, batch 4: 10 iterations per epoch, so the run crosses two epoch boundaries and
    # is killed part-way through an epoch; one data worker; lazy R1 every 4; EMA on.
    config = write_config(tmp_path, SWAPAE, synthetic_data(4, workers=1), iterations=24,
                          global_batch=4, every_iterations=5)
    kill_and_resume(tmp_path, config, iterations=24, every=5)


def test_few_shot_cdc_resumes_bitwise_after_sigkill(tmp_path: Path):
    data = {"class_path": "FewShotDataModule",
            "init_args": {"source": "synthetic", "k": 4, "crop_size": rosinality_fixture_size(),
                          "batch_size": 4,
                          "epoch_length": 24, "num_workers": 0}}
    config = write_config(tmp_path, CDC, data, iterations=14, global_batch=4,
                          every_iterations=4)
    kill_and_resume(tmp_path, config, iterations=14, every=4)


def test_two_process_ddp_resumes_bitwise_after_sigkill(tmp_path: Path):
    config = write_config(tmp_path, SWAPAE, synthetic_data(2, workers=0), iterations=14,
                          global_batch=4, every_iterations=4)
    kill_and_resume(tmp_path, config, iterations=14, every=4,
                    args=("--trainer.devices", "2", "--trainer.strategy", "corrlab_ddp"))


def wait_for(path: Path, process: subprocess.Popen, timeout: float = HANG_GUARD_S) -> None:
    start = time.time()
    while not path.exists():
        assert process.poll() is None, process.stdout.read()
        assert time.time() - start < timeout
        time.sleep(0.2)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1])
def test_preemption_signal_saves_at_a_safe_point_and_requeues(tmp_path: Path, signum):
    # A fake `scontrol` records the requeue request the run makes under SLURM.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path / 'scontrol.log'}\n")
    (bin_dir / "scontrol").chmod(0o755)
    config = write_config(tmp_path, SWAPAE, synthetic_data(4, workers=0), iterations=10_000,
                          global_batch=4, every_iterations=5)
    os.environ["PATH"] = f"{bin_dir}:{os.environ['PATH']}"
    os.environ["SLURM_JOB_ID"] = "4242"
    try:
        process = corrlab_fit(config, tmp_path, "signal", [], wait=False)
    finally:
        os.environ.pop("SLURM_JOB_ID")
        os.environ["PATH"] = os.environ["PATH"].split(":", 1)[1]
    checkpoint_path = last_checkpoint(tmp_path, "signal")
    wait_for(checkpoint_path, process)
    first = torch.load(checkpoint_path, weights_only=False)["corrlab"]["iteration"]
    process.send_signal(signum)
    output, _ = process.communicate(timeout=HANG_GUARD_S)
    assert process.returncode == 0, output
    saved = torch.load(checkpoint_path, weights_only=False)
    assert saved["corrlab"]["iteration"] > first  # saved again on the signal, not at a multiple
    assert saved["corrlab"]["iteration"] < 10_000
    assert f"Signal {int(signum)}: saved" in output
    requeued = (tmp_path / "scontrol.log").read_text() if signum == signal.SIGUSR1 else ""
    assert requeued == ("requeue 4242\n" if signum == signal.SIGUSR1 else "")


def test_sigterm_under_two_process_ddp_stops_both_ranks_at_the_same_iteration(tmp_path: Path):
    config = write_config(tmp_path, SWAPAE, synthetic_data(2, workers=0), iterations=10_000,
                          global_batch=4, every_iterations=5)
    process = corrlab_fit(config, tmp_path, "ddp_signal", [], "--trainer.devices", "2",
                          "--trainer.strategy", "corrlab_ddp", wait=False)
    checkpoint_path = last_checkpoint(tmp_path, "ddp_signal")
    wait_for(checkpoint_path, process)
    first = torch.load(checkpoint_path, weights_only=False)["corrlab"]["iteration"]
    process.send_signal(signal.SIGTERM)  # to rank 0 only: rank 1 learns it by all-reduce
    output, _ = process.communicate(timeout=HANG_GUARD_S)
    assert process.returncode == 0, output
    saved = torch.load(checkpoint_path, weights_only=False)["corrlab"]
    assert first < saved["iteration"] < 10_000
    assert len(saved["rng_states"]) == 2  # assembled on both ranks at the same safe point
    stops = [line for line in output.splitlines() if "saved" in line and "Signal" in line]
    assert len(stops) == 2 and len(set(stops)) == 1, stops  # both ranks, same kimg

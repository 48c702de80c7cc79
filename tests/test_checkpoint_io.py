"""Checkpoint files (issue 7): atomic writes survive a kill and a full disk, damaged files are
named before any pickle traceback, checkpoints of another model or other shapes are refused
naming the first mismatched tensor, and external checkpoints load only weights unless trusted."""

from __future__ import annotations

import datetime
import errno
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from callbacks import KimgCheckpoint
from lightning_modules.checkpoint_io import (
    AtomicCheckpointIO,
    CheckpointError,
    atomic_torch_save,
    verify_checkpoint_file,
)
from lightning_modules.checkpoints import safe_load
from lightning_modules.stylegan2 import StyleGAN2
from tests.conftest import HANG_GUARD_S, ROOT
from tests.test_gan_module import tiny_data, tiny_module, trainer

KILLED_WHILE_SAVING = """
import os, signal, sys, torch
from lightning_modules.checkpoint_io import atomic_torch_save, atomic_write
path = sys.argv[1]
atomic_torch_save({"version": 1, "weights": torch.ones(100_000)}, path)
def write_then_die(handle):
    torch.save({"version": 2, "weights": torch.zeros(100_000)}, handle)
    handle.flush()
    os.kill(os.getpid(), signal.SIGKILL)  # after the bytes, before the rename
atomic_write(path, write_then_die)
"""


def test_a_kill_while_saving_leaves_the_previous_checkpoint(tmp_path: Path):
    path = tmp_path / "last.ckpt"
    result = subprocess.run([sys.executable, "-c", KILLED_WHILE_SAVING, str(path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert result.returncode == -9, result.stderr
    verify_checkpoint_file(path)
    assert torch.load(path, weights_only=True)["version"] == 1
    leftovers = [p.name for p in tmp_path.iterdir() if p != path]
    assert len(leftovers) == 1 and leftovers[0].startswith(".last.ckpt.")  # hidden, ignored


def damaged_copies(tmp_path: Path) -> dict[str, Path]:
    good = tmp_path / "good.ckpt"
    atomic_torch_save({"weights": torch.randn(256, 256), "step": 3}, good)
    data = bytearray(good.read_bytes())
    copies = {"truncated": data[:len(data) // 2], "empty": b""}
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF  # inside the tensor's bytes: torch.load would accept it
    copies["corrupted"] = flipped
    paths = {}
    for name, content in copies.items():
        paths[name] = tmp_path / f"{name}.ckpt"
        paths[name].write_bytes(bytes(content))
    return paths


@pytest.mark.parametrize("damage", ["truncated", "corrupted", "empty"])
def test_damaged_checkpoint_is_named_not_a_traceback(tmp_path: Path, damage: str):
    path = damaged_copies(tmp_path)[damage]
    with pytest.raises(CheckpointError, match=rf"{path}: checkpoint file is {damage}"):
        AtomicCheckpointIO().load_checkpoint(path)
    with pytest.raises(CheckpointError, match=str(path)):  # resuming fails before training
        trainer(tmp_path, max_steps=1, plugins=[AtomicCheckpointIO()]).fit(
            tiny_module(), tiny_data(), ckpt_path=path)


class FullDisk:
    """``torch.save`` that writes half, then fails as a full disk does, from call ``fail_at``."""

    def __init__(self, fail_at: int) -> None:
        self.calls, self.fail_at, self.save = 0, fail_at, torch.save

    def __call__(self, obj, handle, *args, **kwargs) -> None:
        self.calls += 1
        if self.calls < self.fail_at:
            return self.save(obj, handle, *args, **kwargs)
        handle.write(b"PK\x03\x04 half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")


def test_full_disk_while_saving_stops_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setattr(torch, "save", FullDisk(fail_at=2))
    checkpoint = KimgCheckpoint(every_kimg=0.008, dirpath=str(tmp_path / "ckpt"))  # 2 its
    run = trainer(tmp_path, callbacks=[checkpoint], enable_checkpointing=True,
                  plugins=[AtomicCheckpointIO()])
    with pytest.raises(CheckpointError, match="no space left on the device.*previous file"):
        run.fit(tiny_module(max_kimg=0.1), tiny_data())
    monkeypatch.undo()
    assert [p.name for p in (tmp_path / "ckpt").iterdir()] == ["last.ckpt"]  # no partial file
    saved = AtomicCheckpointIO().load_checkpoint(tmp_path / "ckpt" / "last.ckpt")
    assert saved["corrlab"]["iteration"] == 2


@pytest.fixture(scope="module")
def stylegan2_checkpoint(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("stylegan2")
    run = trainer(folder, max_steps=2, plugins=[AtomicCheckpointIO()])
    run.fit(tiny_module(), tiny_data())
    run.save_checkpoint(folder / "tiny.ckpt")
    return folder / "tiny.ckpt"


def test_checkpoint_of_another_model_class_is_refused(stylegan2_checkpoint: Path, tmp_path):
    from lightning_modules.swapping_autoencoder import SwappingAutoencoder
    from tests.test_swapping_autoencoder import TINY as SWAPAE

    with pytest.raises(CheckpointError, match=rf"{stylegan2_checkpoint}: checkpoint was written "
                                              r"by .*StyleGAN2, not .*SwappingAutoencoder"):
        trainer(tmp_path, max_steps=1).fit(SwappingAutoencoder(**SWAPAE),
                                           tiny_data(crop_size=32),
                                           ckpt_path=stylegan2_checkpoint)


def test_checkpoint_with_other_shapes_names_the_first_mismatched_tensor(stylegan2_checkpoint):
    with pytest.raises(CheckpointError, match=r"tensor 'generator\.mapping\.\S+' has shape "
                                              r"\(\d+, 16\) in the checkpoint but \(\d+, 32\)"):
        StyleGAN2.load_from_checkpoint(stylegan2_checkpoint, style_dim=32)


def test_external_checkpoint_loads_weights_only_unless_trusted(tmp_path: Path):
    path = tmp_path / "external.pt"
    torch.save({"g": {"weight": torch.ones(2)}, "saved_on": datetime.date(2021, 6, 1)}, path)
    with pytest.raises(CheckpointError, match="set `trust_checkpoint: true`"):
        safe_load(path)
    assert safe_load(path, trust=True)["saved_on"] == datetime.date(2021, 6, 1)
    legacy = tmp_path / "legacy.pt"  # the pre-1.6 format of many published checkpoints
    torch.save({"g": {"weight": torch.ones(2)}}, legacy, _use_new_zipfile_serialization=False)
    assert torch.equal(safe_load(legacy)["g"]["weight"], torch.ones(2))
    damaged = damaged_copies(tmp_path)["corrupted"]
    with pytest.raises(CheckpointError, match="corrupted"):
        safe_load(damaged)

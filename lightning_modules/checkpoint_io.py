"""Checkpoint files that are never half-written and never read back silently damaged.

Writes go to a hidden temporary file beside the target, are flushed and fsynced, then renamed
over the target (and the folder entry fsynced): a kill, a crash or a full disk during saving
leaves the previous checkpoint intact. PyTorch checkpoints are zip archives with a CRC-32 per
record, which ``torch.load`` does not check; :func:`verify_checkpoint_file` does, so a truncated
or bit-flipped file gives a clear :class:`CheckpointError` instead of a pickle traceback or,
worse, wrong weights.

:class:`AtomicCheckpointIO` is the Lightning plugin the ``corrlab`` command installs.
"""

from __future__ import annotations

import errno
import os
import random
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
import torch.distributed as dist
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from lightning_modules.distributed import rank_and_world
from lightning_modules.errors import CorrlabError


class CheckpointError(CorrlabError, ValueError):
    """A checkpoint that cannot be read or used, with a message naming the file and problem."""


def partial_path(path: Path) -> Path:
    """The temporary file a write of ``path`` goes through (hidden, per process)."""
    return path.with_name(f".{path.name}.{os.getpid()}.partial")


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(handle)`` on a temporary file, fsync it, and rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(path)
    try:
        with open(partial, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
    except BaseException as error:
        partial.unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise CheckpointError(
                f"{path}: no space left on the device while writing it; the previous file at "
                "this path (if any) is intact. Free disk space and resume from it.") from error
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)  # the rename itself survives a power loss
    finally:
        os.close(folder)


def atomic_torch_save(obj: object, path: str | Path) -> None:
    """``torch.save`` through :func:`atomic_write`."""
    atomic_write(path, lambda handle: torch.save(obj, handle))


def verify_checkpoint_file(path: str | Path, legacy_ok: bool = False) -> None:
    """Raise :class:`CheckpointError` unless ``path`` is a complete zip archive whose records
    all match their CRC-32 (what every ``torch.save`` since PyTorch 1.6 writes).
    ``legacy_ok``: accept files in the pre-1.6 (non-zip) format unchecked (external
    checkpoints)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file does not exist.")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: checkpoint file is empty (0 bytes).")
    if legacy_ok and not zipfile.is_zipfile(path):
        with open(path, "rb") as handle:
            if handle.read(2) == b"\x80\x02":  # a pickle: torch.save's legacy format
                return
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError) as error:
        raise CheckpointError(
            f"{path}: checkpoint file is truncated or not a PyTorch checkpoint ({error}). "
            "Copy it again, or resume from an earlier checkpoint.") from error
    if damaged is not None:
        raise CheckpointError(
            f"{path}: checkpoint file is corrupted (record '{damaged}' fails its CRC check). "
            "Copy it again, or resume from an earlier checkpoint.")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning ``CheckpointIO``: atomic saves, verified loads (local files)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path,
                        storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO does not take storage_options.")
        atomic_torch_save(checkpoint, path)

    def load_checkpoint(self, path: str | Path, map_location: Any = "cpu",
                        weights_only: bool | None = None) -> dict[str, Any]:
        verify_checkpoint_file(path)
        try:
            return torch.load(path, map_location=map_location, weights_only=weights_only)
        except Exception as error:
            raise CheckpointError(f"{path}: cannot read checkpoint ({type(error).__name__}: "
                                  f"{str(error).splitlines()[0]}).") from error


# --- what a GAN module adds to its checkpoints ------------------------------------------------

def class_path(obj: object) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def rng_state() -> dict[str, Any]:
    """This process's Python, NumPy and torch (CPU and CUDA) generator states, in types that
    load with ``weights_only=True``."""
    name, keys, position, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(),
             "numpy": (name, torch.from_numpy(keys.astype(np.int64)), position, has_gauss,
                       cached),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    name, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def gather_rng_states() -> list[dict[str, Any]]:
    """Every rank's :func:`rng_state`, indexed by rank (a collective under DDP: checkpoints are
    assembled on every rank, then rank 0 writes)."""
    world = rank_and_world()[1]
    if world == 1:
        return [rng_state()]
    states: list[Any] = [None] * world
    dist.all_gather_object(states, rng_state())
    return states


def check_compatible(checkpoint: dict[str, Any], module: torch.nn.Module,
                     path: str | Path | None = None) -> None:
    """Raise :class:`CheckpointError` when ``checkpoint`` was written by another model class or
    holds tensors of other names or shapes than ``module``; the message names the first."""
    where = f"{path}: " if path else ""
    written_by = checkpoint.get("corrlab", {}).get("model_class")
    if written_by is not None and written_by != class_path(module):
        raise CheckpointError(f"{where}checkpoint was written by {written_by}, not "
                              f"{class_path(module)}; pick the matching model class or config.")
    saved = checkpoint.get("state_dict")
    if saved is None:
        return
    expected = module.state_dict()
    for name, tensor in saved.items():
        if name not in expected:
            raise CheckpointError(f"{where}checkpoint tensor '{name}' does not exist in "
                                  f"{class_path(module)} (another model or other options?).")
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise CheckpointError(
                f"{where}tensor '{name}' has shape {tuple(tensor.shape)} in the checkpoint but "
                f"{tuple(expected[name].shape)} in this model; the model options differ from "
                "the ones the checkpoint was trained with.")
    missing = [name for name in expected if name not in saved]
    if missing:
        raise CheckpointError(f"{where}checkpoint lacks tensor '{missing[0]}' of "
                              f"{class_path(module)} ({len(missing)} missing in all).")

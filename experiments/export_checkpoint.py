"""Write a slim copy of a corrlab training checkpoint to ship or share: the weights (trained,
EMA), hyper-parameters and progress counters, without optimizer states, loop state or RNG
states. It loads like the full one for sampling, ``corrlab validate`` / ``evaluate`` and as a
few-shot source (an adaptation starts its own Adam, as after loading a rosinality ``g_ema``); a
run resumed from it starts fresh optimizers. ``--half`` stores the float32 weights as float16
(half the size; loading casts them back to the model's float32, so outputs move by float16
rounding: score the exported file, not the run's).

    python -m experiments.export_checkpoint RUN_CKPT OUT_CKPT [--half]

``make cdc-source`` uses it for ``experiments/few_shot_cdc/assets/source_shapes32.ckpt``,
``make demo-model`` for ``experiments/swapping_autoencoder/assets/demo_trained.ckpt`` and
``make cocosnet-model`` (``--half``) for ``experiments/cocosnet/assets/leaderboard_seed2.ckpt``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from lightning_modules.checkpoint_io import atomic_torch_save
from lightning_modules.checkpoints import safe_load

KEPT = ("state_dict", "hyper_parameters", "corrlab", "pytorch-lightning_version", "epoch",
        "global_step")


def export_checkpoint(checkpoint: str | Path, out: str | Path, half: bool = False) -> dict:
    """The slim checkpoint written to ``out`` (also returned); ``half``: float32 weights stored
    as float16 (other dtypes, such as counters, kept)."""
    full = safe_load(Path(checkpoint), trust=True)  # our own run's file
    missing = {"state_dict", "hyper_parameters"} - set(full)
    if missing:
        raise ValueError(f"{checkpoint}: not a corrlab training checkpoint (no {sorted(missing)})")
    slim = {key: full[key] for key in KEPT if key in full}
    slim["corrlab"] = {key: value for key, value in full.get("corrlab", {}).items()
                       if key != "rng_states"}
    if half:
        slim["state_dict"] = {name: tensor.half() if tensor.dtype == torch.float32 else tensor
                              for name, tensor in slim["state_dict"].items()}
    atomic_torch_save(slim, Path(out))
    return slim


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("out")
    parser.add_argument("--half", action="store_true", help="store float32 weights as float16")
    args = parser.parse_args(argv)
    slim = export_checkpoint(args.checkpoint, args.out, args.half)
    print(f"{args.out}: {slim['corrlab'].get('images_seen', 0) / 1000:.1f} kimg, "
          f"{Path(args.out).stat().st_size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()

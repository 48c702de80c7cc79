"""Write a slim copy of a trained source StyleGAN2 checkpoint for few-shot adaptation: the
weights (trained, EMA), hyper-parameters and progress counters, without optimizer states, loop
state or RNG states (an adaptation starts its own Adam, as after loading a rosinality ``g_ema``).

    python -m experiments.few_shot_cdc.export_source RUN_CKPT OUT_CKPT

``make cdc-source`` uses it to refresh ``experiments/few_shot_cdc/assets/source_shapes32.ckpt``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lightning_modules.checkpoint_io import atomic_torch_save
from lightning_modules.checkpoints import safe_load

KEPT = ("state_dict", "hyper_parameters", "corrlab", "pytorch-lightning_version", "epoch",
        "global_step")


def export_source(checkpoint: str | Path, out: str | Path) -> dict:
    """The slim checkpoint written to ``out`` (also returned)."""
    full = safe_load(Path(checkpoint), trust=True)  # our own run's file
    missing = {"state_dict", "hyper_parameters"} - set(full)
    if missing:
        raise ValueError(f"{checkpoint}: not a corrlab training checkpoint (no {sorted(missing)})")
    slim = {key: full[key] for key in KEPT if key in full}
    slim["corrlab"] = {key: value for key, value in full.get("corrlab", {}).items()
                       if key != "rng_states"}
    atomic_torch_save(slim, Path(out))
    return slim


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("out")
    args = parser.parse_args(argv)
    slim = export_source(args.checkpoint, args.out)
    print(f"{args.out}: {slim['corrlab'].get('images_seen', 0) / 1000:.1f} kimg, "
          f"{Path(args.out).stat().st_size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()

"""Evaluate FID of a tiny autoencoder with ``trainer.validate`` on 1 or 2 gloo processes and
save every rank's record: ``python -m tests.ddp_fid OUT_PREFIX DEVICES``.

Used by test_fid.py: with 2 processes each extracts half of the real and generated images, and
the gathered values must equal the 1-process ones. TORCH_HOME and CORRLAB_CACHE come from the
environment (random weights, a fresh cache per run).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lightning as L

from callbacks.fid import FID
from datamodules import UnpairedDataModule
from tests.tiny_module import TinyAutoencoder


def main(prefix: str, devices: int) -> None:
    L.seed_everything(0)
    module = TinyAutoencoder()
    data = UnpairedDataModule(batch_size=4, crop_size=32, num_workers=0, synthetic_images=14,
                              num_val_images=6)
    fid = FID(num_images=12, batch_size=4, num_workers=0, kid_subset_size=6, kid_subsets=4,
              progress=False)
    trainer = L.Trainer(accelerator="cpu", devices=devices,
                        strategy="ddp" if devices > 1 else "auto", logger=False,
                        default_root_dir=str(Path(prefix).parent),  # metrics.json goes there
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[fid])
    trainer.validate(module, data)
    with open(f"{prefix}.rank{trainer.global_rank}.json", "w") as handle:
        json.dump(fid.last, handle)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))

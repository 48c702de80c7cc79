"""Train a tiny StyleGAN2 for a few iterations and save every rank's parameters.

    python -m tests.ddp_run OUT_PREFIX DEVICES PER_RANK_BATCH ITERATIONS

Used by test_gan_module.py to compare 2 gloo processes (strategy corrlab_ddp) with 1 process
and the doubled batch. The datamodule deals one shuffled order out so that rank r of N sees
positions r, r + N, ... of the single process's batch, and GANModule.draw deals random values
the same way. Flips are off (augmentation is per rank) and so is minibatch stddev (its groups
depend on the per-rank batch).
"""

from __future__ import annotations

import sys

import lightning as L
import torch

from datamodules import UnpairedDataModule
from lightning_modules.stylegan2 import StyleGAN2


def main(prefix: str, devices: int, batch: int, iterations: int) -> None:
    L.seed_everything(0)
    module = StyleGAN2(size=16, style_dim=16, n_mlp=2, channels={4: 16, 8: 16, 16: 8},
                       mbstd_group_size=0, d_reg_every=2, g_reg_every=2, pl_batch_shrink=1,
                       ema_half_life_kimg=0.05, seed=123)
    data = UnpairedDataModule(batch_size=batch, crop_size=16, num_workers=0, flip=False,
                              synthetic_images=64)
    trainer = L.Trainer(accelerator="cpu", devices=devices,
                        strategy="corrlab_ddp" if devices > 1 else "auto",
                        max_epochs=-1, limit_train_batches=iterations, max_steps=-1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0,
                        limit_val_batches=0)
    module.max_kimg = iterations * batch * devices / 1000
    trainer.fit(module, data)
    state = {k: v.detach().clone() for k, v in module.state_dict().items()}
    torch.save({"state": state, "images_seen": module.images_seen,
                "iteration": module.iteration}, f"{prefix}.rank{trainer.global_rank}.pt")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))

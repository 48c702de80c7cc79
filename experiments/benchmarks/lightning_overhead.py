"""What Lightning's Trainer costs per GAN iteration, against a bare loop.

    python experiments/benchmarks/lightning_overhead.py [--iterations 60] [--warmup 10]
        [--config experiments/swapping_autoencoder/demo.yaml] [--markdown FILE]

Both contenders train the same module (the config's model, fresh, seed 0) on the same batches
of the config's datamodule (worker processes off) in this process: once through
``lightning.Trainer`` (no logger, checkpointing or progress bar: the loop, hooks and
``self.log`` remain), once through a bare ``for batch in loader`` calling
``GANModule.iterate`` with ``GANModule.step_phase``, the functions ``training_step`` runs.
Iterations after ``--warmup`` are timed; the table prints seconds per iteration and the ratio.
"""

from __future__ import annotations

import argparse
import importlib
import time

import lightning as L
import torch
import yaml

from experiments.benchmarks.report import emit, environment, phase_runner


def instantiate(spec: dict, default_module: str):
    module, _, name = spec["class_path"].rpartition(".")
    cls = getattr(importlib.import_module(module or default_module), name)
    return cls(**spec.get("init_args", {}))


def build(config_path: str):
    """(module, datamodule) of a corrlab config, data worker processes off."""
    config = yaml.safe_load(open(config_path))
    data = {**config["data"], "init_args": {**config["data"].get("init_args", {}),
                                            "num_workers": 0}}
    return instantiate(config["model"], ""), instantiate(data, "datamodules")


class IterationClock(L.Callback):
    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.end, self.count = warmup, None, None, 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == self.warmup:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.end = time.perf_counter()
        self.count = batch_idx + 1 - self.warmup


def through_trainer(config: str, iterations: int, warmup: int) -> float:
    L.seed_everything(0, verbose=False)
    module, data = build(config)
    module.max_kimg = None
    clock = IterationClock(warmup)
    trainer = L.Trainer(accelerator="cpu", max_steps=-1, max_epochs=-1,
                        limit_train_batches=iterations + warmup, limit_val_batches=0,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[clock])
    trainer.fit_loop.max_epochs = 1
    trainer.fit(module, data)
    return (clock.end - clock.start) / clock.count


def bare_loop(config: str, iterations: int, warmup: int) -> float:
    L.seed_everything(0, verbose=False)
    module, data = build(config)
    data.setup("fit")
    run_phase = phase_runner(module)
    module.train()
    start = None
    for index, batch in enumerate(data.train_dataloader()):
        if index == warmup:
            start = time.perf_counter()
        if index == warmup + iterations:
            break
        module.iterate(batch, run_phase)
    return (time.perf_counter() - start) / iterations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="experiments/swapping_autoencoder/demo.yaml")
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--markdown", default=None)
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    bare = bare_loop(args.config, args.iterations, args.warmup)
    lightning = through_trainer(args.config, args.iterations, args.warmup)
    emit([f"Trainer vs bare loop, {args.config}, {args.iterations} timed iterations after "
          f"{args.warmup}; {environment()}", "",
          "| contender | s / iteration | vs bare loop |", "|---|---|---|",
          f"| bare loop (reference) | {bare:.4f} | 1.000 |",
          f"| lightning.Trainer | {lightning:.4f} | {lightning / bare:.3f} |"], args.markdown)


if __name__ == "__main__":
    main()

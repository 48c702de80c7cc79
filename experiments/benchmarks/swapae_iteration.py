"""Swapping Autoencoder training steps at the official LSUN-church architecture, on this machine.

    python experiments/benchmarks/swapae_iteration.py [--resolutions 64 128] [--batch 4]
        [--repeats 5] [--variants channels_last contiguous compiled] [--markdown FILE]

Variants: ``channels_last`` (the module's default), ``contiguous`` (``channels_last: false``)
and ``compiled`` (channels-last with ``compile_networks: true``; compiling happens in the first
calls, which are also the warm-up, and is reported apart). For each resolution and variant
(each pair in its own process, so peak RSS is its own) it times, after
one warm-up call, the median of ``--repeats`` calls of: the D step, the G step, the D step with
the lazy R1 phase, and a full iteration with R1 amortised (D + G + (D_R1 - D) / 16, the
official schedule). Steps are ``GANModule.step_phase``, the function training runs. Church
options: the official defaults (``patch_use_aggregation: false``); at 64 px the texture branch
down-samples once (``netE_num_downsampling_gl: 1``; the official unpadded stride-2 convs need
at least 8x8 there).

FLOPs are counted with ``torch.utils.flop_counter``'s per-op formulas over whole steps
(forward, backward, and R1's gradient of gradients, amortised like its time) and compared with
the best plain 3x3 ``conv2d`` (forward + backward, 512 channels) measured in the same process.
``FlopCounterMode`` itself cannot run inside ``autograd.grad`` (its module tracker fails), so a
bare dispatch mode applies the same formulas; on D and G steps the two counts are equal.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from experiments.benchmarks.report import emit, environment, median_seconds


def church_model(resolution: int, **options):
    from lightning_modules.swapping_autoencoder import SwappingAutoencoder

    return SwappingAutoencoder(crop_size=resolution, patch_use_aggregation=False,
                               netE_num_downsampling_gl=1 if resolution < 128 else 2, seed=0,
                               **options)


class FlopCount(TorchDispatchMode):
    """Sums ``torch.utils.flop_counter``'s formula of every op that has one."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.total += formula(*args, **kwargs, out_val=out)
        return out


def counted(step: Callable[[], object]) -> int:
    """FLOPs of one call (run eagerly: compiled code runs below the counter)."""
    with FlopCount() as counter, torch.compiler.set_stance("force_eager"):
        step()
    return counter.total


def conv_peak_gflops(repeats: int = 3) -> float:
    """Best GFLOP/s of a 512-channel 3x3 conv2d, forward + backward, batch 4, over two sizes
    and both memory layouts."""
    best = 0.0
    for size in (16, 32):
        for layout in (torch.contiguous_format, torch.channels_last):
            x = torch.randn(4, 512, size, size).contiguous(memory_format=layout)
            w = torch.randn(512, 512, 3, 3).contiguous(memory_format=layout)
            x.requires_grad_(), w.requires_grad_()
            step = lambda x=x, w=w: F.conv2d(x, w, padding=1).sum().backward()  # noqa: E731
            best = max(best, counted(step) / median_seconds(step, repeats) / 1e9)
    return best


def measure(resolution: int, batch: int, repeats: int, variant: str) -> dict:
    torch.manual_seed(0)
    module = church_model(resolution, channels_last=variant != "contiguous",
                          compile_networks=variant == "compiled")
    optimizers = dict(zip(module.optimizer_specs(), module.configure_optimizers(), strict=True))
    module.prepare_for_training()  # what on_fit_start does under the Trainer
    images = {"image": torch.rand(batch, 3, resolution, resolution) * 2 - 1}
    d_main, d_reg, g_main = module.phases()

    def run(*phases):
        for phase in phases:
            module.step_phase(phase, images, optimizers[phase.network])

    steps = {"D": lambda: run(d_main), "G": lambda: run(g_main),
             "D+R1": lambda: run(d_main, d_reg)}
    start = time.perf_counter()
    run(d_main, d_reg, g_main)  # first calls: where a compiled variant compiles
    first_calls = time.perf_counter() - start
    seconds = {name: median_seconds(step, repeats) for name, step in steps.items()}
    flops = {name: counted(step) for name, step in steps.items()}
    interval = module.hparams.R1_once_every
    iteration = seconds["D"] + seconds["G"] + (seconds["D+R1"] - seconds["D"]) / interval
    iteration_flops = flops["D"] + flops["G"] + (flops["D+R1"] - flops["D"]) / interval
    return {"resolution": resolution, "variant": variant, "batch": batch, "seconds": seconds,
            "first_calls": first_calls, "flops": flops,
            "iteration": iteration, "iteration_flops": iteration_flops,
            "conv_peak_gflops": conv_peak_gflops(),
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def table(results: list[dict]) -> list[str]:
    lines = ["| px | variant | first D+R1+G s | D step s | G step s | D+R1 s | "
             "iteration s (R1 amortised) | "
             "images/s | peak RSS GiB | TFLOP / iteration | GFLOP/s | conv2d peak GFLOP/s | "
             "of peak |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        s, rate = r["seconds"], r["iteration_flops"] / r["iteration"] / 1e9
        lines.append(
            f"| {r['resolution']} | {r['variant']} | {r['first_calls']:.1f} | {s['D']:.2f} | "
            f"{s['G']:.2f} | {s['D+R1']:.2f} | "
            f"{r['iteration']:.2f} | {2 * r['batch'] / r['iteration']:.2f} | "
            f"{r['peak_rss_gib']:.2f} | {r['iteration_flops'] / 1e12:.2f} | {rate:.0f} | "
            f"{r['conv_peak_gflops']:.0f} | {rate / r['conv_peak_gflops']:.1%} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--variants", nargs="+", default=["channels_last"],
                        choices=["channels_last", "contiguous", "compiled"])
    parser.add_argument("--markdown", default=None)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.resolutions[0], args.batch, args.repeats,
                                 args.variants[0])))
        return
    results = []
    for resolution in args.resolutions:
        for variant in args.variants:
            out = subprocess.run([sys.executable, __file__, "--child", "--resolutions",
                                  str(resolution), "--batch", str(args.batch), "--repeats",
                                  str(args.repeats), "--variants", variant],
                                 capture_output=True, text=True)
            if out.returncode:
                sys.exit(f"{resolution} px, {variant} failed:\n{out.stderr}")
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    # An iteration trains on two batches (D and G alternate on separate batches).
    emit([f"Swapping Autoencoder, church architecture, batch {args.batch}, median of "
          f"{args.repeats}; {environment()}", "", *table(results)], args.markdown)


if __name__ == "__main__":
    main()

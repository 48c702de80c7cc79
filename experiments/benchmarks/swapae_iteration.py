"""Swapping Autoencoder training steps at the official LSUN-church architecture, on this machine,
side by side with the official code when a checkout of it is given.

    python experiments/benchmarks/swapae_iteration.py [--resolutions 64 128] [--batch 4]
        [--repeats 5] [--variants channels_last contiguous compiled] [--official DIR]
        [--markdown FILE]

Contenders: corrlab's ``channels_last`` (``channels_last: true``), ``contiguous``
(``channels_last: false``) and ``compiled`` (channels-last with ``compile_networks: true``), and
with ``--official DIR`` the official code (taesungp/swapping-autoencoder-pytorch checked out at
DIR; see ``official_swapae.py``), built at the same options and checked to compute the same
functions as corrlab before it is timed. Steps are ``GANModule.step_phase``, the function
training runs, and the official optimizer's ``train_*_one_step``. Church options: the official
defaults (``patch_use_aggregation: false``); at 64 px the texture branch down-samples once
(``netE_num_downsampling_gl: 1``; the official unpadded stride-2 convs need at least 8x8 there).

For each resolution, two measurements:

- **each contender in its own process**, as training runs: its first D+R1 and G calls
  (reported; a compiled variant compiles there), then ``--repeats`` rounds of its D step, G step
  and D step with the lazy R1 phase; medians, and its own peak RSS. FLOPs are counted with
  ``torch.utils.flop_counter``'s per-op formulas over whole steps (forward, backward, and R1's
  gradient of gradients) against the best plain 3x3 ``conv2d`` (forward + backward, 512
  channels) measured in the same process. ``FlopCounterMode`` itself cannot run inside
  ``autograd.grad`` (its module tracker fails), so a bare dispatch mode applies the same
  formulas; on D and G steps the two counts are equal.
- **side by side in one process** (with more than one contender; ``--no-side-by-side`` skips
  it): the same rounds, each timing every contender's steps in turn, so the ratios to the
  official code come from one process and one allocator state. With the official contender,
  its weights are first copied into corrlab's module and the largest output differences
  printed.

A full iteration amortises R1 as the official schedule does: D + G + (D_R1 - D) / 16; an
iteration trains on two batches (D and G steps see separate batches).
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from experiments.benchmarks.report import emit, environment, median_seconds, phase_runner

STEPS = ("D", "G", "D+R1")


def church_model(resolution: int, **options):
    from lightning_modules.swapping_autoencoder import SwappingAutoencoder

    return SwappingAutoencoder(crop_size=resolution, patch_use_aggregation=False,
                               netE_num_downsampling_gl=1 if resolution < 128 else 2, seed=0,
                               **options)


class FlopCount(TorchDispatchMode):
    """Sums ``torch.utils.flop_counter``'s formula of every op that has one. Its formula for a
    grouped convolution's weight gradient ignores ``groups`` (it counts ``groups`` times the
    work); that part is divided by ``groups`` here, so a grouped and a plain convolution
    doing the same products count the same."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.total += formula(*args, **kwargs, out_val=out)
            if func._overloadpacket is torch.ops.aten.convolution_backward:
                groups, output_mask = args[9], args[10]
                if groups > 1 and output_mask[1]:
                    weight_part = formula(*args[:10], [False, True, False], out_val=out)
                    self.total -= weight_part - weight_part // groups
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


def contender_steps(name: str, resolution: int, batch: int, official: str | None
                    ) -> dict[str, Callable[[], None]]:
    """The D, G and D+R1 step functions of one contender on one fixed batch."""
    torch.manual_seed(0)
    images = torch.rand(batch, 3, resolution, resolution) * 2 - 1
    if name == "official":
        from experiments.benchmarks.official_swapae import OfficialContender

        with torch.device("meta"):  # only its options are needed
            hparams = dict(church_model(resolution).hparams)
        return OfficialContender(official, hparams).steps(images)
    module = church_model(resolution, channels_last=name != "contiguous",
                          compile_networks=name == "compiled")
    run_phase = phase_runner(module)
    batch_dict = {"image": images}
    d_main, d_reg, g_main = module.phases()

    def run(*phases):
        for phase in phases:
            run_phase(phase, batch_dict)

    return {"D": lambda: run(d_main), "G": lambda: run(g_main),
            "D+R1": lambda: run(d_main, d_reg)}


def amortised(per_step: dict[str, float], interval: int = 16) -> float:
    """An iteration's share: D + G + (D_R1 - D) / interval (R1 every ``interval`` D steps)."""
    return per_step["D"] + per_step["G"] + (per_step["D+R1"] - per_step["D"]) / interval


def timed_rounds(contenders: dict[str, dict[str, Callable[[], None]]], repeats: int
                 ) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """(seconds of each contender's first D+R1 and G calls, where a compiled variant compiles;
    median seconds of each step over ``repeats`` rounds, each round timing every contender's
    steps in turn)."""
    first_calls = {}
    for name, steps in contenders.items():
        start = time.perf_counter()
        steps["D+R1"](), steps["G"]()
        first_calls[name] = time.perf_counter() - start
    times = {name: {step: [] for step in STEPS} for name in contenders}
    for _ in range(repeats):
        for name, steps in contenders.items():
            for step in STEPS:
                start = time.perf_counter()
                steps[step]()
                times[name][step].append(time.perf_counter() - start)
    return first_calls, {name: {step: statistics.median(values)
                                for step, values in per_step.items()}
                         for name, per_step in times.items()}


def alone(name: str, resolution: int, batch: int, repeats: int, official: str | None) -> dict:
    """One contender in this process: times, peak RSS (its own), FLOPs, conv2d peak."""
    steps = contender_steps(name, resolution, batch, official)
    first_calls, seconds = timed_rounds({name: steps}, repeats)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    flops = {step: counted(call) for step, call in steps.items()}
    return {"first_calls": first_calls[name], "seconds": seconds[name], "peak_rss_gib": peak_rss,
            "flops": flops, "conv_peak_gflops": conv_peak_gflops()}


def side_by_side(names: list[str], resolution: int, batch: int, repeats: int,
                 official: str | None) -> dict:
    """All contenders in this process, timed in alternating rounds; with the official
    contender, first the largest output differences to corrlab at equal weights."""
    result = {}
    if "official" in names:
        from experiments.benchmarks.official_swapae import OfficialContender, largest_differences

        module = church_model(resolution, channels_last=False)
        contender = OfficialContender(official, dict(module.hparams))
        torch.manual_seed(1)
        images = torch.rand(batch, 3, resolution, resolution) * 2 - 1
        result["differences"] = largest_differences(contender.network, module, images)
        del module, contender
        gc.collect()
    contenders = {name: contender_steps(name, resolution, batch, official) for name in names}
    _, result["seconds"] = timed_rounds(contenders, repeats)
    result["conv_peak_gflops"] = conv_peak_gflops()
    return result


def rates(seconds: dict[str, float], flops: dict[str, float], conv_peak: float) -> str:
    rate = amortised(flops) / amortised(seconds) / 1e9
    return f"{rate:.0f} | {conv_peak:.0f} | {rate / conv_peak:.1%}"


def tables(resolution: int, batch: int, own: dict, shared: dict | None) -> tuple[list, list]:
    """Rows of the own-process table and of the side-by-side table."""
    official = own.get("official")
    own_rows, shared_rows = [], []
    for name, m in own.items():
        s, iteration = m["seconds"], amortised(m["seconds"])
        ratios = (f"{amortised(official['seconds']) / iteration:.2f}x | "
                  f"{m['peak_rss_gib'] / official['peak_rss_gib']:.2f}x") if official else "- | -"
        own_rows.append(
            f"| {resolution} | {name} | {m['first_calls']:.1f} | {s['D']:.2f} | {s['G']:.2f} | "
            f"{s['D+R1']:.2f} | {iteration:.2f} | {2 * batch / iteration:.2f} | "
            f"{m['peak_rss_gib']:.2f} | {ratios} | {amortised(m['flops']) / 1e12:.2f} | "
            f"{rates(s, m['flops'], m['conv_peak_gflops'])} |")
        if shared:
            s, reference = shared["seconds"][name], shared["seconds"].get("official")
            ratio = f"{amortised(reference) / amortised(s):.2f}x" if reference else "-"
            shared_rows.append(
                f"| {resolution} | {name} | {s['D']:.2f} | {s['G']:.2f} | {s['D+R1']:.2f} | "
                f"{amortised(s):.2f} | {ratio} | "
                f"{rates(s, m['flops'], shared['conv_peak_gflops'])} |")
    return own_rows, shared_rows


def child(*arguments: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *arguments],
                         capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"{' '.join(arguments)} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--variants", nargs="+", default=["channels_last"],
                        choices=["channels_last", "contiguous", "compiled"])
    parser.add_argument("--official", metavar="DIR", default=None,
                        help="a checkout of taesungp/swapping-autoencoder-pytorch: time it too")
    parser.add_argument("--side-by-side", action=argparse.BooleanOptionalAction, default=True,
                        help="also time all contenders in one process (default: on when there "
                             "is more than one)")
    parser.add_argument("--markdown", default=None)
    parser.add_argument("--child", choices=["alone", "side_by_side"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    names = (["official"] if args.official else []) + args.variants
    if args.child:
        run = alone if args.child == "alone" else side_by_side
        print(json.dumps(run(names[0] if args.child == "alone" else names, args.resolutions[0],
                             args.batch, args.repeats, args.official)))
        return
    common = ["--batch", str(args.batch), "--repeats", str(args.repeats)]
    official = ["--official", args.official] if args.official else []
    own_lines = ["| px | contender | first D+R1+G s | D step s | G step s | D+R1 s | "
                 "iteration s (R1 amortised) | images/s | peak RSS GiB | speed-up vs official "
                 "| peak RSS vs official | TFLOP / iteration | GFLOP/s | conv2d peak GFLOP/s | "
                 "of peak |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    shared_lines = ["| px | contender | D step s | G step s | D+R1 s | iteration s | "
                    "speed-up vs official | GFLOP/s | conv2d peak GFLOP/s | of peak |",
                    "|---|---|---|---|---|---|---|---|---|---|"]
    notes = []
    for resolution in args.resolutions:
        px = ["--resolutions", str(resolution)]
        own = {}
        for name in names:
            only = (official + ["--variants", args.variants[0]] if name == "official"
                    else ["--variants", name])
            own[name] = child("alone", *px, *common, *only)
        shared = (child("side_by_side", *px, *common, *official, "--variants", *args.variants)
                  if args.side_by_side and len(names) > 1 else None)
        own_rows, shared_rows = tables(resolution, args.batch, own, shared)
        own_lines += own_rows
        shared_lines += shared_rows
        if shared and "differences" in shared:
            worst = ", ".join(f"{k} {v:.1e}" for k, v in shared["differences"].items())
            notes.append(f"{resolution} px: official weights copied into corrlab; largest "
                         f"absolute output differences: {worst}")
    lines = [f"Swapping Autoencoder, church architecture, batch {args.batch}, median of "
             f"{args.repeats}; {environment()}", "",
             "Each contender in its own process (peak RSS is its own):", "", *own_lines]
    if len(shared_lines) > 2:
        lines += ["", "Side by side in one process (each round times every contender in turn; "
                  "FLOPs from the table above):", "", *shared_lines]
    emit(lines + ([""] + notes if notes else []), args.markdown)


if __name__ == "__main__":
    main()

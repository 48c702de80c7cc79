"""ModulatedConv2d and StyleGAN2 generator speed on this machine, forward + backward.

    python experiments/benchmarks/modconv.py [--size 256] [--batch 4] [--repeats 3]

Each row prints the median time, the model FLOPs and the achieved GFLOP/s as a fraction of a
plain ``conv2d`` of the same shape (batch, channels, resolution, 3x3) measured in the same
process: the modulated conv's extra cost is scaling its input and output and the demodulation.

Model FLOPs are ``3 x`` the forward FLOPs counted by ``torch.utils.flop_counter`` (backward
computes input and weight gradients, each as costly as the forward). The counter's own backward
count is not used: it ignores ``groups`` for grouped convolutions and reports ``groups`` times
too much (checked here: 5x instead of 2x the forward for 4 groups; the modulated conv was a
grouped convolution then).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from experiments.benchmarks.report import emit, environment, median_seconds
from lightning_modules.layers.modulation import ModulatedConv2d
from lightning_modules.layers.stylegan2 import Generator


def measure(step: Callable[[], None], forward: Callable[[], object], repeats: int
            ) -> tuple[float, int]:
    """(median seconds of ``step`` after one warm-up call, 3 x FLOPs of ``forward``)."""
    with FlopCounterMode(display=False) as counter:
        forward()
    return median_seconds(step, repeats), 3 * counter.get_total_flops()


def conv_pair(batch: int, channels: int, resolution: int, repeats: int) -> list[tuple]:
    x = torch.randn(batch, channels, resolution, resolution, requires_grad=True)
    weight = torch.randn(channels, channels, 3, 3, requires_grad=True)
    style = torch.randn(batch, 512)
    layer = ModulatedConv2d(channels, channels, 3, 512)

    def plain() -> torch.Tensor:
        return F.conv2d(x, weight, padding=1)

    def modulated() -> torch.Tensor:
        return layer(x, style)

    shape = f"{batch}x{channels}x{resolution}x{resolution}"
    return [(f"conv2d {shape} (reference)",) +
            measure(lambda: plain().square().mean().backward(), plain, repeats),
            (f"ModulatedConv2d {shape}",) +
            measure(lambda: modulated().square().mean().backward(), modulated, repeats)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--markdown", default=None)
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = conv_pair(args.batch, 512, 32, args.repeats) + conv_pair(args.batch, 256, 64,
                                                                     args.repeats)
    reference_gflops = {row[0].split(" ")[1]: row[2] / row[1] / 1e9 for row in rows
                        if row[0].startswith("conv2d")}
    generator = Generator(args.size)
    z = torch.randn(args.batch, 512)

    rows.append((f"Generator {args.size}px, batch {args.batch}",) +
                measure(lambda: generator(z).square().mean().backward(), lambda: generator(z),
                        args.repeats))
    best_conv = max(reference_gflops.values())
    lines = ["# ModulatedConv2d / generator forward+backward", "", environment(), "",
             "| what | s | GFLOP | GFLOP/s | vs plain conv2d |", "|---|---:|---:|---:|---:|"]
    for name, seconds, flops in rows:
        gflops = flops / seconds / 1e9
        shape = name.split(" ")[1]
        reference = reference_gflops.get(shape, best_conv)
        lines.append(f"| {name} | {seconds:.3f} | {flops / 1e9:.1f} | {gflops:.1f} | "
                     f"{gflops / reference:.2f} |")
    emit(lines, args.markdown)


if __name__ == "__main__":
    main()

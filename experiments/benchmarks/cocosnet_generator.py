"""CoCosNet's generator: SPADE trunks over the classes present against trunks over every class.

    python experiments/benchmarks/cocosnet_generator.py [--size 256] [--classes 11,117]
        [--repeats 5] [--markdown OUT.md]

The ADE20k generator (ngf 64, 151 classes, attention) with one set of weights, twice: with
``constant_from=3`` (corrlab's default: the SPADE trunks convolve only the label channels
present in the batch) and with ``constant_from=None`` (every channel, the official
computation). One forward and backward pass each, batch 1, on label maps with each ``--classes``
count of random classes (ADE20k images average 10.5 classes, Zhou et al. 2019; 117 is what the
iteration benchmark's default random maps hold), alternating the two in one process; median
of ``--repeats`` (train mode). Outputs and gradients are compared first, in float64 at 64 px.
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
import torch.nn.functional as F

import lightning_modules.numerics  # noqa: F401  (first: flushes subnormals as its env says)
from experiments.benchmarks.report import emit, environment
from lightning_modules.cocosnet.networks import TranslationGenerator
from lightning_modules.layers.modulation import drop_zero_constant_channels

LABELS = 151


def condition(size: int, classes: int, seed: int = 0) -> torch.Tensor:
    """``[warped exemplar, one-hot label map]`` with regions of ``classes`` random classes."""
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(LABELS, generator=generator)[:classes]
    coarse = torch.randn(1, classes, 16, 16, generator=generator)
    labels = chosen[F.interpolate(coarse, size=(size, size), mode="bilinear").argmax(1)]
    one_hot = F.one_hot(labels, LABELS).permute(0, 3, 1, 2).float()
    return torch.cat([torch.rand(1, 3, size, size, generator=generator) * 2 - 1, one_hot], 1)


def forward_backward(network: TranslationGenerator, inputs: torch.Tensor) -> list[torch.Tensor]:
    network.zero_grad(set_to_none=True)
    output = network(inputs)
    output.square().mean().backward()
    return [output.detach()] + [p.grad for p in network.parameters()]


def largest_difference(ours: list[torch.Tensor], full: list[torch.Tensor]) -> float:
    return max(float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))
               for a, b in zip(ours, full, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--classes", default="11,117")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--markdown")
    args = parser.parse_args()
    torch.manual_seed(0)
    network = TranslationGenerator(3 + LABELS, ngf=64)
    lines = [f"CoCosNet generator forward + backward, ADE20k architecture, {args.size} px, "
             f"batch 1; {environment()}", "",
             "| classes present | every class (official) | classes present (corrlab) | "
             "speed-up | largest relative difference (float64, 64 px) |",
             "|---:|---:|---:|---:|---:|"]
    for classes in (int(c) for c in args.classes.split(",")):
        inputs = condition(args.size, classes)
        present = len(drop_zero_constant_channels(inputs, 3)[1]) - 3
        results, times = {}, {None: [], 3: []}
        # the comparison: float64 (float32 rounding, amplified ~1000x through seven blocks of
        # a randomly initialised network, would hide what is compared), 64 px, eval mode (the
        # power iteration would change sigma between the two calls)
        reference = copy.deepcopy(network).double().eval()
        small = condition(64, classes).double()
        for constant_from in (None, 3):
            reference.constant_from = constant_from
            results[constant_from] = forward_backward(reference, small)
        difference = largest_difference(results[3], results[None])
        for constant_from in (None, 3):  # warm-up
            network.constant_from = constant_from
            forward_backward(network, inputs)
        for _ in range(args.repeats):
            for constant_from in (None, 3):
                network.constant_from = constant_from
                start = time.perf_counter()
                forward_backward(network, inputs)
                times[constant_from].append(time.perf_counter() - start)
        full, ours = (sorted(times[key])[len(times[key]) // 2] for key in (None, 3))
        lines.append(f"| {present} | {full:.2f} s | {ours:.2f} s | {full / ours:.2f}x | "
                     f"{difference:.1e} |")
    emit(lines, args.markdown)


if __name__ == "__main__":
    main()

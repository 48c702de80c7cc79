"""CoCosNet: peak memory and time of one training iteration with the dense correspondence (the
official computation, an ``N x N`` matrix held for backward) against the memory-efficient ones
(``sdpa``: ``F.scaled_dot_product_attention``; ``chunked``: checkpointed blocks of rows), each
optionally with ``+checkpoint`` (``checkpoint_activations: true``: the correspondence's and the
generator's blocks recompute their activations in the backward pass).

    python experiments/benchmarks/cocosnet_memory.py [--size 256] [--batch 1]
        [--strides 4,2] [--memories dense,sdpa,chunked,dense+checkpoint] [--ngf 64]
        [--repeats 1] [--markdown OUT.md]

Each contender is a fresh process (its RSS high-water mark is one peak memory; the other is
the peak live tensor memory of a profiled iteration, ``report.peak_tensor_gib``) holding the
ADE20k architecture (151 semantic channels, ngf / ndf 64, SPADE hidden 128, attention) at
``--size`` px; an iteration is the G step (correspondence, generator, every official loss term
with the Caffe VGG-19) and the D step, each with its Adam update. ``warp_stride 2`` puts the
correspondence at 1/2 resolution: ``(size / 2)^2`` positions (16 384 at 256 px, what CoCosNet v2
needed PatchMatch for). Outputs of the memory-efficient contenders are compared with the dense
one before timing.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

import torch
import torch.nn.functional as F

from experiments.benchmarks.report import (
    emit,
    environment,
    median_seconds,
    peak_tensor_gib,
    phase_runner,
)

LABELS = 150


def model(memory: str, stride: int, ngf: int):
    """The ADE20k architecture; ``memory`` is a warp memory, with ``+checkpoint`` for
    checkpointed activations."""
    from lightning_modules.cocosnet import CoCosNet

    warp_memory, _, checkpoint = memory.partition("+")
    if checkpoint not in ("", "checkpoint"):
        raise ValueError(f"contender '{memory}': the only suffix is '+checkpoint'")
    torch.manual_seed(0)
    return CoCosNet(label_nc=LABELS, contain_dontcare_label=True, ngf=ngf, ndf=ngf,
                    warp_stride=stride, warp_memory=warp_memory,
                    checkpoint_activations=bool(checkpoint), max_kimg=1)


def batch_of(size: int, batch: int) -> dict:
    generator = torch.Generator().manual_seed(1)
    coarse = torch.randn(batch, LABELS + 1, 8, 8, generator=generator)
    label = F.interpolate(coarse, size=(size, size), mode="bilinear").argmax(1)
    exemplar_label = label.flip(-1)
    return {"label": label, "label_onehot": F.one_hot(label, LABELS + 1).permute(0, 3, 1, 2)
            .float(), "exemplar_label": exemplar_label,
            "target": torch.rand(batch, 3, size, size, generator=generator) * 2 - 1,
            "exemplar": torch.rand(batch, 3, size, size, generator=generator) * 2 - 1,
            "exemplar_is_self": torch.ones(batch, dtype=torch.bool)}


def training_iteration(module, data: dict):
    """One G step and one D step of ``module`` on ``data`` as corrlab trains
    (:func:`~experiments.benchmarks.report.phase_runner`: only that phase's network takes
    gradients; fused Adam with the module's TTUR settings)."""
    run_phase, phases = phase_runner(module), module.phases()

    def iteration():
        for phase in phases:
            run_phase(phase, data)

    return iteration


def contender(memory: str, stride: int, size: int, batch: int, ngf: int, repeats: int) -> dict:
    iteration = training_iteration(model(memory, stride, ngf), batch_of(size, batch))
    seconds = median_seconds(iteration, repeats)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    return {"iteration_s": seconds, "peak_rss_gib": peak,
            "peak_tensor_gib": peak_tensor_gib(iteration), "positions": (size // stride) ** 2}


def max_difference(stride: int, memories: list[str]) -> float:
    """Largest relative difference of the warped exemplar and the correspondence gradients,
    each memory-efficient contender against dense, at 64 px (small enough for any stride)."""
    data = batch_of(64, 1)
    results = {}
    for memory in memories:
        module = model(memory, stride, 8).eval().double()
        semantics, exemplar_semantics = module.semantic_inputs(data)
        out = module.correspondence(data["exemplar"].double(), semantics.double(),
                                    exemplar_semantics.double())
        out["warped_exemplar"].square().sum().backward()
        grads = torch.cat([p.grad.flatten() for p in module.correspondence.parameters()
                           if p.grad is not None])
        results[memory] = (out["warped_exemplar"].detach(), grads)
    dense = results["dense"]
    return max([max(float((r[0] - dense[0]).abs().max() / dense[0].abs().max()),
                    float((r[1] - dense[1]).abs().max() / dense[1].abs().max()))
                for name, r in results.items() if name != "dense"], default=0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--strides", default="4,2")
    parser.add_argument("--memories", default="dense,sdpa,chunked")
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--markdown")
    parser.add_argument("--contender", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.contender:  # one contender in this process, for its own peak memory
        memory, stride = args.contender.split("@")
        print(json.dumps(contender(memory, int(stride), args.size, args.batch, args.ngf,
                                   args.repeats)))
        return
    memories = args.memories.split(",")
    lines = [f"CoCosNet training iteration (G + D step), ADE20k architecture (ngf {args.ngf}), "
             f"{args.size} px, batch {args.batch}; {environment()}", "",
             "| warp stride | positions | correspondence | iteration | peak RSS | "
             "vs dense | peak tensor memory | vs dense |",
             "|---:|---:|---|---:|---:|---:|---:|---:|"]
    notes = []
    for stride in (int(s) for s in args.strides.split(",")):
        notes.append(f"stride {stride}: largest relative difference to dense (warp, gradients) "
                     f"{max_difference(stride, memories):.1e}")
        dense_peak = None
        for memory in memories:
            command = [sys.executable, __file__, "--contender", f"{memory}@{stride}",
                       "--size", str(args.size), "--batch", str(args.batch),
                       "--ngf", str(args.ngf), "--repeats", str(args.repeats)]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode:
                lines.append(f"| {stride} | {(args.size // stride) ** 2} | {memory} | failed "
                             f"(exit {done.returncode}) | | | | |")
                continue
            result = json.loads(done.stdout.strip().splitlines()[-1])
            dense_peak = result if memory == "dense" else dense_peak
            ratio = {key: f"{result[key] / dense_peak[key]:.2f}x" if dense_peak else ""
                     for key in ("peak_rss_gib", "peak_tensor_gib")}
            lines.append(f"| {stride} | {result['positions']} | {memory} | "
                         f"{result['iteration_s']:.1f} s | {result['peak_rss_gib']:.2f} GiB | "
                         f"{ratio['peak_rss_gib']} | {result['peak_tensor_gib']:.2f} GiB | "
                         f"{ratio['peak_tensor_gib']} |")
    emit(lines + [""] + notes, args.markdown)


if __name__ == "__main__":
    main()

"""AdaConv style transfer: corrlab's grouped AdaConv against a per-sample loop of the same layer.

    python experiments/benchmarks/adaconv_iteration.py [--size 256] [--batch 8]
        [--inference-size 512] [--repeats 3] [--markdown OUT.md]

Both contenders are the paper architecture (VGG-19 to relu4_1, style tensor 512 x 3 x 3,
decoder with AdaConv blocks of 512, 128, 32, 8 groups) with the same weights; the loop contender
replaces every adaptive convolution by the paper's description applied one sample at a time
(written here, from the paper, not from corrlab's layer). Outputs are compared before timing.
Rows: one training iteration (forward, losses, backward, Adam step) at ``--size`` with batch
``--batch``, and inference images/s on ``--inference-size`` content. Peak memory is the process
RSS high-water mark of each contender run in its own subprocess.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from experiments.benchmarks.report import emit, environment, median_seconds
from lightning_modules.layers import adaconv as adaconv_layers


def per_sample_adaptive_conv(x, spatial, pointwise, bias, n_groups):
    """The paper's AdaConv, one sample at a time: its depthwise kernels as a grouped conv, then
    its pointwise kernels as a grouped 1x1 conv, plus its bias."""
    outputs = []
    for b in range(x.shape[0]):
        sample = F.pad(x[b:b + 1], (spatial.shape[-1] // 2,) * 4, mode="reflect")
        sample = F.conv2d(sample, spatial[b], groups=n_groups)
        outputs.append(F.conv2d(sample, pointwise[b], bias[b], groups=n_groups))
    return torch.cat(outputs)


@contextmanager
def loop_layers(enabled: bool):
    """Swap corrlab's grouped adaptive conv for the per-sample loop inside the context."""
    original = adaconv_layers.adaptive_conv
    if enabled:
        adaconv_layers.adaptive_conv = per_sample_adaptive_conv
    try:
        yield
    finally:
        adaconv_layers.adaptive_conv = original


def model():
    from lightning_modules.adaconv import AdaConvStyleTransfer

    torch.manual_seed(0)
    return AdaConvStyleTransfer(style_size=256)


def batch_of(size: int, batch: int) -> dict:
    generator = torch.Generator().manual_seed(1)
    return {"a": torch.rand(batch, 3, size, size, generator=generator) * 2 - 1,
            "b": torch.rand(batch, 3, 256, 256, generator=generator) * 2 - 1}


def contender(loop: bool, size: int, batch: int, inference_size: int, repeats: int) -> dict:
    module = model()
    optimizer = module.configure_optimizers()[0]
    data = batch_of(size, batch)
    content = torch.rand(1, 3, inference_size, inference_size) * 2 - 1

    def iteration():
        optimizer.zero_grad(set_to_none=True)
        terms = module.loss_main(data, 1.0)
        sum(terms.values()).backward()
        optimizer.step()

    def inference():
        with torch.no_grad():
            module.stylize(content, data["b"][:1])

    with loop_layers(loop):
        step = median_seconds(iteration, repeats)
        infer = median_seconds(inference, repeats)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    return {"iteration_s": step, "inference_images_per_s": 1 / infer, "peak_rss_gib": peak}


def max_difference(size: int, batch: int) -> float:
    """Largest difference between the two contenders' stylised images and gradients."""
    module = model()
    data = batch_of(size, batch)
    results = []
    for loop in (False, True):
        module.zero_grad(set_to_none=True)
        with loop_layers(loop):
            images = module.stylize(data["a"], data["b"])
            images.square().mean().backward()
        grads = torch.cat([p.grad.flatten() for p in module.decoder.parameters()])
        results.append((images.detach(), grads))
    return max(float((results[0][0] - results[1][0]).abs().max()),
               float((results[0][1] - results[1][1]).abs().max() /
                     results[1][1].abs().max()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--inference-size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--markdown")
    parser.add_argument("--contender", choices=("grouped", "loop"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.contender:  # one contender in this process, for its own peak memory
        print(json.dumps(contender(args.contender == "loop", args.size, args.batch,
                                   args.inference_size, args.repeats)))
        return
    difference = max_difference(64, 2)
    results = {}
    for name in ("grouped", "loop"):
        command = [sys.executable, __file__, "--contender", name, "--size", str(args.size),
                   "--batch", str(args.batch), "--inference-size", str(args.inference_size),
                   "--repeats", str(args.repeats)]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results[name] = json.loads(output.strip().splitlines()[-1])
    grouped, loop = results["grouped"], results["loop"]
    lines = [f"AdaConv style transfer, paper architecture, training batch {args.batch} at "
             f"{args.size} px, inference at {args.inference_size} px; {environment()}",
             f"largest output / relative gradient difference, grouped vs loop: {difference:.2e}",
             "", "| | per-sample loop | corrlab grouped | speed-up |", "|---|---:|---:|---:|",
             f"| training iteration | {loop['iteration_s']:.2f} s | "
             f"{grouped['iteration_s']:.2f} s | "
             f"{loop['iteration_s'] / grouped['iteration_s']:.2f}x |",
             f"| inference | {loop['inference_images_per_s']:.2f} img/s | "
             f"{grouped['inference_images_per_s']:.2f} img/s | "
             f"{grouped['inference_images_per_s'] / loop['inference_images_per_s']:.2f}x |",
             f"| peak RSS | {loop['peak_rss_gib']:.2f} GiB | {grouped['peak_rss_gib']:.2f} GiB | "
             f"{grouped['peak_rss_gib'] / loop['peak_rss_gib']:.2f}x |"]
    emit(lines, args.markdown)


if __name__ == "__main__":
    main()

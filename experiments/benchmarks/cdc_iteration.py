"""Few-shot CDC adaptation iterations, corrlab against the official code (utkarshojha/
few-shot-gan-adaptation) at the official architecture and options, same weights; and the
StyleGAN2 row: unconditional training against rosinality's ``train.py`` loop.

    python experiments/benchmarks/cdc_iteration.py --official DIR --rosinality DIR
        [--models cdc stylegan2] [--resolutions 64 256] [--batch 4] [--repeats 2]
        [--markdown OUT.md]

``--official``: a checkout of the CDC code; ``--rosinality``: a checkout of
rosinality/stylegan2-pytorch, whose ``op`` package (pure-PyTorch CPU paths) replaces CDC's
CUDA-only one (see ``official_cdc.py``). The official networks are built at ``size`` with the
official options (latent 512, 8 mapping layers, channel multiplier 2, patch discriminator and
``Extra``); their weights become the source checkpoint corrlab's ``FewShotCDC`` adapts from, and
the generated images (same latents and noise) and the image- and patch-level critic scores
are compared before anything is timed.

An iteration is a D step and a G step (non-saturating loss plus the distance consistency loss,
N = 4) with each Adam update and the EMA update. The official schedule is timed piece by
piece: patch-level iterations (3 of every 4), image-level ones with anchor latents (1 of 4),
and patch-level iterations with lazy R1 (every 16th) or path length (every 4th); the
amortised iteration is ``(3 patch + image) / 4 + (R1 - patch) / 16 + (PL - patch) / 4``.
The StyleGAN2 row (rosinality's ``Generator`` / ``Discriminator`` and loop statements against
corrlab's ``StyleGAN2`` module holding their weights) has no image-level pieces:
``main + (R1 - main) / 16 + (PL - main) / 4``.

The parent process copies the weights and compares the outputs; then each contender runs in
its own process (peak RSS = its high-water mark). Both processes flush subnormal floats (the
official one too: this file imports ``lightning_modules.numerics``), so that switch is not part
of the ratio. FLOPs are counted with ``torch.utils.flop_counter``'s formulas and set against
the best plain ``conv2d`` rate measured in the same process.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

import lightning_modules.numerics  # noqa: F401  (first: flushes subnormals as its env says)
from experiments.benchmarks.report import emit, environment, median_seconds, phase_runner
from experiments.benchmarks.swapae_iteration import conv_peak_gflops, counted

#: piece -> (which: 0 image-level / 1 patch-level, lazy R1, lazy path length); StyleGAN2 has
#: no image-level pieces
PIECES = {"main": (1, False, False), "image": (0, False, False), "main+R1": (1, True, False),
          "main+PL": (1, False, True)}
CONTENDERS = ("official", "corrlab")
MODELS = ("cdc", "stylegan2")


def contenders() -> dict[str, tuple[str, dict[str, str]]]:
    """label -> (contender, extra environment). With no ``MALLOC_*`` variable set, corrlab
    runs twice: as it trains (it sets the allocator itself) and with
    ``CORRLAB_TUNE_MALLOC=0``, which leaves glibc's defaults, so the table attributes that
    part of the speed-up."""
    from lightning_modules.allocator import ENV, MALLOC_VARS

    table = {"official": ("official", {}), "corrlab": ("corrlab", {})}
    if not any(var in os.environ for var in MALLOC_VARS):
        table[f"corrlab, {ENV}=0"] = ("corrlab", {ENV: "0"})
    return table


def amortised(seconds: dict[str, float], d_reg_every: int = 16, g_reg_every: int = 4) -> float:
    """The official schedule's mean iteration (``image``: CDC's 1-in-4 anchor iterations)."""
    main = seconds["main"]
    mean = (3 * main + seconds["image"]) / 4 if "image" in seconds else main
    return (mean + (seconds["main+R1"] - main) / d_reg_every
            + (seconds["main+PL"] - main) / g_reg_every)


def official_contender(model: str, official_dir: str, rosinality: str, size: int,
                       batch: int):
    from experiments.benchmarks.official_cdc import OfficialCDC, OfficialStyleGAN2

    if model == "cdc":
        return OfficialCDC(official_dir, rosinality, size, batch)
    return OfficialStyleGAN2(rosinality, size, batch)


def corrlab_module(model: str, folder: Path):
    """corrlab's module adapting from (CDC) or holding (StyleGAN2) the official weights that
    :func:`prepare` saved in ``folder``."""
    checkpoint = folder / "source.pt"
    if model == "cdc":
        from lightning_modules.few_shot_cdc import FewShotCDC

        extra = torch.load(folder / "extra.pt", weights_only=True)
        module = FewShotCDC(source_checkpoint=str(checkpoint), num_anchors=extra["n_train"],
                            seed=0)
        with torch.no_grad():  # the official Extra's first layer (highp 1 uses only that one)
            module.patch_head.conv.conv.weight.copy_(extra["weight"])
            module.patch_head.conv.bias.copy_(extra["bias"])
        return module
    from lightning_modules.checkpoints import load_rosinality_stylegan2
    from lightning_modules.stylegan2 import StyleGAN2

    imported = load_rosinality_stylegan2(checkpoint)
    module = StyleGAN2(size=imported.generator.size, seed=0)
    module.generator.load_state_dict(imported.generator.state_dict())
    module.generator_ema.load_state_dict(imported.generator_ema.state_dict())
    module.discriminator.load_state_dict(imported.discriminator.state_dict())
    return module


def prepare(model: str, official_dir: str, rosinality: str, size: int, batch: int,
            folder: Path) -> dict[str, float]:
    """Save the official networks' weights in ``folder`` (rosinality's checkpoint format) and
    return the largest relative differences of corrlab's module holding them: images (same z
    and noise) and (image-level) critic scores."""
    official = official_contender(model, official_dir, rosinality, size, batch)
    torch.save(official.checkpoint(), folder / "source.pt")
    if model == "cdc":
        head = official.extra.new_conv[0]
        torch.save({"weight": head[0].weight.detach(), "bias": head[1].bias.detach(),
                    "n_train": official.args.n_train}, folder / "extra.pt")
    module = corrlab_module(model, folder)
    torch.manual_seed(3)
    z = torch.randn(2, 512)
    noise = [torch.randn(shape) for shape in module.generator.noise_shapes(2)]
    with torch.no_grad():
        theirs, _ = official.generator([z], noise=noise, randomize_noise=False)
        ours = module.generator(z, noise=noise)
        d_theirs = official.discriminator(theirs, extra=official.extra, flag=0)[0] \
            if model == "cdc" else official.discriminator(theirs)
        d_ours = module.discriminator(theirs)
        if model == "cdc":  # the patch-level critic (official highp 1: p_ind 0)
            patch_theirs = official.discriminator(theirs, extra=official.extra, flag=1,
                                                  p_ind=0)[0]
            patch_ours = module.patch_critic(theirs)

    def relative(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a - b).abs().max() / b.abs().max())

    result = {"images": relative(ours, theirs), "critic": relative(d_ours, d_theirs)}
    if model == "cdc":
        result["patch critic"] = relative(patch_ours, patch_theirs)
    return result


def pieces(model: str, name: str, official_dir: str, rosinality: str, size: int, batch: int,
           folder: Path) -> dict[str, Callable[[], None]]:
    specs = PIECES if model == "cdc" else {k: v for k, v in PIECES.items() if k != "image"}
    if name == "official":
        official = official_contender(model, official_dir, rosinality, size, batch)
        if model == "cdc":
            return {piece: (lambda w=w, r1=r1, pl=pl: (official.d_step(w, r1),
                                                       official.g_step(w, pl)))
                    for piece, (w, r1, pl) in specs.items()}
        return {piece: (lambda r1=r1, pl=pl: official.iteration(r1, pl))
                for piece, (_, r1, pl) in specs.items()}
    module = corrlab_module(model, folder)
    run_phase = phase_runner(module)
    phases = {phase.name: phase for phase in module.phases()}
    data = {"image": torch.rand(batch, 3, size, size) * 2 - 1}

    def run(which: int, r1: bool, pl: bool) -> None:
        module.iteration = 1 if which else 0  # CDC: image-level when iteration % 4 == 0
        module._draws_this_iteration = 0
        for phase in ["D_main", *(["D_reg"] if r1 else []), "G_main", *(["G_reg"] if pl else [])]:
            run_phase(phases[phase], data)
        module.update_ema(batch)

    return {piece: (lambda spec=spec: run(*spec)) for piece, spec in specs.items()}


def contender(model: str, name: str, official_dir: str, rosinality: str, size: int, batch: int,
              repeats: int, folder: Path) -> dict:
    steps = pieces(model, name, official_dir, rosinality, size, batch, folder)
    seconds = {piece: median_seconds(step, repeats) for piece, step in steps.items()}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    flops = {piece: counted(step) for piece, step in steps.items()}
    return {"seconds": seconds, "peak_rss_gib": peak, "flops": flops,
            "conv_peak_gflops": conv_peak_gflops()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official", required=True)
    parser.add_argument("--rosinality", required=True)
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--resolutions", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--markdown")
    parser.add_argument("--contender", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--model", choices=MODELS, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    official, rosinality = str(Path(args.official).resolve()), \
        str(Path(args.rosinality).resolve())
    if args.contender:
        os.chdir(tempfile.mkdtemp())  # the official modules write nothing, but to be sure
        print(json.dumps(contender(args.model, args.contender, official, rosinality,
                                   args.size, args.batch, args.repeats, args.folder)))
        return
    lines = [f"Training iterations, official architecture (latent 512, channel multiplier 2), "
             f"batch {args.batch}, seconds; {environment()}", "",
             "| model | px | contender | main | image-level | main+R1 | main+PL | iteration "
             "(amortised) | vs official | peak RSS | vs official | TFLOP / iteration | "
             "GFLOP/s | of conv2d peak |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    notes = []
    for model, size in [(m, r) for m in args.models for r in args.resolutions]:
        folder = Path(tempfile.mkdtemp())
        differences = prepare(model, official, rosinality, size, args.batch, folder)
        results = {}
        for label, (name, variables) in contenders().items():
            command = [sys.executable, str(Path(__file__).resolve()), "--contender", name,
                       "--model", model, "--folder", str(folder),
                       "--official", official, "--rosinality", rosinality, "--size", str(size),
                       "--batch", str(args.batch), "--repeats", str(args.repeats)]
            done = subprocess.run(command, capture_output=True, text=True,
                                  env={**os.environ, **variables})
            if done.returncode:
                sys.exit(f"{model}, {label} at {size} px failed:\n{done.stderr[-3000:]}")
            results[label] = json.loads(done.stdout.strip().splitlines()[-1])
        reference = results["official"]
        for name, r in results.items():
            s, iteration = r["seconds"], amortised(r["seconds"])
            rate = amortised(r["flops"]) / iteration / 1e9
            image = f"{s['image']:.2f}" if "image" in s else "-"
            lines.append(
                f"| {model} | {size} | {name} | {s['main']:.2f} | {image} | "
                f"{s['main+R1']:.2f} | {s['main+PL']:.2f} | {iteration:.2f} s | "
                f"{amortised(reference['seconds']) / iteration:.2f}x | "
                f"{r['peak_rss_gib']:.2f} GiB | "
                f"{r['peak_rss_gib'] / reference['peak_rss_gib']:.2f}x | "
                f"{amortised(r['flops']) / 1e12:.3f} | {rate:.0f} | "
                f"{rate / r['conv_peak_gflops']:.0%} |")
        ours = results["corrlab"]
        speedup = amortised(reference["seconds"]) / amortised(ours["seconds"])
        work = amortised(reference["flops"]) / amortised(ours["flops"])
        notes.append(f"{model}, {size} px: {speedup:.2f}x = {work:.2f}x fewer FLOPs x "
                     f"{speedup / work:.2f}x the official FLOP rate")
        notes.append(f"{model}, {size} px: largest relative difference, corrlab vs official "
                     f"at equal weights: " + ", ".join(f"{what} {value:.1e}" for what, value
                                                      in differences.items()))
    emit(lines + [""] + notes, args.markdown)


if __name__ == "__main__":
    main()

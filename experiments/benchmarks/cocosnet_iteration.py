"""CoCosNet: one training iteration of corrlab against the official code (microsoft/CoCosNet),
same architecture, same weights, same inputs.

    python experiments/benchmarks/cocosnet_iteration.py --official DIR [--size 256]
        [--batch 1] [--ngf 64] [--repeats 1] [--classes N] [--bf16] [--checkpoint]
        [--markdown OUT.md]

``DIR`` is a copy of the official repository outside this one (never committed), with
``sync_batchnorm/`` (vacancy/Synchronized-BatchNorm-PyTorch) in ``models/networks/`` as its
README says. The official networks are built by its own option parser from the README's ADE20k
command (``--use_attention --maskmix --warp_mask_losstype direct --weight_mask 100 --PONO
--PONO_C --vgg_normal_correct``) at ``--size`` and ``--ngf`` on the CPU; corrlab's networks
receive the official weights through ``from_official_states``, and the generated image, warped
exemplar and discriminator outputs are compared before timing. Both iterations compute every
loss term of that command (G step with correspondence, VGG feature matching, perceptual,
contextual, domain alignment, warped mask, GAN and D feature matching; then the D step), each
with its Adam update. The official VGG-19 file (``vgg19_conv.pth``) is not available here, so
its loss network holds the same Caffe VGG-19 weights corrlab uses (timing does not depend on
their values). Each contender runs in its own process. Two memory figures: the RSS high-water
mark of that process during the timed iterations, and the peak live tensor memory of one more
(profiled) iteration (:func:`~experiments.benchmarks.report.peak_tensor_gib`, the CPU
counterpart of ``torch.cuda.max_memory_allocated``: what a GPU would hold, without the
process's code and the allocator's free lists).

Each contender also counts its iteration's FLOPs (``torch.utils.flop_counter``'s formulas, as the
Swapping Autoencoder benchmark) and measures this CPU's 3x3 conv2d rate in its own process
(``conv_peak_gflops``). Their ratio gives the iteration's FLOP rate as a share of that rate, and
the time the iteration would take if every FLOP ran at it: a floor no exact change of the code
can pass without removing FLOPs.

corrlab flushes subnormal floats to zero (``lightning_modules.numerics``); the official code
does not. A third contender, the official code in a process that flushes them
(``CORRLAB_FLUSH_DENORMAL=1``), shows how much of the difference that alone makes.

``--bf16`` adds corrlab under bf16 autocast, what ``--trainer.precision bf16-mixed`` trains with
(fp32 weights and optimizer; on CPUs with AMX or AVX-512 BF16 the convolutions run in bf16). Its
outputs are not the official ones to fp32 precision, so the table gives its own difference.

``--checkpoint`` adds corrlab with ``checkpoint_activations: true`` (the correspondence's and the
generator's blocks recompute their activations in the backward pass: the same values and
gradients, less memory, more time).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

import lightning_modules.numerics  # noqa: F401  (first: flushes subnormals as its env says)
from experiments.benchmarks.cocosnet_memory import training_iteration
from experiments.benchmarks.report import emit, environment, median_seconds, peak_tensor_gib
from experiments.benchmarks.swapae_iteration import conv_peak_gflops, counted

README_COMMAND = ("--name ade20k --dataset_mode ade20k --dataroot unused --niter 100 "
                  "--niter_decay 100 --use_attention --maskmix --warp_mask_losstype direct "
                  "--weight_mask 100.0 --PONO --PONO_C --vgg_normal_correct")
LABELS = 150
#: contender -> CORRLAB_FLUSH_DENORMAL of its process
CONTENDERS = {"official": "0", "official-flushed": "1", "corrlab": "1", "corrlab-bf16": "1",
              "corrlab-checkpoint": "1"}
#: contenders only run when their flag is given
OPTIONAL = {"corrlab-bf16": "bf16", "corrlab-checkpoint": "checkpoint"}


def official_model(official: Path, size: int, batch: int, ngf: int, seed: int = 0):
    """The official Pix2PixModel (its networks, losses and optimizers) on the CPU."""
    sys.path.insert(0, str(official.resolve()))
    os.chdir(official)  # its util module reads ./util/color150.mat at import
    import models.networks as networks
    from models.networks.correspondence import VGG19_feature_color_torchversion
    from models.pix2pix_model import Pix2PixModel
    from options.train_options import TrainOptions

    checkpoints = tempfile.mkdtemp()
    sys.argv = ["train.py", *README_COMMAND.split(), "--gpu_ids", "-1", "--batchSize",
                str(batch), "--crop_size", str(size), "--load_size", str(size), "--ngf",
                str(ngf), "--ndf", str(ngf), "--checkpoints_dir", checkpoints]
    opt = TrainOptions().parse()
    torch.manual_seed(seed)
    model = Pix2PixModel.__new__(Pix2PixModel)  # __init__ would load vgg19_conv.pth to a GPU
    torch.nn.Module.__init__(model)
    model.opt, model.alpha = opt, 1
    model.FloatTensor, model.ByteTensor = torch.FloatTensor, torch.ByteTensor
    model.net = torch.nn.ModuleDict(model.initialize_networks(opt))
    vgg = VGG19_feature_color_torchversion(vgg_normal_correct=True)
    vgg.load_state_dict(caffe_vgg_state(vgg))
    model.vggnet_fix = vgg.eval().requires_grad_(False)
    model.contextual_forward_loss = networks.ContextualLoss_forward(opt)
    model.criterionGAN = networks.GANLoss(opt.gan_mode, tensor=torch.FloatTensor, opt=opt)
    model.criterionFeat, model.MSE_loss = torch.nn.L1Loss(), torch.nn.MSELoss()
    model.perceptual_layer = -1
    return model, opt


def caffe_vgg_state(official_vgg: torch.nn.Module) -> dict:
    """corrlab's Caffe VGG-19 conv weights under the official module's names."""
    from lightning_modules.pretrained import vgg19

    ours = vgg19("caffe")
    convs = [m for name, m in ours.layers.items() if name.startswith("conv")]
    names = [name for name, _ in official_vgg.named_children() if name.startswith("conv")]
    state = {}
    for name, conv in zip(names, convs, strict=True):
        state[f"{name}.weight"], state[f"{name}.bias"] = conv.weight.data, conv.bias.data
    return state


def official_optimizers(model, opt) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """What the official ``create_optimizers`` builds (TTUR: G and correspondence param groups
    at lr / 2 with eps 1e-3, D at 2 lr, betas (0, 0.9)); its own call passes ``betas=(0, 0.9)``
    with an int, which current PyTorch rejects, hence this copy of its settings."""
    groups = [{"params": model.net["netG"].parameters(), "lr": opt.lr * 0.5},
              {"params": model.net["netCorr"].parameters(), "lr": opt.lr * 0.5}]
    return (torch.optim.Adam(groups, lr=opt.lr / 2, betas=(0.0, 0.9), eps=1e-3),
            torch.optim.Adam(model.net["netD"].parameters(), lr=opt.lr * 2, betas=(0.0, 0.9)))


def official_data(size: int, batch: int, classes: int | None = None) -> dict:
    """Random label maps (regions of ``classes`` random classes; None: of all 151 classes,
    most of which then appear) and random images."""
    generator = torch.Generator().manual_seed(1)
    chosen = (torch.arange(LABELS + 1) if classes is None
              else torch.randperm(LABELS + 1, generator=generator)[:classes])
    coarse = torch.randn(batch, len(chosen), 8, 8, generator=generator)
    label = chosen[F.interpolate(coarse, size=(size, size), mode="bilinear").argmax(
        1, keepdim=True)]
    return {"label": label, "label_ref": label.flip(-1),
            "image": torch.rand(batch, 3, size, size, generator=generator) * 2 - 1,
            "ref": torch.rand(batch, 3, size, size, generator=generator) * 2 - 1,
            "self_ref": torch.ones(batch, 1, 1, 1)}


def corrlab_batch(data: dict) -> dict:
    label = data["label"][:, 0]
    return {"label": label, "label_onehot": F.one_hot(label, LABELS + 1).permute(0, 3, 1, 2)
            .float(), "exemplar_label": data["label_ref"][:, 0], "target": data["image"],
            "exemplar": data["ref"], "exemplar_is_self": data["self_ref"].flatten().bool()}


def corrlab_model(official, opt, checkpoint_activations: bool = False):
    """corrlab's CoCosNet holding the official networks' weights."""
    from lightning_modules.cocosnet import CoCosNet
    from lightning_modules.cocosnet.official import from_official_states

    imported = from_official_states(
        vars(opt), {"G": official.net["netG"].state_dict(),
                    "Corr": official.net["netCorr"].state_dict(),
                    "D": official.net["netD"].state_dict()})
    module = CoCosNet(label_nc=LABELS, contain_dontcare_label=True, ngf=opt.ngf, ndf=opt.ndf,
                      use_coordconv=opt.use_coordconv, maskmix=opt.maskmix, pono_c=opt.PONO_C,
                      spade_hidden=imported.generator.blocks[0].norm_0.shared[0].out_channels,
                      max_kimg=1, init_gain=None,
                      checkpoint_activations=checkpoint_activations)
    module.generator.load_state_dict(imported.generator.state_dict())
    module.correspondence.load_state_dict(imported.correspondence.state_dict())
    module.discriminator.load_state_dict(imported.discriminator.state_dict())
    return module


def compare(official, module, data: dict, bf16: bool = False) -> float:
    """Largest difference (relative to each tensor's max) of the generated image, the warped
    exemplar and the discriminator outputs, eval mode (corrlab's under bf16 autocast with
    ``bf16``)."""
    official.eval()
    module.eval()
    batch = corrlab_batch(data)
    official.opt.isTrain, official.opt.show_corr = False, False  # as its test options
    with torch.no_grad():
        theirs = official(dict(data), mode="inference")
        d_theirs = official.net["netD"](torch.cat([theirs["input_semantics"],
                                                   theirs["fake_image"]], 1))[0]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            semantics, exemplar_semantics = module.semantic_inputs(batch)
            ours = module.translate(semantics, batch["exemplar"], exemplar_semantics)
            d_ours = module.discriminator(ours["output"], semantics)
    pairs = [(ours["output"], theirs["fake_image"]), (ours["warped_exemplar"],
                                                       theirs["warp_out"])]
    pairs += [(a, b) for scale_a, scale_b in zip(d_ours, d_theirs, strict=True)
              for a, b in zip(scale_a, scale_b, strict=True)]
    return max(float((a.float() - b).abs().max() / b.abs().max()) for a, b in pairs)


def contender(name: str, official_dir: Path, size: int, batch: int, ngf: int,
              repeats: int, classes: int | None = None) -> dict:
    official, opt = official_model(official_dir, size, batch, ngf)
    data = official_data(size, batch, classes)
    if name.startswith("official"):
        official.train()
        optimizer_g, optimizer_d = official_optimizers(official, opt)

        def iteration():
            optimizer_g.zero_grad()
            g_losses, generated = official(dict(data), mode="generator")
            sum(g_losses.values()).mean().backward()
            optimizer_g.step()
            optimizer_d.zero_grad()
            d_losses = official(dict(data), mode="discriminator", GforD=generated)
            sum(d_losses.values()).mean().backward()
            optimizer_d.step()
    else:
        module = corrlab_model(official, opt, name == "corrlab-checkpoint").train()
        del official
        fp32_iteration = training_iteration(module, corrlab_batch(data))

        def iteration():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=name == "corrlab-bf16"):
                fp32_iteration()

    seconds = median_seconds(iteration, repeats)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # before profiling
    return {"iteration_s": seconds, "peak_rss_gib": rss,
            "peak_tensor_gib": peak_tensor_gib(iteration), "flops": counted(iteration),
            "conv_peak_gflops": conv_peak_gflops()}


def work_lines(results: dict[str, dict]) -> list[str]:
    """FLOPs per iteration, their rate as a share of the contender's conv2d rate, and the time
    at that rate (the floor), for every contender that ran."""
    lines = ["", "| | TFLOP / iteration | FLOP rate / conv2d rate | time at the conv2d rate |",
             "|---|---:|---:|---:|"]
    for name, result in results.items():
        peak = result["conv_peak_gflops"] * 1e9
        lines.append(f"| {name} | {result['flops'] / 1e12:.2f} | "
                     f"{result['flops'] / result['iteration_s'] / peak:.0%} "
                     f"(of {peak / 1e9:.0f} GFLOP/s) | {result['flops'] / peak:.2f} s |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official", required=True, type=Path)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--ngf", type=int, default=64,
                        help="64: the official correspondence hard-codes 64 feature channels")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--bf16", action="store_true",
                        help="also time corrlab under bf16 autocast (--trainer.precision "
                             "bf16-mixed)")
    parser.add_argument("--checkpoint", action="store_true",
                        help="also time corrlab with checkpoint_activations: true")
    parser.add_argument("--classes", type=int,
                        help="label maps with this many classes (ADE20k images average 10.5, "
                             "Zhou et al. 2019); default: random maps over all 151, of which "
                             "most appear (117 at 256 px)")
    parser.add_argument("--markdown")
    parser.add_argument("--contender", choices=CONTENDERS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    common = ["--size", str(args.size), "--batch", str(args.batch), "--ngf", str(args.ngf)]
    if args.classes:
        common += ["--classes", str(args.classes)]
    present = official_data(args.size, args.batch, args.classes)["label"].unique().numel()
    if args.contender:
        print(json.dumps(contender(args.contender, args.official, args.size, args.batch,
                                   args.ngf, args.repeats, args.classes)))
        return
    here = Path.cwd()
    # the official correspondence needs ngf 64 (its hard-coded feature_channel)
    official, opt = official_model(args.official, 64, 1, 64)
    module = corrlab_model(official, opt)
    difference = compare(official, module, official_data(64, 1))
    bf16_difference = compare(official, module, official_data(64, 1), bf16=True) \
        if args.bf16 else None
    os.chdir(here)
    results = {}
    contenders = {name: flush for name, flush in CONTENDERS.items()
                  if name not in OPTIONAL or getattr(args, OPTIONAL[name])}
    for name, flush in contenders.items():
        command = [sys.executable, str(Path(__file__).resolve()), "--contender", name,
                   "--official", str(args.official.resolve()), *common, "--repeats",
                   str(args.repeats)]
        done = subprocess.run(command, check=True, capture_output=True, text=True,
                              env={**os.environ, "CORRLAB_FLUSH_DENORMAL": flush})
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
    theirs, flushed, ours = results["official"], results["official-flushed"], results["corrlab"]
    lines = [f"CoCosNet training iteration (G + D step), ADE20k README options, ngf/ndf "
             f"{args.ngf}, {args.size} px, batch {args.batch}, label maps with {present} of "
             f"{LABELS + 1} classes; {environment()}",
             f"largest relative output difference, corrlab vs official (64 px, same "
             f"weights): {difference:.1e}", "",
             "| | official | official, subnormals flushed | corrlab | corrlab vs official |",
             "|---|---:|---:|---:|---:|",
             f"| iteration | {theirs['iteration_s']:.2f} s | {flushed['iteration_s']:.2f} s | "
             f"{ours['iteration_s']:.2f} s | "
             f"{theirs['iteration_s'] / ours['iteration_s']:.2f}x faster |",
             f"| peak RSS | {theirs['peak_rss_gib']:.2f} GiB | {flushed['peak_rss_gib']:.2f} GiB | "
             f"{ours['peak_rss_gib']:.2f} GiB | "
             f"{ours['peak_rss_gib'] / theirs['peak_rss_gib']:.2f}x |",
             f"| peak tensor memory | {theirs['peak_tensor_gib']:.2f} GiB | "
             f"{flushed['peak_tensor_gib']:.2f} GiB | {ours['peak_tensor_gib']:.2f} GiB | "
             f"{ours['peak_tensor_gib'] / theirs['peak_tensor_gib']:.2f}x |"]
    if args.bf16:
        bf16 = results["corrlab-bf16"]
        lines += ["", f"corrlab under bf16 autocast (--trainer.precision bf16-mixed): iteration "
                      f"{bf16['iteration_s']:.2f} s "
                      f"({theirs['iteration_s'] / bf16['iteration_s']:.2f}x faster than the "
                      f"official fp32 one), peak RSS {bf16['peak_rss_gib']:.2f} GiB "
                      f"({bf16['peak_rss_gib'] / theirs['peak_rss_gib']:.2f}x), peak tensor "
                      f"memory {bf16['peak_tensor_gib']:.2f} GiB; largest relative "
                      f"output difference to the official fp32 outputs {bf16_difference:.1e}"]
    if args.checkpoint:
        lean = results["corrlab-checkpoint"]
        lines += ["", f"corrlab with checkpoint_activations: iteration {lean['iteration_s']:.2f} s "
                      f"({theirs['iteration_s'] / lean['iteration_s']:.2f}x the official speed), "
                      f"peak RSS {lean['peak_rss_gib']:.2f} GiB "
                      f"({lean['peak_rss_gib'] / theirs['peak_rss_gib']:.2f}x), peak tensor memory "
                      f"{lean['peak_tensor_gib']:.2f} GiB "
                      f"({lean['peak_tensor_gib'] / theirs['peak_tensor_gib']:.2f}x)"]
    emit(lines + work_lines(results), args.markdown)


if __name__ == "__main__":
    main()

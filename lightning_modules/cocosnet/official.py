"""Import checkpoints written by the official CoCosNet code (microsoft/CoCosNet):
``<name>/latest_net_{G,D,Corr}.pth`` (plain state dicts) with the ``opt.txt`` beside them.

Every option is read from ``opt.txt``; the two widths the official code hard-codes (SPADE's
hidden width 128, the correspondence's 64 feature channels, i.e. ``4 ngf`` adaptor channels)
and ``ngf`` / ``ndf`` are inferred from the tensors, so checkpoints of other widths load too.
Names are translated to corrlab's (:data:`RENAMES`); the discriminator's unused decoder
(``dec``) is dropped, and its first conv's input channels are reordered (the official D sees
``[one-hot, image]``, corrlab's ``[image, condition]``).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from lightning_modules.checkpoint_io import CheckpointError
from lightning_modules.cocosnet.correspondence import CorrespondenceNet
from lightning_modules.cocosnet.networks import TranslationGenerator, cocosnet_discriminator
from lightning_modules.errors import ConfigError

_GENERATOR_BLOCKS = ["head_0", "G_middle_0", "G_middle_1", "up_0", "up_1", "up_2", "up_3"]
_ADAPTOR_BLOCKS = ["head_0", "G_middle_0", "G_middle_1"]

#: (official key pattern, corrlab replacement), applied in order to every key
RENAMES = {
    "G": [(r"^fc\.", "stem."), (r"^conv_img\.", "to_image."), (r"^attn\.", "attention."),
          *[(rf"^{name}\.", f"blocks.{i}.") for i, name in enumerate(_GENERATOR_BLOCKS)]],
    "Corr": [(r"^adaptive_model_seg\.", "semantic_adaptor."),
             (r"^adaptive_model_img\.", "exemplar_adaptor."),
             *[(rf"_adaptor\.layer{n}\.0\.", f"_adaptor.encoder.{2 * n - 2}.0.")
               for n in range(1, 6)],
             *[(rf"_adaptor\.{name}\.", f"_adaptor.blocks.{i}.")
               for i, name in enumerate(_ADAPTOR_BLOCKS)],
             (r"^layer\.", "shared."), (r"^theta\.", "query."), (r"^phi\.", "key.")],
    "D": [(r"^discriminator_(\d+)\.attn\.", r"scales.\1.attention."),
          (r"^discriminator_(\d+)\.model(\d)\.0\.0\.", r"scales.\1.layers.\2.0."),
          (r"^discriminator_(\d+)\.model(\d)\.0\.", r"scales.\1.layers.\2.0.")],
}
_SPADE_RENAMES = [(r"\.mlp_shared\.1\.", ".shared.0."), (r"\.mlp_gamma\.", ".gamma."),
                  (r"\.mlp_beta\.", ".beta."), (r"\.param_free_norm\.", ".norm.")]
_SPADE_NORMS = {"instance": "instance", "batch": "batch", "syncbatch": "batch"}


def read_options(path: str | Path) -> dict[str, object]:
    """``opt.txt`` (``name: value  [default: ...]`` lines) -> ``{name: value}``, values parsed
    as Python literals where they are (numbers, booleans), else kept as strings."""
    options: dict[str, object] = {}
    for line in Path(path).read_text().splitlines():
        if ":" not in line or line.startswith("-"):
            continue
        name, _, rest = line.partition(":")
        value = rest.split("[default:")[0].strip()
        try:
            options[name.strip()] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            options[name.strip()] = value
    return options


def translate(state: dict[str, torch.Tensor], network: str) -> dict[str, torch.Tensor]:
    """Official names -> corrlab names (the D decoder ``dec`` is dropped)."""
    out = {}
    for key, value in state.items():
        if network == "D" and ".dec." in key:
            continue
        new = key
        for pattern, replacement in RENAMES[network] + _SPADE_RENAMES:
            new = re.sub(pattern, replacement, new)
        out[new] = value
    return out


@dataclass
class OfficialCoCosNet:
    """The three networks and the options they were built from."""

    generator: TranslationGenerator
    correspondence: CorrespondenceNet
    discriminator: nn.Module | None
    options: dict[str, object]

    @property
    def semantic_channels(self) -> int:
        return semantic_channels(self.options)


def semantic_channels(options: dict[str, object]) -> int:
    return int(options["label_nc"]) + (1 if options.get("contain_dontcare_label") else 0)


def _load(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"{path}: missing (an official CoCosNet checkpoint folder holds "
                              f"<epoch>_net_G.pth, <epoch>_net_Corr.pth and opt.txt)")
    return torch.load(path, map_location="cpu", weights_only=True)


def _check_supported(options: dict[str, object], opt_file: Path) -> tuple[str, bool]:
    """Refuse the variants corrlab does not implement; return (SPADE's parameter-free norm,
    spectral norm on the G / adaptor convs) as ``norm_G`` and ``PONO`` say."""
    wanted = {"netG": "spade", "netD": "multiscale", "netD_subarch": "n_layer",
              "CBN_intype": "warp_mask", "gan_mode": "hinge"}
    for name, value in wanted.items():
        if name in options and options[name] != value:
            raise ConfigError(f"{opt_file}: {name} = {options[name]!r} is not supported "
                              f"(corrlab imports {name} = {value!r})")
    norm_g = str(options.get("norm_G", "spectralspadesyncbatch3x3"))
    match = re.fullmatch(r"(spectral)?spade(\w+?)3x3", norm_g)
    if not match or match.group(2) not in _SPADE_NORMS:
        raise ConfigError(f"{opt_file}: norm_G = {norm_g!r} is not supported (corrlab imports "
                          f"[spectral]spade{{instance,batch,syncbatch}}3x3)")
    for name in ("norm_E", "norm_D"):
        if str(options.get(name, "spectralinstance")) not in ("spectralinstance", "instance"):
            raise ConfigError(f"{opt_file}: {name} = {options[name]!r} is not supported "
                              f"(corrlab imports [spectral]instance)")
    if str(options.get("norm_E", "spectralinstance")).startswith("spectral") != \
            norm_g.startswith("spectral"):
        raise ConfigError(f"{opt_file}: norm_E and norm_G differ in spectral norm; corrlab's "
                          f"adaptors use one setting for both")
    if options.get("warp_mask_losstype") == "cycle" or options.get("eqlr_sn") \
            or options.get("adaptor_nonlocal") or options.get("adaptor_res_deeper") \
            or options.get("adaptor_se") or float(options.get("D_cam", 0)) > 0:
        raise ConfigError(f"{opt_file}: one of warp_mask_losstype=cycle, eqlr_sn, "
                          f"adaptor_nonlocal, adaptor_res_deeper, adaptor_se, D_cam is set; "
                          f"corrlab does not implement these variants")
    norm = "positional" if options.get("PONO") else _SPADE_NORMS[match.group(2)]
    return norm, norm_g.startswith("spectral")


def load_official(folder: str | Path, epoch: str = "latest", discriminator: bool = True
                  ) -> OfficialCoCosNet:
    """Build corrlab's networks from an official checkpoint folder and load its weights
    (strict), in eval mode."""
    folder = Path(folder)
    opt_file = folder / "opt.txt"
    if not opt_file.is_file():
        raise CheckpointError(f"{opt_file}: missing; the options of the checkpoint are needed")
    states = {"G": _load(folder / f"{epoch}_net_G.pth"),
              "Corr": _load(folder / f"{epoch}_net_Corr.pth")}
    if discriminator:
        states["D"] = _load(folder / f"{epoch}_net_D.pth")
    return from_official_states(read_options(opt_file), states, str(folder))


def from_official_states(options: dict[str, object], states: dict[str, dict],
                         where: str = "official options") -> OfficialCoCosNet:
    """corrlab's networks holding the official state dicts ``states`` (``G``, ``Corr`` and
    optionally ``D``) built with ``options`` (``opt.txt`` values or ``vars(opt)``)."""
    norm, spectral_g = _check_supported(options, Path(where))
    semantic = semantic_channels(options)
    g_state = translate(states["G"], "G")
    corr_state = translate(states["Corr"], "Corr")
    spade_hidden = g_state["blocks.0.norm_0.shared.0.weight"].shape[0]
    ngf = g_state["to_image.weight"].shape[1]
    corr_ngf = corr_state["semantic_adaptor.encoder.0.0.weight_orig"].shape[0]
    shared_width = corr_state["shared.0.conv1.weight"].shape[0]
    extra = (3 if options.get("use_coordconv") else 0) + (semantic if options.get("maskmix")
                                                           else 0)
    if shared_width != 4 * corr_ngf + extra:
        raise CheckpointError(f"{where}: the correspondence's shared blocks are "
                              f"{shared_width} wide, not 4 * {corr_ngf} + {extra}")
    down = 2 if int(options.get("warp_stride", 4)) == 2 else 4
    generator = TranslationGenerator(3 + semantic, ngf, bool(options.get("use_attention")),
                                     spade_hidden, norm, spectral_g)
    correspondence = CorrespondenceNet(
        semantic, corr_ngf, int(options.get("adaptor_kernel", 3)),
        int(options.get("match_kernel", 3)), bool(options.get("use_coordconv")),
        bool(options.get("maskmix")), bool(options.get("PONO_C")), 0.01, down,
        bool(options.get("warp_bilinear")), bool(options.get("warp_patch")),
        corr_state["query.weight"].shape[0],
        corr_state["semantic_adaptor.blocks.0.norm_0.shared.0.weight"].shape[0], norm,
        spectral_g)
    generator.load_state_dict(g_state)
    correspondence.load_state_dict(corr_state)
    d = None
    if "D" in states:
        d_state = translate(states["D"], "D")
        for key in [k for k in d_state if re.fullmatch(r"scales\.\d+\.layers\.0\.0\.weight", k)]:
            weight = d_state[key]
            d_state[key] = torch.cat([weight[:, semantic:], weight[:, :semantic]], dim=1)
        ndf = d_state["scales.0.layers.0.0.weight"].shape[0]
        num_scales = len({k.split(".")[1] for k in d_state})
        num_layers = len({k.split(".")[3] for k in d_state if ".layers." in k}) - 1
        d = cocosnet_discriminator(
            semantic, ndf, num_scales, num_layers, bool(options.get("use_attention")),
            str(options.get("norm_D", "spectralinstance")).startswith("spectral"))
        d.load_state_dict(d_state)
        d.eval()
    return OfficialCoCosNet(generator.eval(), correspondence.eval(), d, options)

"""Import checkpoints written by the official Swapping Autoencoder code
(taesungp/swapping-autoencoder-pytorch): ``<iter>_checkpoint.pth``, a flat ``state_dict`` of
the whole model with ``E.``, ``G.``, ``D.`` and ``Dpatch.`` prefixes, plus the options the run
used (``opt.txt`` written by the official ``TrainOptions``, or a JSON dict of the options).

Two widths the official code hard-codes (the image D's 512-channel cap and the patch D's pair
MLP widths) are read off the tensors, so checkpoints of modified copies import too.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from lightning_modules.checkpoints import CheckpointError, safe_load

#: official option name -> SwappingAutoencoder argument
OPTION_NAMES = {
    "crop_size": "crop_size", "spatial_code_ch": "spatial_code_ch",
    "global_code_ch": "global_code_ch", "netE_scale_capacity": "netE_scale_capacity",
    "netE_num_downsampling_sp": "netE_num_downsampling_sp",
    "netE_num_downsampling_gl": "netE_num_downsampling_gl",
    "netE_nc_steepness": "netE_nc_steepness", "netG_scale_capacity": "netG_scale_capacity",
    "netG_num_base_resnet_layers": "netG_num_base_resnet_layers",
    "netG_use_noise": "netG_use_noise", "netD_scale_capacity": "netD_scale_capacity",
    "netPatchD_scale_capacity": "netPatchD_scale_capacity",
    "netPatchD_max_nc": "netPatchD_max_nc", "patch_size": "patch_size",
    "patch_num_crops": "patch_num_crops", "patch_min_scale": "patch_min_scale",
    "patch_max_scale": "patch_max_scale", "patch_use_aggregation": "patch_use_aggregation",
    "use_antialias": "use_antialias", "lambda_R1": "lambda_R1",
    "lambda_patch_R1": "lambda_patch_R1", "lambda_L1": "lambda_L1", "lambda_GAN": "lambda_GAN",
    "lambda_PatchGAN": "lambda_PatchGAN", "lr": "lr", "beta1": "beta1", "beta2": "beta2",
    "R1_once_every": "R1_once_every",
}


def read_options(source: str | Path | dict) -> dict[str, Any]:
    """Official options from a dict, a JSON file (``{"options": {...}}`` or flat), a corrlab
    config YAML (its ``model.init_args``, e.g. ``experiments/swapping_autoencoder/
    church256.yaml`` for the official church model), or the ``opt.txt`` the official
    ``TrainOptions`` writes (``name: value  [default: ...]``)."""
    if isinstance(source, dict):
        return dict(source.get("options", source))
    path = Path(source)
    if not path.is_file():
        raise CheckpointError(f"{path}: options file does not exist (give the run's opt.txt "
                              "or the corrlab config of the same setting).")
    text = path.read_text()
    if path.suffix == ".json":
        data = json.loads(text)
        return dict(data.get("options", data))
    if path.suffix in (".yaml", ".yml"):
        config = yaml.safe_load(text) or {}
        return dict((config.get("model") or {}).get("init_args") or config)
    options = {}
    for line in text.splitlines():
        match = re.match(r"\s*([A-Za-z_][\w]*):\s*(.*?)\s*(\[default:.*\])?\s*$", line)
        if match:
            value = match[2]
            try:
                options[match[1]] = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                options[match[1]] = value
    return options


def module_arguments(options: dict[str, Any]) -> dict[str, Any]:
    """SwappingAutoencoder arguments of official options (unknown options are ignored)."""
    return {ours: options[theirs] for theirs, ours in OPTION_NAMES.items() if theirs in options}


@dataclass(frozen=True)
class Layout:
    """Where the official block names point: log2 of the image and patch sizes, and the number
    of structure down-sampling blocks of E and of down-sampling blocks of the patch D."""

    image_log2: int
    patch_log2: int
    structure_downs: int

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> Layout:
        return cls(int(options["crop_size"]).bit_length() - 1,
                   (int(options["patch_size"]) - 1).bit_length(),
                   int(options.get("netE_num_downsampling_sp", 4)))


def _block_index(name: str, top: int, offset: int) -> int:
    """Index of an official residual block name (``str(offset - log2(res))`` or ``RxR``)."""
    log_res = int(name.split("x")[0]).bit_length() - 1 if "x" in name else offset - int(name)
    return top - log_res


def official_key(key: str, layout: Layout) -> str | None:
    """corrlab key of an official key (None: a buffer corrlab recomputes)."""
    if key.endswith("kernel") or key == "num_discriminator_iters":
        return None
    conv = {"Conv.weight": "conv.weight", "Conv.bias": "bias", "Act.bias": "bias"}
    if m := re.fullmatch(r"E\.FromRGB\.(.+)", key):
        return f"encoder.from_rgb.{conv[m[1]]}"
    if m := re.fullmatch(r"E\.DownToSpatialCode\.ResBlockDownBy(\d+)\.(conv1|conv2|skip)\.(.+)",
                         key):
        return f"encoder.down_blocks.{int(m[1]).bit_length() - 1}.{m[2]}.{conv[m[3]]}"
    if m := re.fullmatch(r"E\.ToSpatialCode\.(\d)\.(.+)", key):
        return f"encoder.structure_head.{m[1]}.{conv[m[2]]}"
    if m := re.fullmatch(r"E\.DownToGlobalCode\.ConvLayerDownBy(\d+)\.(.+)", key):
        index = int(m[1]).bit_length() - 1 - layout.structure_downs
        return f"encoder.texture_downs.{index}.{conv[m[2]]}"
    if m := re.fullmatch(r"E\.ToGlobalCode\.0\.(weight|bias)", key):
        return f"encoder.texture_fc.{m[1]}"
    if m := re.fullmatch(r"G\.SpatialCodeModulation\.(scale|bias)\.(weight|bias)", key):
        return f"generator.code_modulation.{'scale' if m[1] == 'scale' else 'shift'}.{m[2]}"
    if m := re.fullmatch(r"G\.(HeadResnetBlock|UpsamplingResBlock)(\d+)\.(.+)", key):
        block = (f"generator.head_blocks.{m[2]}" if m[1] == "HeadResnetBlock" else
                 f"generator.up_blocks.{int(m[2]).bit_length() - 5}")
        return f"{block}.{_styled_conv_part(m[3], conv)}"
    if key == "G.ToRGB.bias":
        return "generator.to_rgb.bias"
    if m := re.fullmatch(r"G\.ToRGB\.conv\.(.+)", key):
        return "generator.to_rgb." + _modconv_part(m[1])
    if m := re.fullmatch(r"D\.stylegan2_D\.convs\.0\.(.+)", key):
        return f"image_discriminator.from_rgb.{conv[m[1]]}"
    if m := re.fullmatch(r"D\.stylegan2_D\.convs\.([\dx]+)\.(conv1|conv2|skip)\.(.+)", key):
        index = _block_index(m[1], layout.image_log2, 9)
        return f"image_discriminator.blocks.{index}.{m[2]}.{conv[m[3]]}"
    if m := re.fullmatch(r"D\.stylegan2_D\.final_conv\.(.+)", key):
        return f"image_discriminator.final_conv.{conv[m[1]]}"
    if m := re.fullmatch(r"D\.stylegan2_D\.final_linear\.([01])\.(weight|bias)", key):
        return f"image_discriminator.{'final_fc' if m[1] == '0' else 'out_fc'}.{m[2]}"
    if m := re.fullmatch(r"Dpatch\.convs\.0\.(.+)", key):
        return f"patch_discriminator.from_rgb.{conv[m[1]]}"
    if m := re.fullmatch(r"Dpatch\.convs\.6\.(.+)", key):
        return f"patch_discriminator.final_conv.{conv[m[1]]}"
    if m := re.fullmatch(r"Dpatch\.convs\.([\dx]+)\.(conv1|conv2|skip)\.(.+)", key):
        # '5' is the resolution-preserving block after the patch_log2 - 2 down-sampling ones
        index = (layout.patch_log2 - 2 if m[1] == "5"
                 else _block_index(m[1], layout.patch_log2, 7))
        return f"patch_discriminator.blocks.{index}.{m[2]}.{conv[m[3]]}"
    if m := re.fullmatch(r"Dpatch\.pairlinear\.(\d)\.(weight|bias)", key):
        return f"patch_discriminator.pair_mlp.{m[1]}.{m[2]}"
    raise CheckpointError(f"unexpected key '{key}' in an official Swapping Autoencoder "
                          "checkpoint")


def _modconv_part(rest: str) -> str:
    if rest == "weight":
        return "modconv.weight"
    return "modconv.affine." + rest.split(".", 1)[1]  # modulation.weight / modulation.bias


def _styled_conv_part(rest: str, conv: dict[str, str]) -> str | None:
    if m := re.fullmatch(r"(conv[12])\.conv\.(weight|modulation\.weight|modulation\.bias)",
                         rest):
        return f"{m[1]}.{_modconv_part(m[2])}"
    if m := re.fullmatch(r"(conv[12])\.noise\.weight", rest):
        return f"{m[1]}.noise_strength"
    if m := re.fullmatch(r"(conv[12])\.activate\.bias", rest):
        return f"{m[1]}.bias"
    if m := re.fullmatch(r"skip\.(.+)", rest):
        return f"skip.{conv[m[1]]}"
    raise CheckpointError(f"unexpected generator key part '{rest}'")


def convert_official_state(state: dict[str, torch.Tensor], options: dict[str, Any]
                           ) -> dict[str, torch.Tensor]:
    """Rename an official state dict to corrlab's :class:`SwappingAutoencoder` keys."""
    layout = Layout.from_options(options)
    converted = {}
    for key, tensor in state.items():
        target = official_key(key, layout)
        if target is None:
            continue
        if target.endswith("modconv.weight"):
            tensor = tensor[0]  # [1, out, in, k, k] -> [out, in, k, k]
        elif target == "generator.to_rgb.bias":
            tensor = tensor.reshape(-1)
        converted[target] = tensor
    return converted


def inferred_widths(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The two widths the official code hard-codes, read off the tensors."""
    widths: dict[str, Any] = {}
    if "D.stylegan2_D.final_conv.Conv.weight" in state:
        widths["netD_max_channels"] = state["D.stylegan2_D.final_conv.Conv.weight"].shape[0]
    pair = sorted((int(m[1]), t.shape[0]) for k, t in state.items()
                  if (m := re.fullmatch(r"Dpatch\.pairlinear\.(\d)\.weight", k)))
    if pair:
        widths["patch_pair_widths"] = [width for _, width in pair[:-1]]
    return widths


def load_official_swapae(checkpoint: str | Path, options: str | Path | dict,
                         trust_checkpoint: bool = False):
    """A :class:`SwappingAutoencoder` with the weights of an official checkpoint.

    ``options``: the run's ``opt.txt`` (or a JSON / dict of official option values). Official
    checkpoints hold no optimizer state, EMA or counters, so training restarts its Adam moments
    (as the official code does on resume). ``trust_checkpoint``: allow pickled objects beyond
    tensors (refused by default).
    """
    from lightning_modules.swapping_autoencoder.module import SwappingAutoencoder

    path = Path(checkpoint)
    state = safe_load(path, allowed=(), trust=trust_checkpoint)
    if not isinstance(state, dict) or not any(k.startswith("E.") for k in state):
        raise CheckpointError(f"{path}: not an official Swapping Autoencoder checkpoint "
                              "(expected keys starting with 'E.', 'G.').")
    official = read_options(options)
    arguments = {**module_arguments(official), **inferred_widths(state)}
    arguments["lambda_GAN"] = arguments.get("lambda_GAN", 1.0) if any(
        k.startswith("D.") for k in state) else 0.0
    arguments["lambda_PatchGAN"] = arguments.get("lambda_PatchGAN", 1.0) if any(
        k.startswith("Dpatch.") for k in state) else 0.0
    model = SwappingAutoencoder(**arguments)
    converted = convert_official_state(state, official)
    own = model.state_dict()
    for key, tensor in converted.items():
        if key in own and own[key].shape != tensor.shape:
            raise CheckpointError(f"{path}: does not fit the options given: '{key}' is "
                                  f"{tuple(tensor.shape)} in the file but "
                                  f"{tuple(own[key].shape)} for these options.")
    missing, unexpected = model.load_state_dict(converted, strict=False)
    missing = [k for k in missing if not k.startswith(("encoder_ema.", "generator_ema."))]
    if missing or unexpected:
        problem = missing[0] if missing else unexpected[0]
        raise CheckpointError(f"{path}: does not fit the options given ({len(missing)} missing, "
                              f"{len(unexpected)} unexpected tensors; first: '{problem}').")
    if "num_discriminator_iters" in state:
        model.discriminator_steps = int(state["num_discriminator_iters"].item())
    return model

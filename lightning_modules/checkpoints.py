"""Importers for checkpoints written by other code bases.

rosinality/stylegan2-pytorch (used by most public StyleGAN2 PyTorch checkpoints and by the
few-shot CDC code) saves ``torch.save({"g", "d", "g_ema", "g_optim", "d_optim", "args",
"ada_aug_p"})``. :func:`load_rosinality_stylegan2` rebuilds corrlab's :class:`Generator` and
:class:`Discriminator` from it, widths inferred from the tensors, and re-indexes the Adam states
to corrlab's parameter order. Files are read with ``weights_only=True``; only
``argparse.Namespace`` is allowed beyond tensors and plain containers.
"""

from __future__ import annotations

import argparse
import pickle
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lightning_modules.checkpoint_io import CheckpointError, verify_checkpoint_file
from lightning_modules.layers.stylegan2 import Discriminator, Generator

__all__ = ["CheckpointError", "load_rosinality_stylegan2", "safe_load"]


def safe_load(path: str | Path, allowed: tuple[type, ...] = (argparse.Namespace,),
              trust: bool = False) -> Any:
    """``torch.load`` of an external checkpoint: integrity checked, then ``weights_only=True``
    with an explicit allow-list of extra classes; anything else needs ``trust=True`` (the
    ``trust_checkpoint`` option), which unpickles arbitrary objects."""
    path = Path(path)
    verify_checkpoint_file(path, legacy_ok=True)
    try:
        if trust:
            return torch.load(path, map_location="cpu", weights_only=False)
        with torch.serialization.safe_globals(list(allowed)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"{path}: holds Python objects beyond tensors and plain containers "
            f"({str(error).splitlines()[0]}). corrlab reads external checkpoints with "
            "weights_only=True; if you trust this file, set `trust_checkpoint: true`.") from error
    except Exception as error:  # legacy-format damage, ...
        raise CheckpointError(f"{path}: cannot read checkpoint ({type(error).__name__}: "
                              f"{str(error).splitlines()[0]}).") from error


# --- key mapping: rosinality name -> corrlab name ----------------------------------------------

def _styled_conv_target(index: int) -> str:
    """rosinality ``convs.{index}`` -> corrlab block/conv (block 0 holds ``conv1``)."""
    block, is_second = index // 2 + 1, index % 2 == 1
    return f"blocks.{block}.{'conv' if is_second else 'conv_up'}"


def _styled_conv_key(prefix: str, rest: str) -> str | None:
    if rest == "conv.weight":
        return f"{prefix}.modconv.weight"
    if rest.startswith("conv.modulation."):
        return f"{prefix}.modconv.affine.{rest.rsplit('.', 1)[1]}"
    if rest == "noise.weight":
        return f"{prefix}.noise_strength"
    if rest == "activate.bias":
        return f"{prefix}.bias"
    return None  # blur kernels are recomputed


def _to_rgb_key(prefix: str, rest: str) -> str | None:
    if rest == "bias":
        return f"{prefix}.bias"
    if rest == "conv.weight":
        return f"{prefix}.modconv.weight"
    if rest.startswith("conv.modulation."):
        return f"{prefix}.modconv.affine.{rest.rsplit('.', 1)[1]}"
    return None


def generator_key(key: str) -> str | None:
    """corrlab Generator key of a rosinality Generator key (None: a derived buffer)."""
    if m := re.fullmatch(r"style\.(\d+)\.(weight|bias)", key):
        return f"mapping.layers.{int(m[1]) - 1}.{m[2]}"
    if key == "input.input":
        return "const"
    if m := re.fullmatch(r"noises\.noise_(\d+)", key):
        index = int(m[1])
        return ("blocks.0.conv" if index == 0 else _styled_conv_target(index - 1)) + \
            ".fixed_noise"
    if m := re.fullmatch(r"conv1\.(.+)", key):
        return _styled_conv_key("blocks.0.conv", m[1])
    if m := re.fullmatch(r"to_rgb1\.(.+)", key):
        return _to_rgb_key("blocks.0.to_rgb", m[1])
    if m := re.fullmatch(r"convs\.(\d+)\.(.+)", key):
        return _styled_conv_key(_styled_conv_target(int(m[1])), m[2])
    if m := re.fullmatch(r"to_rgbs\.(\d+)\.(.+)", key):
        return _to_rgb_key(f"blocks.{int(m[1]) + 1}.to_rgb", m[2])
    raise CheckpointError(f"unexpected rosinality generator key '{key}'")


def discriminator_key(key: str) -> str | None:
    """corrlab Discriminator key of a rosinality Discriminator key (None: a blur kernel)."""
    if key.endswith(".kernel"):
        return None
    if m := re.fullmatch(r"convs\.0\.([01])\.(weight|bias)", key):
        return "from_rgb.conv.weight" if m[1] == "0" else "from_rgb.bias"
    if m := re.fullmatch(r"convs\.(\d+)\.(conv1|conv2|skip)\.(\d)\.(weight|bias)", key):
        block, layer, kind = int(m[1]) - 1, m[2], m[4]
        return f"blocks.{block}.{layer}.{'conv.weight' if kind == 'weight' else 'bias'}"
    if m := re.fullmatch(r"final_conv\.([01])\.(weight|bias)", key):
        return "final_conv.conv.weight" if m[1] == "0" else "final_conv.bias"
    if m := re.fullmatch(r"final_linear\.([01])\.(weight|bias)", key):
        return f"{'final_fc' if m[1] == '0' else 'out_fc'}.{m[2]}"
    raise CheckpointError(f"unexpected rosinality discriminator key '{key}'")


def convert_state(state: dict[str, torch.Tensor], key_map: Callable[[str], str | None]
                  ) -> dict[str, torch.Tensor]:
    """Rename (and reshape where layouts differ) a rosinality state dict for corrlab."""
    converted = {}
    for key, tensor in state.items():
        target = key_map(key)
        if target is None:
            continue
        if target.endswith("modconv.weight"):
            tensor = tensor[0]  # [1, out, in, k, k] -> [out, in, k, k]
        elif target.endswith("to_rgb.bias"):
            tensor = tensor.reshape(-1)
        converted[target] = tensor
    return converted


# --- configuration inferred from tensors --------------------------------------------------------

def generator_config(state: dict[str, torch.Tensor], lr_mlp: float = 0.01) -> dict[str, Any]:
    """Generator arguments read off a rosinality ``g`` / ``g_ema`` state dict."""
    n_mlp = sum(1 for k in state if re.fullmatch(r"style\.\d+\.weight", k))
    num_upsampling = sum(1 for k in state if re.fullmatch(r"to_rgbs\.\d+\.bias", k))
    channels = {4: state["input.input"].shape[1]}
    for k in range(num_upsampling):
        channels[8 * 2**k] = state[f"convs.{2 * k}.conv.weight"].shape[1]
    kernel = state.get("convs.0.conv.blur.kernel")
    taps = (1, 3, 3, 1) if kernel is None else tuple((kernel[0] / kernel[0].min()).tolist())
    return {"size": 4 * 2**num_upsampling, "style_dim": state["style.1.weight"].shape[1],
            "n_mlp": n_mlp, "channels": channels, "lr_mlp": lr_mlp, "blur_taps": taps}


def discriminator_config(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Discriminator arguments read off a rosinality ``d`` state dict."""
    num_blocks = sum(1 for k in state if re.fullmatch(r"convs\.\d+\.conv1\.0\.weight", k))
    size = 4 * 2**num_blocks
    channels = {size: state["convs.0.0.weight"].shape[0]}
    for k in range(1, num_blocks + 1):
        channels[size // 2**k] = state[f"convs.{k}.conv2.1.weight"].shape[0]
    final_in = state["final_conv.0.weight"].shape[1]
    return {"size": size, "channels": channels,
            "mbstd_group_size": 4 if final_in > channels[4] else 0,
            "mbstd_num_features": max(1, final_in - channels[4])}


def reindex_adam_state(optim_state: dict, source_keys: list[str],
                       key_map: Callable[[str], str | None], module: torch.nn.Module) -> dict:
    """An Adam ``state_dict`` over ``module.parameters()`` from one whose entry i belonged to the
    i-th parameter of the source module (``source_keys`` are its parameter names, in order)."""
    position = {name: i for i, (name, _) in enumerate(module.named_parameters())}
    state = {}
    for source_index, key in enumerate(source_keys):
        if source_index in optim_state["state"]:
            entry = dict(optim_state["state"][source_index])
            target = key_map(key)
            for name in ("exp_avg", "exp_avg_sq"):
                if name in entry and target.endswith("modconv.weight"):
                    entry[name] = entry[name][0]
                elif name in entry and target.endswith("to_rgb.bias"):
                    entry[name] = entry[name].reshape(-1)
            state[position[target]] = entry
    groups = [dict(group, params=sorted(position.values())) for group in
              optim_state["param_groups"][:1]]
    return {"state": state, "param_groups": groups}


def _parameter_keys(state: dict[str, torch.Tensor]) -> list[str]:
    """Parameter names of a rosinality state dict in ``parameters()`` order (buffers left out:
    noise maps and blur kernels)."""
    return [k for k in state if not k.endswith(".kernel") and not k.startswith("noises.")]


@dataclass
class RosinalityCheckpoint:
    """Networks and training state imported from a rosinality checkpoint."""

    generator: Generator | None
    generator_ema: Generator | None
    discriminator: Discriminator | None
    generator_optimizer: dict | None = None
    discriminator_optimizer: dict | None = None
    args: dict = field(default_factory=dict)
    ada_aug_p: float | None = None


def _build(cls, config: dict, state: dict, key_map, path: Path, name: str):
    module = cls(**config)
    try:
        module.load_state_dict(convert_state(state, key_map), strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"{path}: '{name}' does not fit a {cls.__name__} built from its "
                              f"own shapes ({str(error).splitlines()[0]}).") from error
    return module


def load_rosinality_stylegan2(path: str | Path, lr_mlp: float | None = None,
                              trust: bool = False) -> RosinalityCheckpoint:
    """Import a rosinality StyleGAN2 checkpoint (any subset of ``g``, ``g_ema``, ``d``)."""
    path = Path(path)
    checkpoint = safe_load(path, trust=trust)
    if not isinstance(checkpoint, dict) or not {"g", "g_ema", "d"} & set(checkpoint):
        raise CheckpointError(f"{path}: not a rosinality StyleGAN2 checkpoint (expected keys "
                              "'g', 'g_ema' and/or 'd').")
    args = vars(checkpoint["args"]) if isinstance(checkpoint.get("args"), argparse.Namespace) \
        else dict(checkpoint.get("args") or {})
    lr_mlp = lr_mlp if lr_mlp is not None else args.get("lr_mlp", 0.01)
    result = RosinalityCheckpoint(None, None, None, args=args,
                                  ada_aug_p=checkpoint.get("ada_aug_p"))
    for name in ("g", "g_ema"):
        if name in checkpoint:
            network = _build(Generator, generator_config(checkpoint[name], lr_mlp),
                             checkpoint[name], generator_key, path, name)
            setattr(result, "generator" if name == "g" else "generator_ema", network)
    if "d" in checkpoint:
        result.discriminator = _build(Discriminator, discriminator_config(checkpoint["d"]),
                                      checkpoint["d"], discriminator_key, path, "d")
    pairs = (("g_optim", "g", result.generator, "generator_optimizer"),
             ("d_optim", "d", result.discriminator, "discriminator_optimizer"))
    for optim_name, net_name, network, attribute in pairs:
        if optim_name in checkpoint and network is not None:
            key_map = generator_key if net_name == "g" else discriminator_key
            setattr(result, attribute, reindex_adam_state(
                checkpoint[optim_name], _parameter_keys(checkpoint[net_name]), key_map, network))
    return result

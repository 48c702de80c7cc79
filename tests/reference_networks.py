"""Reference networks written out in tests from the reference implementations' layouts, to
check corrlab's networks against (never used by corrlab itself)."""

from __future__ import annotations

import torch
from torch import nn


def adain_vgg(state: dict[str, torch.Tensor], through: int) -> nn.Sequential:
    """The AdaIN encoder (naoto0804/pytorch-AdaIN layout) as a plain Sequential up to module
    ``through``: 1x1 conv, then per conv reflection pad + 3x3 conv + ReLU, ceil-mode pools."""
    layers: list[nn.Module] = [nn.Conv2d(3, 3, 1)]
    widths = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512]
    channels = 3
    for width in widths:
        if width == "M":
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
        else:
            layers += [nn.ReflectionPad2d(1), nn.Conv2d(channels, width, 3), nn.ReLU()]
            channels = width
    network = nn.Sequential(*layers)
    network.load_state_dict(state)
    return network[:through + 1].eval()

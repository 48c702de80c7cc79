"""Networks of AdaConv style transfer (Chandran et al., CVPR 2021, Sec. 3.2-3.3) and of its AdaIN
baseline (Huang & Belongie, ICCV 2017, Sec. 6).

Both decode VGG-19 ``relu4_1`` features (512 channels, 1/8 of the image) back to an image with a
decoder that mirrors VGG: 512 -> 256 -> 128 -> 64 -> 3 with nearest up-sampling and reflection
padding. The AdaIN decoder is the reference implementation's layout (so its pretrained weights
load by index); the AdaConv decoder starts every scale with an :class:`AdaConv2d` block whose
kernels come from the style tensor ``W`` of the :class:`StyleEncoder`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lightning_modules.layers.adaconv import AdaConv2d

#: (input width, output width, convs) per decoder scale, the mirror of VGG-19 up to relu4_1
DECODER_SCALES = ((512, 256, 1), (256, 128, 4), (128, 64, 2), (64, 3, 2))


def _conv(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, padding=1, padding_mode="reflect")


class AdaINDecoder(nn.Module):
    """The AdaIN decoder as one ``nn.Sequential`` (reflection pad + 3x3 conv + ReLU, nearest
    x2 after the first, fifth and seventh conv, no activation after the last), indexed like the
    reference ``decoder.pth``: a pad at every even index before a conv."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        widths = [(512, 256), (256, 256), (256, 256), (256, 256), (256, 128), (128, 128),
                  (128, 64), (64, 64), (64, 3)]
        for index, (cin, cout) in enumerate(widths):
            layers += [nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3)]
            if index < len(widths) - 1:
                layers.append(nn.ReLU())
            if index in (0, 4, 6):
                layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
        self.layers = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


class StyleEncoder(nn.Module):
    """``relu4_1`` of the style image (``512 x s/8 x s/8``) -> ``W`` (``s_d x k x k``): 3x3
    conv + 2x average pooling + leaky ReLU stages down to 4 x 4, then a fully connected layer
    (Sec. 3.3; the stage count follows from ``style_size``, 3 stages at 256 px)."""

    def __init__(self, style_size: int = 256, style_channels: int = 512,
                 kernel_size: int = 3, features: int = 512) -> None:
        super().__init__()
        side = style_size // 8
        if side < 4 or side & (side - 1):
            raise ValueError(f"style_size {style_size} must be a power of two >= 32")
        stages = int(math.log2(side // 4))
        self.stages = nn.Sequential(*[nn.Sequential(_conv(features, features),
                                                    nn.AvgPool2d(2), nn.LeakyReLU(0.2))
                                      for _ in range(stages)])
        self.style_channels, self.kernel_size = style_channels, kernel_size
        self.fc = nn.Linear(features * 16, style_channels * kernel_size ** 2)

    def forward(self, style_features: torch.Tensor) -> torch.Tensor:
        x = self.stages(style_features).flatten(1)
        return self.fc(x).reshape(-1, self.style_channels, self.kernel_size, self.kernel_size)


class AdaConvDecoder(nn.Module):
    """Per scale (widths :data:`DECODER_SCALES`): an AdaConv block (``n_groups`` 512, 128, 32,
    8 by default) whose fixed conv changes the width where VGG's mirror does, the remaining
    3x3 convs with ReLU, and nearest x2 up-sampling after every scale but the last; no
    activation after the final conv."""

    def __init__(self, style_channels: int = 512,
                 n_groups: tuple[int, ...] = (512, 128, 32, 8), kernel_size: int = 3) -> None:
        super().__init__()
        self.adaconvs, self.convs = nn.ModuleList(), nn.ModuleList()
        for scale, ((cin, cout, convs), groups) in enumerate(
                zip(DECODER_SCALES, n_groups, strict=True)):
            last = scale == len(DECODER_SCALES) - 1
            first_out = cin if convs > 1 else cout
            self.adaconvs.append(AdaConv2d(cin, first_out, style_channels, groups, kernel_size))
            rest: list[nn.Module] = [] if convs == 1 and last else [nn.ReLU()]
            for i in range(1, convs):
                out = cout if i == convs - 1 else cin
                rest.append(_conv(cin, out))
                if not (last and i == convs - 1):
                    rest.append(nn.ReLU())
            if not last:
                rest.append(nn.Upsample(scale_factor=2, mode="nearest"))
            self.convs.append(nn.Sequential(*rest))

    def forward(self, content_features: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        x = content_features
        for adaconv, convs in zip(self.adaconvs, self.convs, strict=True):
            x = convs(adaconv(x, style))
        return x

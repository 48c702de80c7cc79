"""StyleGAN2 networks (Karras et al., CVPR 2020): mapping network, synthesis network with
constant input, styled convolutions, noise injection and to-RGB skips, and the residual
discriminator with optional minibatch standard deviation.

Channel widths come from ``size`` and ``channel_multiplier`` (the paper's table: 512 up to 32 px,
then ``256 * cm`` at 64, ``128 * cm`` at 128, ...) or from an explicit ``channels`` table, so
tiny models are possible. Latent index layout (``n_latent = 2 log2(size) - 2``): the 4x4 conv
uses w[0]; block k >= 1 uses w[2k-1] (upsampling conv) and w[2k] (conv); each to-RGB uses the
next index, w[2k+1].
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lightning_modules.layers.modulation import ModulatedConv2d
from lightning_modules.layers.ops import (
    Blur,
    EqualConv2d,
    EqualLinear,
    PixelNorm,
    Upsample2x,
    bias_leaky_relu,
)

BLUR_TAPS = (1, 3, 3, 1)


def channel_table(size: int, channel_multiplier: int = 2,
                  channels: dict[int, int] | None = None) -> dict[int, int]:
    """Channels per resolution 4 ... ``size``: the paper's table, entries of ``channels`` win."""
    if size < 4 or size & (size - 1):
        raise ValueError(f"size must be a power of two >= 4, got {size}")
    cm = channel_multiplier
    table = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * cm, 128: 128 * cm, 256: 64 * cm,
             512: 32 * cm, 1024: 16 * cm, 2048: 8 * cm}
    table.update({int(k): int(v) for k, v in (channels or {}).items()})
    return {4 * 2**i: table[4 * 2**i] for i in range(int(math.log2(size)) - 1)}


class MappingNetwork(nn.Module):
    """z -> w: pixel norm, then ``num_layers`` equalized linear layers with leaky ReLU and a
    reduced learning rate ``lr_mul`` (Karras et al. 2019, Sec. 2)."""

    def __init__(self, style_dim: int, num_layers: int = 8, lr_mul: float = 0.01) -> None:
        super().__init__()
        self.norm = PixelNorm()
        self.layers = nn.ModuleList(EqualLinear(style_dim, style_dim, lr_mul=lr_mul,
                                                activation=True) for _ in range(num_layers))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        w = self.norm(z)
        for layer in self.layers:
            w = layer(w)
        return w


#: ``(in_channels, out_channels, kernel_size, style_dim, upsample, blur_taps)`` -> a module
#: whose ``forward(x, w)`` is a style-driven convolution (the conv of a :class:`StyledConv`)
ConvFactory = Callable[[int, int, int, int, bool, Sequence[float]], nn.Module]


def modulated_conv(in_channels: int, out_channels: int, kernel_size: int, style_dim: int,
                   upsample: bool = False, blur_taps: Sequence[float] = BLUR_TAPS
                   ) -> ModulatedConv2d:
    """StyleGAN2's weight modulation and demodulation (the default factory)."""
    return ModulatedConv2d(in_channels, out_channels, kernel_size, style_dim,
                           upsample=upsample, blur_taps=blur_taps)


class StyledConv(nn.Module):
    """Style-driven 3x3 conv (modulated by default, any :data:`ConvFactory`), per-pixel noise
    scaled by a learned strength, bias + leaky ReLU.

    ``fixed_noise`` (only with a ``resolution``) is a constant noise map used with
    ``randomize_noise=False``. ``use_noise=False`` skips the noise (the strength parameter is
    kept, as in the Swapping Autoencoder code); ``style_on_input`` selects that paper's
    modulation (see :class:`ModulatedConv2d`)."""

    def __init__(self, in_channels: int, out_channels: int, style_dim: int,
                 resolution: int | None = None, upsample: bool = False,
                 blur_taps: Sequence[float] = BLUR_TAPS, use_noise: bool = True,
                 style_on_input: bool = False, conv_factory: ConvFactory | None = None
                 ) -> None:
        super().__init__()
        if conv_factory is None:
            self.modconv = ModulatedConv2d(in_channels, out_channels, 3, style_dim,
                                           upsample=upsample, blur_taps=blur_taps,
                                           style_on_input=style_on_input)
        else:
            self.modconv = conv_factory(in_channels, out_channels, 3, style_dim, upsample,
                                        tuple(blur_taps))
        self.noise_strength = nn.Parameter(torch.zeros(1))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.use_noise = use_noise
        if resolution is not None:
            self.register_buffer("fixed_noise", torch.randn(1, 1, resolution, resolution))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None = None,
                randomize_noise: bool = True) -> torch.Tensor:
        x = self.modconv(x, w)
        if self.use_noise:
            if noise is None:
                noise = (x.new_empty(x.shape[0], 1, *x.shape[2:]).normal_() if randomize_noise
                         else self.fixed_noise)
            elif noise.shape[2:] != x.shape[2:]:
                noise = F.interpolate(noise, size=x.shape[2:], mode="nearest")
            x = x + self.noise_strength * noise
        return bias_leaky_relu(x, self.bias)


class ToRGB(nn.Module):
    """Modulated 1x1 conv to RGB without demodulation, plus the upsampled previous RGB."""

    def __init__(self, in_channels: int, style_dim: int, upsample_skip: bool,
                 blur_taps: Sequence[float] = BLUR_TAPS) -> None:
        super().__init__()
        self.modconv = ModulatedConv2d(in_channels, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(3))
        self.upsample = Upsample2x(blur_taps) if upsample_skip else None

    def forward(self, x: torch.Tensor, w: torch.Tensor, skip: torch.Tensor | None = None
                ) -> torch.Tensor:
        rgb = self.modconv(x, w) + self.bias.view(1, 3, 1, 1)
        if skip is not None:
            rgb = rgb + self.upsample(skip)
        return rgb


class SynthesisBlock(nn.Module):
    """One resolution: (upsampling styled conv,) styled conv, to-RGB."""

    def __init__(self, in_channels: int, out_channels: int, style_dim: int, resolution: int,
                 blur_taps: Sequence[float], conv_factory: ConvFactory | None = None) -> None:
        super().__init__()
        first = resolution == 4
        self.conv_up = None if first else StyledConv(in_channels, out_channels, style_dim,
                                                     resolution, upsample=True,
                                                     blur_taps=blur_taps,
                                                     conv_factory=conv_factory)
        self.conv = StyledConv(out_channels, out_channels, style_dim, resolution,
                               blur_taps=blur_taps, conv_factory=conv_factory)
        self.to_rgb = ToRGB(out_channels, style_dim, upsample_skip=not first,
                            blur_taps=blur_taps)

    @property
    def styled_convs(self) -> list[StyledConv]:
        return [self.conv] if self.conv_up is None else [self.conv_up, self.conv]


class Generator(nn.Module):
    """StyleGAN2 generator.

    Args:
        size: output resolution (power of two).
        style_dim: dimension of z and w.
        n_mlp: mapping network depth.
        channel_multiplier: widths above 32 px (see :func:`channel_table`).
        channels: explicit ``{resolution: channels}`` entries overriding the table.
        lr_mlp: learning-rate multiplier of the mapping network.
        blur_taps: FIR filter taps for up-sampling.
        conv_factory: the styled convs' convolution (default: weight modulation,
            :func:`modulated_conv`; AdaConv: :func:`lightning_modules.layers.adaconv.
            adaconv_factory`). The to-RGB layers stay modulated.
    """

    def __init__(self, size: int, style_dim: int = 512, n_mlp: int = 8,
                 channel_multiplier: int = 2, channels: dict[int, int] | None = None,
                 lr_mlp: float = 0.01, blur_taps: Sequence[float] = BLUR_TAPS,
                 conv_factory: ConvFactory | None = None) -> None:
        super().__init__()
        self.size, self.style_dim = size, style_dim
        self.channels = channel_table(size, channel_multiplier, channels)
        self.mapping = MappingNetwork(style_dim, n_mlp, lr_mlp)
        self.const = nn.Parameter(torch.randn(1, self.channels[4], 4, 4))
        resolutions = sorted(self.channels)
        self.blocks = nn.ModuleList(
            SynthesisBlock(self.channels[max(4, r // 2)], self.channels[r], style_dim, r,
                           tuple(blur_taps), conv_factory) for r in resolutions)
        self.n_latent = 2 * len(resolutions)

    @property
    def styled_convs(self) -> list[StyledConv]:
        """Every styled conv in forward order (``2 log2(size) - 3`` of them)."""
        return [conv for block in self.blocks for conv in block.styled_convs]

    def noise_shapes(self, batch: int) -> list[tuple[int, int, int, int]]:
        """Shapes of the per-layer noise maps ``forward(noise=...)`` expects."""
        return [(batch, 1, *conv.fixed_noise.shape[2:]) for conv in self.styled_convs]

    @torch.no_grad()
    def mean_w(self, n: int = 4096, generator: torch.Generator | None = None) -> torch.Tensor:
        """Average w of ``n`` random z (the truncation centre), ``1 x style_dim``."""
        z = torch.randn(n, self.style_dim, generator=generator).to(self.const.device)
        return self.mapping(z).mean(dim=0, keepdim=True)

    def styles_to_ws(self, styles: list[torch.Tensor], inject_index: int | None
                     ) -> torch.Tensor:
        """Broadcast one or two w (``B x D``) to ``B x n_latent x D`` (style mixing)."""
        if len(styles) == 1:
            return styles[0][:, None].expand(-1, self.n_latent, -1)
        if len(styles) != 2:
            raise ValueError(f"expected one or two styles, got {len(styles)}")
        if inject_index is None:
            inject_index = int(torch.randint(1, self.n_latent, ()).item())
        return torch.cat([styles[0][:, None].expand(-1, inject_index, -1),
                          styles[1][:, None].expand(-1, self.n_latent - inject_index, -1)], 1)

    def synthesize(self, ws: torch.Tensor, noise: Sequence[torch.Tensor | None] | None = None,
                   randomize_noise: bool = True, return_features: bool = False):
        """Images from per-layer styles ``ws`` (``B x n_latent x D``); with
        ``return_features`` also every styled conv's output, in forward order."""
        convs = self.styled_convs
        noise = list(noise) if noise is not None else [None] * len(convs)
        if len(noise) != len(convs):
            raise ValueError(f"expected {len(convs)} noise maps, got {len(noise)}")
        x = self.const.expand(ws.shape[0], -1, -1, -1)
        rgb, features, layer = None, [], 0
        for block in self.blocks:
            for conv in block.styled_convs:
                x = conv(x, ws[:, layer], noise[layer], randomize_noise)
                features.append(x)
                layer += 1
            rgb = block.to_rgb(x, ws[:, layer], rgb)
        return (rgb, features) if return_features else rgb

    def forward(self, styles: torch.Tensor | list[torch.Tensor], input_is_w: bool = False,
                truncation: float = 1.0, truncation_w: torch.Tensor | None = None,
                inject_index: int | None = None,
                noise: Sequence[torch.Tensor | None] | None = None,
                randomize_noise: bool = True, return_ws: bool = False,
                return_features: bool = False):
        """Images from z (or w with ``input_is_w``); two styles mix at ``inject_index``.

        Truncation ``w' = w_avg + t (w - w_avg)`` is applied to each style before mixing.
        Returns the images, plus ``ws`` and/or the styled-conv features when asked.
        """
        styles = [styles] if torch.is_tensor(styles) else list(styles)
        if not input_is_w:
            styles = [self.mapping(z) for z in styles]
        if truncation < 1.0:
            if truncation_w is None:
                raise ValueError("truncation < 1 needs truncation_w (see mean_w())")
            styles = [truncation_w + truncation * (w - truncation_w) for w in styles]
        ws = self.styles_to_ws(styles, inject_index)
        images, features = self.synthesize(ws, noise, randomize_noise, return_features=True)
        out = (images,) + ((ws,) if return_ws else ()) + ((features,) if return_features else ())
        return out[0] if len(out) == 1 else out


class ConvAct(nn.Module):
    """Equalized conv, then bias + leaky ReLU (x sqrt 2), or a plain bias (``activate=False``),
    or no bias (``bias=False``).

    ``downsample``: FIR blur then stride-2 conv; the blur pads ``pad`` in total (default
    ``len(taps) - 2 + kernel_size - 1``). Otherwise the conv pads ``pad`` (default
    ``kernel_size // 2``). ``reflect`` pads by reflection instead of zeros.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 downsample: bool = False, activate: bool = True, bias: bool = True,
                 blur_taps: Sequence[float] = BLUR_TAPS, pad: int | None = None,
                 reflect: bool = False) -> None:
        super().__init__()
        self.reflect_pad = 0
        if downsample:
            p = (len(blur_taps) - 2) + (kernel_size - 1) if pad is None else pad
            self.blur = Blur(blur_taps, ((p + 1) // 2, p // 2), reflect=reflect)
            self.conv = EqualConv2d(in_channels, out_channels, kernel_size, stride=2,
                                    bias=False)
        else:
            self.blur = None
            padding = kernel_size // 2 if pad is None else pad
            if reflect:
                self.reflect_pad, padding = padding, 0
            self.conv = EqualConv2d(in_channels, out_channels, kernel_size, padding=padding,
                                    bias=False)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.activate = activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.blur is not None:
            x = self.blur(x)
        elif self.reflect_pad:
            x = F.pad(x, (self.reflect_pad,) * 4, mode="reflect")
        x = self.conv(x)
        if self.activate:
            return bias_leaky_relu(x, self.bias)
        return x if self.bias is None else x + self.bias.view(1, -1, 1, 1)


class ResidualBlock(nn.Module):
    """Discriminator / encoder block: two 3x3 convs (the second down-sampling) plus a 1x1
    down-sampling skip without bias or activation, summed and scaled by 1/sqrt(2).
    ``reflect`` pads the 3x3 convs by reflection; ``downsample=False`` keeps the resolution."""

    def __init__(self, in_channels: int, out_channels: int,
                 blur_taps: Sequence[float] = BLUR_TAPS, reflect: bool = False,
                 downsample: bool = True) -> None:
        super().__init__()
        self.conv1 = ConvAct(in_channels, in_channels, 3, reflect=reflect)
        self.conv2 = ConvAct(in_channels, out_channels, 3, downsample=downsample,
                             blur_taps=blur_taps, reflect=reflect)
        self.skip = ConvAct(in_channels, out_channels, 1, downsample=downsample,
                            activate=False, bias=False, blur_taps=blur_taps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2.0)


def minibatch_stddev(x: torch.Tensor, group_size: int, num_features: int = 1) -> torch.Tensor:
    """Append the standard deviation across groups of samples (Karras et al. 2018, Sec. 3).

    Sample i belongs to group ``i mod (N / G)``; each of ``num_features`` channel slices gets one
    averaged std, broadcast over the map. ``N`` must be divisible by ``G = min(group_size, N)``.
    """
    batch, channels, height, width = x.shape
    group = min(group_size, batch)
    if batch % group:
        raise ValueError(f"minibatch stddev: batch {batch} is not divisible by the group size "
                         f"{group}; use a batch that is a multiple of {group_size}")
    y = x.reshape(group, -1, num_features, channels // num_features, height, width)
    y = (y.var(dim=0, unbiased=False) + 1e-8).sqrt()
    y = y.mean(dim=(2, 3, 4)).reshape(-1, num_features, 1, 1)
    y = y.repeat(group, 1, height, width)
    return torch.cat([x, y], dim=1)


class Discriminator(nn.Module):
    """StyleGAN2 residual discriminator.

    Args:
        size: input resolution.
        channel_multiplier / channels: widths, as for :class:`Generator`.
        mbstd_group_size: minibatch-stddev group size; 0 disables the layer.
        mbstd_num_features: channels appended by minibatch stddev.
        condition_channels: channels of an image-like condition ``c`` concatenated to the
            images (0: unconditional, rosinality's layout).
    """

    def __init__(self, size: int, channel_multiplier: int = 2,
                 channels: dict[int, int] | None = None, mbstd_group_size: int = 4,
                 mbstd_num_features: int = 1, blur_taps: Sequence[float] = BLUR_TAPS,
                 condition_channels: int = 0) -> None:
        super().__init__()
        self.size, self.condition_channels = size, condition_channels
        self.channels = channel_table(size, channel_multiplier, channels)
        self.mbstd_group_size, self.mbstd_num_features = mbstd_group_size, mbstd_num_features
        self.from_rgb = ConvAct(3 + condition_channels, self.channels[size], 1)
        resolutions = sorted(self.channels, reverse=True)[:-1]  # size ... 8
        self.blocks = nn.ModuleList(ResidualBlock(self.channels[r], self.channels[r // 2],
                                                  blur_taps) for r in resolutions)
        extra = mbstd_num_features if mbstd_group_size > 0 else 0
        c4 = self.channels[4]
        self.final_conv = ConvAct(c4 + extra, c4, 3)
        self.final_fc = EqualLinear(c4 * 16, c4, activation=True)
        self.out_fc = EqualLinear(c4, 1)

    def forward(self, images: torch.Tensor, condition: torch.Tensor | None = None,
                return_features: bool = False):
        """Logits ``N x 1`` of ``D(images, condition)``; with ``return_features`` also the
        output of from-RGB and of every residual block (resolutions size, size/2, ..., 4)."""
        if (condition is None) != (self.condition_channels == 0):
            raise ValueError(f"this discriminator takes a condition of "
                             f"{self.condition_channels} channels; got "
                             f"{'none' if condition is None else condition.shape[1]}")
        x = self.from_rgb(images if condition is None else torch.cat([images, condition], 1))
        features = [x]
        for block in self.blocks:
            x = block(x)
            features.append(x)
        if self.mbstd_group_size > 0:
            x = minibatch_stddev(x, self.mbstd_group_size, self.mbstd_num_features)
        x = self.final_conv(x)
        logits = self.out_fc(self.final_fc(x.flatten(1)))
        return (logits, features) if return_features else logits

    def residual_branch(self, images: torch.Tensor, resolution: int) -> torch.Tensor:
        """The residual branch ``conv2(conv1(x))`` (before the skip is added) of the block
        whose output has ``resolution`` px, computing only the layers up to it: the feature
        CDC's patch-level critic reads (the official ``Patch_Discriminator``'s first feature,
        at 32 px)."""
        if self.condition_channels:
            raise ValueError("residual_branch is for unconditional discriminators")
        x = self.from_rgb(images)
        for block in self.blocks:
            if x.shape[-1] == 2 * resolution:
                return block.conv2(block.conv1(x))
            x = block(x)
        raise ValueError(f"no discriminator block outputs {resolution} px for {images.shape[-1]} "
                         f"px images")

"""Swapping Autoencoder networks (Park et al., NeurIPS 2020, App. B and Fig. 18), following the
official code (taesungp/swapping-autoencoder-pytorch) where it differs from the paper.

* :class:`Encoder`: image -> ``structure_code`` (``B x 8 x H/16 x W/16``, unit norm per pixel)
  and ``texture_code`` (``B x 2048``, unit norm).
* :class:`Generator`: (structure_code, texture_code) -> image.
* :func:`image_discriminator`: StyleGAN2 residual D without minibatch stddev (commented out in
  the official code), widths ``2 * netD_scale_capacity`` times the StyleGAN2 table, capped.
* :class:`PatchDiscriminator`: the co-occurrence discriminator on random crops (Sec. 3.2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lightning_modules.layers.modulation import ModulatedConv2d
from lightning_modules.layers.ops import EqualLinear
from lightning_modules.layers.stylegan2 import ConvAct, Discriminator, ResidualBlock, StyledConv


def l2_normalize(x: torch.Tensor) -> torch.Tensor:
    """Unit L2 norm over dimension 1 (channels): ``x / sqrt(sum x^2 + 1e-8)``."""
    return x * torch.rsqrt(x.pow(2).sum(dim=1, keepdim=True) + 1e-8)


def swap_pairs(x: torch.Tensor) -> torch.Tensor:
    """Swap adjacent batch entries (0<->1, 2<->3, ...): the official ``swap`` of the batch."""
    if x.shape[0] % 2:
        raise ValueError(f"swapping needs an even batch, got {x.shape[0]}")
    return x.reshape(x.shape[0] // 2, 2, *x.shape[1:]).flip(1).reshape(x.shape)


class Encoder(nn.Module):
    """Residual encoder with a structure head and a texture head.

    Widths ``nc(i) = min(texture_dim, round(steepness^(5+i) * scale_capacity))``; 4 reflection-
    padded, anti-aliased (blur [1, 2, 1]) down-sampling blocks to the structure resolution, then
    ``num_downsampling_texture`` unpadded stride-2 3x3 convs, a spatial mean and a linear map.
    """

    def __init__(self, structure_channels: int = 8, texture_dim: int = 2048,
                 scale_capacity: float = 1.0, num_downsampling_structure: int = 4,
                 num_downsampling_texture: int = 2, nc_steepness: float = 2.0,
                 antialias: bool = True) -> None:
        super().__init__()
        self.texture_dim, self.steepness, self.capacity = texture_dim, nc_steepness, \
            scale_capacity
        taps = (1, 2, 1) if antialias else (1,)
        nc = self.nc
        self.from_rgb = ConvAct(3, nc(0), 1)
        self.down_blocks = nn.ModuleList(
            ResidualBlock(nc(i), nc(i + 1), taps, reflect=True)
            for i in range(num_downsampling_structure))
        mid = nc(num_downsampling_structure)
        self.structure_head = nn.Sequential(ConvAct(mid, mid, 1),
                                            ConvAct(mid, structure_channels, 1, activate=False))
        first = num_downsampling_structure
        self.texture_downs = nn.Sequential(*(
            ConvAct(nc(first + i), nc(first + i + 1), 3, downsample=True, blur_taps=(1,), pad=0)
            for i in range(num_downsampling_texture)))
        self.texture_fc = EqualLinear(nc(first + num_downsampling_texture), texture_dim)

    def nc(self, index: int) -> int:
        return round(min(self.texture_dim, int(round(self.steepness ** (5 + index) *
                                                     self.capacity))))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.from_rgb(images)
        for block in self.down_blocks:
            x = block(x)
        structure_code = self.structure_head(x)
        texture_code = self.texture_fc(self.texture_downs(x).mean(dim=(2, 3)))
        return l2_normalize(structure_code), l2_normalize(texture_code)


class CodeModulation(nn.Module):
    """FiLM of the structure code by the texture code: ``s * scale(t) + shift(t)``."""

    def __init__(self, texture_dim: int, structure_channels: int) -> None:
        super().__init__()
        self.scale = EqualLinear(texture_dim, structure_channels)
        self.shift = EqualLinear(texture_dim, structure_channels)

    def forward(self, structure_code: torch.Tensor, texture_code: torch.Tensor) -> torch.Tensor:
        return (structure_code * self.scale(texture_code)[:, :, None, None]
                + self.shift(texture_code)[:, :, None, None])


class HeadBlock(nn.Module):
    """Resolution-preserving residual block of two styled convs; skip is a bias-free 1x1 conv
    (identity when widths match); output ``(skip + residual) / sqrt(2)``."""

    def __init__(self, in_channels: int, out_channels: int, texture_dim: int) -> None:
        super().__init__()
        self.conv1 = StyledConv(in_channels, out_channels, texture_dim, style_on_input=True)
        self.conv2 = StyledConv(out_channels, out_channels, texture_dim, style_on_input=True)
        self.skip = (ConvAct(in_channels, out_channels, 1, activate=False, bias=False)
                     if in_channels != out_channels else nn.Identity())

    @property
    def styled_convs(self) -> list[StyledConv]:
        return [self.conv1, self.conv2]

    def forward(self, x: torch.Tensor, texture_code: torch.Tensor,
                noise: Sequence[torch.Tensor | None]) -> torch.Tensor:
        residual = self.conv2(self.conv1(x, texture_code, noise[0]), texture_code, noise[1])
        return (self.skip(x) + residual) / math.sqrt(2.0)


class UpBlock(HeadBlock):
    """Up-sampling residual block: styled conv x2 up, styled conv; skip is a 1x1 conv with bias +
    leaky ReLU (identity when widths match) followed by bilinear x2 up-sampling."""

    def __init__(self, in_channels: int, out_channels: int, texture_dim: int,
                 blur_taps: Sequence[float], use_noise: bool) -> None:
        nn.Module.__init__(self)
        self.conv1 = StyledConv(in_channels, out_channels, texture_dim, upsample=True,
                                blur_taps=blur_taps, use_noise=use_noise, style_on_input=True)
        self.conv2 = StyledConv(out_channels, out_channels, texture_dim, use_noise=use_noise,
                                style_on_input=True)
        self.skip = (ConvAct(in_channels, out_channels, 1) if in_channels != out_channels
                     else nn.Identity())

    def forward(self, x: torch.Tensor, texture_code: torch.Tensor,
                noise: Sequence[torch.Tensor | None]) -> torch.Tensor:
        skip = F.interpolate(self.skip(x), scale_factor=2, mode="bilinear", align_corners=False)
        residual = self.conv2(self.conv1(x, texture_code, noise[0]), texture_code, noise[1])
        return (skip + residual) / math.sqrt(2.0)


class ToRGB(nn.Module):
    """Modulated 1x1 conv to RGB (no demodulation) plus a bias."""

    def __init__(self, in_channels: int, texture_dim: int) -> None:
        super().__init__()
        self.modconv = ModulatedConv2d(in_channels, 3, 1, texture_dim, demodulate=False,
                                       style_on_input=True)
        self.bias = nn.Parameter(torch.zeros(3))

    def forward(self, x: torch.Tensor, texture_code: torch.Tensor) -> torch.Tensor:
        return self.modconv(x, texture_code) + self.bias.view(1, 3, 1, 1)


class Generator(nn.Module):
    """Decoder: code modulation, ``num_head_blocks`` resolution-preserving blocks growing to
    ``nf(0)`` channels, ``num_upsampling`` up-sampling blocks of ``nf(j + 1)`` channels, to-RGB.
    ``nf(j) = int(min(512, 128 * 2^(num_upsampling - j)) * scale_capacity)``. Both codes are
    re-normalised on entry, as in the official code."""

    def __init__(self, structure_channels: int = 8, texture_dim: int = 2048,
                 scale_capacity: float = 1.0, num_upsampling: int = 4,
                 num_head_blocks: int = 2, use_noise: bool = True, antialias: bool = True
                 ) -> None:
        super().__init__()
        self.num_upsampling, self.capacity = num_upsampling, scale_capacity
        taps = (1, 3, 3, 1) if antialias else (1,)
        self.code_modulation = CodeModulation(texture_dim, structure_channels)
        channels = structure_channels
        self.head_blocks = nn.ModuleList()
        for i in range(num_head_blocks):
            out = max(structure_channels, round((i + 1) / num_head_blocks * self.nf(0)))
            self.head_blocks.append(HeadBlock(channels, out, texture_dim))
            channels = out
        self.up_blocks = nn.ModuleList()
        for j in range(num_upsampling):
            self.up_blocks.append(UpBlock(channels, self.nf(j + 1), texture_dim, taps,
                                          use_noise))
            channels = self.nf(j + 1)
        self.to_rgb = ToRGB(channels, texture_dim)

    def nf(self, index: int) -> int:
        return int(min(512, 128 * 2 ** (self.num_upsampling - index)) * self.capacity)

    @property
    def blocks(self) -> list[HeadBlock]:
        return list(self.head_blocks) + list(self.up_blocks)

    @property
    def styled_convs(self) -> list[StyledConv]:
        return [conv for block in self.blocks for conv in block.styled_convs]

    def noise_shapes(self, batch: int, code_size: tuple[int, int]) -> list[tuple[int, ...]]:
        """Shapes of the per-layer noise maps for structure codes of spatial size ``code_size``."""
        height, width = code_size
        shapes = [(batch, 1, height, width)] * (2 * len(self.head_blocks))
        for j in range(len(self.up_blocks)):
            shapes += [(batch, 1, height * 2 ** (j + 1), width * 2 ** (j + 1))] * 2
        return shapes

    def forward(self, structure_code: torch.Tensor, texture_code: torch.Tensor,
                noise: Sequence[torch.Tensor | None] | None = None) -> torch.Tensor:
        """Images from the codes; ``noise`` gives every styled conv's noise map (broadcast over
        the batch when its first dimension is 1; resized when its size differs)."""
        structure_code, texture_code = l2_normalize(structure_code), l2_normalize(texture_code)
        noise = list(noise) if noise is not None else [None] * len(self.styled_convs)
        x = self.code_modulation(structure_code, texture_code)
        for index, block in enumerate(self.blocks):
            x = block(x, texture_code, noise[2 * index: 2 * index + 2])
        return self.to_rgb(x, texture_code)


def discriminator_channels(size: int, channel_multiplier: float, max_channels: int = 512
                           ) -> dict[int, int]:
    """The official Swapping Autoencoder D table: ``max_channels`` at 4 and 8,
    ``min(max_channels, int(512 cm))`` at 16 and 32, ``int(256 cm)`` at 64, halving above."""
    cm = channel_multiplier
    table = {4: max_channels, 8: max_channels, 16: min(max_channels, int(512 * cm)),
             32: min(max_channels, int(512 * cm)), 64: int(256 * cm), 128: int(128 * cm),
             256: int(64 * cm), 512: int(32 * cm), 1024: int(16 * cm)}
    return {r: c for r, c in table.items() if r <= size}


def image_discriminator(size: int, scale_capacity: float = 1.0, max_channels: int = 512,
                        antialias: bool = True) -> Discriminator:
    """StyleGAN2 residual D without minibatch stddev, ``channel_multiplier = 2 x capacity``."""
    return Discriminator(size, channels=discriminator_channels(size, 2 * scale_capacity,
                                                               max_channels),
                         mbstd_group_size=0, blur_taps=(1, 3, 3, 1) if antialias else (1,))


class PatchDiscriminator(nn.Module):
    """Co-occurrence patch discriminator: a residual encoder of ``patch_size`` crops down to
    ``2 x 2 x max_channels`` features, and a pairwise MLP scoring (reference, query) features.

    Widths: ``min(max_channels, int(256, 128, 64 x cm))`` at 4, 8, 16, ``int(32, 16, 8 x cm)``
    at 32, 64, 128; a resolution-preserving block to ``2 max_channels`` and an unpadded 3x3 conv
    to ``max_channels``. ``pair_widths`` are the hidden widths of the MLP (official: 2048, 2048,
    1024, hard-coded there).
    """

    def __init__(self, patch_size: int = 128, scale_capacity: float = 4.0,
                 max_channels: int = 384, pair_widths: Sequence[int] = (2048, 2048, 1024),
                 antialias: bool = True) -> None:
        super().__init__()
        cm = scale_capacity
        table = {4: min(max_channels, int(256 * cm)), 8: min(max_channels, int(128 * cm)),
                 16: min(max_channels, int(64 * cm)), 32: int(32 * cm), 64: int(16 * cm),
                 128: int(8 * cm), 256: int(4 * cm)}
        log_size = math.ceil(math.log2(patch_size))
        taps = (1, 3, 3, 1) if antialias else (1,)
        channels = table[2**log_size]
        self.from_rgb = ConvAct(3, channels, 3)
        blocks = []
        for i in range(log_size, 2, -1):
            blocks.append(ResidualBlock(channels, table[2 ** (i - 1)], taps))
            channels = table[2 ** (i - 1)]
        blocks.append(ResidualBlock(channels, 2 * max_channels, downsample=False))
        self.blocks = nn.Sequential(*blocks)
        self.final_conv = ConvAct(2 * max_channels, max_channels, 3, pad=0)
        widths = [table[4] * 2 * 2 * 2, *pair_widths]
        self.pair_mlp = nn.Sequential(*(EqualLinear(a, b, activation=True)
                                        for a, b in zip(widths[:-1], widths[1:], strict=True)),
                                      EqualLinear(widths[-1], 1))

    def features(self, crops: torch.Tensor, aggregate: bool = False) -> torch.Tensor:
        """Features of crops ``B x T x 3 x P x P`` -> ``(B T) x C x 2 x 2``; ``aggregate``
        replaces each image's T features by their mean (the reference of Sec. 3.2)."""
        return self.features_together([crops], [aggregate])[0]

    def features_together(self, crop_sets: Sequence[torch.Tensor], aggregate: Sequence[bool]
                          ) -> list[torch.Tensor]:
        """:meth:`features` of several crop sets in one pass of the encoder (one larger batch;
        equal up to float rounding)."""
        flat = [crops.flatten(0, 1) for crops in crop_sets]
        flat = flat[0] if len(flat) == 1 else torch.cat(flat)  # one set: no copy
        outputs = self.final_conv(self.blocks(self.from_rgb(flat))).split(
            [crops.shape[0] * crops.shape[1] for crops in crop_sets])
        results = []
        for features, crops, mean in zip(outputs, crop_sets, aggregate, strict=True):
            if mean:
                batch, num_crops = crops.shape[:2]
                features = features.reshape(batch, num_crops, *features.shape[1:])
                features = features.mean(dim=1, keepdim=True).expand(-1, num_crops, -1, -1, -1)
                features = features.flatten(0, 1)
            results.append(features)
        return results

    def score(self, reference: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """Logit that ``query`` features co-occur with ``reference`` features, ``N x 1``."""
        return self.pair_mlp(torch.cat([reference.flatten(1), query.flatten(1)], dim=1))


def random_crops(images: torch.Tensor, patch_size: int, scale_range: tuple[float, float],
                 num_crops: int, uniform=torch.rand) -> torch.Tensor:
    """``num_crops`` random square crops per image, ``B x T x 3 x P x P`` (official
    ``apply_random_crop``): each side a uniform ``scale_range`` fraction of the image side (x and
    y drawn independently), a uniform offset inside the image, a random horizontal flip, and
    bilinear resampling to ``patch_size`` (``grid_sample``, zero padding, align_corners=False).

    ``uniform(*shape)`` supplies U(0, 1) draws, in the official order: flip, scale, offset.
    """
    batch = images.shape[0] * num_crops
    flip = torch.round(uniform(batch, 1, 1, 1)) * 2 - 1.0
    axis = torch.linspace(-1.0, 1.0, patch_size, device=images.device)
    grid_x = axis.view(1, 1, -1, 1).expand(batch, patch_size, -1, -1)
    grid = torch.cat([grid_x * flip, grid_x.transpose(1, 2)], dim=3)
    low, high = scale_range
    scale = uniform(batch, 1, 1, 2) * (high - low) + low
    offset = (uniform(batch, 1, 1, 2) * 2 - 1) * (1 - scale)
    repeated = images.unsqueeze(1).expand(-1, num_crops, -1, -1, -1).flatten(0, 1)
    crops = F.grid_sample(repeated, grid * scale + offset, align_corners=False)
    return crops.reshape(images.shape[0], num_crops, *crops.shape[1:])

"""CoCosNet's translation network and discriminator (Zhang et al., CVPR 2020, Sec. 3.2; the
official ``SPADEGenerator`` and ``MultiscaleDiscriminator``).

The generator starts from the condition ``[warped exemplar, one-hot input]`` resized to
1/32 of the output, and runs seven SPADE residual blocks conditioned on it (positional
normalisation inside SPADE, reflection padding), doubling the resolution before all but the
second and third, with optional self-attention at 1/2 resolution; ``tanh`` output in [-1, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lightning_modules.layers.checkpointing import maybe_checkpointed
from lightning_modules.layers.discriminators import MultiScalePatchDiscriminator
from lightning_modules.layers.modulation import drop_zero_constant_channels
from lightning_modules.layers.spade import SelfAttention, SPADEResBlock

#: (in, out) width in units of ngf, and whether the block is preceded by 2x up-sampling
GENERATOR_BLOCKS = ((16, 16, False), (16, 16, True), (16, 16, False), (16, 8, True),
                    (8, 4, True), (4, 2, True), (2, 1, True))
#: the self-attention layer comes right before this block (after its up-sampling)
ATTENTION_BEFORE = 5


class TranslationGenerator(nn.Module):
    """``G(condition)`` -> image; ``condition`` is ``[warped exemplar, one-hot input]``
    (``3 + semantic_channels``), whose size is the output size (multiples of 32, at least 64).

    Args:
        condition_channels: channels of the condition.
        ngf: base width (blocks at 16, 16, 16, 8, 4, 2, 1 x ngf).
        use_attention: self-attention before the block at 1/2 resolution.
        spade_hidden / spade_norm: of every SPADE (128, positional).
        spectral_norm: on the blocks' and the attention's convs.
        checkpoint_activations: each block (and the attention) keeps only its inputs for
            the backward pass, which recomputes the rest (less memory, same gradients).
        constant_from: the condition's channels from this one on are data (the input's label
            map, no gradient); those zero over the batch (absent classes) are left out of every
            SPADE trunk's convolution, which gives the same values and
            gradients for work in proportion to the classes present
            (:func:`~lightning_modules.layers.modulation.drop_zero_constant_channels`; not
            under ``torch.compile``). None: convolve every channel.
    """

    def __init__(self, condition_channels: int, ngf: int = 64, use_attention: bool = True,
                 spade_hidden: int = 128, spade_norm: str = "positional",
                 spectral_norm: bool = True, checkpoint_activations: bool = False,
                 constant_from: int | None = 3) -> None:
        super().__init__()
        self.checkpoint_activations = checkpoint_activations
        self.constant_from = constant_from
        self.stem = nn.Conv2d(condition_channels, 16 * ngf, 3, padding=1)
        self.blocks = nn.ModuleList(
            SPADEResBlock(cin * ngf, cout * ngf, condition_channels, spade_hidden, spade_norm,
                          "reflect", spectral_norm) for cin, cout, _ in GENERATOR_BLOCKS)
        self.attention = SelfAttention(4 * ngf, spectral_norm) if use_attention else None
        self.to_image = nn.Conv2d(ngf, 3, 3, padding=1)

    def forward(self, condition: torch.Tensor) -> torch.Tensor:
        height, width = condition.shape[2:]
        if height % 32 or width % 32 or min(height, width) < 64:
            raise ValueError(f"the generator needs sides that are multiples of 32 and at least "
                             f"64 (it starts at 1/32 with reflection padding), got "
                             f"{height} x {width}")
        x = self.stem(F.interpolate(condition, size=(height // 32, width // 32),
                                    mode="nearest"))
        channels = None
        # (not under torch.compile: a data-dependent channel count would recompile the graph)
        if self.constant_from is not None and not torch.compiler.is_compiling():
            condition, channels = drop_zero_constant_channels(condition, self.constant_from)
        for index, (block, (_, _, up)) in enumerate(zip(self.blocks, GENERATOR_BLOCKS,
                                                        strict=True)):
            if up:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
            if index == ATTENTION_BEFORE and self.attention is not None:
                x = maybe_checkpointed(self.checkpoint_activations, self.attention, x)
            x = maybe_checkpointed(self.checkpoint_activations, block, x, condition, channels)
        return torch.tanh(self.to_image(F.leaky_relu(x, 0.2)))


def cocosnet_discriminator(semantic_channels: int, ndf: int = 64, num_scales: int = 2,
                           num_layers: int = 4, use_attention: bool = True,
                           spectral_norm: bool = True) -> MultiScalePatchDiscriminator:
    """``D(image, one-hot input)``: the multi-scale patch discriminator with CoCosNet's choices
    (spectral norm + instance norm, padding 1, self-attention before the last normalised
    conv)."""
    return MultiScalePatchDiscriminator(3, semantic_channels, num_scales, ndf, num_layers,
                                        spectral_norm=spectral_norm, padding=1,
                                        attention=use_attention)

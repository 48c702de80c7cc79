"""Modulation layers against their defining equations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lightning_modules.layers.modulation import SFT, SPADE, AdaIN, FiLM, ModulatedConv2d
from lightning_modules.layers.ops import upfirdn2d


def per_sample_reference(layer: ModulatedConv2d, x: torch.Tensor, style: torch.Tensor
                         ) -> torch.Tensor:
    """Loop over samples with plain convolutions and the equations written out."""
    outputs = []
    k = layer.kernel_size
    for sample, s in zip(x, style, strict=True):
        scales = F.linear(s, layer.affine.weight * layer.affine.scale, layer.affine.bias)
        weight = layer.weight / math.sqrt(layer.in_channels * k * k) * scales[None, :, None, None]
        if layer.demodulate:
            weight = weight / torch.sqrt((weight**2).sum(dim=(1, 2, 3), keepdim=True) + 1e-8)
        sample = sample[None]
        if layer.upsample:
            # transposed stride-2 conv == zero insertion + full padding + conv with the
            # spatially flipped, in/out-swapped kernel
            zeros = sample.new_zeros(1, sample.shape[1], sample.shape[2] * 2 - 1,
                                     sample.shape[3] * 2 - 1)
            zeros[:, :, ::2, ::2] = sample
            out = F.conv2d(F.pad(zeros, (k - 1,) * 4), weight.flip(2, 3))
            out = upfirdn2d(out, layer.blur.kernel, pad=layer.blur.pad)
        elif layer.downsample:
            out = F.conv2d(upfirdn2d(sample, layer.blur.kernel, pad=layer.blur.pad), weight,
                           stride=2)
        else:
            out = F.conv2d(sample, weight, padding=k // 2)
        outputs.append(out)
    return torch.cat(outputs)


@pytest.mark.parametrize("kernel_size, demodulate, upsample, downsample", [
    (3, True, False, False), (1, False, False, False), (3, True, True, False),
    (3, True, False, True), (3, False, True, False)])
def test_modulated_conv_equals_per_sample_loop(kernel_size, demodulate, upsample, downsample):
    torch.manual_seed(0)
    layer = ModulatedConv2d(5, 6, kernel_size, style_dim=7, demodulate=demodulate,
                            upsample=upsample, downsample=downsample).double()
    x = torch.randn(3, 5, 8, 8, dtype=torch.float64)
    style = torch.randn(3, 7, dtype=torch.float64)
    out = layer(x, style)
    expected_side = {(False, False): 8, (True, False): 16, (False, True): 4}[(upsample,
                                                                              downsample)]
    assert out.shape == (3, 6, expected_side, expected_side)
    torch.testing.assert_close(out, per_sample_reference(layer, x, style))


def test_demodulation_gives_unit_output_variance_for_unit_input():
    torch.manual_seed(0)
    layer = ModulatedConv2d(64, 32, 3, style_dim=8)
    out = layer(torch.randn(4, 64, 32, 32), torch.randn(4, 8) * 3)
    assert abs(out[:, :, 1:-1, 1:-1].std().item() - 1.0) < 0.05


def test_adain_sets_channel_statistics_to_the_style():
    torch.manual_seed(0)
    layer = AdaIN(4, style_dim=6)
    x, style = torch.randn(2, 4, 16, 16) * 5 + 2, torch.randn(2, 6)
    out = layer(x, style)
    gamma, beta = layer.affine(style).chunk(2, dim=1)
    torch.testing.assert_close(out.mean(dim=(2, 3)), beta, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.std(dim=(2, 3), unbiased=False), gamma.abs(), atol=1e-3,
                               rtol=1e-3)


def test_film_is_a_per_channel_affine_map():
    torch.manual_seed(0)
    layer = FiLM(3, condition_dim=5)
    x, condition = torch.randn(2, 3, 4, 4), torch.randn(2, 5)
    torch.testing.assert_close(layer(x, condition), x)  # identity at initialisation
    torch.nn.init.normal_(layer.affine.weight)
    gamma = condition @ layer.affine.weight[:3].T + layer.affine.bias[:3]
    beta = condition @ layer.affine.weight[3:].T + layer.affine.bias[3:]
    torch.testing.assert_close(layer(x, condition),
                               gamma[:, :, None, None] * x + beta[:, :, None, None])


def test_sft_modulates_every_pixel():
    torch.manual_seed(0)
    layer = SFT(4, condition_channels=2, hidden=8)
    x, condition = torch.randn(2, 4, 8, 8), torch.randn(2, 2, 16, 16)
    gamma, beta = layer.modulation(condition, (8, 8))
    assert gamma.shape == beta.shape == x.shape
    assert gamma[0, 0].std() > 0  # spatially varying, unlike FiLM
    resized = F.interpolate(condition, size=(8, 8), mode="bilinear", align_corners=False)
    torch.testing.assert_close(layer(x, condition),
                               (1 + layer.gamma_net(resized)) * x + layer.beta_net(resized))


@pytest.mark.parametrize("norm", ["instance", "batch"])
def test_spade_normalises_then_modulates_from_the_segmentation(norm):
    torch.manual_seed(0)
    layer = SPADE(3, label_channels=4, hidden=8, norm=norm).train()
    x = torch.randn(2, 3, 8, 8) * 4 + 1
    segmentation = F.one_hot(torch.randint(0, 4, (2, 4, 4)), 4).permute(0, 3, 1, 2).float()
    dims = (2, 3) if norm == "instance" else (0, 2, 3)
    normalised = (x - x.mean(dims, keepdim=True)) / torch.sqrt(
        x.var(dims, keepdim=True, unbiased=False) + 1e-5)
    features = F.relu(layer.shared[0](F.interpolate(segmentation, size=(8, 8))))
    expected = normalised * (1 + layer.gamma(features)) + layer.beta(features)
    torch.testing.assert_close(layer(x, segmentation), expected, atol=1e-5, rtol=1e-5)

"""AdaConv layers against a per-sample loop (values and gradients), the kernel predictor's
shapes, and the AdaIN statistics transfer against its formula."""

from __future__ import annotations

import pytest
import torch

from experiments.benchmarks.adaconv_iteration import per_sample_adaptive_conv
from lightning_modules.layers.adaconv import AdaConv2d, KernelPredictor, adain, adaptive_conv


@pytest.mark.parametrize(("channels", "n_groups"), [(8, 8), (8, 2), (12, 3)])
def test_grouped_adaptive_conv_equals_the_per_sample_loop(channels, n_groups):
    torch.manual_seed(0)
    predictor = KernelPredictor(16, channels, channels, n_groups).double()
    style = torch.randn(3, 16, 3, 3, dtype=torch.float64, requires_grad=True)
    x = torch.randn(3, channels, 9, 7, dtype=torch.float64, requires_grad=True)
    spatial, pointwise, bias = predictor(style)
    assert spatial.shape == (3, channels, channels // n_groups, 3, 3)
    assert pointwise.shape == (3, channels, channels // n_groups, 1, 1)
    assert bias.shape == (3, channels)
    grouped = adaptive_conv(x, spatial, pointwise, bias, n_groups)
    looped = per_sample_adaptive_conv(x, spatial, pointwise, bias, n_groups)
    torch.testing.assert_close(grouped, looped)
    weights = torch.randn_like(grouped)
    grads = torch.autograd.grad((grouped * weights).sum(), [x, style], retain_graph=True)
    loop_grads = torch.autograd.grad((looped * weights).sum(), [x, style])
    for ours, reference in zip(grads, loop_grads, strict=True):
        torch.testing.assert_close(ours, reference)


def test_adaconv_block_predicts_from_a_pooled_style_and_keeps_the_content_size():
    torch.manual_seed(0)
    block = AdaConv2d(8, 4, style_channels=16, n_groups=2)
    x, style = torch.randn(2, 8, 11, 13), torch.randn(2, 16, 3, 3)
    out = block(x, style)
    assert out.shape == (2, 4, 11, 13)
    other_style = block(x, style.flip(0))
    assert not torch.allclose(out, other_style)  # the style changes the result
    swapped = block(x.flip(0), style.flip(0))  # per-sample kernels follow their sample
    torch.testing.assert_close(swapped, out.flip(0))
    with pytest.raises(ValueError, match="not divisible"):
        KernelPredictor(16, 6, 6, 4)


def test_adain_transfers_channel_statistics():
    torch.manual_seed(0)
    content, style = torch.randn(2, 3, 8, 8) * 3 + 1, torch.randn(2, 3, 5, 6) * 0.5 - 2
    out = adain(content, style)
    for b in range(2):
        for c in range(3):
            s = style[b, c].flatten()
            mean, std = s.mean(), (s.var() + 1e-5).sqrt()
            x = content[b, c].flatten()
            expected = (x - x.mean()) / (x.var() + 1e-5).sqrt() * std + mean
            torch.testing.assert_close(out[b, c].flatten(), expected)


def test_conv_factory_keeps_stylegan2_bitwise_and_builds_the_adaconv_generator():
    from lightning_modules.layers.adaconv import StyleAdaConv, adaconv_factory
    from lightning_modules.layers.stylegan2 import Generator, modulated_conv
    from lightning_modules.stylegan2 import StyleGAN2, StyleGAN2AdaConv

    channels = {4: 16, 8: 16, 16: 8}
    torch.manual_seed(0)
    default = Generator(16, style_dim=8, n_mlp=1, channels=channels)
    torch.manual_seed(0)
    explicit = Generator(16, style_dim=8, n_mlp=1, channels=channels, conv_factory=modulated_conv)
    assert default.state_dict().keys() == explicit.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(default.state_dict().values(),
                                                 explicit.state_dict().values(), strict=True))
    z = torch.randn(3, 8)
    noise = [torch.randn(s) for s in default.noise_shapes(3)]
    assert torch.equal(default(z, noise=noise), explicit(z, noise=noise))

    adaconv = Generator(16, style_dim=8, n_mlp=1, channels=channels,
                        conv_factory=adaconv_factory(style_channels=4, group_size=2))
    convs = [conv.modconv for conv in adaconv.styled_convs]
    assert all(isinstance(conv, StyleAdaConv) for conv in convs)
    assert convs[1].adaconv.n_groups == 8  # 16 input channels, 2 per group
    images = adaconv(z, noise=noise)
    assert images.shape == (3, 3, 16, 16) and torch.isfinite(images).all()
    images.sum().backward()
    assert convs[0].to_style.weight.grad.abs().sum() > 0
    tiny = dict(size=16, style_dim=8, n_mlp=1, channels=channels, mbstd_group_size=0)
    module = StyleGAN2AdaConv(adaconv_style_channels=4, **tiny)
    assert isinstance(module.generator.styled_convs[0].modconv, StyleAdaConv)
    assert module.hparams.adaconv_style_channels == 4 and module.hparams.size == 16
    assert not isinstance(StyleGAN2(**tiny).generator.styled_convs[0].modconv, StyleAdaConv)

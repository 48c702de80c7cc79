"""Conditional discriminators: the multi-scale patch D (structure, spectral norm, condition,
features for feature matching) and the StyleGAN2 D's optional condition."""

from __future__ import annotations

import pytest
import torch

from lightning_modules.layers.discriminators import MultiScalePatchDiscriminator
from lightning_modules.layers.losses import d_hinge_loss, feature_matching_loss, g_hinge_loss
from lightning_modules.layers.stylegan2 import Discriminator


def test_multiscale_patch_discriminator_outputs_every_feature_per_scale():
    torch.manual_seed(0)
    d = MultiScalePatchDiscriminator(condition_channels=5, num_scales=3, width=8, num_layers=3)
    images, condition = torch.randn(2, 3, 64, 64), torch.randn(2, 5, 64, 64, requires_grad=True)
    outputs = d(images, condition)
    assert len(outputs) == 3 and all(len(scale) == 4 for scale in outputs)
    assert [tuple(scale[0].shape) for scale in outputs] == [(2, 8, 33, 33), (2, 8, 17, 17),
                                                            (2, 8, 9, 9)]
    assert all(scale[-1].shape[1] == 1 for scale in outputs)
    assert [s[1].shape[1] for s in outputs] == [16] * 3 and outputs[0][2].shape[1] == 32
    convs = [m for m in d.scales[0].modules() if isinstance(m, torch.nn.Conv2d)]
    # spectral norm on the normalised convs, not on the first and last (SPADE, CoCosNet);
    # no bias before instance norm
    assert [hasattr(m, "weight_orig") for m in convs] == [False, True, True, False]
    assert [m.bias is not None for m in convs] == [True, False, False, True]
    other = d(images.flip(0), condition)
    loss = d_hinge_loss(outputs, other) + g_hinge_loss(other) + \
        feature_matching_loss(other, outputs)
    loss.backward()
    assert condition.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="condition of 5 channels; got none"):
        d(images)
    plain = MultiScalePatchDiscriminator(num_scales=1, width=4, spectral_norm=False, norm="none")
    assert not any(hasattr(m, "weight_orig") for m in plain.modules())
    with pytest.raises(ValueError, match="condition of 0 channels; got 5"):
        plain(images, condition)


def test_stylegan2_discriminator_takes_an_optional_condition():
    torch.manual_seed(0)
    d = Discriminator(16, channels={4: 8, 8: 8, 16: 8}, mbstd_group_size=0,
                      condition_channels=2)
    images, condition = torch.randn(2, 3, 16, 16), torch.randn(2, 2, 16, 16)
    logits, features = d(images, condition, return_features=True)
    assert logits.shape == (2, 1) and len(features) == 3
    assert not torch.equal(d(images, condition), d(images, condition.flip(0)))
    with pytest.raises(ValueError, match="condition"):
        d(images)

"""GAN losses, R1, path length and EMA against independent computations."""

from __future__ import annotations

import math

import torch
from torch.func import functional_call, grad

from lightning_modules.layers.ema import ema_beta, update_ema
from lightning_modules.layers.losses import (
    PathLengthPenalty,
    d_logistic_loss,
    g_nonsaturating_loss,
    path_lengths,
    r1_penalty,
)
from lightning_modules.layers.stylegan2 import Discriminator, Generator

TINY = {4: 8, 8: 8, 16: 4}


def test_logistic_losses_are_the_log_sigmoid_formulas():
    real, fake = torch.randn(6, 1) * 3, torch.randn(6, 1) * 3
    expected_d = -(torch.sigmoid(real).log().mean() + (1 - torch.sigmoid(fake)).log().mean())
    torch.testing.assert_close(d_logistic_loss(real, fake), expected_d)
    torch.testing.assert_close(g_nonsaturating_loss(fake), -torch.sigmoid(fake).log().mean())


def test_r1_penalty_and_its_parameter_gradient_match_torch_func():
    torch.manual_seed(0)
    discriminator = Discriminator(16, channels=TINY, mbstd_group_size=2).double()
    real = torch.randn(4, 3, 16, 16, dtype=torch.float64)
    params = {k: v.detach() for k, v in discriminator.named_parameters()}

    def penalty_of(parameters):  # functorch: grad of grad, no autograd.grad(create_graph)
        logits_sum = lambda x: functional_call(discriminator, parameters, (x,)).sum()
        return grad(logits_sum)(real).pow(2).flatten(1).sum(1).mean()

    expected_value = penalty_of(params)
    expected_param_grads = grad(penalty_of)(params)

    images = real.clone().requires_grad_(True)
    value = r1_penalty(discriminator(images), images)
    value.backward()
    torch.testing.assert_close(value, expected_value)
    for name, parameter in discriminator.named_parameters():
        # the output bias does not change d D / d x: no gradient, i.e. zero
        ours = parameter.grad if parameter.grad is not None else torch.zeros_like(parameter)
        torch.testing.assert_close(ours, expected_param_grads[name], rtol=1e-6, atol=1e-9)
    assert discriminator.final_conv.conv.weight.grad.abs().sum() > 0


def test_path_lengths_match_an_explicit_jacobian():
    torch.manual_seed(0)
    generator = Generator(8, style_dim=6, n_mlp=1, channels=TINY).double()
    ws = torch.randn(2, generator.n_latent, 6, dtype=torch.float64, requires_grad=True)
    noise = [torch.zeros(s, dtype=torch.float64) for s in generator.noise_shapes(2)]
    images = generator.synthesize(ws, noise)
    projection = torch.randn_like(images)
    lengths = path_lengths(images, ws, projection)
    for i in range(2):
        jacobian = torch.autograd.functional.jacobian(
            lambda w, i=i: generator.synthesize(w[None], [n[i:i + 1] for n in noise])[0],
            ws[i].detach())  # (3, 8, 8, L, D)
        jt_y = torch.einsum("chw,chwld->ld", projection[i], jacobian)
        expected = jt_y.pow(2).sum(dim=1).mean().sqrt()
        torch.testing.assert_close(lengths[i], expected)


def test_path_length_running_mean():
    torch.manual_seed(0)
    generator = Generator(8, style_dim=6, n_mlp=1, channels=TINY)
    penalty = PathLengthPenalty(decay=0.1)
    ws = torch.randn(3, generator.n_latent, 6, requires_grad=True)
    images = generator.synthesize(ws)
    noise = torch.randn_like(images)
    value, lengths = penalty(images, ws, noise)
    expected_mean = 0.1 * lengths.mean()
    torch.testing.assert_close(penalty.mean, expected_mean.detach())
    torch.testing.assert_close(value, ((lengths - expected_mean) ** 2).mean())
    assert "mean" in penalty.state_dict()  # checkpointed


def test_ema_half_life_is_measured_in_images():
    beta = ema_beta(batch_images=32, images_seen=10**6, half_life_kimg=10)
    assert math.isclose(beta ** (10_000 / 32), 0.5, rel_tol=1e-9)
    assert math.isclose(beta, 0.5 ** (32 / 10_000))  # rosinality's accumulate decay
    # ramp-up: early in training the half-life is images_seen * rampup
    assert math.isclose(ema_beta(32, 1000, 10, rampup=0.05), 0.5 ** (32 / 50))
    assert ema_beta(32, 0, 10, rampup=0.05) < 1e-100  # first update copies the weights


def test_update_ema_lerps_parameters_and_copies_buffers():
    source, ema = torch.nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3)
    with torch.no_grad():
        source.weight.fill_(2.0)
        ema.weight.fill_(1.0)
        source.running_mean.fill_(5.0)
    update_ema(ema, source, beta=0.75)
    torch.testing.assert_close(ema.weight, torch.full((3,), 0.75 * 1 + 0.25 * 2))
    torch.testing.assert_close(ema.running_mean, torch.full((3,), 5.0))

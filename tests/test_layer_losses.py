"""The shared losses of layers/ against loop-level computations: hinge and logistic GAN losses
(plain and multi-scale), discriminator feature matching, perceptual, style moment, Gram and
contextual losses."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lightning_modules.layers.losses import (
    d_hinge_loss,
    d_logistic_loss,
    feature_matching_loss,
    g_hinge_loss,
    g_nonsaturating_loss,
    r1_penalty,
)
from lightning_modules.layers.perceptual import (
    PerceptualLoss,
    contextual_loss,
    gram_loss,
    perceptual_loss,
    style_moment_loss,
)


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def test_hinge_and_logistic_losses_plain_and_multiscale():
    real, fake = rand(5, 1, 3, 3, seed=1), rand(5, 1, 3, 3, seed=2)
    hinge_d = mean(max(0.0, 1 - float(x)) for x in real.flatten()) + \
        mean(max(0.0, 1 + float(x)) for x in fake.flatten())
    assert float(d_hinge_loss(real, fake)) == pytest.approx(hinge_d, rel=1e-12)
    assert float(g_hinge_loss(fake)) == pytest.approx(-mean(map(float, fake.flatten())))
    softplus = lambda x: math.log1p(math.exp(x))
    logistic_d = mean(softplus(-float(x)) for x in real.flatten()) + \
        mean(softplus(float(x)) for x in fake.flatten())
    assert float(d_logistic_loss(real, fake)) == pytest.approx(logistic_d, rel=1e-12)
    # multi-scale: [features..., logits] per scale; the loss is averaged over scales
    scales_real = [[rand(5, 4, 6, 6, seed=3), real], [rand(5, 4, 3, 3, seed=4), real[..., :2, :2]]]
    scales_fake = [[rand(5, 4, 6, 6, seed=5), fake], [rand(5, 4, 3, 3, seed=6), fake[..., :2, :2]]]
    expected = (float(d_hinge_loss(real, fake)) +
                float(d_hinge_loss(real[..., :2, :2], fake[..., :2, :2]))) / 2
    assert float(d_hinge_loss(scales_real, scales_fake)) == pytest.approx(expected, rel=1e-12)
    expected = (float(g_nonsaturating_loss(fake)) +
                float(g_nonsaturating_loss(fake[..., :2, :2]))) / 2
    assert float(g_nonsaturating_loss(scales_fake)) == pytest.approx(expected, rel=1e-12)


def test_feature_matching_sums_layers_and_divides_by_scales():
    fake = [[rand(2, 3, 4, 4, seed=i), rand(2, 5, 2, 2, seed=10 + i), rand(2, 1, 2, 2, seed=20 + i)]
            for i in range(3)]
    real = [[rand(2, 3, 4, 4, seed=30 + i), rand(2, 5, 2, 2, seed=40 + i),
             rand(2, 1, 2, 2, seed=50 + i)] for i in range(3)]
    expected = 0.0
    for fake_scale, real_scale in zip(fake, real, strict=True):
        for a, b in zip(fake_scale[:-1], real_scale[:-1], strict=True):  # logits left out
            expected += mean(abs(float(x) - float(y))
                             for x, y in zip(a.flatten(), b.flatten(), strict=True))
    assert float(feature_matching_loss(fake, real)) == pytest.approx(expected / 3, rel=1e-12)
    moving = [[t.clone().requires_grad_(True) for t in scale] for scale in fake]
    real_leaves = [[t.clone().requires_grad_(True) for t in scale] for scale in real]
    feature_matching_loss(moving, real_leaves).backward()
    assert moving[0][0].grad is not None and real_leaves[0][0].grad is None  # reals: constants


def test_perceptual_gram_and_style_moment_losses_against_loops():
    output = {"a": rand(2, 3, 4, 4, seed=1), "b": rand(2, 2, 3, 3, seed=2)}
    target = {"a": rand(2, 3, 4, 4, seed=3), "b": rand(2, 2, 3, 3, seed=4)}
    weights = {"a": 0.5, "b": 2.0}
    pairs = lambda layer: zip(output[layer].flatten().tolist(), target[layer].flatten().tolist(),
                              strict=True)
    l1 = sum(w * mean(abs(x - y) for x, y in pairs(layer)) for layer, w in weights.items())
    mse = sum(w * mean((x - y) ** 2 for x, y in pairs(layer)) for layer, w in weights.items())
    assert float(perceptual_loss(output, target, weights, "l1")) == pytest.approx(l1, rel=1e-12)
    assert float(perceptual_loss(output, target, weights, "mse")) == pytest.approx(mse, rel=1e-12)

    def gram(features, b):
        c, h, w = features.shape[1:]
        flat = features[b].reshape(c, -1).tolist()
        return [[sum(flat[i][k] * flat[j][k] for k in range(h * w)) / (c * h * w)
                 for j in range(c)] for i in range(c)]

    expected = 0.0
    for layer, w in weights.items():
        diffs = [(gram(output[layer], b)[i][j] - gram(target[layer], b)[i][j]) ** 2
                 for b in range(2) for i in range(output[layer].shape[1])
                 for j in range(output[layer].shape[1])]
        expected += w * mean(diffs)
    assert float(gram_loss(output, target, weights)) == pytest.approx(expected, rel=1e-12)

    def moments(features, b, c):
        values = features[b, c].flatten().tolist()
        mu = mean(values)
        var = sum((v - mu) ** 2 for v in values) / (len(values) - 1)
        return mu, math.sqrt(var + 1e-5)

    per_layer = []
    for layer in ("a", "b"):
        channels = output[layer].shape[1]
        stats = [(moments(output[layer], b, c), moments(target[layer], b, c))
                 for b in range(2) for c in range(channels)]
        per_layer.append(mean((o[0] - t[0]) ** 2 for o, t in stats) +
                         mean((o[1] - t[1]) ** 2 for o, t in stats))
    assert float(style_moment_loss(output, target, ["a", "b"])) == \
        pytest.approx(sum(per_layer), rel=1e-10)
    assert float(style_moment_loss(output, target, ["a", "b"], reduction="mean")) == \
        pytest.approx(sum(per_layer) / 2, rel=1e-10)


@pytest.mark.parametrize("centering, match, eps", [("position", "target", 1e-5),
                                                   ("channel", "target", 1e-5),
                                                   (None, "target", 1e-5),
                                                   ("position", "output", 1e-3)])
def test_contextual_loss_against_a_loop(centering, match, eps):
    output, target = rand(2, 3, 2, 3, seed=1), rand(2, 3, 2, 3, seed=2)
    bandwidth = 0.5
    value = contextual_loss(output, target, bandwidth, centering, match, eps)
    for b in range(2):
        x = output[b].reshape(3, -1).T.tolist()  # positions x channels
        y = target[b].reshape(3, -1).T.tolist()
        if centering == "position":
            shift_x = shift_y = [mean(v) for v in y]  # y's channel mean at each position
            x = [[v - shift_x[i] for v in row] for i, row in enumerate(x)]
            y = [[v - shift_y[j] for v in row] for j, row in enumerate(y)]
        elif centering == "channel":
            mu = [mean(row[c] for row in y) for c in range(3)]
            x = [[v - mu[c] for c, v in enumerate(row)] for row in x]
            y = [[v - mu[c] for c, v in enumerate(row)] for row in y]
        norm = lambda row: [v / math.sqrt(sum(u * u for u in row)) for v in row]
        x, y = [norm(r) for r in x], [norm(r) for r in y]
        d = [[1 - sum(a * c for a, c in zip(xi, yj, strict=True)) for yj in y] for xi in x]
        rel = [[dij / (min(row) + eps) for dij in row] for row in d]
        w = [[math.exp((1 - r) / bandwidth) for r in row] for row in rel]
        a = [[wij / sum(row) for wij in row] for row in w]
        if match == "target":   # every target feature's best output feature
            cx = mean(max(a[i][j] for i in range(len(x))) for j in range(len(y)))
        else:                   # every output feature's best target feature (CoCosNet)
            cx = mean(max(a[i][j] for j in range(len(y))) for i in range(len(x)))
        assert float(value[b]) == pytest.approx(-math.log(cx), rel=1e-9)
    assert float(contextual_loss(target, target, 0.1).max()) < float(value.min())


class _Taps(nn.Module):
    """A stand-in feature network: ``relu_a`` = relu(conv(x)), ``relu_b`` = relu(conv(relu_a))."""

    def __init__(self) -> None:
        super().__init__()
        self.first, self.second = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.requires_grad_(False)

    def forward(self, images, taps):
        a = torch.relu(self.first(images))
        return {"relu_a": a, "relu_b": torch.relu(self.second(a))}


def test_perceptual_loss_module_sends_gradients_to_the_output_only():
    loss = PerceptualLoss(_Taps(), {"relu_a": 1.0, "relu_b": 0.25}, "mse")
    output = torch.randn(2, 3, 8, 8, requires_grad=True)
    target = torch.randn(2, 3, 8, 8, requires_grad=True)
    value = loss(output, target)
    value.backward()
    assert output.grad is not None and target.grad is None
    features_out, features_target = loss.network(output, []), loss.network(target, [])
    expected = perceptual_loss(features_out, features_target, loss.layer_weights, "mse")
    assert torch.allclose(value, expected)


def test_r1_penalty_is_the_mean_squared_gradient_norm():
    weights = rand(3, 4, seed=7)
    images = rand(2, 3, 4).requires_grad_(True)
    logits = (images * weights).sum(dim=(1, 2))  # d logit_b / d x_b = weights
    assert float(r1_penalty(logits, images)) == pytest.approx(float(weights.pow(2).sum()))

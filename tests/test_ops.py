"""upfirdn2d against a direct computation; equalized layers; bias + leaky ReLU."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lightning_modules.layers.ops import (
    Downsample2x,
    EqualConv2d,
    EqualLinear,
    Upsample2x,
    bias_leaky_relu,
    make_kernel,
    upfirdn2d,
)


def reference_upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: int, down: int,
                        pad: tuple[int, int, int, int]) -> torch.Tensor:
    """Obviously-correct version: explicit zero insertion, explicit padding / cropping, an
    explicit sum over kernel taps (true convolution), then a strided pick."""
    x0, x1, y0, y1 = pad
    n, c, h, w = x.shape
    upsampled = x.new_zeros(n, c, h * up, w * up)
    upsampled[:, :, ::up, ::up] = x
    height, width = h * up + y0 + y1, w * up + x0 + x1
    padded = x.new_zeros(n, c, height, width)
    for i in range(height):
        for j in range(width):
            si, sj = i - y0, j - x0
            if 0 <= si < h * up and 0 <= sj < w * up:
                padded[:, :, i, j] = upsampled[:, :, si, sj]
    kh, kw = kernel.shape
    out = x.new_zeros(n, c, height - kh + 1, width - kw + 1)
    for a in range(kh):
        for b in range(kw):
            # convolution: output(i, j) = sum input(i + a, j + b) * k(kh - 1 - a, kw - 1 - b)
            out = out + padded[:, :, a:a + out.shape[2], b:b + out.shape[3]] * \
                kernel[kh - 1 - a, kw - 1 - b]
    return out[:, :, ::down, ::down]


CASES = [  # up, down, pad (x0, x1, y0, y1), kernel size
    (1, 1, (1, 2, 1, 2), (4, 4)),
    (2, 1, (2, 1, 2, 1), (4, 4)),
    (1, 2, (1, 1, 1, 1), (4, 4)),
    (2, 2, (0, 0, 1, 0), (3, 3)),
    (3, 1, (1, 0, 2, 1), (3, 5)),
    (1, 1, (-1, 0, 0, -2), (2, 3)),
    (2, 1, (1, 1, 1, 1), (1, 1)),
]


@pytest.mark.parametrize("up, down, pad, kernel_size", CASES)
def test_upfirdn2d_matches_direct_computation_with_gradients(up, down, pad, kernel_size):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64, generator=generator, requires_grad=True)
    kernel = torch.randn(*kernel_size, dtype=torch.float64, generator=generator)
    ours = upfirdn2d(x, kernel, up=up, down=down, pad=pad)
    expected = reference_upfirdn2d(x, kernel, up, down, pad)
    assert ours.shape == expected.shape
    torch.testing.assert_close(ours, expected, rtol=1e-10, atol=1e-10)
    upstream = torch.randn_like(ours)
    (grad_ours,) = torch.autograd.grad(ours, x, upstream)
    (grad_expected,) = torch.autograd.grad(expected, x, upstream)
    torch.testing.assert_close(grad_ours, grad_expected, rtol=1e-10, atol=1e-10)


def test_separable_kernel_equals_its_outer_product():
    x = torch.randn(2, 4, 9, 9, dtype=torch.float64)
    taps = torch.tensor([1.0, 3.0, 2.0, 1.0], dtype=torch.float64)
    for up, down, pad in ((2, 1, (2, 1)), (1, 2, (1, 1))):  # padded copy / conv padding
        torch.testing.assert_close(upfirdn2d(x, taps, up=up, down=down, pad=pad),
                                   upfirdn2d(x, torch.outer(taps, taps), up=up, down=down,
                                             pad=pad))
    torch.testing.assert_close(make_kernel(taps).double(),
                               torch.outer(taps, taps) / taps.sum() ** 2)


def test_resampling_keeps_a_constant_image_constant():
    flat = torch.full((1, 2, 8, 8), 3.0)
    up = Upsample2x()(flat)
    down = Downsample2x()(flat)
    assert up.shape == (1, 2, 16, 16) and down.shape == (1, 2, 4, 4)
    torch.testing.assert_close(up[:, :, 2:-2, 2:-2], torch.full_like(up[:, :, 2:-2, 2:-2], 3.0))
    torch.testing.assert_close(down[:, :, 1:-1, 1:-1],
                               torch.full_like(down[:, :, 1:-1, 1:-1], 3.0))


def test_equalized_layers_scale_weights_at_run_time():
    linear = EqualLinear(16, 8, lr_mul=0.01, bias_init=0.5)
    assert linear.weight.std() > 20  # stored as N(0, 1) / lr_mul
    x = torch.randn(5, 16)
    expected = x @ (linear.weight * 0.01 / 4).T + 0.5 * 0.01
    torch.testing.assert_close(linear(x), expected)
    conv = EqualConv2d(3, 4, 3, padding=1)
    x = torch.randn(2, 3, 5, 5)
    torch.testing.assert_close(conv(x), F.conv2d(x, conv.weight / math.sqrt(27), padding=1))


def test_bias_leaky_relu():
    x = torch.tensor([[-1.0, 2.0]]).reshape(1, 2, 1, 1)
    bias = torch.tensor([0.5, -3.0])
    expected = torch.tensor([-0.5 * 0.2, -1.0 * 0.2]).reshape(1, 2, 1, 1) * math.sqrt(2)
    torch.testing.assert_close(bias_leaky_relu(x, bias), expected)


def _separate_ops(x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    if bias is not None:
        x = x + bias.view(1, -1, 1, 1)
    return F.leaky_relu(x, 0.2) * math.sqrt(2)


@pytest.mark.parametrize("with_bias", [True, False])
def test_fused_bias_leaky_relu_is_bitwise_the_separate_ops_to_second_order(with_bias):
    """Values, gradients and R1-style double-backward gradients equal those of autograd over
    the three separate ops exactly (the fused node changes memory, not numbers)."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(4, 6, 8, 8, generator=generator)
    weight = torch.randn(6, 6, 3, 3, generator=generator)
    bias = torch.randn(6, generator=generator) if with_bias else None
    results = []
    for activation in (_separate_ops, bias_leaky_relu):
        inputs = x.clone().requires_grad_(True)
        w = weight.clone().requires_grad_(True)
        b = bias.clone().requires_grad_(True) if with_bias else None
        out = activation(F.conv2d(inputs, w, padding=1), b)
        (grad_input,) = torch.autograd.grad(out.square().sum(), inputs, create_graph=True)
        penalty = grad_input.square().sum()  # R1: gradient of a gradient norm
        leaves = [w] + ([b] if with_bias else [])
        results.append([out, grad_input, *torch.autograd.grad(penalty, leaves)])
    for separate, fused in zip(*results, strict=True):
        assert torch.equal(separate, fused)


def test_fused_bias_leaky_relu_gradchecks_and_saves_one_tensor():
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(3, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(3, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(bias_leaky_relu, (x, bias))
    assert torch.autograd.gradgradcheck(
        lambda x, b, w: bias_leaky_relu(F.conv2d(x, w, padding=1), b), (x, bias, weight))

    def saved_activation_elements(activation) -> int:
        """Distinct activation storage autograd keeps for conv(activation(x))."""
        saved = {}

        def keep(tensor):
            if tensor.dim() == 4 and tensor.shape[0] == 2:  # activations, not the weight
                saved[tensor.untyped_storage().data_ptr()] = tensor.numel()
            return tensor
        inputs = torch.randn(2, 3, 16, 16, requires_grad=True)
        with torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t):
            F.conv2d(activation(inputs, torch.zeros(3, requires_grad=True)),
                     torch.randn(3, 3, 3, 3, requires_grad=True), padding=1)
        return sum(saved.values())

    # the fused node's saved output is the conv's saved input: one tensor instead of two
    assert saved_activation_elements(bias_leaky_relu) == 2 * 3 * 16 * 16
    assert saved_activation_elements(_separate_ops) == 2 * 2 * 3 * 16 * 16
    with pytest.raises(ValueError, match="gain"):
        bias_leaky_relu(torch.zeros(1, 1, 1, 1), gain=-1.0)


@pytest.mark.parametrize("rows", [3, 40])  # fewer / more rows than input features (16)
@pytest.mark.parametrize("activation", [False, True])
def test_equal_linear_scales_output_or_weight_to_the_same_result(rows: int, activation: bool):
    torch.manual_seed(0)
    layer = EqualLinear(16, 8, bias_init=0.3, lr_mul=0.5, activation=activation)
    x = torch.randn(rows, 16, requires_grad=True)
    reference_x = x.detach().clone().requires_grad_()
    weight, bias = layer.weight.detach().clone(), layer.bias.detach().clone()
    weight.requires_grad_(), bias.requires_grad_()
    expected = F.linear(reference_x, weight * layer.scale, bias * 0.5)
    if activation:
        expected = F.leaky_relu(expected, 0.2) * math.sqrt(2)
    output = layer(x)
    torch.testing.assert_close(output, expected)
    upstream = torch.randn_like(output)
    output.backward(upstream)
    expected.backward(upstream)
    torch.testing.assert_close(x.grad, reference_x.grad)
    torch.testing.assert_close(layer.weight.grad, weight.grad)
    torch.testing.assert_close(layer.bias.grad, bias.grad)

"""Spectral norm computed where it is cheapest (``layers/spectral.py``) against
``torch.nn.utils.spectral_norm``; subnormal floats flushed in every thread
(``lightning_modules/numerics.py``)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest
import torch
from torch import nn

from lightning_modules.layers.spectral import SpectralNormConv2d, conv2d

#: (conv arguments, input shape, whether the output is divided instead of the weight)
CASES = [(dict(in_channels=16, out_channels=32, kernel_size=3, padding=1,
               padding_mode="reflect"), (2, 16, 4, 4), True),
         (dict(in_channels=6, out_channels=8, kernel_size=4, stride=2, padding=1, bias=False),
          (2, 6, 16, 16), False),
         (dict(in_channels=8, out_channels=4, kernel_size=1), (1, 8, 3, 5), False),
         (dict(in_channels=8, out_channels=12, kernel_size=3), (1, 8, 3, 3), True)]


@pytest.mark.parametrize("arguments, shape, divides_output", CASES)
def test_equals_torch_spectral_norm_in_values_gradients_and_power_iteration(
        arguments, shape, divides_output):
    torch.manual_seed(0)
    reference = nn.utils.spectral_norm(nn.Conv2d(**arguments)).double()
    torch.manual_seed(0)
    ours = SpectralNormConv2d(**arguments).double()
    # same random draws in the same order: weight, bias, u, v
    assert reference.state_dict().keys() == ours.state_dict().keys()
    for key, value in reference.state_dict().items():
        assert torch.equal(value, ours.state_dict()[key]), key
    x = torch.randn(shape, dtype=torch.double)
    assert (ours.weight_orig.numel() > ours.output_numel(x)) == divides_output
    assert ours.output_numel(x) == reference.eval()(x).numel()  # eval: no power iteration
    for training in (True, True, False):
        reference.train(training)
        ours.train(training)
        x_ref, x_ours = x.clone().requires_grad_(), x.clone().requires_grad_()
        # two forwards before backward (D(real), D(fake)): the power iteration runs twice
        out_ref = reference(x_ref) - reference(x_ref.flip(0))
        out_ours = ours(x_ours) - ours(x_ours.flip(0))
        torch.testing.assert_close(out_ours, out_ref, rtol=1e-10, atol=1e-12)
        upstream = torch.randn_like(out_ref)
        (out_ref * upstream).sum().backward()
        (out_ours * upstream).sum().backward()
        torch.testing.assert_close(x_ours.grad, x_ref.grad, rtol=1e-10, atol=1e-12)
        for name in ("weight_orig", "bias"):
            if getattr(reference, name) is not None:
                torch.testing.assert_close(getattr(ours, name).grad,
                                           getattr(reference, name).grad,
                                           rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(ours.weight_u, reference.weight_u, rtol=1e-12, atol=0)
        torch.testing.assert_close(ours.weight_v, reference.weight_v, rtol=1e-12, atol=0)
        reference.zero_grad()
        ours.zero_grad()
    # a torch-spectral-norm state dict (official checkpoints) loads as it is
    ours.load_state_dict(reference.state_dict())


def test_power_iteration_converges_to_the_largest_singular_value():
    torch.manual_seed(0)
    conv = SpectralNormConv2d(8, 16, 3, padding=1).train()
    for _ in range(50):
        conv(torch.randn(1, 8, 4, 4))
    largest = torch.linalg.matrix_norm(conv.weight_orig.detach().flatten(1), ord=2)
    sigma = float(conv.eval().sigma().detach())
    assert sigma == pytest.approx(float(largest), rel=1e-4)
    assert float(conv.sigma().detach()) == sigma  # eval: no update


def test_factory_picks_the_class():
    assert type(conv2d(3, 4, 3, spectral_norm=False)) is nn.Conv2d
    spectral = conv2d(3, 4, 3, spectral_norm=True, padding_mode="reflect", bias=False)
    assert isinstance(spectral, SpectralNormConv2d) and spectral.bias is None
    assert spectral.padding_mode == "reflect" and "weight" not in dict(spectral.named_parameters())


def run_python(code: str, flush: str) -> str:
    environment = {**os.environ, "CORRLAB_FLUSH_DENORMAL": flush}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=environment, check=True)
    return done.stdout.strip()


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"),
                    reason="flush-to-zero flags are an x86 feature")
def test_importing_corrlab_flushes_subnormals_in_every_thread():
    code = ("import lightning_modules, torch\n"
            "from lightning_modules.numerics import denormals_flushed\n"
            "torch.set_num_threads(2)\n"
            "tiny = torch.finfo(torch.float32).tiny / 4\n"
            "product = torch.full((512, 512), tiny) @ torch.ones(512, 512)\n"
            "print(denormals_flushed(), int(product.count_nonzero()))\n")
    assert run_python(code, "1") == "True 0"
    flushed, nonzero = run_python(code, "0").split()
    assert flushed == "False" and int(nonzero) == 512 * 512  # the sums of subnormals are kept

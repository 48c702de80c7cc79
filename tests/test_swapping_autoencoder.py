"""Swapping Autoencoder: official parameter counts and fixture parity, the loss weights, the D/G
alternation, lazy R1, the odd-batch error, the encode/decode/swap API, editing and the swap
grid."""

from __future__ import annotations

import inspect
import json
import math
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
import yaml

from callbacks.swap_grid import structure_code_rgb, swap_grid
from datamodules import UnpairedDataModule
from lightning_modules.gan_module import Phase
from lightning_modules.swapping_autoencoder import SwappingAutoencoder, editing
from lightning_modules.swapping_autoencoder.networks import (
    Encoder,
    Generator,
    PatchDiscriminator,
    image_discriminator,
    random_crops,
    swap_pairs,
)
from lightning_modules.swapping_autoencoder.official import load_official_swapae
from tests.conftest import fixtures_dir

TINY = dict(crop_size=32, spatial_code_ch=4, global_code_ch=32, netE_scale_capacity=0.125,
            netE_num_downsampling_sp=3, netE_num_downsampling_gl=1, netG_scale_capacity=0.0625,
            netD_scale_capacity=0.0625, netD_max_channels=16, netPatchD_scale_capacity=0.25,
            netPatchD_max_nc=16, patch_pair_widths=(16, 16, 8), patch_size=16,
            patch_num_crops=2)


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_parameter_counts_match_the_official_church_configuration():
    assert count(Encoder(8, 2048, 1.0, 4, 2)) == 30_584_872
    assert count(Generator(8, 2048, 1.0, 4, 2)) == 25_064_743
    assert count(image_discriminator(256, 1.0)) == 28_859_521
    assert count(PatchDiscriminator(128, 4.0, 384)) == 24_522_145
    assert count(image_discriminator(64, 1.0)) == 26_484_225


def test_patch_features_of_several_crop_sets_at_once_equal_separate_passes():
    torch.manual_seed(0)
    patch_d = PatchDiscriminator(16, 0.25, 8, (16, 16, 8))
    crop_sets = [torch.randn(2, 3, 3, 16, 16, requires_grad=True) for _ in range(3)]
    aggregate = [True, False, False]
    together = patch_d.features_together(crop_sets, aggregate)
    separate = [patch_d.features(crops, mean)
                for crops, mean in zip(crop_sets, aggregate, strict=True)]
    for ours, expected in zip(together, separate, strict=True):
        torch.testing.assert_close(ours, expected)
    # the aggregated reference: each image's crops share one feature
    assert torch.equal(together[0][0], together[0][2]) and not torch.equal(together[1][0],
                                                                          together[1][2])
    gradients = torch.autograd.grad(sum(f.square().sum() for f in together), crop_sets)
    expected = torch.autograd.grad(sum(f.square().sum() for f in separate), crop_sets)
    for ours, reference in zip(gradients, expected, strict=True):
        torch.testing.assert_close(ours, reference)


# --- official fixture -------------------------------------------------------------------------

def official_fixture():
    folder = fixtures_dir() / "official_swapae"
    assert folder.is_dir(), f"fixture folder {folder} missing: set CORRLAB_FIXTURES"
    options = json.loads((folder / "options.json").read_text())["options"]
    model = load_official_swapae(folder / "latest_checkpoint.pth", options).eval()
    return model, torch.load(folder / "expected.pt", weights_only=True), options


def close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-4)


def test_official_checkpoint_reproduces_the_reference_outputs():
    model, expected, options = official_fixture()
    assert model.hparams.crop_size == options["crop_size"]
    assert model.hparams.global_code_ch == options["global_code_ch"]
    assert model.hparams.patch_use_aggregation == options["patch_use_aggregation"]
    fixed = expected["fixed_noise"]
    noise = [fixed[f"G.HeadResnetBlock{i}.conv{c}.noise.fixed_noise"]
             for i in range(options["netG_num_base_resnet_layers"]) for c in (1, 2)]
    noise += [fixed[f"G.UpsamplingResBlock{2 ** (4 + j)}.conv{c}.noise.fixed_noise"]
              for j in range(options["netE_num_downsampling_sp"]) for c in (1, 2)]
    images = expected["images"]
    with torch.no_grad():
        structure_code, texture_code = model.encode(images)
        close(structure_code, expected["structure_code"])
        close(texture_code, expected["texture_code"])
        close(model.generator(structure_code, texture_code, noise), expected["reconstruction"])
        close(model.generator(structure_code, swap_pairs(texture_code), noise),
              expected["swap"])
        close(model.image_discriminator(images), expected["d_real"])
        patch_d = model.patch_discriminator
        reference = patch_d.features(expected["patch_inputs"][0],
                                     options["patch_use_aggregation"])
        query = patch_d.features(expected["patch_inputs"][1])
        close(reference, expected["patch_features_reference"])
        close(query, expected["patch_features_query"])
        close(patch_d.score(reference, query), expected["patch_scores"])
        torch.manual_seed(expected["seeds"]["seed_crops"])
        scale = (options["patch_min_scale"], options["patch_max_scale"])
        for crops in expected["patch_inputs"]:
            close(random_crops(images, options["patch_size"], scale,
                               options["patch_num_crops"]), crops)


# --- losses -----------------------------------------------------------------------------------

def fixed_randomness(model: SwappingAutoencoder):
    """Deterministic replacements for the module's draws, restartable for a reference."""
    generator = torch.Generator().manual_seed(0)
    uniform = lambda batch, *shape: torch.rand(batch, *shape, generator=generator)
    noise = lambda batch, size: [torch.randn(s, generator=generator)
                                 for s in model.generator.noise_shapes(batch, size)]
    return uniform, noise


def g_terms(model, real):
    uniform, noise = fixed_randomness(model)
    terms, _ = model.loss.g_main(model.encoder, model.generator, model.image_discriminator,
                                 model.patch_discriminator, real, uniform, noise)
    return terms


def reference_g_terms(model, real, lambdas):
    """Eq. 1-4 written out again, with the same random draws in the same order."""
    uniform, noise = fixed_randomness(model)
    structure_code, texture_code = model.encoder(real)
    half, size = real.shape[0] // 2, tuple(structure_code.shape[2:])
    reconstruction = model.generator(structure_code[:half], texture_code[:half],
                                     noise(half, size))
    swapped_structure = structure_code.view(half, 2, *structure_code.shape[1:]).flip(1)
    swapped = model.generator(swapped_structure.reshape(structure_code.shape), texture_code,
                              noise(real.shape[0], size))
    crops = lambda x: random_crops(x, model.hparams.patch_size, (0.125, 0.25),
                                   model.hparams.patch_num_crops,
                                   lambda *s: uniform(x.shape[0], model.hparams.patch_num_crops,
                                                      *s[1:]).reshape(s))
    image_d, patch_d = model.image_discriminator, model.patch_discriminator
    reference = patch_d.features(crops(real), model.hparams.patch_use_aggregation).detach()
    return {"G_L1": (reconstruction - real[:half]).abs().mean() * lambdas["l1"],
            "G_GAN_rec": F.softplus(-image_d(reconstruction)).mean() * 0.5 * lambdas["gan"],
            "G_GAN_mix": F.softplus(-image_d(swapped)).mean() * lambdas["gan"],
            "G_mix": F.softplus(-patch_d.score(reference, patch_d.features(crops(swapped))))
            .mean() * lambdas["patch"]}


@pytest.mark.parametrize("kept", ["l1", "gan", "patch"])
def test_each_generator_term_has_its_weight_and_gradient(kept):
    torch.manual_seed(0)
    weights = {"l1": 0.0, "gan": 0.0, "patch": 0.0, kept: 3.0}
    model = SwappingAutoencoder(**TINY, lambda_L1=weights["l1"], lambda_GAN=weights["gan"] or 1,
                                lambda_PatchGAN=weights["patch"] or 1)
    model.loss.weights.gan, model.loss.weights.patch_gan = weights["gan"], weights["patch"]
    real = torch.rand(4, 3, 32, 32) * 2 - 1
    terms = g_terms(model, real)
    expected = {k: v for k, v in reference_g_terms(model, real, weights).items() if v.item()}
    assert set(terms) == set(expected) and terms
    for name in terms:
        torch.testing.assert_close(terms[name], expected[name])
    params = list(model.generator.parameters()) + list(model.encoder.parameters())
    ours = torch.autograd.grad(sum(g_terms(model, real).values()), params, allow_unused=True)
    theirs = torch.autograd.grad(sum(reference_g_terms(model, real, weights).values()), params,
                                 allow_unused=True)
    for a, b in zip(ours, theirs, strict=True):
        if a is None or b is None:
            assert a is None and b is None or (a if a is not None else b).abs().max() == 0
        else:
            torch.testing.assert_close(a, b)


def test_discriminator_terms_and_r1_weights():
    torch.manual_seed(0)
    model = SwappingAutoencoder(**TINY, lambda_GAN=2.0, lambda_PatchGAN=3.0, lambda_R1=10.0,
                                lambda_patch_R1=4.0)
    real = torch.rand(4, 3, 32, 32) * 2 - 1
    uniform, noise = fixed_randomness(model)
    terms = model.loss.d_main(model.encoder, model.generator, model.image_discriminator,
                              model.patch_discriminator, real, uniform, noise)
    image_d = model.image_discriminator
    torch.testing.assert_close(terms["D_real"], F.softplus(-image_d(real)).mean() * 2.0)
    assert set(terms) == {"D_real", "D_rec", "D_mix", "PatchD_real", "PatchD_mix"}
    # R1: lambda_R1 / 2 * |grad D|^2 + lambda_patch_R1 / 4 * (|grad ref|^2 + |grad query|^2),
    # averaged over images, times the lazy interval
    uniform, _ = fixed_randomness(model)
    r1 = model.loss.d_reg(image_d, None, real, uniform, gain=16.0)["D_R1"]
    images = real.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(image_d(images).sum(), images)
    torch.testing.assert_close(r1, (grad.pow(2).flatten(1).sum(1) * 5.0).mean() * 16.0)
    uniform, _ = fixed_randomness(model)
    patch_r1 = model.loss.d_reg(None, model.patch_discriminator, real, uniform, 1.0)["D_R1"]
    uniform, _ = fixed_randomness(model)
    crop = lambda: random_crops(real, 16, (0.125, 0.25), 2,
                                lambda *s: uniform(4, 2, *s[1:]).reshape(s)).requires_grad_(True)
    reference, query = crop(), crop()
    patch_d = model.patch_discriminator
    logits = patch_d.score(patch_d.features(reference, True), patch_d.features(query))
    grads = torch.autograd.grad(logits.sum(), [reference, query])
    expected = sum(g.pow(2).flatten(1).sum(1) for g in grads) * (4.0 / 4)
    torch.testing.assert_close(patch_r1, expected.mean())


def test_steps_spending_parts_early_give_the_summed_loss_gradient():
    """D_main, D_reg and G_main backpropagate their parts one by one (GANModule.backward_now;
    the patch terms per image) to keep one graph alive at a time: the accumulated gradient
    equals that of the summed loss over the whole batch."""
    torch.manual_seed(0)
    model = SwappingAutoencoder(**TINY, lambda_GAN=2.0, lambda_PatchGAN=3.0, seed=0)
    real = torch.rand(4, 3, 32, 32) * 2 - 1
    discriminators = [model.image_discriminator, model.patch_discriminator]
    parameters = [p for d in discriminators for p in d.parameters()]
    uniform, noise = fixed_randomness(model)
    summed = sum(model.loss.d_main(model.encoder, model.generator, *discriminators, real,
                                   uniform, noise).values())
    expected = torch.autograd.grad(summed, parameters)

    def spend(loss):
        loss.backward()
        return loss.detach()
    uniform, noise = fixed_randomness(model)
    terms = model.loss.d_main(model.encoder, model.generator, *discriminators, real, uniform,
                              noise, spend=spend)
    assert not any(term.requires_grad for term in terms.values())
    torch.testing.assert_close(sum(terms.values()), summed.detach())
    for parameter, gradient in zip(parameters, expected, strict=True):
        torch.testing.assert_close(parameter.grad, gradient, rtol=1e-5, atol=1e-7)
    # R1: image penalty, then the patch penalty one image at a time
    assert model.loss.chunk_images == 1
    uniform, _ = fixed_randomness(model)
    summed = model.loss.d_reg(*discriminators, real, uniform, gain=16.0)["D_R1"]
    expected = torch.autograd.grad(summed, parameters)
    for parameter in parameters:
        parameter.grad = None
    uniform, _ = fixed_randomness(model)
    spent = model.loss.d_reg(*discriminators, real, uniform, gain=16.0, spend=spend)["D_R1"]
    torch.testing.assert_close(spent, summed.detach())
    for parameter, gradient in zip(parameters, expected, strict=True):
        torch.testing.assert_close(parameter.grad, gradient, rtol=1e-5, atol=1e-7)
    # G_main: every term through leaf copies of the reconstruction and the swap, then one
    # backward through the encoder and generator
    networks = [p for net in (model.encoder, model.generator) for p in net.parameters()]
    uniform, noise = fixed_randomness(model)
    summed_terms, _ = model.loss.g_main(model.encoder, model.generator, *discriminators, real,
                                        uniform, noise)
    expected = torch.autograd.grad(sum(summed_terms.values()), networks)
    uniform, noise = fixed_randomness(model)
    spent_terms, _ = model.loss.g_main(model.encoder, model.generator, *discriminators, real,
                                       uniform, noise, spend=spend)
    assert set(spent_terms) == set(summed_terms) == {"G_L1", "G_GAN_rec", "G_GAN_mix", "G_mix"}
    for name, value in spent_terms.items():
        torch.testing.assert_close(value, summed_terms[name].detach())
    for parameter, gradient in zip(networks, expected, strict=True):
        torch.testing.assert_close(parameter.grad, gradient, rtol=1e-5, atol=1e-7)


# --- training schedule ------------------------------------------------------------------------

class Recorder(SwappingAutoencoder):
    def run_phase(self, phase: Phase, batch) -> None:
        self.record.append((self.iteration, phase.name, float(batch["image"].sum())))
        super().run_phase(phase, batch)


def tiny_data(batch_size: int = 4) -> UnpairedDataModule:
    return UnpairedDataModule(batch_size=batch_size, crop_size=32, num_workers=0,
                              synthetic_images=64)


def fit(module: SwappingAutoencoder, tmp_path: Path, data=None) -> L.Trainer:
    trainer = L.Trainer(accelerator="cpu", max_epochs=-1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(module, data or tiny_data())
    return trainer


def test_d_and_g_steps_alternate_on_separate_batches_with_lazy_r1(tmp_path: Path):
    L.seed_everything(0)
    module = Recorder(**TINY, R1_once_every=3, max_kimg=0.048)
    module.record = []
    fit(module, tmp_path)
    assert module.iteration == 12 and module.discriminator_steps == 6
    phases = [(i, name) for i, name, _ in module.record]
    expected = []
    for i in range(12):
        if i % 2 == 0:
            expected.append((i, "D_main"))
            if (i // 2 + 1) % 3 == 0:  # the official counter: D steps 3, 6, ... get R1
                expected.append((i, "D_reg"))
        else:
            expected.append((i, "G_main"))
    assert phases == expected
    checksums = {i: s for i, _, s in module.record}
    assert all(checksums[i] != checksums[i + 1] for i in range(0, 12, 2))  # separate batches


def test_adam_settings_follow_the_official_optimizer():
    module = SwappingAutoencoder(**TINY, lr=0.002, R1_once_every=16)
    g_opt, d_opt = module.configure_optimizers()
    assert g_opt.param_groups[0]["lr"] == 0.002
    assert g_opt.param_groups[0]["betas"] == (0.0, 0.99)
    assert d_opt.param_groups[0]["lr"] == pytest.approx(0.002 * 16 / 17)
    assert d_opt.param_groups[0]["betas"] == pytest.approx((0.0, 0.99 ** (16 / 17)))
    n_g = count(module.encoder) + count(module.generator)
    assert sum(p.numel() for p in g_opt.param_groups[0]["params"]) == n_g
    n_d = count(module.image_discriminator) + count(module.patch_discriminator)
    assert sum(p.numel() for p in d_opt.param_groups[0]["params"]) == n_d


def test_odd_batch_is_a_configuration_error(tmp_path: Path):
    with pytest.raises(ValueError, match="batch_size is 3: .* must be even"):
        fit(SwappingAutoencoder(**TINY), tmp_path, tiny_data(batch_size=3))


def test_api_contract_and_checkpoint_round_trip(tmp_path: Path):
    L.seed_everything(0)
    module = SwappingAutoencoder(**TINY, max_kimg=0.016)
    trainer = fit(module, tmp_path)
    images = torch.rand(4, 3, 32, 32) * 2 - 1
    module.eval()
    structure_code, texture_code = module.encode(images)
    assert structure_code.shape == (4, 4, 4, 4) and texture_code.shape == (4, 32)
    torch.testing.assert_close(structure_code.norm(dim=1), torch.ones(4, 4, 4))
    torch.testing.assert_close(texture_code.norm(dim=1), torch.ones(4))
    decoded = module.decode(structure_code, texture_code)
    assert decoded.shape == images.shape
    swapped = module.swap(images, images.flip(0))
    torch.testing.assert_close(swapped, module.decode(structure_code, texture_code.flip(0)))
    torch.testing.assert_close(module.swap(images, images), decoded)
    trainer.save_checkpoint(tmp_path / "sae.ckpt")
    restored = SwappingAutoencoder.load_from_checkpoint(tmp_path / "sae.ckpt").eval()
    assert next(restored.parameters()).device.type == "cpu"
    assert restored.images_seen == module.images_seen and restored.discriminator_steps == 2
    torch.testing.assert_close(restored.swap(images, images.flip(0)), swapped)


# --- editing and grids ------------------------------------------------------------------------

def test_editing_operations():
    torch.manual_seed(0)
    model = SwappingAutoencoder(**TINY).eval()
    images = torch.rand(6, 3, 32, 32) * 2 - 1
    reconstruction = model.decode(*model.encode(images))
    frames = editing.interpolate_texture(model, images[:1], images[1:2], steps=3)
    torch.testing.assert_close(frames[0], reconstruction[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(frames[2], model.swap(images[:1], images[1:2])[0], atol=1e-5,
                               rtol=1e-5)
    _, directions, std = editing.code_principal_directions(model, images, "texture", k=3)
    torch.testing.assert_close(directions @ directions.T, torch.eye(3), atol=1e-5, rtol=0)
    assert torch.all(std[:-1] >= std[1:])
    _, structure_dirs, _ = editing.code_principal_directions(model, images, "structure", k=2)
    assert structure_dirs.shape == (2, 4)
    torch.testing.assert_close(editing.edit_texture(model, images, directions[0], 0.0),
                               reconstruction)
    assert not torch.allclose(editing.edit_texture(model, images, directions[0], 0.5),
                              reconstruction)
    mask = torch.zeros(6, 1, 32, 32)
    torch.testing.assert_close(editing.edit_structure_region(
        model, images, structure_dirs[0], 2.0, mask), reconstruction)
    mask[:, :, :16] = 1  # top half only: the bottom rows of the structure code are untouched
    edited = editing.edit_structure_region(model, images, structure_dirs[0], 2.0, mask)
    assert not torch.allclose(edited[:, :, :8], reconstruction[:, :, :8])


def test_swap_grid_puts_known_images_in_the_right_cells():
    colours = torch.linspace(-0.8, 0.8, 4)
    structures = colours[:2].view(2, 1, 1, 1).expand(2, 3, 4, 4)
    textures = colours[2:].view(2, 1, 1, 1).expand(2, 3, 4, 4)
    swaps = torch.stack([torch.stack([torch.full((3, 4, 4), 10.0 * i + j) for j in range(2)])
                         for i in range(2)])
    grid = swap_grid(structures, textures, swaps, padding=1)
    assert grid.shape == (3, 3 * 5 + 1, 3 * 5 + 1)
    cell = lambda row, col: grid[:, 1 + 5 * row: 5 + 5 * row, 1 + 5 * col: 5 + 5 * col]
    assert torch.all(cell(0, 0) == 1.0)  # blank corner
    for j in range(2):
        assert torch.all(cell(0, j + 1) == colours[2 + j])  # texture references on top
    for i in range(2):
        assert torch.all(cell(i + 1, 0) == colours[i])  # structure references on the left
        for j in range(2):
            assert torch.all(cell(i + 1, j + 1) == 10.0 * i + j)


def test_structure_code_rgb_is_in_range_and_upsampled():
    code = F.normalize(torch.randn(2, 8, 4, 4), dim=1)
    rgb = structure_code_rgb(code, (16, 16))
    assert rgb.shape == (2, 3, 16, 16)
    assert rgb.min() >= -1 - 1e-6 and rgb.max() <= 1 + 1e-6
    assert math.isclose(float(rgb.amin(dim=(0, 2, 3)).max()), -1.0, abs_tol=1e-5)


def test_official_import_reads_opt_txt_and_rejects_other_files(tmp_path: Path):
    from lightning_modules.checkpoints import CheckpointError

    folder = fixtures_dir() / "official_swapae"
    from_json, expected, options = official_fixture()
    from_txt = load_official_swapae(folder / "latest_checkpoint.pth", folder / "opt.txt").eval()
    assert dict(from_txt.hparams) == dict(from_json.hparams)
    with torch.no_grad():
        torch.testing.assert_close(from_txt.encode(expected["images"])[1],
                                   expected["texture_code"], rtol=0, atol=1e-4)
    assert from_txt.discriminator_steps == 1  # the official num_discriminator_iters buffer
    config = tmp_path / "fixture.yaml"  # a corrlab config of the same setting works too
    accepted = inspect.signature(SwappingAutoencoder).parameters
    config.write_text(yaml.safe_dump({"model": {"init_args": {  # every option the fixture sets
        key: value for key, value in options.items() if key in accepted}}}))
    from_yaml = load_official_swapae(folder / "latest_checkpoint.pth", config)
    assert dict(from_yaml.hparams) == dict(from_json.hparams)
    torch.save({"model": {}}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="not an official Swapping Autoencoder"):
        load_official_swapae(tmp_path / "other.pth", options)
    wrong = dict(options, global_code_ch=128)
    with pytest.raises(CheckpointError, match="does not fit the options"):
        load_official_swapae(folder / "latest_checkpoint.pth", wrong)


def test_shipped_demo_model_is_the_demo_config_trained_for_make_demo_models_budget():
    """``make demo`` evaluates this file; ``make demo-model`` retrains it (the demo config for
    the Makefile's DEMO_MODEL_KIMG, otherwise unchanged) and exports it slim."""
    from lightning_modules.checkpoints import safe_load
    from tests.conftest import ROOT, makefile_variable

    asset = ROOT / makefile_variable("DEMO_MODEL")
    budget = float(makefile_variable("DEMO_MODEL_KIMG"))
    config = ROOT / makefile_variable("DEMO_CONFIG")
    demo = yaml.safe_load(config.read_text())["model"]["init_args"]
    saved = safe_load(asset)  # loads without trust: tensors and plain values only
    assert "optimizer_states" not in saved and "rng_states" not in saved["corrlab"]
    assert asset.stat().st_size < 8 * 2**20
    hyper = saved["hyper_parameters"]
    assert hyper["max_kimg"] == budget and saved["corrlab"]["images_seen"] >= 1000 * budget
    for key, value in demo.items():
        if key != "max_kimg":
            expected = list(value) if isinstance(value, list | tuple) else value
            got = list(hyper[key]) if isinstance(hyper[key], list | tuple) else hyper[key]
            assert got == expected, key
    # trained: its swaps are nearer the truth than the same networks' at initialisation
    from callbacks.accuracy import structure_accuracy
    from callbacks.swap_error import swap_pairs_with_truth, swap_truth_labels

    structures, textures, truths = swap_pairs_with_truth(16, demo["crop_size"], seed=2024)
    labels = swap_truth_labels(16, demo["crop_size"], seed=2024)
    trained = SwappingAutoencoder.load_from_checkpoint(asset).eval()
    torch.manual_seed(0)
    initial = SwappingAutoencoder(**demo).eval()
    with torch.no_grad():
        swaps = {name: model.swap(structures, textures).clamp(-1, 1)
                 for name, model in (("trained", trained), ("initial", initial))}
    assert swaps["trained"].shape == truths.shape and torch.isfinite(swaps["trained"]).all()
    error = {name: float((swap - truths).abs().mean()) for name, swap in swaps.items()}
    layout = {name: float(structure_accuracy(swap, labels).mean())
              for name, swap in swaps.items()}
    assert error["trained"] < error["initial"] and layout["trained"] > layout["initial"]

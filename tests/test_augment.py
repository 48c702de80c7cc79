"""ADA-style augmentation: exact identity at p = 0, the rotation convention, differentiability,
the adaptive-p rule of Karras et al. (2020) Sec. 3, and its use in few-shot CDC."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from lightning_modules.layers.augment import AdaptiveAugment, augment


def seeded_draw(seed: int = 0):
    rng = torch.Generator().manual_seed(seed)

    def draw(batch, *shape, kind="normal"):
        sample = torch.randn if kind == "normal" else torch.rand
        return sample(batch, *shape, generator=rng)
    return draw


def constant_draw(uniform: float):
    """Every uniform draw returns ``uniform``, every normal draw 0."""
    def draw(batch, *shape, kind="normal"):
        return torch.full((batch, *shape), uniform if kind == "uniform" else 0.0)
    return draw


def test_zero_probability_is_the_identity_and_tiny_probability_nearly():
    images = torch.randn(6, 3, 16, 16)
    assert augment(images, 0.0, seeded_draw()) is images
    # p > 0 but no transform chosen: the warp at the identity must sample pixel centres exactly
    torch.testing.assert_close(augment(images, 1e-12, seeded_draw()), images,
                               rtol=0, atol=1e-5)


def test_all_transforms_at_their_neutral_values_but_a_half_turn():
    """uniform 0.5, normal 0: no flip, quarter turns floor(0.5 * 4) = 2, zero shifts, zero
    angle, unit scale, no colour change -> exactly a 180-degree rotation."""
    images = torch.randn(3, 3, 8, 8)
    rotated = augment(images, 1.0, constant_draw(0.5))
    torch.testing.assert_close(rotated, torch.rot90(images, 2, dims=(-2, -1)), rtol=0, atol=1e-5)


def test_augmentation_changes_images_and_passes_gradients():
    images = torch.randn(8, 3, 16, 16, requires_grad=True)
    out = augment(images, 1.0, seeded_draw(3))
    assert out.shape == images.shape
    assert not torch.allclose(out, images, atol=1e-2)
    out.square().sum().backward()
    assert torch.isfinite(images.grad).all() and images.grad.abs().sum() > 0


def test_constant_image_stays_flat_under_geometry():
    """Reflection padding: a constant image warped stays constant (no zero borders)."""
    images = torch.full((16, 3, 16, 16), 0.3)
    matrix_only = augment(images, 1.0, seeded_draw(5))
    per_image = matrix_only.flatten(2)
    assert (per_image.max(dim=2).values - per_image.min(dim=2).values).abs().max() < 1e-5


def test_probability_sets_the_share_of_changed_images():
    images = torch.randn(2000, 3, 8, 8)
    changed = (augment(images, 0.1, seeded_draw(7)) - images).flatten(1).abs().amax(1) > 1e-4
    # 9 transforms, each chosen with p; once chosen, the x-flip happens half the time, the
    # quarter turn is non-zero 3/4 of the time, the integer shift of round(U(-1, 1)) pixels
    # (1/8 of 8 px) half the time, the other six always change the image.
    expected = 1 - (1 - 0.05) * (1 - 0.075) * (1 - 0.05) * 0.9 ** 6
    assert float(changed.float().mean()) == pytest.approx(expected, abs=0.03)


def test_adaptive_probability_rule():
    controller = AdaptiveAugment(target=0.6, speed_kimg=1.0, interval=4)
    positive = torch.ones(8, 1)
    for _ in range(3):
        controller.observe(positive)
    assert float(controller.p) == 0.0  # adjusted only every `interval` D steps
    assert controller.rate() == 1.0
    controller.observe(positive)  # r_t = 1 > 0.6: p += 4 steps * 8 images / 1000
    assert float(controller.p) == pytest.approx(32 / 1000)
    for _ in range(4):
        controller.observe(-torch.ones(8, 1, 5, 5))  # patch logits: per-image mean, r_t = -1
    assert float(controller.p) == pytest.approx(0.0)
    for _ in range(4):
        controller.observe(-torch.ones(8, 1))
    assert float(controller.p) == 0.0  # clamped at 0
    fixed = AdaptiveAugment(target=None, initial_p=0.3)
    for _ in range(8):
        fixed.observe(positive)
    assert float(fixed.p) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="initial_p"):
        AdaptiveAugment(initial_p=1.5)


def test_few_shot_cdc_with_ada_trains_adapts_p_and_resumes_it(tmp_path):
    from datamodules import FewShotDataModule
    from lightning_modules.few_shot_cdc import FewShotCDC
    from tests.test_few_shot_cdc import FIXTURE

    L.seed_everything(0)
    module = FewShotCDC(str(FIXTURE / "checkpoint.pt"), num_anchors=4, patch_resolution=16,
                        seed=0, augment=True, ada_speed_kimg=0.1, ada_target=-2.0,
                        max_kimg=12 * 4 / 1000)
    source_before = {k: v.clone() for k, v in module.source_generator.state_dict().items()}
    trainer = L.Trainer(accelerator="cpu", max_epochs=-1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0)
    trainer.fit(module, FewShotDataModule(k=4, batch_size=4, crop_size=32, epoch_length=48,
                                          num_workers=0))
    assert module.iteration == 12
    # every D_main step observed: 12 steps = 3 adjustments of +16 images / 100 (r_t > -2)
    p = float(module.augment.p)
    assert p == pytest.approx(3 * 16 / 100)
    for key, value in module.source_generator.state_dict().items():
        assert torch.equal(value, source_before[key]), key
    trainer.save_checkpoint(tmp_path / "ada.ckpt")
    restored = FewShotCDC.load_from_checkpoint(tmp_path / "ada.ckpt")
    assert float(restored.augment.p) == p
    plain = FewShotCDC(str(FIXTURE / "checkpoint.pt"), num_anchors=4, patch_resolution=16)
    assert plain.augment is None and not any("augment" in key for key in plain.state_dict())
    images = torch.randn(4, 3, 32, 32)
    with torch.no_grad():  # both critics see augmented images: two calls differ
        assert torch.equal(plain.image_critic(images), plain.image_critic(images))
        assert not torch.equal(module.image_critic(images), module.image_critic(images))
        assert not torch.equal(module.patch_critic(images), module.patch_critic(images))

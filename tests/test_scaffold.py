"""The scaffold's contracts: phases dispatch to ``loss_<name>`` methods (an unknown or
unmatched phase is an error), optimizers and learning-rate schedules from the config (TTUR,
any torch.optim class, gradient-norm clipping), and a single-phase non-adversarial module
trained on the scaffold."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from datamodules import UnpairedDataModule
from lightning_modules.errors import ConfigError
from lightning_modules.gan_module import LRSchedule, Phase
from lightning_modules.stylegan2 import StyleGAN2
from tests.tiny_module import TinyTranslator

TINY = dict(size=8, style_dim=8, n_mlp=1, channels={4: 8, 8: 8}, mbstd_group_size=0)


class _Typo(TinyTranslator):
    def phases(self) -> list[Phase]:
        return [Phase("mian", "net")]


class _UnknownNetwork(TinyTranslator):
    def phases(self) -> list[Phase]:
        return [Phase("main", "generator")]


def test_phases_need_their_loss_method_and_a_known_network():
    with pytest.raises(ConfigError, match="no method loss_mian"):
        _Typo().configure_optimizers()
    with pytest.raises(ConfigError, match="network 'generator'"):
        _UnknownNetwork().configure_optimizers()
    module = TinyTranslator()
    module.configure_optimizers()
    images = torch.zeros(2, 3, 8, 8)
    terms = module.phase_loss(Phase("main", "net"), {"image": images}, 1.0)
    assert set(terms) == {"L1"}
    with pytest.raises(ConfigError, match="loss_G_main"):
        module.phase_loss(Phase("G_main", "net"), {"image": images}, 1.0)


def test_optimizers_and_ttur_come_from_the_config():
    module = StyleGAN2(**TINY, optimizers={
        "generator": {"lr": 1e-4, "betas": [0.0, 0.9], "eps": 1e-3},
        "discriminator": {"optimizer": "SGD", "lr": 0.1, "kwargs": {"momentum": 0.9}}})
    generator, discriminator = module.configure_optimizers()
    g_ratio, d_ratio = 4 / 5, 16 / 17  # lazy regularization every 4 (G) and 16 (D)
    assert isinstance(generator, torch.optim.Adam)
    group = generator.param_groups[0]
    assert group["lr"] == pytest.approx(1e-4 * g_ratio) and group["eps"] == 1e-3
    assert group["betas"] == pytest.approx((0.0, 0.9 ** g_ratio))
    assert isinstance(discriminator, torch.optim.SGD)
    assert discriminator.param_groups[0]["lr"] == pytest.approx(0.1 * d_ratio)
    assert discriminator.param_groups[0]["momentum"] == 0.9
    default_g, _ = StyleGAN2(**TINY).configure_optimizers()  # Adam, lr 0.002, betas (0, 0.99)
    assert default_g.param_groups[0]["lr"] == pytest.approx(0.002 * g_ratio)
    with pytest.raises(ConfigError, match="not networks"):
        StyleGAN2(**TINY, optimizers={"generater": {"lr": 1.0}}).configure_optimizers()
    with pytest.raises(ConfigError, match="unknown option"):
        StyleGAN2(**TINY, optimizers={"generator": {"learning_rate": 1.0}}).configure_optimizers()
    with pytest.raises(ConfigError, match="not a torch.optim"):
        StyleGAN2(**TINY, optimizers={"generator": {"optimizer": "Adamm"}}).configure_optimizers()


def test_gradient_clipping_rescales_a_step_to_the_configured_norm():
    """SGD at lr 1 moves the weights by minus the (clipped) gradient: the step's norm is the
    clip value when the gradient is larger, the gradient itself when it is smaller."""
    images = {"image": torch.rand(4, 3, 8, 8) * 10}
    torch.manual_seed(0)
    reference = TinyTranslator(optimizers={"net": {"optimizer": "SGD", "lr": 1.0}})
    reference.configure_optimizers()
    reference.loss_main(images, 1.0)["L1"].backward()
    gradient = torch.cat([p.grad.flatten() for p in reference.net.parameters()])
    full_norm = gradient.norm().item()
    for clip in (full_norm / 4, full_norm * 2):
        torch.manual_seed(0)
        module = TinyTranslator(optimizers={"net": {"optimizer": "SGD", "lr": 1.0,
                                                    "clip_grad_norm": clip}})
        (optimizer,) = module.configure_optimizers()
        before = torch.cat([p.detach().flatten().clone() for p in module.net.parameters()])
        module.step_phase(Phase("main", "net"), images, optimizer)
        after = torch.cat([p.detach().flatten() for p in module.net.parameters()])
        assert module.last_grad_norm.item() == pytest.approx(full_norm, rel=1e-5)
        expected = gradient * min(1.0, clip / full_norm)
        torch.testing.assert_close(before - after, expected, rtol=1e-4, atol=1e-6)
    with pytest.raises(ConfigError, match="clip_grad_norm"):
        TinyTranslator(optimizers={"net": {"clip_grad_norm": 0}}).configure_optimizers()


def test_gradient_clipping_refuses_loss_scaled_gradients(monkeypatch):
    """fp16 mixed precision scales the loss, so a clip before the scaler's unscaling would act
    on scaled gradients: refused when the optimizers are configured; bf16 has no scaling."""
    module = TinyTranslator(optimizers={"net": {"clip_grad_norm": 1.0}})
    for precision, refused in (("16-mixed", True), ("16-true", False), ("bf16-mixed", False),
                               ("32-true", False)):
        fake_trainer = type("FakeTrainer", (), {"precision": precision})()
        monkeypatch.setattr(module, "_trainer", fake_trainer)
        monkeypatch.setattr(type(module), "trainer", property(lambda self: self._trainer))
        if refused:
            with pytest.raises(ConfigError, match="loss-scaled"):
                module.configure_optimizers()
        else:
            module.configure_optimizers()


def test_learning_rate_schedules():
    linear = LRSchedule("linear", decay_kimg=4)
    assert [linear.factor(k, 10) for k in (0, 6, 8, 10, 12)] == [1, 1, 0.5, 0, 0]
    step = LRSchedule("step", step_kimg=2, gamma=0.5)
    assert [step.factor(k, None) for k in (0, 1.9, 2, 5)] == [1, 1, 0.5, 0.25]
    assert LRSchedule().factor(123, None) == 1
    with pytest.raises(ConfigError, match="decay_kimg"):
        LRSchedule("linear")
    with pytest.raises(ConfigError, match="not one of"):
        LRSchedule("cosine")


def test_a_single_phase_module_trains_on_the_scaffold_with_a_schedule(tmp_path):
    L.seed_everything(0)
    module = TinyTranslator(max_kimg=0.024, seed=0, optimizers={
        "net": {"schedule": {"kind": "linear", "decay_kimg": 0.016}, "clip_grad_norm": 1e-3}})
    assert not hasattr(module, "net_ema")  # no EMA unless a module asks for it
    before = [p.detach().clone() for p in module.parameters()]
    data = UnpairedDataModule(batch_size=4, crop_size=8, synthetic_images=16, num_workers=0)
    trainer = L.Trainer(accelerator="cpu", max_epochs=-1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0,
                        default_root_dir=tmp_path)
    trainer.fit(module, data)
    assert module.iteration == 6 and module.images_seen == 24
    assert any(not torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True))
    group = trainer.optimizers[0].param_groups[0]
    last_kimg = 0.020  # the schedule is applied at the start of each iteration
    assert group["lr"] == pytest.approx(group["base_lr"] * (0.024 - last_kimg) / 0.016)
    assert trainer.callback_metrics["main/grad_norm"] > 1e-3  # logged before clipping
    path = tmp_path / "single.ckpt"
    trainer.save_checkpoint(path)
    restored = TinyTranslator.load_from_checkpoint(path)
    assert restored.hparams.optimizers == module.hparams.optimizers
    assert all(torch.equal(a, b) for a, b in zip(restored.parameters(), module.parameters(),
                                                 strict=True))

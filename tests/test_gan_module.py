"""The GAN scaffold on a tiny StyleGAN2: phases and intervals, lazy-regularization Adam
correction, images-seen counter, EMA, checkpoint contents, the non-finite guard and DDP."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from datamodules import UnpairedDataModule
from lightning_modules.gan_module import NonFiniteError, Phase, lazy_regularization_ratio
from lightning_modules.stylegan2 import StyleGAN2
from tests.conftest import HANG_GUARD_S, ROOT

TINY = {"size": 16, "style_dim": 16, "n_mlp": 2, "channels": {4: 16, 8: 16, 16: 8}}


def tiny_module(**kwargs) -> StyleGAN2:
    return StyleGAN2(**{**TINY, "d_reg_every": 4, "g_reg_every": 2, **kwargs})


def tiny_data(**kwargs) -> UnpairedDataModule:
    return UnpairedDataModule(**{"batch_size": 4, "crop_size": 16, "num_workers": 0,
                                 "synthetic_images": 64, **kwargs})


def trainer(tmp_path: Path, **kwargs) -> L.Trainer:
    return L.Trainer(**{"accelerator": "cpu", "max_epochs": -1, "logger": False,
                        "enable_checkpointing": False, "enable_progress_bar": False,
                        "enable_model_summary": False, "default_root_dir": tmp_path, **kwargs})


class PhaseRecorder(StyleGAN2):
    def run_phase(self, phase: Phase, batch) -> None:
        self.record.append((self.iteration, phase.name))
        super().run_phase(phase, batch)


def test_phases_run_at_their_intervals_in_order(tmp_path: Path):
    L.seed_everything(0)
    module = PhaseRecorder(**TINY, d_reg_every=4, g_reg_every=2, max_kimg=0.024)
    module.record = []
    trainer(tmp_path).fit(module, tiny_data())
    assert module.iteration == 6 and module.images_seen == 24
    expected = []
    for i in range(6):
        expected.append((i, "D_main"))
        expected += [(i, "D_reg")] if i % 4 == 0 else []
        expected.append((i, "G_main"))
        expected += [(i, "G_reg")] if i % 2 == 0 else []
    assert module.record == expected


class GradientWitness(L.Callback):
    """Per optimizer step: whether the stepping network has gradients before its step, and
    whether the other network still holds any."""

    def __init__(self) -> None:
        self.seen: list[tuple[bool, bool]] = []

    def on_before_optimizer_step(self, trainer, module, optimizer) -> None:
        stepping = {id(p) for group in optimizer.param_groups for p in group["params"]}
        mine = [p.grad is not None for p in module.parameters() if id(p) in stepping]
        others = [p.grad is not None for p in module.parameters() if id(p) not in stepping]
        self.seen.append((any(mine), any(others)))


def test_gradients_are_seen_before_the_step_and_freed_after_it(tmp_path: Path):
    L.seed_everything(0)
    witness = GradientWitness()
    module = tiny_module(max_kimg=0.008)
    trainer(tmp_path, callbacks=[witness]).fit(module, tiny_data())
    assert len(witness.seen) == 6  # iterations 0 (D_main, D_reg, G_main, G_reg) and 1
    assert all(mine and not others for mine, others in witness.seen), witness.seen
    assert all(p.grad is None for p in module.parameters())


def test_lazy_regularization_corrects_adam_lr_and_betas():
    module = tiny_module(lr=0.002, d_reg_every=16, g_reg_every=4)
    g_opt, d_opt = module.configure_optimizers()
    assert lazy_regularization_ratio(16) == 16 / 17
    assert g_opt.param_groups[0]["lr"] == pytest.approx(0.002 * 4 / 5)
    assert g_opt.param_groups[0]["betas"] == pytest.approx((0.0, 0.99 ** (4 / 5)))
    assert d_opt.param_groups[0]["lr"] == pytest.approx(0.002 * 16 / 17)
    assert d_opt.param_groups[0]["betas"] == pytest.approx((0.0, 0.99 ** (16 / 17)))
    no_reg = tiny_module(r1_gamma=0, pl_weight=0)
    assert [o.param_groups[0]["lr"] for o in no_reg.configure_optimizers()] == [0.002, 0.002]
    assert [p.name for p in no_reg.phases()] == ["D_main", "G_main"]


def test_adam_is_the_fused_kernel_with_the_textbook_update():
    module = tiny_module(lr=0.002, d_reg_every=16, g_reg_every=4)
    _, d_opt = module.configure_optimizers()
    assert d_opt.param_groups[0]["fused"]
    parameters = d_opt.param_groups[0]["params"]
    reference = torch.optim.Adam([p.detach().clone().requires_grad_() for p in parameters],
                                 **{k: d_opt.param_groups[0][k] for k in ("lr", "betas", "eps")},
                                 foreach=False)
    torch.manual_seed(0)
    for _ in range(3):  # the same gradients into both
        for ours, theirs in zip(parameters, reference.param_groups[0]["params"], strict=True):
            ours.grad = torch.randn_like(ours)
            theirs.grad = ours.grad.clone()
        d_opt.step(), reference.step()
    for ours, theirs in zip(parameters, reference.param_groups[0]["params"], strict=True):
        torch.testing.assert_close(ours.detach(), theirs.detach(), rtol=1e-6, atol=1e-7)


def test_tiny_stylegan2_trains_and_checkpoints_everything(tmp_path: Path):
    L.seed_everything(0)
    module = tiny_module(max_kimg=0.3, ema_half_life_kimg=0.05)
    initial_ema = {k: v.clone() for k, v in module.generator_ema.state_dict().items()}
    fit = trainer(tmp_path, log_every_n_steps=1)
    fit.fit(module, tiny_data())
    assert module.images_seen == 300 and module.iteration == 75  # stopped by max_kimg
    metrics = fit.callback_metrics
    for key in ("D_main/logistic", "D_reg/r1", "G_main/nonsaturating", "G_reg/path_length"):
        assert torch.isfinite(metrics[key]), key
    assert metrics["progress/kimg"] == pytest.approx(0.3)
    moved = [k for k, v in module.generator_ema.named_parameters()
             if not torch.equal(v, initial_ema[k])]
    assert len(moved) == len(list(module.generator_ema.parameters()))  # EMA was updated
    assert not torch.equal(module.generator_ema.const, module.generator.const)  # and lags G
    assert module.loss.path_length.mean > 0

    path = tmp_path / "tiny.ckpt"
    fit.save_checkpoint(path)
    checkpoint = torch.load(path, weights_only=False)
    assert checkpoint["corrlab"]["images_seen"] == 300
    assert checkpoint["corrlab"]["iteration"] == 75
    assert checkpoint["corrlab"]["model_class"].endswith("StyleGAN2")
    assert len(checkpoint["corrlab"]["rng_states"]) == 1  # one per rank
    assert len(checkpoint["optimizer_states"]) == 2
    assert "loss.path_length.mean" in checkpoint["state_dict"]
    restored = StyleGAN2.load_from_checkpoint(path)
    restored.on_load_checkpoint(checkpoint)
    assert restored.images_seen == 300
    for key, value in module.state_dict().items():
        torch.testing.assert_close(restored.state_dict()[key], value, rtol=0, atol=0)
    assert restored.sample(2, seed=1).shape == (2, 3, 16, 16)
    torch.testing.assert_close(restored.sample(2, seed=1), module.sample(2, seed=1))


class ExplodingStyleGAN2(StyleGAN2):
    def phase_loss(self, phase: Phase, batch, gain: float):
        terms = super().phase_loss(phase, batch, gain)
        if phase.name == "G_main" and self.iteration == 3:
            terms["nonsaturating"] = terms["nonsaturating"] * float("nan")
        return terms


def test_non_finite_loss_stops_naming_the_phase_and_keeps_the_checkpoint(tmp_path: Path):
    L.seed_everything(0)
    module = ExplodingStyleGAN2(**TINY, d_reg_every=4, g_reg_every=2)
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=1,
                                  save_top_k=-1)
    run = trainer(tmp_path, callbacks=[checkpoints], enable_checkpointing=True)
    with pytest.raises(NonFiniteError, match="non-finite loss .* phase 'G_main' at iteration 3"):
        run.fit(module, tiny_data())
    saved = sorted((tmp_path / "ckpt").glob("*.ckpt"))
    assert saved, "checkpoints of the good iterations must exist"
    last = torch.load(saved[-1], weights_only=False)
    assert last["corrlab"]["iteration"] == 3  # written after iteration 2, none after the NaN
    for tensor in last["state_dict"].values():
        assert torch.isfinite(tensor).all()


def test_lightning_ddp_is_refused_with_a_pointer_to_corrlab_ddp(tmp_path: Path):
    from lightning.pytorch.strategies import DDPStrategy

    module = tiny_module()
    module._trainer = type("FakeTrainer", (), {"strategy": DDPStrategy()})()
    with pytest.raises(ValueError, match="corrlab_ddp"):
        module.setup("fit")


def test_two_gloo_processes_match_one_process_with_the_doubled_batch(tmp_path: Path):
    def run(prefix: str, devices: int, batch: int) -> None:
        result = subprocess.run([sys.executable, "-m", "tests.ddp_run", str(tmp_path / prefix),
                                 str(devices), str(batch), "6"], cwd=ROOT, capture_output=True,
                                text=True, timeout=HANG_GUARD_S)
        assert result.returncode == 0, result.stderr[-3000:]

    run("ddp", 2, 2)
    run("single", 1, 4)
    rank0, rank1 = (torch.load(tmp_path / f"ddp.rank{r}.pt") for r in (0, 1))
    single = torch.load(tmp_path / "single.rank0.pt")
    assert rank0["images_seen"] == rank1["images_seen"] == single["images_seen"] == 24
    for key, value in rank0["state"].items():
        torch.testing.assert_close(rank1["state"][key], value, rtol=0, atol=0)
        torch.testing.assert_close(single["state"][key], value, rtol=1e-5, atol=1e-5)
    # training really moved the weights (the comparison is not between untouched copies)
    fresh = StyleGAN2(**TINY)
    assert not torch.allclose(fresh.discriminator.from_rgb.bias,
                              rank0["state"]["discriminator.from_rgb.bias"])

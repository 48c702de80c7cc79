"""GANModule's speed switches train the same numbers as a plain run, up to float rounding:
``channels_last``, ``compile_networks`` (higher-order phases stay eager), and mixed precision
through the Trainer's ``precision`` (higher-order phases stay in fp32)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch

from lightning_modules.gan_module import GANModule, Phase
from lightning_modules.stylegan2 import StyleGAN2
from lightning_modules.swapping_autoencoder import SwappingAutoencoder
from tests.test_gan_module import TINY as TINY_STYLEGAN2
from tests.test_gan_module import tiny_data, trainer
from tests.test_swapping_autoencoder import TINY as TINY_SWAPAE


def phase_gradients(module: GANModule, batch: dict) -> dict[str, list[torch.Tensor]]:
    """Every phase once on ``batch``; the gradient each leaves on its network's parameters
    (a zero learning rate keeps the parameters, so each phase sees the same networks)."""
    module.configure_optimizers()
    module.prepare_for_training()
    gradients = {}
    for phase in module.phases():
        parameters = module.network_parameters(phase.network)
        recorder = GradientRecorder(parameters)
        module.step_phase(phase, batch, recorder)
        gradients[phase.name] = recorder.seen
        assert all(p.grad is None for p in parameters), "gradients kept after the step"
    return gradients


class GradientRecorder(torch.optim.SGD):
    """SGD with a zero learning rate that keeps a copy of the gradients it stepped with."""

    def __init__(self, parameters: list[torch.Tensor]) -> None:
        super().__init__(parameters, lr=0.0)
        self.seen: list[torch.Tensor] = []

    def step(self, closure=None):
        self.seen = [p.grad.clone() for group in self.param_groups for p in group["params"]
                     if p.grad is not None]
        return super().step(closure)


def assert_same_gradients(actual: dict, expected: dict) -> None:
    assert actual.keys() == expected.keys()
    for name in expected:
        assert len(actual[name]) == len(expected[name]) > 0, name
        for got, want in zip(actual[name], expected[name], strict=True):
            scale = want.abs().max().item()
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5 * scale + 1e-9,
                                       msg=lambda m, n=name: f"{n}: {m}")


def test_channels_last_gives_the_same_gradients_and_checkpoints(tmp_path: Path):
    batch = {"image": torch.rand(4, 3, 32, 32) * 2 - 1}
    results = {}
    for layout in (False, True):
        torch.manual_seed(0)
        module = SwappingAutoencoder(**TINY_SWAPAE, R1_once_every=1, seed=0,
                                     channels_last=layout)
        results[layout] = phase_gradients(module, batch)
    assert_same_gradients(results[True], results[False])
    # through the Trainer it is applied when fitting starts; checkpoints load anywhere
    L.seed_everything(0)
    module = SwappingAutoencoder(**TINY_SWAPAE, max_kimg=0.008, channels_last=True)
    fit = trainer(tmp_path)
    fit.fit(module, tiny_data(crop_size=32))
    weight = max((p for p in module.encoder.parameters() if p.dim() == 4), key=torch.numel)
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    fit.save_checkpoint(tmp_path / "cl.ckpt")
    restored = SwappingAutoencoder.load_from_checkpoint(tmp_path / "cl.ckpt",
                                                        channels_last=False).eval()
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    torch.testing.assert_close(restored.swap(images, images.flip(0)),
                               module.eval().swap(images, images.flip(0)), rtol=1e-4, atol=1e-5)


class DtypeRecorder(StyleGAN2):
    """Records the floating dtypes every submodule outputs, per phase."""

    def run_phase(self, phase: Phase, batch) -> None:
        self.current = phase.name
        super().run_phase(phase, batch)


def test_mixed_precision_runs_main_phases_in_bf16_and_regularizers_in_fp32(tmp_path: Path):
    L.seed_everything(0)
    module = DtypeRecorder(**TINY_STYLEGAN2, d_reg_every=1, g_reg_every=1, max_kimg=0.008)
    module.dtypes = {}

    def hook(_, __, output):
        outputs = output if isinstance(output, tuple | list) else (output,)
        for tensor in outputs:
            if torch.is_tensor(tensor) and tensor.is_floating_point():
                module.dtypes.setdefault(module.current, set()).add(tensor.dtype)
    for network in (module.generator, module.discriminator):
        for submodule in network.modules():
            submodule.register_forward_hook(hook)
    trainer(tmp_path, precision="bf16-mixed").fit(module, tiny_data())
    assert module.iteration == 2
    for name in ("D_main", "G_main"):
        assert torch.bfloat16 in module.dtypes[name], name
    for name in ("D_reg", "G_reg"):  # R1 and path length: gradients of gradients, in fp32
        assert module.dtypes[name] == {torch.float32}, name
    assert all(torch.isfinite(p).all() for p in module.parameters())


def test_compiled_networks_give_the_same_gradients_and_keep_regularizers_eager():
    torch._dynamo.reset()
    batch = {"image": torch.rand(4, 3, 16, 16) * 2 - 1}
    results = {}
    # seed 1: with seed 0 (most likely a leaky-ReLU input of D within float rounding of its kink)
    # G_main's gradient differs by 1% in a few entries either way; seeds 1-3 agree to 1e-7
    for compiled in (False, True):
        torch.manual_seed(1)
        module = StyleGAN2(**TINY_STYLEGAN2, d_reg_every=1, g_reg_every=1, seed=1,
                           compile_networks=compiled)
        results[compiled] = phase_gradients(module, batch)
    assert module.generator._compiled_call_impl is not None
    assert module.discriminator._compiled_call_impl is not None
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0
    assert_same_gradients(results[True], results[False])


@pytest.mark.parametrize("phase", [Phase("D_main", "discriminator"),
                                   Phase("D_reg", "discriminator", 16, higher_order=True)])
def test_phase_context_turns_autocast_off_only_for_higher_order_phases(phase: Phase):
    module = StyleGAN2(**TINY_STYLEGAN2)
    with torch.autocast("cpu", dtype=torch.bfloat16), module.phase_context(phase):
        dtype = torch.nn.functional.linear(torch.ones(2, 3), torch.ones(4, 3)).dtype
    assert dtype == (torch.float32 if phase.higher_order else torch.bfloat16)


@pytest.mark.parametrize("faster", ["channels_last", "contiguous"])
def test_channels_last_auto_times_both_layouts_and_keeps_the_faster(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, faster: str):
    """A fake clock makes one layout's iterations take half as long: ``auto`` must keep that
    one, with the optimizer states in the same layout, and save the choice."""
    import lightning_modules.gan_module as gan_module
    from lightning_modules.layout import LayoutProbe

    L.seed_everything(0)
    module = SwappingAutoencoder(**TINY_SWAPAE, max_kimg=0.004 * 10)  # 10 iterations
    assert module.channels_last == "auto"  # the Swapping Autoencoder's default
    weight = max((p for p in module.encoder.parameters() if p.dim() == 4), key=torch.numel)
    layouts = []

    def clock() -> float:  # each call: the time an iteration in the current layout took
        is_channels_last = weight.is_contiguous(memory_format=torch.channels_last) and \
            not weight.is_contiguous()
        layouts.append(is_channels_last)
        clock.now += 1.0 if is_channels_last == (faster == "channels_last") else 2.0
        return clock.now

    clock.now = 0.0
    monkeypatch.setattr(gan_module, "LayoutProbe", lambda: LayoutProbe(clock=clock))
    fit = trainer(tmp_path)
    fit.fit(module, tiny_data(crop_size=32))
    assert module.iteration == 10
    chose_channels_last = faster == "channels_last"
    assert module._layout_choice is chose_channels_last
    # contiguous for iterations 0-3, channels-last for 4-7, then the choice
    assert layouts[0::2] == [False] * 4 + [True] * 4
    assert weight.is_contiguous(memory_format=torch.channels_last) == chose_channels_last
    assert weight.is_contiguous() != chose_channels_last
    state = fit.optimizers[0].state[weight]["exp_avg_sq"]
    assert state.stride() == weight.stride()
    fit.save_checkpoint(tmp_path / "auto.ckpt")
    saved = torch.load(tmp_path / "auto.ckpt", weights_only=False)["corrlab"]
    assert saved["layout_channels_last"] is chose_channels_last and saved["layout_probe"] is None


@pytest.mark.parametrize("model", ["stylegan2", "cdc_image_level", "cdc_patch_level"])
def test_backpropagating_loss_parts_at_once_gives_the_summed_loss_gradient(model: str):
    """StyleGAN2's and CDC's D_main backpropagate the real and the fake half one after the
    other, CDC's G_main its adversarial term before the distance term's generator pass
    (``GANModule.backward_now``), so one graph is alive at a time: every phase's gradient equals
    that of the summed loss."""
    from tests.test_few_shot_cdc import make_module

    results, spent = {}, {}
    for at_once in (True, False):
        torch.manual_seed(0)
        module = StyleGAN2(**TINY_STYLEGAN2, seed=0) if model == "stylegan2" else make_module()
        size = module.generator.size
        batch = {"image": torch.linspace(-1, 1, 4 * 3 * size * size).reshape(4, 3, size, size)}
        module.iteration = 1 if model == "cdc_patch_level" else 0  # CDC: image-level at 0
        spend, calls = module.backward_now, []

        def counted(loss, spend=spend, calls=calls, module=module):
            calls.append(module.current_phase)
            return spend(loss)
        module.current_phase = None
        module.backward_now = counted if at_once else (lambda loss: loss)
        original_step = module.step_phase

        def step_phase(phase, *args, module=module, original_step=original_step):
            module.current_phase = phase.name
            return original_step(phase, *args)
        module.step_phase = step_phase
        results[at_once], spent[at_once] = phase_gradients(module, batch), calls
    assert_same_gradients(results[True], results[False])
    expected = ["D_main", "D_main"] + (["G_main"] if model != "stylegan2" else [])
    assert spent[True] == expected and spent[False] == []

"""Few-shot CDC: L_dist against a loop-based computation, the rosinality source, a frozen source
during training, anchor-region statistics, the patch critic and the image/patch alternation."""

from __future__ import annotations

import copy
import inspect
import math

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from datamodules import FewShotDataModule
from lightning_modules.errors import ConfigError
from lightning_modules.few_shot_cdc import FewShotCDC, cross_domain_distance_loss
from lightning_modules.few_shot_cdc.losses import CDCLoss
from tests.conftest import fixtures_dir

FIXTURE = fixtures_dir() / "rosinality_stylegan2"


def loop_distance_loss(source, target, layers):
    """The formula written with loops: per anchor i, cosine to every j != i, softmax,
    then mean over all entries of p_s * (log p_s - log p_t)."""
    count = len(layers)
    total = 0.0
    for i in range(count):
        rows = []
        for features in (source, target):
            anchor = features[layers[i]][i].flatten()
            sims = []
            for j in range(count):
                if j == i:
                    continue
                other = features[layers[i]][j].flatten()
                sims.append(float(anchor @ other) / (float(anchor.norm()) * float(other.norm())))
            exps = [math.exp(s) for s in sims]
            rows.append([e / sum(exps) for e in exps])
        for p_source, p_target in zip(*rows, strict=True):
            total += p_source * (math.log(p_source) - math.log(p_target))
    return total / (count * (count - 1))


def test_distance_loss_matches_loop_computation():
    generator = torch.Generator().manual_seed(0)
    shapes = [(5, 8, 4, 4), (5, 6, 8, 8), (5, 4, 16, 16)]
    source = [torch.randn(s, generator=generator, dtype=torch.float64) for s in shapes]
    target = [torch.randn(s, generator=generator, dtype=torch.float64) for s in shapes]
    layers = [1, 2, 1, 2, 2]
    value = cross_domain_distance_loss(source, target, layers)
    assert float(value) == pytest.approx(loop_distance_loss(source, target, layers), rel=1e-9)
    assert float(cross_domain_distance_loss(source, source, layers)) == pytest.approx(0, abs=1e-7)


@pytest.fixture(scope="module")
def expected():
    return torch.load(FIXTURE / "expected.pt", weights_only=True)


def make_module(**kwargs) -> FewShotCDC:
    options = dict(source_checkpoint=str(FIXTURE / "checkpoint.pt"), num_anchors=4,
                   patch_resolution=16, seed=0)
    return FewShotCDC(**{**options, **kwargs})


def test_rosinality_source_gives_the_fixture_images_before_adaptation(expected):
    module = make_module().eval()
    z, noise = expected["z"], expected["noise"]
    with torch.no_grad():
        torch.testing.assert_close(module.source_generator(z, noise=noise),
                                   expected["images_g_ema"], rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(module.generator(z, noise=noise), expected["images_g"],
                                   rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(module.generator_ema(z, noise=noise),
                                   expected["images_g_ema"], rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(module.sample(3, seed=7), module.sample_source(3, seed=7))
    optimizers = module.configure_optimizers()
    assert all(float(state["step"]) == 2 for state in optimizers[0].state.values())
    assert optimizers[1].param_groups[0]["lr"] == pytest.approx(0.002 * 16 / 17)


def test_anchor_region_sampling_statistics():
    loss = CDCLoss(anchor_std=0.1)
    anchors = torch.randn(3, 16, generator=torch.Generator().manual_seed(1)) * 3
    rng = torch.Generator().manual_seed(2)

    def draw(batch, *shape, kind="normal"):
        sample = torch.randn if kind == "normal" else torch.rand
        return sample(batch, *shape, generator=rng)

    generator = _Recorder()
    loss.generate_from(generator, 6000, draw, draw, anchors)
    nearest = torch.cdist(generator.z, anchors).argmin(dim=1)
    offsets = generator.z - anchors[nearest]
    assert offsets.std().item() == pytest.approx(0.1, rel=0.05)
    assert offsets.mean().abs().item() < 0.01
    shares = torch.bincount(nearest, minlength=3).float() / 6000
    assert torch.allclose(shares, torch.full((3,), 1 / 3), atol=0.03)  # every anchor used


class _Recorder:
    style_dim = 16

    def noise_shapes(self, batch):
        return []

    def __call__(self, z, noise=None):
        self.z = z
        return z


def test_patch_critic_shape_and_alternation(monkeypatch):
    module = make_module(subspace_freq=4)
    size = module.generator.size  # the fixture's resolution
    images = torch.randn(4, 3, size, size)
    assert module.patch_critic(images).shape == (4, 1, 16, 16)
    assert module.image_critic(images).shape == (4, 1)
    used = []
    original_image, original_patch = module.image_critic, module.patch_critic
    monkeypatch.setattr(module, "image_critic",
                        lambda x: used.append(("image", module.iteration)) or original_image(x))
    monkeypatch.setattr(module, "patch_critic",
                        lambda x: used.append(("patch", module.iteration)) or original_patch(x))
    source_before = {k: v.clone() for k, v in module.source_generator.state_dict().items()}
    generator_before = {k: v.clone() for k, v in module.generator.state_dict().items()}
    data = FewShotDataModule(k=4, batch_size=4, crop_size=size, epoch_length=32, num_workers=0)
    module.max_kimg = 8 * 4 / 1000
    trainer = L.Trainer(accelerator="cpu", max_epochs=-1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(module, data)
    assert module.iteration == 8
    kinds = {iteration: {kind for kind, i in used if i == iteration} for _, iteration in used}
    assert kinds == {i: {"image"} if i % 4 == 0 else {"patch"} for i in range(8)}
    for key, value in module.source_generator.state_dict().items():
        assert torch.equal(value, source_before[key]), key  # the source never changes
    assert any(not torch.equal(v, generator_before[k])
               for k, v in module.generator.state_dict().items())


def test_num_anchors_must_match_k():
    module = make_module(num_anchors=3)
    size = module.generator.size
    data = FewShotDataModule(k=4, batch_size=4, crop_size=size, epoch_length=8, num_workers=0)
    trainer = L.Trainer(accelerator="cpu", max_steps=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False)
    with pytest.raises(ValueError, match="num_anchors"):
        trainer.fit(module, data)


def test_crop_size_must_match_the_source_resolution():
    module = make_module()
    size = module.generator.size
    data = FewShotDataModule(k=4, batch_size=4, crop_size=size // 2, epoch_length=8,
                             num_workers=0)
    trainer = L.Trainer(accelerator="cpu", max_steps=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False)
    with pytest.raises(ConfigError) as error:
        trainer.fit(module, data)
    assert f"crop_size is {size // 2}" in str(error.value)
    assert f"makes {size} px" in str(error.value)


@pytest.mark.parametrize("texture_scale", [1.0, 0.4])
def test_structure_similarity_sees_layout_not_texture(texture_scale):
    from callbacks.layout import structure_similarity
    from datamodules.synthetic import HELD_OUT_FAMILY, TRAIN_FAMILIES, render

    def image(structure_seed, texture_seed, families=TRAIN_FAMILIES):
        array = render(structure_seed, texture_seed, 32, families, texture_scale)[0]
        return torch.from_numpy(array).permute(2, 0, 1).float() / 127.5 - 1

    source = torch.stack([image(i, 500 + i) for i in range(40)])
    same_layout = torch.stack([image(i, 900 + i, (HELD_OUT_FAMILY,)) for i in range(40)])
    other_layout = torch.stack([image(100 + i, 900 + i, (HELD_OUT_FAMILY,)) for i in range(40)])
    assert torch.allclose(structure_similarity(source, source), torch.ones(40), atol=1e-5)
    kept = structure_similarity(source, same_layout)
    lost = structure_similarity(source, other_layout)
    assert kept.mean() > lost.mean() + 0.5
    assert (kept > lost).float().mean() > 0.9  # pair by pair, not only on average


def test_corrlab_stylegan2_checkpoint_as_source(tmp_path):
    from datamodules import UnpairedDataModule
    from lightning_modules.stylegan2 import StyleGAN2

    L.seed_everything(0)
    source = StyleGAN2(size=16, style_dim=16, n_mlp=2, channels={4: 16, 8: 16, 16: 8},
                       mbstd_group_size=0, max_kimg=0.008)
    trainer = L.Trainer(accelerator="cpu", max_epochs=-1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0)
    trainer.fit(source, UnpairedDataModule(batch_size=4, crop_size=16, synthetic_images=16,
                                           num_workers=0))
    trainer.save_checkpoint(tmp_path / "source.ckpt")
    module = FewShotCDC(str(tmp_path / "source.ckpt"), num_anchors=4, patch_resolution=8)
    assert torch.equal(module.sample_source(2, seed=3), source.sample(2, seed=3))
    for ours, theirs in zip(module.discriminator.parameters(),
                            source.discriminator.parameters(), strict=True):
        assert torch.equal(ours, theirs)
    steps = {float(state["step"]) for state in trainer.optimizers[0].state.values()}
    optimizers = module.configure_optimizers()
    assert {float(state["step"]) for state in optimizers[0].state.values()} == steps


def test_shipped_demo_source_is_a_slim_corrlab_stylegan2_the_demo_uses(tmp_path):
    import yaml

    from datamodules import UnpairedDataModule
    from experiments.export_checkpoint import export_checkpoint
    from lightning_modules.checkpoints import safe_load
    from lightning_modules.stylegan2 import StyleGAN2
    from tests.conftest import ROOT

    asset = ROOT / "experiments" / "few_shot_cdc" / "assets" / "source_shapes32.ckpt"
    demo = yaml.safe_load((ROOT / "experiments" / "few_shot_cdc" / "demo.yaml").read_text())
    assert ROOT / demo["model"]["init_args"]["source_checkpoint"] == asset
    source = yaml.safe_load((ROOT / "experiments" / "few_shot_cdc" /
                             "source_shapes.yaml").read_text())
    saved = safe_load(asset)  # loads without trust: tensors and plain values only
    assert "optimizer_states" not in saved and "rng_states" not in saved["corrlab"]
    assert saved["hyper_parameters"]["channels"] == {
        str(k): v for k, v in source["model"]["init_args"]["channels"].items()}
    assert saved["corrlab"]["images_seen"] >= 1000 * source["model"]["init_args"]["max_kimg"]
    module = FewShotCDC(str(asset), num_anchors=10, patch_resolution=8)
    images = module.sample_source(4, seed=0)
    assert images.shape == (4, 3, 32, 32) and torch.isfinite(images).all()
    # exporting a full training checkpoint keeps the weights and drops the rest
    L.seed_everything(0)
    full = StyleGAN2(size=16, style_dim=16, n_mlp=1, channels={4: 8, 8: 8, 16: 8},
                     mbstd_group_size=0)
    trainer = L.Trainer(accelerator="cpu", max_steps=2, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False,
                        limit_val_batches=0)
    trainer.fit(full, UnpairedDataModule(batch_size=4, crop_size=16, synthetic_images=8,
                                         num_workers=0))
    trainer.save_checkpoint(tmp_path / "full.ckpt")
    slim = export_checkpoint(tmp_path / "full.ckpt", tmp_path / "slim.ckpt")
    assert set(slim) <= {"state_dict", "hyper_parameters", "corrlab", "epoch", "global_step",
                         "pytorch-lightning_version"}
    assert torch.equal(FewShotCDC(str(tmp_path / "slim.ckpt"), num_anchors=2,
                                  patch_resolution=8).sample_source(2, seed=1),
                       full.sample(2, seed=1))
    # --half: the float32 weights stored as float16 (the counters kept), loaded back as float32
    half = export_checkpoint(tmp_path / "full.ckpt", tmp_path / "half.ckpt", half=True)
    for name, tensor in slim["state_dict"].items():
        stored = half["state_dict"][name]
        assert stored.dtype == (torch.float16 if tensor.dtype == torch.float32
                                else tensor.dtype), name
        assert torch.equal(stored, tensor.half() if tensor.dtype == torch.float32 else tensor)
    weight_bytes = {name: sum(t.nbytes for t in saved["state_dict"].values())
                    for name, saved in (("slim", slim), ("half", half))}
    assert weight_bytes["half"] < 0.55 * weight_bytes["slim"]
    assert (tmp_path / "half.ckpt").stat().st_size < (tmp_path / "slim.ckpt").stat().st_size
    loaded = StyleGAN2.load_from_checkpoint(tmp_path / "half.ckpt")
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    samples = loaded.sample(2, seed=1)
    assert torch.allclose(samples, full.sample(2, seed=1), atol=0.05)
    assert not torch.equal(samples, full.sample(2, seed=1))  # rounded, not the same weights


def test_correspondence_report_on_a_short_demo_run(tmp_path, metric_env, capsys):
    """The demo config on a tiny budget, then the report make cdc-demo prints: layout kept,
    intra-cluster LPIPS of adapted and source samples against the run's k images, FIDs."""
    import json

    from experiments.cli import main as corrlab
    from experiments.few_shot_cdc.correspondence import main as report
    from tests.conftest import ROOT

    config = ROOT / "experiments" / "few_shot_cdc" / "demo.yaml"
    corrlab(["fit", "--config", str(config), "--model.init_args.max_kimg", "0.008",
             "--runs_dir", str(tmp_path / "runs"), "--loggers", "[csv]",
             "--trainer.enable_progress_bar", "false", "--version", "cdc"])
    checkpoint = tmp_path / "runs" / "demo" / "cdc" / "checkpoints" / "last.ckpt"
    capsys.readouterr()
    report([str(checkpoint), "--samples", "12", "--fid-images", "12"])
    result = json.loads(capsys.readouterr().out)
    assert result["kimg"] == pytest.approx(0.008)
    assert 0 < result["intra_cluster_lpips_adapted"] < 1
    assert 0 < result["intra_cluster_lpips_source"] < 1
    assert -1 <= result["structure_similarity_to_source"] <= 1
    assert result["fid_to_target_adapted"] > 0


def test_distance_loss_draws_independent_noise_by_default():
    """The official code calls both generators with ``randomize_noise``: with the target a copy
    of the source, shared noise gives L_dist = 0 and independent noise does not."""
    from lightning_modules.layers.stylegan2 import Generator

    torch.manual_seed(0)
    source = Generator(16, style_dim=8, n_mlp=1, channels={4: 8, 8: 8, 16: 8})
    with torch.no_grad():  # noise strengths start at 0 in StyleGAN2: make the noise matter
        for name, parameter in source.named_parameters():
            if "noise" in name:
                parameter.fill_(1.0)
    target = copy.deepcopy(source)
    calls = []

    def draw(batch, *shape, kind="normal"):
        sample = (torch.randn if kind == "normal" else torch.rand)(
            batch, *shape, generator=torch.Generator().manual_seed(len(calls)))
        calls.append(sample)
        return sample

    values = {}
    for shared in (False, True):
        calls.clear()
        values[shared] = float(CDCLoss(distance_batch=4, shared_noise=shared).distance_loss(
            target, source, draw, draw))
        noise_draws = [c for c in calls if c.dim() == 4]
        assert len(noise_draws) == (1 if shared else 2) * len(source.noise_shapes(4))
    assert values[True] == pytest.approx(0.0, abs=1e-7)
    assert values[False] > 1e-4
    assert inspect.signature(FewShotCDC).parameters["shared_noise"].default is False


def test_patch_critic_reads_the_residual_branch_and_stops_there():
    """The official patch discriminator feeds ``Extra`` (conv, bias, leaky ReLU x sqrt 2) the
    residual branch of the block that outputs 32 px, before the skip is added."""
    module = make_module()
    d, head = module.discriminator, module.patch_head.conv
    size = module.generator.size
    images = torch.randn(2, 3, size, size)
    x, branch = d.from_rgb(images), None
    for block in d.blocks:  # layer by layer, independently of residual_branch
        if x.shape[-1] == 2 * module.patch_resolution:
            branch = block.conv2(block.conv1(x))
            break
        x = block(x)
    expected = F.leaky_relu(head.conv(branch) + head.bias.view(1, -1, 1, 1), 0.2) * math.sqrt(2)
    calls = []
    d.final_conv.register_forward_hook(lambda *args: calls.append(1))
    d.blocks[-1].register_forward_hook(lambda *args: calls.append(1))
    torch.testing.assert_close(module.patch_critic(images), expected)
    assert calls == []  # nothing after the feature runs
    assert expected.shape[-1] == module.patch_resolution

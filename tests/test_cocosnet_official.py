"""CoCosNet: corrlab's networks load the official code's checkpoints (``official_cocosnet``
fixture: options from its ``opt.txt``, widths from its tensors) and reproduce every output the
official code produced, at the fixture README's tolerance (1e-4 of each tensor's max)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lightning_modules.cocosnet.official import load_official, read_options, translate
from tests.conftest import fixtures_dir

FOLDER = fixtures_dir() / "official_cocosnet"
#: official generator block names, in order, for the per-block outputs of ``g_blocks``
G_BLOCKS = ["head_0", "G_middle_0", "G_middle_1", "up_0", "up_1", "up_2", "up_3"]


def assert_matches(actual: torch.Tensor, expected: torch.Tensor, name: str) -> None:
    scale = expected.abs().max()
    error = (actual - expected).abs().max()
    assert actual.shape == expected.shape, name
    assert error <= 1e-4 * scale, f"{name}: max error {error:.3g} > 1e-4 * {scale:.3g}"


def one_hot(labels: torch.Tensor, channels: int) -> torch.Tensor:
    return torch.zeros(labels.shape[0], channels, *labels.shape[2:]).scatter_(1, labels, 1.0)


def recorder(store: dict, name: str, every_call: bool = False):
    def hook(module, inputs, output):
        if every_call:
            store.setdefault(name, []).append(output)
        elif name not in store:
            store[name] = output
    return hook


def test_official_checkpoint_reproduces_every_output():
    model = load_official(FOLDER)
    expected = torch.load(FOLDER / "expected.pt", weights_only=True)
    channels = model.semantic_channels
    semantics = one_hot(expected["label"], channels)
    exemplar_semantics = one_hot(expected["label_ref"], channels)
    captured: dict = {}
    corr, generator = model.correspondence, model.generator
    corr.semantic_adaptor.register_forward_hook(recorder(captured, "seg"))
    corr.exemplar_adaptor.register_forward_hook(recorder(captured, "img", every_call=True))
    corr.shared.register_forward_hook(recorder(captured, "shared", every_call=True))
    blocks: dict = {}
    generator.stem.register_forward_hook(recorder(blocks, "fc"))
    generator.attention.register_forward_hook(recorder(blocks, "attn"))
    for name, block in zip(G_BLOCKS, generator.blocks, strict=True):
        block.register_forward_hook(recorder(blocks, name))

    with torch.no_grad():
        out = corr(expected["ref_image"], semantics, exemplar_semantics,
                   real_image=expected["real_image"])
        fake = generator(torch.cat([out["warped_exemplar"], semantics], dim=1))
        logits = corr.similarity(expected["ref_image"], semantics, exemplar_semantics)
        d_fake = model.discriminator(fake, semantics)
        d_exemplar = model.discriminator(expected["ref_image"], exemplar_semantics)
        second = corr(expected["ref_image_2"], semantics,
                      one_hot(expected["label_ref_2"], channels))
        fake_2 = generator(torch.cat([second["warped_exemplar"], semantics], dim=1))

    assert_matches(out["warped_exemplar"], expected["warp_out"], "warp_out")
    assert_matches(out["warped_exemplar_native"], expected["warp_native"], "warp_native")
    assert_matches(out["warped_exemplar_label"], expected["warp_mask"], "warp_mask")
    assert_matches(captured["seg"], expected["adaptive_feature_seg"], "adaptive_feature_seg")
    assert_matches(captured["img"][0], expected["adaptive_feature_img"], "adaptive_feature_img")
    assert_matches(captured["img"][1], expected["adaptive_feature_real"],
                   "adaptive_feature_real")
    assert_matches(captured["shared"][0], expected["corr_features_seg"], "corr_features_seg")
    assert_matches(captured["shared"][1], expected["corr_features_ref"], "corr_features_ref")
    domain_alignment = F.l1_loss(out["semantic_features"], out["real_features"]) * float(
        read_options(FOLDER / "opt.txt")["novgg_featpair"])
    assert_matches(domain_alignment, expected["loss_novgg_featpair"], "loss_novgg_featpair")
    assert_matches(logits[:, expected["corr_rows"]], expected["corr_logits_rows"],
                   "corr_logits_rows")
    assert_matches(fake, expected["fake_image"], "fake_image")
    for name, value in expected["g_blocks"].items():
        assert_matches(blocks[name][:1], value, f"g_blocks.{name}")
    for scale in range(len(expected["d_fake"])):
        for layer in range(len(expected["d_fake"][scale])):
            assert_matches(d_fake[scale][layer], expected["d_fake"][scale][layer],
                           f"d_fake[{scale}][{layer}]")
            assert_matches(d_exemplar[scale][layer], expected["d_exemplar"][scale][layer],
                           f"d_exemplar[{scale}][{layer}]")
    assert_matches(second["warped_exemplar_native"], expected["warp_native_2"], "warp_native_2")
    assert_matches(second["warped_exemplar"], expected["warp_out_2"], "warp_out_2")
    assert_matches(second["warped_exemplar_label"], expected["warp_mask_2"], "warp_mask_2")
    assert_matches(fake_2, expected["fake_image_2"], "fake_image_2")


def test_import_reads_options_and_widths_from_the_files():
    options = read_options(FOLDER / "opt.txt")
    model = load_official(FOLDER)
    state = torch.load(FOLDER / "latest_net_G.pth", weights_only=True)
    assert model.semantic_channels == options["label_nc"] + int(
        bool(options["contain_dontcare_label"]))
    assert model.generator.to_image.weight.shape[1] == options["ngf"]
    assert model.correspondence.match_kernel == options["match_kernel"]
    assert len(model.discriminator.scales) == options["num_D"]
    hidden = state["head_0.norm_0.mlp_shared.1.weight"].shape[0]
    assert model.generator.blocks[0].norm_0.shared[0].out_channels == hidden
    # every official tensor but the discriminator's unused decoder has a corrlab home
    d_state = torch.load(FOLDER / "latest_net_D.pth", weights_only=True)
    kept = translate(d_state, "D")
    assert len(kept) == len([k for k in d_state if ".dec." not in k])
    assert set(kept) == set(model.discriminator.state_dict())

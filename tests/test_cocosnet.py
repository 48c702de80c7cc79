"""CoCosNet: memory-efficient correspondence equals the dense one (values and gradients), every
loss term against a direct computation, the arg-max correspondence field, the module's
training step, and exemplar data that resumes where an uninterrupted run would be."""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from datamodules.keys import (
    EXEMPLAR,
    EXEMPLAR_FLOW,
    EXEMPLAR_INPUT,
    EXEMPLAR_IS_SELF,
    LABEL_ONEHOT,
    TARGET,
)
from datamodules.paired import PairedDataModule
from lightning_modules.cocosnet import CoCosNet, CorrespondenceNet, warp_by_similarity
from lightning_modules.cocosnet.losses import (
    CONTEXTUAL_LAYERS,
    FEATURE_MATCHING_LAYERS,
    exemplar_contextual_loss,
    self_reference_weights,
    vgg_feature_matching,
    warped_mask_loss,
)
from lightning_modules.layers.perceptual import contextual_loss


def unit_features(batch: int, channels: int, positions: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, channels, positions, generator=generator, dtype=torch.float64)
    return (x / x.norm(dim=1, keepdim=True)).requires_grad_()


@pytest.mark.parametrize("memory", ["sdpa", "chunked"])
def test_memory_efficient_warp_equals_dense_values_and_gradients(memory):
    query, key = unit_features(2, 12, 50, 0), unit_features(2, 12, 40, 1)
    values = torch.randn(2, 40, 5, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(2, 50, 5, dtype=torch.float64)
    results = {}
    for kind in ("dense", memory):
        out = warp_by_similarity(query, key, values, 0.01, kind, chunk_size=16)
        grads = torch.autograd.grad((out * upstream).sum(), [query, key, values])
        results[kind] = (out, *grads)
    for dense, efficient in zip(results["dense"], results[memory], strict=True):
        torch.testing.assert_close(efficient, dense, rtol=1e-5, atol=1e-5)


def test_correspondence_network_same_with_every_warp_memory():
    torch.manual_seed(0)
    # eval: spectral norm's power iteration would change the weights between the calls;
    # float64: logits / 0.01 amplify float32 rounding in the gradients of the deep layers
    net = CorrespondenceNet(5, ngf=4, spade_hidden=8, inter_channels=16).eval().double()
    exemplar = torch.rand(2, 3, 32, 32, dtype=torch.float64) * 2 - 1
    labels = F.one_hot(torch.randint(0, 5, (2, 32, 32)), 5).permute(0, 3, 1, 2).double()
    outputs, grads = {}, {}
    for memory in ("dense", "sdpa", "chunked"):
        net.warp_memory, net.chunk_size = memory, 20
        net.zero_grad()
        out = net(exemplar, labels, labels.flip(0), cycle=True)
        (out["warped_exemplar"].square().sum() + out["warped_exemplar_label"].sum()
         + out["warp_cycle"].abs().sum()).backward()
        outputs[memory] = out
        grads[memory] = [p.grad.clone() for p in net.parameters() if p.grad is not None]
    for memory in ("sdpa", "chunked"):
        for key in ("warped_exemplar", "warped_exemplar_label", "warp_cycle"):
            torch.testing.assert_close(outputs[memory][key], outputs["dense"][key],
                                       rtol=1e-5, atol=1e-5)
        for ours, dense in zip(grads[memory], grads["dense"], strict=True):
            torch.testing.assert_close(ours, dense, rtol=1e-5, atol=1e-5)


def test_best_match_field_finds_a_known_permutation():
    net = CorrespondenceNet(3, ngf=2, spade_hidden=4, inter_channels=8)
    side, down = 4, net.down
    permutation = torch.randperm(side * side, generator=torch.Generator().manual_seed(3))
    codes = torch.eye(side * side)[None]                     # 1 x N x N: one code per cell
    net.features = lambda *args: {"query": codes[:, :, permutation], "key": codes}
    field = net.best_match_field(torch.zeros(1, 3, side * down, side * down), None, None)
    cell_y, cell_x = divmod(int(permutation[5]), side)       # input cell 5 = (row 1, col 1)
    pixel = field[0, :, 1 * down + 2, 1 * down + 3]          # a pixel inside that cell
    assert pixel.tolist() == [cell_x * down + (down - 1) / 2, cell_y * down + (down - 1) / 2]


def test_loss_terms_against_direct_computations():
    generator = torch.Generator().manual_seed(0)
    fake = {layer: torch.randn(3, 4, 6, 6, generator=generator)
            for layer in FEATURE_MATCHING_LAYERS}
    real = {layer: torch.randn(3, 4, 6, 6, generator=generator)
            for layer in FEATURE_MATCHING_LAYERS}
    is_self = torch.tensor([True, False, True])
    weights = self_reference_weights(is_self)
    assert weights.flatten().tolist() == pytest.approx([1 / (2 + 1e-5), 0, 1 / (2 + 1e-5)])
    direct = sum(w * sum(float((fake[tap][b] - real[tap][b]).abs().sum()) * float(is_self[b])
                         / (2 + 1e-5) for b in range(3)) / fake[tap].numel()
                 for tap, w in FEATURE_MATCHING_LAYERS.items())
    assert float(vgg_feature_matching(fake, real, weights)) == pytest.approx(direct, rel=1e-5)
    # the contextual term is the weighted sum of CoCosNet's "forward" contextual losses
    direct = 0.0
    for layer, (weight, pool) in CONTEXTUAL_LAYERS.items():
        out, tgt = fake[layer], real[layer]
        if pool > 1:
            out, tgt = F.avg_pool2d(out, pool), F.avg_pool2d(tgt, pool)
        direct += weight * float(contextual_loss(out, tgt, 0.1, "position", "output",
                                                 1e-3).mean())
    assert float(exemplar_contextual_loss(fake, real)) == pytest.approx(direct, rel=1e-6)


def test_warped_mask_loss_against_a_loop():
    generator = torch.Generator().manual_seed(1)
    classes = 5
    probabilities = torch.softmax(torch.randn(2, classes, 4, 4, generator=generator), dim=1)
    label = torch.randint(0, classes, (2, 16, 16), generator=generator)
    exemplar_label = torch.randint(1, 3, (2, 16, 16), generator=generator)  # classes 1, 2
    total = weight_sum = 0.0
    for b in range(2):
        present = set(exemplar_label[b, ::4, ::4].flatten().tolist())
        for y in range(4):
            for x in range(4):
                c = int(label[b, 4 * y, 4 * x])   # nearest: the top-left pixel of the cell
                if c != 0 and c in present:
                    total += -math.log(float(probabilities[b, c, y, x]) + 1e-10)
                    weight_sum += 1
    expected = total / (weight_sum + 1e-5)
    assert float(warped_mask_loss(probabilities, label, exemplar_label)) == \
        pytest.approx(expected, rel=1e-5)


def synthetic_exemplar_data(batch: int = 2, workers: int = 0, **options) -> PairedDataModule:
    return PairedDataModule(source="synthetic", exemplar=options.pop("exemplar", "self"),
                            crop_size=options.pop("crop_size", 64), batch_size=batch,
                            num_workers=workers,
                            synthetic_images=options.pop("images", 16), **options)


def tiny_cocosnet(channels: int, **options) -> CoCosNet:
    return CoCosNet(label_nc=channels, ngf=4, ndf=8, spade_hidden=8, max_kimg=1, **options)


def test_generator_terms_match_a_direct_computation_and_training_steps():
    torch.manual_seed(0)
    data = synthetic_exemplar_data()
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    model = tiny_cocosnet(batch[LABEL_ONEHOT].shape[1], warp_cycle_weight=1.0,
                          warp_self_weight=100.0, reconstruction_weight=3.0)
    model.eval()  # no spectral-norm power iteration: every forward sees the same weights
    terms = {name: value.detach() for name, value in model.loss_G_main(batch, 1.0).items()}
    assert set(terms) == {"gan", "d_feature_matching", "vgg_feature_matching", "perceptual",
                          "contextual", "domain_alignment", "warped_mask", "warp_cycle",
                          "warp_self", "reconstruction"}
    # recompute a few terms from the networks directly
    semantics, exemplar_semantics = model.semantic_inputs(batch)
    with torch.no_grad():
        out = model.translate(semantics, batch[EXEMPLAR], exemplar_semantics, batch[TARGET],
                              cycle=True)
        logits = [scale[-1] for scale in model.discriminator(out["output"], semantics)]
        real = model.vgg(batch[TARGET], ["relu5_2"])["relu5_2"]
        fake = model.vgg(out["output"], ["relu5_2"])["relu5_2"]
    assert float(terms["gan"]) == pytest.approx(
        10 * float(sum(-x.mean() for x in logits) / len(logits)), rel=1e-4)
    assert float(terms["perceptual"]) == pytest.approx(
        0.01 * float(((fake - real) ** 2).mean()), rel=1e-4)
    assert float(terms["domain_alignment"]) == pytest.approx(
        10 * float((out["semantic_features"] - out["real_features"]).abs().mean()), rel=1e-4)
    assert float(terms["warp_cycle"]) == pytest.approx(
        float((out["warp_cycle"] - F.avg_pool2d(batch[EXEMPLAR], 4)).abs().mean()), rel=1e-4)
    is_self = batch[EXEMPLAR_IS_SELF].float()
    per_sample = (out["warped_exemplar"] - batch[TARGET]).abs().flatten(1).mean(1)
    # official: mean over every element of |warp - y| * s_b, so 1 / B of the weighted sum
    assert float(terms["warp_self"]) == pytest.approx(
        100 * float((per_sample * is_self).sum() / (is_self.sum() + 1e-5)) / len(is_self),
        rel=1e-4)
    per_sample = (out["output"] - batch[TARGET]).abs().flatten(1).mean(1)
    assert float(terms["reconstruction"]) == pytest.approx(
        3 * float((per_sample * is_self).sum() / (is_self.sum() + 1e-5)) / len(is_self),
        rel=1e-4)
    # one optimisation step of each phase changes its own networks only
    model.train()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizers = {"generator": torch.optim.SGD(
        [*model.correspondence.parameters(), *model.generator.parameters()], lr=0.1),
        "discriminator": torch.optim.SGD(model.discriminator.parameters(), lr=0.1)}
    for phase, network in (("G_main", "generator"), ("D_main", "discriminator")):
        optimizers[network].zero_grad()
        loss = sum(getattr(model, f"loss_{phase}")(batch, 1.0).values())
        assert torch.isfinite(loss)
        loss.backward()
        optimizers[network].step()
    changed = {name.split(".")[0] for name, p in model.named_parameters()
               if not torch.equal(p, before[name])}
    assert changed == {"correspondence", "generator", "discriminator"}


def test_missing_label_maps_are_a_clear_error():
    model = tiny_cocosnet(4)
    with pytest.raises(Exception, match="needs label maps for the input and the exemplar"):
        model.semantic_inputs({TARGET: torch.zeros(1, 3, 32, 32)})
    with pytest.raises(ValueError, match="multiples of 32 and at least 64"):
        model.generator(torch.zeros(1, 7, 32, 32))
    with pytest.raises(Exception, match="either label_nc .* or input_nc"):
        CoCosNet(label_nc=4, input_nc=3)
    with pytest.raises(Exception, match="mask_weight > 0 needs label maps"):
        CoCosNet(input_nc=3)


def test_image_like_inputs_train_with_their_exemplar_inputs(tmp_path):
    """Edges / pose as images: the exemplar comes with its own input map, under the same
    geometry as the exemplar (self-reference: the same warp)."""
    import numpy as np
    from PIL import Image

    inputs, targets = tmp_path / "edges", tmp_path / "images"
    inputs.mkdir()
    targets.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        Image.fromarray(image).save(targets / f"{i}.png")
        Image.fromarray(255 - image).save(inputs / f"{i}.png")   # input = inverted image
    data = PairedDataModule(str(inputs), target_source=str(targets), exemplar="self",
                            crop_size=64, batch_size=2, num_workers=0)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    # the exemplar input is the exemplar's own input: the inverted exemplar (up to resampling)
    assert (batch[EXEMPLAR_INPUT] + batch[EXEMPLAR]).abs().mean() < 0.02
    model = CoCosNet(input_nc=3, ngf=4, ndf=8, spade_hidden=8, mask_weight=0.0, max_kimg=1)
    terms = model.loss_G_main(batch, 1.0)
    assert "warped_mask" not in terms and torch.isfinite(sum(terms.values()))


def test_exemplar_batches_resume_where_an_uninterrupted_run_would_be():
    """Exemplar choice (retrieved or self), its warp, flow and truth depend only on (seed,
    epoch, position): a loader resumed at iteration k (another worker count) reads the same."""
    options = {"exemplar": "retrieval", "exemplar_real_prob": 0.5, "exemplar_top_k": 3}
    straight = synthetic_exemplar_data(crop_size=32, **options)
    straight.setup("fit")
    loader = straight.train_dataloader()
    batches = list(itertools.islice(iter_epochs(loader), len(loader) + 3))
    assert {bool(v) for b in batches for v in b[EXEMPLAR_IS_SELF]} == {True, False}
    resume_at = len(loader) + 1   # part-way through the second epoch
    resumed = synthetic_exemplar_data(workers=1, crop_size=32, **options)
    resumed.setup("fit")
    resumed.trainer = SimpleNamespace(lightning_module=SimpleNamespace(iteration=resume_at))
    again = next(iter(resumed.train_dataloader()))
    for key, value in batches[resume_at].items():
        torch.testing.assert_close(again[key], value, equal_nan=True, msg=key)
    flows = torch.cat([b[EXEMPLAR_FLOW] for b in batches])
    is_self = torch.cat([b[EXEMPLAR_IS_SELF] for b in batches])
    assert torch.isfinite(flows[is_self]).any() and torch.isnan(flows[~is_self]).all()


def iter_epochs(loader):
    epoch = 0
    while True:
        loader.sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


def test_official_initialisation():
    torch.manual_seed(0)
    model = tiny_cocosnet(4)
    stem = model.generator.stem.weight
    fan_in, fan_out = stem.shape[1] * 9, stem.shape[0] * 9
    expected_std = 0.02 * math.sqrt(2 / (fan_in + fan_out))   # Xavier normal, gain 0.02
    assert float(stem.std()) == pytest.approx(expected_std, rel=0.1)
    assert float(model.correspondence.query.bias.abs().max()) == 0
    spectral = model.generator.blocks[0].conv_0.weight_orig
    assert float(spectral.std()) < 0.01                       # the stored weight, not a copy
    default = CoCosNet(label_nc=4, ngf=4, ndf=8, spade_hidden=8, init_gain=None)
    assert float(default.generator.stem.weight.std()) > 10 * expected_std


def test_ground_truth_exemplar_error_scores_a_perfect_model_perfectly():
    """A stand-in module that returns the truth and the true correspondence scores 0 error and
    every pixel within 1 px; the trivial answers get their own, non-zero, figures."""
    from callbacks.exemplar_error import GroundTruthExemplarError, end_point_errors

    field = torch.zeros(1, 2, 2, 2)
    flow = torch.full((1, 2, 2, 2), float("nan"))
    flow[..., 0, :] = 0.0
    flow[:, 0, 0, 0] = 3.0
    flow[:, 1, 0, 0] = 4.0
    assert end_point_errors(field, flow).tolist() == [5.0, 0.0]   # unknown pixels left out

    data = synthetic_exemplar_data(crop_size=32, images=8)

    class Perfect(torch.nn.Module):
        device = torch.device("cpu")

        def visualize(self, batch):
            return {"output": batch["truth"], "warped_exemplar": batch["truth"]}

        def correspondence_field(self, batch):
            return batch[EXEMPLAR_FLOW].nan_to_num()

    callback = GroundTruthExemplarError(num_pairs=4, lpips_net=None)
    values = callback.measure(SimpleNamespace(datamodule=data), Perfect())
    assert values["exemplar/l1_to_truth"] == 0 and values["exemplar/epe"] == 0
    assert values["exemplar/within_1px"] == 1 and values["exemplar/epe_identity"] > 1
    assert values["exemplar/l1_exemplar_to_truth"] > 0
    assert values["exemplar/texture_accuracy"] == 1 and values["exemplar/structure_accuracy"] > 0.7


def saved_bytes(run) -> tuple[object, int]:
    """``run()``'s result and the bytes autograd saved for its backward pass."""
    total = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        result = run()
    return result, total


def test_checkpointed_activations_give_the_same_losses_gradients_and_power_iterations():
    data = synthetic_exemplar_data()
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    results = {}
    for checkpoint in (False, True):
        torch.manual_seed(0)
        # train mode: spectral norm iterates on every call, and the exemplar adaptor is called
        # twice (exemplar, ground truth) before the backward pass recomputes the first call
        model = tiny_cocosnet(batch[LABEL_ONEHOT].shape[1], warp_cycle_weight=1.0,
                              checkpoint_activations=checkpoint).train()
        model.discriminator.requires_grad_(False)
        terms = model.loss_G_main(batch, 1.0)
        sum(terms.values()).backward()
        results[checkpoint] = (
            {name: value.detach() for name, value in terms.items()},
            {name: p.grad for name, p in model.named_parameters() if p.grad is not None},
            {name: b.clone() for name, b in model.named_buffers()})
        semantics, _ = model.semantic_inputs(batch)
        condition = torch.cat([batch[EXEMPLAR], semantics], 1)
        _, saved = saved_bytes(lambda model=model, s=semantics, c=condition: (
            model.generator(c), model.correspondence.semantic_adaptor(s)))
        results[checkpoint] += (saved,)
    (plain_terms, plain_grads, plain_buffers, plain_saved) = results[False]
    (terms, grads, buffers, saved) = results[True]
    torch.testing.assert_close(terms, plain_terms, rtol=1e-5, atol=1e-6)
    assert grads.keys() == plain_grads.keys() and len(grads) > 50
    for name, grad in grads.items():
        torch.testing.assert_close(grad, plain_grads[name], rtol=1e-4, atol=1e-6, msg=name)
    for name, buffer in buffers.items():  # u, v: one power iteration per call, as plain
        torch.testing.assert_close(buffer, plain_buffers[name], rtol=0, atol=0, msg=name)
    # what the option is for: the generator and the adaptors keep few activations
    assert saved < 0.25 * plain_saved


def test_discriminator_scores_fake_and_real_at_one_power_iteration_per_step():
    """The official code scores [fake, real] in one D call per step: one spectral-norm power
    iteration, one sigma for both halves; corrlab's two steps must leave the same u / v and
    losses as that reference."""
    import copy

    from lightning_modules.layers.losses import d_hinge_loss, feature_matching_loss

    data = synthetic_exemplar_data()
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    torch.manual_seed(0)
    model = tiny_cocosnet(batch[LABEL_ONEHOT].shape[1]).train()
    reference = copy.deepcopy(model.discriminator)
    semantics, _ = model.semantic_inputs(batch)
    count = semantics.shape[0]

    def reference_scores(fake):
        with torch.no_grad():
            scores = reference(torch.cat([fake, batch[TARGET]]), torch.cat([semantics] * 2))
        return ([[f[:count] for f in scale] for scale in scores],
                [[f[count:] for f in scale] for scale in scores])

    def assert_same_buffers():
        for (name, ours), theirs in zip(model.discriminator.named_buffers(),
                                        reference.buffers(), strict=True):
            torch.testing.assert_close(ours, theirs, rtol=0, atol=0, msg=name)

    terms = model.loss_G_main(batch, 1.0)   # G step
    output = model._fake_for_d               # the fake the D step scores
    fake, real = reference_scores(output)
    assert_same_buffers()
    torch.testing.assert_close(terms["d_feature_matching"].detach(),
                               10 * feature_matching_loss(fake, real))
    hinge = model.loss_D_main(batch, 1.0)["hinge"]   # D step
    fake, real = reference_scores(output)
    assert_same_buffers()
    torch.testing.assert_close(hinge.detach(), 10 * d_hinge_loss(real, fake))


def test_shipped_model_is_the_leaderboard_row_trained_for_its_budget():
    """``make cocosnet-demo`` evaluates this file; ``make cocosnet-model`` retrains it (the
    leaderboard's CoCosNet row at the Makefile's seed: the demo config with the row's overrides
    and budget) and exports it slim in float16."""
    import shlex

    import yaml

    from experiments.ground_truth import exemplar_model_scores
    from experiments.leaderboard import ROWS
    from lightning_modules.checkpoints import safe_load
    from tests.conftest import ROOT, makefile_variable

    asset = ROOT / makefile_variable("COCOSNET_MODEL")
    overrides = shlex.split(makefile_variable("COCOSNET_MODEL_ARGS"))
    row = ROWS["cocosnet"]
    assert tuple(overrides) == row.overrides
    demo = yaml.safe_load((ROOT / "experiments" / row.config).read_text())
    expected = dict(demo["model"]["init_args"], max_kimg=row.kimg)
    for option, value in zip(overrides[::2], overrides[1::2], strict=True):
        expected[option.removeprefix("--model.init_args.")] = yaml.safe_load(value)
    saved = safe_load(asset)  # loads without trust: tensors and plain values only
    assert "optimizer_states" not in saved and "rng_states" not in saved["corrlab"]
    assert asset.stat().st_size < 8 * 2**20
    assert {t.dtype for t in saved["state_dict"].values() if t.is_floating_point()} == {
        torch.float16}
    hyper = saved["hyper_parameters"]
    assert saved["corrlab"]["images_seen"] >= 1000 * row.kimg
    for key, value in expected.items():
        assert hyper[key] == value, key
    # trained: on held-out pairs its output is nearer the truth, in layout and in texture, than
    # the same networks' at initialisation
    data = dict(demo["data"]["init_args"], synthetic_images=64)
    trained = CoCosNet.load_from_checkpoint(asset)
    torch.manual_seed(0)
    initial = CoCosNet(**{key: hyper[key] for key in expected})
    scores = {name: exemplar_model_scores(model, data, pairs=16)["model"]
              for name, model in (("trained", trained), ("initial", initial))}
    assert scores["trained"]["l1"] < scores["initial"]["l1"]
    assert scores["trained"]["texture_accuracy"] > scores["initial"]["texture_accuracy"]
    assert scores["trained"]["structure_accuracy"] > scores["initial"]["structure_accuracy"]
    assert scores["trained"]["epe"] < scores["initial"]["epe"]


def test_generator_skipping_absent_classes_gives_the_same_image_and_gradients():
    """The stem and SPADE trunks convolve only the classes present; the full convolution over
    all one-hot channels gives the same output and gradients (absent classes' weights get a
    zero gradient either way)."""
    from lightning_modules.cocosnet.networks import TranslationGenerator
    from lightning_modules.layers.modulation import drop_zero_constant_channels

    classes, present = 12, [2, 5, 6, 11]
    generator = torch.Generator().manual_seed(0)
    labels = torch.tensor(present)[torch.randint(0, len(present), (2, 8, 8),
                                                 generator=generator)]
    labels = labels.repeat_interleave(8, 1).repeat_interleave(8, 2)  # 64 x 64 regions
    one_hot = F.one_hot(labels, classes).permute(0, 3, 1, 2).float()
    warped = torch.randn(2, 3, 64, 64, generator=generator)
    kept, channels = drop_zero_constant_channels(torch.cat([warped, one_hot], 1), 3)
    assert channels.tolist() == [0, 1, 2] + [3 + c for c in present]
    assert torch.equal(kept, torch.cat([warped, one_hot[:, present]], 1))
    results = {}
    for constant_from in (3, None):
        torch.manual_seed(0)
        network = TranslationGenerator(3 + classes, ngf=4, spade_hidden=8,
                                       constant_from=constant_from).eval()
        exemplar_part = warped.clone().requires_grad_()
        output = network(torch.cat([exemplar_part, one_hot], 1))
        (output * torch.linspace(-1, 1, output.numel()).view_as(output)).sum().backward()
        results[constant_from] = (output.detach(), exemplar_part.grad, {
            name: p.grad for name, p in network.named_parameters()})
    (output, exemplar_grad, grads), (full_output, full_exemplar_grad, full_grads) = \
        results[3], results[None]
    torch.testing.assert_close(output, full_output, rtol=1e-5, atol=1e-6)
    # float rounding differs (other summation orders): tolerances relative to each tensor
    torch.testing.assert_close(exemplar_grad, full_exemplar_grad, rtol=1e-4,
                               atol=1e-5 * float(full_exemplar_grad.abs().max()))
    assert grads.keys() == full_grads.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(grad, full_grads[name], rtol=1e-4,
                                   atol=1e-5 * float(full_grads[name].abs().max()), msg=name)
    absent = [3 + c for c in range(classes) if c not in present]
    trunk_grad = grads["blocks.0.norm_0.shared.0.weight"]
    assert trunk_grad[:, absent].abs().max() == 0 and trunk_grad[:, 3:].abs().max() > 0

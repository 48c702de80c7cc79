"""The official Swapping Autoencoder code (taesungp/swapping-autoencoder-pytorch) as a benchmark
contender, built at exactly a corrlab module's setting.

Nothing of the official code ships with corrlab: pass a checkout of it (with the official
environment's packages) to ``swapae_iteration.py --official DIR``. Its options are the
corrlab module's hyper-parameters mapped back through :data:`OPTION_NAMES`; before anything is
timed, its weights are copied into the corrlab module (the checkpoint importer's renaming) and
the two must compute the same codes, images and critic scores. Its steps are the official
``SwappingAutoencoderOptimizer.train_discriminator_one_step`` (lazy R1 when its counter says so)
and ``train_generator_one_step``, i.e. what the official ``train.py`` runs.
"""

from __future__ import annotations

import contextlib
import sys
from argparse import Namespace
from pathlib import Path

import torch

from lightning_modules.swapping_autoencoder.official import OPTION_NAMES, convert_official_state

#: Official options that corrlab has no counterpart for, at the values the church launcher uses.
FIXED_OPTIONS = {
    "model": "swapping_autoencoder", "optimizer": "swapping_autoencoder",
    "netE": "StyleGAN2Resnet", "netG": "StyleGAN2Resnet", "netD": "StyleGAN2",
    "netPatchD": "StyleGAN2", "num_gpus": 0, "num_classes": 0, "isTrain": True,
    "continue_train": False, "pretrained_name": None, "netG_resnet_ch": 256,
    "max_num_tiles": 8, "patch_random_transformation": False, "name": "corrlab_benchmark",
    "checkpoints_dir": "./checkpoints", "resume_iter": "latest",
}


def official_options(hparams: dict) -> Namespace:
    """The official ``opt`` of a corrlab :class:`SwappingAutoencoder`'s hyper-parameters."""
    if tuple(hparams["patch_pair_widths"]) != (2048, 2048, 1024) or \
            hparams["netD_max_channels"] != 512:
        raise ValueError("the official code hard-codes netD_max_channels 512 and "
                         "patch_pair_widths (2048, 2048, 1024); this module differs")
    return Namespace(**FIXED_OPTIONS,
                     **{theirs: hparams[ours] for theirs, ours in OPTION_NAMES.items()})


def import_official(directory: str | Path):
    """The official ``models`` and ``optimizers`` packages of the checkout at ``directory``."""
    path = Path(directory).resolve()
    if not (path / "models" / "swapping_autoencoder_model.py").is_file():
        raise SystemExit(f"--official {directory}: not a checkout of "
                         "taesungp/swapping-autoencoder-pytorch "
                         "(models/swapping_autoencoder_model.py is missing)")
    sys.path.insert(0, str(path))
    import models
    import optimizers

    return models, optimizers


class OfficialContender:
    """The official model and optimizer at a corrlab module's setting; ``steps`` are the
    functions to time (each gets a fresh view of the images: the official R1 phase sets
    ``requires_grad`` on its input in place)."""

    def __init__(self, directory: str | Path, hparams: dict) -> None:
        models, optimizers = import_official(directory)
        self.opt = official_options(hparams)
        with contextlib.redirect_stdout(sys.stderr):  # it prints its architecture
            self.model = models.create_model(self.opt)
            self.optimizer = optimizers.create_optimizer(self.opt, self.model)
        self.network = self.model.singlegpu_model

    def discriminator_step(self, images: torch.Tensor, with_r1: bool) -> None:
        # train_discriminator_one_step adds 1 to the counter and runs R1 at multiples of
        # R1_once_every.
        self.optimizer.discriminator_iter_counter = self.opt.R1_once_every - 1 if with_r1 else 0
        self.optimizer.train_discriminator_one_step(images.detach())

    def generator_step(self, images: torch.Tensor) -> None:
        self.optimizer.train_generator_one_step(images.detach())

    def steps(self, images: torch.Tensor) -> dict:
        return {"D": lambda: self.discriminator_step(images, False),
                "G": lambda: self.generator_step(images),
                "D+R1": lambda: self.discriminator_step(images, True)}


def largest_differences(official, module, images: torch.Tensor, seed: int = 0
                        ) -> dict[str, float]:
    """Copy the official network's weights into the corrlab ``module`` (which must take every
    tensor) and return the largest absolute difference of each output."""
    state = convert_official_state(official.state_dict(), vars(official.opt))
    missing, unexpected = module.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith(("encoder_ema.", "generator_ema."))]
    if missing or unexpected:
        raise RuntimeError(f"not the same architecture: {len(missing)} corrlab tensors missing "
                           f"(first {missing[:1]}), {len(unexpected)} official tensors left "
                           f"(first {unexpected[:1]})")
    torch.manual_seed(seed)
    crops = torch.rand(images.shape[0], module.hparams.patch_num_crops, 3,
                       module.hparams.patch_size, module.hparams.patch_size) * 2 - 1
    with torch.no_grad():
        theirs, ours = official.E(images), module.encoder(images)
        # Noise strengths start at zero in both, so the generators are deterministic here.
        outputs = {
            "structure_code": (theirs[0], ours[0]), "texture_code": (theirs[1], ours[1]),
            "reconstruction": (official.G(*theirs), module.generator(*ours)),
            "image_d": (official.D(images), module.image_discriminator(images)),
        }
        reference = official.Dpatch.extract_features(crops)
        features = module.patch_discriminator.features(crops)
        outputs["patch_features"] = (reference, features)
        outputs["patch_scores"] = (official.Dpatch.discriminate_features(reference, reference),
                                   module.patch_discriminator.score(features, features))
    return {name: (a - b).abs().max().item() for name, (a, b) in outputs.items()}

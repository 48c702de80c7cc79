"""The official few-shot CDC code (utkarshojha/few-shot-gan-adaptation) as a benchmark contender.

Nothing of the official code ships with corrlab: pass a checkout of it to
``cdc_iteration.py --official DIR``. Its ``op`` package compiles CUDA kernels when imported and
has no CPU path, so the ``op`` package of rosinality/stylegan2-pytorch (the code CDC is built
on, whose current ``op`` runs pure-PyTorch code on the CPU) stands in for it:
``--rosinality DIR``. Its CUDA build is skipped while importing (the CPU paths never call it).

The steps are the official ``train.py`` loop's D step (image-level or patch-level critic,
``which = i % subspace_freq``), lazy R1, G step with the distance consistency loss, and lazy
path length, with the official optimizers (one Adam each for G, D and the patch head
``Extra``, lazy-regularization ratios). The loop itself is not importable (it is one function
with ``.cuda()`` calls and a data loader), so :class:`OfficialCDC` runs the same statements on
the CPU, calling the official networks and loss functions.
"""

from __future__ import annotations

import contextlib
import copy
import random
import sys
import types
from argparse import Namespace
from pathlib import Path

import numpy as np
import torch
from torch import nn


@contextlib.contextmanager
def _no_cuda_build():
    import torch.utils.cpp_extension as cpp_extension

    build = cpp_extension.load
    cpp_extension.load = lambda *args, **kwargs: None
    try:
        yield
    finally:
        cpp_extension.load = build


def import_official(official: str | Path, rosinality: str | Path, marker: str = ""):
    """The ``model`` and ``train`` modules of the checkout at ``official`` (whose model.py
    must contain ``marker``), with rosinality's CPU-capable ``op``."""
    official, rosinality = Path(official).resolve(), Path(rosinality).resolve()
    if not (rosinality / "op" / "upfirdn2d.py").is_file():
        raise SystemExit(f"--rosinality {rosinality}: not a checkout of "
                         "rosinality/stylegan2-pytorch (op/upfirdn2d.py is missing)")
    if not (official / "model.py").is_file() or marker not in \
            (official / "model.py").read_text():
        raise SystemExit(f"{official}: no model.py with {marker!r} (expected a checkout of "
                         "utkarshojha/few-shot-gan-adaptation, or of rosinality/stylegan2-pytorch "
                         "for the StyleGAN2 row)")
    for name in ("op", "model", "train", "dataset", "distributed", "non_leaking"):
        sys.modules.pop(name, None)
    sys.path.insert(0, str(rosinality))
    with _no_cuda_build():
        import op
    sys.path.remove(str(rosinality))
    sys.modules["op"] = op
    sys.modules.setdefault("viz", types.ModuleType("viz"))  # visdom plots, unused here
    sys.path.insert(0, str(official))
    import model
    import train
    return model, train


def path_length_step(official, mean_path_length):
    """The official lazy path-length step (``train.py``) of ``official`` (an
    :class:`OfficialCDC` or :class:`OfficialStyleGAN2`); returns the new running mean."""
    t, a = official.train, official.args
    batch = max(1, a.batch // a.path_batch_shrink)
    fake, latents = official.generator(t.mixing_noise(batch, a.latent, a.mixing, "cpu"),
                                       return_latents=True)
    path_loss, mean_path_length, _ = t.g_path_regularize(fake, latents, mean_path_length)
    official.generator.zero_grad()
    (a.path_regularize * a.g_reg_every * path_loss + 0 * fake[0, 0, 0, 0]).backward()
    official.g_optim.step()
    return mean_path_length


def generator_step(official, g_loss, regularize: bool) -> None:
    """The end of the official G step (``train.py``): backward and Adam step of ``g_loss``, the
    lazy path-length step when due, then the EMA update of ``g_ema``."""
    official.generator.zero_grad()
    g_loss.backward()
    official.g_optim.step()
    if regularize:
        official.mean_path_length = path_length_step(official, official.mean_path_length)
    official.train.accumulate(official.g_ema, official.generator, official.accum)


class OfficialCDC:
    """Official networks, optimizers and training-loop statements (``train.py`` defaults:
    lr 0.002, R1 10 every 16, path length 2 every 4, mixing 0.9, N = 4 for the distance loss,
    lambda 1000, anchor std 0.1, ``highp`` 1)."""

    def __init__(self, official: str | Path, rosinality: str | Path, size: int, batch: int,
                 n_train: int = 10, seed: int = 0) -> None:
        self.model, self.train = import_official(official, rosinality, "Patch_Discriminator")
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed)
        self.args = Namespace(size=size, batch=batch, latent=512, n_mlp=8, lr=0.002, r1=10.0,
                              path_regularize=2.0, path_batch_shrink=2, d_reg_every=16,
                              g_reg_every=4, mixing=0.9, subspace_std=0.1, feat_const_batch=4,
                              kl_wt=1000, highp=1, n_train=n_train, channel_multiplier=2)
        a = self.args
        self.generator = self.model.Generator(size, a.latent, a.n_mlp, channel_multiplier=2)
        self.discriminator = self.model.Patch_Discriminator(size, channel_multiplier=2)
        self.extra = self.model.Extra()
        self.g_source = copy.deepcopy(self.generator).requires_grad_(False)
        self.g_ema = copy.deepcopy(self.generator).eval()
        g_ratio = a.g_reg_every / (a.g_reg_every + 1)
        d_ratio = a.d_reg_every / (a.d_reg_every + 1)

        def adam(parameters, ratio):
            return torch.optim.Adam(parameters, lr=a.lr * ratio,
                                    betas=(0 ** ratio, 0.99 ** ratio))

        self.g_optim = adam(self.generator.parameters(), g_ratio)
        self.d_optim = adam(self.discriminator.parameters(), d_ratio)
        self.e_optim = adam(self.extra.parameters(), d_ratio)
        self.init_z = torch.randn(n_train, a.latent)
        self.real = torch.rand(batch, 3, size, size) * 2 - 1  # the loader's batch
        self.mean_path_length = 0
        self.accum = 0.5 ** (32 / (10 * 1000))

    def checkpoint(self) -> dict:
        """The source checkpoint corrlab adapts from: rosinality's format (``g`` = ``g_ema``
        here: the official run starts both from the same ``--ckpt``)."""
        return {"g": self.generator.state_dict(), "g_ema": self.g_source.state_dict(),
                "d": self.discriminator.state_dict(),
                "args": Namespace(size=self.args.size, latent=512, n_mlp=8,
                                  channel_multiplier=2)}

    def _latents(self, which: int, batch: int):
        if which > 0:
            return self.train.mixing_noise(batch, self.args.latent, self.args.mixing, "cpu")
        return [self.train.get_subspace(self.args, self.init_z.clone())]

    def _critic(self, images: torch.Tensor, which: int, real: bool = False) -> torch.Tensor:
        return self.discriminator(images, extra=self.extra, flag=which,
                                  p_ind=np.random.randint(0, self.args.highp), real=real)[0]

    def d_step(self, which: int, regularize: bool) -> None:
        t, a = self.train, self.args
        real = self.real.clone()
        t.requires_grad(self.generator, False)
        t.requires_grad(self.discriminator, True)
        t.requires_grad(self.extra, True)
        fake, _ = self.generator(self._latents(which, a.batch))
        d_loss = t.d_logistic_loss(self._critic(real, which, real=True),
                                   self._critic(fake, which))
        self.discriminator.zero_grad()
        self.extra.zero_grad()
        d_loss.backward()
        self.d_optim.step()
        self.e_optim.step()
        if regularize:
            real.requires_grad = True
            real_pred = self._critic(real, which)
            real_pred = real_pred.view(real.size(0), -1).mean(dim=1).unsqueeze(1)
            r1_loss = t.d_r1_loss(real_pred, real)
            self.discriminator.zero_grad()
            self.extra.zero_grad()
            (a.r1 / 2 * r1_loss * a.d_reg_every + 0 * real_pred[0]).backward()
            self.d_optim.step()
            self.e_optim.step()

    def distance_loss(self) -> torch.Tensor:
        """The official loops over anchor / comparison pairs (``train.py``), on the CPU."""
        a = self.args
        n = a.feat_const_batch
        sfm, sim = nn.Softmax(dim=1), nn.CosineSimilarity()

        def similarities(features: list[torch.Tensor], layers) -> torch.Tensor:
            distances = torch.zeros([n, n - 1])  # the official per-entry assignment loop
            for pair1 in range(n):
                column = 0
                for pair2 in range(n):
                    if pair1 != pair2:
                        anchor = features[layers[pair1]][pair1].reshape(-1)[None]
                        other = features[layers[pair1]][pair2].reshape(-1)[None]
                        distances[pair1, column] = sim(anchor, other)
                        column += 1
            return sfm(distances)

        with torch.no_grad():
            z = torch.randn(n, a.latent)
            feat_ind = np.random.randint(1, self.g_source.n_latent - 1, size=n)
            _, feat_source = self.g_source([z], return_feats=True)
            dist_source = similarities(feat_source, feat_ind)
        _, feat_target = self.generator([z], return_feats=True)
        dist_target = similarities(feat_target, feat_ind)
        return a.kl_wt * nn.KLDivLoss()(torch.log(dist_target), dist_source)

    def g_step(self, which: int, regularize: bool) -> None:
        t, a = self.train, self.args
        t.requires_grad(self.generator, True)
        t.requires_grad(self.discriminator, False)
        t.requires_grad(self.extra, False)
        fake, _ = self.generator(self._latents(which, a.batch))
        generator_step(self, t.g_nonsaturating_loss(self._critic(fake, which))
                       + self.distance_loss(), regularize)


class OfficialStyleGAN2:
    """rosinality's networks and ``train.py`` loop statements (the code CDC builds on), for the
    unconditional StyleGAN2 row: D step, lazy R1, G step, lazy path length, EMA, with its
    default options (lr 0.002, R1 10 every 16, path length 2 every 4, mixing 0.9)."""

    def __init__(self, rosinality: str | Path, size: int, batch: int, seed: int = 0) -> None:
        self.model, self.train = import_official(rosinality, rosinality, "class Generator")
        torch.manual_seed(seed)
        random.seed(seed)
        self.args = Namespace(size=size, batch=batch, latent=512, n_mlp=8, lr=0.002, r1=10.0,
                              path_regularize=2.0, path_batch_shrink=2, d_reg_every=16,
                              g_reg_every=4, mixing=0.9)
        a = self.args
        self.generator = self.model.Generator(size, a.latent, a.n_mlp, channel_multiplier=2)
        self.discriminator = self.model.Discriminator(size, channel_multiplier=2)
        self.g_ema = copy.deepcopy(self.generator).eval()
        g_ratio = a.g_reg_every / (a.g_reg_every + 1)
        d_ratio = a.d_reg_every / (a.d_reg_every + 1)
        self.g_optim = torch.optim.Adam(self.generator.parameters(), lr=a.lr * g_ratio,
                                        betas=(0 ** g_ratio, 0.99 ** g_ratio))
        self.d_optim = torch.optim.Adam(self.discriminator.parameters(), lr=a.lr * d_ratio,
                                        betas=(0 ** d_ratio, 0.99 ** d_ratio))
        self.real = torch.rand(batch, 3, size, size) * 2 - 1  # the loader's batch
        self.mean_path_length = 0
        self.accum = 0.5 ** (32 / (10 * 1000))

    def checkpoint(self) -> dict:
        return {"g": self.generator.state_dict(), "g_ema": self.g_ema.state_dict(),
                "d": self.discriminator.state_dict(),
                "args": Namespace(size=self.args.size, latent=512, n_mlp=8,
                                  channel_multiplier=2)}

    def iteration(self, regularize_d: bool, regularize_g: bool) -> None:
        t, a = self.train, self.args
        real = self.real.clone()
        t.requires_grad(self.generator, False)
        t.requires_grad(self.discriminator, True)
        fake, _ = self.generator(t.mixing_noise(a.batch, a.latent, a.mixing, "cpu"))
        d_loss = t.d_logistic_loss(self.discriminator(real), self.discriminator(fake))
        self.discriminator.zero_grad()
        d_loss.backward()
        self.d_optim.step()
        if regularize_d:
            real.requires_grad = True
            real_pred = self.discriminator(real)
            r1_loss = t.d_r1_loss(real_pred, real)
            self.discriminator.zero_grad()
            (a.r1 / 2 * r1_loss * a.d_reg_every + 0 * real_pred[0]).backward()
            self.d_optim.step()
        t.requires_grad(self.generator, True)
        t.requires_grad(self.discriminator, False)
        fake, _ = self.generator(t.mixing_noise(a.batch, a.latent, a.mixing, "cpu"))
        generator_step(self, t.g_nonsaturating_loss(self.discriminator(fake)), regularize_g)

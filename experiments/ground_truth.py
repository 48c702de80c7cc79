"""Ground-truth scores of a trained checkpoint on shapes & textures, beside the trivial answers.

One function per task; each returns ``{answer: {metric: value}}`` where the answers are the
model and the trivial baselines, measured on the same fixed evaluation set (never the one the
training callbacks logged), plus ``data_sha256``, the content hash of that set:

- :func:`swap_scores` (Swapping Autoencoder) and :func:`style_scores` (AdaIN, AdaConv): the
  output for (structure / content, texture / style) pairs against ``render(s_a, t_b)``;
- :func:`exemplar_scores` (CoCosNet): the output for (label map, exemplar) against the truth,
  and the learned correspondence's end-point error;
- :func:`adaptation_scores` (few-shot CDC, fine-tuning): layout kept from the source samples
  and FID to the held-out target family.

Structure and texture accuracy are :mod:`callbacks.accuracy`'s.
"""

from __future__ import annotations

import hashlib

import torch
from torch.utils.data import default_collate

from callbacks.accuracy import ground_truth_scores
from callbacks.exemplar_error import end_point_errors, identity_field
from callbacks.layout import structure_similarity
from callbacks.swap_error import swap_pairs_with_truth, swap_texture_labels, swap_truth_labels
from datamodules.keys import EXEMPLAR, EXEMPLAR_FLOW, INPUT, LABEL, TRUTH
from lightning_modules.errors import ConfigError

#: evaluation pairs' seed: not the training callbacks' (12345)
EVALUATION_SEED = 54321
STRUCTURE_BASELINE, TEXTURE_BASELINE, MEAN_BASELINE = (
    "copy structure (trivial)", "copy texture (trivial)", "mean image (trivial)")


def content_sha256(*tensors: torch.Tensor) -> str:
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _with_baselines(output: torch.Tensor, structure: torch.Tensor, texture: torch.Tensor,
                    truth: torch.Tensor, labels: torch.Tensor, lpips: torch.nn.Module | None
                    ) -> dict[str, dict[str, float]]:
    mean = texture.mean(dim=0, keepdim=True).expand_as(truth)  # the data's mean image
    return {name: ground_truth_scores(images, truth, labels, lpips)
            for name, images in (("model", output), (STRUCTURE_BASELINE, structure),
                                 (TEXTURE_BASELINE, texture), (MEAN_BASELINE, mean),
                                 ("truth (ceiling)", truth))}


def _pairs(pairs: int, size: int) -> tuple[torch.Tensor, ...]:
    return (*swap_pairs_with_truth(pairs, size, EVALUATION_SEED),
            swap_truth_labels(pairs, size, EVALUATION_SEED))


def shown_region_fraction(pairs: int = 64, size: int = 64, seed: int = EVALUATION_SEED
                          ) -> torch.Tensor:
    """Per swap / style pair, the fraction of the truth's regions whose label the texture image
    also shows: the texture accuracy that reading the texture image perfectly guarantees. The
    other regions' palettes cannot be read off it (each label draws its own saturation and
    value; only its hue follows the texture's base hue), so the truth's 1.0 is out of reach."""
    truth_labels = swap_truth_labels(pairs, size, seed)
    texture_labels = swap_texture_labels(pairs, size, seed)
    return torch.stack([torch.isin(truth.unique(), texture.unique()).float().mean()
                        for truth, texture in zip(truth_labels, texture_labels, strict=True)])


@torch.no_grad()
def swap_scores(checkpoint: str, pairs: int = 64, lpips: torch.nn.Module | None = None
                ) -> dict:
    """``swap(structure, texture)`` against the true swap, and reconstruction LPIPS."""
    from lightning_modules.swapping_autoencoder import SwappingAutoencoder

    model = SwappingAutoencoder.load_from_checkpoint(checkpoint).eval()
    structure, texture, truth, labels = _pairs(pairs, model.hparams.crop_size)
    result = _with_baselines(model.swap(structure, texture).clamp(-1, 1), structure, texture,
                             truth, labels, lpips)
    if lpips is not None:
        reconstruction = model.swap(structure, structure).clamp(-1, 1)
        result["model"]["reconstruction_lpips"] = float(lpips(reconstruction, structure).mean())
    return {**result, "data_sha256": content_sha256(structure, texture, truth)}


@torch.no_grad()
def style_scores(checkpoint: str, pairs: int = 64, lpips: torch.nn.Module | None = None,
                 size: int = 64) -> dict:
    """``stylize(content, style)`` against ``render(layout of content, texture of style)``."""
    from lightning_modules.adaconv import load_style_transfer

    model = load_style_transfer(checkpoint).eval()
    content, style, truth, labels = _pairs(pairs, size)
    result = _with_baselines(model.stylize(content, style).clamp(-1, 1), content, style, truth,
                             labels, lpips)
    return {**result, "data_sha256": content_sha256(content, style, truth)}


def evaluation_batch(data_options: dict, count: int) -> dict[str, torch.Tensor]:
    """The first ``count`` validation items of the run's paired datamodule (item i drawn with
    sample seed i: the same exemplars in every call)."""
    from datamodules import PairedDataModule

    datamodule = PairedDataModule(**data_options)
    datamodule.setup("fit")
    dataset = datamodule.val_set or datamodule.train_set
    return default_collate([dataset[(i, i)] for i in range(min(count, len(dataset)))])


@torch.no_grad()
def exemplar_scores(checkpoint: str, data_options: dict, pairs: int = 64,
                    lpips: torch.nn.Module | None = None) -> dict:
    """CoCosNet's output for (label map, exemplar) against the truth; structure baseline: the
    colour-coded label map; texture baseline: the exemplar; and the end-point error of the
    arg-max correspondence where the true one is known (identity matching as its baseline).
    Synthetic data is redrawn with :data:`EVALUATION_SEED` (its validation items are the first
    training images), exemplars retrieved among those images."""
    from lightning_modules.cocosnet import CoCosNet

    model = CoCosNet.load_from_checkpoint(checkpoint, map_location="cpu")
    return exemplar_model_scores(model, data_options, pairs, lpips)


@torch.no_grad()
def exemplar_model_scores(model: torch.nn.Module, data_options: dict, pairs: int = 64,
                          lpips: torch.nn.Module | None = None) -> dict:
    """:func:`exemplar_scores` of a CoCosNet module (put in eval mode)."""
    model.eval()
    if data_options.get("source") == "synthetic":
        data_options = {**data_options, "synthetic_seed": EVALUATION_SEED}
    batch = evaluation_batch(data_options, pairs)
    output = model.generate_for_metrics(batch).clamp(-1, 1)
    result = _with_baselines(output, batch[INPUT], batch[EXEMPLAR], batch[TRUTH], batch[LABEL],
                             lpips)
    flow = batch[EXEMPLAR_FLOW]
    errors = end_point_errors(model.correspondence_field(batch), flow)
    if errors.numel():
        result["model"]["epe"] = float(errors.mean())
        result["model"]["within_1px"] = float((errors <= 1).float().mean())
        identity = end_point_errors(identity_field(flow), flow)
        result["identity matching (trivial)"] = {"epe": float(identity.mean()),
                                                 "within_1px": float((identity <= 1).float()
                                                                     .mean())}
    return {**result, "data_sha256": content_sha256(batch[INPUT], batch[EXEMPLAR],
                                                    batch[TRUTH])}


def adaptation_scores(checkpoint: str, samples: int = 128, fid_images: int = 256) -> dict:
    """Few-shot adaptation: ``layout_kept`` (hue-edge correlation of each adapted sample with
    the source sample of the same latent) and ``fid_to_target`` (held-out ``rings`` images).
    Baselines: the source samples themselves (layout kept by definition, the source family's
    textures) and real target images (the target's textures, no source layout)."""
    from callbacks.features import InceptionFeatures, fid_kid
    from experiments.few_shot_cdc.correspondence import report, run_texture_scale, target_images
    from lightning_modules.few_shot_cdc import FewShotCDC
    from lightning_modules.pretrained.inception import find_inception_weights

    measured = report(checkpoint, samples, fid_images, seed=0)
    if "fid_skipped" in measured:
        raise ConfigError(f"adaptation scores need Inception weights: "
                          f"{measured['fid_skipped']}")
    source = FewShotCDC.load_from_checkpoint(checkpoint).eval().sample_source(samples, seed=0)
    scale = run_texture_scale(checkpoint)
    # real target images that are neither the k shots nor the FID reference set
    other_uint8 = target_images(samples, source.shape[-1], seed=777_777, texture_scale=scale)
    other, source = other_uint8.float() / 127.5 - 1, source.clamp(-1, 1)
    extractor = InceptionFeatures(find_inception_weights())
    real = extractor(target_images(fid_images, source.shape[-1], texture_scale=scale))
    return {"model": {"layout_kept": measured["structure_similarity_to_source"],
                      "fid_to_target": measured["fid_to_target_adapted"],
                      "intra_cluster_lpips": measured.get("intra_cluster_lpips_adapted")},
            "source samples (trivial: copy structure)": {
                "layout_kept": float(structure_similarity(source, source).mean()),
                "fid_to_target": measured["fid_to_target_source"]},
            "target images (trivial: copy texture)": {
                "layout_kept": float(structure_similarity(other, source).mean()),
                "fid_to_target": fid_kid(real, extractor(other_uint8), kid=False)["fid"]},
            "data_sha256": content_sha256(source)}

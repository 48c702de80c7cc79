"""Does adaptation keep the correspondence? For adapted checkpoints (few-shot CDC), compare each
adapted sample with the source sample of the same latents, and both with the target domain.

    python -m experiments.few_shot_cdc.correspondence CKPT [CKPT ...] [--samples 64]

Per checkpoint it prints:
- structure similarity (higher: the layout is kept): :func:`structure_similarity` between
  ``sample(n, seed)`` and ``sample_source(n, seed)`` (on real images: about 0.8 for the same
  layout in another texture family, 0.1 for another layout);
- FID against held-out shapes & textures images of the target family (``rings``), for the
  adapted samples and for the source samples (lower: closer to the target textures). It needs
  Inception weights (see the README); without them that column is skipped. The target images
  use the run's ``synthetic_texture_scale``, read from the ``config.yaml`` of the run folder;
- intra-cluster LPIPS (CDC, Sec. 4.2; higher: more diverse) of the adapted and of the source
  samples against the run's k training images (its datamodule rebuilt from ``config.yaml``),
  with AlexNet LPIPS on real weights.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from callbacks.layout import structure_similarity
from datamodules.few_shot import TEST_SET_SEED_OFFSET
from datamodules.synthetic import HELD_OUT_FAMILY, SyntheticSource


def target_images(count: int, size: int, seed: int = TEST_SET_SEED_OFFSET,
                  texture_scale: float = 1.0) -> torch.Tensor:
    """Held-out target-family images (never the k training shots: another dataset seed; the
    default is the images ``FewShotDataModule(test_set="synthetic")`` holds)."""
    source = SyntheticSource(count, size, seed, (HELD_OUT_FAMILY,), texture_scale)
    return torch.stack([torch.from_numpy(source.load(i)).permute(2, 0, 1)
                        for i in range(count)])


def run_data_options(checkpoint: str | Path) -> dict:
    """``data.init_args`` of the run that wrote ``checkpoint`` (its folder's ``config.yaml``, as
    ``corrlab fit`` saves it); empty when absent."""
    import yaml

    for folder in Path(checkpoint).resolve().parents[:2]:
        config = folder / "config.yaml"
        if config.is_file():
            data = (yaml.safe_load(config.read_text()) or {}).get("data") or {}
            return dict(data.get("init_args") or {})
    return {}


def run_texture_scale(checkpoint: str | Path) -> float:
    """The run's ``synthetic_texture_scale`` (1.0 when absent)."""
    return float(run_data_options(checkpoint).get("synthetic_texture_scale", 1.0))


def run_training_images(checkpoint: str | Path) -> torch.Tensor | None:
    """The run's k training images (its FewShotDataModule rebuilt from ``config.yaml``)."""
    from datamodules import FewShotDataModule

    options = run_data_options(checkpoint)
    return FewShotDataModule(**options).train_images() if options else None


def report(checkpoint: str, samples: int, fid_images: int, seed: int) -> dict:
    from callbacks.features import InceptionFeatures, fid_kid
    from callbacks.image_logging import images_to_uint8
    from callbacks.lpips import intra_cluster_lpips
    from lightning_modules.few_shot_cdc import FewShotCDC
    from lightning_modules.pretrained import LPIPS
    from lightning_modules.pretrained.inception import WeightsError, find_inception_weights

    module = FewShotCDC.load_from_checkpoint(checkpoint).eval()
    adapted = module.sample(samples, seed=seed).clamp(-1, 1)
    source = module.sample_source(samples, seed=seed).clamp(-1, 1)
    result = {"checkpoint": checkpoint, "distance_weight": module.loss.distance_weight,
              "use_patch_d": module.use_patch_d, "kimg": module.images_seen / 1000,
              "structure_similarity_to_source": float(structure_similarity(adapted,
                                                                           source).mean())}
    training = run_training_images(checkpoint)
    if training is not None:
        lpips = LPIPS("alex")
        for name, images in (("adapted", adapted), ("source", source)):
            result[f"intra_cluster_lpips_{name}"] = intra_cluster_lpips(
                images, training, lpips)["intra_cluster_lpips"]
        result["lpips_weights_sha256"] = lpips.provenance["weights_sha256"]
    try:
        extractor = InceptionFeatures(find_inception_weights())
    except WeightsError as error:
        result["fid_skipped"] = str(error).splitlines()[0]
        return result
    real = extractor(target_images(fid_images, adapted.shape[-1],
                                   texture_scale=run_texture_scale(checkpoint)))
    result["fid_to_target_adapted"] = fid_kid(real, extractor(images_to_uint8(adapted)),
                                              kid=False)["fid"]
    result["fid_to_target_source"] = fid_kid(real, extractor(images_to_uint8(source)),
                                             kid=False)["fid"]
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--fid-images", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for checkpoint in args.checkpoints:
        print(json.dumps(report(checkpoint, args.samples, args.fid_images, args.seed), indent=2))


if __name__ == "__main__":
    main()

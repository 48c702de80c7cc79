"""Swapping Autoencoder losses (Park et al. 2020, Eq. 1-4; weights of the official code).

One object owns every phase:

* ``D_main``: image D on real (x1), reconstruction (x0.5) and swap (x0.5); co-occurrence D on
  (real reference, other real crops) as real and (real reference, swap crops) as fake.
* ``D_reg``: ``lambda_R1 / 2 * ||grad D(x)||^2`` plus
  ``lambda_patch_R1 / 4 * (||grad_ref||^2 + ||grad_query||^2)`` per image, times the lazy
  interval (the official code's weights).
* ``G_main``: L1 reconstruction (x1), GAN on reconstruction (x0.5) and swap (x1), patch
  co-occurrence GAN on the swap (x1).

All GAN terms are non-saturating (softplus). Reconstructions use the first half of the batch;
swaps pair adjacent images (:func:`swap_pairs`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lightning_modules.layers.losses import (
    Spend,
    logistic_fake_loss,
    logistic_real_loss,
    spender,
    squared_gradient_norms,
)
from lightning_modules.swapping_autoencoder.networks import (
    Encoder,
    Generator,
    PatchDiscriminator,
    random_crops,
    swap_pairs,
)

#: uniform(*shape) -> U(0, 1) tensor with one row per sample (GANModule.draw, kind="uniform")
Uniform = Callable[..., torch.Tensor]


@dataclass
class LossWeights:
    l1: float = 1.0
    gan: float = 1.0
    patch_gan: float = 1.0
    r1: float = 10.0
    patch_r1: float = 1.0


class SwapAELoss(nn.Module):
    def __init__(self, weights: LossWeights, patch_size: int, patch_num_crops: int,
                 patch_scale: tuple[float, float], patch_use_aggregation: bool,
                 chunk_images: int | None = None) -> None:
        super().__init__()
        self.weights, self.chunk_images = weights, chunk_images
        self.patch_size, self.patch_num_crops = patch_size, patch_num_crops
        self.patch_scale, self.aggregate = patch_scale, patch_use_aggregation

    def crops(self, images: torch.Tensor, uniform: Uniform) -> torch.Tensor:
        batch, crops = images.shape[0], self.patch_num_crops

        def per_sample(*shape: int) -> torch.Tensor:  # rows are (image, crop) pairs
            return uniform(batch, crops, *shape[1:]).reshape(shape)

        return random_crops(images, self.patch_size, self.patch_scale, crops, per_sample)

    @staticmethod
    def reconstruct_and_swap(encoder: Encoder, generator: Generator, real: torch.Tensor,
                             noise: Callable[[int, tuple[int, int]], list[torch.Tensor]]
                             ) -> tuple[torch.Tensor, torch.Tensor]:
        structure_code, texture_code = encoder(real)
        half = real.shape[0] // 2
        code_size = tuple(structure_code.shape[2:])
        reconstruction = generator(structure_code[:half], texture_code[:half],
                                   noise(half, code_size))
        swapped = generator(swap_pairs(structure_code), texture_code,
                            noise(real.shape[0], code_size))
        return reconstruction, swapped

    def d_main(self, encoder: Encoder, generator: Generator, image_d: nn.Module | None,
               patch_d: PatchDiscriminator | None, real: torch.Tensor, uniform: Uniform,
               noise, spend: Spend | None = None) -> dict[str, torch.Tensor]:
        """``spend`` (``GANModule.backward_now``) backpropagates each independent part at once
        (the image D terms one by one, the patch terms per chunk of images), so only one
        part's graph is alive at a time; the gradient sum is unchanged."""
        with torch.no_grad():
            reconstruction, swapped = self.reconstruct_and_swap(encoder, generator, real, noise)
        keep = spender(spend)
        terms = {}
        if image_d is not None and self.weights.gan > 0:
            gan = self.weights.gan
            terms["D_real"] = keep(logistic_real_loss(image_d(real)) * gan)
            terms["D_rec"] = keep(logistic_fake_loss(image_d(reconstruction)) * 0.5 * gan)
            terms["D_mix"] = keep(logistic_fake_loss(image_d(swapped)) * 0.5 * gan)
        if patch_d is not None and self.weights.patch_gan > 0:
            reference_crops, target_crops = self.crops(real, uniform), self.crops(real, uniform)
            swap_crops = self.crops(swapped, uniform)
            pairs = reference_crops.shape[0] * reference_crops.shape[1]
            weight = self.weights.patch_gan / pairs  # means over all (image, crop) pairs
            real_term = mix_term = real.new_zeros(())
            for rows in self.image_chunks(real.shape[0], spend):
                # the three crop sets through the encoder, and both pairs through the MLP, at once
                reference, target, swap = patch_d.features_together(
                    [reference_crops[rows], target_crops[rows], swap_crops[rows]],
                    [self.aggregate, False, False])
                real_logits, mix_logits = patch_d.score(
                    torch.cat([reference, reference]), torch.cat([target, swap])).chunk(2)
                real_part = F.softplus(-real_logits).sum() * weight
                mix_part = F.softplus(mix_logits).sum() * weight
                if spend:  # one backward per chunk: the two parts share its reference
                    spend(real_part + mix_part)
                    real_part, mix_part = real_part.detach(), mix_part.detach()
                real_term, mix_term = real_term + real_part, mix_term + mix_part
            terms["PatchD_real"], terms["PatchD_mix"] = real_term, mix_term
        return terms

    def image_chunks(self, batch: int, spend: Spend | None) -> list[slice]:
        """Rows of the batch the patch terms run at once: ``chunk_images`` images when parts
        are spent early (each image's patch terms involve only its own crops), else all."""
        step = self.chunk_images if spend and self.chunk_images else batch
        return [slice(start, start + step) for start in range(0, batch, step)]

    def d_reg(self, image_d: nn.Module | None, patch_d: PatchDiscriminator | None,
              real: torch.Tensor, uniform: Uniform, gain: float, spend: Spend | None = None
              ) -> dict[str, torch.Tensor]:
        """``spend``: backpropagate the image and the patch penalty one after the other."""
        keep = spender(spend)
        penalty = real.new_zeros(())
        if image_d is not None and self.weights.r1 > 0:
            images = real.detach().requires_grad_(True)
            logits = image_d(images)
            per_image = squared_gradient_norms(logits, [images])[0] * (self.weights.r1 * 0.5)
            penalty = penalty + keep(per_image.mean() * gain + 0 * logits.sum())
        if patch_d is not None and self.weights.patch_r1 > 0:
            reference_crops = self.crops(real, uniform).detach()
            query_crops = self.crops(real, uniform).detach()
            batch = real.shape[0]
            for rows in self.image_chunks(batch, spend):
                reference = reference_crops[rows].requires_grad_(True)
                query = query_crops[rows].requires_grad_(True)
                logits = patch_d.score(*patch_d.features_together([reference, query],
                                                                   [self.aggregate, False]))
                reference_norms, query_norms = squared_gradient_norms(logits, [reference, query])
                squared = reference_norms.sum() + query_norms.sum()
                part = squared * (0.5 * self.weights.patch_r1 * 0.5 / batch)
                penalty = penalty + keep(part * gain + 0 * logits.sum())
        return {"D_R1": penalty}

    def g_main(self, encoder: Encoder, generator: Generator, image_d: nn.Module | None,
               patch_d: PatchDiscriminator | None, real: torch.Tensor, uniform: Uniform,
               noise, spend: Spend | None = None
               ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """(loss terms, metrics); metrics hold the reconstruction L1 distance. ``spend``: the
        terms read leaf copies of the reconstruction, the swap and the swap crops and are
        backpropagated one by one (the patch term per image) up to those copies; their
        accumulated gradient then goes through the generator and encoder once."""
        reconstruction, swapped = self.reconstruct_and_swap(encoder, generator, real, noise)
        keep = spender(spend)
        leaves: list[tuple[torch.Tensor, torch.Tensor]] = []  # (graph output, copy terms read)

        def leaf(output: torch.Tensor) -> torch.Tensor:
            if not spend:
                return output
            leaves.append((output, output.detach().requires_grad_(True)))
            return leaves[-1][1]

        rec_input, swap_input = leaf(reconstruction), leaf(swapped)
        l1 = (rec_input - real[: rec_input.shape[0]]).abs().mean()
        terms = {}
        if self.weights.l1 > 0:
            terms["G_L1"] = keep(l1 * self.weights.l1)
        if image_d is not None and self.weights.gan > 0:
            gan = self.weights.gan
            terms["G_GAN_rec"] = keep(logistic_real_loss(image_d(rec_input)) * 0.5 * gan)
            terms["G_GAN_mix"] = keep(logistic_real_loss(image_d(swap_input)) * gan)
        if patch_d is not None and self.weights.patch_gan > 0:
            with torch.no_grad():
                reference = patch_d.features(self.crops(real, uniform), self.aggregate)
            swap_crops = leaf(self.crops(swapped, uniform))
            crops_per_image = swap_crops.shape[1]
            weight = self.weights.patch_gan / (swap_crops.shape[0] * crops_per_image)
            patch_term = real.new_zeros(())
            for rows in self.image_chunks(real.shape[0], spend):
                pair_rows = slice(rows.start * crops_per_image, rows.stop * crops_per_image)
                logits = patch_d.score(reference[pair_rows], patch_d.features(swap_crops[rows]))
                patch_term = patch_term + keep(F.softplus(-logits).sum() * weight)
            terms["G_mix"] = patch_term
        spent = [(output, copy.grad) for output, copy in leaves if copy.grad is not None]
        if spent:  # the terms' summed gradient, once through crops, generator and encoder
            torch.autograd.backward([output for output, _ in spent],
                                    [gradient for _, gradient in spent])
        return terms, {"L1_dist": l1.detach()}

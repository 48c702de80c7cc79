"""Image editing with a trained Swapping Autoencoder (Park et al. 2020, Sec. 4.3-4.4).

* :func:`interpolate_texture`: blend the texture codes of two images (slerp on the unit sphere
  the codes live on, or lerp), decoding with fixed noise so frames do not flicker.
* :func:`code_principal_directions`: PCA of structure codes (per pixel) or texture codes over
  a set of images.
* :func:`edit_texture`: move the texture code along a direction (a global edit).
* :func:`edit_structure_region`: add a structure-code direction inside a mask (a region edit).

Every function takes the module (anything with ``encode`` / ``decode``) and images in [-1, 1].
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F

from lightning_modules.swapping_autoencoder.networks import l2_normalize


class SwapModel(Protocol):
    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...

    def decode(self, structure_code: torch.Tensor, texture_code: torch.Tensor,
               noise_seed: int | None = 0) -> torch.Tensor: ...


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation between unit vectors (rows), renormalised."""
    cos = (a * b).sum(dim=-1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7)
    angle = torch.acos(cos)
    if float(angle.abs().max()) < 1e-6:
        return l2_normalize(a + t * (b - a))
    return l2_normalize((torch.sin((1 - t) * angle) * a + torch.sin(t * angle) * b)
                        / torch.sin(angle))


@torch.no_grad()
def interpolate_texture(model: SwapModel, structure_image: torch.Tensor,
                        texture_image: torch.Tensor, steps: int = 5, spherical: bool = True,
                        noise_seed: int = 0) -> torch.Tensor:
    """``steps`` images (``steps x 3 x H x W``) going from the structure image's own texture
    (t=0, its reconstruction) to the texture of ``texture_image`` (t=1, the swap)."""
    structure_code, own_texture = model.encode(structure_image[:1])
    _, target_texture = model.encode(texture_image[:1])
    frames = []
    for t in torch.linspace(0, 1, steps).tolist():
        texture = (slerp(own_texture, target_texture, t) if spherical else
                   own_texture + t * (target_texture - own_texture))
        frames.append(model.decode(structure_code, texture, noise_seed))
    return torch.cat(frames)


@torch.no_grad()
def code_principal_directions(model: SwapModel, images: torch.Tensor, code: str = "texture",
                              k: int = 8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mean, directions ``k x D`` as unit rows, standard deviation along each) of the
    ``texture`` codes (one per image) or ``structure`` codes (one per pixel) of ``images``."""
    structure_code, texture_code = model.encode(images)
    if code == "texture":
        samples = texture_code
    elif code == "structure":
        samples = structure_code.permute(0, 2, 3, 1).reshape(-1, structure_code.shape[1])
    else:
        raise ValueError(f"code must be 'texture' or 'structure', got '{code}'")
    mean = samples.mean(dim=0)
    _, singular_values, directions = torch.linalg.svd(samples - mean, full_matrices=False)
    k = min(k, directions.shape[0])
    std = singular_values[:k] / max(1, samples.shape[0] - 1) ** 0.5
    return mean, directions[:k], std


@torch.no_grad()
def edit_texture(model: SwapModel, images: torch.Tensor, direction: torch.Tensor,
                 amount: float, noise_seed: int = 0) -> torch.Tensor:
    """Global edit: decode with ``texture_code + amount * direction`` (renormalised)."""
    structure_code, texture_code = model.encode(images)
    edited = l2_normalize(texture_code + amount * direction.to(texture_code))
    return model.decode(structure_code, edited, noise_seed)


@torch.no_grad()
def edit_structure_region(model: SwapModel, images: torch.Tensor, direction: torch.Tensor,
                          amount: float, mask: torch.Tensor, noise_seed: int = 0
                          ) -> torch.Tensor:
    """Region edit: add ``amount * direction`` to the structure code where ``mask`` (``B x 1 x
    H x W`` in [0, 1], image resolution) is on; the texture code is kept."""
    structure_code, texture_code = model.encode(images)
    weight = F.interpolate(mask.float(), size=structure_code.shape[2:], mode="area")
    edited = structure_code + weight * amount * direction.to(structure_code).view(1, -1, 1, 1)
    return model.decode(l2_normalize(edited), texture_code, noise_seed)

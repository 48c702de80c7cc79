"""Unconditional StyleGAN2."""

from lightning_modules.stylegan2.module import StyleGAN2, sample_images

__all__ = ["StyleGAN2", "sample_images"]

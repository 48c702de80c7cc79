"""Unconditional StyleGAN2, and its AdaConv variant (Chandran et al. 2021, Sec. 4)."""

from lightning_modules.stylegan2.module import StyleGAN2, StyleGAN2AdaConv, sample_images

__all__ = ["StyleGAN2", "StyleGAN2AdaConv", "sample_images"]

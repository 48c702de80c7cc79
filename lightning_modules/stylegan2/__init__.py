"""Unconditional StyleGAN2."""

from lightning_modules.stylegan2.module import StyleGAN2

__all__ = ["StyleGAN2"]

"""Swapping Autoencoder (Park et al., NeurIPS 2020)."""

from lightning_modules.swapping_autoencoder.module import SwappingAutoencoder

__all__ = ["SwappingAutoencoder"]

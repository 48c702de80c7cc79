"""Shared building blocks in pure PyTorch: ops, modulation layers, StyleGAN2 networks, losses
and EMA."""

"""AdaConv style transfer (Chandran et al., CVPR 2021) and its AdaIN baseline."""

from lightning_modules.adaconv.module import (
    AdaConvStyleTransfer,
    AdaINStyleTransfer,
    load_style_transfer,
)

__all__ = ["AdaConvStyleTransfer", "AdaINStyleTransfer", "load_style_transfer"]

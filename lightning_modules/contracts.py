"""The contracts between paper modules, datamodules and callbacks, as ``typing.Protocol``s.

A callback names the protocols it needs and checks them at ``setup`` with :func:`require`, so a
module or datamodule that lacks a method fails before training with a message naming it. Images
are NCHW float tensors in [-1, 1]; batches are dicts with the keys of
:mod:`datamodules.keys`.

Modules:

- :class:`GeneratesForMetrics` (FID, KID, SampleGrid): images comparable with the real set.
- :class:`Swaps` (SwapFID, SwapGrid, GroundTruthSwapError): structure of one image in the texture
  of another (Swapping Autoencoder).
- :class:`Stylizes` (GroundTruthStyleError): content in the style of another image.
- :class:`EncodesDecodes` (ReconstructionLPIPS, SwapGrid): codes and images from codes.
- :class:`Samples` (IntraClusterLPIPS): ``n`` images determined by ``seed``.
- :class:`Visualizes` (ImageTable, GroundTruthExemplarError): named image columns for a batch
  (input | exemplar | warped_exemplar | output | truth).
- :class:`Corresponds` (GroundTruthExemplarError): the dense exemplar correspondence of a batch.

Datamodules:

- :class:`HasReferenceSet` (FID-type callbacks): the real images metrics compare with.
- :class:`HasTrainImages` (IntraClusterLPIPS): the few-shot training images.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class GeneratesForMetrics(Protocol):
    def generate_for_metrics(self, batch: Any) -> torch.Tensor:
        """Generated images for a validation batch (as many as the batch holds)."""


@runtime_checkable
class Swaps(Protocol):
    def swap(self, structure_images: torch.Tensor, texture_images: torch.Tensor
             ) -> torch.Tensor:
        """Image i: the structure of ``structure_images[i]`` in the texture of
        ``texture_images[i]``."""


@runtime_checkable
class Stylizes(Protocol):
    def stylize(self, content: torch.Tensor, style: torch.Tensor, alpha: float = 1.0
                ) -> torch.Tensor:
        """``content`` in the style of ``style`` (AdaConv, AdaIN)."""


@runtime_checkable
class EncodesDecodes(Protocol):
    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Codes of the images."""

    def decode(self, *codes: torch.Tensor) -> torch.Tensor:
        """Images from codes: ``decode(*encode(x))`` reconstructs ``x``."""


@runtime_checkable
class Samples(Protocol):
    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        """``n`` images determined by ``seed`` alone."""


@runtime_checkable
class Visualizes(Protocol):
    def visualize(self, batch: Any) -> dict[str, torch.Tensor]:
        """Column name -> ``B x 3 x H x W`` images for the samples of ``batch``, in display
        order (e.g. input, exemplar, warped, output, truth)."""


@runtime_checkable
class Corresponds(Protocol):
    def correspondence_field(self, batch: Any) -> torch.Tensor:
        """``B x 2 x H x W``: the exemplar pixel (x, y) each input pixel is matched to."""


@runtime_checkable
class HasReferenceSet(Protocol):
    def reference_set(self) -> Any:
        """The real images (a :class:`datamodules.reference.ReferenceSet`)."""


@runtime_checkable
class HasTrainImages(Protocol):
    def train_images(self) -> torch.Tensor:
        """The few-shot training images."""


def protocol_methods(protocol: type) -> list[str]:
    return [name for name, value in vars(protocol).items()
            if callable(value) and not name.startswith("_")]


def require(obj: object, protocol: type, user: str) -> None:
    """Raise a ``TypeError`` naming the first method of ``protocol`` that ``obj`` lacks, and the
    callback (``user``) that needs it."""
    for name in protocol_methods(protocol):
        if not callable(getattr(obj, name, None)):
            raise TypeError(f"{user} needs {type(obj).__name__}.{name}() "
                            f"(the {protocol.__name__} contract, lightning_modules/contracts.py)"
                            "; implement it or remove the callback.")

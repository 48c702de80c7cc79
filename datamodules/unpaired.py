"""Unpaired images: one domain (Swapping Autoencoder) or two domains A and B sampled
independently (CycleGAN-style translation)."""

from __future__ import annotations

from datamodules.base import SYNTHETIC, ImageDataModule, SeededDataset
from datamodules.reference import ReferenceSet
from datamodules.sources import ImageSource
from datamodules.synthetic import HELD_OUT_FAMILY


class ImageDataset(SeededDataset):
    """Images of one source (the listed ``indices``) as ``{"image": CHW float in [-1, 1]}``."""

    def __init__(self, source: ImageSource, indices: list[int], transform) -> None:
        self.source, self.indices, self.transforms = source, indices, (transform,)

    def __len__(self) -> int:
        return len(self.indices)

    def get(self, item: int) -> dict:
        image = self.source.load(self.indices[item])
        return {"image": self.transforms[0](image=image)["image"]}


class TwoDomainDataset(SeededDataset):
    """``{"a", "b"}``: item i of domain A with a B image drawn at random, independently, each
    time (so pairs never repeat in a fixed pattern). Length: the larger domain."""

    def __init__(self, domain_a: ImageDataset, domain_b: ImageDataset) -> None:
        self.domain_a, self.domain_b = domain_a, domain_b
        self.transforms = domain_a.transforms + domain_b.transforms

    def __len__(self) -> int:
        return max(len(self.domain_a), len(self.domain_b))

    def get(self, item: int) -> dict:
        b_item = int(self.rng.integers(len(self.domain_b)))
        return {"a": self.domain_a.get(item % len(self.domain_a))["image"],
                "b": self.domain_b.get(b_item)["image"]}


class UnpairedDataModule(ImageDataModule):
    """Unpaired data from a folder, zip, LMDB or ``synthetic``.

    Args:
        source: images of domain A (or the only domain).
        source_b: images of domain B; when set, batches are ``{"a", "b"}``, else ``{"image"}``
            (style transfer: ``a`` content, ``b`` style).
        source_b_families: texture families of a ``synthetic`` domain B (default: the held-out
            family; style transfer on shapes & textures uses the training families, drawn
            from another dataset seed).
        **kwargs: see :class:`~datamodules.base.ImageDataModule`.
    """

    def __init__(self, source: str = SYNTHETIC, source_b: str | None = None,
                 source_b_families: list[str] | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.source, self.source_b = source, source_b
        self.source_b_families = tuple(source_b_families or (HELD_OUT_FAMILY,))

    def _domain(self, source: ImageSource, train: bool, limit: int | None = None
                ) -> ImageDataset:
        indices = self.validated(source)
        return ImageDataset(source, indices[:limit], self.transform(train))

    def reference_set(self) -> ReferenceSet:
        """Domain B's training images when there are two domains (generated images are B-like),
        else the training images."""
        self.setup("fit")
        domain = self.train_set.domain_b if self.source_b is not None else self.train_set
        return ReferenceSet(domain.source, domain.indices, self.crop_size, self.load_size)

    def build_datasets(self) -> tuple[SeededDataset, SeededDataset]:
        source_a = self.open(self.source)
        train_a = self._domain(source_a, train=True)
        val_a = ImageDataset(source_a, train_a.indices[:self.num_val_images],
                             self.transform(train=False))
        if self.source_b is None:
            return train_a, val_a
        source_b = self.open(self.source_b, families=self.source_b_families, seed_offset=1)
        train_b = self._domain(source_b, train=True)
        val_b = ImageDataset(source_b, train_b.indices[:self.num_val_images],
                             self.transform(train=False))
        return TwoDomainDataset(train_a, train_b), TwoDomainDataset(val_a, val_b)

"""Datamodules for paired, unpaired and few-shot data from folders, zip files, LMDB or the
built-in shapes & textures renderer.

The datamodule classes are imported lazily, so ``datamodules.synthetic`` and
``datamodules.sources`` stay light (no Lightning import) for tools and worker processes.
"""

from importlib import import_module

_CLASSES = {"FewShotDataModule": "datamodules.few_shot",
            "PairedDataModule": "datamodules.paired",
            "UnpairedDataModule": "datamodules.unpaired"}

__all__ = list(_CLASSES)


def __getattr__(name: str):
    if name in _CLASSES:
        return getattr(import_module(_CLASSES[name]), name)
    raise AttributeError(f"module 'datamodules' has no attribute '{name}'")

"""Callbacks: everything that logs or writes files during training."""

from callbacks.sample_grid import SampleGrid

__all__ = ["SampleGrid"]

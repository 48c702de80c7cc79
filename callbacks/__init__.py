"""Callbacks: everything that logs or writes files during training."""

from callbacks.metric_plot import MetricPlot
from callbacks.sample_grid import SampleGrid
from callbacks.swap_error import GroundTruthSwapError
from callbacks.swap_grid import SwapGrid

__all__ = ["GroundTruthSwapError", "MetricPlot", "SampleGrid", "SwapGrid"]

"""Callbacks: everything that logs or writes files during training."""

from callbacks.checkpointing import KimgCheckpoint
from callbacks.exemplar_error import GroundTruthExemplarError
from callbacks.fid import FID
from callbacks.image_table import ImageTable
from callbacks.lpips import IntraClusterLPIPS, ReconstructionLPIPS
from callbacks.metric_plot import MetricPlot
from callbacks.sample_grid import SampleGrid
from callbacks.style_error import GroundTruthStyleError
from callbacks.style_metrics import ArtFID
from callbacks.swap_error import GroundTruthSwapError
from callbacks.swap_fid import SwapFID
from callbacks.swap_grid import SwapGrid

__all__ = ["FID", "ArtFID", "GroundTruthExemplarError", "GroundTruthStyleError",
           "GroundTruthSwapError", "ImageTable", "IntraClusterLPIPS", "KimgCheckpoint",
           "MetricPlot", "ReconstructionLPIPS", "SampleGrid", "SwapFID", "SwapGrid"]

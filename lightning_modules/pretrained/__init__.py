"""Pretrained networks, one home: frozen ImageNet feature networks with named taps (VGG-19,
VGG-16, AlexNet), LPIPS, and the Inception-v3 of FID, with one offline weight lookup
(:mod:`lightning_modules.pretrained.weights`). Layers, paper modules, callbacks and metrics
import them from here."""

from lightning_modules.pretrained.features import (
           VGG,
           AlexNet,
           FeatureNetwork,
           alexnet,
           vgg16,
           vgg19,
)
from lightning_modules.pretrained.lpips import LPIPS
from lightning_modules.pretrained.weights import WeightsError, WeightsFile, find_weights

__all__ = ["LPIPS", "VGG", "AlexNet", "FeatureNetwork", "WeightsError", "WeightsFile", "alexnet",
           "find_weights", "vgg16", "vgg19"]

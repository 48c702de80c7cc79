"""Few-shot adaptation via cross-domain correspondence (Ojha et al., CVPR 2021)."""

from lightning_modules.few_shot_cdc.losses import CDCLoss, cross_domain_distance_loss
from lightning_modules.few_shot_cdc.module import FewShotCDC, load_source

__all__ = ["CDCLoss", "FewShotCDC", "cross_domain_distance_loss", "load_source"]

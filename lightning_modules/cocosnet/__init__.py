"""CoCosNet (Zhang et al., CVPR 2020): exemplar-based translation through a learned, explicit
correspondence. :class:`CoCosNet` is the LightningModule; :func:`load_official` imports the
official code's checkpoints."""

from lightning_modules.cocosnet.correspondence import CorrespondenceNet, warp_by_similarity
from lightning_modules.cocosnet.module import CoCosNet
from lightning_modules.cocosnet.networks import TranslationGenerator, cocosnet_discriminator
from lightning_modules.cocosnet.official import load_official

__all__ = ["CoCosNet", "CorrespondenceNet", "TranslationGenerator", "cocosnet_discriminator",
           "load_official", "warp_by_similarity"]

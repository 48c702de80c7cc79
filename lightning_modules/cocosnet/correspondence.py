"""CoCosNet's cross-domain correspondence (Zhang et al., CVPR 2020, Sec. 3.1; the official
``NoVGGCorrespondence``).

Two adaptors map the semantic input and the exemplar image into one domain (1/4 resolution);
shared residual blocks and 1x1 projections give the query (input) and key (exemplar) features;
every position is a ``match_kernel`` x ``match_kernel`` patch of them, centred (PONO-C) and
L2-normalised, and the correlation ``M(u, v)`` is their cosine similarity (Eq. 3). The exemplar
is warped by ``softmax_v(M(u, v) / tau)`` (Eq. 4, tau = 0.01), at 1/4 resolution and then
up-sampled. The warp is an attention of queries over exemplar positions, so it is computed
densely (the official way: an ``N x N`` matrix, ``N = HW / 16``), with
``F.scaled_dot_product_attention``, or in checkpointed chunks of rows that never hold the whole
matrix (:func:`warp_by_similarity`); all give the same values and gradients.
"""

from __future__ import annotations

import sys
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from lightning_modules.layers.checkpointing import checkpointed, maybe_checkpointed
from lightning_modules.layers.spade import SPADEResBlock
from lightning_modules.layers.spectral import conv2d

#: how the warp is computed: the whole similarity matrix, PyTorch's attention function, or
#: checkpointed chunks of query rows (the memory-efficient one)
WARP_MEMORY = ("dense", "sdpa", "chunked")
FLOAT_EPS = sys.float_info.epsilon


def feature_normalize(x: torch.Tensor) -> torch.Tensor:
    """Divide by the L2 norm over channels (plus float epsilon), as the official code."""
    return x / (x.norm(dim=1, keepdim=True) + FLOAT_EPS)


def with_coordinates(x: torch.Tensor) -> torch.Tensor:
    """Append CoordConv channels: column and row in [-1, 1] and their radius."""
    batch, _, height, width = x.shape
    ys = torch.linspace(-1, 1, height, dtype=x.dtype, device=x.device)
    xs = torch.linspace(-1, 1, width, dtype=x.dtype, device=x.device)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    coords = torch.stack([grid_x, grid_y, (grid_x ** 2 + grid_y ** 2).sqrt()])
    return torch.cat([x, coords.expand(batch, -1, -1, -1)], dim=1)


def warp_by_similarity(query: torch.Tensor, key: torch.Tensor, values: torch.Tensor,
                       temperature: float, memory: str = "dense", chunk_size: int = 1024
                       ) -> torch.Tensor:
    """``softmax(query^T key / temperature) @ values`` for ``B x D x N`` queries, ``B x D x M``
    keys and ``B x M x V`` values -> ``B x N x V``. ``memory``: ``dense`` holds the ``N x M``
    matrix (and autograd keeps it); ``chunked`` computes ``chunk_size`` query rows at a time
    and recomputes them in the backward pass (memory ``chunk_size x M``: the memory-efficient
    choice); ``sdpa`` calls ``F.scaled_dot_product_attention``, which saves memory only where
    a fused kernel takes the head dimension (``256 x match_kernel^2`` here: on the CPU it falls
    back to the dense computation)."""
    if memory == "dense":
        return torch.softmax(query.transpose(1, 2) @ key / temperature, dim=-1) @ values
    if memory == "sdpa":
        return F.scaled_dot_product_attention(
            query.transpose(1, 2)[:, None], key.transpose(1, 2)[:, None], values[:, None],
            scale=1.0 / temperature)[:, 0]
    if memory == "chunked":
        def rows(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            return torch.softmax(q.transpose(1, 2) @ k / temperature, dim=-1) @ v

        parts = []
        for start in range(0, query.shape[2], chunk_size):
            q = query[:, :, start:start + chunk_size]
            if torch.is_grad_enabled() and (q.requires_grad or key.requires_grad
                                            or values.requires_grad):
                parts.append(checkpoint(rows, q, key, values, use_reentrant=False))
            else:
                parts.append(rows(q, key, values))
        return torch.cat(parts, dim=1)
    raise ValueError(f"warp memory '{memory}' is not one of {WARP_MEMORY}")


class ResidualBlock(nn.Module):
    """``prelu(x + IN(conv2(prelu(IN(conv1(x))))))`` with reflection padding, one PReLU slope
    shared by both activations (the official block)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, padding_mode="reflect")
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, padding_mode="reflect")
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.prelu = nn.PReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dx = self.norm(self.conv2(self.prelu(self.norm(self.conv1(x)))))
        return self.prelu(x + dx)


class Adaptor(nn.Module):
    """One domain's feature adaptor (Sec. 3.1): five spectral-norm convs with instance norm
    (strides 1, 2, 1, 2, 1: 1/4 resolution; ``down=2`` makes the fourth stride 1), leaky
    ReLU 0.2 between them, then three SPADE residual blocks conditioned on the adaptor's own
    input (widths ``8 ngf -> 8 ngf -> 8 ngf -> 4 ngf``). ``checkpoint_activations``: the
    encoder and each block keep only their inputs for backward (recomputed there)."""

    def __init__(self, in_channels: int, ngf: int = 64, kernel_size: int = 3, down: int = 4,
                 spade_hidden: int = 128, spade_norm: str = "positional",
                 spectral_norm: bool = True, checkpoint_activations: bool = False) -> None:
        super().__init__()
        self.checkpoint_activations = checkpoint_activations
        widths = [in_channels, ngf, 2 * ngf, 4 * ngf, 8 * ngf, 8 * ngf]
        strides = [1, 2, 1, 2 if down == 4 else 1, 1]
        layers: list[nn.Module] = []
        for index, stride in enumerate(strides):
            k = kernel_size if stride == 2 else 3
            conv = conv2d(widths[index], widths[index + 1], k, stride, padding=1, bias=False,
                          spectral_norm=spectral_norm)
            if index:
                layers.append(nn.LeakyReLU(0.2))
            layers.append(nn.Sequential(conv, nn.InstanceNorm2d(widths[index + 1])))
        self.encoder = nn.Sequential(*layers)
        block_widths = [(8 * ngf, 8 * ngf), (8 * ngf, 8 * ngf), (8 * ngf, 4 * ngf)]
        self.blocks = nn.ModuleList(
            SPADEResBlock(cin, cout, in_channels, spade_hidden, spade_norm, "reflect",
                          spectral_norm) for cin, cout in block_widths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = maybe_checkpointed(self.checkpoint_activations, self.encoder, x)
        for block in self.blocks:
            features = maybe_checkpointed(self.checkpoint_activations, block, features, x)
        return features


class CorrespondenceNet(nn.Module):
    """The correspondence network; ``forward`` returns a dict:

    * ``warped_exemplar`` (``B x 3 x H x W``): the exemplar warped onto the input's layout,
      ``warped_exemplar_native`` before up-sampling (1/``down`` resolution);
    * ``warped_exemplar_label`` (``B x C x H/down x W/down``): the exemplar's one-hot map
      warped by the same softmax (``maskmix`` / the warped-mask loss);
    * ``semantic_features`` / ``exemplar_features``: the normalised adaptor outputs (and
      ``real_features`` of the ground truth when ``real_image`` is given: domain alignment);
    * ``warp_cycle`` (with ``cycle=True``): the warped exemplar warped back by the softmax over
      input positions (the warp-cycle loss).

    Args:
        semantic_channels: channels of the (one-hot) semantic input.
        ngf: adaptor width (outputs ``4 ngf`` channels).
        adaptor_kernel: kernel of the adaptors' strided convs.
        match_kernel: patch side of the matched features.
        use_coordconv / maskmix: append coordinates / the (exemplar's) one-hot map before the
            shared blocks.
        pono_c: centre every patch over its channels (else over positions).
        temperature: of the softmax (0.01).
        down: 4 (or 2: correspondence at 1/2 resolution, CoCosNet's ``warp_stride 2``).
        warp_bilinear: bilinear instead of nearest up-sampling of the warp.
        warp_patch: warp full-resolution ``down x down`` patches instead of the pooled colour.
        inter_channels: width of the query / key projections (256).
        spade_hidden / spade_norm: SPADE inside the adaptors (128, positional).
        spectral_norm: on the adaptors' convs.
        warp_memory / chunk_size: see :func:`warp_by_similarity`.
        checkpoint_activations: the adaptors' and shared blocks' activations are recomputed
            in the backward pass instead of kept (less memory, same values and gradients).
    """

    def __init__(self, semantic_channels: int, ngf: int = 64, adaptor_kernel: int = 3,
                 match_kernel: int = 3, use_coordconv: bool = False, maskmix: bool = True,
                 pono_c: bool = True, temperature: float = 0.01, down: int = 4,
                 warp_bilinear: bool = False, warp_patch: bool = False,
                 inter_channels: int = 256, spade_hidden: int = 128,
                 spade_norm: str = "positional", spectral_norm: bool = True,
                 warp_memory: str = "dense", chunk_size: int = 1024,
                 checkpoint_activations: bool = False) -> None:
        super().__init__()
        if down not in (2, 4):
            raise ValueError(f"down must be 2 or 4, got {down}")
        if warp_memory not in WARP_MEMORY:
            raise ValueError(f"warp_memory '{warp_memory}' is not one of {WARP_MEMORY}")
        adaptor = (ngf, adaptor_kernel, down, spade_hidden, spade_norm, spectral_norm,
                   checkpoint_activations)
        self.semantic_adaptor = Adaptor(semantic_channels, *adaptor)
        self.exemplar_adaptor = Adaptor(3, *adaptor)
        channels = 4 * ngf + (3 if use_coordconv else 0) + (semantic_channels if maskmix else 0)
        self.shared = nn.Sequential(*[ResidualBlock(channels) for _ in range(4)])
        self.query = nn.Conv2d(channels, inter_channels, 1)
        self.key = nn.Conv2d(channels, inter_channels, 1)
        self.match_kernel, self.use_coordconv, self.maskmix = match_kernel, use_coordconv, maskmix
        self.pono_c, self.temperature, self.down = pono_c, temperature, down
        self.warp_bilinear, self.warp_patch = warp_bilinear, warp_patch
        self.warp_memory, self.chunk_size = warp_memory, chunk_size
        self.checkpoint_activations = checkpoint_activations

    def matching_features(self, adapted: torch.Tensor, one_hot: torch.Tensor,
                          projection: nn.Module) -> torch.Tensor:
        """Normalised adaptor features -> ``B x D x N`` centred, unit-norm patch features."""
        x = with_coordinates(adapted) if self.use_coordconv else adapted
        if self.maskmix:
            x = torch.cat([x, F.interpolate(one_hot, size=x.shape[2:], mode="nearest")], dim=1)
        if self.checkpoint_activations:
            for block in self.shared:
                x = checkpointed(block, x)
        else:
            x = self.shared(x)
        x = projection(x)
        k = self.match_kernel
        x = x.flatten(2) if k == 1 else F.unfold(x, k, padding=k // 2)
        x = x - x.mean(dim=1 if self.pono_c else -1, keepdim=True)
        return x / (x.norm(dim=1, keepdim=True) + FLOAT_EPS)

    def features(self, exemplar: torch.Tensor, semantics: torch.Tensor,
                 exemplar_semantics: torch.Tensor) -> dict[str, torch.Tensor]:
        semantic = feature_normalize(self.semantic_adaptor(semantics))
        example = feature_normalize(self.exemplar_adaptor(exemplar))
        return {"semantic_features": semantic, "exemplar_features": example,
                "query": self.matching_features(semantic, semantics, self.query),
                "key": self.matching_features(example, exemplar_semantics, self.key)}

    def similarity(self, exemplar: torch.Tensor, semantics: torch.Tensor,
                   exemplar_semantics: torch.Tensor) -> torch.Tensor:
        """``M(u, v) / temperature``: ``B x N_input x N_exemplar`` (dense; for inspection)."""
        f = self.features(exemplar, semantics, exemplar_semantics)
        return f["query"].transpose(1, 2) @ f["key"] / self.temperature

    @torch.no_grad()
    def best_match_field(self, exemplar: torch.Tensor, semantics: torch.Tensor,
                         exemplar_semantics: torch.Tensor, chunk_size: int = 4096
                         ) -> torch.Tensor:
        """``B x 2 x H x W``: for every input pixel, the exemplar pixel (x, y) at the centre of
        the cell its cell matches best (arg-max of ``M``, computed in chunks of rows)."""
        f = self.features(exemplar, semantics, exemplar_semantics)
        batch, height, width = exemplar.shape[0], *exemplar.shape[2:]
        side_h, side_w, d = height // self.down, width // self.down, self.down
        best = torch.cat([(f["query"][:, :, start:start + chunk_size].transpose(1, 2)
                           @ f["key"]).argmax(dim=2)
                          for start in range(0, f["query"].shape[2], chunk_size)], dim=1)
        xs = (best % side_w).float() * d + (d - 1) / 2
        ys = torch.div(best, side_w, rounding_mode="floor").float() * d + (d - 1) / 2
        field = torch.stack([xs, ys], dim=1).reshape(batch, 2, side_h, side_w)
        return F.interpolate(field, scale_factor=d, mode="nearest")

    def forward(self, exemplar: torch.Tensor, semantics: torch.Tensor,
                exemplar_semantics: torch.Tensor, real_image: torch.Tensor | None = None,
                cycle: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = self.features(exemplar, semantics, exemplar_semantics)
        if real_image is not None:
            out["real_features"] = feature_normalize(self.exemplar_adaptor(real_image))
        batch, height, width = exemplar.shape[0], *exemplar.shape[2:]
        side = (height // self.down, width // self.down)
        d = self.down
        colour = (F.unfold(exemplar, d, stride=d) if self.warp_patch
                  else F.avg_pool2d(exemplar, d).flatten(2))                     # B x V x M
        label = F.interpolate(exemplar_semantics, scale_factor=1 / d, mode="nearest").flatten(2)
        values = torch.cat([colour, label], dim=1).transpose(1, 2)
        warped = warp_by_similarity(out["query"], out["key"], values, self.temperature,
                                    self.warp_memory, self.chunk_size).transpose(1, 2)
        colour_warped, label_warped = warped.split([colour.shape[1], label.shape[1]], dim=1)
        if self.warp_patch:
            out["warped_exemplar"] = F.fold(colour_warped, (height, width), d, stride=d)
            out["warped_exemplar_native"] = F.avg_pool2d(out["warped_exemplar"], d)
        else:
            native = colour_warped.reshape(batch, -1, *side)
            out["warped_exemplar_native"] = native
            out["warped_exemplar"] = F.interpolate(
                native, scale_factor=d, mode="bilinear" if self.warp_bilinear else "nearest")
        out["warped_exemplar_label"] = label_warped.reshape(batch, -1, *side)
        if cycle:  # back to the exemplar: softmax over input positions (Sec. 3.3)
            native = out["warped_exemplar_native"].flatten(2).transpose(1, 2)
            out["warp_cycle"] = warp_by_similarity(
                out["key"], out["query"], native, self.temperature, self.warp_memory,
                self.chunk_size).transpose(1, 2).reshape(batch, -1, *side)
        return out

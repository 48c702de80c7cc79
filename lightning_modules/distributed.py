"""Multi-GPU training for alternating GAN phases.

Lightning's DDP wraps the whole LightningModule in one reducer, which expects one backward pass
per step over one fixed set of parameters. GAN phases back-propagate through D alone, G alone,
and double-backward (R1, path length), so that reducer either errors out or reduces the wrong
gradients. ``corrlab_ddp`` keeps DDP's process groups, samplers and launch, but does not wrap
the module: parameters and buffers are broadcast from rank 0 once, and after each phase's
backward the phase's gradients are averaged over ranks with one flat all-reduce (the approach of
NVlabs' stylegan3 training loop). Averaging gradients of the per-rank mean losses equals the
gradient of the global mean, so N processes with batch B match one process with batch N*B.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.distributed as dist
from lightning.pytorch.strategies import DDPStrategy, StrategyRegistry

STRATEGY_NAME = "corrlab_ddp"


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of the initialised process group; (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_reduce_gradients(parameters: Iterable[torch.nn.Parameter]) -> None:
    """Average ``.grad`` of ``parameters`` over all ranks (missing gradients count as zero)."""
    parameters = [p for p in parameters if p.requires_grad]
    if not parameters or rank_and_world()[1] == 1:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for parameter in parameters:
        count = parameter.numel()
        parameter.grad = flat[offset:offset + count].view_as(parameter).clone()
        offset += count


class GradientSyncDDPStrategy(DDPStrategy):
    """DDP without the module wrapper; :class:`~lightning_modules.gan_module.GANModule`
    all-reduces each phase's gradients itself. Select with ``strategy: corrlab_ddp``."""

    strategy_name = STRATEGY_NAME

    def configure_ddp(self) -> None:
        # Same start as DistributedDataParallel: every rank begins from rank 0's state.
        for tensor in self.model.state_dict().values():
            dist.broadcast(tensor, src=0)


if STRATEGY_NAME not in StrategyRegistry:
    StrategyRegistry.register(STRATEGY_NAME, GradientSyncDDPStrategy,
                              description="DDP with per-phase gradient all-reduce (corrlab)",
                              start_method="popen")

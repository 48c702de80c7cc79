"""``GANModule``: the manual-optimization scaffold every corrlab paper module subclasses.

A subclass declares its networks' optimizers (:meth:`optimizer_specs`) and phases
(:meth:`phases`), and computes each phase's loss terms in a method named after the phase,
``loss_<phase name>`` (``loss_D_main``, ``loss_G_reg``; a phase without its method is an error
when optimizers are configured, never a silent fall-through). A module with one non-adversarial
phase (style transfer) is a first-class user: one network, no EMA unless it lists
:attr:`~GANModule.ema_pairs`. The scaffold runs
the due phases of every iteration (zero grad, backward, cross-rank gradient average, finiteness
check, step), counts images seen (``kimg``: training length and the EMA half-life are measured
in it, and it is logged as ``progress/kimg``; Lightning's ``global_step`` counts optimizer steps
and drives nothing), updates EMA copies, applies the lazy-regularization Adam correction, and
keeps every counter in the checkpoint. Regularization intervals count iterations (batches).

Randomness that defines the training run (latents, noise) is drawn with :meth:`draw`, from the
seed, the iteration and the global batch: N ranks with batch B draw exactly what one process
with batch N*B draws, and a resumed run draws what an uninterrupted one would have.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import importlib
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from lightning_modules.allocator import tune_allocator
from lightning_modules.checkpoint_io import (
    check_compatible,
    class_path,
    gather_rng_states,
    set_rng_state,
)
from lightning_modules.distributed import (
    GradientSyncDDPStrategy,
    all_reduce_gradients,
    rank_and_world,
)
from lightning_modules.errors import ConfigError, CorrlabError
from lightning_modules.layers.ema import ema_beta, update_ema
from lightning_modules.layout import LayoutProbe, set_layout
from lightning_modules.optimizers import MOMENT_FREE

# EMA copies are frozen and in eval mode on purpose; Lightning warns about any eval module.
warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")


class NonFiniteError(CorrlabError, RuntimeError):
    """A loss or gradient became NaN/Inf; training stops without saving, so the last checkpoint
    is the last good state."""


@dataclass(frozen=True)
class Phase:
    """One optimisation phase: its loss trains ``network`` every ``interval`` iterations.

    Regularization phases (``interval > 1``) are lazy: their loss is multiplied by the
    interval (the subclass receives it as ``gain``). ``higher_order`` phases take gradients of
    gradients (R1, path length): they run in fp32 outside any autocast (mixed precision) and
    eagerly when the networks are compiled (compiled graphs have no double backward)."""

    name: str
    network: str
    interval: int = 1
    higher_order: bool = False


SCHEDULES = ("constant", "linear", "step")


@dataclass(frozen=True)
class LRSchedule:
    """Learning-rate factor as a function of training length in kimg.

    ``constant``: 1. ``linear``: 1, then linearly to 0 over the last ``decay_kimg`` of
    ``max_kimg`` (pix2pixHD / SPADE / CoCosNet: "linear decay over the second half").
    ``step``: ``gamma ** floor(kimg / step_kimg)``."""

    kind: str = "constant"
    decay_kimg: float | None = None
    step_kimg: float | None = None
    gamma: float = 0.1

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise ConfigError(f"schedule kind '{self.kind}' is not one of {SCHEDULES}")
        if self.kind == "linear" and not self.decay_kimg:
            raise ConfigError("a linear schedule needs decay_kimg > 0")
        if self.kind == "step" and not self.step_kimg:
            raise ConfigError("a step schedule needs step_kimg > 0")

    def factor(self, kimg: float, max_kimg: float | None) -> float:
        if self.kind == "step":
            return self.gamma ** math.floor(kimg / self.step_kimg)
        if self.kind == "linear":
            if max_kimg is None:
                raise ConfigError("a linear learning-rate decay needs max_kimg (its end)")
            return min(1.0, max(0.0, (max_kimg - kimg) / self.decay_kimg))
        return 1.0


@dataclass
class OptimizerSpec:
    """The optimizer of ``modules`` (a "network" that phases train together): any
    ``torch.optim`` class (``optimizer``: a name such as ``Adam``, ``AdamW``, ``SGD``, or a
    dotted path) with ``lr``, and for the Adam family ``betas`` / ``eps``; ``kwargs`` go to
    the class unchanged. ``reg_interval`` applies ``c = k / (k + 1)`` to the learning rate
    and, for Adam, the betas (Karras et al. 2020, App. C: lazy regularization). ``schedule``
    scales the learning rate with training length. ``clip_grad_norm`` rescales the network's
    gradients (after the cross-rank average) to at most that global L2 norm before each step;
    the norm before clipping is then logged as ``<phase>/grad_norm``."""

    modules: Sequence[nn.Module]
    lr: float = 0.002
    betas: tuple[float, float] = (0.0, 0.99)
    eps: float = 1e-8
    reg_interval: int = 0
    optimizer: str = "Adam"
    kwargs: dict[str, Any] = field(default_factory=dict)
    schedule: LRSchedule | None = None
    clip_grad_norm: float | None = None

    def __post_init__(self) -> None:
        if self.clip_grad_norm is not None and not self.clip_grad_norm > 0:
            raise ConfigError(f"clip_grad_norm must be > 0 (or null), got {self.clip_grad_norm}")

    def parameters(self) -> list[nn.Parameter]:
        return [p for module in self.modules for p in module.parameters()]

    def with_options(self, options: dict[str, Any], network: str) -> OptimizerSpec:
        """This spec with config overrides (``lr``, ``betas``, ``eps``, ``optimizer``,
        ``kwargs``, ``schedule`` as a dict of :class:`LRSchedule` fields, ``clip_grad_norm``)."""
        allowed = {"lr", "betas", "eps", "optimizer", "kwargs", "schedule", "clip_grad_norm"}
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise ConfigError(f"optimizers.{network}: unknown option(s) {unknown}; "
                              f"allowed: {sorted(allowed)}")
        options = dict(options)
        if isinstance(options.get("schedule"), dict):
            options["schedule"] = LRSchedule(**options["schedule"])
        if "betas" in options:
            options["betas"] = tuple(options["betas"])
        return dataclasses.replace(self, **options)


def optimizer_class(name: str) -> type[torch.optim.Optimizer]:
    """``Adam`` -> ``torch.optim.Adam``; a dotted path is imported."""
    if "." not in name:
        found = getattr(torch.optim, name, None)
    else:
        module, _, attribute = name.rpartition(".")
        found = getattr(importlib.import_module(module), attribute, None)
    if not (isinstance(found, type) and issubclass(found, torch.optim.Optimizer)):
        raise ConfigError(f"optimizer '{name}' is not a torch.optim optimizer class")
    return found


def lazy_regularization_ratio(interval: int) -> float:
    """``c = interval / (interval + 1)``; 1 when the network has no lazy regularizer."""
    return interval / (interval + 1) if interval > 0 else 1.0


def make_optimizer(spec: OptimizerSpec) -> torch.optim.Optimizer:
    """The spec's optimizer with the lazy-regularization correction. Adam and AdamW use
    PyTorch's fused kernel (one pass over each parameter's state instead of a handful of
    element-wise ops; CPU and GPU alike) unless ``kwargs`` say otherwise; at ``beta1 = 0``
    they keep no first-moment buffer (:mod:`lightning_modules.optimizers`: the same update)."""
    cls = optimizer_class(spec.optimizer)
    ratio = lazy_regularization_ratio(spec.reg_interval)
    options: dict[str, Any] = {"lr": spec.lr * ratio}
    if issubclass(cls, (torch.optim.Adam, torch.optim.AdamW)):
        options.update(betas=(float(spec.betas[0]) ** ratio, float(spec.betas[1]) ** ratio),
                       eps=spec.eps, fused=True)
        if options["betas"][0] == 0.0:
            cls = MOMENT_FREE.get(cls, cls)
    return cls(spec.parameters(), **{**options, **spec.kwargs})


class GANModule(L.LightningModule):
    """Scaffold; see the module docstring.

    Args:
        max_kimg: stop after this many thousand images (all ranks together); None: no limit.
        ema_half_life_kimg: half-life of the EMA copies in kimg; None disables EMA.
        ema_rampup: NVlabs EMA ramp-up (half-life at most ``images_seen * rampup``).
        seed: seed of :meth:`draw` (None: the ``seed_everything`` seed).
        channels_last: train with 4-D parameters (and so activations) in channels-last memory
            order; the same numbers up to float rounding, faster where the convolutions are
            (``experiments/benchmarks/swapae_iteration.py``). ``auto``: time both layouts on
            the first iterations and keep the faster (:mod:`lightning_modules.layout`; the
            choice is logged as ``layout/channels_last`` and kept in checkpoints).
        compile_networks: ``torch.compile`` the trained networks when training starts
            (``higher_order`` phases stay eager); the same numbers up to float rounding.
        optimizers: per network, overrides of its :class:`OptimizerSpec` from the config, e.g.
            TTUR with a linear decay over the last 100 kimg::

                optimizers:
                  generator: {lr: 0.0001, betas: [0.0, 0.9], eps: 0.001,
                              schedule: {kind: linear, decay_kimg: 100}}
                  discriminator: {lr: 0.0004, betas: [0.0, 0.9],
                                  schedule: {kind: linear, decay_kimg: 100}}

            ``optimizer: SGD`` (any ``torch.optim`` class) with ``kwargs: {momentum: 0.9}``.
    Subclasses take these base options as ``**kwargs`` and pass them on by keyword, naming only
    those whose default they change.
    Mixed precision is the Trainer's ``precision`` (e.g. ``bf16-mixed`` on GPUs): every phase
    but the ``higher_order`` ones (R1, path length) then runs under autocast.
    """

    #: network attribute -> EMA attribute; subclasses fill this before calling ``setup_ema``.
    ema_pairs: dict[str, str] = {}

    def __init__(self, max_kimg: float | None = None, ema_half_life_kimg: float | None = 10.0,
                 ema_rampup: float | None = None, seed: int | None = None,
                 channels_last: bool | Literal["auto"] = False,
                 compile_networks: bool = False,
                 optimizers: dict[str, dict[str, Any]] | None = None) -> None:
        super().__init__()
        self.automatic_optimization = False
        if channels_last not in (True, False, "auto"):
            raise ConfigError(f"channels_last must be true, false or auto, got {channels_last!r}")
        self.channels_last, self.compile_networks = channels_last, compile_networks
        self._layout_probe: LayoutProbe | None = None
        self._layout_choice: bool | None = None  # what channels_last: auto chose
        self._resumed_probe_state: dict | None = None
        self.optimizer_options = dict(optimizers or {})
        self.max_kimg, self.ema_half_life_kimg, self.ema_rampup = max_kimg, ema_half_life_kimg, \
            ema_rampup
        self.draw_seed = seed
        self.images_seen = 0
        self.iteration = 0
        self._phase_backward: Callable[[torch.Tensor], None] | None = None  # set in step_phase
        self._draws_this_iteration = 0

    # -- what subclasses provide ---------------------------------------------------------------
    def optimizer_specs(self) -> dict[str, OptimizerSpec]:
        """Network name -> its optimizer settings (one Adam each, in this order)."""
        raise NotImplementedError

    def phases(self) -> list[Phase]:
        """All phases in execution order."""
        raise NotImplementedError

    def phase_loss(self, phase: Phase, batch: Any, gain: float) -> dict[str, torch.Tensor]:
        """Loss terms of ``phase`` (summed for backward, each logged as ``<phase>/<term>``):
        the subclass's ``loss_<phase name>(batch, gain)``."""
        return self.phase_method(phase)(batch, gain)

    def phase_method(self, phase: Phase) -> Callable[[Any, float], dict[str, torch.Tensor]]:
        method = getattr(self, f"loss_{phase.name}", None)
        if not callable(method):
            raise ConfigError(f"{type(self).__name__} declares phase '{phase.name}' but has no "
                              f"method loss_{phase.name}(batch, gain) computing its terms.")
        return method

    def check_phases(self, specs: dict[str, OptimizerSpec]) -> None:
        """Every phase names a known network, has its loss method, and a unique name."""
        names = [phase.name for phase in self.phases()]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ConfigError(f"{type(self).__name__}: phase names {duplicates} repeat")
        for phase in self.phases():
            if phase.network not in specs:
                raise ConfigError(f"{type(self).__name__}: phase '{phase.name}' trains network "
                                  f"'{phase.network}', which has no optimizer (networks: "
                                  f"{sorted(specs)})")
            self.phase_method(phase)

    def batch_size(self, batch: Any) -> int:
        """Images this rank consumes per iteration (default: first tensor's length)."""
        if torch.is_tensor(batch):
            return batch.shape[0]
        return next(iter(batch.values())).shape[0] if isinstance(batch, dict) else len(batch[0])

    def due_phases(self) -> list[Phase]:
        """Phases that run this iteration (default: ``iteration % interval == 0``)."""
        return [p for p in self.phases() if self.iteration % p.interval == 0]

    # -- EMA -----------------------------------------------------------------------------------
    def setup_ema(self) -> None:
        """Create frozen EMA copies for :attr:`ema_pairs` (call at the end of ``__init__``)."""
        if self.ema_half_life_kimg is None:
            return
        for network, ema_name in self.ema_pairs.items():
            ema = copy.deepcopy(getattr(self, network)).eval().requires_grad_(False)
            setattr(self, ema_name, ema)

    def update_ema(self, global_batch: int) -> None:
        if self.ema_half_life_kimg is None:
            return
        beta = ema_beta(global_batch, self.images_seen, self.ema_half_life_kimg, self.ema_rampup)
        for network, ema_name in self.ema_pairs.items():
            update_ema(getattr(self, ema_name), getattr(self, network), beta)

    # -- deterministic, batch-global randomness ------------------------------------------------
    @property
    def world_size(self) -> int:
        return rank_and_world()[1]

    @property
    def rank(self) -> int:
        return rank_and_world()[0]

    def _generator(self) -> torch.Generator:
        """A generator seeded by (seed, iteration, draw number): the same on every rank."""
        base = self.draw_seed if self.draw_seed is not None else torch.initial_seed()
        words = np.random.SeedSequence([int(base), self.iteration, self._draws_this_iteration])
        self._draws_this_iteration += 1
        seed = int(words.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))
        return torch.Generator(device=self.device).manual_seed(seed)

    def draw(self, local_batch: int, *shape: int, kind: str = "normal") -> torch.Tensor:
        """Random ``local_batch x shape`` samples for this rank: the global batch's values at
        positions ``rank, rank + world, ...`` (how DistributedSampler deals samples out).
        ``kind`` is ``normal`` or ``uniform``."""
        values = self.draw_shared(local_batch * self.world_size, *shape, kind=kind)
        return values[self.rank::self.world_size]

    def draw_shared(self, *shape: int, kind: str = "normal") -> torch.Tensor:
        """Random values identical on every rank (per-batch decisions such as style mixing)."""
        sample = {"normal": torch.randn, "uniform": torch.rand}[kind]
        return sample(shape, generator=self._generator(), device=self.device)

    # -- Lightning hooks -----------------------------------------------------------------------
    def resolved_optimizer_specs(self) -> dict[str, OptimizerSpec]:
        """:meth:`optimizer_specs` with the ``optimizers`` overrides of the config applied."""
        specs = self.optimizer_specs()
        unknown = sorted(set(self.optimizer_options) - set(specs))
        if unknown:
            raise ConfigError(f"optimizers: {unknown} are not networks of "
                              f"{type(self).__name__} (networks: {sorted(specs)})")
        return {name: spec.with_options(self.optimizer_options.get(name, {}), name)
                for name, spec in specs.items()}

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        specs = self.resolved_optimizer_specs()
        self.check_phases(specs)
        self._optimizer_names = list(specs)
        self._network_modules = {name: list(spec.modules) for name, spec in specs.items()}
        self._schedules = {name: spec.schedule for name, spec in specs.items()
                           if spec.schedule is not None}
        self._clip_norms = {name: spec.clip_grad_norm for name, spec in specs.items()
                            if spec.clip_grad_norm is not None}
        if self._clip_norms and self._trainer is not None and \
                self.trainer.precision == "16-mixed":
            raise ConfigError(f"optimizers: clip_grad_norm ({sorted(self._clip_norms)}) with "
                              f"precision {self.trainer.precision}: the gradients are "
                              "loss-scaled there; use bf16-mixed or 32")
        optimizers = [make_optimizer(spec) for spec in specs.values()]
        for optimizer in optimizers:
            for group in optimizer.param_groups:
                group.setdefault("base_lr", group["lr"])
        return optimizers

    def apply_lr_schedules(self) -> None:
        """Set each scheduled optimizer's learning rate for the current kimg (a function of
        kimg alone, so a resumed run continues the same curve)."""
        for name, schedule in getattr(self, "_schedules", {}).items():
            factor = schedule.factor(self.kimg, self.max_kimg)
            for group in self.optimizer_for(name).param_groups:
                group["lr"] = group["base_lr"] * factor

    def setup(self, stage: str) -> None:
        strategy = self.trainer.strategy if self._trainer is not None else None
        if isinstance(strategy, DDPStrategy) and not isinstance(strategy,
                                                                GradientSyncDDPStrategy):
            raise ConfigError("GAN modules need `trainer.strategy: corrlab_ddp` for multi-GPU "
                             "training: Lightning's DDP wrapper cannot reduce alternating G/D "
                             "backward passes.")

    def on_fit_start(self) -> None:
        self.prepare_for_training()

    def prepare_for_training(self) -> None:
        """Apply ``channels_last`` and ``compile_networks``, and on the CPU set glibc's allocator
        for training (:func:`~lightning_modules.allocator.tune_allocator`). Lightning calls this
        when fitting starts; a bare loop calls it after ``configure_optimizers``. Parameters
        keep their identity, so optimizers stay valid."""
        if self.device.type == "cpu":
            tune_allocator()
        if self.channels_last == "auto":
            if self._layout_choice is None:  # measure (or go on measuring, when resumed)
                probe = self._layout_probe = LayoutProbe()
                if self._resumed_probe_state is not None:
                    probe.load_state_dict(self._resumed_probe_state)
                set_layout(self, probe.current == "channels_last")
            else:  # resumed: the choice made when the run started
                set_layout(self, self._layout_choice)
        elif self.channels_last:
            set_layout(self, True)
        if self.compile_networks:
            for modules in self._network_modules.values():
                for module in modules:
                    if getattr(module, "_compiled_call_impl", None) is None:
                        module.compile()

    def optimizer_for(self, network: str):
        optimizers = self.optimizers()
        optimizers = optimizers if isinstance(optimizers, list) else [optimizers]
        return optimizers[self._optimizer_names.index(network)]

    def network_parameters(self, network: str) -> list[nn.Parameter]:
        return [p for module in self._network_modules[network] for p in module.parameters()]

    def training_step(self, batch: Any, batch_idx: int) -> None:
        self.iterate(batch, self.run_phase)
        self.log("progress/kimg", self.kimg, prog_bar=True)
        if self.max_kimg is not None and self.kimg >= self.max_kimg:
            self.trainer.should_stop = True

    def iterate(self, batch: Any, run_phase: Callable[[Phase, Any], Any]) -> None:
        """One training iteration: the due phases, then EMA and the counters."""
        probe, iteration = self._layout_probe, self.iteration
        if probe is not None:
            probe.before_iteration(self.device)
        self._draws_this_iteration = 0
        if getattr(self, "_schedules", None) and self._trainer is not None:
            self.apply_lr_schedules()
        local_batch = self.batch_size(batch)
        for phase in self.due_phases():
            run_phase(phase, batch)
        global_batch = local_batch * self.world_size
        self.update_ema(global_batch)
        self.images_seen += global_batch
        self.iteration += 1
        if probe is not None:
            choice = probe.after_iteration(iteration, self.device, self._switch_layout)
            if choice is not None:
                self._layout_choice, self._layout_probe = choice, None
                rank_zero_info(probe.summary(choice))
                if self._trainer is not None:
                    self.log("layout/channels_last", float(choice), on_step=True,
                             on_epoch=False)

    def _switch_layout(self, channels_last: bool) -> None:
        set_layout(self, channels_last, self.trainer.optimizers if self._trainer else ())

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        """Nothing to compute per batch: GANs are evaluated by metric callbacks (FID, LPIPS, ...)
        through ``generate_for_metrics``. Defined so that validation epochs, ``corrlab
        validate`` and ``corrlab test`` run those callbacks."""

    def test_step(self, batch: Any, batch_idx: int) -> None:
        """See :meth:`validation_step`."""

    def run_phase(self, phase: Phase, batch: Any) -> None:
        terms = self.step_phase(phase, batch, self.optimizer_for(phase.network),
                                self.manual_backward)
        for term, value in terms.items():
            self.log(f"{phase.name}/{term}", value.detach())
        if phase.network in self._clip_norms and self.last_grad_norm is not None:
            self.log(f"{phase.name}/grad_norm", self.last_grad_norm)

    def step_phase(self, phase: Phase, batch: Any, optimizer: torch.optim.Optimizer,
                   backward: Callable[[torch.Tensor], None] = torch.Tensor.backward
                   ) -> dict[str, torch.Tensor]:
        """One phase: loss, backward, gradient average across ranks, finiteness check, step;
        the gradients are freed after the step (read them in ``on_before_optimizer_step``).
        Runs without a Trainer too (benchmarks' bare loop) when ``configure_optimizers``'
        optimizers are passed in."""
        for name, modules in self._network_modules.items():
            for module in modules:
                module.requires_grad_(name == phase.network)
        optimizer.zero_grad(set_to_none=True)
        self._phase_backward = backward
        try:
            with self.phase_context(phase):
                terms = self.phase_loss(phase, batch, gain=float(phase.interval))
        finally:
            self._phase_backward = None
        loss = sum(terms.values())
        self.check_finite(phase, "loss", loss.detach())
        if loss.requires_grad:  # False when every term was spent by backward_now
            backward(loss)
        parameters = self.network_parameters(phase.network)
        if self._trainer is not None and isinstance(self.trainer.strategy,
                                                    GradientSyncDDPStrategy):
            all_reduce_gradients(parameters)
        grads = [p.grad for p in parameters if p.grad is not None]
        self.last_grad_norm = None  # the norm before clipping, where the network clips
        if grads:
            max_norm = getattr(self, "_clip_norms", {}).get(phase.network)
            if max_norm is None:
                norm = torch.stack(torch._foreach_norm(grads)).sum()
            else:  # the same on every rank: the gradients were averaged first
                norm = self.last_grad_norm = nn.utils.clip_grad_norm_(parameters,
                                                                      max_norm).detach()
            self.check_finite(phase, "gradient", norm)
        optimizer.step()
        # the step has used them: freed now, not kept through the other networks' phases
        optimizer.zero_grad(set_to_none=True)
        return terms

    @contextlib.contextmanager
    def phase_context(self, phase: Phase) -> Iterator[None]:
        """``higher_order`` phases: fp32 (autocast off) and eager (``torch.compile`` off)."""
        if not phase.higher_order:
            yield
            return
        with torch.autocast(self.device.type, enabled=False), \
                torch.compiler.set_stance("force_eager"):
            yield

    def backward_now(self, loss: torch.Tensor) -> torch.Tensor:
        """Inside a phase: backpropagate ``loss`` at once, freeing its graph, and return its
        detached value (the phase's other terms add their gradients to it; the step uses the
        sum). Lowers peak memory when a loss has independent parts. Outside a phase (a direct
        ``phase_loss`` call) the loss is returned unchanged."""
        if self._phase_backward is None:
            return loss
        self._phase_backward(loss)
        return loss.detach()

    def check_finite(self, phase: Phase, what: str, value: torch.Tensor) -> None:
        if not torch.isfinite(value).all():
            raise NonFiniteError(
                f"non-finite {what} ({value.item()}) in phase '{phase.name}' at iteration "
                f"{self.iteration} ({self.images_seen / 1000:.3f} kimg); training stopped without "
                "saving, so the last checkpoint holds the last good state. Lower the learning "
                "rate or check the data, then resume from it.")

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["corrlab"] = {"images_seen": self.images_seen, "iteration": self.iteration,
                                 "model_class": class_path(self),
                                 "rng_states": gather_rng_states(),
                                 "layout_channels_last": self._layout_choice,
                                 "layout_probe": self._layout_probe.state_dict()
                                 if self._layout_probe is not None else None}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        path = getattr(self._trainer, "ckpt_path", None) if self._trainer is not None else None
        check_compatible(checkpoint, self, path)
        state = checkpoint.get("corrlab", {})
        self.images_seen = int(state.get("images_seen", 0))
        self.iteration = int(state.get("iteration", 0))
        self._layout_choice = state.get("layout_channels_last")
        self._resumed_probe_state = state.get("layout_probe")
        rng_states = state.get("rng_states") or []
        if self._trainer is not None and len(rng_states) == self.world_size:
            set_rng_state(rng_states[self.rank])  # resuming with the same world size

    @property
    def kimg(self) -> float:
        return self.images_seen / 1000.0

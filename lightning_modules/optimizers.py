"""Adam without its first-moment buffer when beta1 = 0.

Adam's first moment is ``m_t = beta1 m_{t-1} + (1 - beta1) g_t`` with bias correction
``1 - beta1^t`` (Kingma & Ba 2015, Algorithm 1). At ``beta1 = 0`` it is the gradient itself, and
every GAN here trains at ``beta1 = 0`` (StyleGAN2, Karras et al. 2020; the SPADE family's TTUR
in CoCosNet). PyTorch's Adam still keeps a parameter-sized ``exp_avg`` that only ever holds a
copy of the gradient: for CoCosNet's 162 M parameters, 0.6 GiB.

:class:`MomentFreeAdam` and :class:`MomentFreeAdamW` give PyTorch's own step (fused or not) the
gradient tensor as that buffer and drop it after the step, so the update is PyTorch's and no
such buffer exists between steps or in checkpoints. Groups with ``beta1 != 0`` or ``maximize``
are left to the parent class unchanged. After a step, a parameter's ``.grad`` may hold the
first moment the step used (the gradient, or with non-fused L2 ``weight_decay`` the gradient
plus the decay term); the scaffold discards gradients after each step anyway.
"""

from __future__ import annotations

from typing import Any

import torch

FIRST_MOMENT = "exp_avg"


class _MomentFree:
    """Mixin for ``torch.optim.Adam`` and ``torch.optim.AdamW``."""

    state: Any
    param_groups: list[dict[str, Any]]

    @staticmethod
    def _moment_free(group: dict[str, Any]) -> bool:
        return float(group["betas"][0]) == 0.0 and not group.get("maximize", False)

    def _lend_gradients(self) -> list[dict[str, Any]]:
        """Give each parameter's state its gradient as the first moment (creating the other
        state as PyTorch's Adam does on a first step); returns the states lent to."""
        lent = []
        for group in self.param_groups:
            if not self._moment_free(group):
                continue
            for parameter in group["params"]:
                if parameter.grad is None:
                    continue
                state = self.state[parameter]
                if not state:
                    on_device = group.get("fused") or group.get("capturable")
                    state["step"] = (torch.zeros((), dtype=torch.float32,
                                                 device=parameter.device) if on_device
                                     else torch.tensor(0.0, dtype=_scalar_dtype()))
                    state["exp_avg_sq"] = torch.zeros_like(
                        parameter, memory_format=torch.preserve_format)
                    if group.get("amsgrad"):
                        state["max_exp_avg_sq"] = torch.zeros_like(
                            parameter, memory_format=torch.preserve_format)
                state[FIRST_MOMENT] = parameter.grad
                lent.append(state)
        return lent

    def step(self, closure=None):  # noqa: ANN001, ANN201  (torch's signature)
        lent = self._lend_gradients()
        try:
            return super().step(closure)  # type: ignore[misc]
        finally:
            for state in lent:
                state.pop(FIRST_MOMENT, None)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Loads any Adam state; first moments saved by PyTorch's Adam for beta1 = 0 groups
        (always the last gradient) are dropped."""
        super().load_state_dict(state_dict)  # type: ignore[misc]
        for group in self.param_groups:
            if self._moment_free(group):
                for parameter in group["params"]:
                    self.state[parameter].pop(FIRST_MOMENT, None)


def _scalar_dtype() -> torch.dtype:
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


class MomentFreeAdam(_MomentFree, torch.optim.Adam):
    """``torch.optim.Adam`` keeping no first-moment buffer for ``beta1 = 0`` groups."""


class MomentFreeAdamW(_MomentFree, torch.optim.AdamW):
    """``torch.optim.AdamW`` keeping no first-moment buffer for ``beta1 = 0`` groups."""


MOMENT_FREE = {torch.optim.Adam: MomentFreeAdam, torch.optim.AdamW: MomentFreeAdamW}

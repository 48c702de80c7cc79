"""``channels_last: auto``: time both memory layouts on the first training iterations, keep the
faster, and log the choice.

Whether channels-last memory speeds a network up depends on the hardware and the network: it
made the Swapping Autoencoder's D step 8-12% faster on Intel Xeons with AVX-512 and 35% slower
on an AMD EPYC without it, and StyleGAN2's grouped modulated convolutions slower on the Xeons
(``experiments/benchmarks/swapae_iteration.py``). So the scaffold measures instead of guessing:
the first two odd-numbered iterations run contiguous, the parameters (and optimizer states)
then switch to channels-last, one iteration warms the new kernels up, the next two odd-numbered
iterations run channels-last, and the faster layout stays. Odd iterations are compared because
lazy regularizers run on multiples of their (power-of-two) intervals, so every odd iteration
runs the same phases. Under DDP the ranks add their times before deciding, so all agree. The
choice is saved in checkpoints and reused on resume; a run resumed while still measuring
continues the measurement in the layout it had. Both layouts compute the same numbers up to
float rounding, so a run's numbers depend on the choice at that level: set ``channels_last``
to true or false where runs on different machines must agree bit for bit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import torch
import torch.distributed as dist

LAYOUTS = ("contiguous", "channels_last")
TIMED_PER_LAYOUT = 2


def set_layout(module: torch.nn.Module, channels_last: bool,
               optimizers: Iterable[torch.optim.Optimizer] = ()) -> None:
    """Parameters, buffers and 4-D optimizer states in channels-last or contiguous memory
    (parameters keep their identity, so optimizers stay valid)."""
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    module.to(memory_format=memory_format)
    for optimizer in optimizers:
        for state in optimizer.state.values():
            for key, value in state.items():
                if torch.is_tensor(value) and value.dim() == 4:
                    state[key] = value.contiguous(memory_format=memory_format)


class LayoutProbe:
    """The measuring state machine; :meth:`after_iteration` returns the decision (True:
    channels-last) once it is made, else None."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self.seconds = {layout: [] for layout in LAYOUTS}
        self.current = "contiguous"
        self.warming_up = False
        self._start = 0.0

    def state_dict(self) -> dict:
        return {"seconds": self.seconds, "current": self.current,
                "warming_up": self.warming_up}

    def load_state_dict(self, state: dict) -> None:
        self.seconds = {layout: list(state["seconds"][layout]) for layout in LAYOUTS}
        self.current, self.warming_up = state["current"], bool(state["warming_up"])

    def before_iteration(self, device: torch.device) -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        self._start = self.clock()

    def after_iteration(self, iteration: int, device: torch.device,
                        switch: Callable[[bool], None]) -> bool | None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        elapsed = self.clock() - self._start
        if self.warming_up:
            self.warming_up = False
            return None
        if iteration % 2 == 0:
            return None
        times = self.seconds[self.current]
        times.append(elapsed)
        if len(times) < TIMED_PER_LAYOUT:
            return None
        if self.current == "contiguous":
            self.current, self.warming_up = "channels_last", True
            switch(True)
            return None
        choice = self.decide(device)
        switch(choice)
        return choice

    def decide(self, device: torch.device) -> bool:
        totals = torch.tensor([sum(self.seconds[layout]) for layout in LAYOUTS],
                              dtype=torch.float64,
                              device=device if device.type == "cuda" else "cpu")
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(totals)
        self.totals = totals.tolist()
        return self.totals[1] < self.totals[0]

    def summary(self, choice: bool) -> str:
        contiguous, channels_last = (total / TIMED_PER_LAYOUT for total in self.totals)
        return (f"channels_last: auto chose {'channels-last' if choice else 'contiguous'} "
                f"memory (iteration {contiguous:.3f} s contiguous, {channels_last:.3f} s "
                f"channels-last, summed over ranks)")

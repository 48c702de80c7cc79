"""What every benchmark prints besides its table: the environment it ran in, and the table
itself to stdout and optionally to a Markdown file."""

from __future__ import annotations

import gc
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch


def cpu_model() -> str:
    """The CPU's model name (``lscpu``'s, from /proc/cpuinfo), or the platform's processor."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def environment() -> str:
    """CPU model, machine, cores, torch version and threads, the glibc allocator variables set
    (without any, corrlab's training sets the allocator itself unless ``CORRLAB_TUNE_MALLOC=0``),
    and whether subnormal floats are flushed to zero (in this process)."""
    from lightning_modules.allocator import ENV, MALLOC_VARS
    from lightning_modules.numerics import denormals_flushed

    malloc = {k: os.environ[k] for k in MALLOC_VARS if k in os.environ}
    default = (f"default (corrlab's training tunes it unless {ENV}=0; here {ENV}="
               f"{os.environ.get(ENV, 'unset')})")
    return (f"CPU: {cpu_model()}, {platform.machine()}, {os.cpu_count()} cores, torch "
            f"{torch.__version__}, {torch.get_num_threads()} threads, allocator env: "
            f"{malloc or default}, subnormals flushed: "
            f"{'yes' if denormals_flushed() else 'no'}")


def phase_runner(module) -> Callable[[object, object], dict]:
    """Training without a Trainer: the optimizers of ``configure_optimizers`` and
    ``prepare_for_training`` (what fitting sets up), then ``run(phase, batch)`` is
    ``GANModule.step_phase`` with that phase's optimizer, the function training runs."""
    optimizers = dict(zip(module.optimizer_specs(), module.configure_optimizers(), strict=True))
    module.prepare_for_training()
    return lambda phase, batch: module.step_phase(phase, batch, optimizers[phase.network])


def emit(lines: list[str], markdown: str | Path | None) -> None:
    text = "\n".join(lines)
    print(text)
    if markdown:
        path = Path(markdown)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")


def median_seconds(step: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``step`` after one warm-up call."""
    step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def live_tensor_bytes() -> int:
    """Bytes of the tensor storages reachable from Python (each once), with the gradients of
    those tensors."""
    storages: dict[int, int] = {}

    def add(tensor: torch.Tensor | None) -> None:
        if tensor is not None and tensor.device.type == "cpu" and not tensor.is_meta:
            storage = tensor.untyped_storage()
            if storage.data_ptr():
                storages[storage.data_ptr()] = storage.nbytes()

    with warnings.catch_warnings():  # isinstance on deprecated torch objects warns
        warnings.simplefilter("ignore")
        tensors = [thing for thing in gc.get_objects() if isinstance(thing, torch.Tensor)]
    for tensor in tensors:
        add(tensor)
        add(tensor.grad)
    return sum(storages.values())


def peak_tensor_gib(step: Callable[[], object]) -> float:
    """Peak live tensor memory (GiB, CPU) during one call of ``step``: the tensors alive before
    it (:func:`live_tensor_bytes`) plus the highest running sum of the allocations and frees
    the profiler records during the call. The CPU counterpart of ``torch.cuda.
    max_memory_allocated``, what a GPU would have to hold: unlike the RSS high-water mark it
    leaves out the process's code and the allocator's free memory."""
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    gc.collect()
    before = live_tensor_bytes()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
        step()
    changes, pending = [], list(profiler.profiler.kineto_results.experimental_event_tree())
    while pending:
        event = pending.pop()
        if event.tag == _EventType.Allocation and event.extra_fields.device.type == "cpu":
            changes.append((event.start_time_ns, event.extra_fields.alloc_size))
        pending.extend(event.children)
    running = peak = 0
    for _, size in sorted(changes):
        running += size
        peak = max(peak, running)
    return (before + peak) / 2**30

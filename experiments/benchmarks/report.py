"""What every benchmark prints besides its table: the environment it ran in, and the table
itself to stdout and optionally to a Markdown file."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

MALLOC_VARS = ("MALLOC_ARENA_MAX", "MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")


def environment() -> str:
    """Machine, cores, torch version and threads, and the glibc allocator variables set."""
    malloc = {k: os.environ[k] for k in MALLOC_VARS if k in os.environ}
    return (f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads, allocator env: {malloc or 'default'}")


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

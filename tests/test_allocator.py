"""corrlab sets glibc's allocator for CPU training itself (``lightning_modules/allocator.py``):
large blocks then come from the heap instead of a fresh ``mmap`` each time, unless the user set
the ``MALLOC_*`` variables or ``CORRLAB_TUNE_MALLOC=0``. Each case runs in a fresh process,
since the options are process-wide."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lightning_modules.allocator import MALLOC_VARS

ROOT = Path(__file__).resolve().parents[1]

# mmapped blocks (mallinfo2's hblks) added by one 64 MiB malloc, before and after a tiny GAN
# module is prepared for training on the CPU
SCRIPT = """
import ctypes, json
class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks",
                "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
def mmapped_by_a_large_malloc():
    before = libc.mallinfo2().hblks
    block = libc.malloc(64 << 20)
    added = libc.mallinfo2().hblks - before
    libc.free(block)
    return added
from tests.tiny_module import TinyTranslator
from lightning_modules.allocator import tune_allocator
before = mmapped_by_a_large_malloc()
TinyTranslator().prepare_for_training()
print(json.dumps({"before": before, "state": tune_allocator(),
                  "after": mmapped_by_a_large_malloc()}))
"""


def run(**env: str) -> dict:
    clean = {k: v for k, v in os.environ.items()
             if k not in MALLOC_VARS and k != "CORRLAB_TUNE_MALLOC"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env={**clean, **env},
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt/mallinfo2")
def test_training_on_the_cpu_moves_large_blocks_off_mmap_unless_the_user_chose() -> None:
    tuned = run()
    assert tuned == {"before": 1, "state": "tuned", "after": 0}
    assert run(MALLOC_ARENA_MAX="2") == {"before": 1, "state": "environment", "after": 1}
    assert run(CORRLAB_TUNE_MALLOC="0") == {"before": 1, "state": "off", "after": 1}

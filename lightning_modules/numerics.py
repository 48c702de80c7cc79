"""Subnormal floats flushed to zero on the CPU, in every thread.

Subnormal (denormal) floats, ``0 < |x| < 1.2e-38`` in float32, take a slow path on x86 CPUs: a
matrix product whose operand holds them runs about 100x slower. GAN training makes them in its
gradients (CoCosNet's correspondence softmax at temperature 0.01: its backward matrix products
ran 10-20x slower than the forward one until they were flushed). Flushing them (FTZ / DAZ)
changes only values below 1.2e-38, far under anything an update or a loss can resolve.

``torch.set_flush_denormal`` sets the flags of the calling thread only; threads created later
inherit them, but OpenMP workers that already run keep their own. corrlab therefore sets them
when ``lightning_modules`` is imported, before most programs start the thread pool.
:func:`denormals_flushed` is a best-effort check: it reports whether products over subnormals
come back zero. It can miss a worker; in one test, a matrix product over subnormals stored
before the flags were set stayed slow while the check passed. ``CORRLAB_FLUSH_DENORMAL=0``
leaves the flags alone.
"""

from __future__ import annotations

import os
import warnings

import torch

ENV = "CORRLAB_FLUSH_DENORMAL"
_SMALLEST_NORMAL = float(torch.finfo(torch.float32).tiny)


def denormals_flushed() -> bool:
    """Whether the intra-op threads flush subnormals: an element-wise product and a matrix
    product (MKL / oneDNN threads) of subnormal operands, large enough to be split across the
    thread pool, come back all zero only then."""
    subnormal = torch.full((1024, 1024), _SMALLEST_NORMAL / 4)
    return int((subnormal * 1.0).count_nonzero()) == 0 and \
        int((subnormal @ torch.ones(1024, 1024)).count_nonzero()) == 0


def flush_denormals(enabled: bool | None = None) -> bool:
    """Set flush-to-zero / denormals-are-zero (``enabled``: default from ``CORRLAB_FLUSH_
    DENORMAL``, on unless ``0``) and return whether every thread now does as asked. Warns
    when the CPU flushes in this thread but some running worker thread does not."""
    if enabled is None:
        enabled = os.environ.get(ENV, "1") != "0"
    if not torch.set_flush_denormal(enabled):  # False: this CPU has no such flags
        return not enabled
    flushed = denormals_flushed()
    if enabled and not flushed:
        warnings.warn(f"subnormal floats are flushed in this thread but not in the intra-op "
                      f"thread pool, which started before lightning_modules was imported: "
                      f"import it (or call torch.set_flush_denormal(True)) before the first "
                      f"tensor operation, or set {ENV}=0 to silence this", stacklevel=2)
    return flushed == enabled

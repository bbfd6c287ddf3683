"""Loading nestgrad's NEST extension module (``nestgradmodule``) and listing its models."""

from __future__ import annotations

import json
import pathlib
from dataclasses import dataclass
from functools import cache

LIB_DIR = pathlib.Path(__file__).resolve().parent / "lib"
MODULE_PATH = LIB_DIR / "nestgradmodule.so"
MODELS_FILE = LIB_DIR / "nestgradmodule_models.json"


@dataclass(frozen=True)
class ModelInfo:
    """A neuron model registered by nestgradmodule."""

    name: str
    language: str  # "C++" or "NESTML"
    source: str  # where its source lives in the repository


def _require_built() -> None:
    if not MODULE_PATH.exists() or not MODELS_FILE.exists():
        raise RuntimeError(
            f"nestgradmodule is not built ({MODULE_PATH} is missing). Run `make setup` in the nestgrad "
            "repository (it builds the module with CMake and installs it into the package)."
        )


@cache
def models() -> tuple[ModelInfo, ...]:
    """The models of nestgradmodule, as registered by the build (one list, written by CMake)."""
    _require_built()
    data = json.loads(MODELS_FILE.read_text())
    return tuple(ModelInfo(m["name"], m["language"], m["source"]) for m in data["models"])


def model_names() -> list[str]:
    return [m.name for m in models()]


def install() -> list[str]:
    """Load nestgradmodule into the running NEST kernel and return the names of its models.

    Idempotent: a second call (also after ``nest.ResetKernel()``, which unloads modules) loads the module only
    if its models are not registered. The module is loaded by absolute path, so no environment variables are
    needed, also under ``mpirun``.
    """
    import nest

    names = model_names()
    if not all(name in nest.node_models for name in names):
        nest.Install(str(MODULE_PATH))
    missing = [name for name in names if name not in nest.node_models]
    if missing:
        raise RuntimeError(f"nestgradmodule was loaded but does not register {missing}; rebuild with `make setup`")
    return names

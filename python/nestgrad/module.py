"""Loading nestgrad's NEST extension module (``nestgradmodule``) and listing its models."""

from __future__ import annotations

import json
import pathlib
from dataclasses import dataclass
from functools import cache

LIB_DIR = pathlib.Path(__file__).resolve().parent / "lib"
MODULE_NAME = "nestgradmodule.so"
MODELS_NAME = "nestgradmodule_models.json"


@dataclass(frozen=True)
class ModelInfo:
    """A model registered by nestgradmodule."""

    name: str
    language: str  # "C++" or "NESTML"
    source: str  # where its source lives in the repository
    kind: str = "node"  # "node" (neuron) or "synapse"


@cache
def module_dir() -> pathlib.Path:
    """The folder (lib/nest<version>-cxx11abi<0|1>/) of the module built against the NEST in this environment."""
    from nestgrad.nest_config import nest_package_dir

    kernel = (nest_package_dir() / "nestkernel_api.so").resolve()
    built = sorted(LIB_DIR.glob(f"*/{MODELS_NAME}"))
    for info in built:
        if (
            pathlib.Path(json.loads(info.read_text())["nest_kernel"]).resolve() == kernel
            and (info.parent / MODULE_NAME).exists()
        ):
            return info.parent
    raise RuntimeError(
        f"nestgradmodule is not built for the NEST at {kernel} (built for: "
        f"{[json.loads(i.read_text())['nest_kernel'] for i in built] or 'none'}). Run `make setup` (or `make mpi` "
        "for the MPI environment) in the nestgrad repository."
    )


def module_path() -> pathlib.Path:
    return module_dir() / MODULE_NAME


@cache
def models() -> tuple[ModelInfo, ...]:
    """The models of nestgradmodule, as registered by the build (one list, written by CMake)."""
    data = json.loads((module_dir() / MODELS_NAME).read_text())
    return tuple(ModelInfo(m["name"], m["language"], m["source"], m.get("kind", "node")) for m in data["models"])


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

    def registered(m: ModelInfo) -> bool:
        return m.name in (nest.synapse_models if m.kind == "synapse" else nest.node_models)

    if not all(registered(m) for m in models()):
        nest.Install(str(module_path()))
    missing = [m.name for m in models() if not registered(m)]
    if missing:
        raise RuntimeError(f"nestgradmodule was loaded but does not register {missing}; rebuild with `make setup`")
    return names

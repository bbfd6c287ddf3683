"""Generate NEST C++ code from NESTML models without NESTML's own build step.

The nestgrad CMake build compiles the generated code together with cpp_module/ into one module, so NESTML's
builder (which would compile a separate module) is switched off here. Writes the generated sources to OUT and a
file OUT/models.txt with one generated neuron name per line.

Models whose name starts with ``eprop_`` follow nestgrad's e-prop convention (docs/nestml_eprop.md): they are
generated with ``nestgrad::EpropNestmlNode`` as parent class, and nestml_models/eprop/eprop_codegen.py derives
their eligibility traces and adds the e-prop calls. The others are generated as plain NEST neurons.

Usage: python generate_nestml.py OUT NEST_VERSION MODEL.nestml [MODEL.nestml ...]
"""

from __future__ import annotations

import pathlib
import re
import shutil
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "nestml_models" / "eprop"))

from eprop_codegen import EpropConventionError, check_name, derive, patch_generated  # noqa: E402


def model_name(path: str) -> str:
    found = re.search(r"^\s*model\s+(\w+)\s*:", pathlib.Path(path).read_text(), re.M)
    if not found:
        raise EpropConventionError(f"{path}: no 'model <name>:' line")
    return found.group(1)


def _run_nestml(models: list[str], out: pathlib.Path, nest_version: str, options: dict) -> None:
    from pynestml.frontend import pynestml_frontend as frontend

    # Code generation only: the nestgrad module is compiled by our CMake build, not by NESTML's builder.
    frontend.builder_from_target_name = lambda name, options=None: (None, dict(options or {}))
    frontend.configure_front_end(
        models,
        "NEST",
        target_path=str(out),
        logging_level="WARNING",
        module_name="nestgradmodule",
        codegen_opts={"nest_version": "v" + nest_version, **options},
    )
    if frontend.process():
        raise EpropConventionError("NESTML reported errors in " + ", ".join(models) + " (see the messages above)")


def generate(out: pathlib.Path, nest_version: str, models: list[str]) -> list[str]:
    """Generates every model into ``out``; returns the names of the generated neurons."""
    from pynestml.codegeneration.nest_code_generator import NESTCodeGenerator

    eprop = [m for m in models if model_name(m).startswith("eprop_")]
    plain = [m for m in models if m not in eprop]
    for m in eprop:
        check_name(model_name(m), m)
    if plain:
        _run_nestml(plain, out, nest_version, {})
    if eprop:
        files = {model_name(m): m for m in eprop}
        derived = {}
        original = NESTCodeGenerator._get_neuron_model_namespace

        def namespace_with_eprop(self, neuron, *args):
            namespace = original(self, neuron, *args)
            derived[neuron.get_name()] = derive(namespace, files.get(neuron.get_name(), neuron.get_name()))
            return namespace

        NESTCodeGenerator._get_neuron_model_namespace = namespace_with_eprop
        try:
            _run_nestml(
                eprop,
                out,
                nest_version,
                {
                    "neuron_parent_class": "nestgrad::EpropNestmlNode",
                    "neuron_parent_class_include": "eprop_nestml_node.h",
                },
            )
        finally:
            NESTCodeGenerator._get_neuron_model_namespace = original
        for name, elig in derived.items():
            patch_generated(out, name, elig)
    return sorted(p.stem for p in out.glob("*.h") if re.search(r"^\s*void\s+register_", p.read_text(), re.M))


def main() -> None:
    out = pathlib.Path(sys.argv[1]).resolve()
    nest_version = sys.argv[2]
    models = [str(pathlib.Path(p).resolve()) for p in sys.argv[3:]]
    if not models:
        sys.exit("generate_nestml: no .nestml files given")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    try:
        names = generate(out, nest_version, models)
    except EpropConventionError as err:
        sys.exit(f"generate_nestml: {err}")
    (out / "models.txt").write_text("".join(n + "\n" for n in names))
    print(f"generate_nestml: generated {', '.join(names)} in {out}")


if __name__ == "__main__":
    main()

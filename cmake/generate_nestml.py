"""Generate NEST C++ code from NESTML models without NESTML's own build step.

The nestgrad CMake build compiles the generated code together with cpp_module/ into one module, so NESTML's
builder (which would compile a separate module) is switched off here. Writes the generated sources to OUT and a
file OUT/models.txt with one generated neuron name per line.

Usage: python generate_nestml.py OUT NEST_VERSION MODEL.nestml [MODEL.nestml ...]
"""

from __future__ import annotations

import pathlib
import re
import shutil
import sys


def main() -> None:
    out = pathlib.Path(sys.argv[1]).resolve()
    nest_version = sys.argv[2]
    models = [str(pathlib.Path(p).resolve()) for p in sys.argv[3:]]
    if not models:
        sys.exit("generate_nestml: no .nestml files given")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)

    from pynestml.frontend import pynestml_frontend as frontend

    # Code generation only: the nestgrad module is compiled by our CMake build, not by NESTML's builder.
    frontend.builder_from_target_name = lambda name, options=None: (None, dict(options or {}))
    frontend.configure_front_end(
        models,
        "NEST",
        target_path=str(out),
        logging_level="WARNING",
        module_name="nestgradmodule",
        codegen_opts={"nest_version": "v" + nest_version},
    )
    if frontend.process():
        sys.exit("generate_nestml: NESTML reported errors (see the messages above)")

    names = sorted(p.stem for p in out.glob("*.h") if re.search(r"^\s*void\s+register_", p.read_text(), re.M))
    (out / "models.txt").write_text("".join(n + "\n" for n in names))
    print(f"generate_nestml: generated {', '.join(names)} in {out}")


if __name__ == "__main__":
    main()

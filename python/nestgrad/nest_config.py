"""A working ``nest-config`` for the NEST binary wheel, so that NESTML can build modules against it.

The ``nest-config`` shipped in the nest-simulator wheel points at the temporary directory the wheel was built in.
:func:`write_nest_config` writes a small replacement that prints correct values; pass its folder to NESTML as
``codegen_opts={"nest_path": folder}``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import pathlib
import shutil
import stat
import subprocess
import sys


def nest_package_dir() -> pathlib.Path:
    """Folder of the installed ``nest`` Python package (found without starting the kernel)."""
    spec = importlib.util.find_spec("nest")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("nest-simulator is not installed in this Python environment")
    return pathlib.Path(list(spec.submodule_search_locations)[0])


def kernel_uses_cxx11_abi() -> bool:
    """Whether the installed NEST kernel was compiled with the C++11 ``std::string`` ABI (read from its symbols)."""
    lib = nest_package_dir() / "nestkernel_api.so"
    out = subprocess.run(["nm", "-D", "--defined-only", str(lib)], check=True, capture_output=True, text=True)
    return "B5cxx11" in out.stdout


def write_nest_config(folder: str | os.PathLike[str]) -> pathlib.Path:
    """Write ``folder/bin/nest-config`` for the installed NEST and return ``folder``."""
    folder = pathlib.Path(folder).resolve()
    (folder / "bin").mkdir(parents=True, exist_ok=True)
    nest_dir = nest_package_dir()
    abi = 1 if kernel_uses_cxx11_abi() else 0
    values = {
        "--prefix": str(folder),
        "--exec-prefix": str(folder),
        "--version": importlib.metadata.version("nest-simulator"),
        "--includes": f"-I{nest_dir / 'include' / 'nest'}",
        "--cflags": f"-std=c++20 -O2 -fopenmp -D_GLIBCXX_USE_CXX11_ABI={abi}",
        "--libs": "",
        "--compiler": shutil.which("g++") or "g++",
        "--compiler-name": "GNU",
        "--python-executable": sys.executable,
        "--libdir": str(nest_dir),
        "--datadir": str(nest_dir / "share" / "nest"),
        "--docdir": str(nest_dir / "doc"),
        "--static-libraries": "OFF",
    }
    cases = "\n".join(f"    {key}) echo {value!r} ;;" for key, value in values.items())
    script = folder / "bin" / "nest-config"
    script.write_text(
        "#!/bin/sh\n# Written by nestgrad.nest_config: correct values for the installed NEST wheel.\n"
        f'case "$1" in\n{cases}\n    *) echo "nest-config: unknown option $1" >&2; exit 1 ;;\nesac\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return folder


if __name__ == "__main__":
    print(write_nest_config(sys.argv[1] if len(sys.argv) > 1 else "nest_path"))

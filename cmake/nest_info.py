"""Print facts about the installed NEST wheel that the build needs, without starting the NEST kernel.

Usage: python nest_info.py {site|include|kernel|libs|version|abi}
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import pathlib
import subprocess
import sys


def nest_dir() -> pathlib.Path:
    spec = importlib.util.find_spec("nest")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("nest_info: the Python package 'nest' (nest-simulator) is not installed in this interpreter")
    return pathlib.Path(list(spec.submodule_search_locations)[0])


def kernel_library() -> pathlib.Path:
    lib = nest_dir() / "nestkernel_api.so"
    if not lib.exists():
        sys.exit(f"nest_info: NEST kernel library not found at {lib}")
    return lib


def cxx11_abi() -> int:
    """1 if the kernel was compiled with the new (C++11) std::string ABI, else 0: read from its exported symbols."""
    out = subprocess.run(
        ["nm", "-D", "--defined-only", str(kernel_library())], check=True, capture_output=True, text=True
    ).stdout
    return 1 if "B5cxx11" in out else 0


def main() -> None:
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    site = nest_dir().parent
    if what == "site":
        print(site)
    elif what == "include":
        print(nest_dir() / "include" / "nest")
    elif what == "kernel":
        print(kernel_library())
    elif what == "libs":
        print(site / "nest_simulator.libs")
    elif what == "version":
        print(importlib.metadata.version("nest-simulator"))
    elif what == "abi":
        print(cxx11_abi())
    else:
        sys.exit(f"nest_info: unknown query {what!r}; use site|include|kernel|libs|version|abi")


if __name__ == "__main__":
    main()

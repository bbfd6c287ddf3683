"""The environment of the tests that run NEST under ``mpirun``: the python of the MPI build of NEST (``make mpi``,
or another environment's python named by NESTGRAD_MPI_PYTHON), the environment of its processes (this checkout's
package and tests on PYTHONPATH, Open MPI allowed as root and oversubscribed) and the skip of these tests where there
is no MPI build (or NESTGRAD_SKIP_MPI=1)."""

from __future__ import annotations

import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
MPI_PYTHON = pathlib.Path(os.environ.get("NESTGRAD_MPI_PYTHON", REPO / ".venv-mpi" / "bin" / "python"))
ENV = dict(
    os.environ,
    PYTHONPATH=os.pathsep.join([str(REPO / "python"), str(REPO / "tests")]),
    OMPI_ALLOW_RUN_AS_ROOT="1",
    OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
    OMPI_MCA_rmaps_base_oversubscribe="1",
)
# a module's ``pytestmark = requires_mpi`` or a test's decorator
requires_mpi = pytest.mark.skipif(
    not MPI_PYTHON.exists() or os.environ.get("NESTGRAD_SKIP_MPI") == "1",
    reason="needs NEST with MPI (make mpi) and nestgradmodule built against it",
)

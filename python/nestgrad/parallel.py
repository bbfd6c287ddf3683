"""Communicators: what the library needs from MPI, behind one small interface.

Under ``mpirun`` NEST keeps every node and synapse on one rank, and recorders and ``GetConnections`` return
rank-local data only; the library gathers through a communicator so that user scripts never need to. Rank 0 writes
files and prints.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np


class SerialCommunicator:
    rank = 0
    size = 1

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def sum(self, array: np.ndarray) -> np.ndarray:
        """Element-wise sum over ranks (exact where at most one rank holds a non-zero value)."""
        return np.asarray(array)

    def concat(self, array: np.ndarray) -> np.ndarray:
        """Concatenation of every rank's array along axis 0, in rank order, on every rank."""
        return np.asarray(array)

    def bcast(self, obj: Any) -> Any:
        return obj

    def barrier(self) -> None:
        pass


class MPICommunicator(SerialCommunicator):
    def __init__(self) -> None:
        from mpi4py import MPI

        self._comm = MPI.COMM_WORLD
        self.rank = self._comm.Get_rank()
        self.size = self._comm.Get_size()
        if self.size > 1 and sys.excepthook is sys.__excepthook__:
            sys.excepthook = _abort_on_uncaught_exception

    def sum(self, array: np.ndarray) -> np.ndarray:
        array = np.ascontiguousarray(array, dtype=float)
        out = np.empty_like(array)
        from mpi4py import MPI

        self._comm.Allreduce(array, out, op=MPI.SUM)
        return out

    def concat(self, array: np.ndarray) -> np.ndarray:
        parts = self._comm.allgather(np.asarray(array))
        return np.concatenate(parts) if parts else np.asarray(array)

    def bcast(self, obj: Any) -> Any:
        return self._comm.bcast(obj, root=0)

    def barrier(self) -> None:
        self._comm.Barrier()


def communicator(nest: Any) -> SerialCommunicator:
    """The communicator matching the running NEST: MPI if it runs in more than one process."""
    n = nest.num_processes if hasattr(nest, "num_processes") else nest.NumProcesses()
    return MPICommunicator() if n > 1 else SerialCommunicator()


def world() -> tuple[int, int]:
    """(rank, size) of this MPI job if MPI is in use (NEST imported mpi4py's MPI), else (0, 1)."""
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is None or not mpi.Is_initialized() or mpi.Is_finalized():
        return 0, 1
    return mpi.COMM_WORLD.Get_rank(), mpi.COMM_WORLD.Get_size()


def abort_job(code: int) -> None:
    """End every rank of the MPI job now (the message was printed before)."""
    from mpi4py import MPI

    sys.stdout.flush()
    sys.stderr.flush()
    MPI.COMM_WORLD.Abort(code)


def _abort_on_uncaught_exception(exc_type: Any, exc: Any, tb: Any) -> None:
    """sys.excepthook under MPI: print the traceback, then end the whole job; otherwise the other ranks would wait
    in their next collective call forever."""
    sys.__excepthook__(exc_type, exc, tb)
    abort_job(1)

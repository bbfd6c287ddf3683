"""Where inner runs execute: local processes (``concurrent.futures``) or SLURM jobs (``submitit``).

Every inner run gets a fresh process: NEST's kernel is one per process and a run must not inherit another's. Both
pools have the same small interface: :meth:`submit` a batch of jobs, :meth:`wait` until at least one has finished,
:meth:`result` of a finished one (a dictionary, never an exception: a failed run returns ``error`` and
``error_class``).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import ctypes
import multiprocessing
import os
import pathlib
import signal
import sys
import threading
import time
import traceback
from typing import Any

from nestgrad.errors import ConfigError
from nestgrad.meta.config import ExecutorConfig, resolve
from nestgrad.meta.inner import InnerJob

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def run_job(inner: str, job: InnerJob, log: bool = True) -> dict[str, Any]:
    """Run one inner job with the function ``inner`` names; its output goes to ``<out_dir>/inner.log`` (``log``).
    Returns the function's dictionary plus ``seconds`` (wall-clock), or ``error_class`` and ``error``."""
    os.environ.setdefault("PYNEST_QUIET", "1")  # NEST's banner, once per process
    pathlib.Path(job.out_dir).mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if log:  # this process runs one job: its stdout and stderr (NEST's too) go to the job's log
            fd = os.open(pathlib.Path(job.out_dir) / "inner.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            stack.callback(os.close, fd)
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(fd, 1)
            os.dup2(fd, 2)
        try:
            result = dict(resolve(inner)(job))
        except Exception as err:
            from nestgrad.errors import NestgradError

            kind = type(err).__name__ if isinstance(err, NestgradError) else "bug"
            text = str(err) if kind != "bug" else traceback.format_exc()
            result = {"error_class": kind, "error": text}
    result["seconds"] = time.perf_counter() - t0
    return result


def _die_with_parent(outer_pid: int) -> None:
    """Worker initializer: this worker ends when the outer loop's process ``outer_pid`` does (also by SIGKILL), so a
    killed outer loop leaves no inner runs behind that would hold their folders' locks when it resumes. The kernel
    kills it when its parent (the fork server) dies; a watchdog thread checks the outer loop itself every 0.2 s
    (between NEST's calls: a simulation step in C++ finishes first)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)

    def watch() -> None:
        while True:
            time.sleep(0.2)
            try:
                os.kill(outer_pid, 0)
            except ProcessLookupError:
                os.kill(os.getpid(), signal.SIGKILL)
            except PermissionError:  # alive, another user's process cannot be: keep going
                pass

    threading.Thread(target=watch, daemon=True).start()


def fresh_process_context() -> multiprocessing.context.BaseContext:
    """Worker processes forked from a fork server: a clean process started once (it imports this module and
    nothing of NEST), so each inner run starts in milliseconds and inherits no kernel. The fork server ends when
    the outer loop's process does, and its workers with it (:func:`_die_with_parent`)."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["nestgrad.meta.executors"])
    return ctx


class LocalPool:
    """``workers`` processes on this machine; each inner run in a fresh process (``max_tasks_per_child=1``, forked
    from a fork server that never imports NEST: no NEST state is inherited)."""

    def __init__(self, inner: str, workers: int):
        self.inner = inner
        self.workers = workers
        self._pool = cf.ProcessPoolExecutor(
            max_workers=workers,
            mp_context=fresh_process_context(),
            initializer=_die_with_parent,
            initargs=(os.getpid(),),
            max_tasks_per_child=1,
        )

    @property
    def in_flight_limit(self) -> int:
        return self.workers

    def submit(self, jobs: list[InnerJob]) -> list[Any]:
        return [self._pool.submit(run_job, self.inner, job) for job in jobs]

    def wait(self, handles: list[Any]) -> list[Any]:
        done, _ = cf.wait(handles, return_when=cf.FIRST_COMPLETED)
        return [h for h in handles if h in done]

    def result(self, handle: Any) -> dict[str, Any]:
        try:
            return handle.result()
        except cf.process.BrokenProcessPool as err:  # a worker was killed (out of memory, a crash of NEST)
            return {"error_class": "bug", "error": f"the worker process died: {err}", "seconds": 0.0}

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def submitit_parameters(cfg: ExecutorConfig, threads: int) -> dict[str, Any]:
    """The parameters of submitit's ``AutoExecutor.update_parameters`` for the executor configuration: shared ones
    (time, memory and CPUs per inner run) and SLURM's (``slurm_*``, ignored by other clusters). ``threads`` is the
    inner configuration's ``training.threads`` (the default of ``cpus_per_task``)."""
    params: dict[str, Any] = {
        "name": "nestgrad-meta",
        "timeout_min": cfg.timeout_min,
        "mem_gb": cfg.mem_gb,
        "cpus_per_task": cfg.cpus_per_task or threads,
        "nodes": 1,
        "tasks_per_node": 1,
        "slurm_array_parallelism": cfg.workers,
    }
    if cfg.partition:
        params["slurm_partition"] = cfg.partition
    if cfg.account:
        params["slurm_account"] = cfg.account
    if cfg.setup:
        params["slurm_setup"] = list(cfg.setup)
    if cfg.additional:
        params["slurm_additional_parameters"] = dict(cfg.additional)
    return params


class SubmititPool:
    """Inner runs as submitit jobs: ``cluster="slurm"`` submits to SLURM (one job array per batch), ``"local"`` runs
    them as local processes with submitit's LocalExecutor (same code path; what the tests use)."""

    def __init__(self, inner: str, cfg: ExecutorConfig, threads: int, folder: pathlib.Path, cluster: str):
        import submitit

        self.inner = inner
        self.cfg = cfg
        self.cluster = cluster
        try:
            self.executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
            self.executor.update_parameters(**submitit_parameters(cfg, threads))
        except (RuntimeError, ValueError, NameError, AssertionError) as err:  # no srun, a bad sbatch option
            raise ConfigError(f"meta.executor (kind = {cfg.kind!r}): submitit refused: {err}") from None

    @property
    def in_flight_limit(self) -> int:
        # SLURM limits the array itself (array parallelism); submitit's LocalExecutor starts whatever it gets
        return 1_000_000 if self.cluster == "slurm" else self.cfg.workers

    def submit(self, jobs: list[InnerJob]) -> list[Any]:
        if not jobs:
            return []
        with self.executor.batch():
            handles = [self.executor.submit(run_job, self.inner, job, False) for job in jobs]
        return handles

    def wait(self, handles: list[Any]) -> list[Any]:
        while True:
            done = [h for h in handles if h.done()]
            if done:
                return done
            time.sleep(self.cfg.poll_s)

    def result(self, handle: Any) -> dict[str, Any]:
        try:
            return handle.result()
        except Exception as err:  # submitit's FailedJobError, UncompletedJobError (timeout, preemption, ...)
            return {"error_class": "bug", "error": f"job {handle.job_id} failed: {err}", "seconds": 0.0}

    def shutdown(self) -> None:
        pass


def make_pool(inner: str, cfg: ExecutorConfig, threads: int, folder: pathlib.Path) -> LocalPool | SubmititPool:
    """The pool of the executor configuration (``meta.executor.kind``); submitit's files go to ``folder``."""
    if cfg.kind == "local":
        return LocalPool(inner, cfg.workers)
    return SubmititPool(inner, cfg, threads, folder, "slurm" if cfg.kind == "slurm" else "local")

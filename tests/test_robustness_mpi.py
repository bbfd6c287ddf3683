"""Failures of one MPI rank end the whole job promptly with the message, and the last checkpoint stays whole
(issue 19, item 1). Runs ``mpirun -np 2`` with the MPI environment .venv-mpi, like tests/test_mpi.py.

Each driver script makes one rank fail at a chosen moment (monkeypatching, nothing in the library is test-only),
and the test requires both ranks to exit within seconds: before the fix rank 1 waited at a barrier forever.
"""

from __future__ import annotations

import pathlib
import subprocess
import textwrap
import time

import numpy as np
import pytest
from test_mpi import ENV, MPI_PYTHON, REPO, pytestmark  # noqa: F401 (pytestmark: the same skip condition)

CONFIG = """
[network]
n_rec = 20
[task]
sequence_steps = 100
[training]
iterations = {iterations}
checkpoint_every = 2
plot = false
"""


def write_config(path: pathlib.Path, iterations: int) -> pathlib.Path:
    path.write_text(CONFIG.format(iterations=iterations))
    return path


# rank 0's second checkpoint write fails as on a full disk (fsync of the checkpoint's file: every version of the
# writer calls it), then the CLI runs as usual
FULL_DISK = """
import errno, os, sys
from nestgrad import cli

real_fsync = os.fsync
count = {"n": 0}

def fsync(fd):
    try:
        name = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        name = ""
    if "checkpoint.npz" in name:
        count["n"] += 1
        if count["n"] > 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    real_fsync(fd)

os.fsync = fsync
sys.exit(cli.main(["train", sys.argv[1], "--out", sys.argv[2]]))
"""

# one rank fails in the middle of a block, where no rank expects it: {error} on rank {rank} in its 2nd block
ONE_RANK_FAILS = """
import sys
from nestgrad import cli, errors
from nestgrad.training.trainer import Trainer

original = Trainer._run_segment

def run_segment(self, batches):
    if self.iteration >= 2 and self.comm.rank == {rank}:
        raise {error}
    original(self, batches)

Trainer._run_segment = run_segment
sys.exit(cli.main(["train", sys.argv[1], "--out", sys.argv[2]]))
"""


def mpirun(script: pathlib.Path, *args: str, timeout: float = 120) -> tuple[subprocess.CompletedProcess, float]:
    cmd = ["mpirun", "-np", "2", "--oversubscribe", "--bind-to", "none", str(MPI_PYTHON), str(script), *args]
    t0 = time.perf_counter()
    result = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=timeout)
    return result, time.perf_counter() - t0


def checkpoint_iteration(folder: pathlib.Path) -> int:
    import json

    with np.load(folder / "checkpoint.npz") as data:
        meta = json.loads(str(data["meta"]))
        assert all(np.all(np.isfinite(data[k])) for k in data.files if k.startswith("w_"))
    return int(meta["iteration"])


def serial_seconds(cfg: pathlib.Path, out: pathlib.Path) -> float:
    """How long the same training takes without a failure (the job's start-up included)."""
    t0 = time.perf_counter()
    subprocess.run(
        ["mpirun", "-np", "2", "--oversubscribe", "--bind-to", "none", str(MPI_PYTHON), "-m", "nestgrad", "train"]
        + [str(cfg), "--out", str(out)],
        cwd=REPO,
        env=ENV,
        capture_output=True,
        check=True,
        timeout=300,
    )
    return time.perf_counter() - t0


def test_rank0_disk_failure_ends_every_rank_with_the_message(tmp_path):
    cfg = write_config(tmp_path / "c.toml", iterations=6)
    script = tmp_path / "full_disk.py"
    script.write_text(FULL_DISK)
    result, seconds = mpirun(script, str(cfg), str(tmp_path / "run"))
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.count("the disk is full") == 1, result.stderr[-3000:]  # rank 0 prints, once
    assert "the previous checkpoint.npz is unchanged" in result.stderr
    assert checkpoint_iteration(tmp_path / "run") == 2  # the first block's checkpoint, whole
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.endswith(".tmp")]
    # promptly: not slower than a whole successful run of the same configuration plus a margin
    assert seconds < serial_seconds(cfg, tmp_path / "ok") + 30, seconds


@pytest.mark.parametrize(
    "rank, error, message",
    [
        (1, "RuntimeError('rank 1 broke')", "rank 1 broke"),  # a bug on one rank: traceback, then MPI_Abort
        (1, "errors.ResourceError('rank 1 ran out of memory')", "rank 1 ran out of memory"),  # a user error
        (0, "RuntimeError('rank 0 broke')", "rank 0 broke"),
    ],
)
def test_error_on_one_rank_mid_block_ends_the_job(tmp_path, rank, error, message):
    cfg = write_config(tmp_path / "c.toml", iterations=6)
    script = tmp_path / "fail.py"
    script.write_text(textwrap.dedent(ONE_RANK_FAILS.format(rank=rank, error=error)))
    result, seconds = mpirun(script, str(cfg), str(tmp_path / "run"))
    assert result.returncode != 0
    assert message in result.stderr, result.stderr[-3000:]
    assert checkpoint_iteration(tmp_path / "run") == 2
    assert seconds < 60, seconds

"""Training under MPI (NEST built with MPI, `make mpi`): rank-split independence, checkpoints across rank counts,
and a rank killed mid-run.

These run ``mpirun`` with the MPI environment .venv-mpi. `make test` builds it first (NEST with MPI is compiled
once, about 20 minutes, and cached outside the repository).
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import textwrap

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
MPI_PYTHON = REPO / ".venv-mpi" / "bin" / "python"

pytestmark = pytest.mark.skipif(
    not MPI_PYTHON.exists() or os.environ.get("NESTGRAD_SKIP_MPI") == "1",
    reason="needs the MPI environment: run `make mpi` (make test does)",
)

ENV = dict(
    os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_rmaps_base_oversubscribe="1"
)
CONFIG = """
[network]
neuron_model = "eprop_iaf_psc_exp"
n_rec = 40
gradient_algorithm = "{algorithm}"
[task]
name = "sine"
sequence_steps = 400
[optimizer]
type = "{optimizer}"
eta = {eta}
[training]
iterations = {iterations}
checkpoint_every = 2
threads = {threads}
plot = false
"""


def write_config(
    path: pathlib.Path,
    threads: int,
    iterations: int = 4,
    optimizer: str = "gradient_descent",
    eta: float = 1e-5,
    algorithm: str = "step",
    average: int = 0,
) -> pathlib.Path:
    text = CONFIG.format(threads=threads, iterations=iterations, optimizer=optimizer, eta=eta, algorithm=algorithm)
    path.write_text(text + (f"average_weights_last = {average}\n" if average else ""))
    return path


def run(ranks: int, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [str(MPI_PYTHON), *args]
    if ranks > 1:
        cmd = ["mpirun", "-np", str(ranks), "--oversubscribe", "--bind-to", "none", *cmd]
    result = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def checkpoint(folder: pathlib.Path) -> tuple[dict[str, np.ndarray], list[float]]:
    import json

    with np.load(folder / "checkpoint.npz") as data:
        weights = {k: data[k] for k in data.files if k.startswith(("w_", "opt_", "avg_"))}
        history = json.loads(str(data["meta"]))["history"]
    return weights, [h["loss"] for h in history]


@pytest.mark.parametrize(
    "optimizer, eta, algorithm",
    [("gradient_descent", 1e-5, "step"), ("adam", 1e-6, "step"), ("adam", 1e-6, "event")],
)
def test_same_virtual_processes_give_bit_identical_training(tmp_path, optimizer, eta, algorithm):
    """(1 rank x 2 threads) and (2 ranks x 1 thread): total_num_virtual_procs = 2 in both; also with
    eprop_event_synapse, whose history store is per thread; the mean weights (training.average_weights_last) too."""
    same = dict(optimizer=optimizer, eta=eta, algorithm=algorithm, average=4)
    cfg1 = write_config(tmp_path / "t2.toml", threads=2, **same)
    cfg2 = write_config(tmp_path / "t1.toml", threads=1, **same)
    run(1, "-m", "nestgrad", "train", str(cfg1), "--out", str(tmp_path / "threads"))
    out = run(2, "-m", "nestgrad", "train", str(cfg2), "--out", str(tmp_path / "ranks"))
    assert out.stdout.count("iteration    4/4") == 1, "only rank 0 prints"
    w_threads, loss_threads = checkpoint(tmp_path / "threads")
    w_ranks, loss_ranks = checkpoint(tmp_path / "ranks")
    assert loss_threads == loss_ranks
    for key in w_threads:
        np.testing.assert_array_equal(w_threads[key], w_ranks[key], err_msg=key)
    assert any(np.abs(w).max() > 0 for k, w in w_ranks.items() if k.startswith("w_"))
    assert {"avg_in_rec", "avg_rec_rec", "avg_rec_out"} <= set(w_ranks)  # the mean of iterations 2 and 4
    assert not np.array_equal(w_ranks["avg_rec_out"], w_ranks["w_rec_out"])
    if algorithm == "event" and optimizer == "adam":  # the event synapses' Adam powers, written under MPI in block 2
        assert {"opt_b1_in_rec", "opt_b2_rec_rec"} <= set(w_ranks) and w_ranks["opt_b2_in_rec"].min() < 1.0


def test_checkpoint_resumes_with_another_rank_count(tmp_path):
    full = write_config(tmp_path / "full.toml", threads=1, iterations=4)
    run(2, "-m", "nestgrad", "train", str(full), "--out", str(tmp_path / "full"))
    half = write_config(tmp_path / "half.toml", threads=1, iterations=2)
    run(2, "-m", "nestgrad", "train", str(half), "--out", str(tmp_path / "part"))
    # resume the 2-rank checkpoint with 1 rank x 2 threads: same number of virtual processes
    resume = write_config(tmp_path / "resume.toml", threads=2, iterations=4)
    run(1, "-m", "nestgrad", "train", str(resume), "--out", str(tmp_path / "part"), "--resume")
    w_full, loss_full = checkpoint(tmp_path / "full")
    w_part, loss_part = checkpoint(tmp_path / "part")
    assert loss_part == loss_full
    for key in w_full:
        np.testing.assert_array_equal(w_part[key], w_full[key], err_msg=key)


def test_killed_rank_leaves_last_checkpoint_intact_and_resumable(tmp_path):
    script = tmp_path / "crash.py"
    script.write_text(
        textwrap.dedent("""
        import os, sys
        from nestgrad.config import ExperimentConfig
        from nestgrad.training.trainer import Trainer

        cfg = ExperimentConfig.from_toml(sys.argv[1])
        trainer = Trainer(cfg, sys.argv[2], verbose=False)
        original = trainer._run_block

        def run_block(n):
            if trainer.iteration >= 2 and trainer.comm.rank == 1:
                os._exit(9)  # rank 1 dies in the middle of the run, after the first checkpoint
            original(n)

        trainer._run_block = run_block
        trainer.run()
    """)
    )
    cfg = write_config(tmp_path / "c.toml", threads=1, iterations=4)
    crashed = run(2, str(script), str(cfg), str(tmp_path / "run"), check=False)
    assert crashed.returncode != 0
    w_crash, loss_crash = checkpoint(tmp_path / "run")  # loads: the checkpoint is whole
    assert len(loss_crash) == 2
    assert not list((tmp_path / "run").glob("*.tmp"))
    run(2, "-m", "nestgrad", "train", str(cfg), "--out", str(tmp_path / "run"), "--resume")
    run(2, "-m", "nestgrad", "train", str(cfg), "--out", str(tmp_path / "ref"))
    w_res, loss_res = checkpoint(tmp_path / "run")
    w_ref, loss_ref = checkpoint(tmp_path / "ref")
    assert loss_res == loss_ref
    for key in w_ref:
        np.testing.assert_array_equal(w_res[key], w_ref[key], err_msg=key)


def test_install_loads_the_mpi_module_under_mpirun(tmp_path: pathlib.Path):
    # each rank writes its own file: the two ranks' stdout lines interleaved once on a loaded machine
    code = (
        "import sys, nest, nestgrad; n = len(nestgrad.install()); "
        "open(f'{sys.argv[1]}/rank{nest.Rank()}.txt', 'w').write(f'{n} {nest.num_processes}')"
    )
    run(2, "-c", code, str(tmp_path))
    import nestgrad

    found = sorted(p.name for p in tmp_path.glob("rank*.txt"))
    assert found == ["rank0.txt", "rank1.txt"]
    for name in found:
        assert (tmp_path / name).read_text() == f"{len(nestgrad.model_names())} 2", name

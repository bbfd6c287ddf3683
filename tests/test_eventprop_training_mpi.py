"""EventProp through the Trainer on several MPI ranks (issue 20, items 6 and 7): ``nestgrad train`` of a small
recurrent eventprop configuration (Adam, Dale's law, a bounded readout projection) on 2 ranks x 1 thread gives the
same weights, Adam moments, metrics and checkpoints, bit for bit, as on 1 rank x 2 threads (the same virtual
processes), and so does evaluation; a 2-rank run stopped after its first checkpoint and resumed (on 2 ranks, or on
1 rank x 2 threads) equals the uninterrupted run. Only rank 0 prints and writes.

Needs NEST built with MPI and nestgradmodule built against it (``make mpi``; NESTGRAD_MPI_PYTHON names another
environment's python).
"""

from __future__ import annotations

import json
import pathlib
import subprocess

import numpy as np
import test_eventprop_nest_mpi
from test_eventprop_nest_mpi import ENV, MPI_PYTHON, REPO

# the MPI environment (python, PYTHONPATH, Open MPI as root) and skip of the other EventProp MPI tests
pytestmark = test_eventprop_nest_mpi.pytestmark

CONFIG = """
[network]
architecture = "eventprop"
neuron_model = "eventprop_iaf_psc_exp_ps"
seed = 3

[network.params]
n_hidden = 10
recurrent = true
w_in_mean = 0.5
w_in_std = 0.3
w_rec_std = 0.1
dale = true
inhibitory_fraction = 0.3
w_out_min = -0.5
w_out_max = 0.5
w_out_mean = 0.1
w_out_std = 0.1

[task]
name = "digits_latency"
resolution = 0.5
batch_size = 3
params = {{ side = 8 }}

[optimizer]
type = "adam"
eta = 0.02

[training]
iterations = {iterations}
checkpoint_every = 2
threads = {threads}
plot = {plot}
"""


def write_config(path: pathlib.Path, threads: int, iterations: int = 4, plot: bool = False) -> pathlib.Path:
    path.write_text(CONFIG.format(threads=threads, iterations=iterations, plot=str(plot).lower()))
    return path


def train(ranks: int, config: pathlib.Path, out: pathlib.Path, *extra: str, command: str = "train") -> str:
    cmd = [str(MPI_PYTHON), "-m", "nestgrad", command, str(config), "--out", str(out), *extra]
    if ranks > 1:
        cmd = ["mpirun", "-np", str(ranks), "--oversubscribe", "--bind-to", "none", *cmd]
    res = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, f"{' '.join(cmd)} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res.stdout


def checkpoint(folder: pathlib.Path) -> tuple[dict[str, np.ndarray], list[dict]]:
    with np.load(folder / "checkpoint.npz") as data:
        arrays = {k: data[k] for k in data.files if k.startswith(("w_", "opt_"))}
        history = json.loads(str(data["meta"]))["history"]
    return arrays, history


def assert_same_run(a: pathlib.Path, b: pathlib.Path) -> None:
    wa, ha = checkpoint(a)
    wb, hb = checkpoint(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        np.testing.assert_array_equal(wa[key], wb[key], err_msg=key)
    for x, y in zip(ha, hb, strict=True):
        assert {k: v for k, v in x.items() if k != "seconds"} == {k: v for k, v in y.items() if k != "seconds"}
    assert (a / "metrics.csv").read_text() == (b / "metrics.csv").read_text()


def test_eventprop_training_two_ranks_equals_two_threads(tmp_path: pathlib.Path) -> None:
    threads = train(1, write_config(tmp_path / "t2.toml", threads=2), tmp_path / "threads")
    ranks = train(2, write_config(tmp_path / "r2.toml", threads=1, plot=True), tmp_path / "ranks")
    assert ranks.count("iteration    4/4") == 1, "only rank 0 prints"
    assert threads.count("iteration    4/4") == 1
    assert_same_run(tmp_path / "threads", tmp_path / "ranks")
    w, history = checkpoint(tmp_path / "ranks")
    assert set(w) == {f"w_{p}" for p in ("in_hid", "hid_hid", "hid_out")} | {
        f"opt_{m}_{p}" for m in "mv" for p in ("in_hid", "hid_hid", "hid_out")
    }
    assert len(history) == 4 and all(np.isfinite(h["loss"]) and h["rate_hz"] > 0 for h in history)
    # Dale's law held by both runs' weights: the last 3 of 10 hidden neurons inhibitory; the readout bounds too
    src = np.divmod(np.arange(10 * 10), 10)
    rec_src = src[0][src[0] != src[1]]
    inh_rec = rec_src >= 7
    assert np.all(w["w_in_hid"] >= 0)
    assert np.all(w["w_hid_hid"][inh_rec] <= 0) and np.all(w["w_hid_hid"][~inh_rec] >= 0)
    out_src = np.arange(10 * 10) // 10
    assert np.all(w["w_hid_out"][out_src >= 7] <= 0) and np.all(w["w_hid_out"][out_src < 7] >= 0)
    assert np.all(np.abs(w["w_hid_out"]) <= 0.5)
    assert np.any(w["w_hid_hid"] == 0.0) or np.any(w["w_in_hid"] == 0.0), "no weight was held at 0"
    assert (tmp_path / "ranks" / "raster.png").exists() and (tmp_path / "ranks" / "loss.png").exists()
    assert not list((tmp_path / "ranks").glob("*.tmp"))
    # evaluation with learning off (test split) on 2 ranks equals the 2-thread one
    for ranks, folder, cfg in ((1, "threads", "t2.toml"), (2, "ranks", "r2.toml")):
        train(ranks, tmp_path / cfg, tmp_path / folder, "--batches", "2", command="evaluate")
    ev_threads = json.loads((tmp_path / "threads" / "evaluation.json").read_text())
    ev_ranks = json.loads((tmp_path / "ranks" / "evaluation.json").read_text())
    assert ev_threads == ev_ranks and ev_ranks["trials"] == 6


def test_eventprop_two_rank_checkpoint_resumes_bit_identically(tmp_path: pathlib.Path) -> None:
    train(2, write_config(tmp_path / "full.toml", threads=1), tmp_path / "full")
    train(2, write_config(tmp_path / "half.toml", threads=1, iterations=2), tmp_path / "part")
    train(2, write_config(tmp_path / "rest.toml", threads=1), tmp_path / "part", "--resume")
    assert_same_run(tmp_path / "full", tmp_path / "part")
    # and the 2-rank checkpoint resumed by 1 rank x 2 threads (the same virtual processes)
    train(2, write_config(tmp_path / "half2.toml", threads=1, iterations=2), tmp_path / "mixed")
    train(1, write_config(tmp_path / "rest2.toml", threads=2), tmp_path / "mixed", "--resume")
    assert_same_run(tmp_path / "full", tmp_path / "mixed")

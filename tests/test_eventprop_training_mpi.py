"""EventProp through the Trainer on several MPI ranks (issue 20, items 6 and 7): ``nestgrad train`` of a small
recurrent eventprop configuration (Adam, Dale's law, a bounded readout projection) on 2 ranks x 1 thread gives the
same weights, Adam moments, metrics and checkpoints, bit for bit, as on 1 rank x 2 threads (the same virtual
processes), and so does evaluation; a 2-rank run stopped after its first checkpoint and resumed (on 2 ranks, or on
1 rank x 2 threads) equals the uninterrupted run. Only rank 0 prints and writes. Weight bumping of silent spiking
outputs (``weight_bump``, Yin-Yang) on 2 ranks raises the weights into them by the bump and trains bit-identically.

Needs NEST built with MPI and nestgradmodule built against it (``make mpi``; NESTGRAD_MPI_PYTHON names another
environment's python).
"""

from __future__ import annotations

import json
import pathlib
import subprocess

import numpy as np
from mpi_env import ENV, MPI_PYTHON, REPO, requires_mpi

pytestmark = requires_mpi

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
        f"opt_{m}_{p}" for m in ("m", "v", "b1", "b2") for p in ("in_hid", "hid_hid", "hid_out")
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


BUMP_CONFIG = """
[network]
architecture = "eventprop"
neuron_model = "eventprop_iaf_psc_exp_ps"
seed = 7

[network.params]
n_hidden = 10
output = "spiking"
loss = "first_spike"
bias_time = 4.5
w_in_mean = 1.5
w_in_std = 0.8
w_out_mean = 0.1
w_out_std = 0.3
weight_bump = {bump}
hidden = {{ C_m = 5.0, tau_m = 5.0, tau_syn = 5.0, V_th = 1.0, t_ref = 20.0 }}
output_neuron = {{ C_m = 5.0, tau_m = 5.0, tau_syn = 5.0, V_th = 1.0, t_ref = 20.0 }}

[task]
name = "yinyang"
resolution = 1.0
batch_size = 4

[optimizer]
type = "adam"
eta = 0.01

[training]
iterations = {iterations}
checkpoint_every = {iterations}
threads = {threads}
plot = false
"""
BUMP = 0.1  # pA
N_OUT, N_HID = 3, 10


def write_bump_config(path: pathlib.Path, threads: int, iterations: int, bump: float = BUMP) -> pathlib.Path:
    path.write_text(BUMP_CONFIG.format(threads=threads, iterations=iterations, bump=bump))
    return path


def test_eventprop_weight_bumping_on_two_ranks_equals_two_threads(tmp_path: pathlib.Path) -> None:
    """Weight bumping (``weight_bump``) with the output layer's connections spread over 2 ranks: every rank raises
    the weights (both copies) of the edges into the silent outputs that it holds (``add_to_weights_into``'s per-rank
    path). After 1 iteration the weights into the outputs silent in the first batch differ from those of the same run
    without bumping by the bump, and only these (the batch's gradients, seen before the bump, and Adam's moments are
    the same); after 3 iterations of bumping the weights, Adam moments and metrics of 2 ranks x 1 thread equal those
    of 1 rank x 2 threads and of 1 rank x 1 thread bit for bit. The bump is large enough that bumped outputs spike in
    the later batches, so a reverse copy left unbumped on a rank would change those batches' gradients (checked: it
    fails this test, as does a rank that skips its bump)."""
    train(2, write_bump_config(tmp_path / "r1.toml", threads=1, iterations=1), tmp_path / "bumped")
    train(1, write_bump_config(tmp_path / "n1.toml", threads=2, iterations=1, bump=0.0), tmp_path / "unbumped")
    bumped, history = checkpoint(tmp_path / "bumped")
    unbumped, _ = checkpoint(tmp_path / "unbumped")
    silent = int(history[0]["silent_outputs"])
    assert 0 < silent < N_OUT, f"{silent} silent outputs in the first batch: the test needs some, not all"
    assert bumped.keys() == unbumped.keys()
    for key in bumped:
        if not key.endswith("_out") or key.startswith("opt_"):
            np.testing.assert_array_equal(bumped[key], unbumped[key], err_msg=key)
    raised = None
    for name, n_src in (("hid_out", N_HID), ("bias_out", 1)):
        diff = (bumped[f"w_{name}"] - unbumped[f"w_{name}"]).reshape(n_src, N_OUT)  # source-major edge order
        into = np.abs(diff).max(axis=0) > 0
        raised = into if raised is None else raised
        np.testing.assert_array_equal(into, raised, err_msg=name)  # the same outputs bumped in both projections
        # the bump itself, up to the rounding of (w + bump) - step against w - step
        np.testing.assert_allclose(diff[:, into], BUMP, rtol=0, atol=1e-12, err_msg=name)
        np.testing.assert_array_equal(diff[:, ~into], 0.0, err_msg=name)
    assert raised is not None and int(raised.sum()) == silent
    # outputs 0 and 1 are consecutive nodes, which NEST places on different ranks: both ranks' bumps are checked
    assert raised[0] and raised[1], f"silent outputs {np.flatnonzero(raised)}: the test needs 0 and 1 (seed 7)"

    train(1, write_bump_config(tmp_path / "p3.toml", threads=1, iterations=3), tmp_path / "serial")
    train(1, write_bump_config(tmp_path / "t3.toml", threads=2, iterations=3), tmp_path / "threads")
    out = train(2, write_bump_config(tmp_path / "r3.toml", threads=1, iterations=3), tmp_path / "ranks")
    assert out.count("iteration    3/3") == 1, "only rank 0 prints"
    assert_same_run(tmp_path / "threads", tmp_path / "ranks")
    assert_same_run(tmp_path / "serial", tmp_path / "ranks")
    _, history = checkpoint(tmp_path / "ranks")
    silent_per_batch = [h["silent_outputs"] for h in history]
    # a bumped output spikes in every trial of a later batch, so that its reverse copies carry adjoints there
    assert silent_per_batch[0] > 0 and min(silent_per_batch[1:]) < silent_per_batch[0], silent_per_batch


GOELTZ_EXTRA = """weight_bump_doubling = true
weight_bump_skips_step = true
weight_bump_hidden_missing = 0.3
max_trial_gradient = {limit}
"""


def write_goeltz_config(path: pathlib.Path, threads: int, limit: float) -> pathlib.Path:
    text = (
        BUMP_CONFIG.format(threads=threads, iterations=10, bump=0.1)
        .replace("w_in_mean = 1.5", "w_in_mean = 0.6")
        .replace("weight_bump = 0.1\n", "weight_bump = 0.1\n" + GOELTZ_EXTRA.format(limit=limit))
    )
    path.write_text(text)
    return path


def test_eventprop_goeltz_protocol_on_two_ranks_equals_two_threads(tmp_path: pathlib.Path) -> None:
    """Göltz et al.'s training protocol over MPI: hidden and output bumping with doubling, bumped batches that take no
    step (``discard_batch`` on the connections of every rank), and per-trial gradient clipping whose verdicts reach
    reverse copies on the other rank. 10 iterations of Adam (hidden bumps, output bumps and steps): 2 ranks x 1
    thread == 1 rank x 2 threads == 1 x 1, bit for bit (weights, moments, powers, metrics); and the clipping limit
    changes the result (it dropped trials)."""
    limit = 0.05
    train(1, write_goeltz_config(tmp_path / "p.toml", threads=1, limit=limit), tmp_path / "serial")
    train(1, write_goeltz_config(tmp_path / "t.toml", threads=2, limit=limit), tmp_path / "threads")
    train(2, write_goeltz_config(tmp_path / "r.toml", threads=1, limit=limit), tmp_path / "ranks")
    assert_same_run(tmp_path / "threads", tmp_path / "ranks")
    assert_same_run(tmp_path / "serial", tmp_path / "ranks")
    train(1, write_goeltz_config(tmp_path / "u.toml", threads=1, limit=1e9), tmp_path / "unclipped")
    clipped, _ = checkpoint(tmp_path / "ranks")
    unclipped, _ = checkpoint(tmp_path / "unclipped")
    assert any(not np.array_equal(clipped[k], unclipped[k]) for k in clipped if k.startswith("w_"))

"""The V1 column benchmark (scaling_runs/bench_v1.py): its EventProp case times NEST's phases by cutting Simulate,
which must not change what the learner computes, and the command line runs static, e-prop and EventProp side by side
on a tiny column."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
BENCH = REPO / "scaling_runs" / "bench_v1.py"
sys.path.insert(0, str(REPO / "scaling_runs"))

import bench_v1 as bench  # noqa: E402

N_TINY = 400  # neurons: the shipped EventProp configuration's column (2 pools of 15 L5 excitatory neurons need it)


def _train_one_batch(timed: bool) -> tuple[dict, dict, np.ndarray, bench.PhaseTimer | None]:
    """Initial and trained weights, the readouts' values and the timer of one EventProp batch of 2 trials."""
    import nest

    from nestgrad.config import OptimizerConfig
    from nestgrad.nest_engine import fresh_kernel
    from nestgrad.networks.v1 import V1Network
    from nestgrad.networks.v1_eventprop import make_v1_eventprop_learner

    optimizer = OptimizerConfig(type="adam", eta=0.05, batch_size=1, Wmin=-1e4, Wmax=1e4, sign_constrained=True)
    net = V1Network(bench.column_config(N_TINY, "eventprop"), optimizer, n_out=2, resolution=1.0)
    task = bench._task(net, 2 * bench.TRIAL_MS)
    learner = make_v1_eventprop_learner(net, task, 1.0)
    fresh_kernel(1.0, 1)
    initial = learner.initial_weights(1)
    learner.build(nest, initial, record_neurons=0)
    timer = bench.PhaseTimer(nest, lambda: learner.built.layout) if timed else None
    runs = list(learner.simulate(timer or nest, [task.batch(0)], 1.0))
    return initial, learner.read_weights(nest), runs[0][1].y, timer


def test_cutting_simulate_into_phases_changes_nothing():
    """The same batch (2 trials) trained with one Simulate per batch and with Simulate cut at every phase boundary:
    identical readouts and identical weights after Adam's step (bit for bit: NEST computes the same steps), and the
    cuts cover exactly the simulated time (the trials' periods and the one that applies the step)."""
    initial, plain_w, plain_y, _ = _train_one_batch(timed=False)
    _, cut_w, cut_y, timer = _train_one_batch(timed=True)
    assert np.array_equal(plain_y, cut_y)
    assert plain_w.keys() == cut_w.keys()
    for key in plain_w:
        assert np.array_equal(plain_w[key], cut_w[key]), key
    assert all(not np.array_equal(plain_w[k], initial[k]) for k in plain_w)  # Adam's step moved every projection
    lay = timer.layout()
    assert abs(timer.now - (lay.sim_time + lay.period)) < 1e-9  # ms; sums of the cuts' lengths (floats)
    assert set(timer.seconds) == {"prepare", "forward", "exchange", "backward", "flush", "apply"}


def test_command_line_runs_static_eprop_and_eventprop(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--sizes", str(N_TINY), "--threads", "1", "--bio-ms", "200",
         "--out", str(tmp_path)],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads((tmp_path / "bench_v1.json").read_text())
    static, eventprop = rows
    assert static["column"] == "eventprop" and static["bio_s"] == eventprop["bio_s"] == 0.2
    assert static["sim_spikes_per_bio_s"] > 0 and eventprop["spikes_per_bio_s"] > 0
    # EventProp's forward edges are the column's synapses (recurrent + LGN + readout); it adds a reverse copy of every
    # edge from a spiking source (all but the LGN's) and the two readouts' exchange of their values
    assert eventprop["forward_edges"] == static["synapses"]
    assert eventprop["reverse_edges"] == static["synapses"] - static["lgn_synapses"]
    assert eventprop["connections"] == eventprop["forward_edges"] + eventprop["reverse_edges"] + 2
    assert eventprop["phase_s"]["forward"] > 0 and eventprop["phase_s"]["backward"] > 0
    assert "EventProp in NEST" in proc.stdout

"""Deep rewiring (nestgrad.rewiring, network.rewiring): the rule on hand-checkable numbers, NEST's weights after
rewiring against a NumPy re-implementation written here, the fixed sparse control, configuration errors,
checkpoint resume and bit-identical results for 1 rank x 2 threads and 2 ranks x 1 thread."""

from __future__ import annotations

import math
import os
import pathlib
import subprocess

import numpy as np
import pytest

from nestgrad.config import ExperimentConfig
from nestgrad.errors import ConfigError
from nestgrad.rewiring import RewiringConfig, connection_count, draw_absent, rewire_step, rng_for

REPO = pathlib.Path(__file__).resolve().parents[1]


def _config(iterations: int = 2, checkpoint_every: int = 2, threads: int = 1, **rewiring) -> ExperimentConfig:
    rw = {"in_fraction": 0.3, "rec_fraction": 0.2, "enabled": True, "every": 1} | rewiring
    return ExperimentConfig.from_dict(
        {
            "network": {"n_rec": 20, "gradient_algorithm": "event", "rewiring": rw},
            "task": {"name": "sine", "sequence_steps": 100},
            "optimizer": {"type": "adam", "eta": 2e-3, "sign_constrained": True},
            "training": {
                "iterations": iterations,
                "checkpoint_every": checkpoint_every,
                "threads": threads,
                "plot": False,
            },
        }  # fmt: skip
    )


# -- the rule -------------------------------------------------------------------------------------------------------
def test_weight_across_zero_is_replaced_by_one_absent_pair():
    # 3 x 3 recurrent projection without autapses: keys post * 3 + pre; allowed keys 1, 2, 3, 5, 6, 7
    keys = np.array([1, 2, 3, 5])
    signs = np.array([1.0, 1.0, 1.0, -1.0])
    weights = np.array([0.2, -0.1, 0.3, -0.4])  # key 2 (post 0, pre 2) crossed zero: +1 sign, negative weight
    res = rewire_step(keys, weights, signs, rng_for(7, 1, 1), 3, 3, autapses=False, new_weight=1e-6)
    assert res.removed.tolist() == [2]
    assert res.added.size == 1 and res.added[0] in (2, 6, 7)  # absent, allowed pairs (2 was just freed)
    assert res.keys.size == 4 and np.unique(res.keys).size == 4  # count kept, no duplicates
    assert not np.any(res.keys // 3 == res.keys % 3)  # no autapses
    kept = {1: 0.2, 3: 0.3, 5: 0.4}  # |w| of the survivors unchanged; the new one starts at new_weight
    for k, theta in zip(res.keys.tolist(), res.theta.tolist(), strict=True):
        assert theta == (1e-6 if k == res.added[0] else kept[k])
    # the same draw as rng.choice over the absent pairs, written out here
    expected = rng_for(7, 1, 1).choice(np.array([2, 6, 7]), size=1, replace=False)
    assert res.added.tolist() == expected.tolist()


def test_l1_term_and_bound():
    keys = np.array([0, 1, 2])
    signs = np.array([1.0, 1.0, -1.0])
    weights = np.array([0.2, 0.5, -0.35])
    # theta - eta * alpha * batches = theta - 0.1 * 1 * 2: 0.2 -> 0 (removed), 0.5 -> 0.3 capped at Wmax 0.25,
    # 0.35 -> 0.15 (a negative weight keeps its sign)
    res = rewire_step(keys, weights, signs, rng_for(1, 3, 0), 1, 4, autapses=True, eta=0.1, alpha=1.0, batches=2,
                      w_max=0.25, new_weight=0.01)  # fmt: skip
    assert res.removed.tolist() == [0]
    assert res.added.tolist() == [3]  # the only absent pair
    assert res.keys.tolist() == [1, 2, 3]
    np.testing.assert_allclose(res.theta, [0.25, 0.15, 0.01], rtol=0, atol=1e-15)


def test_noise_term_uses_the_documented_draw():
    keys, signs, w = np.array([0, 1]), np.array([1.0, -1.0]), np.array([0.5, -0.5])
    res = rewire_step(keys, w, signs, rng_for(2, 5, 1), 1, 3, autapses=True, eta=0.01, temperature=2.0, batches=3)
    noise = math.sqrt(2 * 0.01 * 2.0 * 3) * rng_for(2, 5, 1).standard_normal(2)
    alive = 0.5 + noise > 0
    np.testing.assert_array_equal(res.theta[: alive.sum()], (0.5 + noise)[alive])
    assert res.keys.size == 2


def test_large_projection_draws_by_rejection():
    n = 3000  # 9e6 pairs: above the enumeration limit
    present = np.sort(np.random.default_rng(0).choice(n * n, 50_000, replace=False))
    new = draw_absent(np.random.default_rng(1), present, 20_000, n, n, autapses=False)
    assert new.size == 20_000 and np.unique(new).size == 20_000
    assert not np.isin(new, present).any()
    assert not np.any(new // n == new % n)


def test_connection_count():
    assert connection_count(0.1, 20, 20, autapses=False) == 38  # 10 % of 380 allowed pairs
    assert connection_count(0.3, 20, 100, autapses=True) == 600
    assert connection_count(1e-9, 5, 5, autapses=True) == 1


# -- configuration --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "rewiring, match",
    [
        ({"rec_fraction": 1.5}, r"network\.rewiring\.rec_fraction = 1\.5"),
        ({"in_fraction": 0}, r"network\.rewiring\.in_fraction = 0"),
        ({"every": 0}, r"network\.rewiring\.every = 0"),
        ({"alpha": -1.0}, r"network\.rewiring\.alpha = -1\.0"),
        ({"temperature": float("nan")}, r"network\.rewiring\.temperature = nan"),
        ({"new_weight": 0.0}, r"network\.rewiring\.new_weight = 0\.0"),
        ({"enabled": "yes"}, r"network\.rewiring\.enabled = 'yes'"),
        ({"enabled": True}, r"in_fraction = rec_fraction = 1"),
        ({"fraction": 0.1}, r"unknown key\(s\) \['fraction'\]"),
    ],
)
def test_bad_values_name_the_field(rewiring, match):
    with pytest.raises(ConfigError, match=match):
        ExperimentConfig.from_dict({"network": {"rewiring": rewiring}})


def test_rewiring_is_for_the_classic_network():
    with pytest.raises(ConfigError, match="network.rewiring"):
        ExperimentConfig.from_dict({"network": {"recurrent": False, "rewiring": {"rec_fraction": 0.5}}})
    assert RewiringConfig.from_dict({"rec_fraction": 0.1}).sparse


def test_memory_estimate_counts_the_sparse_synapses():
    from nestgrad.networks.registry import get

    def size(rewiring: dict) -> tuple[int, int]:
        cfg = ExperimentConfig.from_dict({"network": {"n_rec": 1000, "rewiring": rewiring}})
        s = get("classic").size(cfg)
        return s.synapses, s.dense_weights

    dense, sparse = size({}), size({"in_fraction": 0.1, "rec_fraction": 0.01})
    assert dense[0] - sparse[0] == (100 * 1000 - 10_000) + (999_000 - 9990)
    assert sparse[1] == dense[1] + 100 * 1000 + 1000 * 1000


# -- in NEST --------------------------------------------------------------------------------------------------------
def _reference_rewire(w, mask, sign, seed, iteration, index, eta, rw, opt, autapses):
    """Deep R's step written out pair by pair (row-major pairs, as the keys): the test's own NumPy version."""
    n_post, n_pre = w.shape
    rng = rng_for(seed, iteration, index)
    active = [(i, j) for i in range(n_post) for j in range(n_pre) if mask[i, j]]
    theta = {p: sign[p] * w[p] for p in active}
    if rw.temperature > 0:
        xi = rng.standard_normal(len(active))
        for p, x in zip(active, xi, strict=True):
            theta[p] += math.sqrt(2 * eta * rw.temperature * rw.every) * x
    for p in active:
        theta[p] = min(theta[p], opt.Wmax if sign[p] > 0 else -opt.Wmin)
    dead = [p for p in active if theta[p] <= 0]
    alive = [p for p in active if theta[p] > 0]
    absent = [i * n_pre + j for i in range(n_post) for j in range(n_pre)
              if (i, j) not in alive and (autapses or i != j)]  # fmt: skip
    new = rng.choice(np.array(absent, np.int64), size=len(dead), replace=False) if dead else []
    out_w, out_m = np.zeros_like(w), np.zeros(w.shape, bool)
    for p in alive:
        out_w[p], out_m[p] = sign[p] * theta[p], True
    for k in new:
        p = divmod(int(k), n_pre)
        out_w[p], out_m[p] = sign[p] * rw.new_weight, True
    return out_w, out_m


def test_nest_weights_after_rewiring_equal_numpy(tmp_path):
    from nestgrad.nest_engine import fresh_kernel
    from nestgrad.training.trainer import Trainer

    cfg = _config(iterations=2, temperature=1e-4)
    trainer = Trainer(cfg, tmp_path / "run", verbose=False)
    net = trainer.network
    calls = []
    original = net.rewire

    def spy(weights, opt, iteration):
        opt_before = {k: v.copy() for k, v in opt.items()}  # rewire sets the moments in place
        out = original(weights, opt, iteration)
        calls.append(({k: v.copy() for k, v in weights.items()}, out, iteration, opt_before))
        return out

    net.rewire = spy
    trainer.run()
    assert [c[2] for c in calls] == [1, 2]
    before, (after, opt_after, stats), _, before_opt = calls[0]
    assert stats["in_rec"][0] > 0, "the test needs connections that crossed zero"
    for index, name in enumerate(("in_rec", "rec_rec")):
        mask = before[f"mask_{name}"] > 0.5
        w_ref, m_ref = _reference_rewire(before[name], mask, net.signs(name), cfg.network.seed, 1, index,
                                         cfg.optimizer.eta, net.rewiring, cfg.optimizer, name == "in_rec")  # fmt: skip
        np.testing.assert_array_equal(after[f"mask_{name}"] > 0.5, m_ref, err_msg=name)
        np.testing.assert_allclose(after[name], w_ref, rtol=1e-15, atol=0, err_msg=name)
        assert m_ref.sum() == mask.sum() == connection_count(*(
            (0.3, 20, net.n_in, True) if name == "in_rec" else (0.2, 20, 20, False)))  # fmt: skip
        assert np.all(np.sign(after[name][m_ref]) == net.signs(name)[m_ref])  # signs preserved
        # Adam starts again for removed and new connections: moments 0, bias-correction powers beta^0 = 1
        changed = mask != m_ref
        assert np.all(opt_after[f"m_{name}"][changed] == 0) and np.all(opt_after[f"v_{name}"][changed] == 0)
        assert np.all(opt_after[f"b1_{name}"][changed] == 1) and np.all(opt_after[f"b2_{name}"][changed] == 1)
        # pairs connected before and after continue at their step, unless removed and drawn again (then fresh)
        kept = mask & m_ref
        same = opt_after[f"b1_{name}"][kept] == before_opt[f"b1_{name}"][kept]
        fresh = (opt_after[f"b1_{name}"][kept] == 1) & (opt_after[f"m_{name}"][kept] == 0)
        assert np.all(same | fresh) and same.mean() > 0.9 and opt_after[f"b1_{name}"][kept].min() < 1
    # iteration 2 started from exactly this connectivity
    np.testing.assert_array_equal(calls[1][0]["mask_rec_rec"], after["mask_rec_rec"])
    # NEST holds the rewired weights: build them and read them back
    nest = fresh_kernel(cfg.task.resolution, 1, 1)
    net.build(nest, after, 0)
    back = net.read_weights(nest)
    for name in ("in_rec", "rec_rec"):
        np.testing.assert_array_equal(back[name], after[name], err_msg=name)
        np.testing.assert_array_equal(back[f"mask_{name}"], after[f"mask_{name}"])
        conns = nest.GetConnections(net.built.nodes[name.split("_")[0]], net.built.nodes["rec"])
        assert len(conns) == after[f"mask_{name}"].sum()


def test_fixed_sparse_control_keeps_its_connectivity(tmp_path):
    from nestgrad.training.trainer import Trainer

    cfg = _config(iterations=2, enabled=False)
    trainer = Trainer(cfg, tmp_path / "run", verbose=False)
    w0 = trainer.initial_state().weights
    trainer.run()
    w = trainer.state.weights
    for name in ("in_rec", "rec_rec"):
        np.testing.assert_array_equal(w[f"mask_{name}"], w0[f"mask_{name}"])
        assert np.all(w[name][w0[f"mask_{name}"] == 0] == 0)
        assert not np.array_equal(w[name], w0[name]), "the weights learnt"
    assert np.all(np.diag(w0["mask_rec_rec"]) == 0)
    # the initial weights of the connected pairs are the dense ones scaled by 1/sqrt(fraction), same signs
    dense = trainer.network.initial_weights(cfg.network.seed, dense=True)
    m = w0["mask_in_rec"] > 0
    np.testing.assert_array_equal(w0["in_rec"][m], dense["in_rec"][m])


def test_spec_of_sparse_weights_without_a_build(tmp_path):
    """network_spec (used by the NIR export, without a build) takes the connectivity from the weights."""
    from nestgrad.nest_engine import fresh_kernel
    from nestgrad.training.trainer import Trainer

    cfg = _config()
    net = Trainer(cfg, tmp_path / "run", verbose=False).network
    w = net.initial_weights(cfg.network.seed)
    net.prepare(fresh_kernel(cfg.task.resolution))
    spec = net.network_spec(w, 0)
    assert spec.projections["in_rec"].sources.size == w["mask_in_rec"].sum() == connection_count(0.3, 20, 100, True)
    assert spec.projections["rec_rec"].sources.size == w["mask_rec_rec"].sum()


def test_checkpoint_resume_is_bit_identical(tmp_path):
    from nestgrad.training.trainer import Trainer

    full = Trainer(_config(iterations=4), tmp_path / "full", verbose=False)
    full.run()
    part = Trainer(_config(iterations=2), tmp_path / "part", verbose=False)
    part.run()
    cfg = _config(iterations=4)
    resumed = Trainer(cfg, tmp_path / "part", verbose=False)
    resumed.run(resume=True)
    with np.load(tmp_path / "full" / "checkpoint.npz") as a, np.load(tmp_path / "part" / "checkpoint.npz") as b:
        assert {"w_mask_in_rec", "w_mask_rec_rec"} <= set(a.files)
        for key in a.files:
            if key != "meta":
                np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert [h["loss"] for h in full.state.history] == [h["loss"] for h in resumed.state.history]


# -- MPI ------------------------------------------------------------------------------------------------------------
MPI_PYTHON = next((p for p in (REPO / ".venv-mpi" / "bin" / "python",) if p.exists()), None)
MPI_ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1")  # fmt: skip


MPI_CONFIG = """
[network]
n_rec = 20
gradient_algorithm = "event"
[network.rewiring]
in_fraction = 0.3
rec_fraction = 0.2
enabled = true
every = 1
temperature = 1e-4
[task]
name = "sine"
sequence_steps = 100
[optimizer]
type = "adam"
eta = 2e-3
sign_constrained = true
[training]
iterations = 4
checkpoint_every = 2
threads = {threads}
plot = false
"""


@pytest.mark.skipif(
    MPI_PYTHON is None or os.environ.get("NESTGRAD_SKIP_MPI") == "1", reason="needs the MPI environment (make mpi)"
)
def test_ranks_and_threads_rewire_bit_identically(tmp_path):
    import json

    def write(path: pathlib.Path, threads: int) -> pathlib.Path:
        path.write_text(MPI_CONFIG.format(threads=threads))
        assert ExperimentConfig.from_toml(path) == _config(iterations=4, threads=threads, temperature=1e-4)
        return path

    def run(ranks: int, cfg: pathlib.Path, out: pathlib.Path) -> None:
        cmd = [str(MPI_PYTHON), "-m", "nestgrad", "train", str(cfg), "--out", str(out)]
        if ranks > 1:
            cmd = ["mpirun", "-np", str(ranks), "--oversubscribe", "--bind-to", "none", *cmd]
        r = subprocess.run(cmd, cwd=REPO, env=MPI_ENV, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]

    run(1, write(tmp_path / "t2.toml", 2), tmp_path / "threads")
    run(2, write(tmp_path / "t1.toml", 1), tmp_path / "ranks")
    with np.load(tmp_path / "threads" / "checkpoint.npz") as a, np.load(tmp_path / "ranks" / "checkpoint.npz") as b:
        ha, hb = (json.loads(str(x["meta"]))["history"] for x in (a, b))
        assert [(h["loss"], h["rate_hz"]) for h in ha] == [(h["loss"], h["rate_hz"]) for h in hb]
        for key in a.files:
            if key != "meta":
                np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        # the run rewired: the connectivity is not the initial one
        assert not np.array_equal(a["w_mask_in_rec"], _initial_mask(tmp_path))


def _initial_mask(tmp_path: pathlib.Path) -> np.ndarray:
    from nestgrad.training.trainer import Trainer

    return Trainer(_config(), tmp_path / "init", verbose=False).initial_state().weights["mask_in_rec"]


# A kernel with one connectivity, then one with another in the same processes (as after a rewiring step), against
# the second kernel alone; the spikes of every rank are gathered with mpi4py and printed by rank 0.
_KERNEL_AFTER_KERNEL = """
import sys
import numpy as np
from mpi4py import MPI
from nestgrad.nest_engine import fresh_kernel


def kernel(seed, simulate):
    nest = fresh_kernel(1.0, 1, 1)
    rng = np.random.default_rng(seed)
    gens = nest.Create("spike_generator", 20)
    for j, g in enumerate(gens):
        g.spike_times = np.unique(np.random.default_rng(100 + j).integers(1, 100, 12)).astype(float).tolist()
    inputs = nest.Create("parrot_neuron", 20)
    nest.Connect(gens, inputs, "one_to_one")
    neurons = nest.Create("iaf_psc_exp", 20, {"I_e": 300.0})
    pre_ids, post_ids = np.asarray(inputs.tolist()), np.asarray(neurons.tolist())
    for sources, n in ((pre_ids, 120), (post_ids, 60)):  # input and recurrent connections
        pairs = rng.choice(400, n, replace=False)
        syn = {"weight": rng.normal(0.0, 200.0, n), "delay": np.ones(n)}
        nest.Connect(sources[pairs % 20], post_ids[pairs // 20], "one_to_one", syn)
    recorder = nest.Create("spike_recorder")
    nest.Connect(neurons, recorder)
    if not simulate:
        nest.Prepare()
        nest.Cleanup()
        return None
    nest.Simulate(100.0)
    ev = recorder.events
    return sorted(sum(MPI.COMM_WORLD.allgather(list(zip(ev["times"].tolist(), ev["senders"].tolist()))), []))


if sys.argv[1] == "after":
    kernel(1, simulate=False)
spikes = kernel(2, simulate=True)
if MPI.COMM_WORLD.rank == 0:
    print("SPIKES", spikes)
"""


@pytest.mark.skipif(
    MPI_PYTHON is None or os.environ.get("NESTGRAD_SKIP_MPI") == "1", reason="needs the MPI environment (make mpi)"
)
def test_a_kernel_under_mpi_does_not_depend_on_the_connectivity_of_an_earlier_one(tmp_path):
    # NEST 3.10 with compressed spikes, under mpirun, delivers spikes wrongly in a kernel built after another kernel
    # of different connectivity in the same processes; fresh_kernel switches compressed spikes off under MPI
    script = tmp_path / "kernels.py"
    script.write_text(_KERNEL_AFTER_KERNEL)

    def spikes(mode: str) -> str:
        cmd = ["mpirun", "-np", "2", "--oversubscribe", "--bind-to", "none", str(MPI_PYTHON), str(script), mode]
        r = subprocess.run(cmd, cwd=REPO, env=MPI_ENV, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        lines = [line for line in r.stdout.splitlines() if line.startswith("SPIKES ")]
        assert len(lines) == 1, r.stdout[-2000:]
        return lines[0]

    alone = spikes("alone")
    assert alone.count("(") > 10  # the network spikes: the comparison means something
    assert spikes("after") == alone

"""The microcircuit as a spec: its static circuit is a drawn projection (NEST's fixed_total_number rule, drawn with
NumPy in seeded chunks) built by the one wiring function.

* the drawn edges have the model's statistics: the number of synapses of every pair of populations exactly, weight
  and delay means and standard deviations within sampling tolerances (4 standard errors; the delays' expected
  values computed from the truncated normal rounded to the resolution grid);
* the same seed gives the same connections in NEST, for 1 and 2 threads (and the same across thread counts);
* chunks are drawn alone identically (what lets every rank draw them), and two MPI ranks together hold the serial
  circuit; bad recipes are refused by name;
* the e-prop microcircuit now resumes bit-identically with Adam (its moments are in the checkpoints).
"""

from __future__ import annotations

import math
import os
import pathlib
import subprocess

import numpy as np
import pytest
from connections import connections_among

from nestgrad.config.microcircuit import MicrocircuitConfig
from nestgrad.errors import SpecError
from nestgrad.networks.potjans_diesmann import Microcircuit
from nestgrad.spec import DrawnProjection, FixedTotalNumber, NetworkSpec, Population, TruncatedNormal

RES = 0.1  # ms


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _rounded_delay_moments(mean: float, sd: float, res: float) -> tuple[float, float]:
    """Mean and sd of a normal(mean, sd) delay redrawn below ``res`` and rounded to the nearest step (ms)."""
    k = np.arange(1, int((mean + 12 * sd) / res) + 2)
    lo = np.maximum((k - 0.5) * res, res)
    hi = (k + 0.5) * res
    p = np.array([_phi((h - mean) / sd) - _phi((x - mean) / sd) for x, h in zip(lo, hi, strict=True)])
    p /= 1.0 - _phi((res - mean) / sd)
    m = float(np.sum(p * k * res))
    return m, float(math.sqrt(np.sum(p * (k * res - m) ** 2)))


def test_drawn_circuit_has_the_models_statistics():
    mc = Microcircuit(MicrocircuitConfig(n_scaling=0.1, k_scaling=0.1))
    spec = mc.network_spec(RES)
    spec.validate()
    drawn = spec.projections["rec_rec"]
    assert isinstance(drawn, DrawnProjection)
    proj = drawn.materialize()
    assert proj.size == drawn.size == mc.n_synapses
    off = mc.offsets
    s_pop = np.searchsorted(off, proj.sources, side="right") - 1
    t_pop = np.searchsorted(off, proj.targets, side="right") - 1
    counts = np.zeros((8, 8), np.int64)
    np.add.at(counts, (t_pop, s_pop), 1)
    np.testing.assert_array_equal(counts, np.round(mc.k * mc.n[:, None]).astype(np.int64))  # exactly
    c = mc.config
    steps = proj.delays / RES
    np.testing.assert_allclose(steps, np.round(steps), rtol=0, atol=1e-9)  # on the grid
    assert steps.min() >= 1 - 1e-9
    for t in range(8):
        for s in range(8):
            sel = (t_pop == t) & (s_pop == s)
            n = int(sel.sum())
            if n < 100:
                continue
            w, d = proj.weights[sel], proj.delays[sel]
            mean_w, sd_w = mc.w[t, s], abs(mc.w[t, s]) * c.psp_rel_sd  # truncation at 0 is 10 sd away
            assert np.all(w >= 0) if mean_w > 0 else np.all(w <= 0)
            assert abs(w.mean() - mean_w) <= 4 * sd_w / math.sqrt(n), (t, s)
            assert abs(w.std() / sd_w - 1) <= 4 / math.sqrt(2 * n), (t, s)
            d_mean = c.delay_exc if s % 2 == 0 else c.delay_inh
            m, sd = _rounded_delay_moments(d_mean, d_mean * c.delay_rel_sd, RES)
            assert abs(d.mean() - m) <= 4 * sd / math.sqrt(n), (t, s, d.mean(), m)
            assert abs(d.std() / sd - 1) <= 4 / math.sqrt(2 * n) * 1.5, (t, s, d.std(), sd)  # 1.5: kurtosis
    # multapses and autapses, as NEST's fixed_total_number rule makes them
    pairs = proj.sources * int(off[-1]) + proj.targets
    assert np.unique(pairs).size < pairs.size
    assert np.any(proj.sources == proj.targets)


def test_thalamic_projection_of_the_static_circuit():
    """With ``thalamus``: the published thalamic targets and synapse numbers (fixed total number per population),
    positive weights, delays on the grid, drawn from the thalamus's index range."""
    from nestgrad.networks.potjans_diesmann import N_FULL, THALAMUS_CONN_PROBS, THALAMUS_N

    mc = Microcircuit(MicrocircuitConfig(n_scaling=0.05, k_scaling=0.1, thalamus=True))
    spec = mc.network_spec(RES)
    spec.validate()
    th = spec.projections["th_rec"].materialize()
    n_th = spec.populations["thalamus"].size
    assert n_th == round(THALAMUS_N * 0.05) and th.sources.min() >= 0 and th.sources.max() < n_th
    t_pop = np.searchsorted(mc.offsets, th.targets, side="right") - 1
    p = THALAMUS_CONN_PROBS
    k = np.log(1 - p) / np.log(1 - 1 / (THALAMUS_N * N_FULL)) / N_FULL * 0.1
    np.testing.assert_array_equal(np.bincount(t_pop, minlength=8), np.round(k * mc.n).astype(int))
    assert np.all(th.weights >= 0) and np.all(th.delays >= RES - 1e-12)
    assert spec.projections["thalamus_drive"].size == n_th


def test_chunks_are_drawn_alone_identically_and_independently_of_the_chunk_split():
    mc = Microcircuit(MicrocircuitConfig(n_scaling=0.02, k_scaling=0.05, background="dc"))
    drawn = mc.network_spec(RES).projections["rec_rec"]
    whole = drawn.materialize()
    again = drawn.materialize()
    for key in ("sources", "targets", "weights", "delays"):
        np.testing.assert_array_equal(getattr(whole, key), getattr(again, key))
    block = max(drawn.blocks, key=lambda b: b.n)
    small = DrawnProjection(drawn.source, drawn.target, (block,), RES, chunk_size=1000)
    chunks = list(small.chunks())
    assert len(chunks) == math.ceil(block.n / 1000)
    third = small._draw(block, 2, 1000)  # what a rank draws for chunk 2 without the others
    np.testing.assert_array_equal(third.targets, chunks[2].targets)
    np.testing.assert_array_equal(third.delays, chunks[2].delays)
    other_seed = DrawnProjection(drawn.source, drawn.target, (FixedTotalNumber(
        block.n, block.sources, block.targets, block.weight, block.delay, (*block.seed, 1)),), RES)  # fmt: skip
    assert not np.array_equal(other_seed.materialize().targets, small.materialize().targets)


def _circuit_connections(nest, threads: int) -> tuple[np.ndarray, np.ndarray]:
    nest.ResetKernel()
    import nestgrad

    nestgrad.install()
    nest.set(resolution=RES, local_num_threads=threads, rng_seed=1 + threads)  # NEST's seed must not matter
    mc = Microcircuit(MicrocircuitConfig(n_scaling=0.02, k_scaling=0.02, seed=7))
    mc.build(nest)
    rec = nest.NodeCollection(np.concatenate([p.tolist() for p in mc.pops]).tolist())
    d = connections_among(nest, rec, rec, ["weight", "delay"])
    table = np.column_stack([np.asarray(d[k], float) for k in ("source", "target", "weight", "delay")])
    order = np.lexsort(table.T[::-1])
    return table[order], np.asarray(rec.get("V_m"), float)


def test_same_seed_gives_the_same_connections_for_1_and_2_threads(nest_kernel):
    nest = nest_kernel
    one, v_one = _circuit_connections(nest, 1)
    assert one.shape[0] == Microcircuit(MicrocircuitConfig(n_scaling=0.02, k_scaling=0.02)).n_synapses
    for threads in (1, 2):
        first, v_first = _circuit_connections(nest, threads)
        second, v_second = _circuit_connections(nest, threads)
        np.testing.assert_array_equal(first, second, err_msg=f"{threads} threads")
        np.testing.assert_array_equal(v_first, v_second)
        np.testing.assert_array_equal(first, one, err_msg=f"{threads} threads vs 1")  # independent of threads
        np.testing.assert_array_equal(v_first, v_one)
    # NEST holds exactly the spec's edges (same multiset)
    mc = Microcircuit(MicrocircuitConfig(n_scaling=0.02, k_scaling=0.02, seed=7))
    proj = mc.network_spec(RES).projections["rec_rec"].materialize()
    first_id = one[:, :2].min()  # the circuit population is created first: ids 1 .. N
    spec_table = np.column_stack([proj.sources + first_id, proj.targets + first_id, proj.weights, proj.delays])
    spec_table = spec_table[np.lexsort(spec_table.T[::-1])]
    np.testing.assert_array_equal(spec_table[:, :2], one[:, :2])
    np.testing.assert_allclose(spec_table[:, 2:], one[:, 2:], rtol=1e-12, atol=1e-12)


def _spec_with(block: FixedTotalNumber) -> NetworkSpec:
    spec = NetworkSpec(resolution=RES)
    spec.add_population(Population("a", "iaf_psc_exp", 10))
    spec.add_projection("a_a", DrawnProjection("a", "a", (block,), RES))
    return spec


@pytest.mark.parametrize(
    "block, message",
    [
        (FixedTotalNumber(5, (0, 11), (0, 10), TruncatedNormal(1, 0.1), TruncatedNormal(1, 0.5, RES), (1,)),
         r"projection 'a_a', block 0: sources range \[0, 11\)"),
        (FixedTotalNumber(-1, (0, 10), (0, 10), TruncatedNormal(1, 0.1), TruncatedNormal(1, 0.5, RES), (1,)),
         "block 0: n = -1"),
        (FixedTotalNumber(5, (0, 10), (0, 10), TruncatedNormal(1, 0.1), TruncatedNormal(1, 0.5, 0.0), (1,)),
         r"block 0: delays may be drawn below the resolution \(0.0 < 0.1 ms\)"),
        (FixedTotalNumber(5, (0, 10), (0, 10), TruncatedNormal(1, -0.1), TruncatedNormal(1, 0.5, RES), (1,)),
         "block 0, weight: mean 1, sd -0.1"),
        (FixedTotalNumber(5, (0, 10), (0, 10), TruncatedNormal(1, 0.1, 5.0), TruncatedNormal(1, 0.5, RES), (1,)),
         "block 0, weight: .* beyond 5 sd"),
    ],
)  # fmt: skip
def test_bad_drawn_projections_are_refused_by_name(block, message):
    with pytest.raises(SpecError, match=message):
        _spec_with(block).validate()


def test_per_neuron_values_must_fit_the_population():
    spec = NetworkSpec(resolution=RES)
    spec.add_population(Population("a", "iaf_psc_exp", 10, per_neuron={"V_m": np.zeros(9)}))
    with pytest.raises(SpecError, match=r"population 'a': per_neuron\['V_m'\] has shape \(9,\), expected \(10,\)"):
        spec.validate()


@pytest.mark.parametrize("algorithm", ["step", "event"])
def test_eprop_microcircuit_resumes_bit_identically_with_adam(tmp_path, algorithm):
    """Adam's moments of th_rec and rec_out are in the checkpoints now (the learner is built from a spec); with the
    event algorithm also the bias-correction powers of th_rec's eprop_event_synapse (rec_out's eprop_synapse has
    none)."""
    import dataclasses

    from test_potjans_diesmann import _eprop_config

    from nestgrad.config import OptimizerType
    from nestgrad.training.trainer import Trainer

    def config(iterations: int):
        c = _eprop_config(iterations, 2)
        c = dataclasses.replace(c, network=dataclasses.replace(c.network, gradient_algorithm=algorithm))
        return dataclasses.replace(c, optimizer=dataclasses.replace(c.optimizer, type=OptimizerType.ADAM, eta=1e-3))

    full = Trainer(config(4), tmp_path / "full", verbose=False)
    full.run()
    powers = {"b1_th_rec", "b2_th_rec"} if algorithm == "event" else set()
    assert set(full.state.optimizer_state) == {"m_th_rec", "v_th_rec", "m_rec_out", "v_rec_out"} | powers
    if powers:
        assert full.state.optimizer_state["b2_th_rec"].min() < 1.0  # steps were counted
    Trainer(config(2), tmp_path / "part", verbose=False).run()
    resumed = Trainer(config(4), tmp_path / "part", verbose=False)
    resumed.run(resume=True)
    w0 = full.initial_state().weights
    assert not np.array_equal(full.state.weights["rec_out"], w0["rec_out"])
    for key, w in full.state.weights.items():
        np.testing.assert_array_equal(resumed.state.weights[key], w, err_msg=key)


MPI_PYTHON = pathlib.Path(__file__).resolve().parents[1] / ".venv-mpi" / "bin" / "python"
MPI_SCRIPT = """
import sys
import numpy as np
from nestgrad.config.microcircuit import MicrocircuitConfig
from nestgrad.nest_engine import fresh_kernel
from nestgrad.networks.potjans_diesmann import Microcircuit
nest = fresh_kernel(0.1, 1)
mc = Microcircuit(MicrocircuitConfig(n_scaling=0.02, k_scaling=0.02, seed=7))
mc.build(nest)
rec = nest.NodeCollection(np.concatenate([p.tolist() for p in mc.pops]).tolist())
d = nest.GetConnections(rec, rec).get(["source", "target", "weight", "delay"])
table = np.column_stack([np.atleast_1d(np.asarray(d[k], float)) for k in ("source", "target", "weight", "delay")])
np.save(sys.argv[1] + f"/rank{nest.Rank()}.npy", table)
"""


@pytest.mark.skipif(not MPI_PYTHON.exists(), reason="needs the MPI environment: run `make mpi` (make test does)")
def test_two_mpi_ranks_hold_the_serial_circuit(nest_kernel, tmp_path):
    """Every rank draws every chunk and keeps its own targets' connections: together they hold the serial circuit."""
    script = tmp_path / "build.py"
    script.write_text(MPI_SCRIPT)
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               PYTHONPATH=str(pathlib.Path(__file__).resolve().parents[1] / "python"))  # fmt: skip
    cmd = ["mpirun", "-np", "2", "--oversubscribe", "--bind-to", "none", str(MPI_PYTHON), str(script), str(tmp_path)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    parts = [np.load(tmp_path / f"rank{r}.npy") for r in (0, 1)]
    assert all(p.shape[0] > 0 for p in parts)  # split over the ranks
    both = np.concatenate(parts)
    both = both[np.lexsort(both.T[::-1])]
    serial, _ = _circuit_connections(nest_kernel, 1)
    np.testing.assert_array_equal(both, serial)

"""Reading plastic weights and Adam's state back from NEST, and writing them, per projection where projections share
a synapse model: found among the model's connections as runs of a SynapseCollection, or, where they interleave, as
a mask over all of them; both ways give every edge its own values and leave the other projections' alone. And the
bounded-memory reads and writes of connection values underneath (nestgrad.nest_engine.connections)."""

from __future__ import annotations

import numpy as np
import pytest

from nestgrad.nest_engine import wiring
from nestgrad.parallel import SerialCommunicator
from nestgrad.spec import NetworkSpec, Population, Projection, Role

KEYS = ("weight", "m", "v", "b1", "b2")


def _spec(model: str = "eprop_event_synapse") -> NetworkSpec:
    """in -> a, a -> a and a -> b share the synapse ``model``; a -> a and a -> b share their source population, so
    their connections interleave once NEST sorts them by source; a -> a has static edges beside its plastic ones."""
    optimizer = {"type": "adam", "eta": 1e-3, "batch_size": 1, "Wmin": -50.0, "Wmax": 50.0}
    spec = NetworkSpec(resolution=1.0, optimizer=optimizer | {"optimize_each_step": False})
    spec.add_population(Population("in", "parrot_neuron", 4, role=Role.INPUT))
    spec.add_population(Population("a", "eprop_iaf_psc_exp", 6))
    spec.add_population(Population("b", "eprop_iaf_psc_exp", 5))
    rng = np.random.default_rng(7)
    for name, source, target, n_pre, n_post in (("in_a", "in", "a", 4, 6), ("a_a", "a", "a", 6, 6),
                                                ("a_b", "a", "b", 6, 5)):  # fmt: skip
        pairs = np.array([(i, j) for i in range(n_pre) for j in range(n_post) if name != "a_a" or i != j])
        weights = rng.uniform(-3.0, 3.0, len(pairs))
        delays = np.ones(len(pairs))
        plastic = rng.random(len(pairs)) < 0.8
        spec.add_projection(name, Projection(source, target, pairs[:, 0], pairs[:, 1], weights, delays,
                                             plastic=plastic, synapse_model=model))  # fmt: skip
    return spec


def _state(spec: NetworkSpec, name: str, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = spec.projections[name].size
    return {"m": rng.normal(size=n), "v": rng.random(n), "b1": rng.uniform(0.5, 1.0, n), "b2": rng.uniform(0.9, 1, n)}


def _round_trip(
    nest, spec: NetworkSpec, together: bool = False
) -> tuple[wiring.BuiltNetwork, dict[str, dict[str, np.ndarray]]]:
    """Write Adam's state, simulate, read it back: one projection at a time, or ``together`` (write_adam_state,
    read_projections)."""
    nest.resolution = spec.resolution
    built = wiring.build(nest, spec)
    comm = SerialCommunicator()
    written = {}
    powers = all(wiring.keeps_adam_powers(built, name) for name in spec.projections)  # NEST's eprop_synapse: no
    keys = KEYS if powers else KEYS[:3]
    moments = {}
    for k, name in enumerate(spec.projections):
        state = written[name] = _state(spec, name, k)
        moments[name] = (state["m"], state["v"], (state["b1"], state["b2"]) if powers else None)
        if not together:
            wiring.write_adam_moments(built, nest, name, *moments[name])
    if together:
        wiring.write_adam_state(built, nest, moments)
    nest.Simulate(5.0)  # the connections found before must still be the same edges after simulating
    if together:
        read = wiring.read_projections(built, nest, list(spec.projections), keys, comm)
    else:
        read = {name: wiring.read_plastic(built, nest, name, keys, comm) for name in spec.projections}
    for name, proj in spec.projections.items():
        plastic = proj.plastic_mask()
        np.testing.assert_array_equal(read[name]["weight"], proj.weights)  # eta would move them only at a step
        for key in keys[1:]:
            expected = np.where(plastic, written[name][key], 1.0 if key in ("b1", "b2") else 0.0)
            np.testing.assert_array_equal(read[name][key], expected, err_msg=f"{name} {key}")
    return built, read


@pytest.mark.parametrize("threads", [1, 2])
def test_projections_sharing_a_synapse_model_read_and_write_their_own_edges(nest_kernel, threads):
    nest_kernel.local_num_threads = threads
    spec = _spec()
    built, _ = _round_trip(nest_kernel, spec)
    runs = {name: len(built._found[(name, "eprop_event_synapse")][0].runs) for name in spec.projections}
    # found among the model's connections: in_a one run per thread, a_a and a_b one per source neuron and thread
    assert runs["in_a"] == threads and runs["a_a"] > 1 and runs["a_b"] > 1, runs


@pytest.mark.parametrize("model", ["eprop_event_synapse", "eprop_synapse"])
def test_interleaved_projections_are_read_and_written_through_a_mask_with_the_same_values(
    nest_kernel, monkeypatch, model
):
    spec = _spec(model)
    _, by_runs = _round_trip(nest_kernel, spec)
    nest_kernel.ResetKernel()
    import nestgrad

    nestgrad.install()
    monkeypatch.setattr(wiring, "MAX_RUNS", 0)
    built, filtered = _round_trip(nest_kernel, spec)
    nest_kernel.ResetKernel()
    nestgrad.install()
    _, together = _round_trip(nest_kernel, spec, together=True)  # one pass over the model for all of them
    assert all(built._found[(name, model)][0].among is not None for name in spec.projections)
    for name in spec.projections:
        for key in by_runs[name]:
            np.testing.assert_array_equal(filtered[name][key], by_runs[name][key])
            np.testing.assert_array_equal(together[name][key], by_runs[name][key])


@pytest.mark.parametrize("masked", [False, True])
def test_found_connections_get_and_set_act_on_their_own_projection_only(nest_kernel, monkeypatch, masked):
    """FoundConnections.get/set called directly (not through the batched paths of wiring) read and write exactly the
    projection's connections, in the same order, also where they are a mask over the whole model's."""
    nest = nest_kernel
    spec = _spec()
    if masked:
        monkeypatch.setattr(wiring, "MAX_RUNS", 0)
    nest.resolution = spec.resolution
    built = wiring.build(nest, spec)
    wiring.read_projections(built, nest, list(spec.projections), ("weight",), SerialCommunicator())  # finds them
    found = {name: built._found[(name, "eprop_event_synapse")][0] for name in spec.projections}
    assert all((f.among is not None) == masked for f in found.values())
    before = {name: f.get(["weight", "adam_m"]) for name, f in found.items()}
    for name in spec.projections:
        rows = built._found[(name, "eprop_event_synapse")][1]  # the edge each connection is
        np.testing.assert_array_equal(before[name]["weight"], spec.projections[name].weights[rows])
    new_m = np.arange(1.0, before["a_a"]["adam_m"].size + 1.0)
    found["a_a"].set({"adam_m": new_m})
    after = {name: f.get(["weight", "adam_m"]) for name, f in found.items()}
    np.testing.assert_array_equal(after["a_a"]["adam_m"], new_m)
    for name in spec.projections:
        np.testing.assert_array_equal(after[name]["weight"], before[name]["weight"])
        if name != "a_a":
            np.testing.assert_array_equal(after[name]["adam_m"], before[name]["adam_m"])


def test_projections_read_together_equal_projections_read_one_at_a_time(nest_kernel):
    """read_projections finds every projection of a model in one pass (right after a build); its values are
    read_plastic's, and the GetConnections queries it makes are by synapse model only."""
    nest = nest_kernel
    spec = _spec()
    nest.resolution = spec.resolution
    built = wiring.build(nest, spec)
    queries = []

    class Spy:  # PyNEST's module refuses new attributes: a stand-in that records the queries
        def __getattr__(self, name):
            return getattr(nest, name)

        def GetConnections(self, *args, **kwargs):  # noqa: N802 (NEST's name)
            queries.append((args, kwargs))
            return nest.GetConnections(*args, **kwargs)

    spy = Spy()
    together = wiring.read_projections(built, spy, list(spec.projections), ("weight", "m"), SerialCommunicator())
    assert queries == [((), {"synapse_model": "eprop_event_synapse"})]
    for name in spec.projections:
        alone = wiring.read_plastic(built, spy, name, ("weight", "m"), SerialCommunicator())
        for key in ("weight", "m"):
            np.testing.assert_array_equal(together[name][key], alone[key])
    assert len(queries) == 1  # found once per build


@pytest.mark.parametrize("mask", [[True], [False, True, True, False, True], [True, True], [False, False]])
def test_runs_are_the_stretches_of_true(mask):
    mask = np.array(mask)
    runs = wiring._runs(mask)
    covered = np.zeros(mask.size, bool)
    for start, stop in runs:
        assert start < stop and not covered[start:stop].any()
        covered[start:stop] = True
    np.testing.assert_array_equal(covered, mask)
    assert len(runs) == int(np.sum(np.diff(np.concatenate(([0], mask.astype(int)))) == 1))


@pytest.mark.parametrize("chunk", [1, 3, 4, 1 << 16])
def test_connection_values_are_read_and_written_a_slice_at_a_time(nest_kernel, chunk):
    from nestgrad.nest_engine import connections

    nest = nest_kernel
    a = nest.Create("iaf_psc_alpha", 3)
    nest.Connect(a, a, "all_to_all", {"weight": nest.random.uniform(-2.0, 2.0), "delay": 1.5})  # 9 connections
    conns = nest.GetConnections()
    whole = conns.get(["source", "target", "weight", "delay", "synapse_model"])
    got = connections.read(conns, ["source", "target", "weight", "delay", "synapse_model"], chunk)
    for key, values in whole.items():
        assert got[key].tolist() == list(values), key
    assert got["source"].dtype == np.int64 and got["weight"].dtype == np.float64
    new = np.linspace(-1.0, 1.0, 9)
    connections.write(conns, {"weight": new, "delay": np.full(9, 2.0)}, chunk)
    assert conns.get("weight") == new.tolist() and conns.get("delay") == [2.0] * 9
    with pytest.raises(ValueError, match="weight: 8 values for 9 connections"):
        connections.write(conns, {"weight": np.zeros(8)}, chunk)
    twice = connections.read(conns, ["weight", "weight"], chunk)  # a key asked for twice is read once
    assert twice["weight"].tolist() == new.tolist()
    one = connections.read(conns[4:5], ["weight"], chunk)  # NEST answers a single connection with scalars
    assert one["weight"].tolist() == [conns.get("weight")[4]]
    none = connections.read(nest.GetConnections(synapse_model="stdp_synapse"), ["weight"], chunk)
    assert none["weight"].shape == (0,)


def test_connections_among_reads_only_the_pairs_asked_for(nest_kernel):
    from nestgrad.nest_engine import connections

    nest = nest_kernel
    a, b = nest.Create("iaf_psc_alpha", 2), nest.Create("iaf_psc_alpha", 2)
    nest.Connect(a, b, "all_to_all", {"weight": 3.0})
    nest.Connect(b, a, "all_to_all", {"weight": -1.0})
    nest.Connect(a, a, "one_to_one", {"weight": 7.0})
    got = connections.among(nest, np.asarray(a.tolist()), np.asarray(b.tolist()), ["weight"])
    assert sorted(zip(got["source"].tolist(), got["target"].tolist(), strict=True)) == [(1, 3), (1, 4), (2, 3), (2, 4)]
    assert got["weight"].tolist() == [3.0] * 4
    nothing = connections.among(nest, np.asarray(b.tolist()), np.asarray(b.tolist()), ["weight"])
    assert all(v.size == 0 for v in nothing.values()) and set(nothing) == {"source", "target", "weight"}


def test_connection_read_benchmark_runs_and_every_mode_reads_the_same_weights(tmp_path):
    import json
    import pathlib
    import subprocess
    import sys

    script = pathlib.Path(__file__).resolve().parents[1] / "scaling_runs" / "bench_connection_reads.py"
    out = tmp_path / "bench"
    done = subprocess.run([sys.executable, str(script), "--sizes", "1500", "--repeats", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "bench_connection_reads.json").read_text())["results"]
    assert [r["mode"] for r in results] == ["pynest", "per_key", "chunked"]
    assert all(r["connections"] == 1500 and r["read_s"] > 0 for r in results)
    assert len({r["weight_sum"] for r in results}) == 1

"""The reference engine for general networks (nestgrad.reference.spec_online) against NEST.

Measured max_rel_err of the weight updates: V1 ~2e-13, microcircuit 0 (bit-identical); the tolerance is 1e-9.

* The worked case python/nestgrad/configs/compare_v1_small.toml (300 GLIF3 neurons with per-neuron Allen fits,
  four receptor ports, Billeh's delays on the static edges, Dale's law, Adam): weight updates max_rel_err
  <= 1e-9 per projection (measured ~2e-13), with 1 and 2 threads; a variant where every edge is an e-prop edge
  (random feedback to every neuron, gradient descent).
* The worked case python/nestgrad/configs/compare_microcircuit_small.toml (2 % Potjans-Diesmann microcircuit of
  eprop_iaf_psc_exp, its static circuit a drawn projection of its spec): th_rec and rec_out within 1e-9,
  1 and 2 threads.
* Per-neuron parameters act on their own neuron: a network whose neurons share parameters except one matches
  NEST, and giving that neuron the shared parameters instead changes the result by far more than the tolerance.
* What the engine cannot replay is refused with a SpecError naming it, before anything runs.
"""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np
import pytest

from nestgrad.comparison.spec_compare import (
    SpecCase,
    case_from_config,
    compare_case,
    microcircuit_run,
    run_spec_nest,
    with_parameters,
)
from nestgrad.config import ExperimentConfig
from nestgrad.config.v1 import V1_EPROP_PARAMS
from nestgrad.errors import SpecError
from nestgrad.networks.base import READOUT_DEFAULTS
from nestgrad.reference.populations import delay_steps, time_steps
from nestgrad.reference.spec_online import SpecData, run_spec_online
from nestgrad.spec import NetworkSpec, Population, Projection, Role, SynapseKind
from nestgrad.tasks import TrialBatch

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "python" / "nestgrad" / "configs"
V1_SMALL = CONFIGS / "compare_v1_small.toml"
MC_SMALL = CONFIGS / "compare_microcircuit_small.toml"
TOLERANCE = 1e-9
V1_PROJECTIONS = ("lgn_rec", "rec_rec", "rec_out")


def _check(result: dict, names: tuple[str, ...]) -> None:
    for name in names:
        r = result["projections"][name]
        assert r["max_abs_update"] > 0, (name, r)
        assert r["max_rel_err"] <= TOLERANCE, (name, r)
        assert r["static_max_abs_change"] == 0.0, (name, r)
    assert result["loss_max_rel_err"] <= TOLERANCE
    assert result["readout_max_abs_err"] <= 1e-9


@pytest.mark.parametrize("threads", [1, 2])
def test_compare_v1_small(threads, tmp_path, capsys):
    from nestgrad.cli import main

    code = main(["compare", "--config", str(V1_SMALL), "--threads", str(threads), "--out", str(tmp_path)])
    assert code == 0
    assert "max_rel_err" in capsys.readouterr().out
    import json

    result = json.loads((tmp_path / "compare.json").read_text())
    assert result["iterations"] == 3 and result["threads"] == threads
    _check(result, V1_PROJECTIONS)
    assert result["projections"]["rec_rec"]["n_held_at_zero"] > 0  # Dale's law clipped weights at 0
    assert result["spikes_reference"]["v1"] > 500
    # the case exercises static edges with delays of several steps next to the e-prop edges
    case = case_from_config(ExperimentConfig.from_toml(V1_SMALL), 1)
    rec = case.spec.projections["rec_rec"]
    static = ~rec.plastic_mask()
    assert static.any() and rec.plastic_mask().any()
    assert set(np.unique(delay_steps(rec.delays[static], 1.0))) >= {2, 3}
    assert set(np.unique(rec.receptors)) == {1, 2, 3, 4}
    params = case.spec.populations["v1"].params
    assert len({p["t_ref"] for p in params}) > 3 and len({p["g"] for p in params}) > 3  # per-neuron fits


def test_compare_v1_every_edge_plastic_gradient_descent():
    config = ExperimentConfig.from_toml(V1_SMALL)
    v1 = dict(config.network.v1, n_neurons=150, pool_size=6, feedback="random", plastic_targets="all")
    config = dataclasses.replace(
        config,
        network=dataclasses.replace(config.network, v1=v1),
        optimizer=dataclasses.replace(config.optimizer, type="gradient_descent", eta=0.05),
    )
    case = case_from_config(config, 2)
    assert all(p.plastic_mask().all() for n, p in case.spec.projections.items() if n in V1_PROJECTIONS)
    _check(compare_case(case), V1_PROJECTIONS)


def test_compare_v1_event_synapse():
    """gradient_algorithm = "event": eprop_event_synapse into the GLIF3 neurons (running products), same updates."""
    config = ExperimentConfig.from_toml(V1_SMALL)
    config = dataclasses.replace(config, network=dataclasses.replace(config.network, gradient_algorithm="event"))
    case = case_from_config(config, 2)
    assert case.spec.projections["rec_rec"].synapse_model == "eprop_event_synapse"
    _check(compare_case(case), V1_PROJECTIONS)


# -- per-neuron parameters ------------------------------------------------------------------------------------------
SHARED = {
    "V_th": -50.0,
    "g": 4.0,
    "E_L": -70.0,
    "C_m": 60.0,
    "t_ref": 2.0,
    "asc_decay": [0.003, 0.1],
    "asc_amps": [-5.0, -60.0],
    "asc_init": [0.0, 0.0],
    "asc_r": [1.0, 1.0],
    "V_reset": -70.0,
    "V_m": -70.0,
    "I_e": 0.0,
    "tau_syn": [5.5, 8.5, 2.8, 5.8],
} | {k: v for k, v in V1_EPROP_PARAMS.items() if k != "event_segment_steps"}
ODD = 3  # the neuron with its own parameters
ODD_PARAMS = {
    "g": 2.5,
    "t_ref": 1.2,  # NEST: 2 steps at 1 ms (rounded up)
    "asc_amps": [-20.0, -10.0],
    "asc_r": [0.5, 1.0],
    "tau_syn": [3.0, 12.0, 2.0, 9.0],
    "V_th": -52.0,
    "kappa": 0.9,
    "eprop_isi_trace_cutoff": 20.0,
}


def _small_case(per_neuron: bool, seed: int = 4) -> SpecCase:
    rng = np.random.default_rng(seed)
    n_in, n, n_out, steps = 20, 10, 2, 150
    params = [dict(SHARED) for _ in range(n)]
    if per_neuron:
        params[ODD] |= ODD_PARAMS
    spec = NetworkSpec(
        resolution=1.0,
        optimizer={"type": "adam", "eta": 0.5, "batch_size": 50, "Wmin": -1000.0, "Wmax": 1000.0,
                   "optimize_each_step": False, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8},
    )  # fmt: skip
    spec.add_population(Population("in", "parrot_neuron", n_in, role=Role.INPUT))
    spec.add_population(Population("rec", "eprop_glif3_psc", n, params))
    spec.add_population(Population("out", "eprop_readout", n_out, dict(READOUT_DEFAULTS), Role.READOUT))
    src, tgt = np.meshgrid(np.arange(n_in), np.arange(n), indexing="ij")
    src, tgt = src.ravel(), tgt.ravel()
    w = rng.uniform(20.0, 60.0, src.size)
    spec.add_projection(
        "in_rec",
        Projection("in", "rec", src, tgt, w, np.ones(src.size), rng.integers(1, 5, src.size), np.ones(src.size, bool),
                   np.ones(src.size, bool), "eprop_vector_synapse"),
    )  # fmt: skip
    src, tgt = np.nonzero(~np.eye(n, dtype=bool))
    exc = src < 6  # neurons 0-5 excitatory (Dale's law), 6-9 inhibitory
    w = np.where(exc, 1.0, -1.0) * rng.uniform(5.0, 20.0, src.size)
    plastic = rng.random(src.size) < 0.6
    delays = np.where(plastic, 1.0, rng.choice([1.0, 2.0, 3.0, 4.6], src.size))
    receptors = np.where(exc, 1, 2) + 2 * (tgt >= 6)
    spec.add_projection(
        "rec_rec",
        Projection("rec", "rec", src, tgt, w, delays, receptors, plastic, exc, "eprop_vector_synapse"),
    )
    src, tgt = np.meshgrid(np.arange(n), np.arange(n_out), indexing="ij")
    src, tgt = src.ravel(), tgt.ravel()
    spec.add_projection(
        "rec_out",
        Projection("rec", "out", src, tgt, rng.normal(0, 0.05, src.size), np.ones(src.size), None,
                   np.ones(src.size, bool), None, "eprop_synapse", learning_rate=0.005),
    )  # fmt: skip
    out_idx, rec_idx = np.meshgrid(np.arange(n_out), np.arange(n), indexing="ij")
    spec.add_projection(
        "feedback",
        Projection("out", "rec", out_idx.ravel(), rec_idx.ravel(), rng.normal(0, 1, out_idx.size),
                   np.ones(out_idx.size), kind=SynapseKind.LEARNING_SIGNAL),
    )  # fmt: skip
    batches = []
    t = np.arange(steps)
    for k in range(2):
        spikes = rng.random((steps, n_in)) < 0.08
        target = np.stack([np.sin(2 * np.pi * t / 75 + k), np.cos(2 * np.pi * t / 50)], axis=1)
        batches.append(TrialBatch(spikes, target, np.ones(steps), steps))
    return SpecCase(spec, batches, {"architecture": "synthetic", "task": "sine"})


def test_per_neuron_parameters_act_per_neuron():
    case = _small_case(per_neuron=True)
    result = compare_case(case)
    _check(result, ("in_rec", "rec_rec", "rec_out"))
    assert result["spikes_reference"]["rec"] > 50
    # the odd neuron's parameters matter: the reference with the shared parameters for it is far from NEST
    nest_run = run_spec_nest(case)
    params = [dict(p) for p in nest_run.params["rec"]]
    params[ODD] = dict(params[0])
    wrong = run_spec_online(with_parameters(case.spec, nest_run.params | {"rec": params}), case.data())
    right = run_spec_online(with_parameters(case.spec, nest_run.params), case.data())
    for name in ("in_rec", "rec_rec"):
        w0 = case.spec.projections[name].weights
        into_odd = case.spec.projections[name].targets == ODD
        d_right = (right.weights[name] - w0)[into_odd]
        d_wrong = (wrong.weights[name] - w0)[into_odd]
        d_nest = (nest_run.weights[name] - w0)[into_odd]
        scale = np.abs(d_right).max()
        assert np.abs(d_nest - d_right).max() <= TOLERANCE * scale, name  # NEST: the odd neuron's own parameters
        assert np.abs(d_nest - d_wrong).max() > 1e-3 * scale, name  # ... and not the shared ones


def test_nest_time_conversions():
    assert list(time_steps(np.array([1.2, 1.5, 2.0, 3.6, np.inf]), 1.0)[:4]) == [2, 2, 2, 4]
    assert time_steps(np.array([np.inf]), 1.0)[0] > 10**12
    assert list(time_steps(np.array([0.25, 0.3]), 0.1)) == [3, 3]
    assert list(delay_steps(np.array([1.7, 1.4, 2.5, 3.0]), 1.0)) == [2, 1, 3, 3]


# -- refusals -------------------------------------------------------------------------------------------------------
def _full_case() -> tuple[NetworkSpec, SpecData]:
    case = _small_case(per_neuron=False)
    readout = dict(READOUT_DEFAULTS, V_min=-1e300)
    spec = with_parameters(case.spec, {"out": [readout] * 2})
    return spec, case.data()


def _edit(spec: NetworkSpec, population: str | None = None, **changes) -> NetworkSpec:
    spec = dataclasses.replace(spec, populations=dict(spec.populations), projections=dict(spec.projections))
    if population:
        spec.populations[population] = dataclasses.replace(spec.populations[population], **changes)
    return spec


def test_full_case_runs_without_nest():
    spec, data = _full_case()
    result = run_spec_online(spec, data)
    assert result.spikes["rec"].sum() > 0 and np.all(np.isfinite(result.losses))


@pytest.mark.parametrize(
    "change, fragment",
    [
        (lambda s: _edit(s, "rec", model="iaf_psc_exp"), "model 'iaf_psc_exp'.*not supported"),
        (lambda s: _edit(s, "in", model="spike_generator"), "'spike_generator'.*not supported"),
        (lambda s: _edit(s, "rec", params=[{k: v for k, v in SHARED.items() if k != "t_ref"}] * 10), "'t_ref'"),
        (lambda s: _edit(s, "rec", params=[SHARED | {"adapt_beta": 1.0}] * 10), "adapt_beta"),
        (
            lambda s: _edit(s, "rec", params=[SHARED] * 9 + [SHARED | {"surrogate_gradient_function": "exponential"}]),
            "surrogate_gradient_function.*differs",
        ),
        (
            lambda s: _edit(s, "rec", params=[SHARED | {"tau_syn": [2.0, 2.0]}] * 10),
            "receptor ports must lie in 1 .. 2",
        ),
        (lambda s: _edit(s, "rec", params=[SHARED | {"asc_amps": [1.0]}] * 10), "asc_amps.*2 entries"),
        (lambda s: _edit(s, "out", params=[dict(READOUT_DEFAULTS)] * 2), "'V_min' is missing"),
        (lambda s: _edit(s, "rec", params=[SHARED | {"flush_event_send_interval": 10.0}] * 10), "flush_event_send"),
        (lambda s: _edit(s, "rec", params=[SHARED | {"ignore_and_spike": True}] * 10), "ignore_and_spike = True"),
    ],
)
def test_unsupported_input_is_refused(change, fragment):
    spec, data = _full_case()
    with pytest.raises(SpecError, match=fragment):
        run_spec_online(change(spec), data)


def test_refused_projections():
    spec, data = _full_case()
    bad = _edit(spec)
    bad.projections["in_rec"] = dataclasses.replace(spec.projections["in_rec"], synapse_model="eprop_synapse")
    with pytest.raises(SpecError, match="synapse_model 'eprop_synapse' into eprop_glif3_psc"):
        run_spec_online(bad, data)
    bad.projections["in_rec"] = dataclasses.replace(spec.projections["in_rec"], receptors=None)
    with pytest.raises(SpecError, match="in_rec.*receptor port"):
        run_spec_online(bad, data)
    bad = _edit(spec)
    fb = spec.projections["feedback"]
    bad.projections["feedback"] = dataclasses.replace(fb, delays=np.full(fb.size, 2.0))
    with pytest.raises(SpecError, match="learning-signal connections need a delay of one step"):
        run_spec_online(bad, data)
    with pytest.raises(SpecError, match="input_spikes has shape"):
        run_spec_online(spec, dataclasses.replace(data, input_spikes=data.input_spikes[:, :3]))


def test_poisson_background_is_refused_before_nest_runs(monkeypatch):
    import nestgrad.comparison.spec_compare as sc

    config = ExperimentConfig.from_toml(V1_SMALL)
    v1 = dict(config.network.v1, background_rate=100.0)
    config = dataclasses.replace(config, network=dataclasses.replace(config.network, v1=v1))
    monkeypatch.setattr(sc, "fresh_kernel", lambda *a, **k: pytest.fail("NEST must not start"))
    with pytest.raises(SpecError, match="poisson_generator is random.*background_rate = 0"):
        case_from_config(config, 1)


@pytest.mark.parametrize("threads", [1, 2])
def test_compare_microcircuit_small(threads, tmp_path, capsys):
    import json

    from nestgrad.cli import main

    code = main(["compare", "--config", str(MC_SMALL), "--threads", str(threads), "--out", str(tmp_path)])
    assert code == 0, capsys.readouterr().err
    result = json.loads((tmp_path / "compare.json").read_text())
    assert result["architecture"] == "microcircuit" and result["iterations"] == 3
    _check(result, ("th_rec", "rec_out"))
    assert result["spikes_reference"]["rec"] > 500


def test_microcircuit_spec_holds_what_nest_drew():
    config = ExperimentConfig.from_toml(MC_SMALL)
    case, run = microcircuit_run(config, 1)
    rec = case.spec.projections["rec_rec"]
    assert rec.size > 10_000 and not rec.plastic_mask().any()
    steps = delay_steps(rec.delays, 0.1)
    assert steps.min() >= 1 and steps.max() > 15  # normally distributed delays, several steps
    assert np.any(rec.weights < 0) and np.any(rec.weights > 0)
    pairs = rec.sources.astype(np.int64) * case.spec.populations["rec"].size + rec.targets
    assert np.unique(pairs).size < pairs.size  # NEST's fixed_total_number rule makes multapses
    params = run.params["rec"]
    assert len({p["V_m"] for p in params}) > 1000  # initial membrane potentials drawn per neuron, as NEST holds them
    assert len({p["I_e"] for p in params}) == 8  # DC per population


def test_microcircuit_poisson_background_is_refused_before_nest_runs(monkeypatch):
    import nestgrad.comparison.spec_compare as sc

    config = ExperimentConfig.from_toml(MC_SMALL)
    mc = dict(config.network.microcircuit, background="poisson")
    config = dataclasses.replace(config, network=dataclasses.replace(config.network, microcircuit=mc))
    monkeypatch.setattr(sc, "fresh_kernel", lambda *a, **k: pytest.fail("NEST must not start"))
    with pytest.raises(SpecError, match="background = 'poisson'.*cannot be replayed"):
        microcircuit_run(config, 1)


@pytest.mark.parametrize("n_in", [20, 15])  # n_in == n_rec (15) used to compute silently wrong gradients
def test_classic_engine_refuses_per_neuron_parameters(n_in):
    """The classic (dense) engine applies a parameter to the whole population: a per-neuron adapt_beta was accepted
    and broadcast along the presynaptic axis of the [post, pre] traces (or failed with a NumPy error)."""
    from test_reference import synthetic_spec

    from nestgrad.reference.online import run_online

    spec = synthetic_spec("eprop_iaf_adapt", recurrent=True)
    spec = spec.replace(
        input_spikes=spec.input_spikes[:, :n_in],
        weights=spec.weights | {"in_rec": spec.weights["in_rec"][:, :n_in]},
        masks=spec.masks | {"in_rec": spec.masks["in_rec"][:, :n_in]},
    )
    run_online(spec)  # one value: fine
    beta = np.full(spec.n_rec, spec.rec_params["adapt_beta"])
    beta[0] = 3.0
    with pytest.raises(SpecError, match="rec_params.adapt_beta has 15 values: .*one value per population.*spec_online"):
        run_online(spec.replace(rec_params=spec.rec_params | {"adapt_beta": beta}))


PSC_EXP = {"C_m": 250.0, "tau_m": 10.0, "tau_syn_ex": 2.0, "tau_syn_in": 3.0, "t_ref": 2.0, "E_L": -65.0,
           "V_th": -50.0, "V_reset": -65.0, "surrogate_gradient_function": "piecewise_linear",
           "surrogate_gradient_height": 0.3, "surrogate_gradient_width": 2.0, "kappa": 0.97, "kappa_reg": 0.97,
           "c_reg": 0.0, "f_target": 10.0, "eprop_isi_trace_cutoff": 30.0}  # fmt: skip


def test_two_neuron_models_in_one_network():
    """eprop_iaf_psc_exp and eprop_glif3_psc populations connected both ways (e-prop and delayed static edges),
    per-neuron DC and initial potentials, one readout population fed by both, learning signals to both."""
    case = _small_case(per_neuron=True, seed=7)
    spec = case.spec
    rng = np.random.default_rng(11)
    n_a = 8
    spec.add_population(
        Population(
            "a", "eprop_iaf_psc_exp", n_a, [PSC_EXP | {"I_e": 300.0 + 10 * j, "V_m": -65.0 + j} for j in range(n_a)]
        )
    )
    n_in, n_b = spec.populations["in"].size, spec.populations["rec"].size

    def dense(src_n, tgt_n, p):
        s, t = np.nonzero(rng.random((src_n, tgt_n)) < p)
        return s, t

    s, t = dense(n_in, n_a, 0.5)
    in_a = Projection("in", "a", s, t, rng.uniform(100, 300, s.size), np.ones(s.size),
                      plastic=np.ones(s.size, bool), synapse_model="eprop_event_synapse")  # fmt: skip
    spec.add_projection("in_a", in_a)
    s, t = dense(n_a, n_b, 0.5)
    spec.add_projection("a_rec", Projection("a", "rec", s, t, rng.uniform(5, 30, s.size), np.ones(s.size),
                                            np.where(t % 2 == 0, 1, 3), np.ones(s.size, bool), np.ones(s.size, bool),
                                            "eprop_vector_synapse"))  # fmt: skip
    s, t = dense(n_b, n_a, 0.5)
    plastic = rng.random(s.size) < 0.5
    w = rng.uniform(-150, 150, s.size)
    spec.add_projection("rec_a", Projection("rec", "a", s, t, w, np.where(plastic, 1.0, 3.0), plastic=plastic,
                                            synapse_model="eprop_event_synapse"))  # fmt: skip
    s, t = dense(n_a, n_a, 0.3)
    spec.add_projection("a_a", Projection("a", "a", s, t, rng.uniform(-100, 100, s.size), np.full(s.size, 2.0)))
    s, t = np.meshgrid(np.arange(n_a), np.arange(2), indexing="ij")
    s, t = s.ravel(), t.ravel()
    spec.add_projection("a_out", Projection("a", "out", s, t, rng.normal(0, 0.05, s.size), np.ones(s.size),
                                            plastic=np.ones(s.size, bool), synapse_model="eprop_synapse",
                                            learning_rate=0.005))  # fmt: skip
    spec.add_projection("fb_a", Projection("out", "a", t, s, rng.normal(0, 1, s.size), np.ones(s.size),
                                           kind=SynapseKind.LEARNING_SIGNAL))  # fmt: skip
    result = compare_case(case)
    names = ("in_rec", "rec_rec", "rec_out", "in_a", "a_rec", "rec_a", "a_out")
    _check(result, names)
    assert result["spikes_reference"]["a"] > 20 and result["spikes_reference"]["rec"] > 20


def test_one_optimizer_setting_per_synapse_model_is_enforced(monkeypatch):
    """NEST keeps one optimizer setting per synapse model: two projections of one model with different learning
    rates cannot be built as the spec says (both would learn at the rate set last), so the comparison refuses."""
    import nestgrad.comparison.spec_compare as sc

    case = _small_case(per_neuron=False)
    spec = case.spec
    spec.projections["rec_rec"] = dataclasses.replace(spec.projections["rec_rec"], learning_rate=0.1)
    monkeypatch.setattr(sc, "fresh_kernel", lambda *a, **k: pytest.fail("NEST must not start"))
    with pytest.raises(SpecError, match="'in_rec' .*and 'rec_rec' .*share the synapse model 'eprop_vector_synapse'"):
        compare_case(case)

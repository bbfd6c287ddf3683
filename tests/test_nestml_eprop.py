"""NESTML e-prop neurons (nestml_models/, docs/nestml_eprop.md): generated twins vs their C++ twins, the
generated models' parameters, and the generator's errors for models that do not follow the convention.

Tolerances: weight updates after 5 training iterations, max |w_nestml - w_builtin| / max |update| <= 1e-6 per
projection (measured ~4e-14: the generated code sums in a different order); readout losses per iteration <= 1e-9
relative (measured: equal).
"""

from __future__ import annotations

import dataclasses
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from test_reference import small_spec

from nestgrad.comparison.compare import iteration_losses
from nestgrad.comparison.nest_runs import run_nest

ROOT = pathlib.Path(__file__).resolve().parents[1]
TWINS = {  # NESTML model: its C++ twin (NEST's built-in models, and nestgrad's eprop_iaf_psc_exp)
    "eprop_iaf_psc_delta_nestml": "eprop_iaf_psc_delta",
    "eprop_iaf_psc_delta_adapt_nestml": "eprop_iaf_psc_delta_adapt",
    "eprop_iaf_psc_exp_nestml": "eprop_iaf_psc_exp",
}


def _twin_params(twin: str, params: dict) -> dict:
    if twin != "eprop_iaf_psc_exp_nestml":
        return params
    # one synaptic time constant: the C++ model's two set equal
    assert params["tau_syn_ex"] == params["tau_syn_in"]
    return {k: v for k, v in params.items() if k not in ("tau_syn_ex", "tau_syn_in")} | {
        "tau_syn": params["tau_syn_ex"]
    }


@pytest.mark.parametrize("task", ["sine", "evidence"])
@pytest.mark.parametrize("twin", sorted(TWINS))
def test_nestml_twin_trains_like_builtin(twin, task):
    spec = small_spec(TWINS[twin], task)
    builtin = run_nest(spec)
    nestml = run_nest(spec.replace(rec_model=twin, rec_params=_twin_params(twin, spec.rec_params)))
    for name in ("in_rec", "rec_rec", "rec_out"):
        update = builtin.weights[name] - spec.weights[name]
        assert np.abs(update).max() > 0, f"{name}: no learning, the comparison would be empty"
        err = np.abs(nestml.weights[name] - builtin.weights[name]).max() / np.abs(update).max()
        assert err <= 1e-6, (name, err)
    loss_builtin = iteration_losses(builtin.readout, spec)
    loss_nestml = iteration_losses(nestml.readout, spec)
    assert len(set(loss_builtin)) > 1  # learning changed the loss
    np.testing.assert_allclose(loss_nestml, loss_builtin, rtol=1e-9, atol=0)


def test_nestml_twin_parameters_and_recordables(nest_kernel):
    nest = nest_kernel
    builtin = nest.GetDefaults("eprop_iaf_psc_delta_adapt")
    twin = nest.GetDefaults("eprop_iaf_psc_delta_adapt_nestml")
    for key in (
        "C_m",
        "E_L",
        "V_th",
        "V_reset",
        "t_ref",
        "tau_m",
        "adapt_beta",
        "adapt_tau",
        "kappa",
        "kappa_reg",
        "c_reg",
        "surrogate_gradient_function",
        "surrogate_gradient_height",
        "surrogate_gradient_width",
        "eprop_isi_trace_cutoff",
    ):
        assert twin[key] == builtin[key], key
    assert twin["f_target"] == 10.0  # Hz, as set (NEST's built-in reports spikes per ms)
    assert {"V_m", "adaptation", "V_th_adapt", "surrogate_gradient", "learning_signal"} <= set(twin["recordables"])
    n = nest.Create("eprop_iaf_psc_delta_adapt_nestml")
    n.set(f_target=5.0, surrogate_gradient_function="exponential", kappa=0.5)
    assert (n.f_target, n.surrogate_gradient_function, n.kappa) == (5.0, "exponential", 0.5)
    with pytest.raises(nest.NESTError, match="surrogate"):
        n.set(surrogate_gradient_function="no_such_function")
    with pytest.raises(nest.NESTError, match="kappa"):
        n.set(kappa=1.5)
    with pytest.raises(nest.NESTError, match="surrogate_gradient_width > 0 required"):
        n.set(surrogate_gradient_width=0.0)
    with pytest.raises(nest.NESTError, match="ignore_and_spike"):
        n.set(ignore_and_spike=True)
    assert n.kappa == 0.5  # a refused set changes nothing


def test_nestml_twin_records_like_builtin(nest_kernel):
    """A driven neuron spikes, and its recorded state and surrogate gradient equal NEST's built-in twin's."""
    nest = nest_kernel
    recorders = {}
    for model in ("eprop_iaf_psc_delta_adapt", "eprop_iaf_psc_delta_adapt_nestml"):
        n = nest.Create(model, params={"I_e": 400.0, "t_ref": 0.0, "adapt_beta": 3.0})
        sr = nest.Create("spike_recorder")
        mm = nest.Create("multimeter", params={"record_from": ["V_m", "surrogate_gradient", "adaptation"]})
        nest.Connect(n, sr)
        nest.Connect(mm, n)
        recorders[model] = (sr, mm)
    nest.Simulate(200.0)
    trace = {
        model: (sr.events["times"], mm.events["V_m"], mm.events["surrogate_gradient"], mm.events["adaptation"])
        for model, (sr, mm) in recorders.items()
    }
    a, b = trace.values()
    assert len(a[0]) > 3
    np.testing.assert_array_equal(a[0], b[0])
    for x, y in zip(a[1:], b[1:], strict=True):
        np.testing.assert_allclose(y, x, rtol=1e-12, atol=1e-12)


# --- generator errors ---------------------------------------------------------------------------------------------

_GOOD = """
model {name}:
    state:
        V_m mV = 0 mV
        a real = 0
        refr_counts integer = 0
    equations:
        kernel K_delta = delta(t)
        V_m' = {dv}{input_term}
        a' = -a / tau_a
    parameters:
        tau_m ms = 10 ms
        tau_a ms = 100 ms
        V_th mV = 1 mV
    input:
        spikes <- spike
{extra_input}
    output:
        spike
    update:
        integrate_odes()
{update}
{on_condition}
"""
_THRESHOLD = """    onCondition(refr_counts == 0 and V_m >= V_th + a * (1 mV)):
        V_m = 0 mV
{body}        emit_spike()
"""


_DELTA_INPUT = " + (1 mV) * convolve(K_delta, spikes) * (1 ms**-1)"


def _model(
    name="eprop_test_nestml",
    dv="-V_m / tau_m",
    input_term=_DELTA_INPUT,
    extra_input="",
    update="",
    body="",
    on_condition=None,
):
    if on_condition is None:
        on_condition = _THRESHOLD.format(body=body)
    return _GOOD.format(
        name=name, dv=dv, input_term=input_term, extra_input=extra_input, update=update, on_condition=on_condition
    )


ERROR_CASES = {
    "name": (_model(name="eprop_test"), "must end in '_nestml'"),
    "no_threshold_block": (
        _model(update="        if V_m >= V_th:\n            emit_spike()\n", on_condition=""),
        "no threshold condition",
    ),
    "nonlinear": (_model(dv="-V_m**3 / (tau_m * (1 mV**2))"), "unsupported nonlinearity"),
    "no_comparison": (
        _model(on_condition="    onCondition(refr_counts == 0):\n        emit_spike()\n"),
        "no threshold comparison",
    ),
    "state_dependent_reset": (_model(body="        a = 2 * a\n"), "depends on the state"),
    "unused_port": (_model(extra_input="        inh_spikes <- spike"), "'inh_spikes' enters no equation"),
    "control_flow": (_model(body="        if a > 0:\n            a += 1\n"), "control flow"),
    "nonlinear_threshold": (
        _model(on_condition="    onCondition(V_m >= V_th + a * a * (1 mV)):\n        emit_spike()\n"),
        "is not linear",
    ),
    "input_unused": (_model(input_term=""), "enters no equation"),
    "seven_states": (
        _model(
            input_term=" + convolve(K_exp, spikes) * (1 mV / ms)",
            on_condition="    onCondition(V_m >= V_th + (a1 + a2 + a3 + a4 + a5) * (1 mV)):\n"
            + "".join(f"        a{k} += 1\n" for k in range(1, 6))
            + "        emit_spike()\n",
        )
        .replace("kernel K_delta = delta(t)", "kernel K_exp = exp(-t / tau_m)")
        .replace("        a' = -a / tau_a", "".join(f"        a{k}' = -a{k} / (tau_a * {k})\n" for k in range(1, 6)))
        .replace("        a real = 0", "".join(f"        a{k} real = 0\n" for k in range(1, 6))),
        "stores at most 6",
    ),
    "threshold_unreached": (
        _model(on_condition="    onCondition(refr_counts == 0 and a >= 1):\n        emit_spike()\n"),
        "does not depend on any state that the synaptic input of 'spikes' reaches",
    ),
}


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_generator_refuses_models_outside_the_convention(case, tmp_path):
    text, message = ERROR_CASES[case]
    model = tmp_path / "eprop_test_nestml.nestml"
    model.write_text(text)
    result = subprocess.run(
        [sys.executable, str(ROOT / "cmake" / "generate_nestml.py"), str(tmp_path / "out"), "3.10.0", str(model)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-2000:]
    assert message in output, output[-2000:]
    assert "Traceback" not in output, output[-3000:]
    assert str(model) in output  # the message names the file


def test_generator_derives_adaptation_through_the_threshold(tmp_path):
    """The derivation of the adaptive twin, read back from the generated source."""
    out = tmp_path / "out"
    model = ROOT / "nestml_models" / "eprop_iaf_psc_delta_adapt_nestml.nestml"
    subprocess.run(
        [sys.executable, str(ROOT / "cmake" / "generate_nestml.py"), str(out), "3.10.0", str(model)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    source = (out / "eprop_iaf_psc_delta_adapt_nestml.cpp").read_text()
    for line in (
        "const double J_0_0 = V_.__P__V_m__V_m;",
        "const double J_1_1 = V_.__P__adaptation__adaptation;",
        "const double c_1 = -P_.adapt_beta;",
        "const double K_1 = (V_.adapt_jump);",
        "const double e = psi * ( c_0 * y_0 + c_1 * y_1 );",
    ):
        assert line in source, line
    assert "J_0_1" not in source and "J_1_0" not in source  # the adaptation does not act on V_m


# --- a NESTML e-prop model without a NEST twin: after-spike current ---------------------------------------------------


def test_after_spike_current_model_reduces_to_psc_delta_without_current():
    """asc_amp = 0: the same network as the psc_delta twin, bit for bit; asc_amp != 0 changes the trajectory."""
    spec = small_spec("eprop_iaf_psc_delta_asc_nestml", "sine", iterations=2)
    plain = run_nest(spec.replace(rec_model="eprop_iaf_psc_delta_nestml", rec_params=_without_asc(spec.rec_params)))
    no_current = run_nest(spec.replace(rec_params=spec.rec_params | {"asc_amp": 0.0}))
    with_current = run_nest(spec)
    np.testing.assert_array_equal(no_current.readout, plain.readout)
    for name in ("in_rec", "rec_rec"):
        np.testing.assert_array_equal(no_current.weights[name], plain.weights[name])
        assert np.abs(with_current.weights[name] - plain.weights[name]).max() > 0
    assert np.abs(with_current.readout - plain.readout).max() > 0


def _without_asc(params: dict) -> dict:
    return {k: v for k, v in params.items() if k not in ("asc_amp", "asc_tau")}


@pytest.mark.parametrize("cutoff", [10.0, 100.0])
def test_after_spike_current_model_matches_reference_with_adam_two_threads_and_cutoff(cutoff, tmp_path):
    """Windows longer than the cutoff make the generated code propagate the coupled (V_m, I_asc) sensitivity by a
    matrix power (the propagator is not diagonal); Adam and 2 threads as in the C++ models' tests."""
    from nestgrad.comparison.compare import compare

    spec = small_spec("eprop_iaf_psc_delta_asc_nestml", "sine", optimizer="adam")
    spec = spec.replace(rec_params=spec.rec_params | {"eprop_isi_trace_cutoff": cutoff})
    result = compare(spec, tmp_path, threads=2, plots=False)
    for name, r in result["projections"].items():
        assert r["max_abs_update"] > 0, name
        assert r["max_rel_err"] <= 1e-6, (name, r)
    assert result["loss_max_rel_err"] <= 1e-8


# --- a user's own NESTML model in the network builder ----------------------------------------------------------------


def test_builder_trains_a_users_own_nestml_model(tmp_path, monkeypatch):
    """A model named eprop_*_nestml without defaults of ours (the tutorial's model with its defaults removed) gets
    the e-prop settings, takes the rest from network.neuron_params, and trains."""
    from nestgrad.config import ExperimentConfig
    from nestgrad.networks import eprop_classic
    from nestgrad.training.trainer import Trainer

    monkeypatch.delitem(eprop_classic._DEFAULTS, "eprop_iaf_psc_exp_nestml")
    assert eprop_classic.is_own_nestml_model("eprop_iaf_psc_exp_nestml")
    cfg = ExperimentConfig.from_toml(ROOT / "python" / "nestgrad" / "configs" / "sine_eprop_iaf_psc_exp_nestml.toml")
    cfg = dataclasses.replace(cfg, training=dataclasses.replace(cfg.training, iterations=3, plot=False))
    trainer = Trainer(cfg, tmp_path, verbose=False)
    before = {k: v.copy() for k, v in trainer.initial_state().weights.items()}
    history = trainer.run()
    assert len(history) == 3 and all(np.isfinite(h["loss"]) for h in history)
    assert np.abs(trainer.state.weights["rec_rec"] - before["rec_rec"]).max() > 0


def test_builder_refuses_models_that_are_not_eprop_neurons(nest_kernel):
    from nestgrad.config import NetworkConfig, OptimizerConfig
    from nestgrad.networks.eprop_classic import EpropNetwork

    with pytest.raises(ValueError, match="glif3_psc_nestml.*not supported.*eprop_\\*_nestml"):
        EpropNetwork(NetworkConfig(neuron_model="glif3_psc_nestml"), OptimizerConfig(), 2, 1, 1.0)
    net = EpropNetwork(NetworkConfig(neuron_model="eprop_no_such_nestml"), OptimizerConfig(), 2, 1, 1.0)
    with pytest.raises(ValueError, match="eprop_no_such_nestml.*not a NEST model"):
        net.validate(nest_kernel)


# --- more than two eligibility states: eprop_vector_synapse ---------------------------------------------------------


def test_vector_synapse_equals_eprop_synapse_for_two_state_models(monkeypatch):
    """eprop_vector_synapse (nestgrad) and eprop_synapse (NEST) give the same updates where both apply (Adam)."""
    from nestgrad.networks.eprop_classic import EpropNetwork

    spec = small_spec("eprop_iaf_psc_delta_asc_nestml", "sine", optimizer="adam")
    nest_synapse = run_nest(spec)
    monkeypatch.setattr(EpropNetwork, "_recurrent_synapse_model", lambda self, nest: "eprop_vector_synapse")
    vector = run_nest(spec)
    for name in ("in_rec", "rec_rec", "rec_out"):
        update = nest_synapse.weights[name] - spec.weights[name]
        assert np.abs(update).max() > 0
        err = np.abs(vector.weights[name] - nest_synapse.weights[name]).max() / np.abs(update).max()
        assert err <= 1e-12, (name, err)


@pytest.mark.parametrize("task", ["sine", "evidence"])
def test_three_state_model_matches_reference(task, tmp_path):
    """eprop_iaf_psc_exp_adapt_nestml: (V_m, I_syn, adaptation) through eprop_vector_synapse, vs the reference
    (evidence: Adam and 2 threads)."""
    from nestgrad.comparison.compare import compare

    spec = small_spec(
        "eprop_iaf_psc_exp_adapt_nestml", task, optimizer="adam" if task == "evidence" else "gradient_descent"
    )
    result = compare(spec, tmp_path, threads=2 if task == "evidence" else 1, plots=False)
    for name, r in result["projections"].items():
        assert r["max_abs_update"] > 0, name
        assert r["max_rel_err"] <= 1e-6, (name, r)
    assert result["loss_max_rel_err"] <= 1e-8


def test_three_state_model_needs_the_vector_synapse(nest_kernel):
    nest = nest_kernel
    defaults = nest.GetDefaults("eprop_iaf_psc_exp_adapt_nestml")
    assert defaults["eligibility_size"] == 3 and defaults["eprop_synapse_model"] == "eprop_vector_synapse"
    pre = nest.Create("parrot_neuron")
    post = nest.Create("eprop_iaf_psc_exp_adapt_nestml")
    with pytest.raises(nest.NESTError, match="eprop_vector_synapse"):
        nest.Connect(pre, post, syn_spec={"synapse_model": "eprop_synapse", "delay": nest.resolution, "weight": 1.0})
    nest.Connect(pre, post, syn_spec={"synapse_model": "eprop_vector_synapse", "delay": nest.resolution, "weight": 1.0})
    with pytest.raises(nest.NESTError, match="eprop_vector_synapse cannot connect to iaf_psc_exp"):
        nest.Connect(
            pre,
            nest.Create("iaf_psc_exp"),
            syn_spec={"synapse_model": "eprop_vector_synapse", "delay": nest.resolution, "weight": 1.0},
        )
    # nestgrad's event-driven synapse takes it too (running products: tests/test_event_synapse.py)
    nest.Connect(pre, post, syn_spec={"synapse_model": "eprop_event_synapse", "delay": nest.resolution, "weight": 1.0})
    with pytest.raises(nest.NESTError, match="weight 500.* outside"):
        nest.Connect(
            pre, post, syn_spec={"synapse_model": "eprop_vector_synapse", "delay": nest.resolution, "weight": 500.0}
        )


# --- several spike receptor ports ----------------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["sine", "evidence"])
def test_two_port_model_matches_reference(task, tmp_path):
    """eprop_iaf_psc_exp_exc_inh_nestml: one eligibility recursion per receptor port, the port selected by the
    connection (eprop_vector_synapse's receptor_type); the reference keeps each synapse on its initial port."""
    from nestgrad.comparison.compare import compare

    result = compare(small_spec("eprop_iaf_psc_exp_exc_inh_nestml", task), tmp_path, plots=False)
    for name, r in result["projections"].items():
        assert r["max_abs_update"] > 0, name
        assert r["max_rel_err"] <= 1e-6, (name, r)
    assert result["loss_max_rel_err"] <= 1e-8


def test_builder_routes_weights_by_sign_to_the_two_ports(nest_kernel):
    from nestgrad.config import NetworkConfig, OptimizerConfig
    from nestgrad.networks.eprop_classic import EpropNetwork, initial_weights

    nest = nest_kernel
    nest.resolution = 1.0
    net = EpropNetwork(
        NetworkConfig(neuron_model="eprop_iaf_psc_exp_exc_inh_nestml", n_rec=8), OptimizerConfig(), 4, 1, 1.0
    )
    net.validate(nest)
    weights = initial_weights(4, 8, 1, seed=3, model="eprop_iaf_psc_exp_exc_inh_nestml")
    net.build(nest, weights, record_neurons=0)
    conns = nest.GetConnections(synapse_model="eprop_vector_synapse").get(["weight", "receptor"])
    w, receptor = np.asarray(conns["weight"]), np.asarray(conns["receptor"])
    assert len(w) == 4 * 8 + 8 * 7
    assert set(receptor[w >= 0]) == {0} and set(receptor[w < 0]) == {1}  # ports 1 and 2, stored 0-based
    read = net.read_weights(nest)
    for name in ("in_rec", "rec_rec", "rec_out"):
        np.testing.assert_array_equal(read[name], weights[name] * (1 - np.eye(8) if name == "rec_rec" else 1))

"""eprop_iaf_psc_exp: dynamics, parameters, errors."""

from __future__ import annotations

import numpy as np
import pytest

MODEL = "eprop_iaf_psc_exp"

# Non-default values for every parameter, to check that set -> get returns them in user units.
ALL_PARAMS = {
    "C_m": 123.0,
    "E_L": -65.0,
    "I_e": 12.5,
    "t_ref": 3.0,
    "tau_m": 17.0,
    "tau_syn_ex": 1.5,
    "tau_syn_in": 6.5,
    "V_th": -48.0,
    "V_reset": -68.0,
    "V_min": -90.0,
    "c_reg": 0.2,
    "f_target": 7.5,
    "kappa": 0.9,
    "kappa_reg": 0.8,
    "surrogate_gradient_function": "arctan_derivative",
    "surrogate_gradient_height": 0.7,
    "surrogate_gradient_width": 2.5,
    "eprop_isi_trace_cutoff": 50.0,
}


def test_parameter_round_trip(nest_kernel):
    n = nest_kernel.Create(MODEL, params=ALL_PARAMS)
    got = n.get(list(ALL_PARAMS))
    for key, value in ALL_PARAMS.items():
        assert got[key] == value, key


def test_changing_E_L_keeps_absolute_voltages(nest_kernel):
    """NEST's convention: voltages not given together with E_L keep their absolute values."""
    n = nest_kernel.Create(MODEL)
    n.set(E_L=-60.0)
    assert n.get(["V_th", "V_reset", "V_m"]) == {"V_th": -55.0, "V_reset": -70.0, "V_m": -70.0}
    n.set(E_L=-65.0, V_th=-50.0)
    assert n.get(["E_L", "V_th"]) == {"E_L": -65.0, "V_th": -50.0}


@pytest.mark.parametrize(
    "params, name",
    [
        ({"C_m": 0.0}, "C_m"),
        ({"C_m": -1.0}, "C_m"),
        ({"tau_m": 0.0}, "tau_m"),
        ({"tau_syn_ex": -2.0}, "tau_syn_ex"),
        ({"tau_syn_in": 0.0}, "tau_syn_in"),
        ({"V_th": -70.0}, "V_th > V_reset"),
        ({"V_th": -75.0}, "V_th > V_reset"),
        ({"t_ref": -1.0}, "t_ref"),
        ({"kappa": 1.5}, "kappa"),
        ({"c_reg": -1.0}, "c_reg"),
        ({"surrogate_gradient_function": "tanh"}, "surrogate_gradient_function"),
        ({"surrogate_gradient_height": 0.0}, "surrogate_gradient_height"),
    ],
)
def test_invalid_parameters_are_rejected_by_name(nest_kernel, params, name):
    n = nest_kernel.Create(MODEL)
    before = n.get()
    with pytest.raises(Exception, match=name):
        n.set(params)
    after = n.get()
    for key in ("C_m", "tau_m", "tau_syn_ex", "V_th", "surrogate_gradient_function"):
        assert after[key] == before[key], "a rejected set_status must leave the neuron unchanged"


@pytest.mark.parametrize("model", [MODEL, "eprop_iaf_psc_exp_nestml", "eprop_glif3_psc"])
def test_unknown_surrogate_gradient_is_named_with_the_known_ones(nest_kernel, model):
    """nestgrad's recurrent e-prop neurons choose the surrogate gradient in one place (EpropEventNode): an unknown
    name is rejected with the same message, naming the value and the known functions."""
    n = nest_kernel.Create(model)
    with pytest.raises(nest_kernel.NESTError, match=r'surrogate_gradient_function = "tanh" is unknown; known: arctan'):
        n.set(surrogate_gradient_function="tanh")
    assert n.surrogate_gradient_function == "piecewise_linear"


@pytest.mark.parametrize("resolution", [0.1, 1.0])
def test_subthreshold_dynamics_and_spikes_equal_iaf_psc_exp(nest_kernel, resolution):
    """Without learning, the neuron is NEST's iaf_psc_exp: same V_m (to rounding) and the same spike times."""
    nest = nest_kernel
    nest.resolution = resolution
    params = {
        "C_m": 250.0,
        "tau_m": 10.0,
        "tau_syn_ex": 2.0,
        "tau_syn_in": 5.0,
        "t_ref": 2.0,
        "V_th": -55.0,
        "V_reset": -70.0,
        "E_L": -70.0,
        "I_e": 420.0,
    }
    ours = nest.Create(MODEL, params=params)
    ref = nest.Create("iaf_psc_exp", params=params)
    pg = nest.Create("poisson_generator", params={"rate": 8000.0})
    parrot = nest.Create("parrot_neuron")
    dc = nest.Create(
        "step_current_generator", params={"amplitude_times": [200.0, 600.0], "amplitude_values": [80.0, -150.0]}
    )
    nest.Connect(pg, parrot)
    for n in (ours, ref):
        nest.Connect(parrot, n, syn_spec={"weight": 30.0, "delay": 1.0})
        nest.Connect(parrot, n, syn_spec={"weight": -5.0, "delay": 2.0})
        nest.Connect(dc, n)
    mm = nest.Create("multimeter", params={"record_from": ["V_m", "I_syn_ex", "I_syn_in"], "interval": resolution})
    sr = nest.Create("spike_recorder")
    nest.Connect(mm, ours + ref)
    nest.Connect(ours + ref, sr)
    nest.Simulate(1000.0)
    ev, sp = mm.events, sr.events
    for key in ("V_m", "I_syn_ex", "I_syn_in"):
        a = ev[key][ev["senders"] == ours.global_id]
        b = ev[key][ev["senders"] == ref.global_id]
        # propagators are computed with different (equally exact) formulas: rounding-level differences only
        assert np.max(np.abs(a - b)) < 1e-10, key
    t_ours = sp["times"][sp["senders"] == ours.global_id]
    t_ref = sp["times"][sp["senders"] == ref.global_id]
    assert len(t_ref) > 20
    np.testing.assert_array_equal(t_ours, t_ref)


def test_tau_syn_equal_tau_m_is_handled(nest_kernel):
    nest = nest_kernel
    params = {"tau_m": 10.0, "tau_syn_ex": 10.0, "tau_syn_in": 10.0}
    ours = nest.Create(MODEL, params=params)
    ref = nest.Create("iaf_psc_exp", params=params)
    sg = nest.Create("spike_generator", params={"spike_times": [5.0, 12.0, 30.0]})
    nest.Connect(sg, ours + ref, syn_spec={"weight": 500.0})
    mm = nest.Create("multimeter", params={"record_from": ["V_m"], "interval": 0.1})
    nest.Connect(mm, ours + ref)
    nest.Simulate(60.0)
    ev = mm.events
    a = ev["V_m"][ev["senders"] == ours.global_id]
    b = ev["V_m"][ev["senders"] == ref.global_id]
    assert np.all(np.isfinite(a))
    assert np.max(np.abs(a - b)) < 1e-10
    assert a.max() > -69.0  # the input had an effect


def test_trains_with_nest_eprop_synapse_and_readout(nest_kernel):
    """One e-prop update through NEST's eprop_synapse changes an input weight (wiring works end to end)."""
    nest = nest_kernel
    nest.resolution = 1.0
    rec = nest.Create(
        MODEL,
        params={
            "C_m": 1.0,
            "E_L": 0.0,
            "V_th": 0.5,
            "V_reset": 0.0,
            "V_m": 0.0,
            "tau_syn_ex": 5.0,
            "surrogate_gradient_height": 1.0,
        },
    )
    out = nest.Create("eprop_readout", params={"E_L": 0.0, "V_m": 0.0})
    gen = nest.Create("spike_generator", params={"spike_times": [float(t) for t in range(2, 200, 7)]})
    parrot = nest.Create("parrot_neuron")
    target = nest.Create("step_rate_generator", params={"amplitude_times": [2.0], "amplitude_values": [1.0]})
    window = nest.Create("step_rate_generator", params={"amplitude_times": [2.0], "amplitude_values": [1.0]})
    nest.SetDefaults("eprop_synapse", {"optimizer": {"type": "gradient_descent", "eta": 1e-2, "batch_size": 1}})
    nest.Connect(gen, parrot, syn_spec={"delay": 1.0})
    nest.Connect(parrot, rec, syn_spec={"synapse_model": "eprop_synapse", "weight": 0.3, "delay": 1.0})
    nest.Connect(rec, out, syn_spec={"synapse_model": "eprop_synapse", "weight": 0.5, "delay": 1.0})
    nest.Connect(out, rec, syn_spec={"synapse_model": "eprop_learning_signal_connection", "weight": 0.5, "delay": 1.0})
    nest.Connect(target, out, syn_spec={"synapse_model": "rate_connection_delayed", "receptor_type": 2, "delay": 1.0})
    nest.Connect(window, out, syn_spec={"synapse_model": "rate_connection_delayed", "receptor_type": 1, "delay": 1.0})
    nest.Simulate(200.0)
    w = nest.GetConnections(parrot, rec).get("weight")
    assert np.isfinite(w) and w != 0.3

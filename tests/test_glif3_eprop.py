"""eprop_glif3_psc (cpp_module/models/eprop_glif3_psc.cpp): the GLIF3 e-prop neuron.

* Without plasticity it is NEST's glif_psc as GLIF3: spike times identical and V_m, I_syn, ASCurrents_sum equal to
  1e-12 (measured: bit-identical) under Poisson input on four receptor ports, at 0.1 and 1 ms.
* NEST vs the reference engine: weight updates max_rel_err <= 1e-6 per projection (measured ~1e-11), losses
  <= 1e-8 relative; also with Adam, 2 threads and a cutoff shorter than most inter-spike intervals (the free-step
  propagator power beyond the cutoff).
* The forward-mode eligibility vector against an independent reverse-mode BPTT (bptt_glif3): equal to 1e-10 of the
  largest gradient where theory says so (no recurrent connections, symmetric feedback), with refractoriness and
  after-spike currents that keep a fraction rho != 1 at a spike (measured ~5e-16).
"""

from __future__ import annotations

import numpy as np
import pytest
from test_reference import small_spec, synthetic_spec

from nestgrad.comparison.compare import compare
from nestgrad.reference.bptt import bptt_gradient
from nestgrad.reference.online import run_online

MODEL = "eprop_glif3_psc"
GLIF_PARAMS = {"tau_syn": [2.0, 5.5, 8.5, 2.8], "t_ref": 2.0, "V_reset": -70.0, "asc_r": [1.0, 0.6]}


def _drive(nest, model: str, resolution: float) -> tuple[np.ndarray, dict]:
    nest.ResetKernel()
    import nestgrad

    nestgrad.install()
    nest.resolution = resolution
    nest.rng_seed = 5
    params = dict(GLIF_PARAMS)
    if model == "glif_psc":
        params.update(after_spike_currents=True, spike_dependent_threshold=False, adapting_threshold=False)
    neuron = nest.Create(model, 1, params)
    generators = nest.Create("poisson_generator", 4, {"rate": 3000.0})
    parrots = nest.Create("parrot_neuron", 4)
    nest.Connect(generators, parrots, "one_to_one")
    for port, w in enumerate([60.0, -40.0, 80.0, -20.0], start=1):
        nest.Connect(parrots[port - 1], neuron, syn_spec={"weight": w, "receptor_type": port, "delay": 1.0})
    recorder = nest.Create("spike_recorder")
    nest.Connect(neuron, recorder)
    meter = nest.Create("multimeter", {"record_from": ["V_m", "I_syn", "ASCurrents_sum"], "interval": resolution})
    nest.Connect(meter, neuron)
    nest.Simulate(1000.0)
    return recorder.events["times"], meter.events


@pytest.mark.parametrize("resolution", [0.1, 1.0])
def test_equals_glif_psc_without_plasticity(nest_kernel, resolution):
    spikes_ref, ev_ref = _drive(nest_kernel, "glif_psc", resolution)
    spikes, ev = _drive(nest_kernel, MODEL, resolution)
    assert len(spikes_ref) > 20
    np.testing.assert_array_equal(spikes, spikes_ref)
    for key in ("V_m", "I_syn", "ASCurrents_sum"):
        assert np.abs(ev[key] - ev_ref[key]).max() <= 1e-12, key


def test_defaults_and_parameters_are_glif_psc_s(nest_kernel):
    nest = nest_kernel
    ours, theirs = nest.GetDefaults(MODEL), nest.GetDefaults("glif_psc")
    for key in ("C_m", "g", "E_L", "V_th", "V_reset", "t_ref", "asc_decay", "asc_amps", "asc_r", "asc_init"):
        np.testing.assert_array_equal(ours[key], theirs[key], err_msg=key)
    assert ours["eligibility_size"] == 5 and ours["eprop_synapse_model"] == "eprop_vector_synapse"
    n = nest.Create(MODEL, 1, {"E_L": -70.0, "V_th": -50.0, "V_reset": -65.0, "tau_syn": [1.0, 2.0]})
    n.set(E_L=-60.0)  # absolute V_th and V_reset are kept, as in glif_psc
    assert (n.V_th, n.V_reset, list(n.tau_syn)) == (-50.0, -65.0, [1.0, 2.0])


@pytest.mark.parametrize(
    "params, fragment",
    [
        ({"asc_amps": [1.0, 2.0, 3.0]}, "asc_amps must have exactly 2 entries"),
        ({"asc_decay": [0.1, 0.0]}, "asc_decay > 0"),
        ({"asc_r": [1.0, 1.5]}, "asc_r in \\[0, 1\\]"),
        ({"tau_syn": [2.0, -1.0]}, "tau_syn > 0"),
        ({"tau_syn": []}, "tau_syn needs at least one entry"),
        ({"V_reset": -40.0}, "V_reset < V_th"),
        ({"g": 0.0}, "g > 0"),
        ({"kappa": 1.5}, "kappa"),
        ({"surrogate_gradient_function": "relu"}, "relu"),
        ({"ASCurrents": [1.0]}, "ASCurrents must have exactly 2 entries"),
    ],
)
def test_invalid_parameters_are_refused_by_name(nest_kernel, params, fragment):
    n = nest_kernel.Create(MODEL)
    before = n.get(["C_m", "V_reset", "tau_syn"])
    with pytest.raises(Exception, match=fragment):
        n.set(params)
    after = n.get(["C_m", "V_reset", "tau_syn"])
    assert after["C_m"] == before["C_m"] and after["V_reset"] == before["V_reset"]


def test_connections_need_the_vector_synapse_and_a_valid_port(nest_kernel):
    nest = nest_kernel
    nest.resolution = 1.0  # e-prop synapses have a delay of one step
    pre, post = nest.Create("parrot_neuron"), nest.Create(MODEL)
    with pytest.raises(Exception, match="eprop_vector_synapse"):
        nest.Connect(pre, post, syn_spec={"synapse_model": "eprop_synapse", "receptor_type": 1, "delay": 1.0})
    for port in (0, 5):
        for model in ("eprop_vector_synapse", "eprop_event_synapse"):
            with pytest.raises(Exception, match=f"Receptor type {port} in eprop_glif3_psc"):
                nest.Connect(pre, post, syn_spec={"synapse_model": model, "receptor_type": port, "delay": 1.0})
    nest.Connect(pre, post, syn_spec={"synapse_model": "eprop_vector_synapse", "receptor_type": 4, "delay": 1.0})
    with pytest.raises(Exception, match="cannot shrink"):
        post.set(tau_syn=[2.0, 2.0])


@pytest.mark.parametrize("task", ["sine", "evidence"])
def test_matches_reference_with_adam_two_threads_and_short_cutoff(task, tmp_path):
    """A 10 ms cutoff: most windows end before the next presynaptic spike, so the C++ model propagates the
    eligibility vector by a power of the free-step propagator, the reference step by step."""
    spec = small_spec(MODEL, task, optimizer="adam")
    spec = spec.replace(rec_params=spec.rec_params | {"eprop_isi_trace_cutoff": 10.0})
    result = compare(spec, tmp_path, threads=2, plots=False)
    for name, r in result["projections"].items():
        assert r["max_abs_update"] > 0, name
        assert r["max_rel_err"] <= 1e-6, (name, r)
    assert result["loss_max_rel_err"] <= 1e-8


def glif_synthetic_spec(recurrent: bool, t_ref: float):
    spec = synthetic_spec("eprop_iaf_psc_exp", recurrent=recurrent, t_ref=t_ref)
    params = {k: v for k, v in spec.rec_params.items() if k not in ("tau_m", "tau_syn", "tau_syn_ex", "tau_syn_in")}
    params |= {
        "g": params["C_m"] / 20.0,
        "asc_init": [0.0, 0.0],
        "asc_decay": [0.01, 0.2],
        "asc_amps": [-0.05, -0.3],
        "asc_r": [1.0, 0.5],
        "tau_syn": [3.0, 6.0, 2.0, 2.0],
    }
    return spec.replace(rec_model=MODEL, rec_params=params)


@pytest.mark.parametrize("t_ref", [0.0, 2.0])
def test_eligibility_equals_bptt_where_theory_says_so(t_ref):
    spec = glif_synthetic_spec(recurrent=False, t_ref=t_ref)
    eprop = run_online(spec).gradients
    bptt, fw = bptt_gradient(spec, convention="eprop")
    assert fw.z.sum() > 50
    assert t_ref == 0.0 or (~fw.free).sum() > 100  # refractory steps are exercised
    for p in ("in_rec", "rec_out"):
        scale = np.abs(bptt[p]).max()
        assert scale > 0
        assert np.abs(eprop[p] - bptt[p]).max() <= 1e-10 * scale, p
    # the after-spike currents' dependence on the neuron's own spikes matters: without it e-prop would differ
    no_asc = spec.replace(rec_params=spec.rec_params | {"asc_amps": [0.0, 0.0], "asc_r": [1.0, 1.0]})
    assert np.abs(bptt_gradient(no_asc)[0]["in_rec"] - bptt["in_rec"]).max() > 1e-3 * np.abs(bptt["in_rec"]).max()
    # "full" also differentiates the reset, which e-prop does not
    full, _ = bptt_gradient(spec, convention="full")
    assert np.abs(full["in_rec"] - bptt["in_rec"]).max() > 1e-3 * np.abs(bptt["in_rec"]).max()


def test_smooth_bptt_is_refused():
    with pytest.raises(ValueError, match="smooth mode is not available for eprop_glif3_psc"):
        bptt_gradient(glif_synthetic_spec(False, 0.0), smooth=True)


def test_dales_law_keeps_signs_and_matches_reference(tmp_path):
    """optimizer.sign_constrained: each sign is connected with a copy of the synapse model bounded to that sign.
    A learning rate large enough that unconstrained learning flips signs; with the constraint none flips, weights
    stop at zero, and NEST still equals the reference (which applies the same per-synapse bounds)."""
    from nestgrad.comparison.nest_runs import run_nest

    spec = small_spec(MODEL, "sine", optimizer="adam")
    spec = spec.replace(optimizer=spec.optimizer | {"eta": spec.optimizer["eta"] * 300})
    free = run_online(spec).weights
    signed = spec.replace(optimizer=spec.optimizer | {"sign_constrained": True})
    result = compare(signed, tmp_path, plots=False)
    nest_w = run_nest(signed).weights
    flips_free, stopped = 0, 0
    for p in ("in_rec", "rec_rec", "rec_out"):
        w0 = spec.weights[p]
        flips_free += int(np.sum(np.sign(free[p]) * np.sign(w0) < 0))
        assert np.all(nest_w[p][w0 >= 0] >= 0) and np.all(nest_w[p][w0 < 0] <= 0), p
        stopped += int(np.sum((nest_w[p] == 0) & (w0 != 0)))
        assert result["projections"][p]["max_rel_err"] <= 1e-6, (p, result["projections"][p])
    assert flips_free > 10 and stopped > 10


def test_signed_bounds():
    from nestgrad.config import OptimizerConfig
    from nestgrad.nest_engine import signed_bounds

    opt = OptimizerConfig(sign_constrained=True)
    assert signed_bounds(opt.Wmin, opt.Wmax, "neg") == (-100.0, 0.0)
    assert signed_bounds(5.0, 9.0, "nonneg") == (5.0, 9.0)


def test_eligibility_growth_bound_of_the_v1_fits():
    """EpropGlif3Psc.eligibility_growth: without surrogate (psi = 0) the slowest decay of a free step; with the
    after-spike currents' loop a high surrogate lets traces grow (V1 fits at 0.3 per mV), the V1 default (0.025)
    does not; and the bound is the growth of the recursion itself, iterated over the same periodic pattern."""
    import nestgrad.networks.v1_data as D
    from nestgrad.networks.v1 import EPROP_PARAMS
    from nestgrad.reference.neurons import EpropGlif3Psc

    growth = {}
    for fid, fit in D.GLIF_FITS.items():
        p = dict(fit, V_reset=fit["E_L"], asc_r=[1.0, 1.0], tau_syn=[5.5, 8.5], I_e=0.0, V_m=fit["E_L"]) | EPROP_PARAMS
        n = EpropGlif3Psc(p, 1.0)
        assert n.eligibility_growth(0.0) == pytest.approx(max(n.P33, *n.d), rel=1e-12)
        growth[fid] = (n.eligibility_growth(0.3), n.eligibility_growth(EPROP_PARAMS["surrogate_gradient_height"]))
        assert growth[fid][1] < 1.0, fid
    assert min(g for g, _ in growth.values()) > 1.0
    # the recursion of the docs, 10 steps at psi = 0.3 and 10 at psi = 0, 40 periods
    fit = D.GLIF_FITS[471819401]
    n = EpropGlif3Psc(
        dict(fit, V_reset=fit["E_L"], asc_r=[1.0, 1.0], tau_syn=[5.5, 8.5], I_e=0.0, V_m=fit["E_L"]) | EPROP_PARAMS,
        1.0,
    )
    eps_u, eps_a = 1.0, np.zeros(2)
    norms = []
    for _ in range(40):
        for t in range(20):
            psi = 0.3 if t < 10 else 0.0
            eps_u = n.P33 * eps_u + n.P30 * np.dot(n.c, eps_a)
            eps_a = n.d * eps_a + n.asc_amps * psi * eps_u
        norms.append(np.hypot(eps_u, np.linalg.norm(eps_a)))
    measured = (norms[-1] / norms[-11]) ** (1 / 200)
    assert measured > 1.0
    assert n.eligibility_growth(0.3, max_on=11, max_off=11) >= measured * (1 - 1e-3)

"""NEST's bsshslm e-prop with flush events and with several recurrent models in one network, reproduced by
nestgrad.reference.online_bsshslm (issue 18, item 5).

NEST's own classification test (testsuite/pytests/synapses/test_eprop_bsshslm_2020_plasticity.py) mixes
``eprop_iaf_bsshslm_2020`` and ``eprop_iaf_adapt_bsshslm_2020`` neurons in one recurrent population and gives the
neurons ``flush_event_send_interval`` = the update interval; these tests build such networks in NEST and in the
reference engine, with 1 and 2 threads. Tolerance: per synapse |dW_nest - dW_ref| <= 1e-9 max |dW_ref| of the
projection (measured: <= 3e-15).

Flush events change NEST's weights only where a flush closes a window before the learning signal of its last entry
has arrived (a flush stamped one step after the window; a later spike would have seen it). The flush networks are
made so that this happens, with short update intervals (60 steps): input neurons that spike at data step 1 of every
other interval only (input parrots' flush events), and a recurrent neuron that spikes at its own interval step 0
(recurrent flush events); the replay that ignores flush events is off by ~1e-4 and ~2e-5 (asserted > 1e-6).
"""

from __future__ import annotations

import numpy as np
import pytest
from gradient_check import assert_matches_finite_differences
from test_bptt_bsshslm import bsshslm_spec
from test_reference import MODELS as CLASSIC_MODELS
from test_reference import small_spec

from nestgrad.comparison.bsshslm_nest import make_bsshslm_spec, run_nest_bsshslm
from nestgrad.comparison.nest_runs import run_nest
from nestgrad.reference import online_bsshslm as ob
from nestgrad.reference.bptt_bsshslm import bptt_gradient_bsshslm, eprop_gradient_bsshslm, forward
from nestgrad.reference.online import run_online
from nestgrad.reference.online_bsshslm import LOSSES, run_online_bsshslm, validate_bsshslm
from nestgrad.reference.spec import NetworkSpec, SpecError

REL_TOL = 1e-9
PLAIN, ADAPT = "eprop_iaf_bsshslm_2020", "eprop_iaf_adapt_bsshslm_2020"
PROJ = ("in_rec", "rec_rec", "rec_out")
T_FLUSH = 60  # steps (= ms) per update interval of the flush networks


def _flush_spec(mixed: bool) -> NetworkSpec:
    """Sine task, 20 recurrent neurons, 6 update intervals of 60 steps, flush events from recurrent neurons and
    input parrots every 60 ms of silence; input neurons 0-19 spike at data step 1 of even intervals and at step 7-11
    of odd ones (each such step-1 spike is followed by a flush stamped one step after its window)."""
    spec = make_bsshslm_spec(
        "sine",
        ADAPT,
        n_rec=20,
        iterations=6,
        eta=1e-2,
        task_params={"sequence_steps": T_FLUSH},
        rec_groups=[(PLAIN, 10), (ADAPT, 10)] if mixed else None,
        flush_event_send_interval=float(T_FLUSH),
        input_flush_event_send_interval=float(T_FLUSH),
    )
    x = spec.input_spikes.copy()
    for i in range(20):
        x[:, i] = False
        for k in range(x.shape[0] // T_FLUSH):
            x[k * T_FLUSH + (1 if k % 2 == 0 else 7 + i % 5), i] = True
    return spec.replace(input_spikes=x)


def _recurrent_flush_spec() -> NetworkSpec:
    """A recurrent neuron's flush closes its synapses' windows early: neuron 0 (its own group, t_ref = 5 ms, flush
    interval 60 ms; no reset on update) hears input 0 only, with a weight that makes it spike once and, when the
    refractory period ends, once more at its own interval step 0; its next spike is three intervals later. Its
    synapses onto the other neurons then see the second spike at their interval step 1 and a flush 60 steps later,
    one step after the window. Neuron 0 has no readout synapse (its flush would end a readout window exactly: NEST
    leaves that undefined, see the last test)."""
    refractory = 5
    spec = make_bsshslm_spec(
        "sine",
        PLAIN,
        iterations=6,
        eta=1e-2,
        task_params={"sequence_steps": T_FLUSH},
        rec_groups=[(PLAIN, 1), (PLAIN, 19)],
        bsshslm={"eprop_reset_neurons_on_update": False},
    )
    meta = dict(spec.meta["bsshslm"])
    g0, g1 = (dict(g) for g in meta["rec_groups"])
    g0["params"] = g0["params"] | {"t_ref": float(refractory), "flush_event_send_interval": float(T_FLUSH)}
    meta["rec_groups"] = [g0, g1]
    masks = {k: v.copy() for k, v in spec.masks.items()}
    masks["in_rec"][0, 1:] = False
    masks["rec_rec"][0, :] = False
    masks["rec_out"][:, 0] = False
    w = {k: v.copy() for k, v in spec.weights.items()}
    w["in_rec"][0, 0] = 2.6  # v = 0.085 mV after the input: spikes, and again 5 steps later, then stays below V_th
    x = spec.input_spikes.copy()
    x[:, 0] = False
    x[[T_FLUSH - refractory, 4 * T_FLUSH - refractory], 0] = True
    return spec.replace(meta=spec.meta | {"bsshslm": meta}, masks=masks, weights=w, input_spikes=x)


def _mixed_spec(flush: bool) -> NetworkSpec:
    """Evidence accumulation (cross-entropy, Adam, averaged gradients) with 10 + 10 plain and adaptive neurons, as
    NEST's classification test (there: 50 + 50, flush interval = the update interval)."""
    return make_bsshslm_spec(
        "evidence",
        PLAIN,
        iterations=5,
        optimizer="adam",
        eta=5e-3,
        rec_groups=[(PLAIN, 10), (ADAPT, 10)],
        flush_event_send_interval=510.0 if flush else None,
    )


def _without_flush(spec: NetworkSpec) -> NetworkSpec:
    meta = dict(spec.meta["bsshslm"])
    meta.pop("input_flush_event_send_interval", None)
    if "rec_groups" in meta:
        meta["rec_groups"] = [g | {"params": _drop_flush(g["params"])} for g in meta["rec_groups"]]
    return spec.replace(meta=spec.meta | {"bsshslm": meta}, rec_params=_drop_flush(spec.rec_params))


def _drop_flush(params: dict) -> dict:
    return {k: v for k, v in params.items() if k != "flush_event_send_interval"}


def _all_adaptive(spec: NetworkSpec) -> NetworkSpec:
    meta = dict(spec.meta["bsshslm"])
    params = next(g["params"] for g in meta.pop("rec_groups") if g["model"] == ADAPT)
    return spec.replace(rec_model=ADAPT, rec_params=params, meta=spec.meta | {"bsshslm": meta})


def _rel_diff(spec: NetworkSpec, a: dict, b: dict) -> dict[str, float]:
    """Per projection max |dW_a - dW_b| / max |dW_b| over existing synapses (dW: change from the initial weights)."""
    out = {}
    for p in PROJ:
        m = spec.masks[p]
        da, db = (a[p] - spec.weights[p])[m], (b[p] - spec.weights[p])[m]
        out[p] = float(np.abs(da - db).max() / np.abs(db).max())
    return out


# case: (spec, flush events, several models)
CASES = {
    "flush": (lambda: _flush_spec(False), True, False),
    "flush_recurrent": (_recurrent_flush_spec, True, False),
    "mixed": (lambda: _mixed_spec(False), False, True),
    "both": (lambda: _flush_spec(True), True, True),
}


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("case", sorted(CASES))
def test_nest_equals_reference_with_flush_events_and_mixed_models(case, threads):
    make, flush, mixed = CASES[case]
    spec = make()
    st = validate_bsshslm(spec)
    assert st.flush == flush and st.mixed == mixed
    nest_run = run_nest_bsshslm(spec, threads=threads)
    ref = run_online_bsshslm(spec)
    for p in PROJ:
        m = spec.masks[p]
        dn, dr = (nest_run.weights[p] - spec.weights[p])[m], (ref.weights[p] - spec.weights[p])[m]
        scale = float(np.abs(dr).max())
        assert scale > 0 and float(np.abs(dn).max()) > 0, f"{p}: no learning happened"
        assert float(np.abs(dn - dr).max()) <= REL_TOL * scale, (p, float(np.abs(dn - dr).max()) / scale)
    np.testing.assert_allclose(nest_run.losses, ref.losses, rtol=1e-12)
    assert len(set(np.round(ref.losses, 12))) > 1
    np.testing.assert_array_equal(nest_run.target_signal, ref.target_signal)
    if threads == 1:  # the test can tell: without what it tests, the replay would be far off
        if case == "flush_recurrent":  # neuron 0 spikes as planned: twice, 5 steps apart, in intervals 0 and 3
            spiked = np.flatnonzero(ref.rec_spikes[:, 0]) + ob.INPUT_STAMP_OFFSET  # update steps
            np.testing.assert_array_equal(spiked, [T_FLUSH - 3, T_FLUSH + 2, 4 * T_FLUSH - 3, 4 * T_FLUSH + 2])
        if st.flush:
            assert ref.n_flush_events >= (2 if case == "flush_recurrent" else 50)
            assert max(_rel_diff(spec, run_online_bsshslm(_without_flush(spec)).weights, ref.weights).values()) > 1e-6
        if st.mixed:
            assert max(_rel_diff(spec, run_online_bsshslm(_all_adaptive(spec)).weights, ref.weights).values()) > 1e-3


def test_nest_classification_setting_mixed_with_flush_events():
    """NEST's classification test's setting (mixed models, flush interval = update interval = 510 ms): the flush
    events change nothing there (every trace has decayed by the window's end), and NEST and the replay agree."""
    spec = _mixed_spec(flush=True)
    ref = run_online_bsshslm(spec)
    assert ref.n_flush_events > 0
    assert _rel_diff(spec, run_nest_bsshslm(spec).weights, ref.weights)["in_rec"] <= REL_TOL
    np.testing.assert_array_equal(run_online_bsshslm(_without_flush(spec)).weights["in_rec"], ref.weights["in_rec"])


@pytest.mark.parametrize(
    "model, task, cutoff",
    [(m, "sine", np.inf) for m in CLASSIC_MODELS]
    + [("eprop_iaf", "sine", 10.0), ("eprop_iaf_adapt", "evidence", 25.0)],
)
def test_flush_events_of_the_classic_models_leave_the_weights_unchanged(model, task, cutoff):
    """The classic engine's models (NEST's eprop_iaf family, nestgrad's eprop_iaf_psc_exp and eprop_glif3_psc, the
    NESTML ones) also send flush events; with their synapses a flush makes the synapse compute the gradient so far
    and apply it with the next spike, which changes no weight. The classic replay (nestgrad.reference.online)
    therefore accepts them and agrees with NEST with a flush event after every silent step."""
    spec = small_spec(model, task)
    spec = spec.replace(
        rec_params=spec.rec_params | {"eprop_isi_trace_cutoff": cutoff, "flush_event_send_interval": 1.0}
    )
    nest_run, ref = run_nest(spec), run_online(spec)
    for p, err in _rel_diff(spec, nest_run.weights, ref.weights).items():
        assert err <= REL_TOL, (p, err)


# -- BPTT and the e-prop gradient at fixed weights with several models -------------------------------------------------
def _mixed_synthetic(loss: str, recurrent: bool, flush: bool = False) -> NetworkSpec:
    """tests/test_bptt_bsshslm.py's synthetic network (15 recurrent neurons) as 7 plain neurons with tau_m = 12 ms
    and 8 adaptive ones with tau_m = 20 ms: propagators differ per target neuron."""
    spec = bsshslm_spec(ADAPT, loss, recurrent=recurrent)
    adapt = dict(spec.rec_params)
    plain = {k: v for k, v in adapt.items() if k not in ("adapt_beta", "adapt_tau", "adaptation")} | {"tau_m": 12.0}
    if flush:
        plain["flush_event_send_interval"] = adapt["flush_event_send_interval"] = 60.0
    groups = [{"model": PLAIN, "n": 7, "params": plain}, {"model": ADAPT, "n": 8, "params": adapt}]
    meta = spec.meta["bsshslm"] | {"rec_groups": groups}
    return spec.replace(rec_model=PLAIN, rec_params={}, meta=spec.meta | {"bsshslm": meta})


@pytest.mark.parametrize("loss", LOSSES)
def test_mixed_forward_is_the_replay_and_eprop_equals_bptt_where_theory_says_so(loss):
    spec = _mixed_synthetic(loss, recurrent=False, flush=True)
    fw = forward(spec)
    ref = run_online_bsshslm(spec)
    assert ref.n_flush_events > 0 and fw.z[:, :7].sum() > 20 and fw.z[:, 7:].sum() > 20
    np.testing.assert_allclose(fw.readout, ref.readout, rtol=0, atol=1e-12)
    ep = eprop_gradient_bsshslm(spec)
    bptt, _ = bptt_gradient_bsshslm(spec, convention="eprop")
    for p in ("in_rec", "rec_out"):
        assert np.abs(bptt[p]).max() > 0
        assert np.abs(ep.gradients[p] - bptt[p]).max() <= 1e-10 * np.abs(bptt[p]).max(), p


@pytest.mark.parametrize("loss", LOSSES)
def test_mixed_bptt_matches_finite_differences_in_smooth_mode(loss):
    spec = _mixed_synthetic(loss, recurrent=True)
    grads, _ = bptt_gradient_bsshslm(spec, convention="full", smooth=True)
    assert_matches_finite_differences(spec, grads, lambda w: forward(spec, w, smooth=True).loss)


# -- what is refused ------------------------------------------------------------------------------------------------
def _edit_group(spec: NetworkSpec, k: int, **change) -> NetworkSpec:
    groups = [dict(g) for g in spec.meta["bsshslm"]["rec_groups"]]
    groups[k] |= change
    return spec.replace(meta=spec.meta | {"bsshslm": spec.meta["bsshslm"] | {"rec_groups": groups}})


def test_invalid_flush_and_group_settings_are_refused_by_name():
    spec = _mixed_synthetic("mean_squared_error", recurrent=True)
    g0 = spec.meta["bsshslm"]["rec_groups"][0]
    cases = [
        (_edit_group(spec, 0, n=8), "groups hold 16 neurons"),
        (_edit_group(spec, 1, model="eprop_iaf"), r"rec_groups'\]\[1\].model"),
        (_edit_group(spec, 0, params=g0["params"] | {"adapt_beta": 1.0}), "belong to eprop_iaf_adapt_bsshslm_2020"),
        (_edit_group(spec, 0, params=g0["params"] | {"flush_event_send_interval": 30.0}), r"\[0\].params.flush_event"),
        (_edit_group(spec, 0, params=g0["params"] | {"ignore_and_spike": True}), "ignore_and_spike"),
        (_edit_group(spec, 0, params=g0["params"] | {"tau_m": [10.0] * 7}), r"\[0\].params.tau_m has 7 values"),
        (_edit_group(spec, 0, params={k: v for k, v in g0["params"].items() if k != "V_th"}), "'V_th'"),
        (
            _edit_group(spec, 1, params=spec.meta["bsshslm"]["rec_groups"][1]["params"] | {"adapt_tau": 0.0}),
            "adapt_tau",
        ),
        (_edit_group(spec, 0, params=g0["params"] | {"E_L": float("nan")}), r"\[0\].params.E_L = nan"),
        (spec.replace(rec_model=ADAPT), "first group's model"),
        (spec.replace(rec_params={"tau_m": 10.0}), "rec_params must be empty"),
        (
            spec.replace(meta=spec.meta | {"bsshslm": spec.meta["bsshslm"] | {"input_flush_event_send_interval": 0.5}}),
            "input_flush_event_send_interval",
        ),
    ]
    for bad, fragment in cases:
        for run in (validate_bsshslm, run_online_bsshslm, forward):
            with pytest.raises(SpecError, match=fragment):
                run(bad)
    uniform = bsshslm_spec(PLAIN, "mean_squared_error")
    with pytest.raises(SpecError, match=r"rec_params.flush_event_send_interval = 59.0 ms must be >="):
        validate_bsshslm(uniform.replace(rec_params=uniform.rec_params | {"flush_event_send_interval": 59.0}))


def test_flush_then_spike_that_nest_leaves_undefined_is_refused():
    """A flush stamped exactly at the end of a readout synapse's window (possible only when a recurrent neuron spikes
    at its own interval step 0) pushes an inter-spike interval that NEST evaluates at the next spike from history
    entries that do not exist yet; the replay refuses to guess."""
    T = 10
    syn = ob._Synapses(np.ones((1, 1)), np.ones((1, 1), bool), {"type": "gradient_descent", "eta": 0.1,
                       "batch_size": 1, "Wmin": -1.0, "Wmax": 1.0}, ob.SHIFT_OUT, False, T)  # fmt: skip
    on, off = np.ones(1, bool), np.zeros(1, bool)

    def grad(p, cols):
        return np.zeros((1, cols.size))

    syn.deliver(on, 23, grad, off)  # readout interval step 0 of interval 2: crossing, opens the window [23, 33)
    syn.deliver(off, 33, grad, on)  # flush exactly at the window's end: not crossing, keeps an interval
    with pytest.raises(SpecError, match="undefined behaviour"):
        syn.deliver(on, 40, grad, off)

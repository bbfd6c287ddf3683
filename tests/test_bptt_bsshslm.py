"""BPTT for NEST's original-formulation e-prop models (``*_bsshslm_2020``): nestgrad.reference.bptt_bsshslm.

Tolerances (docs/reference_engine_bsshslm.md, section BPTT):
* forward == run_online_bsshslm's readout signals at learning rate 0: <= 1e-12 absolute (measured: <= 2.2e-16);
* e-prop == BPTT ("eprop" convention) where theory says so: <= 1e-10 relative to the largest gradient of the
  projection (measured: <= 9e-16);
* BPTT ("full", smooth mode) vs 4th-order central finite differences: <= 1e-5 relative (measured: <= 3e-7).

Where e-prop is exact: feedback = W_out^T, kappa = the readout's decay exp(-dt / tau_m), readout
``regular_spike_arrival = False`` (P_z = 1 - kappa, the factor of e_bar), no V_min clamping; then the readout weights
always, and the input weights of networks without recurrent connections, with or without adaptation (the
eligibility trace psi (z_bar - beta epsilon) is the exact derivative of a neuron's own spikes). This holds for the
cross-entropy loss as well: NEST's error softmax(u) - y* is the exact derivative of logsumexp(u) - y* u, which is
-sum y* log softmax(u) for targets that sum to 1 (one-hot here). The synthetic networks avoid NEST's window
bookkeeping losses (no input spike in data step 1 of an interval); ``test_nest_window_bookkeeping_loses_a_term``
checks what happens otherwise.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from gradient_check import assert_matches_finite_differences

from nestgrad.reference.bptt_bsshslm import bptt_gradient_bsshslm, eprop_gradient_bsshslm, forward
from nestgrad.reference.online_bsshslm import BSSHSLM_MODELS, LOSSES, bsshslm_losses, run_online_bsshslm
from nestgrad.reference.spec import NetworkSpec

T_STEPS, WINDOW_STEPS, TAU_OUT = 60, 20, 25.0


def bsshslm_spec(
    model: str,
    loss: str,
    recurrent: bool = True,
    intervals: int = 3,
    t_ref: float = 0.0,
    input_at_step_1: bool = False,
    regular_spike_arrival_out: bool = False,
    c_reg: float = 300.0,
    meta: dict | None = None,
    seed: int = 3,
) -> NetworkSpec:
    """A small bsshslm network without NEST: 20 inputs, 15 recurrent neurons, 2 (MSE) or 3 (cross-entropy) readouts,
    ``intervals`` update intervals of 60 steps with a 20-step learning window, symmetric feedback,
    kappa = readout decay. Sine targets (MSE) or one class per interval (one-hot, cross-entropy)."""
    rng = np.random.default_rng(seed)
    n_in, n_rec, n_out = 20, 15, 2 if loss == "mean_squared_error" else 3
    steps = intervals * T_STEPS
    rec = dict(
        C_m=1.0,
        c_reg=c_reg,
        E_L=-70.0,
        f_target=10.0,
        I_e=0.0,
        regular_spike_arrival=True,
        surrogate_gradient_function="piecewise_linear",
        surrogate_gradient_height=0.3,
        surrogate_gradient_width=0.5,
        t_ref=t_ref,
        tau_m=20.0,
        V_m=-70.0,
        V_th=-69.4,
        V_min=-1e300,
    )
    if model == "eprop_iaf_adapt_bsshslm_2020":
        rec |= dict(adapt_beta=0.2, adapt_tau=200.0, adaptation=0.0)
    out = dict(
        C_m=1.0,
        E_L=0.3,
        I_e=0.0,
        regular_spike_arrival=regular_spike_arrival_out,
        tau_m=TAU_OUT,
        V_m=0.3,
        V_min=-1e300,
    )
    w = {
        "in_rec": rng.normal(0, 0.4, (n_rec, n_in)),
        "rec_rec": rng.normal(0, 0.2, (n_rec, n_rec)),
        "rec_out": rng.normal(0, 2.0, (n_out, n_rec)),
    }
    w["feedback"] = w["rec_out"].T.copy()
    masks = {
        "in_rec": np.ones((n_rec, n_in), bool),
        "rec_rec": ~np.eye(n_rec, dtype=bool) & recurrent,
        "rec_out": np.ones((n_out, n_rec), bool),
    }
    x = rng.random((steps, n_in)) < 0.05
    if not input_at_step_1:
        x[np.arange(steps) % T_STEPS == 1] = False
    if loss == "mean_squared_error":
        target = np.sin(np.arange(steps)[:, None] / 10 + np.arange(n_out))
    else:
        target = np.zeros((steps, n_out))
        target[np.arange(steps), np.repeat(rng.integers(0, n_out, intervals), T_STEPS)] = 1.0
    window = ((np.arange(steps) % T_STEPS) >= T_STEPS - WINDOW_STEPS).astype(float)
    opt = {"type": "gradient_descent", "eta": 0.0, "Wmin": -100.0, "Wmax": 100.0, "batch_size": 1}
    b = {
        "eprop_update_interval": float(T_STEPS),
        "eprop_learning_window": float(WINDOW_STEPS),
        "loss": loss,
        "average_gradient": loss == "cross_entropy",
        "tau_m_readout": TAU_OUT,
    } | dict(meta or {})
    return NetworkSpec(1.0, model, rec, out, w, masks, opt, x, target, window, steps, meta={"bsshslm": b})


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel(), b.ravel()
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


# -- (a) the forward pass is the replay -------------------------------------------------------------------------------
VARIANTS = {
    "default": {},
    "no_reset_averaged": {"eprop_reset_neurons_on_update": False, "average_gradient": True},
    "unnormalised_lw_eq_T": {"readout_normalization": False, "eprop_learning_window": float(T_STEPS)},
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("model", BSSHSLM_MODELS)
def test_forward_equals_replay(model, loss, variant):
    spec = bsshslm_spec(model, loss, t_ref=3.0, meta=VARIANTS[variant])
    if variant == "unnormalised_lw_eq_T":
        spec = spec.replace(window=np.ones_like(spec.window))
    fw = forward(spec)
    ref = run_online_bsshslm(spec)
    assert fw.z[2:-5].sum() > 100 and ref.rec_spikes.sum() == fw.z[2:-3].sum()
    np.testing.assert_allclose(fw.readout, ref.readout, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fw.error_signal, ref.error_signal, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(fw.target_signal, ref.target_signal)
    # the task part of E is NEST's loss (one-hot targets: cross-entropy), over the learning window, divided by A
    st = fw.settings
    a = st.learning_window if st.average_gradient else 1
    if not (loss == "cross_entropy" and variant == "unnormalised_lw_eq_T"):  # there y = 1, E is linear in u
        assert math.isclose(fw.loss_task, ref.losses.sum() / a, rel_tol=1e-12)
    assert fw.loss_reg > 0 and math.isclose(fw.interval_loss.sum(), fw.loss, rel_tol=1e-12)


@pytest.mark.parametrize("task", ["sine", "evidence"])
@pytest.mark.parametrize("model", BSSHSLM_MODELS)
def test_forward_equals_replay_for_nest_example_networks(model, task):
    """The networks of tests/test_reference_bsshslm.py (NEST's example parameters: t_ref 5 ms and
    regular_spike_arrival for evidence, adaptation, cross-entropy with softmax normalisation)."""
    pytest.importorskip("nest")
    from nestgrad.comparison.bsshslm_nest import make_bsshslm_spec

    spec = make_bsshslm_spec(task, model, n_rec=30, iterations=2, eta=0.0)
    fw, ref = forward(spec), run_online_bsshslm(spec)
    assert fw.z.sum() > 50
    np.testing.assert_allclose(fw.readout, ref.readout, rtol=0, atol=1e-12)
    st = fw.settings
    a = st.learning_window if st.average_gradient else 1
    assert math.isclose(fw.loss_task, bsshslm_losses(ref.readout, ref.target_signal, spec, st).sum() / a, rel_tol=1e-12)


# -- (b) e-prop vs BPTT -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("model", BSSHSLM_MODELS)
def test_eprop_equals_bptt_where_theory_says_so(model, loss):
    """No recurrent connections: input and readout weights exact, for both losses and with adaptation."""
    spec = bsshslm_spec(model, loss, recurrent=False)
    ep = eprop_gradient_bsshslm(spec)
    bptt, fw = bptt_gradient_bsshslm(spec, convention="eprop")
    assert fw.z.sum() > 100
    # the instrumented replay: closed windows are what run_online_bsshslm hands to the optimizer; open ones matter
    for p in ("in_rec", "rec_out"):
        np.testing.assert_array_equal(ep.closed[p], ep.result.gradients[p])
        assert np.abs(ep.closed[p]).max() > 0 and np.abs(ep.open[p]).max() > 0
        assert np.abs(bptt[p]).max() > 0
        assert _rel(ep.gradients[p], bptt[p]) <= 1e-10, p
    assert not ep.gradients["rec_rec"].any() and not bptt["rec_rec"].any()
    # "full" also differentiates the spike reset, which e-prop ignores: input gradients differ, readout ones do not
    full, _ = bptt_gradient_bsshslm(spec, convention="full")
    assert _rel(full["rec_out"], bptt["rec_out"]) <= 1e-12
    assert _rel(full["in_rec"], bptt["in_rec"]) > 1e-3


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("model", BSSHSLM_MODELS)
def test_eprop_with_recurrence_exact_for_readout_only(model, loss):
    """Recurrent connections (and refractoriness): readout weights stay exact; e-prop drops the gradient paths through
    other neurons, so input and recurrent weights are an approximation, correlated with BPTT."""
    spec = bsshslm_spec(model, loss, recurrent=True, t_ref=2.0)
    ep = eprop_gradient_bsshslm(spec)
    bptt, _ = bptt_gradient_bsshslm(spec, convention="eprop")
    assert _rel(ep.gradients["rec_out"], bptt["rec_out"]) <= 1e-10
    for p in ("in_rec", "rec_rec"):
        assert _rel(ep.gradients[p], bptt[p]) > 1e-3
        assert 0.0 < _cos(ep.gradients[p], bptt[p]) < 0.999999


def test_nest_window_bookkeeping_loses_a_term():
    """An input spike stamped t_next_update + 3 (data step 1 of an interval; step 0 is dropped) closes the previous
    window before the learning signal of its last entry has arrived: NEST (and the replay) count it as zero. Exactly
    those input neurons' gradients differ from BPTT; all others stay exact."""
    spec = bsshslm_spec("eprop_iaf_bsshslm_2020", "mean_squared_error", recurrent=False, input_at_step_1=True)
    ep = eprop_gradient_bsshslm(spec)
    bptt, _ = bptt_gradient_bsshslm(spec)
    steps = np.arange(spec.input_spikes.shape[0])
    closing = spec.input_spikes[(steps % T_STEPS == 1) & (steps >= T_STEPS)].any(0)  # intervals after the first
    assert 0 < closing.sum() < spec.n_in
    col_err = np.abs(ep.gradients["in_rec"] - bptt["in_rec"]).max(0) / np.abs(bptt["in_rec"]).max()
    assert np.all(col_err[~closing] <= 1e-10)
    assert np.all(col_err[closing] > 1e-4)
    assert _rel(ep.gradients["rec_out"], bptt["rec_out"]) <= 1e-10


def test_readout_regular_spike_arrival_scales_the_learning_signal():
    """With readout regular_spike_arrival = True (P_z = 1) a spike moves the readout by w, but e_bar is filtered
    with 1 - kappa: without regularisation e-prop's input gradient is exactly (1 - kappa) times BPTT's."""
    spec = bsshslm_spec(
        "eprop_iaf_bsshslm_2020", "mean_squared_error", recurrent=False, regular_spike_arrival_out=True, c_reg=0.0
    )
    ep = eprop_gradient_bsshslm(spec)
    bptt, _ = bptt_gradient_bsshslm(spec)
    assert _rel(ep.gradients["rec_out"], bptt["rec_out"]) <= 1e-10
    assert _rel(ep.gradients["in_rec"], (1.0 - math.exp(-1.0 / TAU_OUT)) * bptt["in_rec"]) <= 1e-10


# -- (c) BPTT vs finite differences -----------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["default", "no_reset"])
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("model", BSSHSLM_MODELS)
def test_bptt_matches_finite_differences_in_smooth_mode(model, loss, variant):
    """Fourth-order central differences (h = 1e-5) of E in smooth mode ("full", t_ref = 0). Rounding limits a
    difference quotient to ~1e-9 absolute: components are compared relative to max(|fd|, 1e-3 * largest gradient of
    the projection)."""
    meta = {"eprop_reset_neurons_on_update": False} if variant == "no_reset" else {}
    spec = bsshslm_spec(model, loss, recurrent=True, meta=meta)
    grads, _ = bptt_gradient_bsshslm(spec, convention="full", smooth=True)
    assert_matches_finite_differences(spec, grads, lambda w: forward(spec, w, smooth=True).loss)


def test_invalid_arguments():
    spec = bsshslm_spec("eprop_iaf_bsshslm_2020", "mean_squared_error", t_ref=2.0)
    with pytest.raises(ValueError, match="t_ref"):
        forward(spec, smooth=True)
    with pytest.raises(ValueError, match="convention"):
        bptt_gradient_bsshslm(spec, convention="truncated")
    short = spec.replace(meta={"bsshslm": spec.meta["bsshslm"] | {"extra_steps": 4}})
    with pytest.raises(ValueError, match="extra_steps"):
        eprop_gradient_bsshslm(short)

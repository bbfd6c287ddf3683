"""EventProp in NEST, backward pass (issue 20, milestone 3): the weight gradients that NEST computes (forward and
backward pass of every trial in one ``Simulate``, adjoint carried over reverse connections) equal the reference
engine's ``evaluate(...).grad_weights`` per synapse.

Networks: input -> spiking hidden layer (plain LIF, refractory, adaptive, tau_m == tau_syn; feedforward, two
hidden layers, recurrent) -> leaky readouts, loss ``ReadoutCrossEntropy`` on the mean (``sum``) and on the
maximum (``max``, including maxima that sit on an arrival: the kink term) and on the exponentially weighted mean
(``sum_exp``, tau_w = 15 ms) voltage, 3 trials with different labels, 1 and 2 threads. The rule is the one of
tests/test_eventprop_reference.py: |g_nest - g_ref| <= 1e-9 max(|g_ref|, 1e-3 max_k |g_ref,k|), i.e. 1e-9
relative, gradients below 1e-3 of the largest held to 1e-9 of it.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from test_eventprop_nest_forward import on_grid
from test_eventprop_reference import make_net, make_trials

from nestgrad.errors import ModelError
from nestgrad.nest_engine.eventprop import run_gradients
from nestgrad.reference.eventprop import ReadoutCrossEntropy, ReadoutMSE, compile_network, evaluate

RTOL = 1e-9

CASES = {
    "lif": ("ff", {}),
    "refractory": ("ff", {"t_ref": 1.5}),
    "alif": ("ff", {"t_ref": 0.7, "adapt_beta": 0.3, "adapt_tau": 20.0}),
    "equal_taus": ("ff", {"tau_syn": 10.0, "t_ref": 0.3}),
    "two_layer": ("two_layer", {"t_ref": 0.5}),
    "recurrent": ("recurrent", {}),
    "recurrent_refractory": ("recurrent", {"t_ref": 1.5}),
    "recurrent_alif": ("recurrent", {"t_ref": 0.7, "adapt_beta": 0.3, "adapt_tau": 20.0}),
}


def max_rel_err(ref: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> dict[str, float]:
    """Per projection, max over edges of |got - ref| / max(|ref|, 1e-3 max |ref|) (max over all projections)."""
    g_max = max(float(np.max(np.abs(g), initial=0.0)) for g in ref.values())
    out = {}
    for name, r in ref.items():
        err = np.abs(got[name] - r) / np.maximum(np.abs(r), 1e-3 * g_max)
        out[name] = float(np.max(err, initial=0.0))
    return out


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("mode", ["sum", "max", "sum_exp"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_eventprop_nest_gradients_equal_reference(case: str, mode: str, threads: int) -> None:
    loss = ReadoutCrossEntropy("out", mode=mode, tau_w=15.0 if mode == "sum_exp" else None)
    kind, over = CASES[case]
    n_kinks = 0
    nonzero: dict[str, int] = {}
    total: dict[str, int] = {}
    for seed in (1, 2, 3):
        net = on_grid(make_net(kind, seed, n_hid=6, **over))
        trials = make_trials(seed, n_trials=3)
        ref = evaluate(net, trials, loss)
        got = run_gradients(net, trials, loss, threads=threads)
        assert got.losses.mean() == pytest.approx(ref.loss, rel=1e-12)
        n_spikes = sum(len(r.spike_t) for r in ref.records)
        assert n_spikes >= 10, f"{case} seed {seed}: only {n_spikes} hidden spikes"
        for name, r in ref.grad_weights.items():
            nonzero[name] = nonzero.get(name, 0) + int(np.count_nonzero(r))
            total[name] = total.get(name, 0) + len(r)
        cnet = compile_network(net)
        n_kinks += sum(len(loss(cnet, rec, trial).kink) for rec, trial in zip(ref.records, trials, strict=True))
        errs = max_rel_err(ref.grad_weights, got.grad_weights)
        print(f"{case} {mode} seed {seed} threads {threads}: {n_spikes} spikes, max_rel_err {errs}")
        for name, err in errs.items():
            assert err <= RTOL, f"{case} seed {seed} projection {name}: max relative error {err:.3e}"
    for name, n in nonzero.items():
        # (with "max", a trial whose readouts peak at t = 0 has zero gradients: counted over the three networks)
        assert n >= total[name] // 4, f"{case}: only {n} of {total[name]} gradients of {name} nonzero"
    if mode == "max":
        # a readout's maximum on an (inhibitory) arrival: the kink term must have been exercised
        assert n_kinks >= 1, f"{case}: no maximum sat on an arrival"


def test_eventprop_nest_gradients_without_records_are_the_same() -> None:
    """record=False (no spike and readout records, for long runs) changes nothing in the gradients; the forward
    records of a gradient run equal the reference's spikes."""
    loss = ReadoutCrossEntropy("out", mode="max")
    net = on_grid(make_net("recurrent", 3, t_ref=0.7))
    trials = make_trials(3, n_trials=2)
    with_rec = run_gradients(net, trials, loss)
    without = run_gradients(net, trials, loss, record=False)
    for name, g in with_rec.grad_weights.items():
        np.testing.assert_array_equal(without.grad_weights[name], g)
    assert all(len(t) == 0 for per_trial in without.forward.spike_times for t in per_trial.values())
    ref = evaluate(net, trials, loss)
    for k, rec in enumerate(ref.records):
        for j, times in with_rec.forward.spike_times[k].items():
            np.testing.assert_allclose(times, rec.spike_times(j), rtol=0, atol=1e-12)


def test_eventprop_nest_input_spikes_at_trial_start_and_on_step_edges() -> None:
    """An input spike at t = 0 (sent in the trial's first step with offset h, see eventprop_input_ps) and inputs on
    step edges k h reach the network in the forward and the backward pass: gradients equal the reference's (every
    trial of a batch, so also at the start of a trial that follows another one's backward pass)."""
    loss = ReadoutCrossEntropy("out", mode="sum")
    net = on_grid(make_net("recurrent", 2, n_hid=6, t_ref=0.5))
    trials = make_trials(2, n_trials=3)
    for trial in trials:
        spikes = trial.inputs["in"]
        spikes[0] = np.concatenate([[0.0], spikes[0]])
        spikes[1] = np.sort(np.concatenate([[0.0, 0.1, 2.0], spikes[1]]))
    ref = evaluate(net, trials, loss)
    got = run_gradients(net, trials, loss)
    assert got.losses.mean() == pytest.approx(ref.loss, rel=1e-12)
    for k, rec in enumerate(ref.records):
        for j, times in got.forward.spike_times[k].items():
            np.testing.assert_allclose(times, rec.spike_times(j), rtol=0, atol=1e-9)
    for name, err in max_rel_err(ref.grad_weights, got.grad_weights).items():
        assert err <= RTOL, f"projection {name}: max relative error {err:.3e}"
    # the t = 0 spikes matter: without them the loss differs
    without = [dataclasses.replace(t, inputs={"in": [s[s > 0.0] for s in t.inputs["in"]]}) for t in trials]
    assert evaluate(net, without, loss, gradient=False).loss != pytest.approx(ref.loss, rel=1e-9)


def test_eventprop_nest_gradients_refuse_what_is_not_implemented() -> None:
    trials = make_trials(1)
    net = on_grid(make_net("ff", 1))
    with pytest.raises(
        ModelError, match=r"ReadoutCrossEntropy \(mode 'sum', 'max' or 'sum_exp'\) so far, not ReadoutMSE"
    ):
        run_gradients(net, trials, ReadoutMSE("out"))


def reference_training(net, trials, loss, opt: dict) -> dict[str, np.ndarray]:
    """The same training with the reference engine and the optimizer in NumPy (NEST's rule as nestgrad's e-prop
    synapses apply it: mean gradient of a batch; Adam with bias correction folded into the step size; clipping).
    ``loss``: one loss, or a tuple (loss, regulariser, ...) as ``run_training`` takes it."""
    losses = loss if isinstance(loss, tuple) else (loss,)
    weights = {p.name: np.asarray(p.weights, float).copy() for p in net.projections}
    m = {k: np.zeros_like(w) for k, w in weights.items()}
    v = {k: np.zeros_like(w) for k, w in weights.items()}
    b1p = b2p = 1.0
    bs = opt["batch_size"]
    for start in range(0, len(trials), bs):
        batch = trials[start : start + bs]
        grads = evaluate(net.with_weights(weights), batch, losses[0], regularisers=losses[1:]).grad_weights
        if opt["type"] == "adam":
            b1p *= opt["beta_1"]
            b2p *= opt["beta_2"]
            alpha = opt["eta"] * np.sqrt(1.0 - b2p) / (1.0 - b1p)
        for k, g in grads.items():
            if opt["type"] == "adam":
                m[k] = opt["beta_1"] * m[k] + (1.0 - opt["beta_1"]) * g
                v[k] = opt["beta_2"] * v[k] + (1.0 - opt["beta_2"]) * g * g
                new = weights[k] - alpha * m[k] / (np.sqrt(v[k]) + opt["epsilon"])
            else:
                new = weights[k] - opt["eta"] * g
            weights[k] = np.clip(new, opt["Wmin"], opt["Wmax"])
    return weights


def assert_training_equals_reference(net, want: dict[str, np.ndarray], got, label: str) -> None:
    """NEST's training ``got`` (a ``run_training`` result) against the reference's weights ``want`` (per projection):
    every projection's weights moved (> 1e-3 somewhere, or the test would say little), NEST's weights equal ``want``
    to RTOL relative (|got - want| / max(|want|, 1e-3 max |want|)), and the reverse copy of every edge (all but the
    input edges have one) has the same weight and gradient sum as its forward connection, bit for bit."""
    for name, w in want.items():
        w0 = np.asarray(net.projection(name).weights, float)
        moved = np.abs(w - w0)
        assert np.max(moved) > 1e-3, f"{name}: the weights hardly moved, the test would say little"
        err = np.abs(got.weights[name] - w) / np.maximum(np.abs(w), 1e-3 * np.max(np.abs(w)))
        print(f"{label} {name}: max moved {np.max(moved):.3g}, max rel err {np.max(err):.2e}")
        assert np.max(err) <= RTOL, f"{name}: weights differ from the reference by {np.max(err):.3e} relative"
        has_rev = ~np.isnan(got.reverse_weights[name])
        if name != "in_hid":
            assert np.all(has_rev), name
        np.testing.assert_array_equal(got.reverse_weights[name][has_rev], got.weights[name][has_rev])
        np.testing.assert_array_equal(got.reverse_gradient_sum[name][has_rev], got.gradient_sum[name][has_rev])


OPTIMIZERS = {
    "gradient_descent": {"type": "gradient_descent", "eta": 0.05, "Wmin": -5.0, "Wmax": 5.0},
    "adam": {"type": "adam", "eta": 0.01, "Wmin": -5.0, "Wmax": 5.0, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8},
}


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
def test_eventprop_nest_training_equals_reference(opt_name: str, threads: int) -> None:
    """3 batches of 2 trials on a recurrent network: the weights NEST learns (the step applied inside the synapses
    once per batch) equal the reference gradients + the same optimizer in NumPy to 1e-9 relative, and the reverse
    copy of every edge has the same weight and gradient as its forward connection, bit for bit."""
    from nestgrad.nest_engine.eventprop import run_training

    loss = ReadoutCrossEntropy("out", mode="sum")
    net = on_grid(make_net("recurrent", 2, n_hid=6, t_ref=0.7, adapt_beta=0.2, adapt_tau=20.0))
    trials = make_trials(2, n_trials=6)
    opt = dict(OPTIMIZERS[opt_name], batch_size=2)
    want = reference_training(net, trials, loss, opt)
    got = run_training(net, trials, loss, opt, threads=threads)
    assert_training_equals_reference(net, want, got, f"{opt_name} threads {threads}")


WINDOW_CASES = ["lif", "two_layer", "recurrent", "recurrent_alif"]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("mode", ["sum", "max", "sum_exp"])
@pytest.mark.parametrize("case", WINDOW_CASES)
def test_eventprop_nest_window_gradients_equal_reference(case: str, mode: str, threads: int) -> None:
    """The cross-entropy over a response window [15, 40] ms (inputs spike in [0, 24] ms): y, the readout's forced
    adjoint (zero forcing before the window) and the reverse synapses' closed form equal the reference's
    ``ReadoutCrossEntropy(..., window_start=15)``, per synapse to 1e-9 relative."""
    loss = ReadoutCrossEntropy("out", mode=mode, tau_w=15.0 if mode == "sum_exp" else None, window_start=15.0)
    whole = ReadoutCrossEntropy("out", mode=mode, tau_w=15.0 if mode == "sum_exp" else None)
    kind, over = CASES[case]
    differs = False
    for seed in (1, 2, 3):
        net = on_grid(make_net(kind, seed, n_hid=6, **over))
        trials = make_trials(seed, n_trials=3)
        ref = evaluate(net, trials, loss)
        got = run_gradients(net, trials, loss, threads=threads)
        assert got.losses.mean() == pytest.approx(ref.loss, rel=1e-12)
        assert sum(len(r.spike_t) for r in ref.records) >= 10
        ref_whole = evaluate(net, trials, whole)
        differs |= any(not np.allclose(ref_whole.grad_weights[k], g) for k, g in ref.grad_weights.items())
        errs = max_rel_err(ref.grad_weights, got.grad_weights)
        print(f"window {case} {mode} seed {seed} threads {threads}: max_rel_err {errs}")
        for name, err in errs.items():
            assert err <= RTOL, f"{case} seed {seed} projection {name}: max relative error {err:.3e}"
            assert np.count_nonzero(ref.grad_weights[name]) > 0, name
    assert differs, "the window changed no gradient: the test would not see a missing window"


@pytest.mark.parametrize("threads", [1, 2])
def test_eventprop_nest_window_training_equals_reference(threads: int) -> None:
    """Adam, 3 batches of 2 trials, recurrent ALIF network, loss on the mean over [15, 40] ms: NEST's weights equal
    the reference's training to 1e-9 relative; both copies of every edge bit-equal."""
    from nestgrad.nest_engine.eventprop import run_training

    loss = ReadoutCrossEntropy("out", mode="sum", window_start=15.0)
    net = on_grid(make_net("recurrent", 2, n_hid=6, t_ref=0.7, adapt_beta=0.2, adapt_tau=20.0))
    trials = make_trials(2, n_trials=6)
    opt = dict(OPTIMIZERS["adam"], batch_size=2)
    want = reference_training(net, trials, loss, opt)
    got = run_training(net, trials, loss, opt, threads=threads)
    assert_training_equals_reference(net, want, got, f"window threads {threads}")


def test_eventprop_nest_window_outside_the_trial_is_refused() -> None:
    from nestgrad.errors import ConfigError

    net = on_grid(make_net("ff", 1))
    with pytest.raises(ConfigError, match=r"window_start = 40.0 ms.*T = 40.0 ms"):
        run_gradients(net, make_trials(1), ReadoutCrossEntropy("out", "sum", window_start=40.0))
    # the model refuses it too (and negative or non-finite values), naming the parameter
    from nestgrad.nest_engine import fresh_kernel

    nest = fresh_kernel(0.1, 1)
    node = nest.Create("eventprop_readout_ps", params={"trial_duration": 40.0, "trial_period": 100.0})
    for bad in (40.0, 50.0, -1.0, float("nan")):
        with pytest.raises(nest.NESTError, match="window_start"):
            node.set({"window_start": bad})
    node.set({"window_start": 39.5})
    assert node.get("window_start") == 39.5

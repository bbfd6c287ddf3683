"""EventProp in NEST, backward pass (issue 20, milestone 3): the weight gradients that NEST computes (forward and
backward pass of every trial in one ``Simulate``, adjoint carried over reverse connections) equal the reference
engine's ``evaluate(...).grad_weights`` per synapse.

Networks: input -> spiking hidden layer (plain LIF, refractory, adaptive, tau_m == tau_syn; feedforward, two
hidden layers, recurrent) -> leaky readouts, loss ``ReadoutCrossEntropy(mode="sum")``, 3 trials with different
labels, 1 and 2 threads. The rule is the one of
tests/test_eventprop_reference.py: |g_nest - g_ref| <= 1e-9 max(|g_ref|, 1e-3 max_k |g_ref,k|), i.e. 1e-9
relative, gradients below 1e-3 of the largest held to 1e-9 of it.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_eventprop_nest_forward import on_grid
from test_eventprop_reference import make_net, make_trials

from nestgrad.errors import ModelError
from nestgrad.nest_engine.eventprop import run_gradients
from nestgrad.reference.eventprop import ReadoutCrossEntropy, evaluate

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
@pytest.mark.parametrize("case", sorted(CASES))
def test_eventprop_nest_gradients_equal_reference(case: str, threads: int) -> None:
    loss = ReadoutCrossEntropy("out", mode="sum")
    kind, over = CASES[case]
    for seed in (1, 2, 3):
        net = on_grid(make_net(kind, seed, n_hid=6, **over))
        trials = make_trials(seed, n_trials=3)
        ref = evaluate(net, trials, loss)
        got = run_gradients(net, trials, loss, threads=threads)
        assert got.losses.mean() == pytest.approx(ref.loss, rel=1e-12)
        n_spikes = sum(len(r.spike_t) for r in ref.records)
        assert n_spikes >= 10, f"{case} seed {seed}: only {n_spikes} hidden spikes"
        for name, r in ref.grad_weights.items():
            assert np.count_nonzero(r) >= len(r) // 2, f"{name}: too few nonzero gradients to compare"
        errs = max_rel_err(ref.grad_weights, got.grad_weights)
        print(f"{case} seed {seed} threads {threads}: {n_spikes} spikes, max_rel_err {errs}")
        for name, err in errs.items():
            assert err <= RTOL, f"{case} seed {seed} projection {name}: max relative error {err:.3e}"


def test_eventprop_nest_gradients_refuse_what_is_not_implemented() -> None:
    trials = make_trials(1)
    net = on_grid(make_net("ff", 1))
    with pytest.raises(ModelError, match=r"ReadoutCrossEntropy\(mode='sum'\) so far.*mode 'max'"):
        run_gradients(net, trials, ReadoutCrossEntropy("out", mode="max"))

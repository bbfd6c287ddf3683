"""First-spike-time gradients of the EventProp reference engine against the closed form of Göltz et al. 2021
(Nat. Mach. Intell. 3:823, Methods) for tau_m == tau_syn, on random single-layer networks and on a two-layer network
where the closed form is chained (issue 21, item 2).

With tau_m == tau_syn = tau, E_L = 0 and a current that jumps by w at an arrival (nestgrad's convention; Göltz et al.
scale the jump by 1/tau_s, which moves tau_s into their threshold constant: eventprop-notes point 8), the voltage
after the arrivals t_i of a causal set is v(t) = (1/C) sum_i w_i (t - t_i) exp(-(t - t_i)/tau). With
a = sum_i w_i exp(t_i/tau) and b = sum_i w_i t_i exp(t_i/tau), v(t) = theta has the earliest solution

    t* = b/a - tau W0(z),   z = -(C theta / (a tau)) exp(b / (a tau))

valid when a > 0, z >= -1/e and t* lies between the last arrival of the set and the next arrival. Its derivatives
follow from W0'(z) = W0 / (z (1 + W0)) and those of a and b. scipy's lambertw is the independent oracle; the engine
finds crossings by its own root finder. Tolerance: 1e-9 relative, the issue's figure.

Both gradient engines are held to the closed form: the reference engine (``evaluate``) and EventProp inside NEST
(``nest_engine.eventprop.run_gradients``: exact off-grid spike times, the first-spike loss's softmax exchanged
between the output neurons inside NEST). Delays lie on NEST's 0.1 ms grid so that both run the same network.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special

from nestgrad.reference.eventprop import FirstSpikeLoss, Network, Population, Projection, Trial, evaluate

ENGINES = ("reference", "nest")
RESOLUTION = 0.1  # ms: NEST's grid; delays are drawn on it

TAU, C, THETA = 5.0, 1.0, 1.0
LIF = dict(C_m=C, tau_m=TAU, tau_syn=TAU, E_L=0.0, V_th=THETA, V_reset=0.0, t_ref=1000.0)  # one spike per trial


def closed_form(arrivals: np.ndarray, w: np.ndarray) -> tuple[float, np.ndarray, np.ndarray] | None:
    """First spike time and its derivatives w.r.t. each weight and each arrival time (0 for non-causal inputs);
    None if the neuron does not reach threshold."""
    order = np.argsort(arrivals, kind="stable")
    t_s, w_s = arrivals[order], w[order]
    for k in range(1, len(t_s) + 1):
        e = np.exp(t_s[:k] / TAU)
        a, b = float(np.sum(w_s[:k] * e)), float(np.sum(w_s[:k] * t_s[:k] * e))
        if a <= 0:
            continue
        z = -(C * THETA / (a * TAU)) * math.exp(b / (a * TAU))
        if z < -1 / math.e:
            continue
        W = float(special.lambertw(z, 0).real)
        t = b / a - TAU * W
        nxt = t_s[k] if k < len(t_s) else np.inf
        if not (t_s[k - 1] <= t < nxt):
            continue
        dW_dz = W / (z * (1 + W))
        # d(b/a) and dz for weights and arrival times of the causal set
        da_dw, db_dw = e, t_s[:k] * e
        da_dt, db_dt = w_s[:k] * e / TAU, w_s[:k] * e * (1 + t_s[:k] / TAU)
        out = []
        for da, db in ((da_dw, db_dw), (da_dt, db_dt)):
            d_ba = (db * a - b * da) / a**2
            dz = z * (-da / a + d_ba / TAU)
            g = np.zeros(len(t_s))
            g[:k] = d_ba - TAU * dW_dz * dz
            unsorted = np.zeros(len(t_s))
            unsorted[order] = g
            out.append(unsorted)
        return t, out[0], out[1]
    return None


def goltz_dl_dt(t_first: np.ndarray, label: int, loss: FirstSpikeLoss, spiked: np.ndarray) -> np.ndarray:
    scale = loss.xi * TAU
    z = -t_first / scale
    p = np.exp(z - z.max())
    p /= p.sum()
    g = -(p - np.eye(len(t_first))[label]) / scale
    g[label] += loss.alpha / (loss.beta * TAU) * math.exp(t_first[label] / (loss.beta * TAU))
    return np.where(spiked, g, 0.0)


def dense(name: str, src: str, dst: str, w: np.ndarray, d: np.ndarray) -> Projection:
    n_src, n_dst = w.shape
    s, t = np.meshgrid(np.arange(n_src), np.arange(n_dst), indexing="ij")
    return Projection(name, src, dst, s.ravel(), t.ravel(), w.ravel(), d.ravel())


def gradients(engine: str, net: Network, trial: Trial, loss: FirstSpikeLoss) -> tuple[np.ndarray, dict]:
    """First spike times of the outputs (T without a spike) and dL/dw per projection, from one engine."""
    if engine == "reference":
        res = evaluate(net, [trial], loss)
        return np.asarray(res.outputs[0], float), res.grad_weights
    from nestgrad.nest_engine.eventprop import run_gradients

    res = run_gradients(net, [trial], loss, resolution=RESOLUTION)
    t_first = np.asarray(res.outputs[0], float)
    return np.where(np.isinf(t_first), net.T, t_first), res.grad_weights  # NEST: +inf without a spike


def grid_delays(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    return rng.integers(5, 21, size=shape) * RESOLUTION  # 0.5 .. 2.0 ms


def assert_rel(got: np.ndarray, want: np.ndarray, rtol: float = 1e-9) -> None:
    scale = np.maximum(np.abs(want), 1e-3 * np.max(np.abs(want)))  # gradients below 1e-3 of the largest: absolute
    assert np.max(np.abs(got - want) / scale) <= rtol, (got, want)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("seed", range(6))
def test_single_layer_first_spike_gradients_equal_the_closed_form(seed, engine):
    rng = np.random.default_rng(seed)
    n_in, n_out, T = 6, 3, 40.0
    w = rng.uniform(-0.3, 1.2, size=(n_in, n_out))
    d = grid_delays(rng, (n_in, n_out))
    t_in = rng.uniform(0.0, 10.0, size=n_in)
    label = int(rng.integers(n_out))
    pops = (Population("in", n_in, "input"), Population("out", n_out, "lif", LIF))
    net = Network(pops, (dense("in_out", "in", "out", w, d),), T)
    loss = FirstSpikeLoss("out")
    outputs, grads = gradients(engine, net, Trial({"in": [[t] for t in t_in]}, label=label), loss)

    t_first, dt_dw, spiked = np.full(n_out, T), np.zeros((n_in, n_out)), np.zeros(n_out, bool)
    for o in range(n_out):
        cf = closed_form(t_in + d[:, o], w[:, o])
        if cf is not None:
            t_first[o], dt_dw[:, o], _ = cf
            spiked[o] = True
    assert spiked.any(), "the random case should make at least one output spike"
    assert np.allclose(outputs, t_first, rtol=1e-12, atol=1e-12)
    dl_dt = goltz_dl_dt(t_first, label, loss, spiked)
    assert_rel(grads["in_out"], (dt_dw * dl_dt).ravel())


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("seed", range(4))
def test_two_layer_first_spike_gradients_equal_the_chained_closed_form(seed, engine):
    rng = np.random.default_rng(100 + seed)
    n_in, n_hid, n_out, T = 5, 4, 2, 60.0
    w1 = rng.uniform(0.2, 1.5, size=(n_in, n_hid))
    w2 = rng.uniform(-0.2, 1.5, size=(n_hid, n_out))
    d1 = grid_delays(rng, (n_in, n_hid))
    d2 = grid_delays(rng, (n_hid, n_out))
    t_in = rng.uniform(0.0, 8.0, size=n_in)
    label = int(rng.integers(n_out))
    pops = (Population("in", n_in, "input"), Population("hid", n_hid, "lif", LIF), Population("out", n_out, "lif", LIF))
    net = Network(pops, (dense("in_hid", "in", "hid", w1, d1), dense("hid_out", "hid", "out", w2, d2)), T)
    loss = FirstSpikeLoss("out")
    outputs, grads = gradients(engine, net, Trial({"in": [[t] for t in t_in]}, label=label), loss)

    t_hid, dth_dw1 = np.full(n_hid, np.inf), np.zeros((n_in, n_hid))
    for h in range(n_hid):
        cf = closed_form(t_in + d1[:, h], w1[:, h])
        if cf is not None:
            t_hid[h], dth_dw1[:, h], _ = cf
    fired = np.isfinite(t_hid)
    assert fired.sum() >= 2, "the random case should make hidden neurons spike"
    t_out, spiked = np.full(n_out, T), np.zeros(n_out, bool)
    dto_dw2, dto_dth = np.zeros((n_hid, n_out)), np.zeros((n_hid, n_out))
    for o in range(n_out):
        arrivals = t_hid[fired] + d2[fired, o]
        cf = closed_form(arrivals, w2[fired, o])
        if cf is not None:
            t_out[o], g_w, g_t = cf
            dto_dw2[fired, o], dto_dth[fired, o] = g_w, g_t
            spiked[o] = True
    assert spiked.any(), "the random case should make an output spike"
    assert np.allclose(outputs, t_out, rtol=1e-12, atol=1e-12)
    dl_dto = goltz_dl_dt(t_out, label, loss, spiked)
    assert_rel(grads["hid_out"], (dto_dw2 * dl_dto).ravel())
    dl_dth = dto_dth @ dl_dto  # chain through each hidden spike time
    assert_rel(grads["in_hid"], (dth_dw1 * dl_dth).ravel())

"""EventProp reference engine, GLIF3 neurons (``glif3`` populations, docs/eventprop_glif3.md).

(a) Forward pass: against NEST's ``glif_psc`` (GLIF3 settings) and against an independent dense-grid integration
    with matrix-exponential propagators (scipy.linalg.expm of the linear system, nothing shared with the engine's
    closed form).
(b) Gradients against central finite differences of the same continuous-time loss, on small random networks
    (feedforward and recurrent, four receptor ports, after-spike currents, refractoriness). As in
    tests/test_eventprop_reference.py: a weight p is moved by +-h and +-h/2, h = 1e-4 max(|p|, mean |p| of its
    projection), the Richardson-extrapolated central difference R = (4 D(h/2) - D(h)) / 3 is compared with the
    adjoint gradient g, |g - R| <= 1e-6 max(|R|, 1e-3 max|g|); weights whose perturbed runs change the order of
    spikes are skipped (no derivative there), and at least 80 % must be checked. Why h = 1e-4: the loss is smooth
    between structure changes, the truncation error of R is O(h^4) (relative ~1e-16 for loss curvature scales of
    ~1 pA) and its rounding error is ~eps |L| / h ~ 1e-12 relative, far below 1e-6; a wrong jump term gives O(1)
    errors.
(c) Edge cases and bad parameters.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from nestgrad.errors import ConfigError, SpecError
from nestgrad.reference.eventprop import (
    FirstSpikeLoss,
    Network,
    Population,
    Projection,
    ReadoutCrossEntropy,
    ReadoutMSE,
    SpikeCountRegulariser,
    Trial,
    compile_network,
    evaluate,
    simulate_glif3,
)
from nestgrad.reference.eventprop.neurons import glif3 as g3

RTOL = 1e-6
MIN_CHECKED = 0.8

# glif_psc defaults with four receptor ports (the V1 model's e.g. 5.5, 8.5, 2.8, 5.8 ms)
NEST_P = dict(
    C_m=58.72,
    g=9.43,
    E_L=-78.85,
    V_th=-51.68,
    V_reset=-78.85,
    t_ref=3.75,
    asc_init=[0.0, 0.0],
    asc_decay=[0.003, 0.1],
    asc_amps=[-9.18, -198.94],
    asc_r=[1.0, 1.0],
    tau_syn=[5.5, 8.5, 2.8, 5.8],
)
# a faster-adapting variant for gradient tests (asc_r != 1 and a strong second current)
G3 = dict(tau_syn=[5.5, 8.5, 2.8, 5.8], t_ref=2.0, asc_amps=[-20.0, -50.0], asc_decay=[0.05, 0.3], asc_r=[1.0, 0.5])
LI = dict(C_m=1.0, tau_m=10.0, tau_syn=5.0, E_L=0.0)


# ---------------------------------------------------------------------------------------------------------------
# (a) forward pass


def _nest_inputs(seed: int, n_in: int, T: float):
    rng = np.random.default_rng(seed)
    times = [np.round(np.sort(rng.uniform(0.1, T - 5.0, 15)) / 0.1) * 0.1 for _ in range(n_in)]
    times = [np.unique(t) for t in times]
    ports = rng.integers(1, 5, n_in)
    w = rng.normal(60.0, 60.0, n_in)
    return times, ports, w


def _single_neuron_net(times, ports, w, delay, T, params=NEST_P):
    n_in = len(times)
    projs = tuple(Projection(f"p{k}", "in", "n", [k], [0], [w[k]], delay, receptor=int(ports[k])) for k in range(n_in))
    return Network((Population("in", n_in, "input"), Population("n", 1, "glif3", params)), projs, T=T)


def _run_glif_psc(times, ports, w, delay, T, h, params=NEST_P):
    nest = pytest.importorskip("nest")
    nest.ResetKernel()
    nest.set_verbosity("M_ERROR")
    nest.resolution = h
    nrn = nest.Create(
        "glif_psc",
        params=dict(
            params,
            spike_dependent_threshold=False,
            after_spike_currents=True,
            adapting_threshold=False,
            V_m=params["E_L"],
        ),
    )
    sg = nest.Create("spike_generator", len(times))
    for k in range(len(times)):
        sg[k].spike_times = list(times[k])
        nest.Connect(sg[k], nrn, syn_spec=dict(weight=float(w[k]), delay=delay, receptor_type=int(ports[k])))
    sr = nest.Create("spike_recorder")
    nest.Connect(nrn, sr)
    mm = nest.Create("multimeter", params=dict(record_from=["V_m"], interval=h))
    nest.Connect(mm, nrn)
    nest.Simulate(T)
    return np.sort(sr.events["times"]), mm.events["times"], mm.events["V_m"]


def _conditioned_crossings(p: g3.Glif3Params, arrivals, nest_spikes, T, t_ref_grid):
    """For each NEST spike: the exact first crossing of the continuous model started from NEST's previous release
    (grid time t_k + t_ref_grid, NEST's t_ref rounded to whole steps; v = V_reset, A_j from NEST's own spike times, synaptic state exact), or from t = 0.
    NEST's neuron is then in the same state (up to its step-mean treatment of A_j inside a step), so its spike must
    fall in the grid step that holds this crossing."""
    na = p.n_asc
    state = p.initial_state()
    t_now, refr, release, found = 0.0, False, math.inf, False
    out: list[float] = []
    arr = sorted(arrivals)
    spikes = list(nest_spikes)
    ia = isp = 0
    while True:
        t_arr = arr[ia][0] if ia < len(arr) else math.inf
        t_spk = spikes[isp] if isp < len(spikes) else math.inf
        t_next = min(t_arr, t_spk, release, T)
        if not refr and not found:
            u = g3.first_crossing(state, t_next - t_now, p)
            if u is not None:
                out.append(t_now + u)
                found = True
        if t_next >= T:
            return out
        state = g3.propagate(state, t_next - t_now, p, refr)
        t_now = t_next
        if t_next == release:
            refr, release = False, math.inf
        elif t_next == t_spk:  # NEST's spike: reset on the grid, frozen until the grid release
            isp += 1
            a_plus = tuple(a + rho * am for a, rho, am in zip(p.asc_amps, p.rho, state[1 : 1 + na], strict=True))
            state = (p.v_reset, *a_plus, *state[1 + na :])
            refr, release, found = True, t_next + t_ref_grid, False
        else:
            _, r, wt = arr[ia]
            ia += 1
            s = list(state)
            s[1 + na + r] += wt * math.e / p.tau_syn[r]
            state = tuple(s)


@pytest.mark.parametrize("h", [0.1, 0.01])
def test_forward_matches_nest_glif_psc(h):
    """Each NEST spike lies in the grid step ((k-1)h, kh] that holds the exact crossing of the continuous model
    started from NEST's previous release (NEST spikes at the end of the step in which V exceeds V_th and releases
    round(t_ref / h) steps later; the crossing is the engine's first_crossing); the voltage before the first spike
    agrees to rounding; and the free-running engine's spike times converge to NEST's as h shrinks."""
    T, delay = 300.0, 1.0
    times, ports, w = _nest_inputs(3, 20, T)
    nest_spikes, mt, mv = _run_glif_psc(times, ports, w, delay, T, h)
    assert len(nest_spikes) >= 10
    cnet = compile_network(_single_neuron_net(times, ports, w, delay, T))
    p = cnet.params[-1]
    arrivals = [(float(t) + delay, int(ports[k]) - 1, float(w[k])) for k in range(20) for t in times[k]]
    # NEST counts t_ref in whole steps (Time::ms(t_ref).get_steps(): 3.75 ms -> 38 steps of 0.1 ms) but decays
    # the after-spike currents with the exact t_ref
    t_ref_grid = round(p.t_ref / h) * h
    crossings = _conditioned_crossings(p, arrivals, list(nest_spikes), T, t_ref_grid)
    assert len(crossings) == len(nest_spikes)
    steps_nest = np.round(nest_spikes / h)
    steps_exact = np.ceil(np.asarray(crossings) / h - 1e-9)
    gaps = np.asarray(crossings) - (steps_nest - 1) * h  # where in its NEST step the crossing lies, in (0, h]
    print(
        f"h={h}: {len(nest_spikes)} spikes, crossing inside NEST's step at {gaps.min() / h:.3f}..{gaps.max() / h:.3f} h"
    )
    np.testing.assert_array_equal(steps_nest, steps_exact)
    # the voltage before the first spike: exact propagators on both sides
    rec = simulate_glif3(cnet, Trial({"in": times}), keep_states=True)
    st = rec.states[cnet.n - 1]
    ev_t = [s[0] for s in st]
    first = rec.spike_t[0]
    err = 0.0
    for t, vn in zip(mt, mv, strict=True):
        if t >= first - 2 * h:
            break
        i = int(np.searchsorted(ev_t, t, side="right")) - 1
        err = max(err, abs(g3.propagate(st[i][1], t - ev_t[i], p, False)[0] + p.E_L - vn))
    assert err <= 1e-9, err


def test_free_running_engine_converges_to_nest_as_h_shrinks():
    """Without conditioning on NEST's spikes, NEST's grid-delayed resets and releases accumulate along the train:
    the same spikes, and the largest deviation shrinks about tenfold with h (O(h))."""
    T, delay = 300.0, 1.0
    times, ports, w = _nest_inputs(3, 20, T)
    rec = simulate_glif3(compile_network(_single_neuron_net(times, ports, w, delay, T)), Trial({"in": times}))
    devs = []
    for h in (0.01, 0.001):
        nest_spikes, _, _ = _run_glif_psc(times, ports, w, delay, T, h)
        assert len(nest_spikes) == len(rec.spike_t)
        devs.append(float(np.max(np.abs(np.asarray(rec.spike_t) - nest_spikes))))
    print(f"max |t_NEST - t_exact| over {len(rec.spike_t)} spikes: h=0.01 {devs[0]:.4f} ms, h=0.001 {devs[1]:.4f} ms")
    assert devs[1] <= devs[0] / 5.0
    assert devs[1] <= 20 * 0.001


def _expm_reference(p: g3.Glif3Params, arrivals, T: float, h: float) -> list[float]:
    """Independent integration: the linear system z' = M z (z = state plus a constant 1 for I_e) stepped with
    scipy.linalg.expm on a grid of h ms (cut at arrivals and releases); a crossing inside a step is located by
    bisection on expm(M s) to 1e-13 ms."""
    from scipy.linalg import expm

    na, nr = p.n_asc, p.n_ports
    n = 1 + na + 2 * nr + 1
    m_free = np.zeros((n, n))
    m_free[0, 0] = -1.0 / p.tau_m
    m_free[0, n - 1] = p.I_e / p.C_m
    for j, k in enumerate(p.asc_decay):
        m_free[1 + j, 1 + j] = -k
        m_free[0, 1 + j] = 1.0 / p.C_m
    for r, tau in enumerate(p.tau_syn):
        xi, ii = 1 + na + r, 1 + na + nr + r
        m_free[xi, xi] = -1.0 / tau
        m_free[ii, ii] = -1.0 / tau
        m_free[ii, xi] = 1.0
        m_free[0, ii] = 1.0 / p.C_m
    m_ref = m_free.copy()
    m_ref[: 1 + na, :] = 0.0
    z = np.zeros(n)
    z[n - 1] = 1.0
    z[1 : 1 + na] = p.asc_init
    t = 0.0
    release = None
    spikes = []
    arr = sorted(arrivals)
    k = 0
    while t < T:
        nxt = min(t + h, T, arr[k][0] if k < len(arr) else T, release if release is not None else T)
        mat = m_ref if release is not None else m_free
        z_new = expm(mat * (nxt - t)) @ z
        if release is None and z_new[0] >= p.theta > z[0]:
            lo, hi = 0.0, nxt - t
            while hi - lo > 1e-13:
                mid = 0.5 * (lo + hi)
                if (expm(m_free * mid) @ z)[0] >= p.theta:
                    hi = mid
                else:
                    lo = mid
            t_s = t + hi
            z = expm(m_free * hi) @ z
            spikes.append(t_s)
            z[0] = p.v_reset
            z[1 : 1 + na] = np.asarray(p.asc_amps) + np.asarray(p.rho) * z[1 : 1 + na]
            t = t_s
            release = t_s + p.t_ref
            continue
        z, t = z_new, nxt
        if release is not None and t >= release:
            release = None
        while k < len(arr) and arr[k][0] <= t:
            z[1 + na + arr[k][1]] += arr[k][2] * math.e / p.tau_syn[arr[k][1]]
            k += 1
    return spikes


def test_forward_matches_independent_expm_integration():
    """Spike times of the closed-form engine and of the independent matrix-exponential integration agree to
    1e-9 ms (the bisection tolerance and rounding of the propagated state along a 300 ms train)."""
    T, delay = 300.0, 1.0
    times, ports, w = _nest_inputs(5, 20, T)
    params = dict(NEST_P, I_e=50.0, asc_r=[1.0, 0.6], t_ref=2.0)
    cnet = compile_network(_single_neuron_net(times, ports, w, delay, T, params))
    rec = simulate_glif3(cnet, Trial({"in": times}))
    arrivals = [(float(t) + delay, int(ports[k]) - 1, float(w[k])) for k in range(20) for t in times[k]]
    ref = _expm_reference(cnet.params[-1], arrivals, T, 0.01)
    assert len(rec.spike_t) >= 10
    assert len(ref) == len(rec.spike_t)
    dev = float(np.max(np.abs(np.asarray(ref) - rec.spike_t)))
    print(f"{len(ref)} spikes, max |t_expm - t_engine| = {dev:.2e} ms")
    assert dev <= 1e-9

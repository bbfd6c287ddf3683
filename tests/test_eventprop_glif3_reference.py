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
    (grid time t_k + t_ref_grid, NEST's t_ref rounded to whole steps; v = V_reset, A_j from NEST's own spike
    times, synaptic state exact), or from t = 0.
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


# ---------------------------------------------------------------------------------------------------------------
# (b) gradients against finite differences


def _dense(rng, name, src, tgt, n_src, n_tgt, mean, std, receptor, p_conn=0.6, delay=(0.5, 3.0)):
    s, t = np.meshgrid(range(n_src), range(n_tgt), indexing="ij")
    s, t = s.ravel(), t.ravel()
    keep = rng.random(s.size) < p_conn
    s, t = s[keep], t[keep]
    return Projection(
        name, src, tgt, s, t, rng.normal(mean, std, s.size), rng.uniform(*delay, s.size), receptor=receptor
    )


def make_net(kind: str, seed: int, readout: str = "li", **over) -> tuple[Network, list[Trial]]:
    """A small random GLIF3 network: 8 inputs (ports 1 and 3), 10 hidden (recurrent ones on port 2), 3 readouts."""
    rng = np.random.default_rng(seed)
    n_in, n_h, n_o = 8, 10, 3
    hid = dict(G3, **over)
    out_params = LI if readout == "li" else dict(G3, tau_syn=[5.0])
    pops = (
        Population("in", n_in, "input"),
        Population("hid", n_h, "glif3", hid),
        Population("out", n_o, readout, out_params),
    )
    projs = [
        _dense(rng, "in_hid1", "in", "hid", n_in, n_h, 120.0, 60.0, 1),
        _dense(rng, "in_hid3", "in", "hid", n_in, n_h, 80.0, 60.0, 3),
    ]
    if kind == "recurrent":
        projs.append(_dense(rng, "rec", "hid", "hid", n_h, n_h, 0.0, 60.0, 2, p_conn=0.3))
    if readout == "li":
        projs.append(_dense(rng, "hid_out", "hid", "out", n_h, n_o, 0.0, 0.03, None, p_conn=1.0))
    else:
        projs.append(_dense(rng, "hid_out", "hid", "out", n_h, n_o, 120.0, 80.0, 1, p_conn=1.0))
    net = Network(tuple(pops), tuple(projs), T=40.0)
    inputs = {"in": [np.sort(rng.uniform(0, 25, 4)) for _ in range(n_in)]}
    target = rng.normal(0.0, 0.5, (n_o, 4))  # for the MSE loss: mV above E_L on four 10 ms bins
    trials = [Trial(inputs, label=1, target=target, target_edges=np.linspace(0.0, 40.0, 5))]
    return net, trials


def fd_check(net, trials, loss, regs=(), what="weights", n_per_proj=5, seed=0):
    """Adjoint vs Richardson central differences (module docstring) on ``n_per_proj`` randomly drawn edges of each
    projection. Returns (max relative error, number checked, number drawn)."""
    base = evaluate(net, trials, loss, regs)
    struct = [r.structure() for r in base.records]
    assert sum(len(r.spike_t) for r in base.records) > 0, "the test network does not spike"
    grads = base.grad_weights if what == "weights" else base.grad_delays
    floor = 1e-3 * max(float(np.abs(g).max()) for g in grads.values())
    assert floor > 0.0
    rng = np.random.default_rng(seed)
    errors, drawn = [], 0
    for proj in net.projections:
        vals = np.broadcast_to(
            np.asarray(proj.weights if what == "weights" else proj.delays, float), proj.sources.shape
        )
        scale = float(np.mean(np.abs(vals)))
        for k in rng.choice(len(vals), size=min(n_per_proj, len(vals)), replace=False):
            drawn += 1
            h = 1e-4 * max(abs(vals[k]), scale)
            losses = {}
            smooth = True
            for step in (h, -h, h / 2, -h / 2):
                new = vals.copy()
                new[k] += step
                moved = net.with_weights({proj.name: new}) if what == "weights" else net.with_delays({proj.name: new})
                res = evaluate(moved, trials, loss, regs, gradient=False)
                losses[step] = res.loss
                smooth &= [r.structure() for r in res.records] == struct
            if not smooth:
                continue
            fd = (4 * (losses[h / 2] - losses[-h / 2]) / h - (losses[h] - losses[-h]) / (2 * h)) / 3
            g = float(grads[proj.name][k])
            errors.append(abs(g - fd) / max(abs(fd), floor))
    assert len(errors) >= MIN_CHECKED * drawn, f"only {len(errors)} of {drawn} parameters checkable"
    return float(max(errors)), len(errors), drawn


SUM = ReadoutCrossEntropy("out", "sum")
MAX = ReadoutCrossEntropy("out", "max")
MSE = ReadoutMSE("out")

CASES = [
    # id, network kind, hidden overrides, readout kind, loss, regularisers, also delays
    ("feedforward-sum", "feedforward", {}, "li", SUM, (), True),
    ("feedforward-max", "feedforward", {}, "li", MAX, (), False),
    ("feedforward-mse", "feedforward", {}, "li", MSE, (), False),
    ("feedforward-first_spike", "feedforward", {}, "glif3", FirstSpikeLoss("out", tau_s=5.0), (), True),
    ("recurrent-sum", "recurrent", {}, "li", SUM, (), True),
    ("recurrent-max-spike_count", "recurrent", {}, "li", MAX, (SpikeCountRegulariser(("hid",), 0.1, 1.0),), False),
    ("recurrent-first_spike", "recurrent", {}, "glif3", FirstSpikeLoss("out", tau_s=5.0), (), False),
    ("recurrent-t_ref_0-tonic_I_e-sum", "recurrent", {"t_ref": 0.0, "I_e": 30.0}, "li", SUM, (), False),
    (
        "recurrent-equal_time_constants-sum",
        "recurrent",
        {"tau_syn": [6.0, 6.0, 6.0, 6.0], "g": 10.0, "C_m": 60.0},
        "li",
        SUM,
        (),
        False,
    ),
]


@pytest.mark.parametrize(
    ("kind", "over", "readout", "loss", "regs", "delays"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_gradient_matches_finite_differences(kind, over, readout, loss, regs, delays):
    net, trials = make_net(kind, 7, readout, **over)
    for what in ("weights", "delays") if delays else ("weights",):
        err, checked, drawn = fd_check(net, trials, loss, regs, what)
        n_spk = len(evaluate(net, trials, loss, regs, gradient=False).records[0].spike_t)
        print(
            f"{kind} {over} {type(loss).__name__} {what}: max rel err {err:.2e}, {checked}/{drawn} checked, "
            f"{n_spk} spikes"
        )
        assert err <= RTOL


# ---------------------------------------------------------------------------------------------------------------
# (c) edge cases and bad parameters


def _fd_weight(net, trials, loss, proj, k, rel=1e-4):
    w = np.asarray(net.projection(proj).weights, float)
    h = rel * abs(w[k])
    out = {}
    for step in (h, -h, h / 2, -h / 2):
        new = w.copy()
        new[k] += step
        out[step] = evaluate(net.with_weights({proj: new}), trials, loss, gradient=False).loss
    return (4 * (out[h / 2] - out[-h / 2]) / h - (out[h] - out[-h]) / (2 * h)) / 3


def test_never_spiking_network_has_zero_loss_gradient_and_zero_finite_difference():
    """Hidden neurons that stay below threshold send nothing to the readout: the loss does not depend on their input
    weights (FD exactly 0) and the adjoint gives exactly 0, not NaN."""
    net, trials = make_net("recurrent", 7, "li")
    net = net.with_weights({p.name: np.abs(p.weights) * 1e-3 for p in net.projections if p.target == "hid"})
    res = evaluate(net, trials, SUM)
    assert len(res.records[0].spike_t) == 0
    assert np.isfinite(res.loss)
    for name in ("in_hid1", "in_hid3", "rec", "hid_out"):
        assert np.all(res.grad_weights[name] == 0.0)
    assert _fd_weight(net, trials, SUM, "in_hid1", 0) == 0.0


def _refractory_net():
    """One neuron: a strong input (port 3) makes it spike at ~10.98 ms; the input at 14.0 ms (port 1) arrives while
    it is refractory (until ~14.73 ms) and moves its second spike."""
    times = [[5.0], [6.0], [8.0], [9.5], [13.0]]
    projs = (
        Projection("a", "in", "n", [0], [0], [400.0], 1.0, receptor=3),
        Projection("b", "in", "n", [1, 2, 3, 4], [0] * 4, [150.0, 200.0, 150.0, 100.0], 1.0, receptor=1),
    )
    net = Network((Population("in", 5, "input"), Population("n", 1, "glif3", NEST_P)), projs, T=40.0)
    return net, [Trial({"in": times})]


def test_input_during_refractoriness_is_kept_and_differentiated():
    net, trials = _refractory_net()
    cnet = compile_network(net)
    rec = simulate_glif3(cnet, trials[0], keep_states=True)
    t1, r1 = rec.spike_t[0], rec.release_t[0]
    assert t1 < 14.0 < r1 and len(rec.spike_t) == 2
    states = rec.states[5]
    during = [s for t, s in states if t1 <= t <= r1]
    assert len(during) == 3  # the spike, the arrival at 14.0, the release
    p = cnet.params[5]
    for s in during:  # v and the after-spike currents frozen, the port-1 state x_1 jumps at the arrival
        assert s[0] == p.v_reset and s[1:3] == during[0][1:3]
    assert during[1][3] > during[0][3] * math.exp(-(14.0 - t1) / 5.5)
    # the loss: the spike-count regulariser (depends on both spike times)
    loss = SpikeCountRegulariser(("n",), rho=1.0, nu=0.0)
    res = evaluate(net, trials, loss)
    g = float(res.grad_weights["b"][3])
    fd = _fd_weight(net, trials, loss, "b", 3)
    print(f"weight arriving during refractoriness: adjoint {g:.10e}, FD {fd:.10e}")
    assert g != 0.0
    assert abs(g - fd) <= RTOL * abs(fd)


@pytest.mark.parametrize("offset", [1e-9, -1e-9])
def test_crossing_next_to_a_grid_boundary(offset):
    """The input weight is tuned so that the exact crossing lies 1e-9 ms after (or before) the grid point 10.0 ms;
    NEST's glif_psc (h = 0.1 ms) then spikes at 10.1 ms (or at 10.0 ms), the step that holds the crossing."""
    target = 10.0 + offset
    times = [[5.0]]

    def first_spike(w: float) -> float:
        net = _single_neuron_net(times, [3], [w], 1.0, 20.0)
        rec = simulate_glif3(compile_network(net), Trial({"in": times}))
        return rec.spike_t[0] if rec.spike_t else math.inf

    lo, hi = 300.0, 3000.0  # first_spike(lo) > target > first_spike(hi)
    assert first_spike(lo) > target > first_spike(hi)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if first_spike(mid) > target:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 4 * math.ulp(hi):
            break
    w = hi
    t_exact = first_spike(w)
    assert abs(t_exact - target) <= 1e-11
    nest_spikes, _, _ = _run_glif_psc(times, [3], [w], 1.0, 12.0, 0.1)
    expected = 10.1 if offset > 0 else 10.0
    print(f"crossing at 10.0 {offset:+.0e} ms (w = {w!r} pA): NEST spikes at {nest_spikes[0]}")
    assert nest_spikes[0] == pytest.approx(expected, abs=1e-12)


def _one_pop_net(params=None, receptor=1, weight=100.0, target_kind="glif3"):
    pops = (Population("in", 1, "input"), Population("n", 1, target_kind, params or {}))
    return Network(pops, (Projection("p", "in", "n", [0], [0], [weight], 1.0, receptor=receptor),), T=10.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"params": {"tau_syn": [2.0, -1.0]}}, "tau_syn = -1.0 must be > 0"),
        ({"params": {"g": 0.0}}, "g = 0.0 must be > 0"),
        ({"params": {"asc_decay": [0.1, -0.2]}}, "asc_decay = -0.2 must be > 0"),
        ({"params": {"t_ref": -1.0}}, "t_ref = -1.0 ms must be >= 0"),
        ({"params": {"V_reset": -50.0}}, "V_reset = -50.0 must be < V_th = -51.68"),
        ({"params": {"asc_amps": [1.0, 2.0, 3.0]}}, "'asc_amps' has 3 values but asc_decay has 2"),
        ({"params": {"tau_syn": [2.0, float("nan")]}}, "'tau_syn' has non-finite values [2.0, nan]"),
        ({"params": {"tau_m": 10.0}}, "unknown parameters ['tau_m']"),
        ({"params": {"tau_syn": [2.0, 5.0]}, "receptor": 3}, "receptor 3 is not a port of glif3 population 'n'"),
        ({"receptor": 0}, "receptor 0 is not a port of glif3 population 'n' (allowed 1..1"),
        ({"weight": float("nan")}, "non-finite weights (weights[0] = nan)"),
        ({"target_kind": "li", "receptor": 2}, "receptor 2 given, but target 'n' (li) has a single port"),
    ],
)
def test_bad_parameters_raise_spec_error_naming_the_value(kwargs, message):
    with pytest.raises(SpecError) as err:
        compile_network(_one_pop_net(**kwargs))
    assert message in str(err.value)


def test_unsupported_combinations_raise_clear_errors():
    lif_too = Network(
        (Population("in", 1, "input"), Population("n", 1, "glif3"), Population("m", 1, "lif")),
        (),
        T=10.0,
    )
    with pytest.raises(SpecError, match="kinds 'glif3' and 'lif' in one network"):
        compile_network(lif_too)
    net, trials = make_net("feedforward", 7, "li")
    with pytest.raises(ConfigError, match="time-constant gradients are not implemented for glif3"):
        evaluate(net, trials, SUM, time_constants=True)
    net, trials = make_net("feedforward", 7, "glif3")
    with pytest.raises(ConfigError, match="first-spike loss on glif3 population 'out': pass tau_s"):
        evaluate(net, trials, FirstSpikeLoss("out"))

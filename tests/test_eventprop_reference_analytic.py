"""EventProp reference engine: closed-form checks (spike times by Lambert W, readout gradients as integrals), the
refractory release term, input validation, batching and determinism. scipy is used here only as an independent
oracle (Lambert W, quadrature, bracketing root finder); the engine itself imports neither scipy nor NEST."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from scipy import integrate, optimize, special

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
    backward,
    compile_network,
    evaluate,
    simulate,
)
from nestgrad.reference.eventprop.neurons.dynamics import kern


def single_neuron(w: float, delay: float, tau_m: float, tau_syn: float, t_ref: float = 0.0, I_e: float = 0.0, T=40.0):
    params = dict(C_m=2.0, tau_m=tau_m, tau_syn=tau_syn, E_L=-65.0, V_th=-64.0, V_reset=-65.0, t_ref=t_ref, I_e=I_e)
    pops = (Population("in", 1, "input"), Population("out", 1, "lif", params))
    proj = Projection("in_out", "in", "out", np.array([0]), np.array([0]), np.array([w]), np.array([delay]))
    return Network(pops, (proj,), T)


def test_spike_time_and_gradient_match_lambert_w_for_equal_time_constants():
    """One input spike (t0 + d), tau_m == tau_syn = tau: v(s) = (w / C) s exp(-s / tau), so the first crossing of
    theta is s* = -tau W0(-theta C / (w tau)) and ds*/dw = -s* tau / (w (tau - s*)), ds*/dd = 1."""
    tau, w, d, t0, C, theta = 5.0, 3.0, 1.5, 2.0, 2.0, 1.0
    net = single_neuron(w, d, tau, tau)
    trial = Trial({"in": [[t0]]}, label=0)
    loss = FirstSpikeLoss("out", tau_s=tau)  # one readout: the cross-entropy is 0, the regulariser remains
    res = evaluate(net, [trial], loss)
    s_star = float(-tau * special.lambertw(-theta * C / (w * tau), 0).real)
    t_spike = res.records[0].spike_t[0]
    assert t_spike == pytest.approx(t0 + d + s_star, rel=1e-14, abs=1e-13)
    dl_dt = loss.alpha / (loss.beta * tau) * math.exp(t_spike / (loss.beta * tau))
    ds_dw = -s_star * tau / (w * (tau - s_star))
    assert res.grad_weights["in_out"][0] == pytest.approx(dl_dt * ds_dw, rel=1e-10)
    assert res.grad_delays["in_out"][0] == pytest.approx(dl_dt, rel=1e-10)


def test_spike_time_and_gradient_match_the_quadratic_closed_form_for_tau_m_twice_tau_syn():
    """tau_m = 2 tau_s: v(s) = (2 w tau_s / C) (x - x^2), x = exp(-s / (2 tau_s)), so the first crossing is
    x = (1 + sqrt(1 - 4c/w)) / 2 with c = theta C / (2 tau_s), s* = -2 tau_s ln x, ds*/dw = -2 tau_s x'/x,
    x' = c / (w^2 (2x - 1)) (the second closed form of Göltz et al.)."""
    tau_s, w, d, t0, C, theta = 4.0, 3.0, 0.5, 1.0, 2.0, 1.0
    net = single_neuron(w, d, 2 * tau_s, tau_s)
    loss = FirstSpikeLoss("out", tau_s=tau_s)
    res = evaluate(net, [Trial({"in": [[t0]]}, label=0)], loss)
    c = theta * C / (2 * tau_s)
    x = (1 + math.sqrt(1 - 4 * c / w)) / 2
    s_star = -2 * tau_s * math.log(x)
    t_spike = res.records[0].spike_t[0]
    assert t_spike == pytest.approx(t0 + d + s_star, rel=1e-14, abs=1e-13)
    dl_dt = loss.alpha / (loss.beta * tau_s) * math.exp(t_spike / (loss.beta * tau_s))
    ds_dw = -2 * tau_s * (c / (w**2 * (2 * x - 1))) / x
    assert res.grad_weights["in_out"][0] == pytest.approx(dl_dt * ds_dw, rel=1e-10)


def test_first_spike_loss_defaults_and_value_are_goeltz_et_al():
    """Defaults xi = 0.2, alpha = 0.005, beta = 1 (the published configurations of Göltz et al. 2021, e.g.
    fastAndDeep experiment_pretrained/yinyang_et_300epochs/config.yaml), and the loss value on two spiking readouts
    equals -log softmax(-t / (xi tau_s))_label + alpha (exp(t_label / (beta tau_s)) - 1) from the spike times."""
    loss = FirstSpikeLoss("out")
    assert (loss.xi, loss.alpha, loss.beta) == (0.2, 0.005, 1.0)
    tau_s = 2.0
    params = dict(C_m=2.0, tau_m=8.0, tau_syn=tau_s, E_L=0.0, V_th=1.0, V_reset=0.0, t_ref=0.0)
    pops = (Population("in", 1, "input"), Population("out", 2, "lif", params))
    proj = Projection("in_out", "in", "out", np.array([0, 0]), np.array([0, 1]), np.array([4.0, 6.0]), 1.0)
    res = evaluate(Network(pops, (proj,), 30.0), [Trial({"in": [[1.0]]}, label=0)], loss)
    t = res.outputs[0]
    assert np.all(t < 30.0) and t[1] < t[0]  # both spike, the stronger one first
    z = -t / (0.2 * tau_s)
    expected = -(z[0] - math.log(np.exp(z).sum())) + 0.005 * (math.exp(t[0] / (1.0 * tau_s)) - 1.0)
    assert res.loss == pytest.approx(expected, rel=1e-14)


@pytest.mark.parametrize(("tau_m", "tau_syn", "I_e"), [(10.0, 3.0, 0.0), (4.0, 9.0, 0.05), (7.0, 7.0, 0.1)])
def test_threshold_crossings_are_exact_and_first(tau_m, tau_syn, I_e):
    """Each spike time solves v(t) = theta to rounding, and no earlier crossing was missed (checked against an
    independent bracketing root finder on the closed-form trajectory)."""
    net = single_neuron(2.0, 1.0, tau_m, tau_syn, I_e=I_e)
    trial = Trial({"in": [[0.0, 3.0, 9.0, 20.0]]})
    cnet = compile_network(net)
    rec = simulate(cnet, trial)
    assert len(rec.spike_t) >= 2
    p = cnet.params[1]
    theta = p.theta
    # rebuild v(t) between events independently: v and I after each arrival
    events = sorted([t + 1.0 for t in (0.0, 3.0, 9.0, 20.0)] + rec.spike_t)
    v, i, t_prev = 0.0, 0.0, 0.0
    for t_ev in events:

        def vt(t, v=v, i=i, t_prev=t_prev):
            u = t - t_prev
            return p.v_inf + (v - p.v_inf) * math.exp(-u / tau_m) + i * kern(u, tau_m, tau_syn) / p.C_m

        grid = np.linspace(t_prev, t_ev, 2001)[1:-1]
        assert all(vt(t) < theta for t in grid), "a crossing before the recorded one was missed"
        v_end = vt(t_ev)
        i_end = i * math.exp(-(t_ev - t_prev) / tau_syn)
        if t_ev in rec.spike_t:
            assert abs(v_end - theta) <= 1e-12
            lo = t_prev + 0.5 * (t_ev - t_prev) if vt(t_prev + 0.5 * (t_ev - t_prev)) < theta else t_prev
            assert optimize.brentq(lambda t: vt(t) - theta, lo, t_ev + 1e-9, xtol=1e-15) == pytest.approx(
                t_ev, abs=1e-12
            )
            v_end = p.v_reset
        else:
            i_end += 2.0
        v, i, t_prev = v_end, i_end, t_ev


def readout_net(weights, delays, tau_m=10.0, tau_syn=4.0, T=30.0):
    pops = (Population("in", 2, "input"), Population("out", 2, "li", dict(C_m=2.0, tau_m=tau_m, tau_syn=tau_syn)))
    src = np.array([0, 0, 1, 1])
    tgt = np.array([0, 1, 0, 1])
    proj = Projection("in_out", "in", "out", src, tgt, np.asarray(weights, float), np.asarray(delays, float))
    return Network(pops, (proj,), T)


INPUTS = {"in": [[1.0, 7.5], [4.0]]}
W = [3.0, -1.0, 2.0, 4.0]
D = [1.0, 2.5, 0.5, 3.0]


def _arrivals(T=30.0):
    out = {e: [] for e in range(4)}
    src = [0, 0, 1, 1]
    for e in range(4):
        for t in INPUTS["in"][src[e]]:
            if t + D[e] < T:
                out[e].append(t + D[e])
    return out


@pytest.mark.parametrize("tau_syn", [4.0, 10.0])
def test_readout_sum_loss_gradient_is_the_closed_form_integral(tau_syn):
    """y_k = (1/T) int v_k = (1/T) sum_arrivals w K(T - t_a) / C, K(L) = int_0^L kern; dL/dw and dL/dd follow."""
    tau_m, C, T = 10.0, 2.0, 30.0
    net = readout_net(W, D, tau_syn=tau_syn)
    res = evaluate(net, [Trial(INPUTS, label=1)], ReadoutCrossEntropy("out", "sum"))
    K = lambda L: integrate.quad(lambda u: kern(u, tau_m, tau_syn), 0.0, L, epsabs=1e-14, epsrel=1e-13)[0]  # noqa: E731
    arr = _arrivals()
    tgt = [0, 1, 0, 1]
    y = np.zeros(2)
    for e in range(4):
        y[tgt[e]] += sum(W[e] * K(T - ta) / C for ta in arr[e]) / T
    p = np.exp(y - y.max()) / np.exp(y - y.max()).sum()
    assert res.outputs[0] == pytest.approx(y, rel=1e-12)
    assert res.loss == pytest.approx(-math.log(p[1]), rel=1e-12)
    for e in range(4):
        c = p[tgt[e]] - (tgt[e] == 1)
        gw = c * sum(K(T - ta) / C for ta in arr[e]) / T
        gd = c * sum(-W[e] * kern(T - ta, tau_m, tau_syn) / C for ta in arr[e]) / T
        assert res.grad_weights["in_out"][e] == pytest.approx(gw, rel=1e-10)
        assert res.grad_delays["in_out"][e] == pytest.approx(gd, rel=1e-10)


def test_readout_sum_exp_and_mse_gradients_are_the_quadratures():
    tau_m, tau_syn, C, T, tau_w = 10.0, 4.0, 2.0, 30.0, 12.0
    net = readout_net(W, D)
    arr = _arrivals()
    tgt = [0, 1, 0, 1]

    def v(k, t):
        return sum(W[e] * kern(t - ta, tau_m, tau_syn) / C for e in range(4) if tgt[e] == k for ta in arr[e] if ta < t)

    def quad(f):
        brk = sorted({ta for e in range(4) for ta in arr[e]})
        return integrate.quad(f, 0.0, T, points=brk, epsabs=1e-13, epsrel=1e-12, limit=200)[0]

    res = evaluate(net, [Trial(INPUTS, label=0)], ReadoutCrossEntropy("out", "sum_exp", tau_w=tau_w))
    y = np.array([quad(lambda t, k=k: math.exp(-t / tau_w) * v(k, t)) / T for k in range(2)])
    p = np.exp(y - y.max()) / np.exp(y - y.max()).sum()
    assert res.outputs[0] == pytest.approx(y, rel=1e-9)
    for e in range(4):
        c = p[tgt[e]] - (tgt[e] == 0)
        g = c * sum(
            quad(lambda t, ta=ta: math.exp(-t / tau_w) * kern(max(t - ta, 0), tau_m, tau_syn) / C) for ta in arr[e]
        )
        assert res.grad_weights["in_out"][e] == pytest.approx(g / T, rel=1e-8)

    target = np.array([[0.5, -0.2, 1.0], [0.0, 0.3, -0.4]])
    edges = np.array([0.0, 8.0, 20.0, 30.0])
    res = evaluate(net, [Trial(INPUTS, target=target, target_edges=edges)], ReadoutMSE("out"))

    def ystar(k, t):
        return target[k, min(int(np.searchsorted(edges, t, side="right")) - 1, 2)]

    loss = sum(quad(lambda t, k=k: (v(k, t) - ystar(k, t)) ** 2) for k in range(2)) / (2 * T)
    assert res.loss == pytest.approx(loss, rel=1e-9)
    for e in range(4):
        k = tgt[e]
        g = sum(
            quad(lambda t, ta=ta, k=k: (v(k, t) - ystar(k, t)) * kern(max(t - ta, 0), tau_m, tau_syn) / C)
            for ta in arr[e]
        )
        assert res.grad_weights["in_out"][e] == pytest.approx(g / T, rel=1e-8)


def test_readout_max_loss_gradient_closed_form():
    """One arrival per readout: y_k = w_k max_u kern(u) / C, and dy/dw = max kern / C (the peak time does not
    matter to first order)."""
    tau_m, tau_syn, C = 10.0, 4.0, 2.0
    pops = (Population("in", 2, "input"), Population("out", 2, "li", dict(C_m=C, tau_m=tau_m, tau_syn=tau_syn)))
    proj = Projection("p", "in", "out", np.array([0, 1]), np.array([0, 1]), np.array([2.0, 3.0]), 1.0)
    net = Network(pops, (proj,), 40.0)
    res = evaluate(net, [Trial({"in": [[2.0], [5.0]]}, label=0)], ReadoutCrossEntropy("out", "max"))
    u_peak = math.log(tau_syn / tau_m) * tau_m * tau_syn / (tau_syn - tau_m)
    kmax = kern(u_peak, tau_m, tau_syn)
    y = np.array([2.0, 3.0]) * kmax / C
    p = np.exp(y - y.max()) / np.exp(y - y.max()).sum()
    assert res.outputs[0] == pytest.approx(y, rel=1e-13)
    assert res.grad_weights["p"] == pytest.approx((p - [1, 0]) * kmax / C, rel=1e-10)
    assert res.grad_delays["p"] == pytest.approx([0.0, 0.0], abs=1e-12)


def test_refractory_release_term_is_needed():
    """Several spikes of one neuron with t_ref > 0: each depends on the previous one through the release time.
    The gradient matches finite differences; without the release term (release dv/dt set to 0) it does not."""
    net = single_neuron(6.0, 1.0, 10.0, 8.0, t_ref=2.0, T=60.0)
    trial = Trial({"in": [[0.0]]})
    reg = SpikeCountRegulariser(("out",), rho=1.0, nu=0.0)
    loss = lambda cnet, rec, trial: reg(cnet, rec, trial)  # noqa: E731
    res = evaluate(net, [trial], loss)
    assert len(res.records[0].spike_t) >= 2
    h = 1e-5
    lp = evaluate(net.with_weights({"in_out": np.array([6.0 + h])}), [trial], loss, gradient=False).loss
    lm = evaluate(net.with_weights({"in_out": np.array([6.0 - h])}), [trial], loss, gradient=False).loss
    fd = (lp - lm) / (2 * h)
    assert res.grad_weights["in_out"][0] == pytest.approx(fd, rel=1e-6)
    cnet = compile_network(net)
    rec = simulate(cnet, trial)
    rec.release_vdot = [0.0] * len(rec.release_vdot)
    without = backward(cnet, rec, reg(cnet, rec, trial)).weights
    assert abs(without[0] - fd) > 0.1 * abs(fd)


def test_batch_gradient_is_the_mean_of_trial_gradients():
    net = readout_net(W, D)
    t1, t2 = Trial(INPUTS, label=0), Trial({"in": [[2.0], [3.0, 11.0]]}, label=1)
    loss = ReadoutCrossEntropy("out", "max")
    both = evaluate(net, [t1, t2], loss)
    one, two = evaluate(net, [t1], loss), evaluate(net, [t2], loss)
    assert both.loss == pytest.approx(0.5 * (one.loss + two.loss), rel=1e-15)
    np.testing.assert_allclose(
        both.grad_weights["in_out"], 0.5 * (one.grad_weights["in_out"] + two.grad_weights["in_out"]), rtol=1e-14
    )
    summed = evaluate(net, [t1, t2], loss, reduction="sum")
    assert summed.loss == pytest.approx(one.loss + two.loss, rel=1e-15)
    np.testing.assert_allclose(summed.grad_delays["in_out"], 2.0 * both.grad_delays["in_out"], rtol=1e-15)
    with pytest.raises(ConfigError, match="reduction 'max'"):
        evaluate(net, [t1], loss, reduction="max")


def test_runs_are_deterministic_with_simultaneous_events():
    net = readout_net(W, [1.0, 1.0, 1.0, 1.0])
    trial = Trial({"in": [[2.0, 5.0], [2.0, 5.0]]}, label=0)
    a = evaluate(net, [trial], ReadoutCrossEntropy("out", "sum"))
    b = evaluate(net, [trial], ReadoutCrossEntropy("out", "sum"))
    assert a.loss == b.loss
    assert np.array_equal(a.grad_weights["in_out"], b.grad_weights["in_out"])
    assert a.records[0].arr_e == b.records[0].arr_e


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (dict(V_reset=2.0), "V_reset must be < V_th"),
        (dict(tau_m=-1.0), "tau_m"),
        (dict(t_ref=-1.0), "t_ref"),
        (dict(bogus=1.0), "unknown parameters"),
        (dict(C_m=[1.0, 2.0]), "shape"),
    ],
)
def test_bad_parameters_raise_spec_errors(change, match):
    params = dict(C_m=1.0, tau_m=10.0, tau_syn=5.0, E_L=0.0, V_th=1.0, V_reset=0.0)
    params.update(change)
    pops = (Population("in", 1, "input"), Population("hid", 1, "lif", params))
    net = Network(pops, (Projection("p", "in", "hid", [0], [0], [1.0], 1.0),), 10.0)
    with pytest.raises(SpecError, match=match):
        compile_network(net)


def test_bad_network_and_trial_inputs_raise():
    pops = (Population("in", 1, "input"), Population("out", 1, "li", {}))
    with pytest.raises(SpecError, match="delays must be finite and > 0"):
        compile_network(Network(pops, (Projection("p", "in", "out", [0], [0], [1.0], 0.0),), 10.0))
    with pytest.raises(SpecError, match="target index out of range"):
        compile_network(Network(pops, (Projection("p", "in", "out", [0], [3], [1.0], 1.0),), 10.0))
    net = Network(pops, (Projection("p", "in", "out", [0], [0], [1.0], 1.0),), 10.0)
    with pytest.raises(SpecError, match=r"spike times must be finite and in \[0, 10.0\)"):
        evaluate(net, [Trial({"in": [[12.0]]}, label=0)], ReadoutCrossEntropy("out"))
    with pytest.raises(SpecError, match="trial label"):
        evaluate(net, [Trial({"in": [[1.0]]}, label=3)], ReadoutCrossEntropy("out"))
    with pytest.raises(ConfigError, match="mode 'mean'"):
        ReadoutCrossEntropy("out", "mean")
    with pytest.raises(ConfigError, match="needs 'lif'"):
        evaluate(net, [Trial({"in": [[1.0]]}, label=0)], FirstSpikeLoss("out"))


def test_engine_imports_neither_nest_nor_scipy():
    code = (
        "import sys, nestgrad.reference.eventprop as e; "
        "bad = [m for m in ('nest', 'scipy', 'torch') if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_readout_max_on_an_inhibitory_arrival_moves_with_that_arrival():
    """Excitatory arrival at t1, inhibitory at t2 while v still rises: the maximum is v(t2) = w1 kern(t2 - t1) / C,
    a kink. dy/dw1 = kern / C, dy/dw2 = 0, dy/dd2 = dv/dt(t2-) = w1 kern'(t2 - t1) / C, dy/dd1 = -dy/dd2."""
    tau_m, tau_syn, C = 10.0, 4.0, 2.0
    w1, w2, t1, t2 = 3.0, -20.0, 1.0 + 1.0, 2.5 + 1.5
    pops = (Population("in", 2, "input"), Population("out", 2, "li", dict(C_m=C, tau_m=tau_m, tau_syn=tau_syn)))
    proj = Projection("p", "in", "out", np.array([0, 1]), np.array([0, 0]), np.array([w1, w2]), np.array([1.0, 1.5]))
    net = Network(pops, (proj,), 30.0)
    res = evaluate(net, [Trial({"in": [[1.0], [2.5]]}, label=1)], ReadoutCrossEntropy("out", "max"))
    u = t2 - t1
    y0 = w1 * kern(u, tau_m, tau_syn) / C
    slope = w1 * (math.exp(-u / tau_syn) - kern(u, tau_m, tau_syn) / tau_m) / C  # d/du of w1 kern(u) / C
    assert slope > 0.0
    y = np.array([y0, 0.0])
    c0 = (np.exp(y) / np.exp(y).sum())[0]  # dL/dy_0, label 1
    assert res.outputs[0] == pytest.approx(y, rel=1e-13)
    assert res.grad_weights["p"] == pytest.approx([c0 * kern(u, tau_m, tau_syn) / C, 0.0], rel=1e-10, abs=1e-14)
    assert res.grad_delays["p"] == pytest.approx([-c0 * slope, c0 * slope], rel=1e-10)


@pytest.mark.parametrize("adapt_tau", [20.0, 10.0, 3.0])
def test_no_threshold_crossing_is_missed_in_adaptive_recurrent_networks(adapt_tau):
    """Between consecutive events of every LIF neuron, g = v - A - theta (closed form from the recorded state after
    the first event) stays below 0 on a dense grid: the exact crossing search missed no spike. Recurrent ALIF
    network with refractoriness, I_e and adapt_tau also equal to tau_m (10 ms)."""
    rng = np.random.default_rng(7)
    lif = dict(C_m=1.0, tau_m=10.0, tau_syn=5.0, E_L=0.0, V_th=1.0, V_reset=0.0, t_ref=1.0, I_e=0.05)
    lif.update(adapt_beta=0.4, adapt_tau=adapt_tau)
    n_in, n = 4, 8
    pops = (Population("in", n_in, "input"), Population("hid", n, "lif", lif))
    s1, t1 = np.meshgrid(range(n_in), range(n), indexing="ij")
    s2, t2 = np.meshgrid(range(n), range(n), indexing="ij")
    projs = (
        Projection("in_hid", "in", "hid", s1.ravel(), t1.ravel(), rng.normal(0.35, 0.15, s1.size), 1.0),
        Projection("hid_hid", "hid", "hid", s2.ravel(), t2.ravel(), rng.normal(0.0, 0.2, s2.size), 0.7),
    )
    net = Network(pops, projs, 60.0)
    trial = Trial({"in": [np.sort(rng.uniform(0, 40, 5)) for _ in range(n_in)]})
    cnet = compile_network(net)
    rec = simulate(cnet, trial)
    assert len(rec.spike_t) > 20
    # every event of each LIF neuron, in processing order: (time, index into rec.post[j])
    events: dict[int, list[float]] = {j: [] for j in rec.post}
    for kind, idx in rec.log:
        if kind == 0:
            j, t = int(cnet.tgt[rec.arr_e[idx]]), rec.arr_t[idx]
        elif kind == 1:
            j, t = rec.spike_n[idx], rec.spike_t[idx]
        else:
            j, t = rec.spike_n[idx], rec.release_t[idx]
        events[j].append(t)
    checked = 0
    for j, times in events.items():
        p = cnet.params[j]
        starts = [(0.0, (0.0, 0.0, 0.0, False))] + list(zip(times, rec.post[j], strict=True))
        ends = times + [rec.T]
        for (t0, (v0, i0, a0, refr)), t_end in zip(starts, ends, strict=True):
            if refr or t_end <= t0:
                continue
            u = np.linspace(0.0, t_end - t0, 400)[1:-1]
            v = p.v_inf + (v0 - p.v_inf) * np.exp(-u / p.tau_m)
            v += i0 * np.array([kern(x, p.tau_m, p.tau_syn) for x in u]) / p.C_m
            g = v - a0 * np.exp(-u / p.adapt_tau) - p.theta
            assert np.all(g < 1e-12), f"neuron {j}: missed crossing in ({t0}, {t_end})"
            checked += 1
    assert checked > 100

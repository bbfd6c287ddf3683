"""EventProp reference engine: exact gradients against central finite differences of the continuous-time loss.

How a weight, delay or time constant p is checked: the loss (float64, the same exact event-driven simulation) is
recomputed with p moved by +-h and +-h/2, h = 1e-4 * max(|p|, mean |p| of its projection) (h = 1e-4 |p| for time
constants), and the Richardson-extrapolated
central difference R = (4 D(h/2) - D(h)) / 3, D(h) = (L(p+h) - L(p-h)) / 2h, is compared with the adjoint
gradient g. A central difference only measures the derivative where the loss is smooth within the step, so:

* p is *skipped* when in any of the four perturbed runs a spike appears, vanishes or changes its place in the
  global order of spikes (:meth:`ForwardRecord.structure` differs from the base run's): the loss jumps or kinks
  there and has no derivative to compare;
* near-grazing spikes (a spike whose threshold crossing is almost tangential) make the loss smooth but strongly
  curved; when R and g disagree, the check is repeated with h / 10 (at most twice more) and the best agreement
  counts: truncation error falls with h (and rounding noise grows), a wrong gradient agrees at no step. The
  tests print how many parameters needed a smaller step (none in most cases, 10 of 47 in the busiest network,
  the two-layer one with 164 spikes).

Every test requires that at least 80 % of the parameters were checked and that each checked one satisfies

    |g - R| <= 1e-6 * max(|R|, 1e-3 * max_k |g_k|)

i.e. 1e-6 relative, where gradients below 1e-3 of the largest one checked in the case are held to 1e-9 of it
(their own relative error is then limited by the rounding of the loss in the difference quotient).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from nestgrad.errors import ConfigError
from nestgrad.reference.eventprop import (
    FirstSpikeLoss,
    Network,
    Population,
    Projection,
    ReadoutCrossEntropy,
    ReadoutMSE,
    SpikeCountRegulariser,
    Trial,
    evaluate,
)

RTOL = 1e-6
MIN_CHECKED = 0.8

LIF = dict(C_m=1.0, tau_m=10.0, tau_syn=5.0, E_L=0.0, V_th=1.0, V_reset=0.0, t_ref=0.0)
LI = dict(C_m=1.0, tau_m=10.0, tau_syn=5.0, E_L=0.0)


def dense(name, src, tgt, n_src, n_tgt, rng, mean, std, delay=(0.5, 3.0), p_conn=1.0):
    s, t = np.meshgrid(range(n_src), range(n_tgt), indexing="ij")
    s, t = s.ravel(), t.ravel()
    keep = rng.random(s.size) < p_conn
    s, t = s[keep], t[keep]
    return Projection(name, src, tgt, s, t, rng.normal(mean, std, s.size), rng.uniform(*delay, s.size))


def make_net(kind: str, seed: int, readout: str = "li", n_in: int = 3, n_hid: int = 5, n_out: int = 3, **lif_over):
    """Small random networks of each kind; weights chosen so that hidden neurons fire a few spikes per trial."""
    rng = np.random.default_rng(seed)
    lif = {**LIF, **lif_over}
    T = 40.0
    out_params = LI if readout == "li" else {**LIF, "tau_m": 5.0, "tau_syn": 2.5, "t_ref": 1.0}
    pops = [Population("in", n_in, "input"), Population("hid", n_hid, "lif", lif)]
    projs = [dense("in_hid", "in", "hid", n_in, n_hid, rng, 0.3, 0.12)]
    if kind == "two_layer":
        pops.append(Population("hid2", 4, "lif", lif))
        projs.append(dense("hid_hid2", "hid", "hid2", n_hid, 4, rng, 0.15, 0.1))
        last, n_last = "hid2", 4
    else:
        last, n_last = "hid", n_hid
    if kind == "recurrent":
        projs.append(dense("hid_hid", "hid", "hid", n_hid, n_hid, rng, 0.0, 0.12, p_conn=0.6))
    pops.append(Population("out", n_out, readout, out_params))
    mean_out, std_out = (0.0, 0.08) if readout == "li" else (0.5, 0.2)
    projs.append(dense(f"{last}_out", last, "out", n_last, n_out, rng, mean_out, std_out))
    return Network(tuple(pops), tuple(projs), T)


def make_trials(seed: int, n_trials: int = 1, n_in: int = 3, T: float = 40.0, n_out: int = 3):
    rng = np.random.default_rng(1000 + seed)
    trials = []
    for b in range(n_trials):
        spikes = [np.sort(rng.uniform(0.0, 0.6 * T, rng.integers(2, 5))) for _ in range(n_in)]
        edges = np.linspace(0.0, T, 5)
        trials.append(
            Trial({"in": spikes}, label=b % n_out, target=rng.normal(0.0, 3.0, (n_out, 4)), target_edges=edges)
        )
    return trials


def _loss_at(net, trials, loss, regs):
    res = evaluate(net, trials, loss, regs, gradient=False)
    return res.loss, [r.structure() for r in res.records]


def with_neuron_param(net: Network, pop: str, key: str, k: int, delta: float) -> Network:
    """A copy of ``net`` with parameter ``key`` of neuron k of population ``pop`` moved by ``delta``."""
    pops = []
    for p in net.populations:
        if p.name == pop:
            params = dict(p.params)
            arr = np.array(np.broadcast_to(params[key], (p.size,)), float)
            arr[k] += delta
            params[key] = arr
            p = dataclasses.replace(p, params=params)
        pops.append(p)
    return dataclasses.replace(net, populations=tuple(pops))


def _handles(net, base, what, projections):
    """(adjoint gradient, parameter value, its group's mean magnitude, function delta -> moved network)."""
    out = []
    if what in ("weights", "delays"):
        grads = base.grad_weights if what == "weights" else base.grad_delays
        for name in projections or [p.name for p in net.projections]:
            proj = net.projection(name)
            if what == "weights":
                vals = np.asarray(proj.weights, float)
            else:
                vals = np.array(np.broadcast_to(proj.delays, np.shape(proj.weights)), float)
            scale = float(np.mean(np.abs(vals)))
            for k in range(len(vals)):

                def move(delta, name=name, vals=vals, k=k):
                    new = vals.copy()
                    new[k] += delta
                    return net.with_weights({name: new}) if what == "weights" else net.with_delays({name: new})

                out.append((float(grads[name][k]), float(vals[k]), scale, move))
    else:  # time constants of every non-input neuron
        for pop in net.populations:
            if pop.kind == "input":
                continue
            for key, grad in base.grad_params[pop.name].items():
                if key == "adapt_tau" and not np.any(np.asarray(pop.params.get("adapt_beta", 0.0)) > 0):
                    continue  # no adaptation: adapt_tau has no effect
                vals = np.broadcast_to(np.asarray(pop.params[key], float), (pop.size,))
                for k in range(pop.size):
                    move = lambda delta, pop=pop.name, key=key, k=k: with_neuron_param(net, pop, key, k, delta)  # noqa: E731
                    out.append((float(grad[k]), float(vals[k]), float(vals[k]), move))
    return out


def fd_check(net, trials, loss, regs=(), what="weights", projections=None, rel_step=1e-4):
    """Compare the adjoint gradient with finite differences (see the module docstring). ``what``: "weights",
    "delays" or "time_constants" (tau_m, tau_syn, adapt_tau of every neuron).

    Returns (max relative error over checked parameters, number checked, number of parameters, number that
    needed a step below the first)."""
    base = evaluate(net, trials, loss, regs, time_constants=(what == "time_constants"))
    base_struct = [r.structure() for r in base.records]
    assert sum(len(r.spike_t) for r in base.records) > 0, "the test network does not spike"
    handles = _handles(net, base, what, projections)
    floor = 1e-3 * max(abs(h[0]) for h in handles)
    assert floor > 0.0
    errors = []
    retried = 0
    for g, val, scale, move in handles:
        h = rel_step * max(abs(val), scale)
        best = np.inf
        for attempt in range(3):
            retried += attempt == 1
            losses = {}
            smooth = True
            for step in (h, -h, h / 2, -h / 2):
                losses[step], struct = _loss_at(move(step), trials, loss, regs)
                smooth &= struct == base_struct
            if not smooth:
                break  # a spike appeared, vanished or swapped order within the step: no derivative here
            d1 = (losses[h] - losses[-h]) / (2 * h)
            d2 = (losses[h / 2] - losses[-h / 2]) / h
            fd = (4 * d2 - d1) / 3
            best = min(best, abs(g - fd) / max(abs(fd), floor))
            if best <= RTOL:
                break
            h /= 10
        if np.isfinite(best):
            errors.append(best)
    total = len(handles)
    assert len(errors) >= MIN_CHECKED * total, f"only {len(errors)} of {total} parameters checkable"
    return float(max(errors)), len(errors), total, retried


SUM = ReadoutCrossEntropy("out", "sum")
MAX = ReadoutCrossEntropy("out", "max")
SUM_EXP = ReadoutCrossEntropy("out", "sum_exp", tau_w=20.0)
MSE = ReadoutMSE("out")
# the response window [15, 40] ms of a decision task (inputs spike in [0, 24] ms: the window opens among them)
SUM_W = ReadoutCrossEntropy("out", "sum", window_start=15.0)
MAX_W = ReadoutCrossEntropy("out", "max", window_start=15.0)
SUM_EXP_W = ReadoutCrossEntropy("out", "sum_exp", tau_w=20.0, window_start=15.0)
REFR = {"t_ref": 2.0}
ALIF = {"adapt_beta": 0.3, "adapt_tau": 20.0}
# one value per hidden neuron (5): heterogeneous time constants, thresholds and refractory periods
HETERO = {
    "tau_m": [6.0, 9.0, 12.0, 15.0, 8.0],
    "tau_syn": [2.0, 9.0, 4.0, 6.0, 3.0],
    "t_ref": [0.5, 1.0, 2.0, 0.0, 3.0],
    "V_th": [0.9, 1.0, 1.1, 0.95, 1.05],
}

# (case id, network kind, LIF overrides, readout kind, loss, regularisers, also check delays, trials)
CASES = [
    ("feedforward-sum", "feedforward", {}, "li", SUM, (), True, 1),
    ("feedforward-max", "feedforward", {}, "li", MAX, (), True, 1),
    ("feedforward-sum_exp", "feedforward", {}, "li", SUM_EXP, (), False, 1),
    ("feedforward-mse", "feedforward", {}, "li", MSE, (), False, 1),
    ("feedforward-equal_tau-sum", "feedforward", {"tau_syn": 10.0}, "li", SUM, (), False, 1),
    ("two_layer-max", "two_layer", {}, "li", MAX, (), False, 1),
    ("two_layer-sum_exp", "two_layer", REFR, "li", SUM_EXP, (), False, 1),
    ("recurrent-sum", "recurrent", {}, "li", SUM, (), True, 1),
    ("recurrent-mse", "recurrent", {}, "li", MSE, (), False, 1),
    ("refractory-feedforward-sum", "feedforward", REFR, "li", SUM, (), False, 1),
    ("refractory-recurrent-max", "recurrent", REFR, "li", MAX, (), True, 1),
    ("alif-feedforward-sum", "feedforward", ALIF, "li", SUM, (), False, 1),
    (
        "alif-tau_a_equals_tau_m-recurrent-max",
        "recurrent",
        {"adapt_beta": 0.2, "adapt_tau": 10.0},
        "li",
        MAX,
        (),
        False,
        1,
    ),
    ("tonic_I_e-refractory-recurrent-max", "recurrent", {"I_e": 0.12, "t_ref": 1.5}, "li", MAX, (), True, 1),
    ("heterogeneous_tau-refractory-recurrent-sum", "recurrent", HETERO, "li", SUM, (), True, 1),
    ("alif-refractory-recurrent-mse", "recurrent", {**ALIF, **REFR}, "li", MSE, (), True, 1),
    ("spiking_readout-first_spike", "feedforward", {}, "lif", FirstSpikeLoss("out"), (), True, 1),
    ("spiking_readout-recurrent-first_spike", "recurrent", REFR, "lif", FirstSpikeLoss("out"), (), False, 1),
    (
        "spike_count_regulariser-sum",
        "feedforward",
        {},
        "li",
        SUM,
        (SpikeCountRegulariser(("hid",), 0.1, 1.0),),
        False,
        1,
    ),
    ("batch_of_2-sum", "feedforward", {}, "li", SUM, (), False, 2),
    ("window-feedforward-sum", "feedforward", {}, "li", SUM_W, (), True, 1),
    ("window-recurrent-sum", "recurrent", {}, "li", SUM_W, (), True, 1),
    ("window-alif-refractory-recurrent-sum", "recurrent", {**ALIF, **REFR}, "li", SUM_W, (), False, 2),
    ("window-recurrent-max", "recurrent", {}, "li", MAX_W, (), True, 1),
    ("window-two_layer-sum_exp", "two_layer", {}, "li", SUM_EXP_W, (), False, 1),
]


@pytest.mark.parametrize(
    ("kind", "over", "readout", "loss", "regs", "delays", "n_trials"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_gradient_matches_finite_differences(kind, over, readout, loss, regs, delays, n_trials):
    net = make_net(kind, 3, readout=readout, **over)
    trials = make_trials(3, n_trials=n_trials)
    for what in ("weights", "delays") if delays else ("weights",):
        err, checked, total, retried = fd_check(net, trials, loss, regs, what=what)
        print(
            f"{kind} {over} {type(loss).__name__} {getattr(loss, 'mode', '')} {what}: max rel err {err:.2e}, "
            f"{checked}/{total} checked, {retried} with a smaller step"
        )
        assert err <= RTOL, f"{what}: max relative error {err:.3e} > {RTOL}"


TAU_CASES = [
    ("feedforward-sum", "feedforward", {}, "li", SUM),
    ("feedforward-equal_tau-sum_exp", "feedforward", {"tau_syn": 10.0}, "li", SUM_EXP),
    ("recurrent-refractory-max", "recurrent", REFR, "li", MAX),
    ("recurrent-alif-refractory-mse", "recurrent", {**ALIF, **REFR}, "li", MSE),
    ("heterogeneous-recurrent-sum_exp", "recurrent", HETERO, "li", SUM_EXP),
    ("spiking_readout-first_spike", "feedforward", {}, "lif", FirstSpikeLoss("out", tau_s=2.5)),
    ("window-recurrent-sum", "recurrent", {}, "li", SUM_W),
]


@pytest.mark.parametrize(("kind", "over", "readout", "loss"), [c[1:] for c in TAU_CASES], ids=[c[0] for c in TAU_CASES])
def test_time_constant_gradients_match_finite_differences(kind, over, readout, loss):
    net = make_net(kind, 3, readout=readout, **over)
    err, checked, total, retried = fd_check(net, make_trials(3), loss, what="time_constants")
    print(
        f"{kind} {over} {type(loss).__name__} {getattr(loss, 'mode', '')} time constants: max rel err {err:.2e}, "
        f"{checked}/{total} checked, {retried} with a smaller step"
    )
    assert err <= RTOL


def test_window_start_zero_is_the_whole_trial_bit_for_bit():
    """window_start = 0 is the loss without a window: the same doubles, loss and gradients."""
    net = make_net("recurrent", 3, **REFR)
    trials = make_trials(3, n_trials=2)
    for mode in ("sum", "max", "sum_exp"):
        a = evaluate(net, trials, ReadoutCrossEntropy("out", mode, 20.0 if mode == "sum_exp" else None))
        b = evaluate(net, trials, ReadoutCrossEntropy("out", mode, 20.0 if mode == "sum_exp" else None, 0.0))
        assert a.loss == b.loss
        for name in a.grad_weights:
            assert np.array_equal(a.grad_weights[name], b.grad_weights[name])
            assert np.array_equal(a.grad_delays[name], b.grad_delays[name])


def test_window_changes_the_readout_values_as_defined():
    """y over the window: the mean of v over [t_w, T] (trapezoidal quadrature of the recorded pieces in closed
    form on a fine grid) and the maximum of v over [t_w, T] only."""
    from nestgrad.reference.eventprop import compile_network, simulate

    net = make_net("feedforward", 3)
    trial = make_trials(3)[0]
    cnet = compile_network(net)
    rec = simulate(cnet, trial)
    grid = np.linspace(15.0, 40.0, 250_001)
    tm, ts_, cm = LI["tau_m"], LI["tau_syn"], LI["C_m"]
    v_grid = []
    for n in sorted(rec.seg_t):
        starts = np.asarray(rec.seg_t[n])
        j = np.searchsorted(starts, grid, side="right") - 1
        u = grid - starts[j]
        v0, i0 = np.asarray(rec.seg_v[n])[j], np.asarray(rec.seg_i[n])[j]
        kern = tm * ts_ / (ts_ - tm) * (np.exp(-u / ts_) - np.exp(-u / tm))
        v_grid.append(v0 * np.exp(-u / tm) + i0 * kern / cm)
    v_grid = np.array(v_grid)
    terms = ReadoutCrossEntropy("out", "sum", window_start=15.0)(cnet, rec, trial)
    np.testing.assert_allclose(terms.outputs, np.trapezoid(v_grid, grid, axis=1) / 25.0, rtol=1e-7, atol=1e-10)
    whole = ReadoutCrossEntropy("out", "sum")(cnet, rec, trial)
    assert not np.allclose(whole.outputs, terms.outputs)  # the window matters in this network
    terms_max = ReadoutCrossEntropy("out", "max", window_start=15.0)(cnet, rec, trial)
    np.testing.assert_allclose(terms_max.outputs, v_grid.max(axis=1), rtol=1e-7, atol=1e-9)
    assert np.all(terms_max.outputs <= ReadoutCrossEntropy("out", "max")(cnet, rec, trial).outputs)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), True, "5"])
def test_window_start_rejects_bad_values(bad):
    with pytest.raises(ConfigError, match="window_start"):
        ReadoutCrossEntropy("out", "sum", window_start=bad)


def test_window_start_must_lie_inside_the_trial():
    net = make_net("feedforward", 3)
    with pytest.raises(ConfigError, match=r"window_start = 40.0 ms.*T = 40.0"):
        evaluate(net, make_trials(3), ReadoutCrossEntropy("out", "sum", window_start=40.0))

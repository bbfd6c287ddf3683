"""Backward pass: the EventProp adjoint, exact between events, with jumps at each neuron's own spikes.

Each spiking neuron n keeps lambda = (lambda_v, lambda_I, lambda_A) = dL/d(v, I, A) and the time it refers to;
going back in time it is propagated in closed form
(:func:`~nestgrad.reference.eventprop.neurons.dynamics.adjoint_propagate`) and changes only at:

* an arrival t_a = t_k + d of a spike k of n at a target m (processed when the backward sweep passes t_a, i.e.
  one delay before n's spike): m's adjoint is read there; the weight gets dL/dw += lambda_I,m(t_a), the delay
  dL/dd += w (lambda_I,m / tau_syn,m - lambda_v,m / C_m), and the same amount is added to the buffer J_k of the
  emitting spike;
* the release r = t_k + t_ref of n from refractoriness: R_k = -lambda_v,n(r+) dv/dt_free(r) is stored for spike k
  and lambda_v,n is set to 0 (v is clamped before r);
* n's own spike k at t_k: with B = -lambda_v+ dv/dt+ + lambda_A+ beta / tau_A + J_k + R_k + dL/dt_k (direct),
  lambda_v- = -B / gdot_k, lambda_A- = lambda_A+ + B / gdot_k, lambda_I- = lambda_I+ (gdot_k = dg/dt before the
  spike, g = v - A - theta).

Leaky readouts are forced by the loss; their adjoint is solved first, per readout, piece by piece in closed form
(:func:`readout_adjoint`), and read at their arrivals like any target's. Time-constant gradients, when asked for,
integrate lambda . dF/dtau over each inter-event interval (:func:`time_constant_terms`). docs/eventprop.md
derives all of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nestgrad.reference.eventprop.expsum import ExpPoly
from nestgrad.reference.eventprop.losses import LossTerms, ReadoutForcing
from nestgrad.reference.eventprop.network import CompiledNetwork
from nestgrad.reference.eventprop.neurons.dynamics import (
    NeuronParams,
    adjoint_propagate,
    exp_integral,
    kern_integral,
    propagate,
    voltage_expsum,
)
from nestgrad.reference.eventprop.simulate import LOG_ARRIVAL, LOG_SPIKE, ForwardRecord

_RESPONSES: dict[tuple, tuple[ExpPoly, ExpPoly]] = {}


def _responses(rate: float, power: int, p: NeuronParams) -> tuple[ExpPoly, ExpPoly]:
    """Antiderivatives (F_v, F_I) of b(s) exp(-s / tau_m) and b(s) kern(s) / C_m for the forcing b(s) = s^power
    exp(-rate s): the forced adjoint at the start of a piece of length L with zero end values is
    (F_v(L) - F_v(0), F_I(L) - F_I(0)). Cached per (rate, power, tau_m, tau_syn, C_m)."""
    key = (rate, power, p.tau_m, p.tau_syn, p.C_m)
    hit = _RESPONSES.get(key)
    if hit is None:
        b = ExpPoly.exp(rate, 1.0, power)
        kernel = voltage_expsum(0.0, p.C_m, NeuronParams(C_m=p.C_m, tau_m=p.tau_m, tau_syn=p.tau_syn, E_L=0.0))
        hit = ((b * ExpPoly.exp(1.0 / p.tau_m)).antideriv(), (b * kernel).scale(1.0 / p.C_m).antideriv())
        _RESPONSES[key] = hit
    return hit


def _forced_step(lv: float, li: float, length: float, f: ExpPoly, p: NeuronParams) -> tuple[float, float]:
    """(lambda_v, lambda_I) at the start of a piece of ``length`` ms, from their values at its end, under
    d lambda_v/dt = lambda_v / tau_m - f(u), d lambda_I/dt = -lambda_v / C_m + lambda_I / tau_syn (u local time).

    Going back by L: lambda_v(0) = exp(-L/tau_m) lambda_v(L) + int_0^L exp(-s/tau_m) f(s) ds and
    lambda_I(0) = exp(-L/tau_syn) lambda_I(L) + kern(L) lambda_v(L) / C_m + int_0^L kern(s) f(s) ds / C_m; the
    integrals are exact, term by term of f."""
    lv0, li0, _ = adjoint_propagate(lv, li, 0.0, length, p)
    rm = 1.0 / p.tau_m
    for rate, coeffs in f.items():
        for power, c in enumerate(coeffs):
            if c == 0.0:
                continue
            if power == 0 and rate >= 0.0:
                # the common case (constant or exponential weighting) in the cancellation-free closed form
                lv0 += c * exp_integral(length, rate + rm)
                li0 += c * kern_integral(length, p.tau_m, p.tau_syn, rate) / p.C_m
                continue
            fv, fi = _responses(rate, power, p)
            lv0 += c * (fv(length) - fv(0.0))
            li0 += c * (fi(length) - fi(0.0))
    return lv0, li0


def _interval_polys(lv: float, li: float, length: float, f: ExpPoly | None, p: NeuronParams) -> tuple[ExpPoly, ExpPoly]:
    """lambda_v(u), lambda_I(u) on [0, length] (u local forward time) as exponential polynomials, from their values
    at the end and the loss forcing f (None: no forcing)."""
    rm, rs = 1.0 / p.tau_m, 1.0 / p.tau_syn
    lam_v = ExpPoly.exp(-rm, lv * math.exp(-length * rm))
    if f is not None and not f.is_zero():
        q = f.times_exp(-rm).antideriv()
        lam_v = lam_v + ExpPoly.exp(-rm, q(length)) - q.times_exp(rm)
    big_p = lam_v.times_exp(-rs).antideriv()
    lam_i = ExpPoly.exp(-rs, li * math.exp(-length * rs) + big_p(length) / p.C_m) - big_p.times_exp(rs).scale(
        1.0 / p.C_m
    )
    return lam_v, lam_i


def time_constant_terms(
    lv: float, li: float, la: float, length: float, state: tuple, p: NeuronParams, f: ExpPoly | None = None
) -> tuple[float, float, float]:
    """Contributions of one inter-event interval to dL/d(tau_m, tau_syn, adapt_tau).

    For dx/dt = F(x, tau), dL/dtau = int lambda . dF/dtau dt: dF_v/dtau_m = v / tau_m^2 (0 while refractory, where
    F_v = 0), dF_I/dtau_syn = I / tau_syn^2, dF_A/dadapt_tau = A / adapt_tau^2. ``state`` = (v, I, A, refractory)
    at the start of the interval, (lv, li, la) the adjoint at its end. The threshold, reset, release time and
    arrival jumps do not depend on these constants, so there are no event terms."""
    v0, i0, a0, refractory = state
    lam_v, lam_i = _interval_polys(lv, li, length, f, p)
    g_tm = 0.0
    if not refractory:
        g_tm = (lam_v * voltage_expsum(v0, i0, p)).integral(0.0, length) / p.tau_m**2
    g_ts = (lam_i * ExpPoly.exp(1.0 / p.tau_syn, i0)).integral(0.0, length) / p.tau_syn**2
    g_ta = la * a0 * math.exp(-length / p.adapt_tau) * length / p.adapt_tau**2 if la != 0.0 and a0 != 0.0 else 0.0
    return g_tm, g_ts, g_ta


def readout_adjoint(
    rec: ForwardRecord, n: int, p: NeuronParams, forcing: ReadoutForcing | None, tau_grads: list[float] | None = None
) -> list[tuple]:
    """(lambda_v, lambda_I) of leaky readout n just after each of its segment starts (before a jump there).

    With ``tau_grads`` (a list [tau_m, tau_syn]) the readout's time-constant gradients are added to it."""
    T = rec.T
    ts, vs, is_ = rec.seg_t[n], rec.seg_v[n], rec.seg_i[n]
    out: list[tuple[float, float]] = [(0.0, 0.0)] * len(ts)
    if forcing is None:
        return out
    jumps = dict(forcing.jumps)
    lv = jumps.pop(T, 0.0)
    li = 0.0
    cut_times = sorted(set(forcing.breakpoints) | set(jumps))
    for j in range(len(ts) - 1, -1, -1):
        t0 = ts[j]
        t1 = ts[j + 1] if j + 1 < len(ts) else T
        pts = [t0, *[c for c in cut_times if t0 < c < t1], t1]
        for a, b in zip(pts[-2::-1], pts[:0:-1], strict=True):
            if b in jumps and b < t1:
                lv += jumps.pop(b)
            length = b - a
            va, ia, _ = propagate(vs[j], is_[j], 0.0, a - t0, p, False)
            f = None if forcing.fn is None else forcing.fn(a, va, ia)
            if tau_grads is not None and length > 0.0:
                g_tm, g_ts, _ = time_constant_terms(lv, li, 0.0, length, (va, ia, 0.0, False), p, f)
                tau_grads[0] += g_tm
                tau_grads[1] += g_ts
            if f is None or f.is_zero():
                lv, li, _ = adjoint_propagate(lv, li, 0.0, length, p)
            else:
                lv, li = _forced_step(lv, li, length, f, p)
        out[j] = (lv, li)
        if t0 in jumps:
            lv += jumps.pop(t0)
    return out


@dataclass
class Gradients:
    """One trial's gradients: per edge (weights pA^-1, delays ms^-1) and, if asked, per neuron (ms^-1; zeros for
    inputs and for constants a neuron does not have)."""

    weights: np.ndarray
    delays: np.ndarray
    tau_m: np.ndarray | None = None
    tau_syn: np.ndarray | None = None
    adapt_tau: np.ndarray | None = None


def backward(cnet: CompiledNetwork, rec: ForwardRecord, terms: LossTerms, time_constants: bool = False) -> Gradients:
    """dL/dw and dL/dd for every edge of ``cnet`` for one trial; with ``time_constants`` also dL/dtau_m,
    dL/dtau_syn and dL/dadapt_tau per neuron."""
    T = rec.T
    n = cnet.n
    params, kinds = cnet.params, cnet.kind
    tgt, w = cnet.tgt, cnet.w
    grad_w = np.zeros(len(w))
    grad_d = np.zeros(len(w))
    lv = [0.0] * n
    li = [0.0] * n
    la = [0.0] * n
    tb = [T] * n
    n_spikes = len(rec.spike_t)
    jbuf = [0.0] * n_spikes
    rbuf = [0.0] * n_spikes

    g_tau = np.zeros((3, n)) if time_constants else None
    post_idx = {j: len(states) - 1 for j, states in rec.post.items()}

    readout_lam: dict[int, tuple[float, float]] = {}
    for m in rec.seg_t:
        acc = [0.0, 0.0] if time_constants else None
        lam = readout_adjoint(rec, m, params[m], terms.forcing.get(m), acc)
        if acc is not None:
            g_tau[0, m], g_tau[1, m] = acc
        for aid, val in zip(rec.seg_arr[m], lam, strict=True):
            if aid >= 0:
                readout_lam[aid] = val

    def back(j: int, t: float, initial: bool = False) -> None:
        """Propagate j's adjoint back to t, the time of j's event being processed (or 0 with ``initial``)."""
        u = tb[j] - t
        if g_tau is not None:
            state = (0.0, 0.0, 0.0, False) if initial else rec.post[j][post_idx[j]]
            if not initial:
                post_idx[j] -= 1
            if u > 0.0:
                for k, g in enumerate(time_constant_terms(lv[j], li[j], la[j], u, state, params[j])):
                    g_tau[k, j] += g
        if u > 0.0:
            lv[j], li[j], la[j] = adjoint_propagate(lv[j], li[j], la[j], u, params[j])
        tb[j] = t

    for kind, idx in reversed(rec.log):
        if kind == LOG_ARRIVAL:
            t, e, sid = rec.arr_t[idx], rec.arr_e[idx], rec.arr_sid[idx]
            m = int(tgt[e])
            p = params[m]
            if kinds[m] == "li":
                lvm, lim = readout_lam[idx]
            else:
                back(m, t)
                lvm, lim = lv[m], li[m]
            grad_w[e] += lim
            term = float(w[e]) * (lim / p.tau_syn - lvm / p.C_m) + terms.kink.get(idx, 0.0)
            grad_d[e] += term
            if sid >= 0:
                jbuf[sid] += term
        elif kind == LOG_SPIKE:
            sid = idx
            j = rec.spike_n[sid]
            p = params[j]
            back(j, rec.spike_t[sid])
            b = (
                -lv[j] * rec.spike_vdot_plus[sid]
                + la[j] * p.adapt_beta / p.adapt_tau
                + jbuf[sid]
                + rbuf[sid]
                + terms.spike_time_grad.get(sid, 0.0)
            )
            gdot = rec.spike_gdot[sid]
            lv[j] = -b / gdot
            la[j] = la[j] + b / gdot
        else:  # release of spike idx from refractoriness
            sid = idx
            j = rec.spike_n[sid]
            back(j, rec.release_t[sid])
            rbuf[sid] = -lv[j] * rec.release_vdot[sid]
            lv[j] = 0.0
    if g_tau is None:
        return Gradients(grad_w, grad_d)
    for j in rec.post:
        back(j, 0.0, initial=True)
    return Gradients(grad_w, grad_d, g_tau[0], g_tau[1], g_tau[2])

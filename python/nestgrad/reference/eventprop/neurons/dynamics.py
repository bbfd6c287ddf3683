"""Current-based LIF neuron with exponential synaptic current, in NEST's ``iaf_psc_exp_ps`` convention.

With v = V_m - E_L (mV), I the synaptic current (pA), A the threshold adaptation (mV)::

    dv/dt = -v / tau_m + (I + I_e) / C_m        (not while refractory: then v = V_reset - E_L)
    dI/dt = -I / tau_syn                        (also while refractory); I += w at each arriving spike (w in pA)
    dA/dt = -A / adapt_tau                      spike when v = (V_th - E_L) + A, then v = V_reset - E_L, A += adapt_beta

Every function here is pure and works on Python floats; ``u`` is the time (ms) since the state was last updated.
The adjoint (lambda_v, lambda_I, lambda_A) = dL/d(v, I, A) obeys, between the neuron's own events, the reversed
system: going back by u, lambda_v decays with tau_m, lambda_I decays with tau_syn and is driven by lambda_v / C_m
through the same kernel as v is driven by I / C_m forward (the kernel is symmetric in its two time constants).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nestgrad.reference.eventprop.expsum import ExpPoly, bracketed_root


@dataclass(frozen=True, slots=True)
class NeuronParams:
    """One neuron's parameters, NEST names and units (pF, ms, mV, pA). ``spiking`` False: a leaky readout (LI)."""

    C_m: float
    tau_m: float
    tau_syn: float
    E_L: float
    I_e: float = 0.0
    V_th: float = math.inf
    V_reset: float = 0.0
    t_ref: float = 0.0
    adapt_tau: float = 1.0
    adapt_beta: float = 0.0
    spiking: bool = True

    @property
    def theta(self) -> float:
        """Threshold relative to E_L (mV)."""
        return self.V_th - self.E_L

    @property
    def v_reset(self) -> float:
        return self.V_reset - self.E_L

    @property
    def v_inf(self) -> float:
        """Fixed point of v without synaptic input (mV)."""
        return self.I_e * self.tau_m / self.C_m

    @property
    def adaptive(self) -> bool:
        return self.adapt_beta != 0.0


def kern(u: float, tau_a: float, tau_b: float) -> float:
    """Response at time u of x' = -x/tau_a + y, y' = -y/tau_b, to x(0) = 0, y(0) = 1 (ms); symmetric in tau_a, tau_b.

    tau_a tau_b / (tau_b - tau_a) (exp(-u/tau_b) - exp(-u/tau_a)) = exp(-u/tau_a) expm1(u d) / d with
    d = (tau_b - tau_a) / (tau_a tau_b): tau_b - tau_a is exact for close values (Sterbenz), so this stays accurate
    to rounding however close the time constants are; u exp(-u/tau) when they are equal."""
    if tau_a == tau_b:
        return u * math.exp(-u / tau_a)
    d = (tau_b - tau_a) / (tau_a * tau_b)
    return math.exp(-u / tau_a) * math.expm1(u * d) / d


def kern_max(tau_a: float, tau_b: float) -> float:
    """max over u >= 0 of kern(u, tau_a, tau_b)."""
    if tau_a == tau_b:
        return tau_a / math.e
    u_peak = math.log(tau_b / tau_a) * tau_a * tau_b / (tau_b - tau_a)
    return kern(u_peak, tau_a, tau_b)


def propagate(v: float, i: float, a: float, u: float, p: NeuronParams, refractory: bool) -> tuple[float, float, float]:
    """State after u ms without input spikes (and without crossing the threshold)."""
    i_new = i * math.exp(-u / p.tau_syn)
    a_new = a * math.exp(-u / p.adapt_tau) if a != 0.0 else 0.0
    if refractory:
        return v, i_new, a_new
    v_inf = p.v_inf
    v_new = v_inf + (v - v_inf) * math.exp(-u / p.tau_m) + i * kern(u, p.tau_m, p.tau_syn) / p.C_m
    return v_new, i_new, a_new


def dvdt(v: float, i: float, p: NeuronParams) -> float:
    """dv/dt of the free (not refractory) dynamics (mV/ms)."""
    return (p.v_inf - v) / p.tau_m + i / p.C_m


def adjoint_propagate(lv: float, li: float, la: float, u: float, p: NeuronParams) -> tuple[float, float, float]:
    """Adjoint u ms earlier, with no event of this neuron and no loss forcing in between.

    While the neuron is refractory lambda_v is 0 (v is clamped), and the same formula holds."""
    li_new = li * math.exp(-u / p.tau_syn) + lv * kern(u, p.tau_m, p.tau_syn) / p.C_m
    lv_new = lv * math.exp(-u / p.tau_m)
    la_new = la * math.exp(-u / p.adapt_tau) if la != 0.0 else 0.0
    return lv_new, li_new, la_new


def voltage_expsum(v: float, i: float, p: NeuronParams) -> ExpPoly:
    """v(u) of the free dynamics from state (v, i) at u = 0, as an exponential polynomial."""
    v_inf = p.v_inf
    f = ExpPoly.const(v_inf)
    rm, rs = 1.0 / p.tau_m, 1.0 / p.tau_syn
    if p.tau_m == p.tau_syn:
        f = f + ExpPoly.exp(rm, v - v_inf) + ExpPoly.exp(rm, i / p.C_m, power=1)
    else:
        k = p.tau_m * p.tau_syn / (p.tau_syn - p.tau_m) * i / p.C_m
        f = f + ExpPoly.exp(rm, v - v_inf - k) + ExpPoly.exp(rs, k)
    return f


def first_crossing(v: float, i: float, a: float, horizon: float, p: NeuronParams, kmax: float) -> float | None:
    """Time u in (0, horizon) at which v(u) first reaches the threshold theta + A(u), or None.

    ``kmax`` = kern_max(tau_m, tau_syn). A cheap bound rejects most calls: v(u) <= max(v, v_inf) + max(I, 0)
    kmax / C_m and A(u) >= min(A, 0). Otherwise the interval is split where g(u) = v(u) - A(u) - theta is
    monotone (closed form for the two-exponential case, Rolle recursion of :class:`ExpPoly` with adaptation) and
    the first bracketed root is refined by safeguarded Newton on the closed-form g.
    """
    theta = p.theta
    bound = max(v, p.v_inf) + max(i, 0.0) * kmax / p.C_m
    if bound < theta + min(a, 0.0) or horizon <= 0.0:
        return None
    tm, ts, ta = p.tau_m, p.tau_syn, p.adapt_tau
    v_inf, c_m = p.v_inf, p.C_m

    def g(u: float) -> float:
        vv = v_inf + (v - v_inf) * math.exp(-u / tm) + i * kern(u, tm, ts) / c_m
        return vv - (a * math.exp(-u / ta) if a != 0.0 else 0.0) - theta

    def dg(u: float) -> float:
        vv = v_inf + (v - v_inf) * math.exp(-u / tm) + i * kern(u, tm, ts) / c_m
        d = (v_inf - vv) / tm + i * math.exp(-u / ts) / c_m
        return d + (a / ta * math.exp(-u / ta) if a != 0.0 else 0.0)

    if g(0.0) >= 0.0:
        return 0.0
    if a == 0.0:
        crit = []
        if tm == ts:
            cm, cs = v - v_inf, i / c_m
            if cs != 0.0:
                crit.append(tm - cm / cs)
        else:
            cs = tm * ts / (ts - tm) * i / c_m
            cm = v - v_inf - cs
            if cm != 0.0:
                ratio = -(cs * tm) / (cm * ts)
                if ratio > 0.0:
                    crit.append(math.log(ratio) / (1.0 / ts - 1.0 / tm))
        crit = [c for c in crit if 0.0 < c < horizon]
    else:
        expr = voltage_expsum(v, i, p) - theta - ExpPoly.exp(1.0 / ta, a)
        crit = expr.deriv().roots(0.0, horizon)
    pts = [0.0, *crit, horizon]
    for lo, hi in zip(pts[:-1], pts[1:], strict=True):
        if g(hi) >= 0.0:
            return bracketed_root(g, lo, hi, dg)
    return None


def exp_integral(length: float, rate: float) -> float:
    """int_0^length exp(-rate u) du (ms), without cancellation for small rate * length."""
    if rate == 0.0:
        return length
    return -math.expm1(-rate * length) / rate


def kern_integral(length: float, tau_a: float, tau_b: float, rate: float = 0.0) -> float:
    """int_0^length exp(-rate u) kern(u; tau_a, tau_b) du (ms^2), rate >= 0.

    exp(-rate u) kern(u; a, b) = kern(u; a', b') with 1/a' = 1/a + rate, 1/b' = 1/b + rate, and
    int_0^L kern(u; a, b) du = b (a (1 - exp(-L/a)) - kern(L; a, b)) (differentiate: kern' = exp(-u/b) - kern/a),
    which stays accurate for close time constants and is exact for equal ones."""
    a, b = (tau_a, tau_b) if rate == 0.0 else (1.0 / (1.0 / tau_a + rate), 1.0 / (1.0 / tau_b + rate))
    return b * (-a * math.expm1(-length / a) - kern(length, a, b))


def voltage_integral(v: float, i: float, length: float, p: NeuronParams, rate: float = 0.0) -> float:
    """int_0^length exp(-rate u) v(u) du for the free dynamics from state (v, i) at u = 0 (mV ms), rate >= 0.

    v(u) = v_inf + (v - v_inf) exp(-u/tau_m) + i kern(u) / C_m, integrated term by term in closed form."""
    v_inf = p.v_inf
    return (
        v_inf * exp_integral(length, rate)
        + (v - v_inf) * exp_integral(length, rate + 1.0 / p.tau_m)
        + i / p.C_m * kern_integral(length, p.tau_m, p.tau_syn, rate)
    )

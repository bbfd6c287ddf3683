"""GLIF3 neuron (NEST's ``glif_psc`` with after-spike currents only) for the EventProp reference engine.

With v = V_m - E_L (mV), A_j the after-spike currents (pA), and per receptor port r an alpha-shaped current I_r (pA)
with its auxiliary state x_r (pA/ms)::

    dv/dt   = -v / tau_m + (I_e + sum_j A_j + sum_r I_r) / C_m      tau_m = C_m / g     (frozen while refractory)
    dA_j/dt = -k_j A_j                                                                     (frozen while refractory)
    dI_r/dt = -I_r / tau_r + x_r,    dx_r/dt = -x_r / tau_r         (always); x_r += w e / tau_r at each arrival
    spike when v reaches theta = V_th - E_L from below; then v = V_reset - E_L,
    A_j = asc_amps_j + rho_j A_j  (rho_j = asc_r_j exp(-k_j t_ref)), and v, A_j stay frozen for t_ref ms

(an arrival of weight w on port r gives I_r(u) = w (e/tau_r) u exp(-u/tau_r), which peaks at w after tau_r, as in
``glif_psc``). Between two events of a neuron the state is linear in its value at the first one; every function
here uses the closed form, written with three kernels (all >= 0, all exact for equal time constants):

    E(u; a)     = exp(-u/a)
    K1(u; a, b) = int_0^u exp(-(u-s)/a) exp(-s/b) ds          (v's response to a unit current decaying with b)
    K2(u; a, b) = int_0^u exp(-(u-s)/a) s exp(-s/b) ds        (v's response, times C_m, to a unit x of a port)

The adjoint uses the transposed propagator (the same kernels): going back by u,
lambda_v <- E(u; tau_m) lambda_v, lambda_A_j <- E(u; 1/k_j) lambda_A_j + K1(u; tau_m, 1/k_j) lambda_v / C_m,
lambda_I_r <- E(u; tau_r) lambda_I_r + K1(u; tau_m, tau_r) lambda_v / C_m and
lambda_x_r <- E(u; tau_r) lambda_x_r + u E(u; tau_r) lambda_I_r + K2(u; tau_m, tau_r) lambda_v / C_m.
docs/eventprop_glif3.md derives the jumps at the neuron's spikes and releases.

A state is a flat tuple ``(v, A_1..A_J, x_1..x_R, I_1..I_R)``; the functions work on Python floats so that a C++
implementation can follow them line by line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nestgrad.reference.eventprop.expsum import ExpPoly, bracketed_root
from nestgrad.reference.eventprop.neurons.dynamics import kern, kern_max

# NEST glif_psc defaults (GLIF3: after_spike_currents true, the two threshold mechanisms off), I_e added
GLIF3_DEFAULTS: dict[str, float | tuple[float, ...]] = {
    "C_m": 58.72,
    "g": 9.43,
    "E_L": -78.85,
    "V_th": -51.68,
    "V_reset": -78.85,
    "t_ref": 3.75,
    "I_e": 0.0,
    "asc_init": (0.0, 0.0),
    "asc_decay": (0.003, 0.1),
    "asc_amps": (-9.18, -198.94),
    "asc_r": (1.0, 1.0),
    "tau_syn": (2.0,),
}
GLIF3_VECTOR_PARAMS = ("asc_init", "asc_decay", "asc_amps", "asc_r", "tau_syn")


@dataclass(frozen=True, slots=True)
class Glif3Params:
    """One GLIF3 neuron, NEST ``glif_psc`` names and units: C_m pF, g nS, E_L/V_th/V_reset mV, t_ref ms, I_e pA,
    asc_init/asc_amps pA, asc_decay 1/ms, asc_r 1, tau_syn ms (one per receptor port, ports numbered from 1)."""

    C_m: float
    g: float
    E_L: float
    V_th: float
    V_reset: float
    t_ref: float
    I_e: float
    asc_init: tuple[float, ...]
    asc_decay: tuple[float, ...]
    asc_amps: tuple[float, ...]
    asc_r: tuple[float, ...]
    tau_syn: tuple[float, ...]

    @property
    def tau_m(self) -> float:
        return self.C_m / self.g

    @property
    def theta(self) -> float:
        return self.V_th - self.E_L

    @property
    def v_reset(self) -> float:
        return self.V_reset - self.E_L

    @property
    def v_inf(self) -> float:
        return self.I_e / self.g

    @property
    def n_asc(self) -> int:
        return len(self.asc_decay)

    @property
    def n_ports(self) -> int:
        return len(self.tau_syn)

    @property
    def rho(self) -> tuple[float, ...]:
        """Factor of A_j kept by a spike (asc_r_j exp(-k_j t_ref): NEST decays it over the refractory period)."""
        return tuple(r * math.exp(-k * self.t_ref) for r, k in zip(self.asc_r, self.asc_decay, strict=True))

    def initial_state(self) -> tuple[float, ...]:
        """v = 0 (V_m = E_L), A_j = asc_init_j, no synaptic current."""
        return (0.0, *self.asc_init, *([0.0] * (2 * self.n_ports)))


def _phi(x: float) -> float:
    """(1 - exp(-x) (1 + x)) / x^2 = int_0^1 s exp(-x s) ds, accurate for all x >= 0 (series near 0; above 0.1 the
    closed form loses at most ~2 eps / x relative to cancellation, i.e. < 5e-15)."""
    if x < 0.1:
        total, term, n = 0.0, 1.0, 0
        while True:
            add = term / (n + 2)
            total += add
            if abs(add) <= 1e-17 * abs(total):
                return total
            n += 1
            term *= -x / n
    return (-math.expm1(-x) - x * math.exp(-x)) / (x * x)


def k1(u: float, a: float, b: float) -> float:
    """K1(u; a, b) (ms): the existing symmetric kernel, written so that no exponential overflows."""
    slow, fast = (a, b) if a >= b else (b, a)  # exp(-u/slow) expm1(u (1/slow - 1/fast)) / d: no overflow
    return kern(u, slow, fast)


def k2(u: float, a: float, b: float) -> float:
    """K2(u; a, b) (ms^2) = int_0^u exp(-(u-s)/a) s exp(-s/b) ds, without overflow or cancellation.

    With c = 1/b - 1/a: for c >= 0 it is exp(-u/a) u^2 phi(c u); for c < 0, substituting s -> u - s,
    exp(-u/b) (u (1 - exp(-|c| u)) / |c| - u^2 phi(|c| u))."""
    if u <= 0.0:
        return 0.0
    c = 1.0 / b - 1.0 / a
    if c >= 0.0:
        return math.exp(-u / a) * u * u * _phi(c * u)
    m = -c
    x = m * u
    return math.exp(-u / b) * u * u * (-math.expm1(-x) / x - _phi(x))


def k2_bound(a: float, b: float) -> float:
    """An upper bound of K2(u; a, b) over u >= 0: max(s exp(-s/b)) int exp(-r/a) dr = (b / e) a."""
    return a * b / math.e


def propagate(state: tuple[float, ...], u: float, p: Glif3Params, refractory: bool) -> tuple[float, ...]:
    """State after u ms without arrivals (and without reaching the threshold)."""
    na, nr = p.n_asc, p.n_ports
    v = state[0]
    asc = state[1 : 1 + na]
    xs = state[1 + na : 1 + na + nr]
    cur = state[1 + na + nr :]
    new_x, new_i = [], []
    for x, i, tau in zip(xs, cur, p.tau_syn, strict=True):
        e = math.exp(-u / tau)
        new_x.append(x * e)
        new_i.append((i + x * u) * e)
    if refractory:
        return (v, *asc, *new_x, *new_i)
    tm, cm = p.tau_m, p.C_m
    v_inf = p.v_inf
    vn = v_inf + (v - v_inf) * math.exp(-u / tm)
    new_a = []
    for a, k in zip(asc, p.asc_decay, strict=True):
        new_a.append(a * math.exp(-k * u))
        vn += a * k1(u, tm, 1.0 / k) / cm
    for x, i, tau in zip(xs, cur, p.tau_syn, strict=True):
        vn += (i * k1(u, tm, tau) + x * k2(u, tm, tau)) / cm
    return (vn, *new_a, *new_x, *new_i)


def dvdt(state: tuple[float, ...], p: Glif3Params) -> float:
    """dv/dt of the free (not refractory) dynamics (mV/ms)."""
    na, nr = p.n_asc, p.n_ports
    total = p.I_e + sum(state[1 : 1 + na]) + sum(state[1 + na + nr :])
    return -state[0] / p.tau_m + total / p.C_m


def adjoint_propagate(lam: list[float], u: float, p: Glif3Params, refractory: bool) -> list[float]:
    """Adjoint (same layout as the state) u ms earlier, with no event of this neuron in between.

    While refractory v and A_j are frozen and v is not driven: lambda_A_j stays constant, lambda_v is 0 (the
    engine clears it at the release) and the ports evolve as when free."""
    na, nr = p.n_asc, p.n_ports
    lv = lam[0]
    out = list(lam)
    tm, cm = p.tau_m, p.C_m
    if not refractory:
        out[0] = lv * math.exp(-u / tm)
        for j, k in enumerate(p.asc_decay):
            out[1 + j] = lam[1 + j] * math.exp(-k * u) + lv * k1(u, tm, 1.0 / k) / cm
    for r, tau in enumerate(p.tau_syn):
        e = math.exp(-u / tau)
        lx, li = lam[1 + na + r], lam[1 + na + nr + r]
        drive_i = drive_x = 0.0
        if not refractory and lv != 0.0:
            drive_i = lv * k1(u, tm, tau) / cm
            drive_x = lv * k2(u, tm, tau) / cm
        out[1 + na + nr + r] = li * e + drive_i
        out[1 + na + r] = lx * e + li * u * e + drive_x
    return out


def voltage_expsum(state: tuple[float, ...], p: Glif3Params) -> ExpPoly:
    """v(u) of the free dynamics from ``state`` at u = 0, as an exponential polynomial (used only to isolate the
    extrema of v: v(u) itself is evaluated with :func:`propagate`).

    v(u) = exp(-u/tau_m) (v0 + int_0^u exp(s/tau_m) F(s) ds), F = (I_e + sum A_j(s) + sum I_r(s)) / C_m; ExpPoly's
    antiderivative turns equal rates into polynomial factors."""
    na, nr = p.n_asc, p.n_ports
    rm = 1.0 / p.tau_m
    drive = ExpPoly.const(p.I_e / p.C_m)
    for j, k in enumerate(p.asc_decay):
        drive = drive + ExpPoly.exp(k, state[1 + j] / p.C_m)
    for r, tau in enumerate(p.tau_syn):
        x, i = state[1 + na + r], state[1 + na + nr + r]
        drive = drive + ExpPoly({1.0 / tau: [i / p.C_m, x / p.C_m]})
    q = drive.times_exp(rm).antideriv()
    return (q + ExpPoly.const(state[0] - q(0.0))).times_exp(-rm)


def upper_bound(state: tuple[float, ...], p: Glif3Params, horizon: float = math.inf) -> float:
    """An upper bound of v(u) over 0 <= u <= horizon of the free dynamics: each kernel is >= 0, so only the positive
    coefficients can raise v, each by at most its kernel's maximum on [0, horizon] (K1 <= u and K2 <= u^2 / 2,
    their integrands being <= 1 and <= s)."""
    na, nr = p.n_asc, p.n_ports
    tm, cm = p.tau_m, p.C_m
    bound = max(state[0], p.v_inf)
    for j, k in enumerate(p.asc_decay):
        bound += max(state[1 + j], 0.0) * min(kern_max(tm, 1.0 / k), horizon) / cm
    for r, tau in enumerate(p.tau_syn):
        x, i = state[1 + na + r], state[1 + na + nr + r]
        k1_max = min(kern_max(tm, tau), horizon)
        k2_max = min(k2_bound(tm, tau), 0.5 * horizon * horizon)
        bound += (max(i, 0.0) * k1_max + max(x, 0.0) * k2_max) / cm
    return bound


def _below_on_pieces(state: tuple[float, ...], horizon: float, p: Glif3Params, pieces: int = 8) -> bool:
    """True if :func:`upper_bound` proves v < theta on each of ``pieces`` equal parts of [0, horizon] (a cheap
    proof that there is no crossing; False only means "not proven"). Each part starts from the state one part
    after the last one's start (NEST's model computes the factors of one part once and applies them in turn)."""
    length = horizon / pieces
    s = state
    for k in range(pieces):
        if k > 0:
            s = propagate(s, length, p, False)
        if upper_bound(s, p, length) >= p.theta:
            return False
    return True


def first_crossing(state: tuple[float, ...], horizon: float, p: Glif3Params) -> float | None:
    """Time u in [0, horizon) at which the free v(u) first reaches theta, or None.

    Not missing a crossing: first a cheap proof that there is none (:func:`upper_bound` on the whole horizon, then
    on eight equal parts of it); otherwise v(u) - theta is an exponential polynomial; the zeros of its derivative
    (all of them in (0, horizon), by ExpPoly's Rolle recursion) split [0, horizon] into pieces on which v is
    monotone, so a crossing in a piece exists iff v - theta changes sign between its ends (a tangential touch
    without crossing is not a spike, as in continuous time). The first such piece is refined by safeguarded
    Newton/bisection on the closed-form v to machine precision."""
    theta = p.theta
    if horizon <= 0.0 or upper_bound(state, p, horizon) < theta:
        return None
    if state[0] >= theta:
        return 0.0
    if _below_on_pieces(state, horizon, p):
        return None

    def g(u: float) -> float:
        return propagate(state, u, p, False)[0] - theta

    def dg(u: float) -> float:
        return dvdt(propagate(state, u, p, False), p)

    crit = voltage_expsum(state, p).deriv().roots(0.0, horizon)
    pts = [0.0, *crit, horizon]
    for lo, hi in zip(pts[:-1], pts[1:], strict=True):
        if g(hi) >= 0.0:
            return bracketed_root(g, lo, hi, dg)
    return None

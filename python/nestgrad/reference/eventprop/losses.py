"""Losses of one trial, and what each hands to the adjoint.

A loss returns a :class:`LossTerms`: its value, and the ways it depends on the trajectory, which are the only
inputs of the backward pass besides the forward record:

* ``forcing[n]`` for a leaky readout n: the continuous term dl/dv(t) of an integral loss (a function that returns
  it as an :class:`ExpPoly` on a piece of trajectory), times where it changes form, and jumps of lambda_v at fixed
  times (the maximum-voltage loss);
* ``kink[arrival]``: dL/d(arrival time) when a readout's maximum sits exactly at an (inhibitory) arrival;
* ``spike_time_grad[spike]``: dL/dt of a spike time (first-spike loss, spike-count regulariser).

Readout values use v = V_m - E_L (mV). Conventions (all per trial; a batch averages or sums them):

=========== ==========================================================================================
``max``      y_k = max_{0<=t<=T} v_k(t);              L = -log softmax(y)_label
``sum``      y_k = (1/T) int_0^T v_k dt;              L = -log softmax(y)_label
``sum_exp``  y_k = (1/T) int_0^T exp(-t/tau_w) v_k dt (tau_w defaults to T; Nowotny et al.'s weighting)
window       ``window_start`` = t_w > 0 (``max``, ``sum``, ``sum_exp``): y_k over the response window [t_w, T] only,
             max_{t_w<=t<=T} v_k, (1/(T - t_w)) int_{t_w}^T v_k dt or (1/(T - t_w)) int_{t_w}^T exp(-t/tau_w) v_k dt
``mse``      L = 1/(2T) sum_k int_0^T (v_k - y*_k(t))^2 dt, y* piecewise constant on the trial's bins
first spike  z_k = -t_k / (xi tau_s); L = -log softmax(z)_label + alpha (exp(t_label / (beta tau_s)) - 1)
             (Göltz et al. 2021; t_k = first spike of spiking readout k, T if it does not spike)
spike count  L = rho/2 sum_n (s_n - nu)^2, s_n = sum_k (1 - t_k/T): each spike counts 1 at t = 0 and fades
             linearly to 0 at T, so that the count is differentiable and continuous when a spike leaves the trial
=========== ==========================================================================================
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from nestgrad.errors import ConfigError, SpecError
from nestgrad.reference.eventprop.expsum import ExpPoly
from nestgrad.reference.eventprop.network import CompiledNetwork, Trial
from nestgrad.reference.eventprop.neurons.dynamics import dvdt, propagate, voltage_expsum, voltage_integral
from nestgrad.reference.eventprop.simulate import ForwardRecord

# (start time of a piece, v and I there) -> dl/dv on the piece as ExpPoly of the local time, or None
ForcingFn = Callable[[float, float, float], ExpPoly | None]


@dataclass
class ReadoutForcing:
    fn: ForcingFn | None = None
    breakpoints: list[float] = field(default_factory=list)
    jumps: dict[float, float] = field(default_factory=dict)  # time -> increment of lambda_v, going backwards


@dataclass
class LossTerms:
    value: float
    outputs: np.ndarray  # the readout values y (or first-spike times)
    forcing: dict[int, ReadoutForcing] = field(default_factory=dict)
    kink: dict[int, float] = field(default_factory=dict)
    spike_time_grad: dict[int, float] = field(default_factory=dict)

    def merge(self, other: LossTerms) -> LossTerms:
        for k, f in other.forcing.items():
            if k in self.forcing:
                raise ConfigError(f"two losses force readout neuron {k}; combine them into one loss")
            self.forcing[k] = f
        for k, g in other.kink.items():
            self.kink[k] = self.kink.get(k, 0.0) + g
        for k, g in other.spike_time_grad.items():
            self.spike_time_grad[k] = self.spike_time_grad.get(k, 0.0) + g
        self.value += other.value
        return self


def _softmax_ce(y: np.ndarray, label: int) -> tuple[float, np.ndarray]:
    z = y - y.max()
    logp = z - math.log(np.exp(z).sum())
    grad = np.exp(logp)
    grad[label] -= 1.0
    return float(-logp[label]), grad


def _readout_ids(cnet: CompiledNetwork, population: str, kind: str) -> range:
    if population not in cnet.offsets:
        raise ConfigError(f"loss population {population!r} does not exist; have {sorted(cnet.offsets)}")
    ids = cnet.global_ids(population)
    if kind == "lif" and cnet.kind[ids[0]] == "glif3":
        return ids  # spiking losses take either spiking kind
    if cnet.kind[ids[0]] != kind:
        raise ConfigError(f"loss population {population!r} is {cnet.kind[ids[0]]!r}, this loss needs {kind!r}")
    return ids


def _label(trial: Trial, n_out: int) -> int:
    if trial.label is None or not 0 <= int(trial.label) < n_out:
        raise SpecError(f"trial label {trial.label!r}: need an int in [0, {n_out})")
    return int(trial.label)


def _pieces(rec: ForwardRecord, n: int):
    """(segment j, start time, end time, v and I at the start) of readout n's trajectory between its arrivals."""
    T = rec.T
    ts, vs, is_ = rec.seg_t[n], rec.seg_v[n], rec.seg_i[n]
    for j in range(len(ts)):
        end = ts[j + 1] if j + 1 < len(ts) else T
        yield j, ts[j], end, vs[j], is_[j]


class ReadoutCrossEntropy:
    """Cross-entropy on leaky readouts' maximum (``max``), mean (``sum``) or exponentially weighted mean
    (``sum_exp``) voltage; see the module docstring. ``window_start`` (ms, default 0: the whole trial) restricts y to
    the response window [window_start, T]: a decision task scores the readouts after its cues only, so that the
    network must carry the evidence to the window (the forcing of the adjoint is zero before it)."""

    def __init__(self, population: str, mode: str = "sum", tau_w: float | None = None, window_start: float = 0.0):
        if mode not in ("max", "sum", "sum_exp"):
            raise ConfigError(f"readout loss mode {mode!r}: allowed 'max', 'sum', 'sum_exp'")
        if tau_w is not None and not tau_w > 0:
            raise ConfigError(f"tau_w = {tau_w!r} ms must be > 0")
        if isinstance(window_start, bool) or not isinstance(window_start, int | float) or not window_start >= 0.0:
            raise ConfigError(f"window_start = {window_start!r} ms must be a number >= 0")
        if not math.isfinite(window_start):
            raise ConfigError(f"window_start = {window_start!r} ms must be finite")
        self.population, self.mode, self.tau_w = population, mode, tau_w
        self.window_start = float(window_start)

    def __call__(self, cnet: CompiledNetwork, rec: ForwardRecord, trial: Trial) -> LossTerms:
        ids = _readout_ids(cnet, self.population, "li")
        label = _label(trial, len(ids))
        T = rec.T
        t_w = self.window_start
        if not t_w < T:
            raise ConfigError(f"window_start = {t_w} ms: the response window needs window_start < T = {T} ms")
        span = T - t_w  # == T exactly for t_w = 0
        tau_w = self.tau_w if self.tau_w is not None else T
        y = np.zeros(len(ids))
        argmax: list[tuple[float, int, float]] = []
        for k, n in enumerate(ids):
            p = cnet.params[n]
            if self.mode == "max":
                best = (-math.inf, 0.0, -1, 0.0)  # value, time, segment, dv/dt just before
                ts = rec.seg_t[n]
                prev_end_slope = 0.0
                for j, t0, t1, v0, i0 in _pieces(rec, n):
                    f = voltage_expsum(v0, i0, p)
                    length = t1 - t0
                    last = j + 1 == len(ts)
                    # the window opens after this piece, or inside it (its start is then the first candidate)
                    lo = t_w - t0 if t_w > t0 else 0.0
                    if t0 < t_w and t1 <= t_w:
                        ve, ie, _ = propagate(v0, i0, 0.0, length, p, False)
                        prev_end_slope = dvdt(ve, ie, p)
                        continue
                    # a segment's end is the next segment's start (evaluated from the stored state there)
                    cands = [lo, *f.deriv().roots(lo, length)] + ([length] if last else [])
                    for u in cands:
                        val = v0 if u == 0.0 else propagate(v0, i0, 0.0, u, p, False)[0]
                        if val > best[0]:
                            best = (val, t0 + u, j, prev_end_slope if (u == 0.0 and j > 0) else 0.0)
                    ve, ie, _ = propagate(v0, i0, 0.0, length, p, False)
                    prev_end_slope = dvdt(ve, ie, p)
                val, tmax, j, left = best
                y[k] = val
                argmax.append((tmax, j, left))
            else:
                total = 0.0
                rate = 1.0 / tau_w if self.mode == "sum_exp" else 0.0
                for _j, t0, t1, v0, i0 in _pieces(rec, n):
                    if t0 < t_w and t1 <= t_w:
                        continue  # before the window
                    if t0 < t_w:  # the window opens inside this piece: integrate from t_w
                        v0, i0, _ = propagate(v0, i0, 0.0, t_w - t0, p, False)
                        t0 = t_w
                    scale = math.exp(-t0 * rate) if rate else 1.0
                    total += scale * voltage_integral(v0, i0, t1 - t0, p, rate)
                y[k] = total / span
        value, dy = _softmax_ce(y, label)
        terms = LossTerms(value=value, outputs=y)
        cuts = [t_w] if t_w > 0.0 else []  # the forcing starts at t_w: cut the pieces there
        for k, n in enumerate(ids):
            c = float(dy[k])
            if self.mode == "max":
                tmax, j, left = argmax[k]
                terms.forcing[n] = ReadoutForcing(jumps={tmax: c})
                ts = rec.seg_t[n]
                # the maximum sits on an arrival (v' jumps from > 0 to < 0 there): moving the arrival moves it
                if j > 0 and tmax == ts[j] and left > 0.0:
                    aid = rec.seg_arr[n][j]
                    terms.kink[aid] = terms.kink.get(aid, 0.0) + c * left
            elif self.mode == "sum":
                terms.forcing[n] = ReadoutForcing(
                    fn=lambda t0, v0, i0, c=c: ExpPoly.const(c / span) if t0 >= t_w else None, breakpoints=cuts
                )
            else:
                terms.forcing[n] = ReadoutForcing(
                    fn=lambda t0, v0, i0, c=c: (
                        ExpPoly.exp(1.0 / tau_w, c / span * math.exp(-t0 / tau_w)) if t0 >= t_w else None
                    ),
                    breakpoints=cuts,
                )
        return terms


class ReadoutMSE:
    """Mean squared error of leaky readouts' voltage against the trial's piecewise constant target."""

    def __init__(self, population: str):
        self.population = population

    def __call__(self, cnet: CompiledNetwork, rec: ForwardRecord, trial: Trial) -> LossTerms:
        ids = _readout_ids(cnet, self.population, "li")
        T = rec.T
        if trial.target is None or trial.target_edges is None:
            raise SpecError("MSE loss: the trial needs target and target_edges")
        target = np.asarray(trial.target, dtype=float)
        edges = np.asarray(trial.target_edges, dtype=float)
        if target.ndim != 2 or target.shape[0] != len(ids) or edges.shape != (target.shape[1] + 1,):
            raise SpecError(
                f"MSE loss: target shape {target.shape} / target_edges shape {edges.shape}: need "
                f"({len(ids)}, n_bins) and (n_bins + 1,)"
            )
        if edges[0] != 0.0 or edges[-1] != T or np.any(np.diff(edges) <= 0):
            raise SpecError(f"MSE loss: target_edges must increase from 0 to T = {T}")
        cuts = [float(x) for x in edges[1:-1]]
        value = 0.0
        terms = LossTerms(value=0.0, outputs=np.zeros(0))

        def target_at(k: int, t_mid: float) -> float:
            b = int(np.searchsorted(edges, t_mid, side="right")) - 1
            return float(target[k, min(max(b, 0), target.shape[1] - 1)])

        for k, n in enumerate(ids):
            p = cnet.params[n]
            for _j, t0, t1, v0, i0 in _pieces(rec, n):
                inner = [c for c in cuts if t0 < c < t1]
                pts = [t0, *inner, t1]
                for a, b in zip(pts[:-1], pts[1:], strict=True):
                    va, ia, _ = propagate(v0, i0, 0.0, a - t0, p, False)
                    diff = voltage_expsum(va, ia, p) - target_at(k, 0.5 * (a + b))
                    value += (diff * diff).integral(0.0, b - a) / (2.0 * T)
            terms.forcing[n] = ReadoutForcing(
                fn=lambda t0, v0, i0, k=k, p=p: (voltage_expsum(v0, i0, p) - target_at(k, t0)).scale(1.0 / T),
                breakpoints=cuts,
            )
        terms.value = value
        return terms


@dataclass
class FirstSpikeLoss:
    """Göltz et al. (2021) time-to-first-spike cross-entropy with their regulariser, on spiking readouts.

    ``tau_s`` (ms) defaults to the readouts' tau_syn (which must then be uniform).

    Defaults xi = 0.2, alpha = 0.005, beta = 1: Göltz, Kriener et al., Nat. Mach. Intell. 3:823 (2021),
    arXiv:1912.11443, as their published code trains every classification experiment (JulianGoeltz/fastAndDeep,
    experiment_configs/yin_yang.yaml and mnist.yaml, and the configs of the pretrained networks
    experiment_pretrained/yinyang_et_300epochs and fullmnist_et_150epochs). beta was 2.6 here before (not found in
    any of them). Their loss (src/utils.py, LossFunction) is the same form without the constant -alpha of the
    regulariser, which changes no gradient; for a missing label spike they return a constant 100, we use t = T.
    """

    population: str
    xi: float = 0.2
    alpha: float = 0.005
    beta: float = 1.0
    tau_s: float | None = None

    def __call__(self, cnet: CompiledNetwork, rec: ForwardRecord, trial: Trial) -> LossTerms:
        ids = _readout_ids(cnet, self.population, "lif")
        label = _label(trial, len(ids))
        tau_s = self.tau_s
        if tau_s is None:
            if cnet.kind[ids[0]] == "glif3":
                raise ConfigError(f"first-spike loss on glif3 population {self.population!r}: pass tau_s (ms)")
            taus = {cnet.params[n].tau_syn for n in ids}
            if len(taus) != 1:
                raise ConfigError(f"first-spike loss: readouts have several tau_syn {sorted(taus)}; pass tau_s")
            tau_s = taus.pop()
        t_first = np.full(len(ids), rec.T)
        sids = [-1] * len(ids)
        for k, n in enumerate(ids):
            if rec.spikes_of[n]:
                sids[k] = rec.spikes_of[n][0]
                t_first[k] = rec.spike_t[sids[k]]
        scale = self.xi * tau_s
        ce, dz = _softmax_ce(-t_first / scale, label)
        reg = self.alpha * (math.exp(t_first[label] / (self.beta * tau_s)) - 1.0)
        terms = LossTerms(value=ce + reg, outputs=t_first)
        for k in range(len(ids)):
            if sids[k] < 0:
                continue  # no spike: t = T is a constant, no gradient
            g = -dz[k] / scale
            if k == label:
                g += self.alpha / (self.beta * tau_s) * math.exp(t_first[k] / (self.beta * tau_s))
            terms.spike_time_grad[sids[k]] = g
        return terms


@dataclass
class SpikeCountRegulariser:
    """rho/2 sum_n (s_n - nu)^2 over the neurons of ``populations``; s_n = sum_k (1 - t_k / T)."""

    populations: tuple[str, ...]
    rho: float = 1e-3
    nu: float = 1.0

    def __call__(self, cnet: CompiledNetwork, rec: ForwardRecord, trial: Trial) -> LossTerms:
        T = rec.T
        terms = LossTerms(value=0.0, outputs=np.zeros(0))
        for pop in self.populations:
            ids = _readout_ids(cnet, pop, "lif")
            for n in ids:
                s = sum(1.0 - rec.spike_t[sid] / T for sid in rec.spikes_of[n])
                terms.value += 0.5 * self.rho * (s - self.nu) ** 2
                for sid in rec.spikes_of[n]:
                    terms.spike_time_grad[sid] = terms.spike_time_grad.get(sid, 0.0) - self.rho * (s - self.nu) / T
        return terms

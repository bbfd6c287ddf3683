"""Event-driven e-prop: a synapse's gradient per presynaptic spike in O(1), from per-neuron running sums.

Prototype of the algorithm for issue #7, in NumPy, checked against the step-by-step sums of
:mod:`nestgrad.reference.online` (docs/event_driven_eprop.md has the derivation).

Between two presynaptic spikes the presynaptic trace of a synapse i -> j is a sum of geometric sequences whose
ratios are constants of the postsynaptic neuron (``alpha`` = P_v for eprop_iaf; P22 and P11 for eprop_iaf_psc_exp).
With e[t] = psi_j[t] x[t], x[t] = sum_m Y_m lambda_m^(t - tau), the window sum

    sum_{t=a}^{b-1} L[t] ebar[t],   ebar[t] = kappa ebar[t-1] + e[t]

equals, with per-neuron running sums that start at a segment origin R (a, b - 1 in the segment):

    ebar[a-1] kappa^(R-a+1) (M[b-1] - M[a-1])
      + sum_m Y_m lambda_m^(R-tau) [(N_m[b-1] - N_m[a-1]) - P_m[a-1] (M[b-1] - M[a-1])]

    M[t]   = sum_{u=R}^{t} L[u] kappa^(u-R)
    P_m[t] = sum_{u=R}^{t} psi[u] (lambda_m / kappa)^(u-R)
    N_m[t] = sum_{u=R}^{t} L[u] kappa^(u-R) P_m[u]

and the trace at the end of the part is ebar[b-1] = kappa^(b-a) ebar[a-1] + sum_m Y_m lambda_m^(R-tau)
kappa^(b-1-R) (P_m[b-1] - P_m[a-1]). The running sums are maintained once per neuron and step (O(neurons) per step);
each presynaptic spike costs O(1) per synapse and segment crossed. Segments restart (re-base) every
``segment`` steps so that kappa^(u-R) and (lambda/kappa)^(u-R) stay within a few orders of magnitude: differences
of running sums then lose at most log10(kappa^-segment) digits (about 3 for kappa = 0.97, segment = 256).
The firing-rate term is the same with kappa_reg, (1 - kappa_reg) and the regularisation signal in place of L.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nestgrad.errors import SpecError
from nestgrad.reference.neurons import RECURRENT_MODELS, EpropIafAdapt, EpropIafPscDeltaAdapt, EpropIafPscExp


@dataclass
class RunningSums:
    """Per-neuron running sums of one filter (kappa) for the ratios lambda_m, re-based every ``segment`` steps."""

    kappa: float
    lambdas: tuple[float, ...]
    segment: int
    M: np.ndarray  # [T, n]
    P: np.ndarray  # [m, T, n]
    N: np.ndarray  # [m, T, n]

    @classmethod
    def build(
        cls, signal: np.ndarray, psi: np.ndarray, kappa: float, lambdas: tuple[float, ...], segment: int
    ) -> RunningSums:
        T, n = psi.shape
        M = np.zeros((T, n))
        P = np.zeros((len(lambdas), T, n))
        N = np.zeros((len(lambdas), T, n))
        for R in range(0, T, segment):
            k = np.arange(min(segment, T - R))
            wk = kappa**k
            M[R : R + k.size] = np.cumsum(signal[R : R + k.size] * wk[:, None], axis=0)
            for m, lam in enumerate(lambdas):
                P[m, R : R + k.size] = np.cumsum(psi[R : R + k.size] * ((lam / kappa) ** k)[:, None], axis=0)
                N[m, R : R + k.size] = np.cumsum(signal[R : R + k.size] * wk[:, None] * P[m, R : R + k.size], axis=0)
        return cls(kappa, lambdas, segment, M, P, N)

    def window(
        self, a: int, b: int, ebar0: np.ndarray, Y: np.ndarray, tau: int, cols: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """sum_{t=a}^{b-1} signal[t] ebar[t] and ebar[b-1], for traces x[t] = sum_m Y[m] lambda_m^(t - tau) (t in
        [a, b)) and ebar[a-1] = ebar0; vectorised over the neurons ``cols`` (Y: [m, len(cols)])."""
        total = np.zeros_like(ebar0)
        ebar = ebar0
        while a < b:
            R = (a // self.segment) * self.segment
            end = min(b, R + self.segment)  # this part: [a, end) inside the segment starting at R
            prev_M = self.M[a - 1, cols] if a > R else 0.0
            dM = self.M[end - 1, cols] - prev_M
            total = total + ebar * self.kappa ** (R - a + 1) * dM
            new_ebar = ebar * self.kappa ** (end - a)
            for m, lam in enumerate(self.lambdas):
                prev_P = self.P[m, a - 1, cols] if a > R else 0.0
                prev_N = self.N[m, a - 1, cols] if a > R else 0.0
                coef = Y[m] * lam ** (R - tau)
                total = total + coef * ((self.N[m, end - 1, cols] - prev_N) - prev_P * dM)
                new_ebar = new_ebar + coef * self.kappa ** (end - 1 - R) * (self.P[m, end - 1, cols] - prev_P)
            ebar = new_ebar
            a = end
        return total, ebar


def segment_length(lambdas: tuple[float, ...], kappas: tuple[float, ...], max_range: float = 1e3) -> int:
    """Longest re-basing segment over which every weight kappa^k and (lambda/kappa)^k stays within a factor
    ``max_range``: differences of running sums then lose at most log10(max_range) digits."""
    ratios = [k for k in kappas] + [lam / k for lam in lambdas for k in kappas]
    worst = min(min(r, 1.0 / r) for r in ratios if r > 0 and r != 1.0) if ratios else 0.5
    return max(1, int(np.log(max_range) / -np.log(worst)))


def event_driven_gradient(
    spec_params: dict,
    dt: float,
    rec_model: str,
    history: dict[str, np.ndarray],
    presyn_entries: np.ndarray,
    weights: np.ndarray,
    mask: np.ndarray,
    segment: int | None = None,
    max_range: float = 1e3,
) -> np.ndarray:
    """Total e-prop gradient [post, pre] of one projection onto recurrent neurons, computed window by window at the
    presynaptic spikes from running sums (no per-synapse work between spikes).

    ``presyn_entries`` [T, n_pre]: spikes entering the postsynaptic history at each entry (NEST's stamp). The windows
    are NEST's: the entries [s1 - 1, min(s1 - 1 + cutoff, s2 - 1)) after a spike s1 closed by the next spike s2, the
    last one running to the end of the history. Supports eprop_iaf, eprop_iaf_psc_delta and eprop_iaf_psc_exp (the
    adaptive models need running products; not in this prototype).
    """
    model = RECURRENT_MODELS[rec_model](spec_params, dt)
    if isinstance(model, EpropIafAdapt | EpropIafPscDeltaAdapt):
        raise SpecError(f"{rec_model}: adaptation needs running products (not in this prototype)")
    psi, L, F = history["psi"], history["L"], history["fr"]
    T, n_post = psi.shape
    kr = model.kappa_reg
    exp_model = isinstance(model, EpropIafPscExp)
    lambdas = (model.P22, model.P11_ex, model.P11_in) if exp_model else (model.P_v,)
    if segment is None:
        segment = segment_length(lambdas, (model.kappa, kr), max_range)
    task = RunningSums.build(L, psi, model.kappa, lambdas, segment)
    reg = RunningSums.build(F, psi, kr, lambdas, segment)
    cutoff = model.cutoff_steps
    grad = np.zeros_like(weights, dtype=float)
    for i in range(presyn_entries.shape[1]):
        spikes = np.flatnonzero(presyn_entries[:, i])
        post = np.flatnonzero(mask[:, i])
        if spikes.size == 0 or post.size == 0:
            continue
        excitatory = weights[post, i] >= 0
        ebar = np.zeros(post.size)  # filtered eligibility trace at the entry before the window
        ebar_r = np.zeros(post.size)  # the same for the regularisation, divided by (1 - kappa_reg)
        comp = np.zeros((len(lambdas), post.size))  # presynaptic trace x[t] = sum_m comp[m] lambda_m^(t - tau)
        tau = int(spikes[0]) - 1
        for k, s1 in enumerate(spikes):
            a = int(s1) - 1  # the window of spike s1 starts one entry before it enters
            stop = int(spikes[k + 1]) - 1 if k + 1 < spikes.size else T
            end = min(a + cutoff, stop)
            comp = comp * np.array([lam ** (a - tau) for lam in lambdas])[:, None]
            tau = a
            # entry a still sees the old trace; the spike enters at a + 1
            g, ebar = task.window(a, a + 1, ebar, comp, tau, post)
            gr, ebar_r = reg.window(a, a + 1, ebar_r, comp, tau, post)
            new = comp.copy()
            if exp_model:
                # the spike enters eps_i at a + 1 and eps_v one step later:
                # eps_v[t] += P21 (P22^(t-a-1) - P11^(t-a-1)) / (P22 - P11)
                P11 = np.where(excitatory, model.P11_ex, model.P11_in)
                P21 = np.where(excitatory, model.P21_ex, model.P21_in)
                c = P21 / (model.P22 - P11)
                new[0] += c / model.P22
                new[1] -= np.where(excitatory, c / model.P11_ex, 0.0)
                new[2] -= np.where(excitatory, 0.0, c / model.P11_in)
            else:
                new[0] += 1.0 / lambdas[0]  # z_bar[t] += alpha^(t - a - 1)
            if end > a + 1:
                g2, ebar = task.window(a + 1, end, ebar, new, tau, post)
                g2r, ebar_r = reg.window(a + 1, end, ebar_r, new, tau, post)
                g, gr = g + g2, gr + g2r
            grad[post, i] += g + (1.0 - kr) * gr
            comp = new
            if end < stop:  # beyond the cutoff the filtered traces only decay until the next window
                ebar = ebar * model.kappa ** (stop - end)
                ebar_r = ebar_r * kr ** (stop - end)
    return grad

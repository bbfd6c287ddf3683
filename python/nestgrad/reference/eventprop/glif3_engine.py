"""Forward and adjoint pass of networks of ``input``, ``glif3`` and ``li`` populations (EventProp for GLIF3).

Forward (:func:`simulate_glif3`): the same event loop and event order as :mod:`.simulate` (releases, then threshold
crossings by neuron, then arrivals in scheduling order); a GLIF3 neuron's state (v, A_j, x_r, I_r) is propagated in
closed form (:mod:`.neurons.glif3`), and after every change of a free neuron's state its next threshold crossing is
solved exactly and scheduled. An arrival of weight w on port r adds w e / tau_r to x_r (also while refractory).
At a spike: v = V_reset - E_L, A_j = asc_amps_j + rho_j A_j, and (t_ref > 0) v and A_j stay frozen until the
release t_k + t_ref.

Backward (:func:`backward_glif3`), per neuron lambda = dL/d(v, A_j, x_r, I_r), propagated by the transposed closed
form and changed only at

* an arrival t_a of edge e (weight w, port r) at glif3 neuron m: dL/dw_e += lambda_x_r(t_a) e / tau_r; the arrival
  time enters as dL/dt_a = w (e / tau_r) (lambda_x_r / tau_r - lambda_I_r), added to dL/dd_e and to the buffer J_k
  of the emitting spike k (arrivals at leaky readouts as in :mod:`.adjoint`);
* the release r_k = t_k + t_ref: R_k = -lambda_v(r+) vdot_free(r) + sum_j lambda_A_j(r+) k_j A_j(r) is stored for
  spike k and lambda_v is set to 0 (v is clamped on [t_k, r_k));
* the neuron's own spike k at t_k, with vdot- = dv/dt just before it and A_j- the after-spike currents there:
  B = sum_j lambda_A_j+ (-rho_j k_j A_j- - Adot_j+) - lambda_v+ vdot+ + J_k + R_k + dL/dt_k (direct), where
  Adot_j+ = vdot+ = 0 when t_ref > 0 (frozen) and the free derivatives after the reset when t_ref = 0;
  lambda_v- = -B / vdot-, lambda_A_j- = rho_j lambda_A_j+, lambda_x and lambda_I unchanged.

docs/eventprop_glif3.md derives these jumps.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

import numpy as np

from nestgrad.errors import ConfigError
from nestgrad.reference.eventprop.adjoint import Gradients, readout_adjoint
from nestgrad.reference.eventprop.losses import LossTerms
from nestgrad.reference.eventprop.network import CompiledNetwork, Trial, input_spikes
from nestgrad.reference.eventprop.neurons import dynamics as lif_dyn
from nestgrad.reference.eventprop.neurons import glif3 as g3
from nestgrad.reference.eventprop.simulate import (
    ARRIVAL,
    LOG_ARRIVAL,
    LOG_RELEASE,
    LOG_SPIKE,
    RELEASE,
    SPIKE,
    ForwardRecord,
)


@dataclass
class Glif3Record(ForwardRecord):
    """:class:`ForwardRecord` (spike_gdot holds dv/dt just before each spike) plus what the GLIF3 adjoint needs."""

    spike_asc: list[tuple[float, ...]] = field(default_factory=list)  # A_j just before each spike (pA)
    spike_asc_plus: list[tuple[float, ...]] = field(default_factory=list)  # A_j just after it (pA)
    release_asc: list[tuple[float, ...]] = field(default_factory=list)  # A_j at the release (pA)
    final_refractory: dict[int, bool] = field(default_factory=dict)  # glif3 neurons still refractory at T
    # glif3 neurons: full state after each of the neuron's events (for inspection and tests)
    states: dict[int, list[tuple[float, tuple[float, ...]]]] = field(default_factory=dict)


E = math.e


def simulate_glif3(cnet: CompiledNetwork, trial: Trial, keep_states: bool = False) -> Glif3Record:
    """Run one trial: all neurons start at V_m = E_L (glif3: A_j = asc_init, no synaptic current) at t = 0."""
    T = cnet.net.T
    n = cnet.n
    params, kinds = cnet.params, cnet.kind
    tgt, w, d, out_edges, port = cnet.tgt, cnet.w, cnet.d, cnet.out_edges, cnet.port
    rec = Glif3Record(T=T, spikes_of=[[] for _ in range(n)])
    state: list = [None] * n
    t_upd = [0.0] * n
    refr = [False] * n
    version = [0] * n
    heap: list[tuple] = []
    # per neuron: times of the arrivals already scheduled (a min-heap). A crossing is searched only up to the
    # next of them: every arrival triggers a new search, so a shorter horizon loses nothing and keeps the cheap
    # bound of first_crossing effective.
    pending: list[list[float]] = [[] for _ in range(n)]
    seq = 0
    for j in range(n):
        if kinds[j] == "li":
            state[j] = (0.0, 0.0)
            rec.seg_t[j], rec.seg_v[j], rec.seg_i[j], rec.seg_arr[j] = [0.0], [0.0], [0.0], [-1]
        elif kinds[j] == "glif3":
            state[j] = params[j].initial_state()
            if keep_states:
                rec.states[j] = [(0.0, state[j])]

    for nid, ts in input_spikes(cnet, trial):
        for e in out_edges[nid]:
            ta = ts + float(d[e])
            if ta < T:
                heap.append((ta, ARRIVAL, seq, e, -1))
                pending[int(tgt[e])].append(ta)
                seq += 1
    heapq.heapify(heap)
    for q in pending:
        heapq.heapify(q)

    def advance(j: int, t: float) -> None:
        u = t - t_upd[j]
        if u > 0.0:
            if kinds[j] == "li":
                v, i, _ = lif_dyn.propagate(state[j][0], state[j][1], 0.0, u, params[j], False)
                state[j] = (v, i)
            else:
                state[j] = g3.propagate(state[j], u, params[j], refr[j])
        t_upd[j] = t

    def predict(j: int, t: float) -> None:
        version[j] += 1
        until = min(pending[j][0], T) if pending[j] else T
        u = g3.first_crossing(state[j], until - t, params[j])
        if u is not None and t + u < T:
            heapq.heappush(heap, (t + u, SPIKE, j, version[j]))

    def keep(j: int, t: float) -> None:
        if keep_states:
            rec.states[j].append((t, state[j]))

    for j in range(n):
        if kinds[j] == "glif3":
            predict(j, 0.0)

    while heap:
        item = heapq.heappop(heap)
        t, kind = item[0], item[1]
        if t >= T:
            break
        if kind == ARRIVAL:
            e, sid = item[3], item[4]
            m = int(tgt[e])
            heapq.heappop(pending[m])  # this arrival (the earliest scheduled at m)
            advance(m, t)
            aid = len(rec.arr_t)
            rec.arr_t.append(t)
            rec.arr_e.append(e)
            rec.arr_sid.append(sid)
            if kinds[m] == "li":
                state[m] = (state[m][0], state[m][1] + float(w[e]))
                rec.seg_t[m].append(t)
                rec.seg_v[m].append(state[m][0])
                rec.seg_i[m].append(state[m][1])
                rec.seg_arr[m].append(aid)
            else:
                p = params[m]
                s = list(state[m])
                r = int(port[e])
                s[1 + p.n_asc + r] += float(w[e]) * E / p.tau_syn[r]
                state[m] = tuple(s)
                keep(m, t)
                if not refr[m]:
                    predict(m, t)
            rec.log.append((LOG_ARRIVAL, aid))
        elif kind == SPIKE:
            j, ver = item[2], item[3]
            if ver != version[j]:
                continue  # stale prediction: the state changed since
            p = params[j]
            advance(j, t)
            sid = len(rec.spike_t)
            rec.spike_t.append(t)
            rec.spike_n.append(j)
            rec.spike_gdot.append(g3.dvdt(state[j], p))
            na = p.n_asc
            a_minus = state[j][1 : 1 + na]
            a_plus = tuple(amp + rho * a for amp, rho, a in zip(p.asc_amps, p.rho, a_minus, strict=True))
            rec.spike_asc.append(a_minus)
            rec.spike_asc_plus.append(a_plus)
            rec.spikes_of[j].append(sid)
            state[j] = (p.v_reset, *a_plus, *state[j][1 + na :])
            rec.release_t.append(math.nan)
            rec.release_vdot.append(0.0)
            rec.release_asc.append(())
            if p.t_ref > 0.0:
                refr[j] = True
                version[j] += 1
                rec.spike_vdot_plus.append(0.0)
                if t + p.t_ref < T:
                    heapq.heappush(heap, (t + p.t_ref, RELEASE, j, sid))
            else:
                rec.spike_vdot_plus.append(g3.dvdt(state[j], p))
                predict(j, t)
            keep(j, t)
            for e in out_edges[j]:
                ta = t + float(d[e])
                if ta < T:
                    heapq.heappush(heap, (ta, ARRIVAL, seq, e, sid))
                    heapq.heappush(pending[int(tgt[e])], ta)
                    seq += 1
            rec.log.append((LOG_SPIKE, sid))
        else:  # RELEASE
            j, sid = item[2], item[3]
            advance(j, t)
            refr[j] = False
            p = params[j]
            rec.release_t[sid] = t
            rec.release_vdot[sid] = g3.dvdt(state[j], p)
            rec.release_asc[sid] = state[j][1 : 1 + p.n_asc]
            keep(j, t)
            predict(j, t)
            rec.log.append((LOG_RELEASE, sid))
    for j in range(n):
        if kinds[j] == "glif3":
            rec.final_refractory[j] = refr[j]
            if keep_states:
                advance(j, T)
                keep(j, T)
    return rec


def backward_glif3(cnet: CompiledNetwork, rec: Glif3Record, terms: LossTerms) -> Gradients:
    """dL/dw and dL/dd of every edge for one trial (EventProp adjoint of the GLIF3 network)."""
    T = rec.T
    n = cnet.n
    params, kinds = cnet.params, cnet.kind
    tgt, w, port = cnet.tgt, cnet.w, cnet.port
    grad_w = np.zeros(len(w))
    grad_d = np.zeros(len(w))
    lam: list = [None] * n
    tb = [T] * n
    refr = [False] * n
    for j in range(n):
        if kinds[j] == "glif3":
            lam[j] = [0.0] * (1 + params[j].n_asc + 2 * params[j].n_ports)
            refr[j] = rec.final_refractory[j]
    n_spikes = len(rec.spike_t)
    jbuf = [0.0] * n_spikes
    rbuf = [0.0] * n_spikes

    readout_lam: dict[int, tuple[float, float]] = {}
    for m in rec.seg_t:
        vals = readout_adjoint(rec, m, params[m], terms.forcing.get(m))
        for aid, val in zip(rec.seg_arr[m], vals, strict=True):
            if aid >= 0:
                readout_lam[aid] = val

    def back(j: int, t: float) -> None:
        u = tb[j] - t
        if u > 0.0:
            lam[j] = g3.adjoint_propagate(lam[j], u, params[j], refr[j])
        tb[j] = t

    for kind, idx in reversed(rec.log):
        if kind == LOG_ARRIVAL:
            t, e, sid = rec.arr_t[idx], rec.arr_e[idx], rec.arr_sid[idx]
            m = int(tgt[e])
            p = params[m]
            if kinds[m] == "li":
                lvm, lim = readout_lam[idx]
                grad_w[e] += lim
                term = float(w[e]) * (lim / p.tau_syn - lvm / p.C_m) + terms.kink.get(idx, 0.0)
            else:
                back(m, t)
                r = int(port[e])
                na, nr = p.n_asc, p.n_ports
                tau = p.tau_syn[r]
                lx, li = lam[m][1 + na + r], lam[m][1 + na + nr + r]
                grad_w[e] += lx * E / tau
                term = float(w[e]) * E / tau * (lx / tau - li)
            grad_d[e] += term
            if sid >= 0:
                jbuf[sid] += term
        elif kind == LOG_SPIKE:
            sid = idx
            j = rec.spike_n[sid]
            p = params[j]
            back(j, rec.spike_t[sid])
            lj = lam[j]
            b = jbuf[sid] + rbuf[sid] + terms.spike_time_grad.get(sid, 0.0) - lj[0] * rec.spike_vdot_plus[sid]
            for a, (k, rho, am, ap) in enumerate(
                zip(p.asc_decay, p.rho, rec.spike_asc[sid], rec.spike_asc_plus[sid], strict=True)
            ):
                adot_plus = 0.0 if p.t_ref > 0.0 else -k * ap
                b += lj[1 + a] * (-rho * k * am - adot_plus)
            lj[0] = -b / rec.spike_gdot[sid]
            for a, rho in enumerate(p.rho):
                lj[1 + a] *= rho
            refr[j] = False  # before the spike the neuron was free
        else:  # release of spike idx from refractoriness
            sid = idx
            j = rec.spike_n[sid]
            p = params[j]
            back(j, rec.release_t[sid])
            lj = lam[j]
            rr = -lj[0] * rec.release_vdot[sid]
            for a, k in enumerate(p.asc_decay):
                rr += lj[1 + a] * k * rec.release_asc[sid][a]
            rbuf[sid] = rr
            lj[0] = 0.0
            refr[j] = True  # going back, the neuron is refractory until its spike
    return Gradients(grad_w, grad_d)


def check_supported(cnet: CompiledNetwork, time_constants: bool) -> None:
    if time_constants:
        raise ConfigError("time_constants=True: time-constant gradients are not implemented for glif3 networks")

"""Forward pass: exact, event-driven simulation of one trial.

Events are processed in the order of a heap keyed by (time, kind, key): at equal times releases from refractoriness
come first (key: neuron), then threshold crossings (key: neuron index), then spike arrivals (key: the order in
which they were scheduled: input spikes by neuron then time then outgoing edge, network spikes by emission order
then outgoing edge sorted by delay). Between events each neuron's state is propagated in closed form
(:func:`~nestgrad.reference.eventprop.neurons.dynamics.propagate`); after each change of a spiking neuron's
state its next threshold crossing is solved exactly and scheduled (a later change invalidates it).

The record keeps exactly what the adjoint needs: spike times and, per spike, dg/dt just before it (g = v - A -
theta), dv/dt just after it (no refractoriness) and dv/dt at its release from refractoriness; every arrival (time,
edge, emitting spike); the leaky readouts' state after each arrival; and the order in which all of it happened.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

from nestgrad.reference.eventprop.network import CompiledNetwork, Trial, input_spikes
from nestgrad.reference.eventprop.neurons.dynamics import dvdt, first_crossing, propagate

RELEASE, SPIKE, ARRIVAL = 0, 1, 2
# log entry kinds
LOG_ARRIVAL, LOG_SPIKE, LOG_RELEASE = 0, 1, 2


@dataclass
class ForwardRecord:
    T: float
    spike_t: list[float] = field(default_factory=list)
    spike_n: list[int] = field(default_factory=list)
    spike_gdot: list[float] = field(default_factory=list)  # dg/dt just before the spike (mV/ms)
    spike_vdot_plus: list[float] = field(default_factory=list)  # dv/dt just after (0 if refractory)
    release_t: list[float] = field(default_factory=list)  # nan when the release falls at or after T (or t_ref = 0)
    release_vdot: list[float] = field(default_factory=list)  # free dv/dt at the release (mV/ms)
    spikes_of: list[list[int]] = field(default_factory=list)  # per neuron: spike ids
    arr_t: list[float] = field(default_factory=list)
    arr_e: list[int] = field(default_factory=list)
    arr_sid: list[int] = field(default_factory=list)  # emitting spike id, -1 for input spikes
    # leaky readouts: per neuron, segment start times, (v, I) after the event, arrival id (-1: t = 0)
    seg_t: dict[int, list[float]] = field(default_factory=dict)
    seg_v: dict[int, list[float]] = field(default_factory=dict)
    seg_i: dict[int, list[float]] = field(default_factory=dict)
    seg_arr: dict[int, list[int]] = field(default_factory=dict)
    log: list[tuple[int, int]] = field(default_factory=list)
    # spiking neurons: (v, I, A, refractory) after each of the neuron's events, in order (for time-constant
    # gradients, which integrate adjoint x state between events)
    post: dict[int, list[tuple[float, float, float, bool]]] = field(default_factory=dict)

    def spike_times(self, n: int) -> list[float]:
        return [self.spike_t[s] for s in self.spikes_of[n]]

    def structure(self) -> tuple:
        """Which neuron spiked in which order: equal for two runs iff no spike appeared, vanished or swapped."""
        return tuple(self.spike_n)


def simulate(cnet: CompiledNetwork, trial: Trial) -> ForwardRecord:
    """Run one trial; all neurons start at V_m = E_L, I = 0, A = 0 at t = 0 and the trial ends at T."""
    T = cnet.net.T
    n = cnet.n
    params, kinds, kmax = cnet.params, cnet.kind, cnet.kmax
    tgt, w, d, out_edges = cnet.tgt, cnet.w, cnet.d, cnet.out_edges
    rec = ForwardRecord(T=T, spikes_of=[[] for _ in range(n)])
    v = [0.0] * n
    cur = [0.0] * n
    adapt = [0.0] * n
    t_upd = [0.0] * n
    refr = [False] * n
    version = [0] * n
    heap: list[tuple] = []
    seq = 0

    for j in range(n):
        if kinds[j] == "li":
            rec.seg_t[j], rec.seg_v[j], rec.seg_i[j], rec.seg_arr[j] = [0.0], [0.0], [0.0], [-1]
        elif kinds[j] == "lif":
            rec.post[j] = []

    for nid, ts in input_spikes(cnet, trial):
        for e in out_edges[nid]:
            ta = ts + float(d[e])
            if ta < T:
                heap.append((ta, ARRIVAL, seq, e, -1))
                seq += 1
    heapq.heapify(heap)

    def advance(j: int, t: float) -> None:
        u = t - t_upd[j]
        if u > 0.0:
            v[j], cur[j], adapt[j] = propagate(v[j], cur[j], adapt[j], u, params[j], refr[j])
        t_upd[j] = t

    def predict(j: int, t: float) -> None:
        version[j] += 1
        u = first_crossing(v[j], cur[j], adapt[j], T - t, params[j], kmax[j])
        if u is not None and t + u < T:
            heapq.heappush(heap, (t + u, SPIKE, j, version[j]))

    for j in range(n):
        if kinds[j] == "lif":
            predict(j, 0.0)

    while heap:
        item = heapq.heappop(heap)
        t, kind = item[0], item[1]
        if t >= T:
            break
        if kind == ARRIVAL:
            e, sid = item[3], item[4]
            m = int(tgt[e])
            advance(m, t)
            cur[m] += float(w[e])
            aid = len(rec.arr_t)
            rec.arr_t.append(t)
            rec.arr_e.append(e)
            rec.arr_sid.append(sid)
            if kinds[m] == "li":
                rec.seg_t[m].append(t)
                rec.seg_v[m].append(v[m])
                rec.seg_i[m].append(cur[m])
                rec.seg_arr[m].append(aid)
            else:
                rec.post[m].append((v[m], cur[m], adapt[m], refr[m]))
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
            rec.spike_gdot.append(dvdt(v[j], cur[j], p) + adapt[j] / p.adapt_tau)
            rec.spikes_of[j].append(sid)
            v[j] = p.v_reset
            adapt[j] += p.adapt_beta
            rec.release_t.append(math.nan)
            rec.release_vdot.append(0.0)
            if p.t_ref > 0.0:
                refr[j] = True
                version[j] += 1
                rec.spike_vdot_plus.append(0.0)
                if t + p.t_ref < T:
                    heapq.heappush(heap, (t + p.t_ref, RELEASE, j, sid))
            else:
                rec.spike_vdot_plus.append(dvdt(v[j], cur[j], p))
                predict(j, t)
            rec.post[j].append((v[j], cur[j], adapt[j], refr[j]))
            for e in out_edges[j]:
                ta = t + float(d[e])
                if ta < T:
                    heapq.heappush(heap, (ta, ARRIVAL, seq, e, sid))
                    seq += 1
            rec.log.append((LOG_SPIKE, sid))
        else:  # RELEASE
            j, sid = item[2], item[3]
            advance(j, t)
            refr[j] = False
            rec.post[j].append((v[j], cur[j], adapt[j], False))
            rec.release_t[sid] = t
            rec.release_vdot[sid] = dvdt(v[j], cur[j], params[j])
            predict(j, t)
            rec.log.append((LOG_RELEASE, sid))
    return rec

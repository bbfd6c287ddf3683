"""The control network of the V1 column (``network.v1.structure = "random_lif"``): Chen et al. (2022) compare the
data-based column with a network of the same size that lacks its laminar, cell-class structure.

What the control keeps from the column it is drawn from (same ``network.v1`` settings and seed): the number of
neurons and which of them are excitatory or inhibitory, every recurrent synapse's source, weight and delay (so each
neuron's out-degree and the weight distribution are the column's), the LGN and every LGN synapse (each cell keeps
its receptive field), the background drive and the readout pools' members. What it drops:

* the recurrent wiring: each source's synapses go to targets drawn uniformly at random among the other neurons,
  without repeats (no layers, distances, like-to-like rule or class-pair probabilities); the receptor port follows
  the new target's E/I type;
* the cell classes: every excitatory neuron gets the same leaky integrate-and-fire parameters (the mean over the
  column's excitatory neurons of C_m, g, E_L, V_th, t_ref) and every inhibitory one the inhibitory mean; no
  after-spike currents (``asc_amps = 0``), which makes ``eprop_glif3_psc`` a LIF neuron with the column's four
  exponential current ports.

``structure = "random_wiring"`` drops the wiring only and keeps the column's GLIF3 neurons (its fits per class), and
``structure = "column_lif"`` drops the neurons only and keeps the column's wiring, so that a difference between
column and control can be laid at the wiring's or the neurons' door (a 2 x 2 design; docs/v1_model.md).
``structure = "random_one_fit"`` is the random wiring with GLIF3 neurons without cell classes: every neuron of an
E/I group gets its group's most common Allen fit (after-spike currents kept), to tell the after-spike currents from
the variety of the fits; ``structure = "random_one_fit_no_asc"`` is that network with the after-spike currents
switched off (``asc_amps = 0``; every other parameter, the wiring and the weights unchanged), the direct test of
what the after-spike currents do for learning.
"""

from __future__ import annotations

import numpy as np

from nestgrad.networks import v1_data as D

LIF_KEYS = ("C_m", "g", "E_L", "V_th", "t_ref")


def random_recurrent(
    rng: np.random.Generator, cls: np.ndarray, src: np.ndarray, w: np.ndarray, delay: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Rewire the column's synapses (canonical order: ``src`` sorted) to uniformly random targets, keeping each
    source's out-degree, weights and delays; returns (src, tgt, w, receptor, delay) in canonical order."""
    n = cls.size
    out_degree = np.bincount(src, minlength=n)
    if out_degree.max(initial=0) > n - 1:
        raise ValueError(f"a neuron has {out_degree.max()} synapses; a control without repeats allows {n - 1}")
    tgt = np.empty(src.size, np.int64)
    start = 0
    for s in range(n):
        k = int(out_degree[s])
        if k:
            t = rng.choice(n - 1, size=k, replace=False)
            tgt[start : start + k] = t + (t >= s)  # skip the source itself: no autapses, as in the column
            start += k
    excitatory = D.EXCITATORY[cls]
    receptor = np.array([D.RECEPTOR[(a, b)] for a in "ei" for b in "ei"])  # index 2 (source is I) + (target is I)
    port = receptor[2 * (~excitatory[src]) + (~excitatory[tgt])]
    order = np.lexsort((tgt, src))
    return src[order], tgt[order], w[order], port[order], delay[order]


def one_fit_per_group(fit: np.ndarray, excitatory: np.ndarray) -> np.ndarray:
    """Per neuron the fit id its E/I group uses most often (ties: the smaller id)."""
    out = fit.copy()
    for group in (excitatory, ~excitatory):
        if group.any():
            ids, counts = np.unique(fit[group], return_counts=True)  # ids ascending: argmax takes the smaller on ties
            out[group] = ids[np.argmax(counts)]
    return out


def lif_params(params: list[dict], excitatory: np.ndarray) -> list[dict]:
    """Per neuron: its own parameters with C_m, g, E_L, V_th, t_ref replaced by the mean of its E/I group and the
    after-spike currents switched off (V_reset and V_m follow E_L)."""
    out = [dict(p) for p in params]
    for group in (excitatory, ~excitatory):
        members = np.flatnonzero(group)
        if members.size == 0:
            continue
        mean = {key: float(np.mean([params[j][key] for j in members])) for key in LIF_KEYS}
        for j in members:
            out[j].update(mean, V_reset=mean["E_L"], V_m=mean["E_L"], asc_amps=[0.0, 0.0])
    return out


def without_after_spike_currents(params: list[dict]) -> list[dict]:
    """Per neuron: its own parameters with the after-spike currents switched off (``asc_amps = 0``), nothing else
    changed (the fit's C_m, g, E_L, V_th, t_ref and reset stay)."""
    return [dict(p, asc_amps=[0.0, 0.0]) for p in params]

"""A small network description for the EventProp reference engine, and its validation.

Populations are ``input`` (spike sources: spike times given per trial), ``lif`` (spiking current-based LIF with
exponential synaptic current, optional refractoriness and threshold adaptation) or ``li`` (leaky, non-spiking
readout: the same sub-threshold dynamics without threshold). Parameters use NEST's names and units and may be a
scalar or one value per neuron. Projections are edge lists (source index, target index, weight in pA, delay in ms).

Neurons of all populations are numbered globally in the order the populations are given; :class:`CompiledNetwork`
holds the flat arrays the simulator and the adjoint use.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from nestgrad.errors import SpecError
from nestgrad.reference.eventprop.neurons.dynamics import NeuronParams, kern_max
from nestgrad.reference.eventprop.neurons.glif3 import GLIF3_DEFAULTS, GLIF3_VECTOR_PARAMS, Glif3Params

KINDS = ("input", "lif", "li", "glif3")

# NEST iaf_psc_exp_ps defaults (one synaptic time constant) plus the adaptation this engine adds.
LIF_DEFAULTS: dict[str, float] = {
    "C_m": 250.0,
    "tau_m": 10.0,
    "tau_syn": 2.0,
    "E_L": -70.0,
    "I_e": 0.0,
    "V_th": -55.0,
    "V_reset": -70.0,
    "t_ref": 2.0,
    "adapt_tau": 100.0,
    "adapt_beta": 0.0,
}
LI_DEFAULTS: dict[str, float] = {"C_m": 250.0, "tau_m": 10.0, "tau_syn": 2.0, "E_L": -70.0, "I_e": 0.0}
DEFAULTS = {"input": {}, "lif": LIF_DEFAULTS, "li": LI_DEFAULTS, "glif3": GLIF3_DEFAULTS}


@dataclass(frozen=True)
class Population:
    """``size`` neurons of one kind; ``params`` values are scalars or sequences of length ``size``."""

    name: str
    size: int
    kind: str = "lif"
    params: Mapping[str, float | Sequence[float]] = field(default_factory=dict)


@dataclass(frozen=True)
class Projection:
    """Edges from population ``source`` to ``target``: ``sources[k] -> targets[k]`` with ``weights[k]`` (pA) and
    ``delays[k]`` (ms, > 0; a scalar applies to every edge). Several edges may join the same pair.

    ``receptor``: the receptor port of a ``glif3`` target (1..len(tau_syn), NEST's ``receptor_type``; None means
    1); other targets have one port and take None only."""

    name: str
    source: str
    target: str
    sources: np.ndarray
    targets: np.ndarray
    weights: np.ndarray
    delays: np.ndarray | float = 1.0
    receptor: int | None = None


@dataclass(frozen=True)
class Network:
    populations: tuple[Population, ...]
    projections: tuple[Projection, ...]
    T: float  # trial duration (ms): events at t >= T are not simulated

    def with_weights(self, weights: Mapping[str, np.ndarray]) -> Network:
        """A copy with the weights of the named projections replaced."""
        projs = tuple(
            dataclasses.replace(p, weights=np.asarray(weights[p.name], dtype=float)) if p.name in weights else p
            for p in self.projections
        )
        return dataclasses.replace(self, projections=projs)

    def with_delays(self, delays: Mapping[str, np.ndarray]) -> Network:
        projs = tuple(
            dataclasses.replace(p, delays=np.asarray(delays[p.name], dtype=float)) if p.name in delays else p
            for p in self.projections
        )
        return dataclasses.replace(self, projections=projs)

    def projection(self, name: str) -> Projection:
        for p in self.projections:
            if p.name == name:
                return p
        raise SpecError(f"no projection named {name!r}; have {[p.name for p in self.projections]}")


@dataclass
class CompiledNetwork:
    """Flat, validated form: one :class:`NeuronParams` per non-input neuron, edges as arrays."""

    net: Network
    offsets: dict[str, int]
    kind: list[str]  # per global neuron
    params: list[NeuronParams | Glif3Params | None]  # None for inputs
    kmax: list[float]
    src: np.ndarray
    tgt: np.ndarray
    w: np.ndarray
    d: np.ndarray
    proj_slices: dict[str, slice]
    out_edges: list[list[int]]  # per global neuron: edge indices, sorted by (delay, edge index)
    port: np.ndarray | None = None  # per edge: 0-based receptor port of a glif3 target (0 for other targets)

    @property
    def n(self) -> int:
        return len(self.kind)

    def global_ids(self, pop: str) -> range:
        size = next(p.size for p in self.net.populations if p.name == pop)
        return range(self.offsets[pop], self.offsets[pop] + size)


def _per_neuron(pop: Population, key: str, default: float) -> np.ndarray:
    val = pop.params.get(key, default)
    arr = np.broadcast_to(np.asarray(val, dtype=float), (pop.size,)) if np.ndim(val) == 0 else np.asarray(val, float)
    if arr.shape != (pop.size,):
        raise SpecError(f"population {pop.name!r}: parameter {key!r} has shape {arr.shape}, need () or ({pop.size},)")
    if not np.all(np.isfinite(arr)):
        raise SpecError(f"population {pop.name!r}: parameter {key!r} has non-finite values")
    return arr


def _glif3_params(pop: Population) -> list[Glif3Params]:
    """Validated per-neuron :class:`Glif3Params` of a glif3 population. Scalar parameters: a scalar or one value
    per neuron; vector ones (``asc_*``, ``tau_syn``): one sequence shared by all neurons or an array (size, n)."""
    scal = {k: _per_neuron(pop, k, v) for k, v in GLIF3_DEFAULTS.items() if k not in GLIF3_VECTOR_PARAMS}
    vec: dict[str, np.ndarray] = {}
    for key in GLIF3_VECTOR_PARAMS:
        arr = np.asarray(pop.params.get(key, GLIF3_DEFAULTS[key]), dtype=float)
        if arr.ndim == 1:
            arr = np.broadcast_to(arr, (pop.size, arr.size))
        if arr.ndim != 2 or arr.shape[0] != pop.size or arr.shape[1] < 1:
            raise SpecError(
                f"population {pop.name!r}: parameter {key!r} has shape {np.shape(pop.params.get(key))}, need (n,) "
                f"or ({pop.size}, n) with n >= 1"
            )
        if not np.all(np.isfinite(arr)):
            raise SpecError(f"population {pop.name!r}: parameter {key!r} has non-finite values {arr[0].tolist()}")
        vec[key] = arr
    n_asc = vec["asc_decay"].shape[1]
    for key in ("asc_init", "asc_amps", "asc_r"):
        if vec[key].shape[1] != n_asc:
            raise SpecError(
                f"population {pop.name!r}: {key!r} has {vec[key].shape[1]} values but asc_decay has {n_asc} "
                "(one per after-spike current)"
            )
    for key, arr in (
        ("C_m", scal["C_m"]),
        ("g", scal["g"]),
        ("asc_decay", vec["asc_decay"]),
        ("tau_syn", vec["tau_syn"]),
    ):
        if np.any(arr <= 0):
            raise SpecError(f"population {pop.name!r}: {key} = {arr.min()} must be > 0")
    if np.any(scal["t_ref"] < 0):
        raise SpecError(f"population {pop.name!r}: t_ref = {scal['t_ref'].min()} ms must be >= 0")
    if np.any(scal["V_reset"] >= scal["V_th"]):
        bad = int(np.argmax(scal["V_reset"] >= scal["V_th"]))
        raise SpecError(
            f"population {pop.name!r}: V_reset = {scal['V_reset'][bad]} must be < V_th = {scal['V_th'][bad]} mV"
        )
    out = []
    for j in range(pop.size):
        kw = {k: float(v[j]) for k, v in scal.items()}
        kw.update({k: tuple(float(x) for x in v[j]) for k, v in vec.items()})
        out.append(Glif3Params(**kw))
    return out


def compile_network(net: Network) -> CompiledNetwork:
    """Validate ``net`` (clear :class:`SpecError` naming population/projection and field) and flatten it."""
    if not (math.isfinite(net.T) and net.T > 0):
        raise SpecError(f"network T = {net.T!r} ms: must be finite and > 0")
    offsets: dict[str, int] = {}
    kind: list[str] = []
    params: list[NeuronParams | None] = []
    kmax: list[float] = []
    for pop in net.populations:
        if pop.name in offsets:
            raise SpecError(f"population name {pop.name!r} used twice")
        if pop.kind not in KINDS:
            raise SpecError(f"population {pop.name!r}: kind {pop.kind!r} not one of {KINDS}")
        if pop.size < 1:
            raise SpecError(f"population {pop.name!r}: size {pop.size} must be >= 1")
        unknown = set(pop.params) - set(DEFAULTS[pop.kind])
        if unknown:
            raise SpecError(
                f"population {pop.name!r} ({pop.kind}): unknown parameters {sorted(unknown)}; "
                f"allowed {sorted(DEFAULTS[pop.kind])}"
            )
        offsets[pop.name] = len(kind)
        if pop.kind == "glif3":
            for p in _glif3_params(pop):
                kind.append("glif3")
                params.append(p)
                kmax.append(0.0)
            continue
        vals = {k: _per_neuron(pop, k, v) for k, v in DEFAULTS[pop.kind].items()}
        for key in ("C_m", "tau_m", "tau_syn", "adapt_tau"):
            if key in vals and np.any(vals[key] <= 0):
                raise SpecError(f"population {pop.name!r}: {key} = {vals[key].min()} must be > 0")
        if pop.kind == "lif":
            if np.any(vals["V_reset"] >= vals["V_th"]):
                raise SpecError(
                    f"population {pop.name!r}: V_reset must be < V_th (got {vals['V_reset']}, {vals['V_th']})"
                )
            if np.any(vals["t_ref"] < 0):
                raise SpecError(f"population {pop.name!r}: t_ref = {vals['t_ref'].min()} must be >= 0")
            if np.any(vals["adapt_beta"] < 0):
                raise SpecError(f"population {pop.name!r}: adapt_beta = {vals['adapt_beta'].min()} must be >= 0")
        for j in range(pop.size):
            kind.append(pop.kind)
            if pop.kind == "input":
                params.append(None)
                kmax.append(0.0)
                continue
            kw = {k: float(v[j]) for k, v in vals.items()}
            p = NeuronParams(**kw, spiking=(pop.kind == "lif"))
            params.append(p)
            kmax.append(kern_max(p.tau_m, p.tau_syn))
    sizes = {p.name: p.size for p in net.populations}
    kinds = {p.name: p.kind for p in net.populations}
    if "glif3" in kinds.values() and "lif" in kinds.values():
        raise SpecError(
            "populations of kinds 'glif3' and 'lif' in one network: the glif3 engine simulates input, glif3 and li "
            f"populations only (kinds: {kinds})"
        )
    n_ports = {p.name: len(params[offsets[p.name]].tau_syn) if p.kind == "glif3" else 1 for p in net.populations}
    src_l, tgt_l, w_l, d_l, port_l = [], [], [], [], []
    proj_slices: dict[str, slice] = {}
    start = 0
    for proj in net.projections:
        if proj.name in proj_slices:
            raise SpecError(f"projection name {proj.name!r} used twice")
        for end in ("source", "target"):
            if getattr(proj, end) not in sizes:
                raise SpecError(f"projection {proj.name!r}: {end} population {getattr(proj, end)!r} does not exist")
        if kinds[proj.target] == "input":
            raise SpecError(f"projection {proj.name!r}: target {proj.target!r} is an input population")
        if kinds[proj.source] == "li":
            raise SpecError(f"projection {proj.name!r}: source {proj.source!r} is a non-spiking readout")
        s = np.asarray(proj.sources, dtype=int).ravel()
        t = np.asarray(proj.targets, dtype=int).ravel()
        w = np.asarray(proj.weights, dtype=float).ravel()
        d = (
            np.broadcast_to(np.asarray(proj.delays, dtype=float), s.shape).ravel()
            if np.ndim(proj.delays) == 0
            else (np.asarray(proj.delays, dtype=float).ravel())
        )
        if not (len(s) == len(t) == len(w) == len(d)):
            raise SpecError(
                f"projection {proj.name!r}: sources/targets/weights/delays lengths {len(s)}/{len(t)}/{len(w)}/{len(d)}"
            )
        if len(s) and (s.min() < 0 or s.max() >= sizes[proj.source]):
            raise SpecError(f"projection {proj.name!r}: source index out of range [0, {sizes[proj.source]})")
        if len(t) and (t.min() < 0 or t.max() >= sizes[proj.target]):
            raise SpecError(f"projection {proj.name!r}: target index out of range [0, {sizes[proj.target]})")
        if not np.all(np.isfinite(w)):
            bad = int(np.argmin(np.isfinite(w)))
            raise SpecError(f"projection {proj.name!r}: non-finite weights (weights[{bad}] = {w[bad]})")
        if not (np.all(np.isfinite(d)) and np.all(d > 0)):
            raise SpecError(
                f"projection {proj.name!r}: delays must be finite and > 0 ms (min {d.min() if len(d) else 0})"
            )
        rt = proj.receptor
        if kinds[proj.target] == "glif3":
            rt = 1 if rt is None else rt
            if isinstance(rt, bool) or not isinstance(rt, int | np.integer) or not 1 <= rt <= n_ports[proj.target]:
                raise SpecError(
                    f"projection {proj.name!r}: receptor {proj.receptor!r} is not a port of glif3 population "
                    f"{proj.target!r} (allowed 1..{n_ports[proj.target]}, one per tau_syn)"
                )
            port_l.append(np.full(len(s), int(rt) - 1))
        else:
            if rt is not None:
                raise SpecError(
                    f"projection {proj.name!r}: receptor {rt!r} given, but target {proj.target!r} "
                    f"({kinds[proj.target]}) has a single port (receptor must be None)"
                )
            port_l.append(np.zeros(len(s), dtype=int))
        src_l.append(s + offsets[proj.source])
        tgt_l.append(t + offsets[proj.target])
        w_l.append(w)
        d_l.append(d)
        proj_slices[proj.name] = slice(start, start + len(s))
        start += len(s)
    src = np.concatenate(src_l) if src_l else np.zeros(0, int)
    tgt = np.concatenate(tgt_l) if tgt_l else np.zeros(0, int)
    w = np.concatenate(w_l) if w_l else np.zeros(0)
    d = np.concatenate(d_l) if d_l else np.zeros(0)
    port = np.concatenate(port_l) if port_l else np.zeros(0, int)
    out_edges: list[list[int]] = [[] for _ in kind]
    for e in np.lexsort((np.arange(len(src)), d)):
        out_edges[int(src[e])].append(int(e))
    return CompiledNetwork(net, offsets, kind, params, kmax, src, tgt, w, d, proj_slices, out_edges, port)


@dataclass(frozen=True)
class Trial:
    """One trial's data: input spike times per input population (a sequence of arrays, one per neuron, ms, in
    [0, T)), plus the label (classification) or target (regression: array [n_readout, n_bins] of mV relative to
    E_L, piecewise constant on ``target_edges`` of length n_bins + 1 from 0 to T)."""

    inputs: Mapping[str, Sequence[Sequence[float]]]
    label: int | None = None
    target: np.ndarray | None = None
    target_edges: np.ndarray | None = None


def input_spikes(cnet: CompiledNetwork, trial: Trial) -> list[tuple[int, float]]:
    """Validated (global neuron, time) of every input spike of ``trial``."""
    out: list[tuple[int, float]] = []
    T = cnet.net.T
    for pop in cnet.net.populations:
        if pop.kind != "input":
            continue
        if pop.name not in trial.inputs:
            raise SpecError(f"trial inputs: no spike times for input population {pop.name!r}")
        trains = trial.inputs[pop.name]
        if len(trains) != pop.size:
            raise SpecError(f"trial inputs[{pop.name!r}]: {len(trains)} spike trains for {pop.size} neurons")
        for j, train in enumerate(trains):
            arr = np.asarray(train, dtype=float).ravel()
            if arr.size and (not np.all(np.isfinite(arr)) or arr.min() < 0 or arr.max() >= T):
                raise SpecError(f"trial inputs[{pop.name!r}][{j}]: spike times must be finite and in [0, {T})")
            out.extend((cnet.offsets[pop.name] + j, float(t)) for t in np.sort(arr))
    for name in trial.inputs:
        if name not in cnet.offsets or cnet.kind[cnet.offsets[name]] != "input":
            raise SpecError(f"trial inputs: {name!r} is not an input population")
    return out

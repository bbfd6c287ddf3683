"""NIR (Neuromorphic Intermediate Representation) export and import of nestgrad networks.

A :class:`~nestgrad.spec.NetworkSpec` of current-based LIF neurons becomes a NIR graph (``nir`` on PyPI) that other
simulators and neuromorphic hardware read, and a NIR graph of such nodes becomes a spec that nestgrad builds in
NEST, ready to run or to train with e-prop. The mapping is documented in docs/nir.md; in short:

=========================================  ==============  ===================================================
NEST population                            NIR node        parameters (time constants in s, potentials in mV)
=========================================  ==============  ===================================================
input population (``parrot_neuron``)       ``Input``       shape ``(size,)``
``eprop_iaf_psc_exp`` / ``iaf_psc_exp``    ``CubaLIF``     ``tau_syn``, ``tau_mem``, ``r = tau_mem / dt``,
                                                           ``w_in = tau_syn[ms] / C_m[pF]``, ``v_leak``,
                                                           ``v_threshold``, ``v_reset``
``eprop_iaf_psc_delta``                    ``LIF``         ``tau``, ``r = tau / dt``, ``v_leak``, ...
``eprop_readout``                          ``LI``          ``tau``, ``r = tau / dt``, ``v_leak``
projection (edge list, pA or mV)           ``Linear``      dense ``weight`` [post, pre]
EventProp ``eventprop_iaf_psc_exp_ps``     ``CubaLIF``     as ``eprop_iaf_psc_exp`` (``tau_syn``)
EventProp ``eventprop_readout_ps``         ``CubaLI``      ``tau_syn``, ``tau_mem``, ``r``, ``w_in``, ``v_leak``
EventProp projection (delay d)             ``Linear``      ``weight``; ``metadata["nest_delay"]`` = d (s)
=========================================  ==============  ===================================================

Conventions. NIR's equations are continuous in time, but the tools that read and write NIR (NIR's own reference
integrators, snnTorch, Norse) feed a spike to the next node as the value 1 during one time step ``dt``. A graph
therefore belongs to a time step: nestgrad writes NEST's resolution (in s) as the graph's metadata ``dt`` and needs
it (from the metadata or from the caller) to import a graph. Within that convention the parameters are chosen so
that one spike moves the state exactly as in NEST: a CubaLIF's current jumps by ``w_in * W * dt / tau_syn`` (NEST:
by the weight ``W`` in pA, scaled by ``dt / C_m`` into the voltage step per time step that ``r = tau_mem / dt``
makes the current's unit), an LI's voltage by ``r * W * dt / tau`` (NEST's ``eprop_readout``: by ``W``). Potentials
are NEST's (mV, not relative to E_L): ``v_leak = E_L + I_e tau_m / C_m`` (a constant current only shifts the
resting potential). Every connection is one time step long (NEST's e-prop delay); NIR has no other delay.

What NIR cannot express is refused (:class:`~nestgrad.errors.ModelError` naming the model and parameter):
refractory periods, adaptation, after-spike currents, alpha-shaped or two different synaptic currents, lower
voltage bounds, delays other than one step, receptor ports, noise generators, and NIR nodes without a NEST model.
Training state (e-prop's learning signals, optimizer, Dale's law) is not part of NIR; the weights are.

EventProp networks (:func:`eventprop_to_graph`, :func:`graph_to_eventprop`) are exact in continuous time, so their
graph may be written for any time step; their connection delays, one per feedforward connection, are a time shift
of the readout (graph metadata ``readout_delay``); threshold adaptation, refractoriness and recurrent delays other
than the graph's step are refused.
"""

from __future__ import annotations

import math
import os
import pathlib
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from nestgrad.config.experiment import TIC_MS
from nestgrad.errors import ModelError, OutputError, SpecError
from nestgrad.spec import NetworkSpec, Population, Projection, Role, SynapseKind

MS_PER_S = 1e3
GRAPH_SOURCE = "nestgrad"
CUBA_MODELS = ("eprop_iaf_psc_exp", "iaf_psc_exp")  # CubaLIF
DELTA_MODELS = ("eprop_iaf_psc_delta", "iaf_psc_delta")  # LIF: the input enters v directly
READOUT_MODELS = ("eprop_readout",)  # LI
INPUT_MODELS = ("parrot_neuron",)
# models whose dynamics NIR lacks, and why: the refusal names them
_NOT_EXPRESSIBLE = {  # checked in this order
    "cond": "conductance-based synapses",
    "glif": "after-spike currents and alpha-shaped synaptic currents (GLIF3)",
    "asc": "after-spike currents (asc_*)",
    "adapt": "spike-frequency adaptation (adapt_beta, adapt_tau)",
    "alpha": "alpha-shaped synaptic currents",
}
# e-prop settings an imported recurrent population gets (the classic network's; NIR carries none)
_EPROP_IMPORT_DEFAULTS: dict[str, Any] = {
    "c_reg": 0.3,
    "f_target": 10.0,
    "kappa": 0.97,
    "kappa_reg": 0.97,
    "surrogate_gradient_function": "piecewise_linear",
    "surrogate_gradient_height": 10.0,
    "surrogate_gradient_width": 1.0 / 33.3,
    "eprop_isi_trace_cutoff": 100.0,
}


def _tidy(x: np.ndarray) -> np.ndarray:
    """Unit conversions rounded to 15 significant digits: a product such as 0.005 s * 1000 comes back as 5.0 ms, not
    one unit in the last place off, so that export -> import -> export reproduces a graph bit for bit (the change is
    below 1e-15 relative)."""
    x = np.asarray(x, float)
    return np.array([float(f"{v:.15g}") for v in x.reshape(-1)]).reshape(x.shape)


def _divisor(numerator: np.ndarray, quotient: np.ndarray) -> np.ndarray:
    """``c`` with ``numerator / c == quotient`` in floating point, the tidy value if it is one (so that C_m = 5 pF
    exported as w_in = tau_syn / C_m comes back as 5.0), else the plain quotient or one of its neighbours."""
    out = numerator / quotient
    for i, (num, q, c0) in enumerate(zip(numerator, quotient, out, strict=True)):
        for c in (float(_tidy(np.array([c0]))[0]), c0, np.nextafter(c0, np.inf), np.nextafter(c0, -np.inf)):
            if num / c == q:
                out[i] = c
                break
    return out


def _nir() -> Any:
    try:
        import nir
    except ImportError as err:  # an optional dependency: say how to get it
        raise ModelError("NIR support needs the package 'nir' (pip install nir==1.0.8)") from err
    return nir


# -- export ----------------------------------------------------------------------------------------------------------
def _params(pop: Population, defaults: Callable[[str], Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    """One parameter dictionary per neuron, completed from NEST's defaults when ``defaults`` is given."""
    base = dict(defaults(pop.model)) if defaults is not None else {}
    rows = pop.params if isinstance(pop.params, list) else [pop.params] * pop.size
    return [base | dict(r) for r in rows]


def _column(rows: list[dict[str, Any]], key: str, pop: Population) -> np.ndarray:
    if any(key not in r for r in rows):
        raise ModelError(f"population {pop.name!r} ({pop.model}): parameter {key!r} is not given (export with NEST "
                         "loaded to take NEST's default)")  # fmt: skip
    try:
        return np.array([float(r[key]) for r in rows])
    except (TypeError, ValueError):
        raise ModelError(f"population {pop.name!r} ({pop.model}): parameter {key!r} is not a number") from None


def _refuse_unexpressible(pop: Population, rows: list[dict[str, Any]]) -> None:
    """Refractoriness and lower voltage bounds change the forward dynamics and have no NIR parameter."""
    t_ref = _column(rows, "t_ref", pop) if any("t_ref" in r for r in rows) else np.zeros(1)
    if np.any(t_ref != 0.0):
        raise ModelError(
            f"population {pop.name!r} ({pop.model}): t_ref = {t_ref[t_ref != 0][0]} ms; NIR's neurons have no "
            "refractory period (set t_ref = 0 to export)"
        )
    if any("V_min" in r for r in rows):
        v_min = _column(rows, "V_min", pop)
        if np.any(v_min > -1e300):
            raise ModelError(f"population {pop.name!r} ({pop.model}): V_min = {v_min.max()} mV; NIR has no lower "
                             "bound of the membrane potential")  # fmt: skip


def _v_leak(rows: list[dict[str, Any]], pop: Population) -> np.ndarray:
    """E_L shifted by the constant current I_e (its exact steady-state effect)."""
    i_e = _column(rows, "I_e", pop) if any("I_e" in r for r in rows) else np.zeros(len(rows))
    return _column(rows, "E_L", pop) + i_e * _column(rows, "tau_m", pop) / _column(rows, "C_m", pop)


def _neuron_node(pop: Population, dt_s: float, defaults: Callable[[str], Mapping[str, Any]] | None) -> Any:
    nir = _nir()
    model = pop.model
    meta = {"nest_model": model}
    if pop.role == Role.INPUT:
        if model not in INPUT_MODELS:
            raise ModelError(f"input population {pop.name!r}: model {model!r}; NIR inputs are spike sources "
                             f"({', '.join(INPUT_MODELS)})")  # fmt: skip
        return nir.Input(input_type=np.array([pop.size]), metadata=meta)
    if pop.role == Role.DEVICE:
        raise ModelError(f"population {pop.name!r} ({model}): NIR has no stimulating devices (noise generators)")
    for part, what in _NOT_EXPRESSIBLE.items():
        if part in model and model not in CUBA_MODELS + DELTA_MODELS + READOUT_MODELS:
            raise ModelError(f"population {pop.name!r}: model {model!r} has {what}, which NIR cannot express")
    rows = _params(pop, defaults)
    if model in CUBA_MODELS:
        _refuse_unexpressible(pop, rows)
        tau_ex, tau_in = _column(rows, "tau_syn_ex", pop), _column(rows, "tau_syn_in", pop)
        if np.any(tau_ex != tau_in):
            raise ModelError(
                f"population {pop.name!r} ({model}): tau_syn_ex = {tau_ex[tau_ex != tau_in][0]} ms and tau_syn_in = "
                f"{tau_in[tau_ex != tau_in][0]} ms differ; NIR's CubaLIF has one synaptic time constant"
            )
        tau_m, c_m = _column(rows, "tau_m", pop), _column(rows, "C_m", pop)
        tau_mem = _tidy(tau_m / MS_PER_S)
        return nir.CubaLIF(
            tau_syn=_tidy(tau_ex / MS_PER_S),
            tau_mem=_tidy(tau_mem),
            r=_tidy(tau_mem / dt_s),
            v_leak=_v_leak(rows, pop),
            v_threshold=_column(rows, "V_th", pop),
            v_reset=_column(rows, "V_reset", pop),
            w_in=tau_ex / c_m,
            metadata=meta,
        )
    if model in DELTA_MODELS:
        _refuse_unexpressible(pop, rows)
        tau = _tidy(_column(rows, "tau_m", pop) / MS_PER_S)
        return nir.LIF(
            tau=tau,
            r=_tidy(tau / dt_s),
            v_leak=_v_leak(rows, pop),
            v_threshold=_column(rows, "V_th", pop),
            v_reset=_column(rows, "V_reset", pop),
            metadata=meta,
        )
    if model in READOUT_MODELS:
        _refuse_unexpressible(pop, rows)
        tau = _tidy(_column(rows, "tau_m", pop) / MS_PER_S)
        return nir.LI(tau=tau, r=_tidy(tau / dt_s), v_leak=_v_leak(rows, pop), metadata=meta)
    raise ModelError(
        f"population {pop.name!r}: model {model!r} has no NIR node; exportable: "
        f"{', '.join(CUBA_MODELS + DELTA_MODELS + READOUT_MODELS)} (and {', '.join(INPUT_MODELS)} as input)"
    )


def _dense(spec: NetworkSpec, proj: Projection) -> np.ndarray:
    w = np.zeros((spec.populations[proj.target].size, spec.populations[proj.source].size))
    np.add.at(w, (np.asarray(proj.targets, np.int64), np.asarray(proj.sources, np.int64)), np.asarray(proj.weights))
    return w


def spec_to_graph(spec: NetworkSpec, defaults: Callable[[str], Mapping[str, Any]] | None = None) -> Any:
    """The NIR graph of ``spec`` (a ``nir.NIRGraph``): one node per population (named as it), one ``Linear`` node per
    projection (named as it, weights [post, pre]) and an ``Output`` node ``output`` after every population without
    outgoing projections (``output_<population>`` when there are several). ``defaults(model)`` (e.g.
    ``nest.GetDefaults``) completes parameters the spec leaves to NEST. Learning-signal projections are training
    machinery and left out."""
    nir = _nir()
    spec.validate()
    dt_s = spec.resolution / MS_PER_S
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    for pop in spec.populations.values():
        nodes[pop.name] = _neuron_node(pop, dt_s, defaults)
    sends = set()
    for name, proj in spec.projections.items():
        if proj.kind == SynapseKind.LEARNING_SIGNAL:
            continue
        if name in nodes:
            raise SpecError(f"projection {name!r} has the name of a population; NIR nodes need distinct names")
        if proj.receptors is not None:
            raise ModelError(f"projection {name!r} routes synapses to receptor ports; NIR nodes have one input")
        delays = np.asarray(proj.delays, float)
        bad = ~np.isclose(delays, spec.resolution, rtol=1e-9, atol=0.0)
        if bad.any():
            raise ModelError(f"projection {name!r}: delay {delays[bad][0]} ms; NIR connections are one time step "
                             f"({spec.resolution} ms)")  # fmt: skip
        if spec.populations[proj.target].role == Role.INPUT:
            raise SpecError(f"projection {name!r} targets the input population {proj.target!r}")
        nodes[name] = nir.Linear(weight=_dense(spec, proj))
        edges += [(proj.source, name), (name, proj.target)]
        sends.add(proj.source)
    sinks = [p for p in spec.populations if p not in sends and spec.populations[p].role != Role.INPUT]
    for pop in sinks:
        out = "output" if len(sinks) == 1 else f"output_{pop}"
        if out in nodes:
            raise SpecError(f"a population or projection is named {out!r}, the name of the graph's output node")
        nodes[out] = nir.Output(output_type=np.array([spec.populations[pop].size]))
        edges.append((pop, out))
    metadata = {"dt": dt_s, "source": GRAPH_SOURCE, "time_unit": "s", "potential_unit": "mV"}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)


# -- import ----------------------------------------------------------------------------------------------------------
@dataclass
class _Flat:
    nodes: dict[str, Any]
    edges: list[tuple[str, str]]


def _flatten(graph: Any, prefix: str = "") -> _Flat:
    """Inline nested graphs (snnTorch writes a recurrent layer as a subgraph with its own Input and Output): edges
    into a subgraph go to what its Input feeds, edges out of it leave from what feeds its Output."""
    nir = _nir()
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    entry: dict[str, list[str]] = {}  # subgraph name -> inner nodes its Input feeds
    exit_: dict[str, list[str]] = {}  # subgraph name -> inner nodes that feed its Output
    for name, node in graph.nodes.items():
        full = prefix + name
        if isinstance(node, nir.NIRGraph):
            inner = _flatten(node, full + ".")
            inputs = [n for n, v in node.nodes.items() if isinstance(v, nir.Input)]
            outputs = [n for n, v in node.nodes.items() if isinstance(v, nir.Output)]
            if len(inputs) != 1 or len(outputs) != 1:
                raise SpecError(f"NIR subgraph {full!r}: {len(inputs)} Input and {len(outputs)} Output nodes; "
                                "exactly one of each is needed to inline it")  # fmt: skip
            i_name, o_name = full + "." + inputs[0], full + "." + outputs[0]
            entry[full] = [b for a, b in inner.edges if a == i_name]
            exit_[full] = [a for a, b in inner.edges if b == o_name]
            nodes.update({k: v for k, v in inner.nodes.items() if k not in (i_name, o_name)})
            edges += [(a, b) for a, b in inner.edges if a != i_name and b != o_name]
        else:
            nodes[full] = node
    for a, b in graph.edges:
        for src in exit_.get(prefix + a, [prefix + a]):
            for dst in entry.get(prefix + b, [prefix + b]):
                edges.append((src, dst))
    return _Flat(nodes, edges)


def _array(node: Any, key: str, size: int, where: str) -> np.ndarray:
    value = np.asarray(getattr(node, key), float).reshape(-1)
    if value.size == 1:
        value = np.full(size, value[0])
    if value.size != size:
        raise SpecError(f"NIR node {where}: {key} has {value.size} values for {size} neurons")
    if not np.all(np.isfinite(value)):
        raise SpecError(f"NIR node {where}: {key} contains NaN or infinite values")
    return value


def _per_neuron(columns: dict[str, np.ndarray], fixed: dict[str, Any]) -> dict[str, Any] | list[dict[str, Any]]:
    """One dict when every neuron has the same values, else one dict per neuron."""
    if all(np.all(v == v[0]) for v in columns.values()):
        return fixed | {k: float(v[0]) for k, v in columns.items()}
    n = len(next(iter(columns.values())))
    return [fixed | {k: float(v[i]) for k, v in columns.items()} for i in range(n)]


def _positive(node_name: str, **values: np.ndarray) -> None:
    for key, v in values.items():
        if np.any(v <= 0):
            raise ModelError(f"NIR node {node_name!r}: {key} = {v[v <= 0][0]}; NEST needs values > 0")


def _population(name: str, node: Any, dt_s: float) -> tuple[Population, np.ndarray]:
    """The NEST population of a NIR neuron node, and the factor by which weights into it become NEST weights."""
    nir = _nir()
    kind = type(node).__name__
    if isinstance(node, nir.CubaLIF):
        n = int(np.asarray(node.v_threshold).size)
        tau_syn, tau_mem = _array(node, "tau_syn", n, name), _array(node, "tau_mem", n, name)
        r, w_in = _array(node, "r", n, name), _array(node, "w_in", n, name)
        _positive(name, tau_syn=tau_syn, tau_mem=tau_mem, r=r, w_in=w_in)
        v_th, v_reset = _array(node, "v_threshold", n, name), _array(node, "v_reset", n, name)
        if np.any(v_th <= v_reset):
            raise ModelError(f"NIR node {name!r}: v_threshold must exceed v_reset (NEST's V_th > V_reset)")
        # the capacitance that makes a weight W (pA) move v as NIR's w_in * W * dt / tau_syn moves the current:
        # C_m = tau_syn[ms] / w_in * tau_mem / (r dt), the last factor 1 in the gauge nestgrad and snnTorch write
        tau_syn_ms = _tidy(tau_syn * MS_PER_S)
        c_m = _divisor(tau_syn_ms * _tidy(tau_mem / (r * dt_s)), w_in)
        v_leak = _array(node, "v_leak", n, name)
        cols = {"C_m": c_m, "tau_m": _tidy(tau_mem * MS_PER_S), "tau_syn_ex": tau_syn_ms, "tau_syn_in": tau_syn_ms,
                "E_L": v_leak, "V_m": v_leak, "V_th": v_th, "V_reset": v_reset}  # fmt: skip
        params = _per_neuron(cols, {"I_e": 0.0, "t_ref": 0.0} | _EPROP_IMPORT_DEFAULTS)
        return Population(name, "eprop_iaf_psc_exp", n, params), np.ones(n)
    if isinstance(node, nir.LIF):
        n = int(np.asarray(node.v_threshold).size)
        tau, r = _array(node, "tau", n, name), _array(node, "r", n, name)
        _positive(name, tau=tau, r=r)
        v_th, v_reset = _array(node, "v_threshold", n, name), _array(node, "v_reset", n, name)
        if np.any(v_th <= v_reset):
            raise ModelError(f"NIR node {name!r}: v_threshold must exceed v_reset (NEST's V_th > V_reset)")
        v_leak = _array(node, "v_leak", n, name)
        cols = {"tau_m": _tidy(tau * MS_PER_S), "E_L": v_leak, "V_m": v_leak, "V_th": v_th, "V_reset": v_reset}
        params = _per_neuron(cols, {"C_m": 1.0, "I_e": 0.0, "t_ref": 0.0} | _EPROP_IMPORT_DEFAULTS)
        return Population(name, "eprop_iaf_psc_delta", n, params), _tidy(r * dt_s / tau)
    if isinstance(node, nir.LI):
        n = int(np.asarray(node.tau).size)
        tau, r = _array(node, "tau", n, name), _array(node, "r", n, name)
        _positive(name, tau=tau, r=r)
        v_leak = _array(node, "v_leak", n, name)
        cols = {"tau_m": _tidy(tau * MS_PER_S), "E_L": v_leak, "V_m": v_leak}
        params = _per_neuron(cols, {"C_m": 1.0, "I_e": 0.0, "eprop_isi_trace_cutoff": 100.0})
        return Population(name, "eprop_readout", n, params, Role.READOUT), _tidy(r * dt_s / tau)
    hint = {
        "CubaLI": "a leaky integrator with an exponential current, which e-prop's readout (eprop_readout) lacks; "
        "graph_to_eventprop imports it as an EventProp readout (eventprop_readout_ps)",
        "IF": "no leak; NEST's e-prop neurons all leak",
        "I": "no leak; NEST's e-prop neurons all leak",
        "Delay": "delays other than one time step",
    }.get(kind, "no NEST model")
    raise ModelError(f"NIR node {name!r} of type {kind}: {hint}; importable: Input, Output, Linear, Affine (zero "
                     "bias), CubaLIF, LIF, LI")  # fmt: skip


def graph_dt(graph: Any, dt: float | None = None) -> float:
    """The time step (s) a graph was written for: ``dt`` if given, else the graph's metadata ``dt``."""
    meta = getattr(graph, "metadata", None) or {}
    value = dt if dt is not None else meta.get("dt")
    if value is None:
        raise SpecError("the NIR graph has no metadata 'dt' (the time step it was written for): give it in s (command "
                        "line: --dt; snnTorch writes graphs for 1e-4 s)")  # fmt: skip
    value = float(np.asarray(value).reshape(-1)[0])
    if not (math.isfinite(value) and value > 0):
        raise SpecError(f"NIR time step dt = {value!r} s: a finite number > 0 is required")
    tics = value * MS_PER_S / TIC_MS
    if tics < 1 - 1e-9 or abs(tics - round(tics)) > 1e-9 * tics:
        raise SpecError(f"NIR time step dt = {value!r} s: NEST's resolution must be a whole multiple of its tic "
                        f"({TIC_MS} ms = {TIC_MS / MS_PER_S} s)")  # fmt: skip
    return value


def _linear_weight(name: str, node: Any) -> np.ndarray:
    """The [post, pre] weight matrix of a Linear or zero-bias Affine node (ModelError / SpecError naming the node)."""
    nir = _nir()
    if isinstance(node, nir.Affine) and np.any(np.asarray(node.bias) != 0):
        raise ModelError(f"NIR node {name!r} (Affine): a nonzero bias is a constant input before the synaptic "
                         "filter, which NEST's neurons do not have; only zero biases are imported")  # fmt: skip
    w = np.asarray(node.weight, float)
    if w.ndim != 2 or not np.all(np.isfinite(w)):
        raise SpecError(f"NIR node {name!r}: weight must be a finite 2-d matrix [post, pre]")
    return w


def graph_to_spec(
    graph: Any,
    dt: float | None = None,
    *,
    trainable: bool = False,
    optimizer: dict[str, Any] | None = None,
    feedback_seed: int = 1,
) -> NetworkSpec:
    """A NetworkSpec of ``graph`` (a ``nir.NIRGraph``), resolution ``dt`` (s; default: the graph's metadata).

    Neuron nodes become populations (CubaLIF -> ``eprop_iaf_psc_exp``, LIF -> ``eprop_iaf_psc_delta``, LI ->
    ``eprop_readout``, the graph's one Input -> parrot neurons fed with spikes), ``Linear`` (and zero-bias ``Affine``)
    nodes projections with a delay of one step; a weight of 0 is no synapse. ``trainable`` makes the projections
    e-prop synapses with ``optimizer`` (NEST's dictionary) and adds learning-signal routes from the readouts to every
    e-prop neuron population with Gaussian feedback weights (seed ``feedback_seed``), so that nestgrad trains the
    network; a trainable network needs one LI readout population."""
    nir = _nir()
    dt_s = graph_dt(graph, dt)
    flat = _flatten(graph)
    spec = NetworkSpec(resolution=float(_tidy(dt_s * MS_PER_S)), optimizer=dict(optimizer or {}))
    scale: dict[str, np.ndarray] = {}
    weights: dict[str, np.ndarray] = {}
    for name, node in flat.nodes.items():
        if isinstance(node, nir.Input):
            shape = np.asarray(next(iter(node.input_type.values()))).reshape(-1)
            if spec.population_with_role(Role.INPUT) is not None:
                raise SpecError(f"NIR node {name!r}: a second Input; nestgrad feeds one input population")
            spec.add_population(Population(name, "parrot_neuron", int(np.prod(shape)), role=Role.INPUT))
        elif isinstance(node, nir.Output):
            continue
        elif isinstance(node, nir.Linear | nir.Affine):
            weights[name] = _linear_weight(name, node)
        else:
            pop, factor = _population(name, node, dt_s)
            if pop.role == Role.READOUT and spec.population_with_role(Role.READOUT) is not None:
                raise SpecError(f"NIR node {name!r}: a second LI population; nestgrad has one readout population")
            spec.add_population(pop)
            scale[name] = factor
    step = spec.resolution
    sources = {n: [a for a, b in flat.edges if b == n] for n in flat.nodes}
    targets = {n: [b for a, b in flat.edges if a == n] for n in flat.nodes}
    for name, w in weights.items():
        if len(sources[name]) != 1 or sources[name][0] not in spec.populations:
            raise SpecError(f"NIR node {name!r}: a weight matrix needs exactly one neuron or Input node before it, "
                            f"found {sources[name]}")  # fmt: skip
        pre = sources[name][0]
        for post in targets[name]:
            if post not in spec.populations or spec.populations[post].role == Role.INPUT:
                raise SpecError(f"NIR edge {name!r} -> {post!r}: a weight matrix must feed a neuron node")
            _add_projection(spec, name if len(targets[name]) == 1 else f"{name}->{post}", pre, post, w, scale[post])
    for a, b in flat.edges:  # neuron -> neuron without weights: one-to-one with weight 1
        if a in spec.populations and b in spec.populations:
            n = spec.populations[a].size
            if spec.populations[b].size != n:
                raise SpecError(f"NIR edge {a!r} -> {b!r} joins {n} to {spec.populations[b].size} neurons")
            _add_projection(spec, f"{a}->{b}", a, b, np.eye(n), scale[b])
        elif a in flat.nodes and b in flat.nodes and not (a in weights or b in weights or _is_output(flat.nodes[b])):
            raise SpecError(f"NIR edge {a!r} -> {b!r} is not a connection nestgrad can map")
    if trainable:
        _make_trainable(spec, feedback_seed)
    for proj in spec.projections.values():
        proj.delays = np.full(proj.size, step)
    spec.validate()
    return spec


def _is_output(node: Any) -> bool:
    return type(node).__name__ == "Output"


def _add_projection(spec: NetworkSpec, name: str, pre: str, post: str, w: np.ndarray, factor: np.ndarray) -> None:
    shape = (spec.populations[post].size, spec.populations[pre].size)
    if w.shape != shape:
        raise SpecError(f"NIR weight {name!r}: shape {w.shape}, expected {shape} [post {post!r}, pre {pre!r}]")
    post_idx, pre_idx = np.nonzero(w)
    w_nest = w[post_idx, pre_idx] * factor[post_idx]
    spec.add_projection(name, Projection(pre, post, pre_idx, post_idx, w_nest, np.zeros(post_idx.size)))


def _make_trainable(spec: NetworkSpec, seed: int) -> None:
    readout = spec.population_with_role(Role.READOUT)
    if readout is None:
        raise SpecError("a trainable network needs an LI node (the readout whose errors are the learning signals)")
    if not spec.optimizer:
        raise SpecError("a trainable network needs optimizer settings (NEST's optimizer dictionary)")
    for proj in spec.projections.values():
        proj.plastic = np.ones(proj.size, bool)
    rng = np.random.default_rng([seed, 0xB1])
    for pop in list(spec.populations.values()):
        if pop.role == Role.NEURONS:
            fb = rng.standard_normal((pop.size, readout.size)) / np.sqrt(pop.size)
            post, out = np.nonzero(np.ones(fb.shape, bool))
            spec.add_projection(
                f"feedback_{pop.name}",
                Projection(readout.name, pop.name, out, post, fb[post, out], np.zeros(post.size),
                           kind=SynapseKind.LEARNING_SIGNAL),
            )  # fmt: skip


# -- EventProp networks ----------------------------------------------------------------------------------------------
# The eventprop architecture's networks (nestgrad.reference.eventprop.Network, which nest_engine.eventprop builds in
# NEST): inputs -> eventprop_iaf_psc_exp_ps ("lif") -> eventprop_readout_ps ("li"), every connection with a delay in
# ms. Their neurons have one exponential synaptic current: "lif" is NIR's CubaLIF, "li" (the same sub-threshold
# dynamics without a threshold) NIR's CubaLI.
EVENTPROP_MODELS = {"input": "eventprop_input_ps", "lif": "eventprop_iaf_psc_exp_ps", "li": "eventprop_readout_ps"}
EVENTPROP_READOUTS = ("sum", "max", "sum_exp")  # the readout value y of ReadoutCrossEntropy


@dataclass
class EventpropGraph:
    """An EventProp network imported from NIR: the network (nest_engine.eventprop builds and trains it in NEST, the
    reference engine evaluates it), its readout rule when the graph names one (``loss``: cross-entropy on the
    readouts' mean, maximum or weighted mean voltage) and the graph's time step ``dt`` (s)."""

    network: Any  # nestgrad.reference.eventprop.Network
    loss: Any | None  # nestgrad.reference.eventprop.ReadoutCrossEntropy
    dt: float


def _ep_column(pop: Any, key: str, defaults: Mapping[str, float]) -> np.ndarray:
    value = pop.params.get(key, defaults.get(key))
    if value is None:
        raise ModelError(f"population {pop.name!r}: parameter {key!r} is not given")
    arr = np.broadcast_to(np.asarray(value, float), (pop.size,)) if np.ndim(value) == 0 else np.asarray(value, float)
    if arr.shape != (pop.size,):
        raise SpecError(f"population {pop.name!r}: parameter {key!r} has shape {arr.shape}, need ({pop.size},)")
    return np.array(arr, float)


def _ep_neuron_node(pop: Any, dt_s: float) -> Any:
    """CubaLIF (``lif``) or CubaLI (``li``) with the mapping of the e-prop CubaLIF: the same equations (docs/nir.md)."""
    from nestgrad.reference.eventprop.network import DEFAULTS

    nir = _nir()
    model = EVENTPROP_MODELS[pop.kind]
    meta = {"nest_model": model}
    if pop.kind == "input":
        return nir.Input(input_type=np.array([pop.size]), metadata=meta)
    d = DEFAULTS[pop.kind]
    col = {k: _ep_column(pop, k, d) for k in d}
    where = f"population {pop.name!r} ({model})"
    if pop.kind == "lif":
        if np.any(col["adapt_beta"] != 0.0):
            raise ModelError(f"{where}: adapt_beta = {col['adapt_beta'][col['adapt_beta'] != 0][0]} mV; NIR's CubaLIF "
                             "has no threshold adaptation (set adapt_beta = 0 to export)")  # fmt: skip
        if np.any(col["t_ref"] != 0.0):
            raise ModelError(f"{where}: t_ref = {col['t_ref'][col['t_ref'] != 0][0]} ms; NIR's neurons have no "
                             "refractory period (set t_ref = 0 to export)")  # fmt: skip
    tau_syn, tau_mem = _tidy(col["tau_syn"] / MS_PER_S), _tidy(col["tau_m"] / MS_PER_S)
    common = {
        "tau_syn": tau_syn,
        "tau_mem": tau_mem,
        "r": _tidy(tau_mem / dt_s),
        "v_leak": col["E_L"] + col["I_e"] * col["tau_m"] / col["C_m"],
        "w_in": col["tau_syn"] / col["C_m"],
        "metadata": meta,
    }
    if pop.kind == "li":
        return nir.CubaLI(**common)
    return nir.CubaLIF(v_threshold=col["V_th"], v_reset=col["V_reset"], **common)


def _ep_delay(proj: Any) -> float:
    """The one delay (ms) of every edge of ``proj``."""
    d = np.unique(np.broadcast_to(np.asarray(proj.delays, float), np.asarray(proj.sources).shape))
    if d.size > 1:
        raise ModelError(f"projection {proj.name!r}: delays {d[0]} ... {d[-1]} ms differ between edges; NIR has no "
                         "per-connection delay (one delay per projection is a time shift, docs/nir.md)")  # fmt: skip
    return float(d[0]) if d.size else 0.0


def eventprop_to_graph(net: Any, dt: float, loss: Any | None = None) -> Any:
    """The NIR graph of an EventProp network ``net`` (``nestgrad.reference.eventprop.Network``) for the time step
    ``dt`` (s): ``lif`` -> CubaLIF, ``li`` -> CubaLI, ``input`` -> Input, a projection -> Linear (dense weight
    [post, pre] in pA), an Output after every population that sends nothing.

    Delays. NIR's connections have none; NEST's are ``d`` ms each. In a network without cycles in which every path
    into a population has the same total delay (the eventprop architecture's feedforward networks: every edge has
    the delay ``d``), delaying the connections only delays each population's whole response, so the graph has
    NEST's dynamics shifted in time: NEST's readout at t is the graph's at t - ``readout_delay`` (graph metadata,
    s; 2 d for inputs -> hidden -> readouts). A recurrent projection's delay is part of the dynamics: the tools that
    run NIR in steps of dt close a loop in one step, so it must equal ``dt`` (refused otherwise). Each ``Linear``
    records its NEST delay (s) as ``metadata["nest_delay"]``. ``loss`` (a ``ReadoutCrossEntropy``) names the readout
    value that classifies (graph metadata ``readout``: ``sum`` = mean voltage over [0, T), ``max``, ``sum_exp``;
    ``tau_w`` in s) and ``trial_duration`` is T (s). Refused (ModelError naming population and parameter):
    threshold adaptation (adapt_beta != 0), refractoriness (t_ref > 0), edges of one projection with different
    delays, paths of different total delay, a recurrent delay other than dt."""
    from nestgrad.reference.eventprop.network import compile_network

    nir = _nir()
    dt_s = float(dt)
    if not (math.isfinite(dt_s) and dt_s > 0):
        raise SpecError(f"NIR time step dt = {dt!r} s: a finite number > 0 is required")
    compile_network(net)  # the reference engine's validation (SpecError naming population and field)
    pops = {p.name: p for p in net.populations}
    nodes: dict[str, Any] = {p.name: _ep_neuron_node(p, dt_s) for p in net.populations}
    edges: list[tuple[str, str]] = []
    latency = {name: 0.0 for name, p in pops.items() if p.kind == "input"}  # ms after the inputs
    pending = [p for p in net.projections if p.source != p.target]
    while pending:  # latencies along the feedforward projections, in topological order
        ready = [p for p in pending if p.source in latency and all(q.source in latency for q in pending
                                                                    if q.target == p.target)]  # fmt: skip
        if not ready:
            raise ModelError(f"projections {[p.name for p in pending]} form a cycle through several populations; NIR "
                             "export of EventProp networks takes recurrence within one population only")  # fmt: skip
        for p in ready:
            d = _ep_delay(p)
            arrive = latency[p.source] + d
            if p.target in latency and not math.isclose(latency[p.target], arrive, rel_tol=1e-9, abs_tol=1e-12):
                raise ModelError(f"projection {p.name!r}: delay {d} ms makes the path into {p.target!r} {arrive} ms "
                                 f"long, other paths {latency[p.target]} ms; NIR has no delays")  # fmt: skip
            latency[p.target] = arrive
            pending.remove(p)
    sends = set()
    for p in net.projections:
        d = _ep_delay(p)
        if p.source == p.target and not math.isclose(d, dt_s * MS_PER_S, rel_tol=1e-9):
            raise ModelError(f"projection {p.name!r}: recurrent delay {d} ms; NIR runs a loop with a delay of one time "
                             f"step, dt = {dt_s * MS_PER_S:g} ms (export with dt = the delay)")  # fmt: skip
        if p.name in nodes:
            raise SpecError(f"projection {p.name!r} has the name of a population; NIR nodes need distinct names")
        w = np.zeros((pops[p.target].size, pops[p.source].size))
        np.add.at(w, (np.asarray(p.targets, np.int64), np.asarray(p.sources, np.int64)), np.asarray(p.weights, float))
        nodes[p.name] = nir.Linear(weight=w, metadata={"nest_delay": float(_tidy(np.array([d / MS_PER_S]))[0])})
        edges += [(p.source, p.name), (p.name, p.target)]
        sends.add(p.source)
    sinks = [n for n, p in pops.items() if n not in sends and p.kind != "input"]
    for name in sinks:
        out = "output" if len(sinks) == 1 else f"output_{name}"
        if out in nodes:
            raise SpecError(f"a population or projection is named {out!r}, the name of the graph's output node")
        nodes[out] = nir.Output(output_type=np.array([pops[name].size]))
        edges.append((name, out))
    readouts = [n for n in sinks if pops[n].kind == "li"]
    metadata: dict[str, Any] = {"dt": dt_s, "source": GRAPH_SOURCE, "time_unit": "s", "potential_unit": "mV",
                                "trial_duration": float(_tidy(np.array([net.T / MS_PER_S]))[0])}  # fmt: skip
    if len(readouts) == 1:
        metadata["readout_delay"] = float(_tidy(np.array([latency.get(readouts[0], 0.0) / MS_PER_S]))[0])
    if loss is not None:
        metadata["readout"] = loss.mode
        if loss.mode == "sum_exp" and loss.tau_w is not None:
            metadata["tau_w"] = float(_tidy(np.array([loss.tau_w / MS_PER_S]))[0])
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)


def is_eventprop_graph(graph: Any) -> bool:
    """Whether ``graph`` imports as an EventProp network: it has a CubaLI node (a leaky integrator with an
    exponential current, which only nestgrad's EventProp readout has) or nestgrad wrote it from one."""
    nir = _nir()
    flat = _flatten(graph)
    models = [str((getattr(n, "metadata", None) or {}).get("nest_model", "")) for n in flat.nodes.values()]
    return any(isinstance(n, nir.CubaLI) for n in flat.nodes.values()) or any(
        m.startswith("eventprop_") for m in models
    )


def graph_to_eventprop(graph: Any, dt: float | None = None, T: float | None = None) -> EventpropGraph:
    """The EventProp network of ``graph`` (inverse of :func:`eventprop_to_graph`): CubaLIF -> ``lif``
    (``eventprop_iaf_psc_exp_ps``), CubaLI -> ``li`` (``eventprop_readout_ps``), the one Input -> ``input``,
    ``Linear`` (and zero-bias ``Affine``) -> a projection (one edge per nonzero weight, source-major), delay
    ``metadata["nest_delay"]`` of the Linear node or else one time step ``dt``. Parameters as the e-prop import
    (docs/nir.md): C_m from ``w_in``, E_L = v_leak, I_e = 0, t_ref = 0, adapt_beta = 0. ``T`` (ms; default the
    graph's ``trial_duration``) is the trial length. LIF and LI nodes (no synaptic current) have no EventProp model:
    import such graphs with :func:`graph_to_spec`."""
    from nestgrad.reference.eventprop import ReadoutCrossEntropy
    from nestgrad.reference.eventprop.network import Network, compile_network
    from nestgrad.reference.eventprop.network import Population as EpPopulation
    from nestgrad.reference.eventprop.network import Projection as EpProjection

    nir = _nir()
    dt_s = graph_dt(graph, dt)
    meta = dict(getattr(graph, "metadata", None) or {})
    flat = _flatten(graph)
    pops: dict[str, Any] = {}
    weights: dict[str, np.ndarray] = {}
    delays: dict[str, float] = {}
    for name, node in flat.nodes.items():
        if isinstance(node, nir.Input):
            if any(p.kind == "input" for p in pops.values()):
                raise SpecError(f"NIR node {name!r}: a second Input; nestgrad feeds one input population")
            pops[name] = EpPopulation(name, int(np.prod(np.asarray(next(iter(node.input_type.values()))))), "input")
        elif isinstance(node, nir.Output):
            continue
        elif isinstance(node, nir.Linear | nir.Affine):
            weights[name] = _linear_weight(name, node)
            d_s = (getattr(node, "metadata", None) or {}).get("nest_delay", dt_s)
            delays[name] = float(_tidy(np.array([float(np.asarray(d_s).reshape(-1)[0]) * MS_PER_S]))[0])
        elif isinstance(node, nir.CubaLIF | nir.CubaLI):
            n = int(np.asarray(node.v_leak).size)
            tau_syn, tau_mem = _array(node, "tau_syn", n, name), _array(node, "tau_mem", n, name)
            r, w_in = _array(node, "r", n, name), _array(node, "w_in", n, name)
            _positive(name, tau_syn=tau_syn, tau_mem=tau_mem, r=r, w_in=w_in)
            tau_syn_ms = _tidy(tau_syn * MS_PER_S)
            v_leak = _array(node, "v_leak", n, name)
            cols = {"C_m": _divisor(tau_syn_ms * _tidy(tau_mem / (r * dt_s)), w_in), "tau_m": _tidy(tau_mem * MS_PER_S),
                    "tau_syn": tau_syn_ms, "E_L": v_leak, "I_e": np.zeros(n)}  # fmt: skip
            kind = "li"
            if isinstance(node, nir.CubaLIF):
                v_th, v_reset = _array(node, "v_threshold", n, name), _array(node, "v_reset", n, name)
                if np.any(v_th <= v_reset):
                    raise ModelError(f"NIR node {name!r}: v_threshold must exceed v_reset (NEST's V_th > V_reset)")
                cols |= {"V_th": v_th, "V_reset": v_reset, "t_ref": np.zeros(n), "adapt_beta": np.zeros(n),
                         "adapt_tau": np.full(n, 100.0)}  # fmt: skip
                kind = "lif"
            params = {k: (float(v[0]) if np.all(v == v[0]) else v) for k, v in cols.items()}
            pops[name] = EpPopulation(name, n, kind, params)
        else:
            kind_name = type(node).__name__
            hint = ("no synaptic current: graph_to_spec imports it (e-prop)" if kind_name in ("LIF", "LI")
                    else "no EventProp model")  # fmt: skip
            raise ModelError(f"NIR node {name!r} of type {kind_name}: {hint}; an EventProp import takes Input, "
                             "Output, Linear, Affine (zero bias), CubaLIF, CubaLI")  # fmt: skip
    sources = {n: [a for a, b in flat.edges if b == n] for n in flat.nodes}
    targets = {n: [b for a, b in flat.edges if a == n] for n in flat.nodes}
    projs = []
    for name, w in weights.items():
        if len(sources[name]) != 1 or sources[name][0] not in pops:
            raise SpecError(f"NIR node {name!r}: a weight matrix needs exactly one neuron or Input node before it, "
                            f"found {sources[name]}")  # fmt: skip
        pre = sources[name][0]
        for post in targets[name]:
            if post not in pops or pops[post].kind == "input":
                raise SpecError(f"NIR edge {name!r} -> {post!r}: a weight matrix must feed a neuron node")
            shape = (pops[post].size, pops[pre].size)
            if w.shape != shape:
                raise SpecError(f"NIR weight {name!r}: shape {w.shape}, expected {shape} [post {post!r}, pre {pre!r}]")
            pre_idx, post_idx = np.nonzero(w.T)  # source-major, as the eventprop architecture orders edges
            projs.append(EpProjection(name if len(targets[name]) == 1 else f"{name}->{post}", pre, post, pre_idx,
                                      post_idx, w[post_idx, pre_idx], np.full(pre_idx.size, delays[name])))  # fmt: skip
    for a, b in flat.edges:
        if a in pops and b in pops:
            raise SpecError(f"NIR edge {a!r} -> {b!r}: neuron nodes joined without a weight matrix (add a Linear)")
    if T is None:
        if "trial_duration" not in meta:
            raise SpecError("the NIR graph has no metadata 'trial_duration' (s): give the trial length T in ms")
        T = float(_tidy(np.array([float(np.asarray(meta["trial_duration"]).reshape(-1)[0]) * MS_PER_S]))[0])
    # inputs, hidden, readouts (the reference engine numbers neurons in this order), projections by their ends
    order = sorted(pops, key=lambda n: ("input", "lif", "li").index(pops[n].kind))
    rank = {n: i for i, n in enumerate(order)}
    projs.sort(key=lambda p: (rank[p.source], rank[p.target]))
    net = Network(tuple(pops[n] for n in order), tuple(projs), float(T))
    compile_network(net)
    loss = None
    if "readout" in meta:
        mode = meta["readout"].decode() if isinstance(meta["readout"], bytes) else str(meta["readout"])
        tau_w = meta.get("tau_w")
        tau_w_ms = (
            None if tau_w is None else float(_tidy(np.array([float(np.asarray(tau_w).reshape(-1)[0]) * MS_PER_S]))[0])
        )
        readouts = [p.name for p in pops.values() if p.kind == "li"]
        if len(readouts) != 1:
            raise SpecError(f"NIR graph metadata 'readout' = {mode!r} needs one CubaLI population; found {readouts}")
        loss = ReadoutCrossEntropy(readouts[0], mode, tau_w_ms)
    return EventpropGraph(net, loss, dt_s)


# -- files -----------------------------------------------------------------------------------------------------------
def read_graph(path: str | os.PathLike) -> Any:
    """A NIR file (HDF5), or a SpecError naming the file."""
    nir = _nir()
    path = pathlib.Path(path)
    if not path.is_file():
        raise SpecError(f"NIR file {path} does not exist")
    try:
        return nir.read(path)
    except Exception as err:  # noqa: BLE001  (h5py and nir raise many kinds for foreign or damaged files)
        raise SpecError(f"NIR file {path} cannot be read: {type(err).__name__}: {err}") from None


def write_graph(graph: Any, path: str | os.PathLike) -> pathlib.Path:
    """Write ``graph`` to ``path`` (HDF5) through a temporary file in the same folder, so that a failure leaves no
    half-written graph; an unwritable folder raises OutputError."""
    nir = _nir()
    path = pathlib.Path(path)
    if path.is_dir():
        raise OutputError(f"{path} is a folder; give the NIR file's name")
    folder = path.parent if str(path.parent) else pathlib.Path(".")
    if not folder.is_dir():
        raise OutputError(f"folder {folder} of {path} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        nir.write(tmp, graph)
        os.replace(tmp, path)
    except OSError as err:
        raise OutputError(f"cannot write {path}: {err}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def graph_from_run(path: str | os.PathLike, dt: float | None = None) -> Any:
    """The NIR graph of a trained network: a run folder (its checkpoint.npz) or a checkpoint file. Builds the
    learner of the run's saved configuration and exports its network with the checkpoint's trained weights (their
    mean if the run averaged them, ``training.average_weights_last``): an e-prop
    network's NetworkSpec (:func:`spec_to_graph`, for NEST's time step; ``dt`` must be None or that step) or an
    EventProp network (:func:`eventprop_to_graph`, for the time step ``dt`` in s, default NEST's: EventProp's
    dynamics are exact in continuous time, so the graph may be written for the step of the tool that runs it)."""
    from nestgrad.config import ExperimentConfig
    from nestgrad.nest_engine import fresh_kernel
    from nestgrad.networks.registry import make_learner
    from nestgrad.training.checkpoint import CHECKPOINT_NAME, _read_archive, load_checkpoint

    path = pathlib.Path(path)
    checkpoint = path / CHECKPOINT_NAME if path.is_dir() else path
    meta, _ = _read_archive(checkpoint)
    if not isinstance(meta.get("config"), dict):
        raise SpecError(f"checkpoint {checkpoint}: field 'meta.config' is missing")
    config = ExperimentConfig.from_dict(meta["config"], source=f"{checkpoint} (saved configuration)")
    state = load_checkpoint(checkpoint, config)
    learner, _task = make_learner(config)
    resolution_s = config.task.resolution / MS_PER_S
    if dt is not None and not (math.isfinite(dt) and dt > 0):
        raise SpecError(f"NIR time step dt = {dt!r} s: a finite number > 0 is required")
    if config.network.architecture == "eventprop":
        net = learner.network(state.trained_weights, learner.trial_duration)  # type: ignore[attr-defined]
        return eventprop_to_graph(net, resolution_s if dt is None else dt, learner.loss())  # type: ignore[attr-defined]
    if not hasattr(learner, "network_spec"):
        raise ModelError(f"network.architecture = {config.network.architecture!r} has no network specification to "
                         "export")  # fmt: skip
    if dt is not None and not math.isclose(dt, resolution_s, rel_tol=1e-9):
        raise SpecError(f"NIR time step dt = {dt!r} s: an e-prop network's graph is written for NEST's time step, "
                        f"task.resolution = {config.task.resolution} ms (the dynamics of that step)")  # fmt: skip
    nest = fresh_kernel(config.task.resolution)
    learner.validate(nest)
    learner.prepare(nest)
    spec = learner.network_spec(state.trained_weights, 0, plastic=False)
    return spec_to_graph(spec, defaults=nest.GetDefaults)


def graph_dict(graph: Any) -> dict[str, Any]:
    """A plain comparable form of a graph: node types, parameters (arrays as float lists), metadata and edges."""

    def plain(v: Any) -> Any:
        if isinstance(v, bytes):
            return v.decode()
        if isinstance(v, np.ndarray | np.generic):
            return np.asarray(v).tolist()
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    nodes = {}
    for name, node in graph.nodes.items():
        d = node.to_dict()
        nodes[name] = {k: plain(v) for k, v in d.items()}
    return {"nodes": nodes, "edges": sorted(map(tuple, graph.edges)), "metadata": plain(dict(graph.metadata or {}))}


__all__ = [
    "EventpropGraph",
    "eventprop_to_graph",
    "graph_dict",
    "graph_dt",
    "graph_from_run",
    "graph_to_eventprop",
    "graph_to_spec",
    "is_eventprop_graph",
    "read_graph",
    "spec_to_graph",
    "write_graph",
]

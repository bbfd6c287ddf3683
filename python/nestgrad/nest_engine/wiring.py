"""The one NEST wiring function: build any :class:`~nestgrad.spec.NetworkSpec` in the current kernel, and read its
plastic weights and optimizer state back in the spec's edge order.

Order. Populations are created in the spec's order; right before the input population its spike generators, right
after the readout population its target and learning-window generators. Projections are connected in the spec's
order, each with vectorised ``nest.Connect`` calls (``one_to_one`` with arrays) per group of edges that share a
synapse model (static, e-prop, or a Dale's-law copy of it) and, within a group, in edge order. Static edges use
``Projection.static_synapse`` (default ``static_synapse``) with ``Projection.synapse_params`` in every call. The
data devices (rates into the readouts, multimeter, spike recorder) come last. The same spec therefore gives the
same node ids and connection order, whatever builder emitted it.

Learning. A projection's plastic edges use ``Projection.synapse_model``; its optimizer defaults (the spec's
optimizer, ``learning_rate`` if set, eta = 0 with ``learning=False``) are set right before its edges are connected;
with Dale's law (``Projection.nonneg``) each sign gets a bounded copy of the model (``<model>_nonneg``,
``<model>_neg``). ``plastic=False`` builds the static twin (every edge static, same delays as given; the e-prop
edges become ``static_synapse``; learning-signal projections are connected if the spec has them).

Drawn projections (:class:`~nestgrad.spec.DrawnProjection`, e.g. the microcircuit's static circuit) are connected
chunk by chunk as they are drawn, so their edges are never all in memory; every rank draws every chunk and NEST
keeps the connections whose targets are local, so the network does not depend on the split of virtual processes.
Per-neuron parameter arrays (``Population.per_neuron``) are set right after a population is created.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nestgrad.errors import SpecError
from nestgrad.nest_engine import (
    INLINE_OPTIMIZER_SYNAPSES,
    LEARNING_SIGNAL_CONNECTION,
    SIGNS,
    STATIC_SYNAPSE,
    connections,
    set_plastic_defaults,
    signed_model,
)
from nestgrad.nest_engine import devices as dev
from nestgrad.spec import DrawnProjection, NetworkSpec, Projection, Role, SynapseKind


@dataclass
class BuiltNetwork:
    """Handles of a spec built in NEST."""

    spec: NetworkSpec
    nodes: dict[str, Any]  # population -> NodeCollection
    ids: dict[str, np.ndarray]  # population -> global ids in population order
    devices: dev.DataDevices | None
    # projection -> [(edge indices, synapse model, is one of nestgrad's synapses: keeps Adam's state as adam_m,
    # adam_v, adam_beta_1_power, adam_beta_2_power)] of its plastic groups
    plastic_groups: dict[str, list[tuple[np.ndarray, str, bool]]] = field(default_factory=dict)
    # (projection, model) -> this rank's connections and the edge of each, found once per build (NEST keeps the
    # order of connections while none are added)
    _found: dict[tuple[str, str], tuple[FoundConnections, np.ndarray]] = field(default_factory=dict)
    # plastic synapse model -> (projection, learning rate) that set its defaults (NEST keeps one setting per model)
    _model_rates: dict[str, tuple[str, float | None]] = field(default_factory=dict)


def build(nest: Any, spec: NetworkSpec, *, plastic: bool = True, learning: bool = True) -> BuiltNetwork:
    """Create ``spec`` in the current kernel (see the module docstring for order and learning options)."""
    spec.validate()
    step = spec.resolution
    if not np.isclose(nest.resolution, step):
        raise SpecError(f"the spec is for a resolution of {step} ms, the NEST kernel runs at {nest.resolution} ms")
    nodes: dict[str, Any] = {}
    gen_in = gen_target = gen_window = None
    for pop in spec.populations.values():
        if pop.role == Role.INPUT:
            gen_in, nodes[pop.name] = dev.create_input_nodes(nest, pop.size)
            continue
        params = pop.params
        nodes[pop.name] = nest.Create(pop.model, pop.size, params if params else None)
        if pop.per_neuron:  # one small dictionary per neuron: NEST's form that also works under MPI
            columns = {k: np.asarray(v, float).tolist() for k, v in pop.per_neuron.items()}
            nodes[pop.name].set([{k: v[j] for k, v in columns.items()} for j in range(pop.size)])
        if pop.role == Role.READOUT:
            gen_target, gen_window = dev.create_target_nodes(nest, pop.size)
    ids = {name: _global_ids(nc) for name, nc in nodes.items()}
    input_pop = spec.population_with_role(Role.INPUT)
    if input_pop is not None:
        dev.connect_inputs(nest, gen_in, nodes[input_pop.name], step)

    built = BuiltNetwork(spec, nodes, ids, None)
    for name, proj in spec.projections.items():
        _connect(nest, spec, name, proj, built, plastic, learning)

    readout_pop = spec.population_with_role(Role.READOUT)
    if readout_pop is not None:
        recorded = np.zeros(0, np.int64)
        if spec.recorded is not None:
            pop, idx = spec.recorded
            recorded = ids[pop][np.asarray(idx, np.int64)]
        built.devices = dev.connect_data_devices(
            nest,
            gen_in,
            nodes[input_pop.name] if input_pop is not None else None,
            gen_target,
            gen_window,
            nodes[readout_pop.name],
            recorded,
            step,
        )
    return built


def _global_ids(nc: Any) -> np.ndarray:
    """Global ids of a NodeCollection; nest.Create makes contiguous ones, for which an arange is exact and much
    faster than NodeCollection.tolist() (1.3 s for the full V1 column)."""
    first, last = nc[0].global_id, nc[-1].global_id
    if last - first + 1 == len(nc):
        return np.arange(first, last + 1, dtype=np.int64)
    return np.asarray(nc.tolist(), dtype=np.int64)


def _connect(
    nest: Any,
    spec: NetworkSpec,
    name: str,
    proj: Projection | DrawnProjection,
    built: BuiltNetwork,
    plastic: bool,
    learning: bool,
) -> None:
    if isinstance(proj, DrawnProjection):
        _connect_drawn(nest, built, proj)
        return
    if proj.kind == SynapseKind.LEARNING_SIGNAL:  # the builder leaves these out of a static twin if it wants
        if proj.size:
            _connect_edges(nest, built, proj, np.ones(proj.size, bool), LEARNING_SIGNAL_CONNECTION)
        return
    learns = proj.plastic_mask() & plastic
    groups: list[tuple[np.ndarray, str]] = [(~learns, STATIC_SYNAPSE)]
    if proj.static_synapse != STATIC_SYNAPSE or proj.synapse_params:
        # the static edges get their own model (and parameters); e-prop edges of a static twin stay static_synapse
        twin = proj.plastic_mask() & ~learns
        groups = [(~proj.plastic_mask(), proj.static_synapse), (twin, STATIC_SYNAPSE)]
    plastic_groups: list[tuple[np.ndarray, str]] = []
    if learns.any():
        signed = proj.nonneg is not None
        eta = 0.0 if not learning else proj.learning_rate
        first, rate = built._model_rates.setdefault(proj.synapse_model, (name, eta))
        if rate != eta:  # NEST has one optimizer setting per synapse model: both would learn at the last rate
            raise SpecError(
                f"projections {first!r} and {name!r} share the plastic synapse model {proj.synapse_model!r} with "
                f"different learning rates ({rate} and {eta}); give one of them another synapse model"
            )
        set_plastic_defaults(nest, proj.synapse_model, spec.optimizer, sign_constrained=signed, eta=eta)
        if signed:
            nonneg = np.asarray(proj.nonneg, bool)
            for sign, side in zip(SIGNS, (nonneg, ~nonneg), strict=True):
                plastic_groups.append((learns & side, signed_model(proj.synapse_model, sign)))
        else:
            plastic_groups.append((learns, proj.synapse_model))
    groups += plastic_groups
    inline = proj.synapse_model in INLINE_OPTIMIZER_SYNAPSES
    built.plastic_groups[name] = [(np.flatnonzero(sel), m, inline) for sel, m in plastic_groups if sel.any()]
    for k, (sel, model) in enumerate(groups):
        if sel.any():
            extra = proj.synapse_params if k == 0 and model == proj.static_synapse else None
            _connect_edges(nest, built, proj, sel, model, extra)


# edges per nest.Connect call: bounds the temporary arrays (global ids, weights, delays) of large projections
CONNECT_CHUNK = 1 << 18


def _connect_edges(
    nest: Any, built: BuiltNetwork, proj: Projection, sel: np.ndarray, model: str, extra: dict[str, Any] | None = None
) -> None:
    """Connect the edges ``sel`` (bool mask) of ``proj`` with ``model`` (and the synapse parameters ``extra``), in
    edge order, in chunks."""
    edges = np.flatnonzero(sel) if not sel.all() else None
    count = proj.size if edges is None else edges.size
    receptors = None if proj.receptors is None else np.asarray(proj.receptors)
    for start in range(0, count, CONNECT_CHUNK):
        part = slice(start, start + CONNECT_CHUNK) if edges is None else edges[start : start + CONNECT_CHUNK]
        syn = {
            **(extra or {}),
            "synapse_model": model,
            "weight": np.asarray(proj.weights, float)[part],
            "delay": np.asarray(proj.delays, float)[part],
        }
        if receptors is not None:
            syn["receptor_type"] = receptors[part]
        pre = built.ids[proj.source][np.asarray(proj.sources)[part]]
        post = built.ids[proj.target][np.asarray(proj.targets)[part]]
        nest.Connect(pre, post, "one_to_one", syn)


def _connect_drawn(nest: Any, built: BuiltNetwork, proj: DrawnProjection) -> None:
    """Static edges of a drawn projection, one ``nest.Connect`` per chunk as it is drawn (edge order)."""
    pre_ids, post_ids = built.ids[proj.source], built.ids[proj.target]
    for chunk in proj.chunks():
        syn = {"synapse_model": STATIC_SYNAPSE, "weight": chunk.weights, "delay": chunk.delays}
        if proj.receptor is not None:
            syn["receptor_type"] = np.full(chunk.sources.size, proj.receptor, np.int64)
        nest.Connect(_ids_of(pre_ids, chunk.sources), _ids_of(post_ids, chunk.targets), "one_to_one", syn)


def _ids_of(ids: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``ids[index]``, in place of ``index`` (an offset where the ids are contiguous, as nest.Create makes them)."""
    if ids.size and ids[-1] - ids[0] + 1 == ids.size:
        index += ids[0]
        return index
    return ids[index]


# -- reading back ------------------------------------------------------------------------------------------------------
# NEST 3.10's source and target filters of GetConnections grow slower with every kernel with devices that a process
# has made (per requested node, a pass over every device it ever created: 0.009 -> 0.056 s for 600 sources after 120
# small kernels), which a long-lived process (a Trainer's many blocks, v1_control.py over seeds, a test session)
# pays at every build; the query by synapse model alone does not slow. A projection's connections are therefore
# found among its model's and held as the contiguous runs (slices, PyNEST's public indexing) they form there: NEST
# keeps a thread's connections of one model sorted by source, so projections that share a model but not a source
# population form one run per thread. Where they interleave (a shared source population: more than MAX_RUNS runs,
# e.g. the classic network's rec_rec and rec_out on eprop_synapse), each read or write passes over all the model's
# connections once for all its interleaved projections asked for together (read_projections, write_adam_state),
# and a write sets the other projections' values back unchanged.
MAX_RUNS = 64


@dataclass
class FoundConnections:
    """This rank's connections of one projection and model: runs of PyNEST SynapseCollections (in their order), or
    with ``among`` one collection (all the model's connections) of which the projection's are those marked True."""

    runs: list[Any]
    among: np.ndarray | None = None

    def get(self, keys: list[str]) -> dict[str, np.ndarray]:
        """``keys`` of this projection's connections, one array per key in connection order (masked: one pass over
        all the model's connections; :func:`_connections` reads several masked projections in one)."""
        if self.among is not None:
            return {k: v[self.among] for k, v in connections.read(self.runs[0], keys).items()}
        parts = [connections.read(run, keys) for run in self.runs]
        return {k: np.concatenate([p[k] for p in parts]) for k in keys} if parts else {}

    def set(self, values: dict[str, np.ndarray]) -> None:
        """Set one array of values per key on this projection's connections, in connection order (masked: a
        read-modify-write of all the model's connections that writes the other projections' values back unchanged;
        :func:`write_adam_state` writes several masked projections in one)."""
        if self.among is not None:
            _write_masked(self.runs[0], [(self.among, values)])
            return
        start = 0
        for run in self.runs:
            stop = start + len(run)
            connections.write(run, {k: np.asarray(v)[start:stop] for k, v in values.items()})
            start = stop


def _write_masked(whole: Any, masked: list[tuple[np.ndarray, dict[str, np.ndarray]]]) -> None:
    """Set values on the connections of ``whole`` (all of a model's) that masks pick out, (mask, values per key) per
    projection, in one read-modify-write that writes every other connection's values back unchanged."""
    current = connections.read(whole, sorted({k for _, values in masked for k in values}))
    for among, values in masked:
        for k, value in values.items():
            current[k][among] = value
    connections.write(whole, current)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of the runs of True in ``mask``."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.view(np.int8), [0]))))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def _member(ids: np.ndarray, of: np.ndarray) -> np.ndarray:
    """Whether each of ``ids`` is one of ``of`` (a range test where ``of`` is contiguous, as nest.Create makes)."""
    if of.size and of[-1] - of[0] + 1 == of.size:
        return (ids >= of[0]) & (ids <= of[-1])
    return np.isin(ids, of)


def _find_model(built: BuiltNetwork, nest: Any, model: str, keys: list[str]) -> dict[str, dict[str, np.ndarray]]:
    """Find, once per build, this rank's connections of every projection with plastic edges of ``model``, in one
    pass over the model's connections that also reads ``keys``: each projection's values of ``keys``, in the order
    of its connections (the pass over NEST's status dictionaries costs the same for any number of keys)."""
    everything = nest.GetConnections(synapse_model=model)
    d = connections.read(everything, ["source", "target", *keys])
    src, tgt = d["source"].astype(np.int64), d["target"].astype(np.int64)
    out = {}
    for name, groups in built.plastic_groups.items():
        for edges, group_model, _ in groups:
            if group_model != model:
                continue
            proj = built.spec.projections[name]
            mine = _member(src, built.ids[proj.source]) & _member(tgt, built.ids[proj.target])
            runs = _runs(mine)
            if mine.all():
                found = FoundConnections([everything] if len(everything) else [])
            elif len(runs) > MAX_RUNS:
                found = FoundConnections([everything], mine)
            else:
                found = FoundConnections([everything[a:b] for a, b in runs])
            built._found[(name, model)] = (found, _edge_rows(built, name, edges, model, src[mine], tgt[mine]))
            out[name] = {k: d[k][mine] for k in keys}
    return out


def _edge_rows(
    built: BuiltNetwork, name: str, edges: np.ndarray, model: str, src: np.ndarray, tgt: np.ndarray
) -> np.ndarray:
    """The edge (index into projection ``name``'s arrays) that each connection ``src`` -> ``tgt`` (global ids) is;
    every connection must be one of ``edges`` (checked)."""
    proj = built.spec.projections[name]
    width = int(built.ids[proj.target].max()) + 1
    pre = built.ids[proj.source][np.asarray(proj.sources, np.int64)[edges]]
    post = built.ids[proj.target][np.asarray(proj.targets, np.int64)[edges]]
    wanted = pre * width + post
    order = np.argsort(wanted, kind="stable")
    sorted_keys = wanted[order]
    if sorted_keys.size > 1 and np.any(sorted_keys[1:] == sorted_keys[:-1]):
        raise SpecError("two plastic edges of one projection join the same two neurons: they cannot be told apart")
    if not src.size:
        return np.zeros(0, np.int64)
    got = src * width + tgt
    pos = np.minimum(np.searchsorted(sorted_keys, got), sorted_keys.size - 1)
    if not np.all(sorted_keys[pos] == got):
        raise SpecError(f"projection {name!r}: NEST holds {model} connections that are not its edges")
    return edges[order[pos]]


def _connections(
    built: BuiltNetwork, nest: Any, names: list[str], model: str, keys: list[str]
) -> dict[str, tuple[FoundConnections, np.ndarray, dict[str, np.ndarray]]]:
    """For each projection of ``names`` (each with plastic edges of ``model``): this rank's connections of
    ``model``, the edge each one is (index into the projection's arrays) and their values ``keys``. The first call
    after a build finds every projection of the model at once, and checks them all (see MAX_RUNS); later ones read
    each projection's runs, and the interleaved projections of ``names`` in one pass over the model."""
    fresh = {}
    if any((name, model) not in built._found for name in names):
        fresh = _find_model(built, nest, model, keys)
    out = {}
    whole: dict[str, np.ndarray] | None = None
    for name in names:
        conns, rows = built._found[(name, model)]
        if name in fresh:
            values = fresh[name]
        elif not (rows.size and keys):
            values = {}
        elif conns.among is not None:  # every interleaved projection of the model holds the same collection
            whole = connections.read(conns.runs[0], keys) if whole is None else whole
            values = {k: v[conns.among] for k, v in whole.items()}
        else:
            values = conns.get(keys)
        out[name] = (conns, rows, values)
    return out


# Adam's per-edge state as read_plastic names it -> the status key of nestgrad's synapses (NEST's eprop_synapse keeps
# only m and v, in its "optimizer" dictionary, and no bias-correction powers)
INLINE_KEYS = {"m": "adam_m", "v": "adam_v", "b1": "adam_beta_1_power", "b2": "adam_beta_2_power"}
POWERS = ("b1", "b2")


def keeps_adam_powers(built: BuiltNetwork, name: str) -> bool:
    """Whether projection ``name``'s plastic edges keep Adam's bias-correction powers beta_1^t, beta_2^t per edge
    (nestgrad's synapses: ``adam_beta_1_power``, ``adam_beta_2_power``) so that a new kernel can continue them;
    NEST's ``eprop_synapse`` does not expose them and restarts at t = 0 in every kernel."""
    groups = built.plastic_groups.get(name, [])
    return bool(groups) and all(inline for _, _, inline in groups)


def read_plastic(built: BuiltNetwork, nest: Any, name: str, keys: tuple[str, ...], comm: Any) -> dict[str, np.ndarray]:
    """Values of projection ``name``'s edges in edge order, gathered over ranks: ``"weight"`` (static edges keep the
    spec's weight), Adam's moments ``"m"``, ``"v"`` (0 for static edges) and, for nestgrad's synapses only
    (:func:`keeps_adam_powers`), Adam's bias-correction powers ``"b1"``, ``"b2"`` (beta^t; 1 for static edges).
    The first read after a build finds and checks every projection of the same synapse models: an error may name
    another projection."""
    return read_projections(built, nest, [name], keys, comm)[name]


def read_projections(
    built: BuiltNetwork, nest: Any, names: list[str], keys: tuple[str, ...], comm: Any
) -> dict[str, dict[str, np.ndarray]]:
    """:func:`read_plastic` for several projections at once: projections that share a synapse model are read in
    one pass over NEST's connections where one at a time would take one each (right after a build)."""
    held = {name: {k: np.zeros(built.spec.projections[name].size) for k in keys} for name in names}
    plastic = {name: np.zeros(built.spec.projections[name].size, bool) for name in names}
    by_model: dict[str, list[tuple[str, np.ndarray, bool]]] = {}
    for name in names:
        for edges, model, inline in built.plastic_groups.get(name, []):
            if not inline and any(k in POWERS for k in keys):
                raise SpecError(f"projection {name!r}: {model} keeps no Adam bias-correction powers (b1, b2) to read")
            plastic[name][edges] = True
            by_model.setdefault(model, []).append((name, edges, inline))
    for model, groups in by_model.items():
        inline = groups[0][2]  # a property of the model
        wanted = [k if k == "weight" else (INLINE_KEYS[k] if inline else "optimizer") for k in keys]
        found = _connections(built, nest, [name for name, _, _ in groups], model, sorted(set(wanted)))
        for name, (_, rows, d) in found.items():
            if rows.size == 0:
                continue
            for k, key in zip(keys, wanted, strict=True):
                if key == "optimizer":
                    held[name][k][rows] = np.array([o[k] for o in d["optimizer"]], float)
                else:
                    held[name][k][rows] = np.asarray(d[key], float)
    out: dict[str, dict[str, np.ndarray]] = {}
    for name in names:
        proj = built.spec.projections[name]
        out[name] = {}
        for k, v in held[name].items():
            total = comm.sum(v)  # each synapse lives on one rank
            if k == "weight":
                total = np.where(plastic[name], total, np.asarray(proj.weights, float))
            elif k in POWERS:
                total = np.where(plastic[name], total, 1.0)  # beta^0: no step taken
            out[name][k] = total
    return out


def write_adam_moments(
    built: BuiltNetwork,
    nest: Any,
    name: str,
    m: np.ndarray,
    v: np.ndarray,
    powers: tuple[np.ndarray, np.ndarray] | None = None,
) -> None:
    """Give projection ``name``'s plastic edges Adam's moments ``m``, ``v`` (edge order), on the rank holding each,
    and with ``powers`` = (beta_1^t, beta_2^t) per edge also the bias-correction powers, so that Adam continues at
    step t instead of restarting at t = 0 (only nestgrad's synapses keep them: :func:`keeps_adam_powers`)."""
    write_adam_state(built, nest, {name: (m, v, powers)})


def write_adam_state(
    built: BuiltNetwork,
    nest: Any,
    state: dict[str, tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray] | None]],
) -> None:
    """:func:`write_adam_moments` for several projections at once (projection -> (m, v, powers or None)): the
    interleaved projections of one synapse model are written in one pass over the model's connections."""
    for name, (_, _, powers) in state.items():
        if powers is not None and not keeps_adam_powers(built, name):
            raise SpecError(f"projection {name!r}: its synapse model keeps no Adam bias-correction powers to write")
    by_model: dict[str, tuple[bool, list[str]]] = {}
    for name in state:
        for _, model, inline in built.plastic_groups.get(name, []):
            by_model.setdefault(model, (inline, []))[1].append(name)
    for model, (inline, names) in by_model.items():
        masked: list[tuple[np.ndarray, dict[str, np.ndarray]]] = []  # interleaved projections: (mask, values)
        whole = None  # their common collection: all the model's connections
        for name, (conns, rows, _) in _connections(built, nest, names, model, []).items():
            if rows.size == 0:
                continue
            values = _adam_values(rows, *state[name], inline)
            if conns.among is None:
                conns.set(values)
            else:
                masked.append((conns.among, values))
                whole = conns.runs[0]
        if masked:
            _write_masked(whole, masked)


def _adam_values(
    rows: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    powers: tuple[np.ndarray, np.ndarray] | None,
    inline: bool,
) -> dict[str, np.ndarray]:
    """The status values that give the connections of edges ``rows`` Adam's state (``inline``: nestgrad's synapse
    keys; else NEST's eprop_synapse, whose ``optimizer`` is a dictionary per connection)."""
    if not inline:
        optimizer = np.empty(rows.size, object)
        optimizer[:] = [{"m": float(a), "v": float(b)} for a, b in zip(m[rows], v[rows], strict=True)]
        return {"optimizer": optimizer}
    values = {"adam_m": m[rows], "adam_v": v[rows]}
    if powers is not None:
        values |= {"adam_beta_1_power": powers[0][rows], "adam_beta_2_power": powers[1][rows]}
    return values

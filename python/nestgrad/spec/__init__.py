"""One description of a network, data only: what every builder emits and every engine consumes.

A :class:`NetworkSpec` lists

* **populations** (:class:`Population`): a NEST model, a size, parameters as scalars or per-neuron values, optional
  positions; one of them may be the *input* population (parrots fed with the task's spikes) and one the *readout*
  population (``eprop_readout`` neurons fed with targets and the learning window);
* **projections** (:class:`Projection`) as edge lists: source and target indices into their populations, weight
  (pA), delay (ms), receptor port, which edges are plastic (e-prop) and, for Dale's law, the sign each plastic edge
  keeps; learning-signal routes (readout -> neuron feedback) are projections of kind
  :attr:`SynapseKind.LEARNING_SIGNAL`; a Poisson background is a population of ``poisson_generator``\\ s with a
  static projection;
* the **optimizer** settings of the plastic synapses (NEST's dictionary), and which neurons' spikes are recorded.

A static projection too large to hold as arrays (the full microcircuit's ~3e8 synapses) is a
:class:`DrawnProjection`: a recipe of random-rule blocks (:class:`FixedTotalNumber`: pairs drawn with replacement,
truncated-normal weights and delays, delays on the resolution grid) and their seeds. Its edges are drawn with NumPy
on demand, chunk by chunk (:meth:`DrawnProjection.chunks`), identically on every rank and for every number of
threads; :meth:`NetworkSpec.materialized` turns every such projection into an ordinary :class:`Projection` (for the
reference engine, at small scale).

Populations are created and projections connected in the order they were added, which keeps node ids and
connection order (and so NEST's summation order) the same for the same spec. The NEST engine builds any spec
(:func:`nestgrad.nest_engine.wiring.build`); weights and optimizer state are read back per projection in the
spec's edge order, which does not depend on how NEST distributes synapses over threads and ranks.

This package imports NumPy and nestgrad's errors only.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nestgrad.errors import SpecError


class SynapseKind(enum.StrEnum):
    """What an edge of a projection is: ``static`` or ``eprop`` (per edge, by ``Projection.plastic``), or a
    learning-signal route from a readout to a neuron (``learning_signal``, NEST's
    ``eprop_learning_signal_connection``)."""

    SPIKE = "spike"  # static and/or e-prop synapses (Projection.plastic says which)
    LEARNING_SIGNAL = "learning_signal"


class Role(enum.StrEnum):
    NEURONS = "neurons"
    INPUT = "input"  # parrot neurons that receive the task's input spikes from spike generators
    READOUT = "readout"  # eprop_readout neurons that receive the task's targets and learning window
    DEVICE = "device"  # stimulating devices (e.g. poisson_generator), no state to train


@dataclass
class Population:
    name: str
    model: str
    size: int
    params: dict[str, Any] | list[dict[str, Any]] = field(default_factory=dict)  # one dict, or one per neuron
    role: Role = Role.NEURONS
    positions: np.ndarray | None = None  # [size, 3] um, optional
    # per-neuron values of scalar parameters (arrays of shape (size,)), set on top of ``params``: compact where one
    # dictionary per neuron would be large (the full microcircuit's initial membrane potentials)
    per_neuron: dict[str, np.ndarray] = field(default_factory=dict)

    def neuron_params(self) -> dict[str, Any] | list[dict[str, Any]]:
        """``params`` with ``per_neuron`` folded in: ``params`` itself without per-neuron values, else one dictionary
        per neuron."""
        if not self.per_neuron:
            return self.params
        base = self.params if isinstance(self.params, list) else [self.params] * self.size
        columns = {k: np.asarray(v).tolist() for k, v in self.per_neuron.items()}
        return [dict(p) | {k: v[j] for k, v in columns.items()} for j, p in enumerate(base)]

    def validate(self) -> None:
        if not isinstance(self.size, int | np.integer) or self.size < 1:
            raise SpecError(f"population {self.name!r}: size = {self.size!r}, an integer >= 1 is required")
        if isinstance(self.params, list) and len(self.params) != self.size:
            raise SpecError(
                f"population {self.name!r}: {len(self.params)} per-neuron parameter sets for {self.size} neurons"
            )
        if self.positions is not None and np.shape(self.positions) != (self.size, 3):
            raise SpecError(f"population {self.name!r}: positions of shape {np.shape(self.positions)}, expected "
                            f"({self.size}, 3)")  # fmt: skip
        for key, value in self.per_neuron.items():
            if np.shape(value) != (self.size,):
                raise SpecError(f"population {self.name!r}: per_neuron[{key!r}] has shape {np.shape(value)}, "
                                f"expected ({self.size},)")  # fmt: skip
            if not np.all(np.isfinite(np.asarray(value, float))):
                raise SpecError(f"population {self.name!r}: per_neuron[{key!r}] contains NaN or infinite values")


@dataclass
class Projection:
    """Edges from ``source`` to ``target`` (population names); arrays have one entry per edge."""

    source: str
    target: str
    sources: np.ndarray  # int, index into the source population
    targets: np.ndarray  # int, index into the target population
    weights: np.ndarray  # float, pA (NEST's weight)
    delays: np.ndarray  # float, ms
    receptors: np.ndarray | None = None  # int receptor port per edge (None: NEST's default port)
    plastic: np.ndarray | None = None  # bool per edge: e-prop synapse (else static); None: none plastic
    nonneg: np.ndarray | None = None  # bool per edge: Dale's law keeps the plastic weight >= 0 (False: <= 0)
    synapse_model: str = "eprop_synapse"  # NEST model of the plastic edges
    learning_rate: float | None = None  # overrides the optimizer's eta for this projection's plastic edges
    kind: SynapseKind = SynapseKind.SPIKE
    static_synapse: str = "static_synapse"  # NEST model of the edges that are not plastic (e.g. tsodyks2_synapse)
    # further NEST synapse parameters of the static edges, the same for all of them (e.g. U, tau_rec, tau_fac of
    # tsodyks2_synapse); weight, delay and receptor come from the edge arrays
    synapse_params: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return int(np.size(self.sources))

    def plastic_mask(self) -> np.ndarray:
        return np.zeros(self.size, bool) if self.plastic is None else np.asarray(self.plastic, bool)


@dataclass(frozen=True)
class TruncatedNormal:
    """A normal distribution (``mean``, ``sd``) whose values outside ``[low, high]`` are drawn again (NEST's
    ``nest.math.redraw``); units those of the quantity (pA, ms)."""

    mean: float
    sd: float
    low: float = -np.inf
    high: float = np.inf

    def validate(self, where: str) -> None:
        if not (np.isfinite(self.mean) and np.isfinite(self.sd) and self.sd >= 0 and self.low <= self.high):
            raise SpecError(f"{where}: mean {self.mean}, sd {self.sd}, bounds [{self.low}, {self.high}]: a finite "
                            "mean, an sd >= 0 and low <= high are required")  # fmt: skip
        if self.low > self.mean + 5 * self.sd or self.high < self.mean - 5 * self.sd:
            raise SpecError(f"{where}: [{self.low}, {self.high}] lies beyond 5 sd of the mean {self.mean}: redrawing "
                            "would hardly ever end")  # fmt: skip

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        values = rng.normal(self.mean, self.sd, n)
        bad = np.flatnonzero((values < self.low) | (values > self.high))
        while bad.size:  # redraw only the values outside the bounds, in order
            values[bad] = rng.normal(self.mean, self.sd, bad.size)
            bad = bad[(values[bad] < self.low) | (values[bad] > self.high)]
        return values


@dataclass(frozen=True)
class FixedTotalNumber:
    """``n`` edges whose sources and targets are drawn uniformly and independently (with replacement: multapses and
    autapses allowed, NEST's ``fixed_total_number`` rule) from the index ranges ``sources`` and ``targets``
    (``[start, stop)`` into the projection's populations); weights and delays drawn from their distributions,
    delays rounded to the resolution grid as NEST rounds them (to the nearest step). ``seed`` seeds NumPy's
    generator, together with the chunk's number."""

    n: int
    sources: tuple[int, int]
    targets: tuple[int, int]
    weight: TruncatedNormal
    delay: TruncatedNormal
    seed: tuple[int, ...]


@dataclass
class EdgeChunk:
    sources: np.ndarray  # int64, index into the source population
    targets: np.ndarray
    weights: np.ndarray  # pA
    delays: np.ndarray  # ms, multiples of the resolution


@dataclass
class DrawnProjection:
    """Static edges from ``source`` to ``target`` drawn on demand: the blocks in order, each in chunks of
    ``chunk_size`` edges (the last one smaller); chunk ``i`` of a block is drawn from
    ``numpy.random.default_rng([*block.seed, i])`` (sources, targets, weights, delays, in this order), so any chunk
    can be drawn alone and every rank draws the same edges. The edge order is that of :meth:`chunks`."""

    source: str
    target: str
    blocks: tuple[FixedTotalNumber, ...]
    resolution: float  # ms, the grid of the delays
    chunk_size: int = 1 << 20
    receptor: int | None = None  # one receptor port for every edge (None: NEST's default)
    kind: SynapseKind = SynapseKind.SPIKE

    @property
    def size(self) -> int:
        return int(sum(b.n for b in self.blocks))

    def plastic_mask(self) -> np.ndarray:
        return np.zeros(self.size, bool)

    def chunks(self) -> Iterator[EdgeChunk]:
        for block in self.blocks:
            for i, start in enumerate(range(0, block.n, self.chunk_size)):
                yield self._draw(block, i, min(self.chunk_size, block.n - start))

    def _draw(self, block: FixedTotalNumber, i: int, n: int) -> EdgeChunk:
        rng = np.random.default_rng([*block.seed, i])
        src = rng.integers(block.sources[0], block.sources[1], n, dtype=np.int64)
        tgt = rng.integers(block.targets[0], block.targets[1], n, dtype=np.int64)
        w = block.weight.draw(rng, n)
        d = block.delay.draw(rng, n)  # in place: rounded to the nearest step as NEST does (ld_round(ms * steps/ms))
        d /= self.resolution
        d += 0.5
        np.floor(d, out=d)
        np.maximum(d, 1.0, out=d)
        d *= self.resolution
        return EdgeChunk(src, tgt, w, d)

    def materialize(self) -> Projection:
        """The edges as an ordinary :class:`Projection` (all of them in memory)."""
        parts = list(self.chunks())

        def cat(key: str, dtype: Any) -> np.ndarray:
            return np.concatenate([getattr(c, key) for c in parts]) if parts else np.zeros(0, dtype)

        n = self.size
        receptors = None if self.receptor is None else np.full(n, self.receptor, np.int64)
        return Projection(self.source, self.target, cat("sources", np.int64), cat("targets", np.int64),
                          cat("weights", float), cat("delays", float), receptors, kind=self.kind)  # fmt: skip

    def validate(self, where: str, populations: dict[str, Population], resolution: float) -> None:
        if self.kind != SynapseKind.SPIKE:
            raise SpecError(f"{where}: drawn projections are static spike projections, not {self.kind.value!r}")
        if not np.isclose(self.resolution, resolution):
            raise SpecError(f"{where}: delays on a grid of {self.resolution} ms, the spec's resolution is "
                            f"{resolution} ms")  # fmt: skip
        if not (isinstance(self.chunk_size, int | np.integer) and self.chunk_size >= 1):
            raise SpecError(f"{where}: chunk_size = {self.chunk_size!r}, an integer >= 1 is required")
        for k, b in enumerate(self.blocks):
            at = f"{where}, block {k}"
            if not (isinstance(b.n, int | np.integer) and b.n >= 0):
                raise SpecError(f"{at}: n = {b.n!r}, an integer >= 0 is required")
            for end, (lo, hi) in (("sources", b.sources), ("targets", b.targets)):
                pop = self.source if end == "sources" else self.target
                size = populations[pop].size
                if not 0 <= lo < hi <= size:
                    raise SpecError(f"{at}: {end} range [{lo}, {hi}) is not a non-empty range in [0, {size}) "
                                    f"(population {pop!r})")  # fmt: skip
            b.weight.validate(f"{at}, weight")
            b.delay.validate(f"{at}, delay")
            if b.delay.low < resolution * (1 - 1e-12):
                raise SpecError(f"{at}: delays may be drawn below the resolution ({b.delay.low} < {resolution} ms); "
                                "set delay.low to the resolution")  # fmt: skip


@dataclass
class NetworkSpec:
    resolution: float  # ms
    populations: dict[str, Population] = field(default_factory=dict)
    projections: dict[str, Projection | DrawnProjection] = field(default_factory=dict)
    optimizer: dict[str, Any] = field(default_factory=dict)  # NEST's optimizer dictionary of the plastic synapses
    recorded: tuple[str, np.ndarray] | None = None  # (population, indices) whose spikes are recorded

    def add_population(self, population: Population) -> Population:
        if population.name in self.populations:
            raise SpecError(f"population {population.name!r} is defined twice")
        self.populations[population.name] = population
        return population

    def add_projection(self, name: str, projection: Projection | DrawnProjection) -> Projection | DrawnProjection:
        if name in self.projections:
            raise SpecError(f"projection {name!r} is defined twice")
        self.projections[name] = projection
        return projection

    def population_with_role(self, role: Role) -> Population | None:
        found = [p for p in self.populations.values() if p.role == role]
        if len(found) > 1:
            raise SpecError(f"{len(found)} populations have the role {role.value!r}; at most one may")
        return found[0] if found else None

    def validate(self) -> None:
        """Check everything that can be checked without NEST; errors (SpecError) name the population or projection
        and the field."""
        if not (np.isfinite(self.resolution) and self.resolution > 0):
            raise SpecError(f"resolution = {self.resolution!r} must be a finite number > 0 ms")
        for pop in self.populations.values():
            pop.validate()
        for role in (Role.INPUT, Role.READOUT):
            self.population_with_role(role)
        for name, proj in self.projections.items():
            where = f"projection {name!r}"
            for end in ("source", "target"):
                if getattr(proj, end) not in self.populations:
                    raise SpecError(f"{where}: {end} population {getattr(proj, end)!r} does not exist")
            if isinstance(proj, DrawnProjection):
                proj.validate(where, self.populations, self.resolution)
                continue
            n = proj.size
            for key in ("sources", "targets", "weights", "delays", "receptors", "plastic", "nonneg"):
                value = getattr(proj, key)
                if value is not None and np.shape(value) != (n,):
                    raise SpecError(f"{where}: {key} has shape {np.shape(value)}, expected ({n},)")
            for key, pop in (("sources", proj.source), ("targets", proj.target)):
                idx = np.asarray(getattr(proj, key))
                size = self.populations[pop].size
                if n and (idx.dtype.kind not in "iu" or idx.min() < 0 or idx.max() >= size):
                    raise SpecError(f"{where}: {key} must be integers in [0, {size}) (population {pop!r})")
            reserved = {"weight", "delay", "receptor_type", "synapse_model"} & set(proj.synapse_params)
            if reserved:
                raise SpecError(f"{where}: synapse_params may not set {sorted(reserved)} (they are per edge)")
            if not isinstance(proj.static_synapse, str) or not proj.static_synapse:
                raise SpecError(f"{where}: static_synapse = {proj.static_synapse!r} must be a NEST synapse model name")
            if not np.all(np.isfinite(proj.weights)):
                raise SpecError(f"{where}: weights contain NaN or infinite values")
            d = np.asarray(proj.delays, float)
            if n and (not np.all(np.isfinite(d)) or d.min() < self.resolution * (1 - 1e-12)):
                raise SpecError(f"{where}: delays must be finite and >= the resolution {self.resolution} ms")
            plastic = proj.plastic_mask()
            if plastic.any():
                if not self.optimizer:
                    raise SpecError(f"{where} has plastic edges but the spec has no optimizer settings")
                ok_delay = np.isclose(d[plastic], self.resolution)
                if not ok_delay.all():
                    raise SpecError(
                        f"{where}: e-prop synapses need a delay of one step ({self.resolution} ms); "
                        f"found {d[plastic][~ok_delay][0]} ms"
                    )
            if proj.nonneg is not None:
                w = np.asarray(proj.weights)[plastic]
                nonneg = np.asarray(proj.nonneg, bool)[plastic]
                if np.any(w[nonneg] < 0) or np.any(w[~nonneg] > 0):
                    raise SpecError(f"{where}: a plastic weight has the sign Dale's law forbids (nonneg)")
        if self.recorded is not None:
            pop, idx = self.recorded
            if pop not in self.populations:
                raise SpecError(f"recorded: population {pop!r} does not exist")
            idx = np.asarray(idx)
            if idx.size and (idx.min() < 0 or idx.max() >= self.populations[pop].size):
                raise SpecError(f"recorded: indices outside population {pop!r}")

    def plastic_projections(self) -> list[str]:
        return [name for name, p in self.projections.items()
                if isinstance(p, Projection) and p.plastic_mask().any()]  # fmt: skip

    def materialized(self) -> NetworkSpec:
        """This spec with every :class:`DrawnProjection` drawn into an ordinary :class:`Projection` (the same edges
        in the same order); the spec itself if it has none."""
        if not any(isinstance(p, DrawnProjection) for p in self.projections.values()):
            return self
        projections = {name: p.materialize() if isinstance(p, DrawnProjection) else p
                       for name, p in self.projections.items()}  # fmt: skip
        return NetworkSpec(self.resolution, dict(self.populations), projections, self.optimizer, self.recorded)


__all__ = [
    "DrawnProjection",
    "EdgeChunk",
    "FixedTotalNumber",
    "NetworkSpec",
    "Population",
    "Projection",
    "Role",
    "SynapseKind",
    "TruncatedNormal",
]

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

Populations are created and projections connected in the order they were added, which keeps node ids and
connection order (and so NEST's summation order) the same for the same spec. The NEST engine builds any spec
(:func:`nestgrad.nest_engine.wiring.build`); weights and optimizer state are read back per projection in the
spec's edge order, which does not depend on how NEST distributes synapses over threads and ranks.

This package imports NumPy and nestgrad's errors only.
"""

from __future__ import annotations

import enum
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


@dataclass
class NetworkSpec:
    resolution: float  # ms
    populations: dict[str, Population] = field(default_factory=dict)
    projections: dict[str, Projection] = field(default_factory=dict)
    optimizer: dict[str, Any] = field(default_factory=dict)  # NEST's optimizer dictionary of the plastic synapses
    recorded: tuple[str, np.ndarray] | None = None  # (population, indices) whose spikes are recorded

    def add_population(self, population: Population) -> Population:
        if population.name in self.populations:
            raise SpecError(f"population {population.name!r} is defined twice")
        self.populations[population.name] = population
        return population

    def add_projection(self, name: str, projection: Projection) -> Projection:
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
        return [name for name, p in self.projections.items() if p.plastic_mask().any()]


__all__ = ["NetworkSpec", "Population", "Projection", "Role", "SynapseKind"]

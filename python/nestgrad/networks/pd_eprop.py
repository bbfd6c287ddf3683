"""The Potjans-Diesmann microcircuit as a learner: e-prop on the thalamic input, readouts from L2/3E and L5E.

Every circuit neuron is ``eprop_iaf_psc_exp``, which without learning is NEST's ``iaf_psc_exp`` (the model's
neuron; tests/test_eprop_iaf_psc_exp.py), so the circuit keeps its published dynamics: intra-circuit synapses are
static with the published weights and delays, background and DC compensation as in
:mod:`nestgrad.networks.potjans_diesmann`. Plastic (``eprop_synapse``; the thalamic ones as
``network.gradient_algorithm`` chooses, :mod:`nestgrad.networks.algorithms`) are

* ``th_rec``: thalamus -> L4E, L4I, L6E, L6I (the published thalamic targets and probabilities, drawn without
  multapses), and
* ``rec_out``: pools of L2/3E and L5E neurons -> ``eprop_readout`` neurons (one pool per readout),

with the delay of one time step that NEST 3.10's e-prop requires (the published thalamic delay is 1.5 ms).
Readouts send learning signals to the neurons with plastic inputs. The task drives the thalamus.

The learner emits a :class:`~nestgrad.spec.NetworkSpec` built by the one wiring function
(:class:`~nestgrad.networks.base.SpecLearner`): the static circuit as a drawn projection (chunks drawn while it is
connected), the plastic projections as edge lists. Weights and Adam's moments are kept as flat arrays in a canonical
order (sorted by source, then target), so checkpoints do not depend on how NEST distributes synapses over threads
and ranks, and a resumed run is bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from nestgrad.config import GradientAlgorithm, OptimizerConfig
from nestgrad.config.microcircuit import EpropMicrocircuitConfig, MicrocircuitConfig
from nestgrad.errors import ConfigError, SpecError
from nestgrad.nest_engine import EPROP_SYNAPSE, STATIC_SYNAPSE
from nestgrad.networks.algorithms import get_algorithm
from nestgrad.networks.base import READOUT_DEFAULTS, SpecLearner
from nestgrad.networks.potjans_diesmann import (
    N_FULL,
    POPULATIONS,
    THALAMUS_CONN_PROBS,
    THALAMUS_N,
    Microcircuit,
)
from nestgrad.parallel import SerialCommunicator
from nestgrad.spec import NetworkSpec, Population, Projection, Role, SynapseKind

PLASTIC_TARGETS = ("L4E", "L4I", "L6E", "L6I")
READOUT_SOURCES = ("L23E", "L5E")

EPROP_PARAMS = {
    "surrogate_gradient_function": "piecewise_linear",
    "surrogate_gradient_height": 0.3,
    "surrogate_gradient_width": 2.0,  # mV
    "kappa": 0.97,
    "kappa_reg": 0.97,
    "c_reg": 0.0,
    "eprop_isi_trace_cutoff": 100.0,
}

NEURON_MODEL = "eprop_iaf_psc_exp"  # every circuit neuron


class EpropMicrocircuit(SpecLearner):
    """The microcircuit learner (the :class:`~nestgrad.networks.base.Learner` contract)."""

    def __init__(
        self,
        config: EpropMicrocircuitConfig,
        optimizer: OptimizerConfig,
        n_out: int,
        resolution: float,
        neuron_params: dict[str, Any] | None = None,
        gradient_algorithm: GradientAlgorithm | str = GradientAlgorithm.STEP,
    ):
        # the synapse model of the thalamic inputs ("step": eprop_synapse, "event": eprop_event_synapse); the
        # readouts' inputs stay eprop_synapse
        self.algorithm = get_algorithm(gradient_algorithm)
        self.plastic_model: str | None = None  # the thalamic synapses' model, chosen by prepare(nest)
        self.config = config
        self.optimizer = optimizer
        self.n_out = n_out
        self.n_in = config.n_thalamus
        self.resolution = resolution
        params = EPROP_PARAMS | dict(neuron_params or {})
        self.circuit = Microcircuit(
            MicrocircuitConfig(
                n_scaling=config.n_scaling,
                k_scaling=config.k_scaling,
                background=config.background,
                neuron_model=NEURON_MODEL,
                neuron_params=params,
                seed=config.seed,
            )
        )
        self.comm = SerialCommunicator()
        self._layout()

    # -- connectivity, drawn once with NumPy so that it is the same for every rank/thread split -------------------
    def _layout(self) -> None:
        rng = np.random.default_rng([self.config.seed, 0xC1])
        c = self.circuit
        offsets = np.concatenate([[0], np.cumsum(c.n)])
        self.pop_range = {name: (offsets[i], offsets[i + 1]) for i, name in enumerate(POPULATIONS)}
        src, tgt = [], []
        for name in PLASTIC_TARGETS:
            i = POPULATIONS.index(name)
            p = THALAMUS_CONN_PROBS[i]
            # in-degree of the full model, scaled like the circuit's, drawn as Bernoulli (no multapses)
            k_full = math.log(1 - p) / math.log(1 - 1 / (THALAMUS_N * N_FULL[i])) / N_FULL[i]
            p_eff = min(1.0, k_full * self.config.k_scaling / self.n_in)
            lo, hi = self.pop_range[name]
            mask = rng.random((hi - lo, self.n_in)) < p_eff
            t_idx, s_idx = np.nonzero(mask)
            src.append(s_idx)
            tgt.append(t_idx + lo)
        th_src, th_tgt = np.concatenate(src), np.concatenate(tgt)
        order = np.lexsort((th_tgt, th_src))
        self.th_src, self.th_tgt = th_src[order], th_tgt[order]
        pools = []
        for _ in range(self.n_out):
            members = [
                rng.choice(
                    np.arange(*self.pop_range[name]),
                    min(self.config.pool_size, int(np.diff(self.pop_range[name])[0])),
                    replace=False,
                )
                for name in READOUT_SOURCES
            ]
            pools.append(np.sort(np.concatenate(members)))
        out_src = np.concatenate(pools)
        out_tgt = np.concatenate([np.full(len(p), k) for k, p in enumerate(pools)])
        order = np.lexsort((out_tgt, out_src))
        self.out_src, self.out_tgt = out_src[order], out_tgt[order]
        lo = self.pop_range[PLASTIC_TARGETS[0]][0]
        self.learners = np.concatenate([np.arange(*self.pop_range[n]) for n in PLASTIC_TARGETS])
        assert lo >= 0

    def initial_weights(self, seed: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng([seed, 0xC2])
        w_th = self.config.thalamic_psp / 0.15 * self.circuit.w_ext
        return {
            "th_rec": np.abs(rng.normal(w_th, 0.1 * w_th, self.th_src.size)),
            "rec_out": rng.normal(0.0, self.config.readout_weight, self.out_src.size),
            "feedback": rng.normal(0.0, self.config.feedback_weight, (self.learners.size, self.n_out)),
        }

    def describe(self) -> str:
        c = self.config
        return (
            f"the Potjans-Diesmann microcircuit with eprop_iaf_psc_exp ({int(self.circuit.n.sum())} neurons, "
            f"scale {c.n_scaling}/{c.k_scaling}, {self.th_src.size} plastic thalamic synapses)"
        )

    def validate(self, nest: Any) -> None:
        if NEURON_MODEL not in nest.node_models:
            raise ConfigError(f"{NEURON_MODEL} is not loaded (nestgrad.install())")
        self.algorithm.check(nest, NEURON_MODEL)

    def prepare(self, nest: Any) -> None:
        if self.plastic_model is None:  # the spec needs the model name; the algorithm may ask NEST's defaults
            self.plastic_model = self.algorithm.synapse_into(nest, NEURON_MODEL)

    # -- the network as a spec (built by nestgrad.nest_engine.wiring) ------------------------------------------------
    def trainable(self) -> tuple[str, ...]:
        return ("th_rec", "rec_out")

    def network_spec(self, weights: dict[str, np.ndarray], record_neurons: int, plastic: bool = True) -> NetworkSpec:
        """The circuit (:meth:`Microcircuit.add_to`: population ``rec``, the drawn static projection ``rec_rec``,
        the background) with the thalamus (input), the readouts, the plastic projections ``th_rec`` (the
        algorithm's synapse model) and ``rec_out`` (``eprop_synapse``), delay one step, and the learning signals
        (``feedback``, every readout to every neuron with plastic inputs; none in the static twin). The first
        ``record_neurons`` pool neurons' spikes are recorded."""
        if self.plastic_model is None:
            raise SpecError("EpropMicrocircuit.network_spec: plastic_model is unset; prepare(nest) chooses it")
        if plastic:
            for name in ("th_rec", "rec_out"):
                self.optimizer.check_bounds(name, weights[name])
            if self.optimizer.sign_constrained:
                raise ConfigError(
                    "optimizer.sign_constrained = true is not supported by the microcircuit learner yet (its "
                    "thalamic and readout synapses share one optimizer); use the classic network or "
                    "nestgrad.networks.v1"
                )
        for key, size in (("th_rec", self.th_src.size), ("rec_out", self.out_src.size)):
            w = np.asarray(weights[key])
            if w.shape != (size,) or not np.all(np.isfinite(w)):
                raise SpecError(f"weights[{key!r}]: {size} finite values expected, got shape {w.shape}")
        step = self.resolution
        spec = NetworkSpec(resolution=step, optimizer=self.optimizer.nest_dict())
        self.circuit.add_to(spec, "rec")
        spec.add_population(Population("thalamus", "parrot_neuron", self.n_in, role=Role.INPUT))
        spec.add_population(Population("readout", "eprop_readout", self.n_out, dict(READOUT_DEFAULTS), Role.READOUT))
        n_th, n_out = self.th_src.size, self.out_src.size
        spec.add_projection(
            "th_rec",
            Projection("thalamus", "rec", self.th_src, self.th_tgt, np.asarray(weights["th_rec"], float),
                       np.full(n_th, step), plastic=np.full(n_th, plastic), synapse_model=self.plastic_model),
        )  # fmt: skip
        spec.add_projection(
            "rec_out",
            Projection("rec", "readout", self.out_src, self.out_tgt, np.asarray(weights["rec_out"], float),
                       np.full(n_out, step), plastic=np.full(n_out, plastic), synapse_model=EPROP_SYNAPSE),
        )  # fmt: skip
        if plastic:  # every readout to every neuron with plastic inputs, zero weights included
            fb = np.asarray(weights["feedback"], float)
            li, k = np.nonzero(np.ones_like(fb, bool))
            spec.add_projection(
                "feedback",
                Projection("readout", "rec", k, self.learners[li], fb[li, k], np.full(li.size, step),
                           kind=SynapseKind.LEARNING_SIGNAL),
            )  # fmt: skip
        spec.recorded = ("rec", np.unique(self.out_src)[: max(record_neurons, 0)])
        return spec

    def build(
        self,
        nest: Any,
        weights: dict[str, np.ndarray],
        record_neurons: int,
        plastic: bool = True,
        learning: bool = True,
    ) -> None:
        """Build the spec (:class:`~nestgrad.networks.base.SpecLearner`) and a spike recorder per circuit population
        (``circuit.rates``)."""
        super().build(nest, weights, record_neurons, plastic=plastic, learning=learning)
        self._synapse_model = EPROP_SYNAPSE if plastic else STATIC_SYNAPSE
        self._th_synapse_model = self.plastic_model if plastic else STATIC_SYNAPSE
        nodes = self.built.nodes
        self.ids, self.thal, self.out = self.built.ids["rec"], nodes["thalamus"], nodes["readout"]
        self.devices = self.built.devices
        self.circuit.attach(nest, nodes["rec"])

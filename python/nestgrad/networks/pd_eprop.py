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

Weights are kept as flat arrays in a canonical order (sorted by source, then target), so checkpoints do not depend
on how NEST distributes synapses over threads and ranks.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from nestgrad.config import GradientAlgorithm, OptimizerConfig
from nestgrad.config.microcircuit import EpropMicrocircuitConfig, MicrocircuitConfig
from nestgrad.errors import ConfigError
from nestgrad.nest_engine import (
    EPROP_SYNAPSE,
    LEARNING_SIGNAL_CONNECTION,
    STATIC_SYNAPSE,
    set_plastic_defaults,
)
from nestgrad.nest_engine import devices as dev
from nestgrad.networks.algorithms import get_algorithm
from nestgrad.networks.base import READOUT_DEFAULTS
from nestgrad.networks.potjans_diesmann import (
    N_FULL,
    POPULATIONS,
    THALAMUS_CONN_PROBS,
    THALAMUS_N,
    Microcircuit,
)
from nestgrad.parallel import SerialCommunicator
from nestgrad.tasks import TrialBatch

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


class EpropMicrocircuit:
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

    @property
    def n_recorded(self) -> int:
        return int(getattr(self, "_pool_ids", np.zeros(0)).size)

    def validate(self, nest: Any) -> None:
        if NEURON_MODEL not in nest.node_models:
            raise ConfigError(f"{NEURON_MODEL} is not loaded (nestgrad.install())")
        self.algorithm.check(nest, NEURON_MODEL)

    # -- building ---------------------------------------------------------------------------------------------------
    def build(
        self,
        nest: Any,
        weights: dict[str, np.ndarray],
        record_neurons: int,
        plastic: bool = True,
        learning: bool = True,
    ) -> None:
        """Create the learner in the current kernel: ``plastic=False`` is the static twin, ``learning=False`` keeps
        the e-prop synapses with learning rate 0 (see :class:`~nestgrad.networks.base.Learner`)."""
        if plastic:
            for name in ("th_rec", "rec_out"):
                self.optimizer.check_bounds(name, weights[name])
        step = self.resolution
        if plastic and self.optimizer.sign_constrained:
            raise ConfigError(
                "optimizer.sign_constrained = true is not supported by the microcircuit learner yet (its thalamic "
                "and readout synapses share one optimizer); use the classic network or nestgrad.networks.v1"
            )
        syn = EPROP_SYNAPSE if plastic else STATIC_SYNAPSE
        th_syn = self.algorithm.synapse_into(nest, NEURON_MODEL) if plastic else syn
        self._synapse_model = syn
        self._th_synapse_model = th_syn
        self.circuit.build(nest)
        ids = np.concatenate([np.asarray(p.tolist()) for p in self.circuit.pops])
        self.ids = ids
        gen_in, self.thal = dev.create_input_nodes(nest, self.n_in)
        self.out = nest.Create("eprop_readout", self.n_out, READOUT_DEFAULTS)
        gen_target, gen_window = dev.create_target_nodes(nest, self.n_out)
        if plastic:
            for model in {syn, th_syn}:
                set_plastic_defaults(nest, model, self.optimizer.nest_dict(), eta=None if learning else 0.0)
        dev.connect_inputs(nest, gen_in, self.thal, step)
        thal_ids = np.asarray(self.thal.tolist())
        nest.Connect(
            thal_ids[self.th_src],
            ids[self.th_tgt],
            "one_to_one",
            {"synapse_model": th_syn, "weight": weights["th_rec"], "delay": np.full(self.th_src.size, step)},
        )
        out_ids = np.asarray(self.out.tolist())
        nest.Connect(
            ids[self.out_src],
            out_ids[self.out_tgt],
            "one_to_one",
            {"synapse_model": syn, "weight": weights["rec_out"], "delay": np.full(self.out_src.size, step)},
        )
        if plastic:
            fb = np.asarray(weights["feedback"])
            pre = np.repeat(out_ids[None, :], self.learners.size, 0).ravel()
            post = np.repeat(ids[self.learners][:, None], self.n_out, 1).ravel()
            nest.Connect(
                pre,
                post,
                "one_to_one",
                {
                    "synapse_model": LEARNING_SIGNAL_CONNECTION,
                    "weight": fb.ravel(),
                    "delay": np.full(pre.size, step),
                },
            )
        pool_ids = np.unique(ids[self.out_src])[: max(record_neurons, 0)]
        self.devices = dev.connect_data_devices(
            nest, gen_in, self.thal, gen_target, gen_window, self.out, pool_ids, step
        )
        self._pool_ids = np.sort(pool_ids)
        self._feedback = np.array(weights["feedback"], copy=True)

    # -- data -------------------------------------------------------------------------------------------------------
    def load_segment(self, nest: Any, batches: list[TrialBatch]) -> None:
        dev.set_generators(self.devices, batches, self.resolution)

    def lead_in_ms(self) -> float:
        return dev.lead_in_ms(self.resolution)

    def collect(self, nest: Any, t_start_ms: float, steps: int) -> dev.Recordings:
        return dev.collect(self.devices, t_start_ms, steps, self.resolution, self.comm)

    # -- weights ----------------------------------------------------------------------------------------------------
    def _read(
        self,
        nest: Any,
        pre_ids: np.ndarray,
        post_ids: np.ndarray,
        src: np.ndarray,
        tgt: np.ndarray,
        key: str,
        model: str | None = None,
    ) -> np.ndarray:
        """Values of one plastic projection in canonical order, gathered over ranks."""
        out = np.zeros(src.size)
        conns = nest.GetConnections(
            nest.NodeCollection(sorted(set(pre_ids[src].tolist()))), synapse_model=model or self._synapse_model
        )
        if len(conns):
            d = conns.get(["source", "target", key])
            lookup = {
                (s, t): i for i, (s, t) in enumerate(zip(pre_ids[src].tolist(), post_ids[tgt].tolist(), strict=True))
            }
            for s, t, v in zip(d["source"], d["target"], d[key], strict=True):
                i = lookup.get((s, t))
                if i is not None:
                    out[i] = v
        return self.comm.sum(out)

    def read_weights(self, nest: Any) -> dict[str, np.ndarray]:
        thal_ids, out_ids = np.asarray(self.thal.tolist()), np.asarray(self.out.tolist())
        return {
            "th_rec": self._read(nest, thal_ids, self.ids, self.th_src, self.th_tgt, "weight", self._th_synapse_model),
            "rec_out": self._read(nest, self.ids, out_ids, self.out_src, self.out_tgt, "weight"),
            "feedback": self._feedback.copy(),
        }

    def read_optimizer_state(self, nest: Any) -> dict[str, np.ndarray]:
        return {}  # Adam moments are not carried across blocks for this network (documented)

    def write_optimizer_state(self, nest: Any, state: dict[str, np.ndarray]) -> None:
        pass

"""What every learner that trains with EventProp inside NEST shares (the ``eventprop`` architecture,
:mod:`nestgrad.networks.eventprop`, and the V1 column, :mod:`nestgrad.networks.v1_eventprop`): building NEST from an
iteration's trials, the optimizer inside NEST's synapses with its state carried from kernel to kernel, reading
weights, Adam's state and the readouts back, and the cross-entropy metrics.

NEST's EventProp models need every trial's inputs when they are created, so :meth:`EventpropNestLearner.build` only
keeps the weights, and :meth:`~EventpropNestLearner.simulate`, which receives the batches, builds the network
(:func:`nestgrad.nest_engine.eventprop.build`, a fresh kernel) and runs them: each trial's forward pass, then its
backward pass in mirrored time; the synapses take one optimizer step per batch (docs/eventprop_nest_design.md).

A subclass says what its network is (:meth:`~EventpropNestLearner.network`, :meth:`~EventpropNestLearner.loss`,
bounds and Dale's signs), how a batch becomes trials (:meth:`~EventpropNestLearner.trials`) and, where its weights
dictionary is not one array per EventProp projection, how to map between the two
(:meth:`~EventpropNestLearner.to_projections`, :meth:`~EventpropNestLearner.from_projections`).
"""

from __future__ import annotations

import math
import pathlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from nestgrad.config import OptimizerType
from nestgrad.errors import ConfigError, ModelError
from nestgrad.nest_engine import eventprop as engine
from nestgrad.reference.eventprop import Network, Trial

# the checkpoint's optimizer state per projection (<key>_<projection>) -> the synapses' status key: Adam's moments and
# its bias-correction powers beta^t, which a run continued in a new kernel must carry on
ADAM_STATE = {"m": "adam_m", "v": "adam_v", "b1": "adam_beta_1_power", "b2": "adam_beta_2_power"}
# the state of an edge that has never stepped (moments 0, bias-correction powers beta^0 = 1)
ADAM_INITIAL = {"m": 0.0, "v": 0.0, "b1": 1.0, "b2": 1.0}


@dataclass
class EventpropRecord:
    """What one iteration recorded: the readouts' values y per trial (spiking outputs: their first spike times,
    trial-local ms, +inf where an output did not spike) and the hidden neurons' spikes."""

    y: np.ndarray  # [n_trials, n_out]
    hidden_spikes: int
    # the last trial's hidden spikes (trial-local ms, neuron index): the forward pass and its replay in mirrored time
    raster_t: np.ndarray
    raster_n: np.ndarray
    T: float


class EventpropNestLearner:
    """Base of the EventProp learners (the :class:`nestgrad.networks.base.Learner` contract, run part).

    Subclasses set ``n_in``, ``n_out``, ``optimizer``, ``trial_duration`` (ms, T of every trial) and
    ``hidden_population`` (the population whose spikes give the rate and the raster), and implement
    :meth:`network`, :meth:`loss`, :meth:`trials`, :meth:`optimizer_settings` and the description."""

    n_in: int
    n_out: int
    optimizer: Any
    trial_duration: float
    hidden_population: str = "hid"
    initial_eta: float = 0.0  # the optimizer's eta at iteration 0 (the rates of learning_rates are given at it)
    spiking_model: str = engine.LIF_MODEL  # the NEST model of the network's spiking neurons
    output_key = "trial_y"  # what the outputs record per trial (first-spike outputs: "trial_t_first")

    def __init__(self) -> None:
        self.comm: Any = None
        self.built: engine.BuiltEventprop | None = None
        self._weights: dict[str, np.ndarray] = {}
        self._learning = True
        self._state: dict[str, np.ndarray] = {}
        self._spikes_before = 0  # the hidden neurons' n_spikes after the previous batch of the block
        self._pending_state: dict[str, np.ndarray] = {}

    # -- what a subclass says ----------------------------------------------------------------------------------------
    def network(self, weights: dict[str, np.ndarray], T: float) -> Network:
        """The network with the learner's ``weights``, trials of ``T`` ms (reference engine's form)."""
        raise NotImplementedError

    def loss(self) -> Any:
        raise NotImplementedError

    def trials(self, batch: Any) -> list[Trial]:
        raise NotImplementedError

    def optimizer_settings(self, batch_size: int) -> dict[str, Any]:
        """The synapses' optimizer dictionary for one step per ``batch_size`` trials."""
        raise NotImplementedError

    def bounds(self) -> dict[str, tuple[float, float]]:
        """(Wmin, Wmax) in pA per bounded EventProp projection."""
        return {}

    def signs(self) -> dict[str, np.ndarray]:
        """Dale's law: population -> sign per neuron (empty: none)."""
        return {}

    def learning_rates(self) -> dict[str, float]:
        """eta per EventProp projection that does not take the optimizer's (0: frozen), for the kernel about to be
        built (with the Trainer's learning-rate decay applied: :meth:`decay_scale`); empty: every projection takes
        the optimizer's."""
        return {}

    def decay_scale(self) -> float:
        """eta now / eta at iteration 0 (``initial_eta``, set by the subclass): the Trainer's learning-rate decay
        so far, which the rates of :meth:`learning_rates` follow."""
        return float(self.optimizer.eta) / self.initial_eta if self.initial_eta else 1.0

    def to_projections(self, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The learner's per-edge arrays (weights, optimizer state) as one array per EventProp projection."""
        return values

    def from_projections(self, values: dict[str, np.ndarray], fill: float = 0.0) -> dict[str, np.ndarray]:
        """Inverse of :meth:`to_projections`; ``fill``: the value of the learner's edges that no EventProp
        projection holds (a learner whose network leaves some out: weight 0, Adam's state as never stepped)."""
        return values

    def start_kernel(self, built: engine.BuiltEventprop) -> None:
        """Hook: a new kernel was built for a run of batches (per-kernel state starts afresh here)."""

    def after_batch(self, built: engine.BuiltEventprop, hid: list[int], y: np.ndarray, n_trials: int) -> None:
        """Hook: a training batch was simulated (its step is applied in the next trial period)."""

    @property
    def n_recorded(self) -> int:
        """Neurons of the hidden population (the rate is per neuron of it)."""
        raise NotImplementedError

    # -- the Learner contract ----------------------------------------------------------------------------------------
    def validate(self, nest: Any) -> None:
        nodes = (engine.INPUT_MODEL, self.spiking_model, engine.READOUT_MODEL)
        missing = [m for m in nodes if m not in nest.node_models]
        missing += [m for m in (engine.SYNAPSE_MODEL, engine.REVERSE_MODEL) if m not in nest.synapse_models]
        if missing:
            raise ModelError(f"EventProp needs nestgrad's models {missing}, which are not loaded (nestgrad.install())")

    def build(
        self, nest: Any, weights: dict[str, np.ndarray], record_neurons: int, plastic: bool = True,
        learning: bool = True,
    ) -> None:  # fmt: skip
        if not plastic:
            raise ModelError("an EventProp learner has no static twin (plastic=False)")
        self._weights = {k: np.array(v, float, copy=True) for k, v in weights.items()}
        self._learning = learning
        self._pending_state = {}
        self.built = None

    def write_optimizer_state(self, nest: Any, state: dict[str, np.ndarray]) -> None:
        self._pending_state = {k: np.asarray(v, float) for k, v in state.items()}

    def read_weights(self, nest: Any) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self._weights.items()}

    def read_optimizer_state(self, nest: Any) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self._state.items()}

    def simulate(
        self, nest: Any, batches: list[Any], resolution: float
    ) -> Iterator[tuple[Any, EventpropRecord, float]]:
        """Build the network with the batches' trials in a fresh kernel and run them one batch per ``Simulate``;
        with learning, one more trial period applies the last batch's step. ``resolution`` (the task's) is not NEST's
        EventProp grid, which the subclass's :meth:`run_resolution` gives."""
        from nestgrad.parallel import SerialCommunicator

        # under MPI each rank holds some nodes and connections; what is read is gathered, so every rank sees it all
        comm = self.comm if self.comm is not None else SerialCommunicator()
        sizes = {b.n_trials for b in batches}
        if len(sizes) != 1:
            raise ConfigError(f"EventProp needs batches of one size; got {sorted(sizes)} trials")
        trials = [t for b in batches for t in self.trials(b)]
        T = self.trial_duration
        net = self.network(self._weights, T)
        threads = int(nest.GetKernelStatus("local_num_threads"))
        optimizer = self.optimizer_settings(sizes.pop()) if self._learning else None
        built = engine.build(net, trials, resolution=self.run_resolution(resolution), threads=threads,
                             loss=self.loss(), optimizer=optimizer, bounds=self.bounds() if optimizer else None,
                             signs=self.signs() if optimizer else None,
                             learning_rates=self.learning_rates() if optimizer else None)  # fmt: skip
        self.built = built
        if self._pending_state:
            self._write_state(built, self._pending_state)
        lay = built.layout
        hid = list(built.cnet.global_ids(self.hidden_population))
        out = list(built.cnet.global_ids(self.loss().population))
        # the per-spike records grow with every trial of the block; GetStatus leaves them out until the last batch
        # (the raster), so that reading n_spikes and the outputs per batch stays O(1) and O(trials) per node
        built.nodes[[j for j, k in enumerate(built.cnet.kind) if k != "input"]].set(status_records=False)
        self._spikes_before = 0
        self.start_kernel(built)
        done = 0
        for number, batch in enumerate(batches):
            t0 = time.perf_counter()
            nest.Simulate((lay.origin if done == 0 else 0.0) + batch.n_trials * lay.period)
            seconds = time.perf_counter() - t0
            key = self.output_key
            ys = engine.gather_nodes(built, out, (key,), comm)
            y = np.array([np.asarray(d[key], float)[done : done + batch.n_trials] for d in ys]).T
            rec = self._record(built, hid, done, batch.n_trials, y, T, comm, raster=number == len(batches) - 1)
            done += batch.n_trials
            if self._learning:
                self.after_batch(built, hid, y, batch.n_trials)
            yield batch, rec, seconds
        if self._learning:
            nest.Simulate(lay.period)  # the period in which every synapse applies the last batch's step
        # weights and Adam's state in one pass over the connections (matching them to edges is the costly part)
        adam = self.optimizer.type == OptimizerType.ADAM
        values = engine.read_edges(built, ("weight",) + (tuple(ADAM_STATE.values()) if adam else ()), comm=comm)
        self._weights = self.from_projections(self._per_projection(values["weight"]))
        if adam:
            self._state = {}
            for k, key in ADAM_STATE.items():
                joined = self.from_projections(self._per_projection(values[key]), fill=ADAM_INITIAL[k])
                self._state |= {f"{k}_{name}": v for name, v in joined.items()}

    def run_resolution(self, task_resolution: float) -> float:
        """NEST's time grid for the EventProp models (ms): the task's unless the subclass has its own."""
        return task_resolution

    def _record(
        self, built: Any, hid: list[int], first: int, n: int, y: np.ndarray, T: float, comm: Any, raster: bool
    ) -> EventpropRecord:
        """The batch's hidden spike count (from the neurons' running counts) and, with ``raster``, the last trial's
        hidden spikes (read from the records, O(spikes of the block): once per block)."""
        total = sum(int(d["n_spikes"][0]) for d in engine.gather_nodes(built, hid, ("n_spikes",), comm))
        count, self._spikes_before = total - self._spikes_before, total
        if not raster:
            return EventpropRecord(y, count, np.zeros(0), np.zeros(0, int), T)
        built.nodes[hid].set(status_records=True)
        last_t, last_n = [], []
        for k, st in enumerate(engine.gather_nodes(built, hid, ("spike_trials", "spike_times"), comm)):
            last = np.asarray(st["spike_trials"], int) == first + n - 1
            last_t.append(np.asarray(st["spike_times"], float)[last])
            last_n.append(np.full(int(last.sum()), k))
        built.nodes[hid].set(status_records=False)
        return EventpropRecord(y, count, np.concatenate(last_t), np.concatenate(last_n), T)

    def _per_projection(self, values: np.ndarray) -> dict[str, np.ndarray]:
        assert self.built is not None
        return {name: values[sl].copy() for name, sl in self.built.cnet.proj_slices.items()}

    def _write_state(self, built: Any, state: dict[str, np.ndarray]) -> None:
        """Adam's moments and bias-correction powers (the learner's keys ``<m|v|b1|b2>_<name>``) of a run that
        continues in this kernel (checkpoints written before the powers were kept have none: the correction then
        restarts at beta^0 = 1)."""
        n = len(built.cnet.src)
        values = {key: np.zeros(n) for key in ("adam_m", "adam_v")}
        if any(k.startswith("b1_") for k in state):
            values |= {key: np.ones(n) for key in ("adam_beta_1_power", "adam_beta_2_power")}
        for k, key in ADAM_STATE.items():
            mine = {name[len(k) + 1 :]: v for name, v in state.items() if name.startswith(f"{k}_")}
            if key not in values or not mine:
                continue
            for name, v in self.to_projections(mine).items():
                values[key][built.cnet.proj_slices[name]] = v
        engine.write_edges(built, values)

    # -- scoring of cross-entropy readouts ---------------------------------------------------------------------------
    def readout_metrics(self, batch: Any, recorded: EventpropRecord) -> dict[str, float]:
        """Cross-entropy of the readouts' values (the loss the synapses descend), accuracy (argmax) and the hidden
        population's rate (Hz per neuron over the trials' T)."""
        y = recorded.y
        z = y - y.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        labels = batch.labels
        return {
            "loss": float(-np.mean(logp[np.arange(len(labels)), labels])),
            "accuracy": float(np.mean(np.argmax(y, axis=1) == labels)),
            "rate_hz": recorded.hidden_spikes / (self.n_recorded * len(labels) * recorded.T / 1000.0),
        }

    def metrics(self, batch: Any, recorded: EventpropRecord) -> dict[str, float]:
        return self.readout_metrics(batch, recorded)

    def divergence_scale(self, batch: Any) -> float:
        return math.log(self.n_out)  # readouts that all say the same (a silent readout layer)

    def plot(self, out_dir: pathlib.Path, batch: Any, recorded: EventpropRecord, label: str) -> None:
        from nestgrad import plotting

        title = f"Hidden spikes of the last trial, {label}"
        plotting.plot_forward_backward_raster(recorded.raster_t, recorded.raster_n, recorded.T, out_dir / "raster.png",
                                              title)  # fmt: skip

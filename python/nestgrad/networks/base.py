"""What every trainable network shares: the learner contract the Trainer relies on, and common defaults.

A *learner* is a network that the Trainer can build in NEST, feed with task data and read back. Every built-in
network (:mod:`~nestgrad.networks.eprop_classic`, :mod:`~nestgrad.networks.pd_eprop`, :mod:`~nestgrad.networks.v1`)
implements :class:`Learner`; a new network implements it too and registers itself
(:func:`nestgrad.networks.registry.register`), without any change to the Trainer.
"""

from __future__ import annotations

import pathlib
import time
from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

import numpy as np

from nestgrad.config import OptimizerType
from nestgrad.nest_engine.devices import Recordings
from nestgrad.tasks import TrialBatch, accuracy, accuracy_per_task, mse_loss

# eprop_readout parameters of every nestgrad network (NEST names and units)
READOUT_DEFAULTS: dict[str, Any] = {
    "C_m": 1.0,
    "E_L": 0.0,
    "I_e": 0.0,
    "tau_m": 30.0,
    "V_m": 0.0,
    "eprop_isi_trace_cutoff": 100.0,
}


@runtime_checkable
class Learner(Protocol):
    """The contract between a trainable network and the Trainer.

    Weights and optimizer state are dictionaries of NumPy arrays in an order that does not depend on how NEST
    distributes nodes over threads and ranks, so checkpoints resume bit-identically under any split.
    """

    n_in: int  # inputs the task must provide
    n_out: int  # readouts
    comm: Any  # the communicator (serial or MPI) the Trainer sets before building
    # the OptimizerConfig read by build(); the Trainer replaces it before a segment when optimizer.eta decays
    optimizer: Any

    @property
    def n_recorded(self) -> int:
        """How many neurons' spikes the last build records (the rate in the metrics is per recorded neuron)."""

    def describe(self) -> str:
        """One line for the progress output."""

    def validate(self, nest: Any) -> None:
        """Checks that need NEST (models loaded, parameter names), before anything is built."""

    def initial_weights(self, seed: int) -> dict[str, np.ndarray]:
        """The weights a run starts from."""

    def build(
        self,
        nest: Any,
        weights: dict[str, np.ndarray],
        record_neurons: int,
        plastic: bool = True,
        learning: bool = True,
    ) -> None:
        """Create the network in the current kernel with ``weights``. ``plastic=False`` builds the static twin
        (static synapses where e-prop synapses would be); ``learning=False`` keeps the plastic synapses with every
        learning rate 0, so the network is the trained one and its weights stay (evaluation)."""

    def load_segment(self, nest: Any, batches: list[TrialBatch]) -> None:
        """Set the generators for consecutive iterations from the kernel's time 0."""

    def lead_in_ms(self) -> float:
        """Simulated time before the first iteration."""

    def collect(self, nest: Any, t_start_ms: float, steps: int) -> Recordings:
        """What the iteration that began at ``t_start_ms`` recorded."""

    def read_weights(self, nest: Any) -> dict[str, np.ndarray]:
        """The current weights (gathered over ranks)."""

    def read_optimizer_state(self, nest: Any) -> dict[str, np.ndarray]:
        """The optimizer's per-synapse state (Adam's moments; empty for gradient descent)."""

    def write_optimizer_state(self, nest: Any, state: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`read_optimizer_state` returned, after :meth:`build`."""

    def simulate(self, nest: Any, batches: list[Any], resolution: float) -> Iterator[tuple[Any, Any, float]]:
        """Run the built network through ``batches`` (one training iteration each) in order; yield each batch, what
        it recorded and the seconds its simulation took; leave the kernel clean after the last (or when closed
        early). Learning happens inside NEST as the batches run (unless built with ``learning=False``)."""

    def metrics(self, batch: Any, recorded: Any) -> dict[str, float]:
        """Loss (and accuracy for classification, the mean rate of the recorded neurons) of one batch."""

    def divergence_scale(self, batch: Any) -> float:
        """The loss of a silent readout on ``batch`` (what "nothing learnt" scores): the Trainer reports divergence
        when the loss exceeds ``training.divergence_factor`` times this; 0: no such check."""

    def plot(self, out_dir: pathlib.Path, batch: Any, recorded: Any, label: str) -> None:
        """Figures of the last batch (rasters, readouts) into ``out_dir``."""


class SpecLearner:
    """A learner whose network is a :class:`~nestgrad.spec.NetworkSpec` built by the one wiring function
    (:func:`nestgrad.nest_engine.wiring.build`). Subclasses say how weights become a spec
    (:meth:`network_spec`); building, data, recordings, weights and Adam's moments are handled here for every such
    network alike. The weights dictionary holds one flat array per trainable projection (in the spec's edge order)
    and the fixed ``feedback`` matrix [neurons, readouts]."""

    resolution: float
    optimizer: Any  # OptimizerConfig
    comm: Any
    built: Any = None

    def network_spec(self, weights: dict[str, np.ndarray], record_neurons: int, plastic: bool = True) -> Any:
        raise NotImplementedError

    def trainable(self) -> tuple[str, ...]:
        """The projections whose weights the weights dictionary holds (besides ``feedback``)."""
        raise NotImplementedError

    def prepare(self, nest: Any) -> None:
        """Choices that need NEST (e.g. the synapse models an algorithm picks from a neuron's defaults), made before
        :meth:`network_spec`; :meth:`build` calls it, and so must anyone who wants the spec without a build."""

    def build(
        self,
        nest: Any,
        weights: dict[str, np.ndarray],
        record_neurons: int,
        plastic: bool = True,
        learning: bool = True,
    ) -> None:
        from nestgrad.nest_engine import wiring

        self.prepare(nest)
        spec = self.network_spec(weights, record_neurons, plastic)
        self.built = wiring.build(nest, spec, plastic=plastic, learning=learning)
        self._feedback = np.array(weights["feedback"], copy=True)

    @property
    def n_recorded(self) -> int:
        if self.built is None or self.built.spec.recorded is None:
            return 0
        return int(np.size(self.built.spec.recorded[1]))

    def load_segment(self, nest: Any, batches: list[TrialBatch]) -> None:
        from nestgrad.nest_engine import devices as dev

        dev.set_generators(self.built.devices, batches, self.resolution)

    # -- e-prop's semantics: the network runs continuously through the batches, the readout is scored by MSE ---------
    def simulate(
        self, nest: Any, batches: list[TrialBatch], resolution: float
    ) -> Iterator[tuple[TrialBatch, Recordings, float]]:
        self.load_segment(nest, batches)
        t = self.lead_in_ms()
        nest.Prepare()
        try:
            nest.Run(t)
            for batch in batches:
                t0 = time.perf_counter()
                duration = batch.steps * resolution
                nest.Run(duration)
                rec = self.collect(nest, t, batch.steps)
                t += duration
                yield batch, rec, time.perf_counter() - t0
        finally:
            nest.Cleanup()

    def metrics(self, batch: TrialBatch, recorded: Recordings) -> dict[str, float]:
        m = {"loss": mse_loss(recorded.readout, batch.target, batch.learning_window, batch.trial_steps)}
        if batch.labels is not None:
            m["accuracy"] = accuracy(recorded.readout, batch)
            # several tasks at once: each task's accuracy on its own readouts (NaN: no trial of it in this batch)
            m |= {f"accuracy_{name}": a for name, a in accuracy_per_task(recorded.readout, batch).items()}
        duration_s = batch.steps * self.resolution / 1000.0
        m["rate_hz"] = recorded.spike_steps.size / max(self.n_recorded, 1) / duration_s
        return m

    def divergence_scale(self, batch: TrialBatch) -> float:
        """The loss of a silent readout (output 0) on ``batch``: the scale of the target itself."""
        return mse_loss(np.zeros_like(batch.target), batch.target, batch.learning_window, batch.trial_steps)

    def plot(self, out_dir: pathlib.Path, batch: TrialBatch, recorded: Recordings, label: str) -> None:
        from nestgrad import plotting

        res = self.resolution
        plotting.plot_raster(recorded.spike_steps, recorded.spike_senders, batch.steps, res, out_dir / "raster.png",
                             f"Recurrent spikes, {label}")  # fmt: skip
        plotting.plot_readout(recorded.readout, batch.target, batch.learning_window, res, out_dir / "readout.png",
                              f"Readout vs target, {label}")  # fmt: skip

    def lead_in_ms(self) -> float:
        from nestgrad.nest_engine import devices as dev

        return dev.lead_in_ms(self.resolution)

    def collect(self, nest: Any, t_start_ms: float, steps: int) -> Recordings:
        from nestgrad.nest_engine import devices as dev

        return dev.collect(self.built.devices, t_start_ms, steps, self.resolution, self.comm)

    def read_weights(self, nest: Any) -> dict[str, np.ndarray]:
        from nestgrad.nest_engine import wiring

        read = wiring.read_projections(self.built, nest, list(self.trainable()), ("weight",), self.comm)
        return {name: values["weight"] for name, values in read.items()} | {"feedback": self._feedback.copy()}

    def read_optimizer_state(self, nest: Any) -> dict[str, np.ndarray]:
        """Adam's state per trainable projection, edge order: the moments ``m_<name>``, ``v_<name>`` (0 for static
        edges) and, where nestgrad's synapses hold the edges, the bias-correction powers ``b1_<name>``, ``b2_<name>``
        (beta_1^t, beta_2^t after t steps; 1 for static edges), so that a new kernel (the next block, a resumed run)
        continues Adam exactly where it stopped; empty for gradient descent. NEST's ``eprop_synapse`` has no powers:
        its edges restart the bias correction at t = 0 in every kernel."""
        from nestgrad.nest_engine import wiring

        if self.optimizer.type != OptimizerType.ADAM:
            return {}
        # projections with the same state are read together: interleaved ones of one model in one pass over it
        by_keys: dict[tuple[str, ...], list[str]] = {}
        for name in self.trainable():
            if self.built.plastic_groups.get(name):
                keys = ("m", "v", "b1", "b2") if wiring.keeps_adam_powers(self.built, name) else ("m", "v")
                by_keys.setdefault(keys, []).append(name)
        state = {}
        for keys, names in by_keys.items():
            for name, values in wiring.read_projections(self.built, nest, names, keys, self.comm).items():
                state |= {f"{k}_{name}": values[k] for k in keys}
        return state

    def write_optimizer_state(self, nest: Any, state: dict[str, np.ndarray]) -> None:
        """Restore :meth:`read_optimizer_state`'s result. A state without powers (a checkpoint written before they
        were kept) leaves them at 1: the bias correction then restarts at t = 0, as it did."""
        from nestgrad.nest_engine import wiring

        moments = {}
        for name in self.trainable():
            if f"m_{name}" not in state:
                continue
            powers = None
            if f"b1_{name}" in state and wiring.keeps_adam_powers(self.built, name):
                powers = (np.asarray(state[f"b1_{name}"]), np.asarray(state[f"b2_{name}"]))
            moments[name] = (np.asarray(state[f"m_{name}"]), np.asarray(state[f"v_{name}"]), powers)
        wiring.write_adam_state(self.built, nest, moments)  # projections that share a model: one pass over it

"""The architecture ``eventprop``: a classifier trained by EventProp inside NEST (exact event-based gradients,
Wunderlich & Pehle 2021), through the same Trainer, checkpoints and command line as the e-prop networks.

Network: ``n_in`` inputs (``eventprop_input_ps``) -> ``n_hidden`` LIF neurons with an exponential current
(``eventprop_iaf_psc_exp_ps``; optionally recurrent, refractory, adaptive) -> ``n_out`` leaky readouts
(``eventprop_readout_ps``), every connection an ``eventprop_synapse`` (plus its reverse copy for the backward pass),
the cross-entropy of the readouts' mean or maximum voltage as the loss. Configuration: ``[network.params]``
(:class:`~nestgrad.config.eventprop.EventpropConfig`) and ``[task.params]`` of the task ``digits_latency``
(:class:`~nestgrad.tasks.digits_latency.DigitsLatencyConfig`) or ``evidence_spikes``
(:class:`~nestgrad.config.eventprop.EvidenceSpikesConfig`, tasks/evidence_spikes.py; the loss over its recall
window). An iteration is one batch of ``task.batch_size``
trials: each trial's forward pass, then its backward pass in mirrored time, inside one ``Simulate``; the synapses
apply one optimizer step per batch (nest_engine/eventprop.py, docs/eventprop_nest_design.md).

Weights are flat arrays per projection (``in_hid``, ``hid_hid`` if recurrent, ``hid_out``) in the reference engine's
edge order (source-major: edge ``i * n_post + j`` joins source i and target j), so that the reference engine
(:mod:`nestgrad.reference.eventprop`) evaluates exactly the network NEST trains.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from nestgrad.config import OptimizerType
from nestgrad.config.eventprop import EventpropConfig
from nestgrad.errors import ConfigError
from nestgrad.nest_engine import eventprop as engine
from nestgrad.networks.eventprop_learner import ADAM_STATE, EventpropNestLearner, EventpropRecord
from nestgrad.reference.eventprop import FirstSpikeLoss, Network, Population, Projection, ReadoutCrossEntropy, Trial
from nestgrad.tasks import EVALUATION_FIRST_BATCH

__all__ = ["ADAM_STATE", "EventpropLearner", "EventpropRecord", "TrialSet"]  # (the record and state: shared)

LOSS_WORDS = {"sum": "mean", "max": "maximum", "sum_exp": "exponentially weighted mean"}


@dataclass(frozen=True)
class TrialSet:
    """One iteration's trials (spike times per input neuron, label): what an EventProp learner runs."""

    trials: list[Trial]
    labels: np.ndarray  # int [n_trials]

    @property
    def n_trials(self) -> int:
        return len(self.trials)

    @property
    def nbytes(self) -> int:
        return 8 * sum(len(t) for trial in self.trials for ts in trial.inputs.values() for t in ts) + self.labels.nbytes


class DigitsTask:
    """Batches of the latency-coded digits: training batches walk through the training split in a new seeded order
    every epoch; evaluation batches (indices from ``EVALUATION_FIRST_BATCH`` on) walk through the test split."""

    kind = "classification"

    def __init__(self, data: Any, batch_size: int, seed: int):
        self.data, self.batch_size, self.seed = data, batch_size, seed
        self.n_in, self.n_out = data.n_in, data.n_out
        self._orders: dict[int, np.ndarray] = {}

    def _positions(self, split: str, first: int) -> np.ndarray:
        size = self.data.size(split)
        pos = np.arange(first, first + self.batch_size)
        if split == "test":
            return pos % size
        epochs, within = np.divmod(pos, size)
        out = np.empty(len(pos), np.int64)
        for e in np.unique(epochs):
            if int(e) not in self._orders:
                self._orders = {int(e): np.random.default_rng([self.seed, 0xE9, int(e)]).permutation(size)}
            out[epochs == e] = self._orders[int(e)][within[epochs == e]]
        return out

    def batch(self, iteration: int) -> TrialSet:
        if iteration >= EVALUATION_FIRST_BATCH:
            split, first = "test", (iteration - EVALUATION_FIRST_BATCH) * self.batch_size
        else:
            split, first = "train", iteration * self.batch_size
        trials = self._trials(split, self._positions(split, first), iteration)
        return TrialSet(trials, np.array([t.label for t in trials], np.int64))

    def _trials(self, split: str, positions: np.ndarray, iteration: int) -> list[Trial]:
        """The trials of the data points ``positions`` of ``split`` ("train" or "test") for batch ``iteration``: the
        hook where a task adds per-iteration noise."""
        return self.data.trials(split, positions)


class EvidenceTask:
    """Batches of the evidence-accumulation task with exact spike times (``evidence_spikes``,
    :class:`nestgrad.tasks.evidence_spikes.EvidenceSpikes`): new trials every training iteration, held-out trials
    for evaluation batches."""

    kind = "classification"

    def __init__(self, data: Any):
        self.data = data
        self.n_in, self.n_out = data.n_in, data.n_out
        self.duration, self.recall_start = data.duration, data.recall_start

    def batch(self, iteration: int) -> TrialSet:
        trials = self.data.trials(iteration)
        return TrialSet(trials, np.array([t.label for t in trials], np.int64))


class YinYangTask(DigitsTask):
    """Batches of the Yin-Yang spike times (:class:`nestgrad.tasks.yinyang.YinYangSpikes`): training batches walk
    through the 5,000 training points in a new seeded order every epoch; evaluation batch k holds the test points
    k * batch_size ... (k + 1) * batch_size - 1 and must lie inside the 1,000 test points (no wrap-around: every test
    point counts once; evaluate with batches * batch_size <= 1000)."""

    def batch(self, iteration: int) -> TrialSet:
        if iteration >= EVALUATION_FIRST_BATCH:
            first = (iteration - EVALUATION_FIRST_BATCH) * self.batch_size
            size = self.data.size("test")
            if first + self.batch_size > size:
                raise ConfigError(
                    f"yinyang: evaluation batch {iteration - EVALUATION_FIRST_BATCH} (test points {first} .. "
                    f"{first + self.batch_size - 1}) lies beyond the {size} test points; evaluate at most "
                    f"{size // self.batch_size} batches of task.batch_size = {self.batch_size}"
                )
        return super().batch(iteration)

    def _trials(self, split: str, positions: np.ndarray, iteration: int) -> list[Trial]:
        """Training points carry the input jitter when configured (fresh noise per iteration, seeded by it); test
        points never do."""
        rng = np.random.default_rng([self.seed, 0x717, iteration]) if split == "train" else None
        return self.data.trials(split, positions, rng=rng)


class EventpropLearner(EventpropNestLearner):
    """The learner of the ``eventprop`` architecture (the contract of :class:`nestgrad.networks.base.Learner`; the
    run in NEST: :class:`~nestgrad.networks.eventprop_learner.EventpropNestLearner`)."""

    hidden_population = "hid"

    def __init__(self, config: EventpropConfig, optimizer: Any, n_in: int, n_out: int, resolution: float):
        super().__init__()
        self.config, self.optimizer, self.resolution = config, optimizer, resolution
        self.initial_eta = float(getattr(optimizer, "eta", 0.0))
        self.n_in, self.n_out = n_in, n_out
        self.trial_duration = 20.0  # ms, T of every trial: the architecture's factory sets the task's
        # ms, the loss's response window [window_start, T]: network.params.window_start, else the task's (factory)
        self.window_start = 0.0 if config.window_start is None else float(config.window_start)
        if config.output == "spiking":
            self.output_key = "trial_t_first"
        defaults = type(optimizer)() if dataclasses.is_dataclass(optimizer) else None
        if getattr(optimizer, "sign_constrained", False):
            raise ConfigError(
                "optimizer.sign_constrained = true: the eventprop architecture keeps Dale's law with "
                "network.params.dale (and inhibitory_fraction)"
            )
        if defaults is not None and (optimizer.Wmin, optimizer.Wmax) != (defaults.Wmin, defaults.Wmax):
            raise ConfigError(
                f"optimizer.Wmin/Wmax = ({optimizer.Wmin}, {optimizer.Wmax}): the eventprop architecture bounds its "
                "weights per projection with network.params.w_in_min, w_in_max, w_rec_min, w_rec_max, w_out_min, "
                "w_out_max"
            )
        named = {"delay": self.config.delay} | {f"delays.{k}": v for k, v in self.config.delays.items()}
        for key, delay in named.items():
            steps = delay / resolution
            if abs(steps - round(steps)) > 1e-9 * max(steps, 1.0) or round(steps) < 1:
                raise ConfigError(
                    f"network.params.{key} = {delay} ms: EventProp in NEST needs a positive multiple of "
                    f"task.resolution = {resolution} ms"
                )

    # -- description ---------------------------------------------------------------------------------------------
    def projections(self) -> dict[str, tuple[str, str, int, int]]:
        """name -> (source population, target population, n_source, n_target), in build order."""
        h = self.config.n_hidden
        bias = self.config.bias_time is not None
        out = {"in_hid": ("in", "hid", self.n_in, h)}
        if bias:
            out["bias_hid"] = ("bias", "hid", 1, h)
        if self.config.recurrent:
            out["hid_hid"] = ("hid", "hid", h, h)
        out["hid_out"] = ("hid", "out", h, self.n_out)
        if bias:
            out["bias_out"] = ("bias", "out", 1, self.n_out)
        return out

    @property
    def spiking_output(self) -> bool:
        return self.config.output == "spiking"

    def network(self, weights: dict[str, np.ndarray], T: float) -> Network:
        """The network as the reference engine and nest_engine.eventprop take it."""
        c = self.config
        out = (
            Population("out", self.n_out, "lif", c.output_neuron_params())
            if self.spiking_output
            else Population("out", self.n_out, "li", c.readout_params())
        )
        bias = (Population("bias", 1, "input"),) if c.bias_time is not None else ()
        pops = (Population("in", self.n_in, "input"), *bias, Population("hid", c.n_hidden, "lif", c.hidden_params()),
                out)  # fmt: skip
        projs = []
        for name, (src, tgt, n_src, n_tgt) in self.projections().items():
            s, t = np.divmod(np.arange(n_src * n_tgt), n_tgt)
            keep = s != t if src == tgt else np.ones(len(s), bool)  # no autapses
            delay = float(c.delays.get(name, c.delay))
            projs.append(Projection(name, src, tgt, s[keep], t[keep], np.asarray(weights[name], float),
                                    np.full(int(keep.sum()), delay)))  # fmt: skip
        return Network(pops, tuple(projs), T)

    def signs(self) -> dict[str, np.ndarray]:
        """Dale's law (network.params.dale): population -> sign per neuron (+1 excitatory: outgoing weights >= 0,
        -1 inhibitory: <= 0); the inputs are excitatory, the last ``n_inhibitory()`` hidden neurons inhibitory.
        Empty without Dale's law."""
        if not self.config.dale:
            return {}
        hid = np.ones(self.config.n_hidden, np.int8)
        hid[self.config.n_hidden - self.config.n_inhibitory() :] = -1
        signs = {"in": np.ones(self.n_in, np.int8), "hid": hid}
        if self.config.bias_time is not None:
            signs["bias"] = np.ones(1, np.int8)  # the bias spike is an input: excitatory
        return signs

    def learning_rates(self) -> dict[str, float]:
        """eta per projection of network.params.learning_rates, scaled by the optimizer's decay so far."""
        scale = self.decay_scale()
        return {k: float(v) * scale for k, v in self.config.learning_rates.items()}

    def bounds(self) -> dict[str, tuple[float, float]]:
        """(Wmin, Wmax) in pA per bounded projection (network.params.w_in_min ... w_out_max)."""
        return {k: v for k, v in self.config.weight_bounds().items() if k in self.projections()}

    def loss(self) -> ReadoutCrossEntropy | FirstSpikeLoss:
        if self.spiking_output:
            return FirstSpikeLoss("out", **self.config.first_spike_constants())
        return ReadoutCrossEntropy("out", self.config.loss, self.config.tau_w, window_start=self.window_start)

    def trials(self, batch: TrialSet | list[Trial]) -> list[Trial]:
        """The trials as the network takes them: with the bias input's spike added (bias_time)."""
        trials = list(batch.trials if isinstance(batch, TrialSet) else batch)
        if self.config.bias_time is None:
            return trials
        if not self.config.bias_time < self.trial_duration:
            raise ConfigError(
                f"network.params.bias_time = {self.config.bias_time} ms: need < the trial duration "
                f"{self.trial_duration} ms"
            )
        bias = [[float(self.config.bias_time)]]
        return [Trial(dict(t.inputs) | {"bias": bias}, t.label, t.target, t.target_edges) for t in trials]

    def first_spike_times(
        self, weights: dict[str, np.ndarray], trials: list[Trial], resolution: float, threads: int = 1
    ) -> np.ndarray:
        """Forward pass in NEST with ``weights`` and no learning (spiking outputs): [n_trials, n_out] first spike
        time of every output neuron per trial (trial-local ms, +inf: no spike). Resets the NEST kernel."""
        if not self.spiking_output:
            raise ConfigError("first_spike_times needs network.params.output = 'spiking'")
        net = self.network(weights, self.trial_duration)
        fwd = engine.run_forward(net, self.trials(trials), resolution=resolution, threads=threads)
        first = int(sum(p.size for p in net.populations[:-1]))  # "out" is the last population
        out = np.full((len(trials), self.n_out), np.inf)
        for k, per_neuron in enumerate(fwd.spike_times):
            for j in range(self.n_out):
                times = per_neuron.get(first + j, np.zeros(0))
                if len(times):
                    out[k, j] = float(times[0])
        return out

    def describe(self) -> str:
        c = self.config
        kind = "recurrent" if c.recurrent else "feedforward"
        bias = f" + bias spike at {c.bias_time} ms" if c.bias_time is not None else ""
        head = f"EventProp in NEST: {self.n_in} inputs{bias} -> {c.n_hidden} {kind} eventprop_iaf_psc_exp_ps -> "
        if self.spiking_output:
            k = c.first_spike_constants()
            return (
                head + f"{self.n_out} spiking eventprop_iaf_psc_exp_ps outputs, first-spike loss (Göltz et al. 2021: "
                f"xi {k['xi']:g}, alpha {k['alpha']:g}, beta {k['beta']:g}, tau_s {k['tau_s']:g} ms), prediction = "
                "earliest output spike"
            )
        window = f" over [{self.window_start:g}, {self.trial_duration:g}] ms" if self.window_start > 0.0 else ""
        return head + f"{self.n_out} readouts, cross-entropy on the readouts' {LOSS_WORDS[c.loss]} voltage{window}"

    @property
    def n_recorded(self) -> int:
        return self.config.n_hidden

    def initial_weights(self, seed: int) -> dict[str, np.ndarray]:
        c = self.config
        rng = np.random.default_rng([seed, 0xE7])
        stats = {"in_hid": (c.w_in_mean, c.w_in_std), "hid_hid": (c.w_rec_mean, c.w_rec_std),
                 "hid_out": (c.w_out_mean, c.w_out_std), "bias_hid": (c.w_in_mean, c.w_in_std),
                 "bias_out": (c.w_out_mean, c.w_out_std)}  # fmt: skip
        signs = self.signs()
        bounds = self.bounds()
        fields = {"in_hid": "w_in", "hid_hid": "w_rec", "hid_out": "w_out"}
        out = {}
        for name, (src, tgt, n_src, n_tgt) in self.projections().items():
            n = n_src * n_tgt - (n_src if src == tgt else 0)
            mean, std = stats[name]
            w = rng.normal(mean, std, n)
            if src in signs:  # Dale's law: |w| with the source's sign (edges are source-major, no autapses)
                s, t = np.divmod(np.arange(n_src * n_tgt), n_tgt)
                w = signs[src][s[s != t] if src == tgt else s] * np.abs(w)
            lo, hi = bounds.get(name, (-math.inf, math.inf))
            if w.size and (w.min() < lo or w.max() > hi):
                f = fields[name]
                raise ConfigError(
                    f"initial weights of {name!r} span [{w.min():.4g}, {w.max():.4g}] pA, outside network.params."
                    f"{f}_min/{f}_max = [{lo:g}, {hi:g}]: widen the bounds or narrow {f}_mean/{f}_std"
                )
            out[name] = w
        return out

    # -- running (the run itself: EventpropNestLearner) --------------------------------------------------------------
    def optimizer_settings(self, batch_size: int) -> dict[str, Any]:
        """The synapses' optimizer dictionary (batch_size in trials; bounds: :meth:`bounds`, :meth:`signs`)."""
        o = self.optimizer
        d: dict[str, Any] = {"type": o.type.value, "batch_size": batch_size, "eta": float(o.eta)}
        if o.type == OptimizerType.ADAM:
            d |= {"beta_1": float(o.beta_1), "beta_2": float(o.beta_2), "epsilon": float(o.epsilon)}
        if self.config.max_trial_gradient is not None:
            d["max_trial_gradient"] = float(self.config.max_trial_gradient)
        return d

    def start_kernel(self, built: Any) -> None:
        # Göltz et al.'s bumping state (doubling on consecutive bumps of one layer) starts afresh in every kernel, so
        # that a run resumed from a checkpoint goes on exactly as an uninterrupted one (both start a kernel there)
        self._bump_layer: str | None = None
        self._bump_value = float(self.config.weight_bump)
        self._spiking_trials_before = np.zeros(self.config.n_hidden, np.int64)

    def after_batch(self, built: Any, hid: list[int], y: np.ndarray, n_trials: int) -> None:
        if self.spiking_output and self.config.weight_bump > 0:
            self._bump_protocol(built, hid, ~np.isfinite(y).all(axis=0), n_trials, self.comm)

    def _bump_protocol(self, built: Any, hid: list[int], silent_out: np.ndarray, n_trials: int, comm: Any) -> None:
        """Weight bumping after a training batch (Göltz et al. 2021). With ``weight_bump_hidden_missing`` = f: if more
        than a fraction f of the batch's (trial, hidden neuron) pairs had no spike, the hidden neurons that missed a
        spike in some trial are bumped (and the outputs are not looked at); otherwise the outputs that missed a spike
        in some trial are. A bump raises every weight into those neurons by ``weight_bump``, or with
        ``weight_bump_doubling`` by twice the last bump if the same layer was bumped after the previous batch too (at
        most ``weight_bump_max``).
        With ``weight_bump_skips_step`` the bumped batch takes no optimizer step (its gradient is dropped), as theirs;
        otherwise its step is added on top of the bump."""
        cfg = self.config
        layer: str | None = None
        targets = np.zeros(0, np.int64)
        if cfg.weight_bump_hidden_missing is not None:
            now = np.array(
                [int(d["n_spiking_trials"][0]) for d in engine.gather_nodes(built, hid, ("n_spiking_trials",), comm)]
            )
            spiking = now - self._spiking_trials_before
            self._spiking_trials_before = now
            if 1.0 - spiking.sum() / (n_trials * len(hid)) > cfg.weight_bump_hidden_missing:
                layer, targets = "hid", np.asarray(hid)[spiking < n_trials]
        if layer is None and silent_out.any():
            layer, targets = "out", np.flatnonzero(silent_out) + built.cnet.offsets["out"]
        if layer is not None:
            doubled = cfg.weight_bump_doubling and layer == self._bump_layer
            cap = math.inf if cfg.weight_bump_max is None else float(cfg.weight_bump_max)
            self._bump_value = min(2.0 * self._bump_value, cap) if doubled else float(cfg.weight_bump)
            self._bump(built, targets, self._bump_value, comm)
            if cfg.weight_bump_skips_step:
                engine.discard_batch(built)
        self._bump_layer = layer

    def _bump(self, built: Any, targets: np.ndarray, value: float, comm: Any) -> None:
        """Every weight into the neurons at global positions ``targets`` grows by ``value`` (pA; both copies of each
        edge). Only these edges are read and written; ``targets`` is the same on every rank (what it is computed
        from is gathered), and each rank bumps the connections it holds, so ``comm`` is not needed."""
        engine.add_to_weights_into(built, targets, value)

    # -- scoring -----------------------------------------------------------------------------------------------------
    def metrics(self, batch: TrialSet, recorded: EventpropRecord) -> dict[str, float]:
        if self.spiking_output:
            return self._first_spike_metrics(batch, recorded)
        return self.readout_metrics(batch, recorded)

    def _first_spike_metrics(self, batch: TrialSet, recorded: EventpropRecord) -> dict[str, float]:
        """The first-spike loss as the reference engine computes it (a missing spike counts at t = T), accuracy
        (prediction = the earliest output spike; a trial without any output spike counts as wrong), the label
        neuron's mean first-spike time (ms, T where it did not spike) and the hidden rate."""
        T = recorded.T
        t_first = np.asarray(recorded.y, float)
        t = np.where(np.isfinite(t_first), t_first, T)
        k = self.config.first_spike_constants()
        scale = k["xi"] * k["tau_s"]
        labels = batch.labels
        rows = np.arange(len(labels))
        z = -t / scale
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        reg = k["alpha"] * (np.exp(t[rows, labels] / (k["beta"] * k["tau_s"])) - 1.0)
        spiked = np.isfinite(t_first).any(axis=1)
        correct = spiked & (np.argmin(t, axis=1) == labels)
        return {
            "loss": float(np.mean(-logp[rows, labels] + reg)),
            "accuracy": float(np.mean(correct)),
            "t_label_ms": float(np.mean(t[rows, labels])),
            # output neurons without a spike in at least one trial of the batch (weight_bump raises their weights)
            "silent_outputs": float(np.sum(~np.isfinite(t_first).all(axis=0))),
            "rate_hz": recorded.hidden_spikes / (self.config.n_hidden * batch.n_trials * T / 1000.0),
        }

    def divergence_scale(self, batch: TrialSet) -> float:
        if self.spiking_output:  # every output silent: equal softmax, the regulariser at t = T
            k = self.config.first_spike_constants()
            return math.log(self.n_out) + k["alpha"] * (math.exp(self.trial_duration / (k["beta"] * k["tau_s"])) - 1)
        return super().divergence_scale(batch)

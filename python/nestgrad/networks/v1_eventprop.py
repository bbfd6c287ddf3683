"""The Billeh V1 column (:mod:`nestgrad.networks.v1`) as a network of the EventProp reference engine
(:mod:`nestgrad.reference.eventprop`, kind ``glif3``), which ``nest_engine.eventprop`` builds in NEST with
``eventprop_glif3_psc_ps``: the same cells, parameters, synapses and LGN trials as the e-prop column.

Mapping (``network.gradient_algorithm = "eventprop"``, table ``[network.v1.eventprop]``,
:class:`~nestgrad.config.v1.V1EventpropConfig`):

* populations: ``lgn`` (``input``, one per LGN unit), ``v1`` (``glif3``, the column's per-neuron GLIF3 fits:
  ``V_reset = E_L``, after-spike currents from 0, ``asc_r = 1``, the four ports' tau_syn), ``out`` (``li``, one leaky
  readout per class);
* projections: EventProp takes one receptor port per projection, so LGN -> V1 and V1 -> V1 are split by port, i.e. by
  (source, target) = (excitatory/inhibitory, excitatory/inhibitory): ``lgn_rec_ee`` (port 1), ``lgn_rec_ei`` (3),
  ``rec_rec_ee`` (1), ``rec_rec_ie`` (2), ``rec_rec_ei`` (3), ``rec_rec_ii`` (4), each in the e-prop column's
  canonical edge order; ``rec_out`` (pool neuron -> its class's readout) as in the e-prop column;
* delays: Billeh's (V1 -> V1 per class pair, LGN 1.7 ms) on the EventProp grid (``resolution``; rounded to it, at
  least one step: at 1 ms the e-prop column's static delays); readout edges one e-prop step (1 ms);
* Dale's law (``optimizer.sign_constrained``): every split projection has one source sign, so it becomes the
  projection's weight bounds (excitatory: [max(Wmin, 0), Wmax], inhibitory: [Wmin, min(Wmax, 0)]); the readout is
  the task's, not the column's, and keeps the optimizer's bounds (as in the e-prop column);
* trials: each task trial is one EventProp trial that starts at rest; an LGN spike in step j of the trial is an
  input spike at (j + 1) x ``task.resolution`` ms (the end of the step); the trial ends at the end of the response
  window (T), where the loss (:class:`~nestgrad.reference.eventprop.ReadoutCrossEntropy` over [window start, T])
  stops: later events cannot change it, so the gradient is that of the whole trial;
* Poisson background (``network.v1.background_rate`` > 0): the e-prop column's generator per neuron becomes an
  input neuron ``bg`` per V1 neuron whose spikes are drawn in advance, per trial (continuous-time Poisson at the
  rate, seeded by the network seed and the trial's LGN spikes: :func:`background_trial_spikes`), so that NEST and
  the reference engine replay the same ones, forward and backward; the e-prop column's background weights
  (``V1Network.background_weights``) on the excitatory port of the target (``background_ee``, ``background_ei``),
  frozen (learning rate 0).

Training: :class:`V1EventpropLearner` runs this network through the Trainer (``nestgrad train``; registered for
``("v1", "eventprop")`` in :mod:`nestgrad.networks.registry`), with the run shared by every EventProp learner
(:class:`~nestgrad.networks.eventprop_learner.EventpropNestLearner`).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from nestgrad.config import OptimizerConfig, OptimizerType
from nestgrad.config.v1 import V1EventpropConfig
from nestgrad.errors import ConfigError
from nestgrad.nest_engine import eventprop as engine
from nestgrad.networks import v1_data as D
from nestgrad.networks.eventprop_learner import EventpropNestLearner
from nestgrad.networks.v1 import V1Network
from nestgrad.reference.eventprop import Network, Population, Projection, ReadoutCrossEntropy, Trial
from nestgrad.reference.eventprop.neurons.glif3 import GLIF3_DEFAULTS

# the e-prop column's projections that EventProp splits by receptor port, and the port of each (source, target) pair
SPLIT = ("lgn_rec", "rec_rec")
# the Poisson background's projections (fixed: learning rate 0), onto excitatory and inhibitory targets
BACKGROUND = ("background_ee", "background_ei")
PAIR_OF_PORT = {port: s + t for (s, t), port in D.RECEPTOR.items()}
LOSS_WORDS = {"sum": "mean", "max": "maximum", "sum_exp": "exponentially weighted mean"}


@dataclass(frozen=True)
class ResponseWindow:
    """The loss window of every trial (ms from the trial start): [start, end); the EventProp trial ends at ``end``."""

    start: float
    end: float


def _interval(window: np.ndarray, resolution: float) -> ResponseWindow:
    on = np.flatnonzero(np.asarray(window) > 0)
    if on.size == 0 or on[-1] - on[0] + 1 != on.size:
        raise ConfigError("EventProp V1 column: the task's response window must be one interval of steps")
    return ResponseWindow(float(on[0] * resolution), float((on[-1] + 1) * resolution))


def response_window(batch: Any, resolution: float) -> ResponseWindow:
    """The response window of a V1 task's batch (``TrialBatch``: ``learning_window`` per step): one interval, the
    same in every trial (:class:`ConfigError` otherwise: one loss window per network)."""
    n = batch.n_trials
    windows = np.asarray(batch.learning_window, float).reshape(n, batch.trial_steps)
    if not np.all(windows == windows[0]):
        raise ConfigError(
            "EventProp V1 column: the trials of this task have different response windows (v1_multi); one loss "
            "window per network is supported"
        )
    return _interval(windows[0], resolution)


def task_response_window(task: Any, resolution: float) -> ResponseWindow:
    """The response window of a V1 task (:mod:`nestgrad.tasks.v1`: every task keeps its ``window`` per step; the
    five tasks together, ``v1_multi``, keep theirs in ``tasks``), known before any batch is drawn; a
    :class:`ConfigError` where the task's trials have different windows (one loss window per network)."""
    windows = {sub.name: _interval(sub.window, resolution) for sub in getattr(task, "tasks", [task])}
    if len(set(windows.values())) > 1:
        listed = ", ".join(f"{name} [{w.start:g}, {w.end:g})" for name, w in windows.items())
        raise ConfigError(
            f"EventProp V1 column: task {task.name!r} has trials with different response windows ({listed} ms); "
            "one loss window per network is supported: train the tasks one at a time"
        )
    return next(iter(windows.values()))


def background_trial_spikes(lgn: list[np.ndarray], n: int, rate_hz: float, T: float, seed: int) -> list[np.ndarray]:
    """One trial's Poisson background: for each of ``n`` neurons spike times in [0, T) ms (sorted; a Poisson number
    at ``rate_hz`` x T, uniform times: a continuous-time Poisson process). The random stream is seeded by ``seed``
    and a checksum of the trial's LGN spikes ``lgn`` (per unit), so a trial gets the same background wherever and
    whenever it is drawn (both engines, a resumed run) and different trials get different ones."""
    digest = 0
    for unit, times in enumerate(lgn):
        digest = zlib.crc32(np.asarray(times, np.float64).tobytes(), zlib.crc32(unit.to_bytes(4, "little"), digest))
    rng = np.random.default_rng([int(seed), 0xB6, digest])
    counts = rng.poisson(rate_hz * T / 1000.0, n)
    times = rng.uniform(0.0, T, int(counts.sum()))
    return [np.sort(part) for part in np.split(times, np.cumsum(counts)[:-1])]


def lgn_trials(batch: Any, resolution: float, T: float) -> list[Trial]:
    """The LGN spikes of a V1 task's batch as EventProp trials: the spike of unit i in step j of a trial is an input
    spike at the end of the step, (j + 1) x ``resolution`` ms (as the e-prop column's generators emit data step j;
    and never at t = 0, which NEST's EventProp schedule cannot deliver); spikes at or after ``T`` (the window's end)
    cannot reach the loss and are dropped. Labels from the batch."""
    spikes = np.asarray(batch.input_spikes, bool)
    steps = batch.trial_steps
    if batch.labels is None:
        raise ConfigError("EventProp V1 column: the task has no labels (a classification task is needed)")
    out = []
    for k in range(batch.n_trials):
        j, unit = np.nonzero(spikes[k * steps : (k + 1) * steps])
        t = (j + 1) * resolution
        keep = t < T
        j, unit, t = j[keep], unit[keep], t[keep]
        order = np.argsort(unit, kind="stable")
        per_unit = np.split(t[order], np.searchsorted(unit[order], np.arange(1, spikes.shape[1])))
        out.append(Trial({"lgn": per_unit}, label=int(batch.labels[k])))
    return out


@dataclass(frozen=True)
class V1EventpropColumn:
    """The column as an EventProp network, and the way back to the e-prop column's projections."""

    network: Network
    loss: ReadoutCrossEntropy
    settings: V1EventpropConfig
    # EventProp projection -> (e-prop projection, indices into its canonical edge arrays)
    edges: dict[str, tuple[str, np.ndarray]]
    bounds: dict[str, tuple[float, float]]  # Dale's law as per-projection bounds (pA); empty without it
    window: ResponseWindow
    sizes: dict[str, int]  # edges per e-prop array (the threshold read-out leaves pool 0's readout edges out)

    @property
    def resolution(self) -> float:
        return self.settings.resolution

    def split(self, weights: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The e-prop column's weights (``lgn_rec``, ``rec_rec``, ``rec_out``) per EventProp projection."""
        return {name: np.asarray(weights[src], float)[idx] for name, (src, idx) in self.edges.items()}

    def join(self, weights: Mapping[str, np.ndarray], fill: float = 0.0) -> dict[str, np.ndarray]:
        """EventProp projections' values (weights, gradients, Adam's state) back in the e-prop column's arrays,
        ``fill`` on edges the EventProp network leaves out (pool 0's readout edges with the threshold read-out:
        weight 0, Adam's state as never stepped)."""
        out = {src: np.full(n, float(fill)) for src, n in self.sizes.items()}
        for name, (src, idx) in self.edges.items():
            out[src][idx] = weights[name]
        return out


def _glif3_params(net: V1Network) -> dict[str, np.ndarray]:
    """Per-neuron arrays of the glif3 population from the e-prop column's parameters (the GLIF3 keys only; the
    e-prop settings, V_m and the surrogate have no place in EventProp)."""
    params = net.neuron_params
    out = {}
    for key in GLIF3_DEFAULTS:
        if key not in params[0]:
            continue  # (I_e: the column has none; the default 0)
        out[key] = np.array([p[key] for p in params], float)
    return out


def _on_grid(delays: np.ndarray, resolution: float) -> np.ndarray:
    """Delays rounded to the grid, at least one step (exact where they lie on it)."""
    return np.maximum(np.round(np.asarray(delays, float) / resolution), 1.0) * resolution


def v1_eventprop_column(
    net: V1Network,
    weights: Mapping[str, np.ndarray],
    window: ResponseWindow,
    settings: V1EventpropConfig | None = None,
) -> V1EventpropColumn:
    """The column of ``net`` with ``weights`` (``initial_weights`` or trained; ``feedback`` is not used: EventProp
    has exact gradients) as an EventProp network whose trials end at ``window.end``.

    With a Poisson background (``network.v1.background_rate`` > 0) the network has the input population ``bg`` (one
    per V1 neuron) and its fixed projections ``background_ee``/``background_ei`` (:data:`BACKGROUND`); the trials
    carry its spikes (:func:`background_trial_spikes`). Raises :class:`ConfigError` for a readout learning
    rate given twice (``network.v1.readout_eta`` > 0 and ``network.v1.eventprop.learning_rates.rec_out``), weights
    of the wrong size, or a window that does not fit the trial."""
    c = net.config
    settings = settings or c.eventprop_config()
    if c.readout_eta > 0 and "rec_out" in settings.learning_rates:
        raise ConfigError(
            f"network.v1.readout_eta = {c.readout_eta!r} and network.v1.eventprop.learning_rates.rec_out = "
            f"{settings.learning_rates['rec_out']!r} both set the readout's learning rate: keep one"
        )
    if not 0.0 <= window.start < window.end:
        raise ConfigError(f"response window [{window.start}, {window.end}) ms: need 0 <= start < end")
    lay = net.layout
    sizes = {"lgn_rec": lay.lgn_src.size, "rec_rec": lay.rec_src.size, "rec_out": net.out_src.size}
    for key, size in sizes.items():
        w = np.asarray(weights[key])
        if w.shape != (size,) or not np.all(np.isfinite(w)):
            raise ConfigError(f"weights[{key!r}]: {size} finite values expected, got shape {w.shape}")
    res = settings.resolution
    edge_arrays = {
        "lgn_rec": (lay.lgn_src, lay.lgn_tgt, lay.lgn_receptor, np.full(lay.lgn_src.size, D.LGN_DELAY_MS)),
        "rec_rec": (lay.rec_src, lay.rec_tgt, lay.rec_receptor, lay.rec_delay),
    }
    excitatory_source = {"e": True, "i": False}
    o: OptimizerConfig = net.optimizer
    projections, edges, bounds = [], {}, {}
    for key in SPLIT:
        src, tgt, receptor, delay = edge_arrays[key]
        source_pop = "lgn" if key == "lgn_rec" else "v1"
        for port in np.unique(receptor):
            idx = np.flatnonzero(receptor == port)  # ascending: the canonical order within the port
            pair = PAIR_OF_PORT[int(port)]
            name = f"{key}_{pair}"
            w = np.asarray(weights[key], float)[idx]
            d = _on_grid(delay[idx], res)
            projections.append(Projection(name, source_pop, "v1", src[idx], tgt[idx], w, d, receptor=int(port)))
            edges[name] = (key, idx)
            if o.sign_constrained:  # one source sign per projection: Dale's law as its bounds
                bounds[name] = (max(o.Wmin, 0.0), o.Wmax) if excitatory_source[pair[0]] else (o.Wmin, min(o.Wmax, 0.0))
    if c.background_rate > 0:  # one input per V1 neuron on its target's excitatory port, the e-prop weights
        port = net.excitatory_port_per_neuron()
        w_bg = net.background_weights()
        for name in BACKGROUND:
            tgt = np.flatnonzero(port == D.RECEPTOR[("e", name[-1])])
            if not tgt.size:
                continue
            d = _on_grid(np.full(tgt.size, net.resolution), res)
            projections.append(Projection(name, "bg", "v1", tgt, tgt, w_bg[tgt], d, receptor=int(port[tgt[0]])))
            if o.sign_constrained:
                bounds[name] = (max(o.Wmin, 0.0), o.Wmax)
    readout = {"C_m": settings.readout_C_m, "tau_m": settings.readout_tau_m, "tau_syn": settings.readout_tau_syn,
               "E_L": 0.0, "I_e": 0.0}  # fmt: skip
    out_edges = np.arange(net.out_src.size)
    if settings.readout == "threshold":  # pool 1 -> readout 1; readout 0 held at y = threshold
        if net.n_out != 2:
            raise ConfigError(
                f"network.v1.eventprop.readout = 'threshold' is for binary tasks; this task has {net.n_out} classes"
            )
        out_edges = np.flatnonzero(net.out_tgt == 1)
        readout["I_e"] = np.array([threshold_current(settings, window), 0.0])
    readout_delay = _on_grid(np.full(out_edges.size, net.resolution), res)
    projections.append(
        Projection("rec_out", "v1", "out", net.out_src[out_edges], net.out_tgt[out_edges],
                   np.asarray(weights["rec_out"], float)[out_edges], readout_delay)
    )  # fmt: skip
    edges["rec_out"] = ("rec_out", out_edges)
    background = (Population("bg", lay.cls.size, "input"),) if c.background_rate > 0 else ()
    pops = (
        Population("lgn", net.n_in, "input"),
        *background,
        Population("v1", lay.cls.size, "glif3", _glif3_params(net)),
        Population("out", net.n_out, "li", readout),
    )
    loss = ReadoutCrossEntropy("out", settings.loss, settings.tau_w, window_start=window.start)
    network = Network(pops, tuple(projections), window.end)
    return V1EventpropColumn(network, loss, settings, edges, bounds, window, sizes)


def threshold_current(settings: V1EventpropConfig, window: ResponseWindow) -> float:
    """The constant current (pA) that holds an input-free leaky readout, from rest at the trial start, at the value
    ``settings.threshold`` over the response window: v(t) = (I tau_m / C_m)(1 - exp(-t / tau_m)), so y = its mean
    over [start, end) (``loss = "sum"``) or its maximum v(end) (``"max"``) is proportional to I."""
    tau, c = settings.readout_tau_m, settings.readout_C_m
    start, end = window.start, window.end
    if settings.loss == "max":
        per_pa = tau / c * -math.expm1(-end / tau)
    else:
        per_pa = tau / c * (1.0 - tau * (math.exp(-start / tau) - math.exp(-end / tau)) / (end - start))
    assert settings.threshold is not None
    return float(settings.threshold) / per_pa


def optimizer_settings(optimizer: OptimizerConfig, batch_size: int) -> dict[str, Any]:
    """The EventProp synapses' optimizer dictionary (one step per batch of ``batch_size`` trials; the optimizer's
    Wmin, Wmax for the projections without bounds of their own)."""
    d: dict[str, Any] = {"type": optimizer.type.value, "batch_size": int(batch_size), "eta": float(optimizer.eta),
                         "Wmin": float(optimizer.Wmin), "Wmax": float(optimizer.Wmax)}  # fmt: skip
    if optimizer.type == OptimizerType.ADAM:
        d |= {"beta_1": float(optimizer.beta_1), "beta_2": float(optimizer.beta_2), "epsilon": float(optimizer.epsilon)}
    if not (math.isfinite(d["eta"]) and d["eta"] > 0):
        raise ConfigError(f"optimizer.eta = {optimizer.eta!r}: need > 0")
    return d


class V1EventpropLearner(EventpropNestLearner):
    """The column trained with EventProp inside NEST (``architecture = "v1"``, ``gradient_algorithm =
    "eventprop"``): the Learner contract of :class:`~nestgrad.networks.eventprop_learner.EventpropNestLearner` on the
    network of :func:`v1_eventprop_column`. Every synapse learns (LGN -> V1, V1 -> V1 and the readout), with the
    optimizer inside NEST's synapses and Dale's law as per-projection bounds.

    The weights dictionary (checkpoints) holds the e-prop column's arrays ``lgn_rec``, ``rec_rec``, ``rec_out`` in
    their canonical edge order (no ``feedback``: EventProp's gradient is exact), and the optimizer's state the same
    arrays per key (``m_rec_rec``, ``v_rec_rec``, ``b1_rec_rec``, ``b2_rec_rec``, ...), so that a checkpoint does not
    depend on how EventProp splits the projections by receptor port."""

    hidden_population = "v1"
    spiking_model = engine.GLIF3_MODEL

    def __init__(self, column: V1Network, window: ResponseWindow, task_resolution: float):
        super().__init__()
        self.net = column
        self.n_in, self.n_out = column.n_in, column.n_out
        self.resolution = float(task_resolution)
        self.window = window
        self.trial_duration = window.end
        self.settings = column.config.eventprop_config()
        if column.optimizer.batch_size != 1:
            raise ConfigError(
                f"optimizer.batch_size = {column.optimizer.batch_size!r}: EventProp takes one optimizer step per "
                "iteration (task.batch_size trials); optimizer.batch_size counts e-prop's time steps: leave it at 1"
            )
        # the translation, made once (refuses a background, a readout eta given twice and bad windows now); the
        # weights of a run replace the initial ones (network())
        self.column = v1_eventprop_column(column, self.initial_weights(column.config.seed), window, self.settings)
        # eta per weight array at iteration 0 (the Trainer's decay replaces self.optimizer and scales them alike)
        self.initial_eta = float(column.optimizer.eta)
        self._rates = dict(self.settings.learning_rates)
        if column.config.readout_eta > 0:
            self._rates["rec_out"] = float(column.config.readout_eta)

    @property
    def optimizer(self) -> OptimizerConfig:  # type: ignore[override]
        return self.net.optimizer

    @optimizer.setter
    def optimizer(self, value: OptimizerConfig) -> None:  # the Trainer's learning-rate decay replaces it
        self.net.optimizer = value

    # -- the network ---------------------------------------------------------------------------------------------
    def initial_weights(self, seed: int) -> dict[str, np.ndarray]:
        w = self.net.initial_weights(seed)
        out = {key: w[key] for key in SPLIT + ("rec_out",)}
        if self.settings.readout == "threshold":  # pool 0 has no readout: its edges are absent (0 in the array)
            out["rec_out"] = np.where(self.net.out_tgt == 0, 0.0, out["rec_out"])
        return out

    def network(self, weights: dict[str, np.ndarray], T: float) -> Network:
        if self.window.end != T:
            raise ConfigError(f"EventProp V1 column: trials end with the response window, at {self.window.end} ms")
        return self.column.network.with_weights(self.column.split(weights))

    def loss(self) -> ReadoutCrossEntropy:
        return self.column.loss

    def bounds(self) -> dict[str, tuple[float, float]]:
        return dict(self.column.bounds)

    def learning_rates(self) -> dict[str, float]:
        """eta per EventProp projection of the weight arrays with a rate of their own (``learning_rates``,
        ``readout_eta``), scaled by the optimizer's decay so far: every split projection of an array takes its
        array's rate."""
        scale = self.decay_scale()
        rates = {name: self._rates[key] * scale for name, (key, _) in self.column.edges.items() if key in self._rates}
        # the background's weights are the e-prop column's drive, not learned
        return rates | {p.name: 0.0 for p in self.column.network.projections if p.name in BACKGROUND}

    def trials(self, batch: Any) -> list[Trial]:
        window = response_window(batch, self.resolution)
        if window != self.window:
            raise ConfigError(
                f"EventProp V1 column: a batch's response window {window} is not the task's {self.window}"
            )
        trials = lgn_trials(batch, self.resolution, self.window.end)
        c = self.net.config
        if c.background_rate <= 0:
            return trials
        n, T = int(self.net.layout.cls.size), self.window.end
        return [
            Trial(
                dict(t.inputs) | {"bg": background_trial_spikes(t.inputs["lgn"], n, c.background_rate, T, c.seed)},
                t.label,
            )  # fmt: skip
            for t in trials
        ]

    def to_projections(self, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.column.split(values)

    def from_projections(self, values: dict[str, np.ndarray], fill: float = 0.0) -> dict[str, np.ndarray]:
        return self.column.join(values, fill)

    def optimizer_settings(self, batch_size: int) -> dict[str, Any]:
        return optimizer_settings(self.optimizer, batch_size)

    def run_resolution(self, task_resolution: float) -> float:
        return self.settings.resolution

    @property
    def n_recorded(self) -> int:
        return int(self.net.layout.cls.size)

    def describe(self) -> str:
        s, w = self.settings, self.window
        dale = ", Dale's law as bounds" if self.column.bounds else ""
        rate = self.net.config.background_rate
        bg = f", Poisson background {rate:g} Hz per neuron replayed per trial (fixed weights)" if rate > 0 else ""
        scored = f"cross-entropy of the readouts' {LOSS_WORDS[s.loss]} voltage"
        if s.readout == "threshold":
            scored = (
                f"binary cross-entropy of sigmoid(y - {s.threshold:g} mV), y = the class-1 pool readout's "
                f"{LOSS_WORDS[s.loss]} voltage"
            )
        own = "".join(f", {k} eta {v:g}" + (" (frozen)" if v == 0 else "") for k, v in self._rates.items())
        return (
            f"{self.net.describe()}; EventProp in NEST ({engine.GLIF3_MODEL}, grid {s.resolution:g} ms): trials of "
            f"{w.end:g} ms from rest, {scored} over "
            f"[{w.start:g}, {w.end:g}) ms, every synapse plastic ({self.optimizer.type.value} in NEST{dale}{own}){bg}"
        )


def make_v1_eventprop_learner(column: V1Network, task: Any, task_resolution: float) -> V1EventpropLearner:
    """The EventProp learner of ``column`` for ``task`` (a :mod:`nestgrad.tasks.v1` task): its response window is
    the loss window; every refusal (background, readout eta, tasks with several windows, optimizer batch size) is
    raised here, before anything is simulated."""
    return V1EventpropLearner(column, task_response_window(task, task_resolution), task_resolution)

"""E-prop in the original formulation (Bellec et al. 2020) exactly as NEST 3.10's ``*_bsshslm_2020`` models compute it.

``run_online_bsshslm(spec)`` replays the classic e-prop network built from ``eprop_iaf_bsshslm_2020`` or
``eprop_iaf_adapt_bsshslm_2020`` neurons, ``eprop_readout_bsshslm_2020`` readouts, ``eprop_synapse_bsshslm_2020``
synapses and ``eprop_learning_signal_connection_bsshslm_2020`` feedback, step by step in NEST's order of events.
The settings NetworkSpec has no field for live in ``spec.meta["bsshslm"]`` (see :func:`validate_bsshslm`):

=============================== =====================================================================================
``eprop_update_interval``        ms, kernel parameter; must divide the iteration (``iteration_steps`` dt)
``eprop_learning_window``        ms, kernel parameter, 0 < window <= update interval; ``spec.window`` must be 1 exactly
                                 in the last ``window`` steps of every update interval
``eprop_reset_neurons_on_update`` bool (default True), kernel parameter
``loss``                         ``"mean_squared_error"`` or ``"cross_entropy"`` (the readouts' ``loss``)
``average_gradient``             bool (default False), synapse default: divide gradients by the learning window
``readout_normalization``        bool (default: loss is cross_entropy): the readouts send each other their
                                 unnormalised signal over ``rate_connection_delayed`` (receptor 1, weight 1), as
                                 NEST's examples wire them for the softmax
``tau_m_readout``                ms (default: the readouts' tau_m), synapse parameter, kappa = exp(-dt / tau_m_readout)
``extra_steps``                  steps simulated after the data (default 5: the last data step's readout signals
                                 appear 4 steps later, and NEST's multimeter misses the last simulated step)
``rec_groups``                   several recurrent models in one network: a list of ``{"model", "n", "params"}``, the
                                 recurrent neurons in index order (``n`` neurons of ``model`` with all their NEST
                                 parameters ``params``); then ``spec.rec_model`` is the first group's model and
                                 ``spec.rec_params`` is empty. Without it every neuron is ``spec.rec_model`` with
                                 ``spec.rec_params``.
``input_flush_event_send_interval`` ms (default inf): the input parrot neurons' ``flush_event_send_interval``
=============================== =====================================================================================

``spec.optimizer`` is NEST's optimizer dictionary; its ``batch_size`` counts update intervals (the synapses call the
optimizer with ``idx_current_update``, the index of the update interval of the spike that triggers the update).

Conventions (NEST 3.10 source, verified against NEST by tests/test_reference_bsshslm.py):

* Time index ``t`` is NEST's update step; the simulation runs ``n_data + extra_steps`` steps. A spike emitted in step
  ``t`` is stamped ``t + 1`` and enters its targets in step ``t + 1``; spikes emitted in the last step are not
  delivered. Data step ``j`` is stamped ``j + 2`` at the recurrent neurons (spike generator at ``(j + 1) dt``, parrot,
  delay), i.e. ``shift = 2`` (``get_shift()`` of the recurrent models) and ``shift = 3`` for the readouts.
* Update intervals: a neuron's interval step is ``(t - shift) % T`` with C++ remainder semantics (negative for
  ``t < shift``). At interval step 0 the neurons are reset if ``eprop_reset_neurons_on_update``: recurrent v, r,
  pending spike (its reset by subtraction is dropped) and adaptation; readout v.
* Recurrent dynamics: ``v = P_i i_in + P_z_in z_in + P_v v - V_th z_prev`` (the reset of a spike is applied in the
  next step), ``P_z_in = 1`` if ``regular_spike_arrival`` else ``1 - P_v``; adaptation ``a = P_a a + z_prev``,
  threshold ``V_th + beta a``; the surrogate gradient is taken after the reset subtraction.
* Synapse ``eprop_synapse_bsshslm_2020``, per presynaptic spike stamped ``s``: if the target is a recurrent neuron and
  ``(s - 2) % T == 0`` the spike is dropped entirely (not transmitted, no state change). The first spike opens a
  window at ``s``. A spike with ``s > t_next_update + shift`` closes the open window ``[trigger, t_next_update +
  shift)``: the gradient over that window is handed to the optimizer with ``idx_current_update = (s - shift) // T``,
  and a new window opens at ``s`` (so a readout synapse's spike stamped exactly ``t_next_update + 3`` is transmitted
  but belongs to no window). Within a window ``z_bar`` (and the adaptive eligibility ``epsilon`` and ``e_bar``) start
  from zero at the trigger spike: ``z_bar = P_v z_bar + P_z_in z``, ``e = psi (z_bar - beta epsilon)``,
  ``epsilon = P_a epsilon + e``, ``e_bar = kappa e_bar + (1 - kappa) e``; the gradient is ``sum L e_bar +
  reg sum e`` (recurrent) or ``sum E z_bar`` (readout, with the readout's ``P_v``, ``P_z_in``), divided by the
  learning window's steps if ``average_gradient``.
* Firing-rate regularisation per interval: at interval step ``T - 1`` the neuron stores ``c_reg (n_spikes / T -
  f_target dt) / T`` (spikes counted since the previous store, the first count includes the steps before the first
  interval); a window uses the value of its own interval.
* Readout: ``readout_signal`` of step ``t`` is computed from the membrane potential of step ``t - 1``
  (``delay_out_norm``): MSE ``y = v[t - 1] + E_L``; cross-entropy ``y = exp(v_k) / sum_k' exp(v_k')`` at ``t - 1``
  (the other readouts' values arrive through the normalisation connections). ``error = y - target_signal``; all three
  are zeroed where ``(t - 4) % T < T - learning_window``. The target reaches the readout in step ``j + 4`` for data
  step ``j``; so do the readout signals compared with it (``SIGNAL_STEP_OFFSET``). The error of step ``t`` is stored
  as history entry ``t - 1``.
* Learning signals: the readouts' errors of step ``t`` are delivered (before any spike) at the start of step ``t + 1``
  and added, weighted by the feedback weights, to the recurrent history entry ``t - 2``
  (``LEARNING_SIGNAL_ENTRY_LAG``). A synapse computing its gradient when a spike stamped ``s`` arrives sees the
  learning signals of entries ``<= s - 3`` only: if the closing spike is stamped ``t_next_update + 3`` (the first
  stamp after the dropped one) the window's last entry has no learning signal yet and is counted as zero, as NEST
  does.
* Optimizer: NEST's gradient descent / Adam (:class:`nestgrad.reference.optimizers.OptimizerState`) with index
  ``idx_current_update``: applied when ``1 + idx // batch_size`` advances.
* Mixed models: every neuron acts with its own group's model and parameters; an e-prop synapse's eligibility trace
  uses its *target's* propagators (``P_v``, ``P_z``, adaptation), so ``z_bar`` is kept per synapse.
* Flush events (``flush_event_send_interval`` F finite, >= the update interval as NEST requires; recurrent neurons
  per group, input parrots by ``input_flush_event_send_interval``): a neuron that neither spiked nor flushed for F
  steps (``Time(ms).get_steps()``) since its last spike or flush, and has spiked before, sends a flush event in
  that step instead of a spike: stamped like a spike, seen only by the e-prop synapses, never transmitted. At a
  synapse: a flush right after a flush is ignored; otherwise a flush is treated as a spike (dropped at a recurrent
  target's interval step 0, starts the first window if the synapse saw nothing before, closes the open window),
  but it is not transmitted and the closed window's gradient is kept (NEST's ``gradient_``), not handed to the
  optimizer; the next real spike starts afresh (previous spike and window start = itself) and hands the kept
  gradient to the optimizer with its own ``idx_current_update``, whether or not it crosses an interval. A window is
  computed only if it holds inter-spike intervals (NEST's ``presyn_isis_``). One case reads NEST history entries
  that do not exist yet (undefined in NEST): a flush stamped exactly at the end of a readout synapse's window
  followed by a real spike; the engine raises a SpecError there.

Not reproduced: ``ignore_and_spike``, ``frozen`` neurons, current generators, delays other than one step,
per-neuron parameter arrays within a group.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nestgrad.reference.neurons import steps_of, surrogate_gradient
from nestgrad.reference.optimizers import OptimizerState
from nestgrad.reference.populations import time_steps
from nestgrad.reference.spec import NetworkSpec, SpecError

BSSHSLM_MODELS = ("eprop_iaf_bsshslm_2020", "eprop_iaf_adapt_bsshslm_2020")
ADAPTIVE_MODEL = "eprop_iaf_adapt_bsshslm_2020"
READOUT_MODEL = "eprop_readout_bsshslm_2020"
LOSSES = ("mean_squared_error", "cross_entropy")
SHIFT_REC = 2  # offset_gen + delay_in_rec
SHIFT_OUT = 3  # + delay_rec_out
INPUT_STAMP_OFFSET = 2  # data step j is stamped j + 2 at the recurrent neurons
SIGNAL_STEP_OFFSET = 4  # readout and target signals of data step j appear in update step j + 4
LEARNING_SIGNAL_ENTRY_LAG = 2  # readout error of step t -> learning signal of recurrent entry t - 2 (arrives t + 1)
PARROT_STEP_OFFSET = 1  # the input parrots emit data step j's spikes in update step j + 1

META_KEYS = {
    "eprop_update_interval",
    "eprop_learning_window",
    "eprop_reset_neurons_on_update",
    "loss",
    "average_gradient",
    "readout_normalization",
    "tau_m_readout",
    "extra_steps",
    "rec_groups",
    "input_flush_event_send_interval",
}
GROUP_KEYS = {"model", "n", "params"}
# parameters every recurrent neuron needs (no default in this engine: the spec must say)
REQUIRED_REC = ("C_m", "E_L", "tau_m", "V_th", "surrogate_gradient_function", "surrogate_gradient_height",
                "surrogate_gradient_width")  # fmt: skip
REQUIRED_ADAPT = ("adapt_tau",)
# NEST features this engine does not replay: accepted only at NEST's default values
REC_FIXED = {"ignore_and_spike": False, "frozen": False}
UNBOUNDED = frozenset({"V_min", "flush_event_send_interval"})  # parameters whose NEST default is infinite


def cmod(a: int, b: int) -> int:
    """C++'s ``a % b`` (the sign follows ``a``)."""
    r = abs(a) % b
    return r if a >= 0 else -r


@dataclass(frozen=True)
class RecGroup:
    """``n`` consecutive recurrent neurons of ``model`` with NEST parameters ``params``."""

    model: str
    n: int
    params: dict[str, Any]


@dataclass(frozen=True)
class BsshslmSettings:
    update_interval: int  # steps
    learning_window: int  # steps
    reset: bool
    loss: str
    average_gradient: bool
    readout_normalization: bool
    tau_m_readout: float  # ms
    extra_steps: int
    groups: tuple[RecGroup, ...] = ()  # the recurrent neurons in index order
    input_flush_steps: int | None = None  # the input parrots' flush_event_send_interval in steps (None: no flush)

    @property
    def mixed(self) -> bool:
        return len({g.model for g in self.groups}) > 1

    @property
    def flush(self) -> bool:
        """Whether any neuron sends flush events."""
        finite = [np.isfinite(g.params.get("flush_event_send_interval", np.inf)) for g in self.groups]
        return self.input_flush_steps is not None or any(finite)


def _field(key: str) -> str:
    return f"meta['bsshslm'][{key!r}]"


def _check_rec_params(where: str, model: str, params: Any, T: int, dt: float) -> None:
    """One group's (or ``rec_params``') parameters: numbers finite (V_min and flush_event_send_interval may be
    infinite), one value each, the required ones present, NEST features the engine does not replay at their
    defaults, and a finite flush interval >= the update interval (NEST refuses smaller ones)."""
    if not isinstance(params, dict):
        raise SpecError(f"{where} must be a table of parameters, found {type(params).__name__}")
    required = REQUIRED_REC + (REQUIRED_ADAPT if model == ADAPTIVE_MODEL else ())
    missing = [k for k in required if k not in params]
    if missing:
        raise SpecError(f"{where}: parameter(s) {missing} of {model} missing")
    for k, v in params.items():
        if isinstance(v, list | tuple | np.ndarray):
            raise SpecError(f"{where}.{k} has {len(v)} values: the bsshslm engine takes one value per group")
        if isinstance(v, bool | np.bool_) or not isinstance(v, int | float | np.number):
            continue
        if np.isnan(v) or (np.isinf(v) and k not in UNBOUNDED):
            raise SpecError(f"{where}.{k} = {v!r}: a finite number is required")
        if (k.startswith("tau_") or k in ("adapt_tau", "C_m")) and v <= 0:
            raise SpecError(f"{where}.{k} = {v!r}: a time constant or capacitance must be > 0")
        if k == "t_ref" and v < 0:
            raise SpecError(f"{where}.{k} = {v!r}: must be >= 0 ms")
    for k, default in REC_FIXED.items():
        if params.get(k, default) != default:
            raise SpecError(f"{where}.{k} = {params[k]!r} is not replayed by the reference engine (only {default})")
    if model != ADAPTIVE_MODEL:
        extra = sorted({"adapt_beta", "adapt_tau", "adaptation"} & set(params))
        if extra:
            raise SpecError(f"{where}: {extra} belong to {ADAPTIVE_MODEL}, not to {model}")
    _check_flush(f"{where}.flush_event_send_interval", params.get("flush_event_send_interval", np.inf), T, dt)


def _check_flush(where: str, value: Any, T: int, dt: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number) or np.isnan(value) or value <= 0:
        raise SpecError(f"{where} = {value!r} must be a duration > 0 ms (or infinite: no flush events)")
    if np.isfinite(value) and value < T * dt * (1.0 - 1e-12):
        raise SpecError(
            f"{where} = {value} ms must be >= eprop_update_interval = {T * dt} ms (NEST refuses smaller intervals)"
        )


def _groups(spec: NetworkSpec, meta: dict[str, Any], T: int) -> tuple[RecGroup, ...]:
    dt = spec.resolution
    if "rec_groups" not in meta:
        _check_rec_params("rec_params", spec.rec_model, spec.rec_params, T, dt)
        return (RecGroup(spec.rec_model, spec.n_rec, dict(spec.rec_params)),)
    raw = meta["rec_groups"]
    if not isinstance(raw, list | tuple) or not raw:
        raise SpecError(f"{_field('rec_groups')} must be a non-empty list of {{'model', 'n', 'params'}} tables")
    groups = []
    for k, g in enumerate(raw):
        where = f"{_field('rec_groups')}[{k}]"
        if not isinstance(g, dict) or set(g) != GROUP_KEYS:
            keys = sorted(g) if isinstance(g, dict) else type(g).__name__
            raise SpecError(f"{where} must have exactly the keys {sorted(GROUP_KEYS)}, found {keys}")
        if g["model"] not in BSSHSLM_MODELS:
            raise SpecError(f"{where}.model = {g['model']!r}; supported: {', '.join(BSSHSLM_MODELS)}")
        n = g["n"]
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
            raise SpecError(f"{where}.n = {n!r} must be an integer >= 1")
        _check_rec_params(f"{where}.params", g["model"], g["params"], T, dt)
        groups.append(RecGroup(g["model"], int(n), dict(g["params"])))
    total = sum(g.n for g in groups)
    if total != spec.n_rec:
        raise SpecError(f"{_field('rec_groups')}: the groups hold {total} neurons, the weights {spec.n_rec}")
    if spec.rec_model != groups[0].model:
        raise SpecError(
            f"rec_model = {spec.rec_model!r} must be the first group's model {groups[0].model!r} "
            f"({_field('rec_groups')})"
        )
    if spec.rec_params:
        raise SpecError(
            f"rec_params must be empty when {_field('rec_groups')} is given (each group has its own parameters); "
            f"found {sorted(spec.rec_params)}"
        )
    return tuple(groups)


def validate_bsshslm(spec: NetworkSpec) -> BsshslmSettings:
    """Check ``spec`` for the bsshslm engines and return its settings; errors (SpecError) name the field."""
    if spec.rec_model not in BSSHSLM_MODELS:
        raise SpecError(
            f"rec_model = {spec.rec_model!r} is not a bsshslm model; supported: {', '.join(BSSHSLM_MODELS)}"
        )
    spec.validate_common()
    meta = spec.meta.get("bsshslm")
    if not isinstance(meta, dict):
        raise SpecError("meta['bsshslm'] is missing: the bsshslm models need their kernel and synapse settings there")
    unknown = sorted(set(meta) - META_KEYS)
    if unknown:
        raise SpecError(f"meta['bsshslm']: unknown field(s) {unknown}; known: {', '.join(sorted(META_KEYS))}")
    dt = spec.resolution
    for key in ("eprop_update_interval", "eprop_learning_window"):
        if key not in meta:
            raise SpecError(f"{_field(key)} is missing")
        v = meta[key]
        if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not np.isfinite(v) or v <= 0:
            raise SpecError(f"{_field(key)} = {v!r} must be a duration > 0 ms")
        if not np.isclose(v / dt, round(v / dt)):
            raise SpecError(f"{_field(key)} = {v!r} ms is not a multiple of the resolution {dt} ms")
    T = steps_of(meta["eprop_update_interval"], dt)
    lw = steps_of(meta["eprop_learning_window"], dt)
    if lw > T:
        raise SpecError(
            f"{_field('eprop_learning_window')} = {meta['eprop_learning_window']} ms must be <= "
            f"eprop_update_interval = {meta['eprop_update_interval']} ms"
        )
    if spec.iteration_steps % T:
        raise SpecError(
            f"{_field('eprop_update_interval')} = {meta['eprop_update_interval']} ms must divide an iteration "
            f"(iteration_steps = {spec.iteration_steps})"
        )
    loss = meta.get("loss")
    if loss not in LOSSES:
        raise SpecError(f"{_field('loss')} = {loss!r} is unknown; known: {', '.join(LOSSES)}")
    if "loss" in spec.readout_params and spec.readout_params["loss"] != loss:
        raise SpecError(f"readout_params.loss = {spec.readout_params['loss']!r} contradicts {_field('loss')}")
    flags = {}
    for key, default in (
        ("eprop_reset_neurons_on_update", True),
        ("average_gradient", False),
        ("readout_normalization", loss == "cross_entropy"),
    ):
        v = meta.get(key, default)
        if not isinstance(v, (bool, np.bool_)):
            raise SpecError(f"{_field(key)} = {v!r} must be true or false")
        flags[key] = bool(v)
    tau_r = meta.get("tau_m_readout", spec.readout_params.get("tau_m"))
    if tau_r is None or isinstance(tau_r, bool) or not np.isfinite(tau_r) or tau_r <= 0:
        raise SpecError(f"{_field('tau_m_readout')} = {tau_r!r} must be > 0 ms")
    extra = meta.get("extra_steps", SIGNAL_STEP_OFFSET + 1)
    if isinstance(extra, bool) or not isinstance(extra, (int, np.integer)) or extra < 0:
        raise SpecError(f"{_field('extra_steps')} = {extra!r} must be an integer >= 0")
    groups = _groups(spec, meta, T)
    flush_in = meta.get("input_flush_event_send_interval", np.inf)
    _check_flush(_field("input_flush_event_send_interval"), flush_in, T, dt)
    window = ((np.arange(spec.window.shape[0]) % T) >= T - lw).astype(float)
    if not np.array_equal(np.asarray(spec.window, float), window):
        raise SpecError(
            f"window must be 1 exactly in the last {lw} steps of every update interval of {T} steps "
            f"({_field('eprop_learning_window')})"
        )
    return BsshslmSettings(
        T,
        lw,
        flags["eprop_reset_neurons_on_update"],
        loss,
        flags["average_gradient"],
        flags["readout_normalization"],
        float(tau_r),
        int(extra),
        groups,
        int(time_steps(flush_in, dt)) if np.isfinite(flush_in) else None,
    )


def recurrent_groups(spec: NetworkSpec) -> tuple[RecGroup, ...]:
    """The recurrent neurons of a bsshslm spec as groups of one model each (one group unless ``rec_groups``)."""
    return validate_bsshslm(spec).groups


def bsshslm_losses(readout: np.ndarray, target_signal: np.ndarray, spec: NetworkSpec, s: BsshslmSettings) -> np.ndarray:
    """Per iteration: MSE 1/2 sum (y - y*)^2, cross-entropy -sum y* log y, over the learning window's steps (readout
    and target signals as the readouts compute them, per data step)."""
    T = spec.iteration_steps
    window = spec.window > 0
    out = []
    for k in range(spec.iterations):
        sl = slice(k * T, (k + 1) * T)
        y, t = readout[sl][window[sl]], target_signal[sl][window[sl]]
        if s.loss == "mean_squared_error":
            out.append(0.5 * np.sum((y - t) ** 2))
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                out.append(-np.sum(np.where(t != 0.0, t * np.log(y), 0.0)))
    return np.array(out, dtype=float)


@dataclass
class BsshslmResult:
    weights: dict[str, np.ndarray]
    gradients: dict[str, np.ndarray]  # sum of every gradient handed to the optimizer
    readout: np.ndarray  # [data steps, n_out], readout_signal of data step j (update step j + 4)
    target_signal: np.ndarray  # [data steps, n_out]
    error_signal: np.ndarray  # [data steps, n_out]
    rec_spikes: np.ndarray  # bool [data steps, n_rec], spikes emitted in update step j + 2
    losses: np.ndarray  # per iteration, bsshslm_losses
    n_flush_events: int = 0  # flush events the e-prop synapses processed, counted per projection and sender


class _FlushClock:
    """NEST's FlushEventMechanism of ``n`` neurons: a neuron that has spiked before and sent no event (spike or
    flush) for ``interval`` steps sends a flush event instead of nothing."""

    def __init__(self, interval: np.ndarray):
        self.interval = np.asarray(interval, dtype=np.int64)
        self.last = np.zeros(self.interval.shape, dtype=np.int64)  # step of the last event; 0: none yet

    def tick(self, t: int, spike: np.ndarray) -> np.ndarray:
        flush = ~spike & (self.last > 0) & (t - self.last >= self.interval)
        self.last[spike | flush] = t
        return flush


class _Recurrent:
    """eprop_iaf_bsshslm_2020 / eprop_iaf_adapt_bsshslm_2020 neurons, one group per model (voltages relative to E_L,
    every parameter per neuron; the plain model is the adaptive one with adapt_beta = 0 and no adaptation)."""

    def __init__(self, groups: Sequence[RecGroup], dt: float):
        def per(value: Callable[[RecGroup], Any], dtype: type = float) -> np.ndarray:
            return np.concatenate([np.full(g.n, value(g), dtype=dtype) for g in groups])

        self.groups = tuple(groups)
        self.adaptive = per(lambda g: g.model == ADAPTIVE_MODEL, bool)
        E_L = per(lambda g: g.params["E_L"])
        self.V_th = per(lambda g: g.params["V_th"]) - E_L
        self.V_min = per(lambda g: g.params.get("V_min", -np.finfo(float).max)) - E_L
        self.I_e = per(lambda g: g.params.get("I_e", 0.0))
        self.P_v = per(lambda g: np.exp(-dt / g.params["tau_m"]))
        self.P_i = per(lambda g: g.params["tau_m"] / g.params["C_m"] * (1.0 - np.exp(-dt / g.params["tau_m"])))
        self.P_z = per(
            lambda g: 1.0 if g.params.get("regular_spike_arrival", True) else 1.0 - np.exp(-dt / g.params["tau_m"])
        )
        self.refr = per(lambda g: steps_of(g.params.get("t_ref", 0.0), dt), np.int64)
        self.c_reg = per(lambda g: g.params.get("c_reg", 0.0))
        self.f_target = per(lambda g: g.params.get("f_target", 0.0) / 1000.0)  # spikes per ms
        self.sg_height = per(lambda g: g.params["surrogate_gradient_height"])
        self.sg_width = per(lambda g: g.params["surrogate_gradient_width"])
        bounds = np.cumsum([0] + [g.n for g in groups])
        # the surrogate-gradient function per group: (name, neurons)
        self.sg_groups = [
            (g.params["surrogate_gradient_function"], slice(int(a), int(b)))
            for g, a, b in zip(groups, bounds[:-1], bounds[1:], strict=True)
        ]
        adapt = [g.model == ADAPTIVE_MODEL for g in groups]
        self.beta = per(lambda g: g.params.get("adapt_beta", 0.0) if g.model == ADAPTIVE_MODEL else 0.0)
        self.P_a = per(lambda g: np.exp(-dt / g.params["adapt_tau"]) if g.model == ADAPTIVE_MODEL else 0.0)
        self.any_adaptive = any(adapt)
        self.flush_steps = per(lambda g: time_steps(g.params.get("flush_event_send_interval", np.inf), dt), np.int64)
        self.dt = dt
        n = int(bounds[-1])
        self.v = per(lambda g: g.params.get("V_m", g.params["E_L"])) - E_L
        self.r = np.zeros(n, dtype=np.int64)
        self.z = np.zeros(n)
        self.i_in = np.zeros(n)
        self.a = per(lambda g: g.params.get("adaptation", 0.0) if g.model == ADAPTIVE_MODEL else 0.0)
        self.n_spikes = np.zeros(n)
        self.clock = _FlushClock(self.flush_steps)

    def psi(self, r: np.ndarray, v: np.ndarray, v_th: np.ndarray) -> np.ndarray:
        """Surrogate gradient per neuron, each group with its own function."""
        out = np.empty_like(v)
        for name, sl in self.sg_groups:
            out[sl] = surrogate_gradient(name, r[sl], v[sl], v_th[sl], self.sg_height[sl], self.sg_width[sl])
        return out

    def step(self, z_in: np.ndarray, t: int, interval_step: int, reset: bool) -> tuple[np.ndarray, ...]:
        """Update step ``t``: surrogate gradient, spikes and flush events emitted in this step."""
        if interval_step == 0 and reset:
            self.v[:] = 0.0
            self.r[:] = 0
            self.z[:] = 0.0
            self.a[self.adaptive] = 0.0
        self.r = np.where(self.r > 0, self.r - 1, self.r)
        self.v = self.P_i * self.i_in + self.P_z * z_in + self.P_v * self.v
        self.v = self.v - self.V_th * self.z
        self.v = np.maximum(self.v, self.V_min)
        self.a = np.where(self.adaptive, self.P_a * self.a + self.z, self.a)
        v_th = self.V_th + self.beta * self.a
        psi = self.psi(self.r, self.v, v_th)
        spike = (self.v >= v_th) & (self.r == 0)
        self.n_spikes += spike
        self.z = spike.astype(float)
        self.r = np.where(spike, self.refr, self.r)
        self.i_in = self.I_e.copy()
        return psi, spike, self.clock.tick(t, spike)

    def firing_rate_reg(self, T: int) -> np.ndarray:
        reg = self.c_reg * (self.n_spikes / T - self.f_target * self.dt) / T
        self.n_spikes = np.zeros_like(self.n_spikes)
        return reg


def input_flush_events(spec: NetworkSpec, n_steps: int, interval: int | None) -> np.ndarray:
    """bool [n_steps, n_in]: flush events of the input parrots by the stamp at which they reach the recurrent
    neurons' synapses (a parrot emits data step j's spike in update step j + 1, stamped j + 2)."""
    n_data, n_in = spec.input_spikes.shape
    out = np.zeros((n_steps, n_in), dtype=bool)
    if interval is None:
        return out
    clock = _FlushClock(np.full(n_in, interval))
    none = np.zeros(n_in, dtype=bool)
    for t in range(n_steps - 1):  # events emitted in the last step are not delivered
        j = t - PARROT_STEP_OFFSET
        out[t + 1] = clock.tick(t, np.asarray(spec.input_spikes[j], bool) if 0 <= j < n_data else none)
    return out


ClosingGradient = Callable[["_Synapses", np.ndarray], np.ndarray]


class _Synapses:
    """One projection of eprop_synapse_bsshslm_2020: weights, per-presynaptic window timing, dense traces."""

    def __init__(self, w, mask, optimizer, shift, to_recurrent, T):
        self.w = np.array(w, dtype=float) * mask
        self.mask = np.asarray(mask, bool)
        cfg = {k: v for k, v in optimizer.items() if k != "optimize_each_step"}
        self.opt = OptimizerState(self.w.shape, cfg)
        self.shift, self.to_recurrent, self.T = shift, to_recurrent, T
        n_pre = self.w.shape[1]
        self.t_prev_spike = np.zeros(n_pre, dtype=np.int64)
        self.t_prev_update = np.zeros(n_pre, dtype=np.int64)
        self.t_next_update = np.full(n_pre, T, dtype=np.int64)
        self.trigger = np.zeros(n_pre, dtype=np.int64)
        self.has_isi = np.zeros(n_pre, dtype=bool)  # NEST's presyn_isis_ is not empty
        self.prev_flush = np.zeros(n_pre, dtype=bool)  # the last event that passed was a flush event
        self.kept = np.zeros_like(self.w)  # NEST's gradient_: computed at a flush, applied at the next spike
        self.processed = np.zeros(n_pre, dtype=bool)  # spikes of the current step that passed the synapse
        self.G = np.zeros_like(self.w)  # sum of L e_bar (recurrent) or E z_bar (readout) of the open window
        self.sum_e = np.zeros_like(self.w)
        self.total = np.zeros_like(self.w)
        self.n_flush = 0

    def in_window(self, e: int) -> np.ndarray:
        return (self.trigger > 0) & (self.trigger <= e) & (e < self.t_next_update + self.shift)

    def _optimize(self, cols: np.ndarray, grad: np.ndarray, idx: int) -> None:
        rows, local = np.nonzero(self.mask[:, cols])
        self.opt.apply(self.w, rows, cols[local], grad[rows, local], idx)
        self.total[:, cols] += grad

    def deliver(
        self, spiking: np.ndarray, s: int, closing_gradient: ClosingGradient, flushing: np.ndarray | None = None
    ) -> np.ndarray:
        """Spikes and flush events stamped ``s`` pass the synapses (eprop_synapse_bsshslm_2020::send, per presynaptic
        neuron); returns which presynaptic neurons' spikes are transmitted."""
        self.processed = np.zeros_like(spiking)
        # a flush right after a flush is ignored
        flushing = np.zeros_like(spiking) if flushing is None else flushing & ~self.prev_flush
        if not (spiking.any() or flushing.any()):
            return self.processed
        # a spike after a flush starts afresh: previous spike and window start are the spike itself
        fresh = spiking & self.prev_flush
        self.t_prev_spike[fresh] = s
        self.trigger[fresh] = s
        self.G[:, fresh] = 0.0
        self.sum_e[:, fresh] = 0.0
        if self.to_recurrent and cmod(s - self.shift, self.T) == 0:
            return self.processed  # dropped: neither transmitted nor counted
        ev = spiking | flushing
        pre = np.flatnonzero(ev)
        self.n_flush += int(np.count_nonzero(flushing))
        self.trigger[pre] = np.where(self.trigger[pre] == 0, s, self.trigger[pre])
        end = self.t_next_update[pre] + self.shift
        prev = self.t_prev_spike[pre]
        isi = np.minimum(s, end) - np.minimum(prev, end)
        self.has_isi[pre] |= (prev > 0) & (isi > 0)
        crossing = s > end
        cross = pre[crossing]
        idx = (s - self.shift) // self.T
        if cross.size:
            compute = cross[self.has_isi[cross] & (self.t_prev_spike[cross] > 0)]
            bad = compute[fresh[compute]]
            if bad.size:
                raise SpecError(
                    f"presynaptic neuron(s) {bad.tolist()}: a flush event stamped at the end of an e-prop window "
                    f"(step {s}) followed by a spike makes NEST compute a gradient from e-prop history entries that do "
                    "not exist yet (undefined behaviour in NEST 3.10): choose flush_event_send_interval > "
                    "eprop_update_interval"
                )
            if compute.size:
                self.kept[:, compute] += closing_gradient(self, compute)
            spikes = cross[spiking[cross]]
            if spikes.size:
                self._optimize(spikes, self.kept[:, spikes], idx)
                self.kept[:, spikes] = 0.0
            self.has_isi[cross] = False
            self.t_prev_update[cross] = idx * self.T
            self.t_next_update[cross] = idx * self.T + self.T
            self.trigger[cross] = s
            self.G[:, cross] = 0.0
            self.sum_e[:, cross] = 0.0
        after_flush = pre[~crossing & fresh[pre]]  # a spike after a flush within the interval: apply the kept one
        if after_flush.size:
            self._optimize(after_flush, self.kept[:, after_flush], idx)
            self.kept[:, after_flush] = 0.0
        spikes = pre[spiking[pre]]
        self.t_prev_spike[spikes] = s
        self.prev_flush[pre] = flushing[pre]
        self.processed = spiking.copy()
        return self.processed


def run_online_bsshslm(spec: NetworkSpec) -> BsshslmResult:
    """Simulate ``spec`` with NEST 3.10's bsshslm e-prop semantics; final weights, readout signals and losses."""
    st = validate_bsshslm(spec)
    dt = spec.resolution
    T, lw = st.update_interval, st.learning_window
    n_in, n_rec, n_out = spec.n_in, spec.n_rec, spec.n_out
    n_data = spec.input_spikes.shape[0]
    n_steps = n_data + st.extra_steps

    rec = _Recurrent(st.groups, dt)
    in_flush = input_flush_events(spec, n_steps, st.input_flush_steps)
    rp = spec.readout_params
    E_L_out = rp.get("E_L", 0.0)
    P_v_out = np.exp(-dt / rp["tau_m"])
    P_i_out = rp["tau_m"] / rp["C_m"] * (1.0 - P_v_out)
    P_z_out = 1.0 if rp.get("regular_spike_arrival", True) else 1.0 - P_v_out
    V_min_out = rp.get("V_min", -np.finfo(float).max) - E_L_out
    I_e_out = rp.get("I_e", 0.0)
    v_out = np.full(n_out, rp.get("V_m", E_L_out) - E_L_out, dtype=float)
    i_out = np.zeros(n_out)
    unnorm = np.zeros(n_out)
    norm_rate = np.zeros(n_out)
    target_state = np.zeros(n_out)
    cross_entropy = st.loss == "cross_entropy"
    normalize = cross_entropy and st.readout_normalization
    others = 1.0 - np.eye(n_out)

    kappa = np.exp(-dt / st.tau_m_readout)
    syn = {
        "in_rec": _Synapses(spec.weights["in_rec"], spec.masks["in_rec"], spec.optimizer, SHIFT_REC, True, T),
        "rec_rec": _Synapses(spec.weights["rec_rec"], spec.masks["rec_rec"], spec.optimizer, SHIFT_REC, True, T),
        "rec_out": _Synapses(spec.weights["rec_out"], spec.masks["rec_out"], spec.optimizer, SHIFT_OUT, False, T),
    }
    B = np.asarray(spec.weights["feedback"], float)
    # z_bar per synapse: its decay and input factor are the target's (groups may differ)
    tr = {
        k: {"z_bar": np.zeros((n_rec, n)), "e_bar": np.zeros((n_rec, n)), "eps": np.zeros((n_rec, n))}
        for k, n in (("in_rec", n_in), ("rec_rec", n_rec))
    }
    P_v_post, P_z_post = rec.P_v[:, None], rec.P_z[:, None]
    beta_post, P_a_post = rec.beta[:, None], rec.P_a[:, None]
    z_bar_out = np.zeros(n_rec)
    pending: dict[str, dict[int, np.ndarray]] = {"in_rec": {}, "rec_rec": {}}
    z_bar_out_hist: dict[int, np.ndarray] = {}
    reg_hist: dict[int, np.ndarray] = {}
    avg = float(lw) if st.average_gradient else 1.0

    def closing_gradient_rec(p: _Synapses, cols: np.ndarray) -> np.ndarray:
        key = p.t_prev_update[cols] + p.shift + T
        reg = np.stack([reg_hist[int(k)] for k in key], axis=1)  # [n_rec, cols]: the window's interval
        return (p.G[:, cols] + reg * p.sum_e[:, cols]) / avg

    def closing_gradient_out(p: _Synapses, cols: np.ndarray) -> np.ndarray:
        return p.G[:, cols] / avg

    readout = np.zeros((n_data, n_out))
    target_sig = np.zeros((n_data, n_out))
    error_sig = np.zeros((n_data, n_out))
    rec_spikes = np.zeros((n_data, n_rec), dtype=bool)
    no_in = np.zeros(n_in, dtype=bool)
    no_rec = np.zeros(n_rec, dtype=bool)
    err_prev = np.zeros(n_out)
    unnorm_prev = np.zeros(n_out)
    spikes_prev, flush_prev = no_rec, no_rec

    for t in range(n_steps):
        # 1. secondary events of step t - 1: learning signals, normalisation rates, target
        if t >= 1:
            e = t - 1 - LEARNING_SIGNAL_ENTRY_LAG
            if e >= 0:
                L = B @ err_prev
                for key in ("in_rec", "rec_rec"):
                    p = syn[key]
                    ebar = pending[key].pop(e, None)
                    if ebar is not None:
                        act = p.in_window(e)
                        p.G[:, act] += L[:, None] * ebar[:, act]
            norm_rate = others @ unnorm_prev if normalize else np.zeros(n_out)
            j_target = t - SIGNAL_STEP_OFFSET
            target_state = (
                np.asarray(spec.target[min(j_target, n_data - 1)], float) if j_target >= 0 else np.zeros(n_out)
            )

        # 2. spikes (and flush events) stamped t pass their synapses (gradients, optimizer), then enter their targets
        j_in = t - INPUT_STAMP_OFFSET
        s_in = spec.input_spikes[j_in] if 0 <= j_in < n_data else no_in
        s_rec = spikes_prev
        pass_in = syn["in_rec"].deliver(s_in, t, closing_gradient_rec, in_flush[t])
        pass_rec = syn["rec_rec"].deliver(s_rec, t, closing_gradient_rec, flush_prev)
        pass_out = syn["rec_out"].deliver(s_rec, t, closing_gradient_out, flush_prev)
        z_in_rec = syn["in_rec"].w[:, pass_in].sum(1) + syn["rec_rec"].w[:, pass_rec].sum(1)
        z_in_out = syn["rec_out"].w[:, pass_out].sum(1)

        # 3. recurrent neurons
        istep = cmod(t - SHIFT_REC, T)
        psi, spikes, flushes = rec.step(z_in_rec, t, istep, st.reset)
        if istep == T - 1:
            reg_hist[t + 1] = rec.firing_rate_reg(T)

        # 4. eligibility traces of history entry t
        for key in ("in_rec", "rec_rec"):
            p, q = syn[key], tr[key]
            act = p.in_window(t)
            if not act.any():
                continue
            start = act & (p.trigger == t)
            q["z_bar"][:, start] = 0.0
            q["e_bar"][:, start] = 0.0
            q["eps"][:, start] = 0.0
            z = (p.processed & act).astype(float)
            q["z_bar"] = np.where(act[None, :], P_v_post * q["z_bar"] + P_z_post * z[None, :], q["z_bar"])
            e_tr = psi[:, None] * (q["z_bar"] - beta_post * q["eps"]) * act[None, :] * p.mask
            if rec.any_adaptive:
                q["eps"] = np.where(act[None, :], P_a_post * q["eps"] + e_tr, q["eps"])
            q["e_bar"] = np.where(act[None, :], kappa * q["e_bar"] + (1.0 - kappa) * e_tr, q["e_bar"])
            p.sum_e += e_tr
            pending[key][t] = q["e_bar"] * act[None, :]
        p = syn["rec_out"]
        act = p.in_window(t)
        start = act & (p.trigger == t)
        z_bar_out[start] = 0.0
        z = (p.processed & act).astype(float)
        z_bar_out = np.where(act, P_v_out * z_bar_out + P_z_out * z, z_bar_out)
        z_bar_out_hist[t] = z_bar_out * act

        # 5. readouts
        if cmod(t - SHIFT_OUT, T) == 0 and st.reset:
            v_out[:] = 0.0
        v_out = np.maximum(P_i_out * i_out + P_z_out * z_in_out + P_v_out * v_out, V_min_out)
        if cross_entropy:
            with np.errstate(divide="ignore", invalid="ignore"):
                y = unnorm / (norm_rate + unnorm)
            unnorm = np.exp(v_out + E_L_out)
        else:
            y = unnorm.copy()
            unnorm = v_out + E_L_out
        err = y - target_state
        if cmod(t - SHIFT_OUT - 1, T) < T - lw:
            target_state = np.zeros(n_out)
            y = np.zeros(n_out)
            err = np.zeros(n_out)
        i_out = np.full(n_out, I_e_out)
        # the error of step t is the readout history entry t - 1
        e = t - 1
        zb = z_bar_out_hist.pop(e, None)
        if zb is not None:
            act = p.in_window(e)
            p.G[:, act] += err[:, None] * zb[None, act]
        j = t - SIGNAL_STEP_OFFSET
        if 0 <= j < n_data:
            readout[j], target_sig[j], error_sig[j] = y, target_state, err
        jr = t - INPUT_STAMP_OFFSET
        if 0 <= jr < n_data:
            rec_spikes[jr] = spikes

        err_prev, unnorm_prev, spikes_prev, flush_prev = err, unnorm.copy(), spikes, flushes
        for key in ("in_rec", "rec_rec"):
            pending[key].pop(t - 4, None)

    weights = {k: p.w.copy() for k, p in syn.items()} | {"feedback": B.copy()}
    gradients = {k: p.total for k, p in syn.items()}
    losses = bsshslm_losses(readout, target_sig, spec, st)
    n_flush = sum(p.n_flush for p in syn.values())
    return BsshslmResult(weights, gradients, readout, target_sig, error_sig, rec_spikes, losses, n_flush)

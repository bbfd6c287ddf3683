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

Not reproduced: flush events (``flush_event_send_interval`` finite), ``ignore_and_spike``, current generators,
delays other than one step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from nestgrad.reference.neurons import steps_of, surrogate_gradient
from nestgrad.reference.optimizers import OptimizerState
from nestgrad.reference.spec import NetworkSpec, SpecError

BSSHSLM_MODELS = ("eprop_iaf_bsshslm_2020", "eprop_iaf_adapt_bsshslm_2020")
READOUT_MODEL = "eprop_readout_bsshslm_2020"
LOSSES = ("mean_squared_error", "cross_entropy")
SHIFT_REC = 2  # offset_gen + delay_in_rec
SHIFT_OUT = 3  # + delay_rec_out
INPUT_STAMP_OFFSET = 2  # data step j is stamped j + 2 at the recurrent neurons
SIGNAL_STEP_OFFSET = 4  # readout and target signals of data step j appear in update step j + 4
LEARNING_SIGNAL_ENTRY_LAG = 2  # readout error of step t -> learning signal of recurrent entry t - 2 (arrives t + 1)

META_KEYS = {
    "eprop_update_interval",
    "eprop_learning_window",
    "eprop_reset_neurons_on_update",
    "loss",
    "average_gradient",
    "readout_normalization",
    "tau_m_readout",
    "extra_steps",
}


def cmod(a: int, b: int) -> int:
    """C++'s ``a % b`` (the sign follows ``a``)."""
    r = abs(a) % b
    return r if a >= 0 else -r


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


def _field(key: str) -> str:
    return f"meta['bsshslm'][{key!r}]"


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
    flush = spec.rec_params.get("flush_event_send_interval", np.inf)
    if np.isfinite(flush):
        raise SpecError(f"rec_params.flush_event_send_interval = {flush}: flush events are not supported")
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
    )


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


class _Recurrent:
    """eprop_iaf_bsshslm_2020 / eprop_iaf_adapt_bsshslm_2020 (voltages relative to E_L)."""

    def __init__(self, model: str, p: dict[str, Any], dt: float, n: int):
        self.adaptive = model == "eprop_iaf_adapt_bsshslm_2020"
        E_L = p["E_L"]
        self.V_th = p["V_th"] - E_L
        self.V_min = p.get("V_min", -np.finfo(float).max) - E_L
        self.I_e = p.get("I_e", 0.0)
        self.P_v = np.exp(-dt / p["tau_m"])
        self.P_i = p["tau_m"] / p["C_m"] * (1.0 - self.P_v)
        self.P_z = 1.0 if p.get("regular_spike_arrival", True) else 1.0 - self.P_v
        self.refr = steps_of(p.get("t_ref", 0.0), dt)
        self.c_reg = p.get("c_reg", 0.0)
        self.f_target = p.get("f_target", 0.0) / 1000.0  # spikes per ms
        self.sg = (p["surrogate_gradient_function"], p["surrogate_gradient_height"], p["surrogate_gradient_width"])
        self.beta = p.get("adapt_beta", 0.0) if self.adaptive else 0.0
        self.P_a = np.exp(-dt / p["adapt_tau"]) if self.adaptive else 0.0
        self.dt = dt
        self.v = np.full(n, p.get("V_m", E_L) - E_L, dtype=float)
        self.r = np.zeros(n, dtype=np.int64)
        self.z = np.zeros(n)
        self.i_in = np.zeros(n)
        self.a = np.full(n, float(p.get("adaptation", 0.0)))
        self.n_spikes = np.zeros(n)

    def step(self, z_in: np.ndarray, interval_step: int, reset: bool) -> tuple[np.ndarray, np.ndarray]:
        if interval_step == 0 and reset:
            self.v[:] = 0.0
            self.r[:] = 0
            self.z[:] = 0.0
            if self.adaptive:
                self.a[:] = 0.0
        self.r = np.where(self.r > 0, self.r - 1, self.r)
        self.v = self.P_i * self.i_in + self.P_z * z_in + self.P_v * self.v
        self.v = self.v - self.V_th * self.z
        self.v = np.maximum(self.v, self.V_min)
        if self.adaptive:
            self.a = self.P_a * self.a + self.z
            v_th = self.V_th + self.beta * self.a
        else:
            v_th = self.V_th
        psi = surrogate_gradient(self.sg[0], self.r, self.v, v_th, self.sg[1], self.sg[2])
        spike = (self.v >= v_th) & (self.r == 0)
        self.n_spikes += spike
        self.z = spike.astype(float)
        self.r = np.where(spike, self.refr, self.r)
        self.i_in = np.full_like(self.v, self.I_e)
        return psi, spike

    def firing_rate_reg(self, T: int) -> np.ndarray:
        reg = self.c_reg * (self.n_spikes / T - self.f_target * self.dt) / T
        self.n_spikes = np.zeros_like(self.n_spikes)
        return reg


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
        self.processed = np.zeros(n_pre, dtype=bool)  # spikes of the current step that passed the synapse
        self.G = np.zeros_like(self.w)  # sum of L e_bar (recurrent) or E z_bar (readout) of the open window
        self.sum_e = np.zeros_like(self.w)
        self.total = np.zeros_like(self.w)

    def in_window(self, e: int) -> np.ndarray:
        return (self.trigger > 0) & (self.trigger <= e) & (e < self.t_next_update + self.shift)

    def deliver(self, spiking: np.ndarray, s: int, closing_gradient) -> np.ndarray:
        """Spikes stamped ``s`` pass the synapses; returns which presynaptic neurons' spikes are transmitted."""
        self.processed = np.zeros_like(spiking)
        if not spiking.any():
            return self.processed
        if self.to_recurrent and cmod(s - self.shift, self.T) == 0:
            return self.processed
        pre = np.flatnonzero(spiking)
        self.trigger[pre] = np.where(self.trigger[pre] == 0, s, self.trigger[pre])
        cross = pre[s > self.t_next_update[pre] + self.shift]
        if cross.size:
            idx = (s - self.shift) // self.T
            grad = closing_gradient(self, cross)
            rows, local = np.nonzero(self.mask[:, cross])
            self.opt.apply(self.w, rows, cross[local], grad[rows, local], idx)
            self.total[:, cross] += grad
            self.t_prev_update[cross] = idx * self.T
            self.t_next_update[cross] = idx * self.T + self.T
            self.trigger[cross] = s
            self.G[:, cross] = 0.0
            self.sum_e[:, cross] = 0.0
        self.t_prev_spike[pre] = s
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

    rec = _Recurrent(spec.rec_model, spec.rec_params, dt, n_rec)
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
    tr = {
        k: {"z_bar": np.zeros(n), "e_bar": np.zeros((n_rec, n)), "eps": np.zeros((n_rec, n))}
        for k, n in (("in_rec", n_in), ("rec_rec", n_rec))
    }
    z_bar_out = np.zeros(n_rec)
    pending: dict[str, dict[int, np.ndarray]] = {"in_rec": {}, "rec_rec": {}}
    z_bar_out_hist: dict[int, np.ndarray] = {}
    reg_hist: dict[int, np.ndarray] = {}
    avg = float(lw) if st.average_gradient else 1.0

    def closing_gradient_rec(p: _Synapses, cross: np.ndarray) -> np.ndarray:
        g = np.zeros((n_rec, cross.size))
        key_t = p.t_prev_update[cross] + p.shift + T
        for c, (col, key) in enumerate(zip(cross, key_t, strict=True)):
            if p.trigger[col] >= p.t_next_update[col] + p.shift:  # empty window: no ISIs, no gradient
                continue
            g[:, c] = p.G[:, col] + reg_hist[int(key)] * p.sum_e[:, col]
        return g / avg

    def closing_gradient_out(p: _Synapses, cross: np.ndarray) -> np.ndarray:
        return p.G[:, cross] / avg

    readout = np.zeros((n_data, n_out))
    target_sig = np.zeros((n_data, n_out))
    error_sig = np.zeros((n_data, n_out))
    rec_spikes = np.zeros((n_data, n_rec), dtype=bool)
    no_in = np.zeros(n_in, dtype=bool)
    no_rec = np.zeros(n_rec, dtype=bool)
    err_prev = np.zeros(n_out)
    unnorm_prev = np.zeros(n_out)
    spikes_prev = no_rec

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

        # 2. spikes stamped t pass their synapses (gradients, optimizer), then enter their targets
        j_in = t - INPUT_STAMP_OFFSET
        s_in = spec.input_spikes[j_in] if 0 <= j_in < n_data else no_in
        s_rec = spikes_prev
        pass_in = syn["in_rec"].deliver(s_in, t, closing_gradient_rec)
        pass_rec = syn["rec_rec"].deliver(s_rec, t, closing_gradient_rec)
        pass_out = syn["rec_out"].deliver(s_rec, t, closing_gradient_out)
        z_in_rec = syn["in_rec"].w[:, pass_in].sum(1) + syn["rec_rec"].w[:, pass_rec].sum(1)
        z_in_out = syn["rec_out"].w[:, pass_out].sum(1)

        # 3. recurrent neurons
        istep = cmod(t - SHIFT_REC, T)
        psi, spikes = rec.step(z_in_rec, istep, st.reset)
        if istep == T - 1:
            reg_hist[t + 1] = rec.firing_rate_reg(T)

        # 4. eligibility traces of history entry t
        for key in ("in_rec", "rec_rec"):
            p, q = syn[key], tr[key]
            act = p.in_window(t)
            if not act.any():
                continue
            start = act & (p.trigger == t)
            q["z_bar"][start] = 0.0
            q["e_bar"][:, start] = 0.0
            q["eps"][:, start] = 0.0
            z = (p.processed & act).astype(float)
            q["z_bar"] = np.where(act, rec.P_v * q["z_bar"] + rec.P_z * z, q["z_bar"])
            e_tr = psi[:, None] * (q["z_bar"][None, :] - rec.beta * q["eps"]) * act[None, :] * p.mask
            if rec.adaptive:
                q["eps"] = np.where(act[None, :], rec.P_a * q["eps"] + e_tr, q["eps"])
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

        err_prev, unnorm_prev, spikes_prev = err, unnorm.copy(), spikes
        for key in ("in_rec", "rec_rec"):
            pending[key].pop(t - 4, None)

    weights = {k: p.w.copy() for k, p in syn.items()} | {"feedback": B.copy()}
    gradients = {k: p.total for k, p in syn.items()}
    losses = bsshslm_losses(readout, target_sig, spec, st)
    return BsshslmResult(weights, gradients, readout, target_sig, error_sig, rec_spikes, losses)

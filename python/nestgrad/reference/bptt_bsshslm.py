"""Backpropagation through time for NEST's original-formulation e-prop models (``*_bsshslm_2020``), at fixed weights.

:func:`forward` replays the discrete dynamics of :func:`nestgrad.reference.online_bsshslm.run_online_bsshslm`
(same steps, stamps, dropped spikes, interval resets and readout delays; at learning rate 0 its readout signals
equal the replay's to rounding) and records what the backward pass needs. :func:`bptt_gradient_bsshslm` returns
dE/dW for ``in_rec``, ``rec_rec`` and ``rec_out``. :func:`eprop_gradient_bsshslm` returns what NEST's e-prop synapses
compute over the same run at fixed weights (instrumented replay, see there).

The loss (derived from online_bsshslm, i.e. NEST's code): with ``u_k[t] = v_k[t] + E_L`` the readout membrane of
update step ``t``, data step ``j`` compared in update step ``j + 4`` with ``u[j + 3]``, ``W`` = the learning-window
data steps of the data's update intervals, ``A = learning_window`` steps if ``average_gradient`` else 1::

    E = 1/A * ( sum_{j in W} l(u[j + 3], y*[j])
                + sum_{intervals k} sum_neurons c_reg / 2 * (n_k / T - f_target dt)^2 )

    MSE:            l(u, y*) = 1/2 sum_k (u_k - y*_k)^2                     dl/du = u - y*   (NEST's error)
    cross-entropy:  l(u, y*) = logsumexp(u) - sum_k y*_k u_k                dl/du = softmax(u) - y*
                    (= -sum_k y*_k log softmax_k(u) when sum_k y*_k = 1, e.g. one-hot targets; without
                    ``readout_normalization`` every readout is its own softmax: y = 1, l = sum_k (1 - y*_k) u_k)

``n_k`` counts a neuron's spikes of interval ``k`` as NEST does (update steps ``2 + kT ... 2 + kT + T - 1``; the
first count also includes steps 0 and 1, which precede interval 0). Each part is what an e-prop term differentiates:
the readout gradient ``sum E z_bar`` is dl/du times du/dW_out, the learning signal is the same error fed back, and
the regularisation term ``reg sum e`` with ``reg = c_reg (n_k / T - f_target dt) / T`` (stored at the interval's end)
is the derivative of the second sum with ``dn_k/dW = sum e``. So the loss is the sum over update intervals of NEST's
per-interval losses; with ``eprop_reset_neurons_on_update`` (default) intervals do not interact.

Conventions (as in :mod:`nestgrad.reference.bptt`):

* ``"eprop"``: not differentiated, as e-prop does not: the spike reset (``- V_th z_prev``) and the lower bounds
  ``V_min`` of both populations (treated as identity). Still differentiated: the membrane leak, the adaptation
  (e-prop's ``epsilon`` trace), the readout, recurrent connections (e-prop drops these: its approximation).
* ``"full"``: everything is differentiated (spike reset, ``V_min`` clamps). The interval reset sets states to
  constants and cuts the gradient in both conventions; the refractory counter is discrete (psi = 0 while refractory).

``smooth=True`` replaces the spike step by :func:`nestgrad.reference.bptt.smooth_spike` (derivative = surrogate
gradient); then ``"full"`` is the exact gradient of ``E`` (checked against finite differences). It needs t_ref = 0.

Where e-prop equals BPTT ("eprop" convention) exactly (tests/test_bptt_bsshslm.py), given feedback = W_out^T,
kappa = exp(-dt / tau_m_readout) = the readout's P_v and readout ``regular_spike_arrival = False`` (``P_z = 1 - P_v``,
the factor ``1 - kappa`` of ``e_bar``; with ``P_z = 1`` e-prop is BPTT times ``1 - kappa``): readout weights always,
input weights without recurrent connections (with or without adaptation), both losses. Not where NEST's window
bookkeeping loses terms: an input spike stamped ``t_next_update + 3`` (data step 1 of an interval) closes the previous
window before the learning signal of its last entry arrived, and a readout synapse's spike stamped at the readout's
interval step 0 belongs to no window (impossible after a reset without I_e).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from nestgrad.errors import SpecError
from nestgrad.reference import online_bsshslm as ob
from nestgrad.reference.bptt import CONVENTIONS, smooth_spike
from nestgrad.reference.online_bsshslm import (
    INPUT_STAMP_OFFSET,
    SHIFT_OUT,
    SHIFT_REC,
    SIGNAL_STEP_OFFSET,
    BsshslmResult,
    BsshslmSettings,
    cmod,
    validate_bsshslm,
)
from nestgrad.reference.spec import PROJECTIONS, NetworkSpec


@dataclass
class BsshslmForward:
    """Per update step ``t`` (``n_steps`` = data + extra steps) unless noted."""

    settings: BsshslmSettings
    x_in: np.ndarray  # [n, n_in] input spikes entering the recurrent neurons in step t (interval step 0 dropped)
    z_rec_in: np.ndarray  # [n, n_rec] recurrent spikes entering the recurrent neurons in step t (z[t - 1] or dropped)
    z_out_in: np.ndarray  # [n, n_rec] recurrent spikes entering the readouts in step t (z[t - 1])
    v: np.ndarray  # [n, n_rec] membrane (relative to E_L) compared with the threshold
    clamped: np.ndarray  # [n, n_rec] V_min was applied
    a: np.ndarray  # [n, n_rec] adaptation (zero for eprop_iaf_bsshslm_2020)
    theta: np.ndarray  # [n, n_rec] threshold
    psi: np.ndarray  # [n, n_rec] surrogate gradient
    z: np.ndarray  # [n, n_rec] spikes emitted in step t (smooth mode: smooth_spike)
    reset_rec: np.ndarray  # [n] bool, recurrent neurons reset at the start of step t
    v_out: np.ndarray  # [n, n_out] readout membrane relative to E_L
    clamped_out: np.ndarray  # [n, n_out]
    reset_out: np.ndarray  # [n] bool
    u: np.ndarray  # [n, n_out] v_out + E_L
    dl_du: np.ndarray  # [n, n_out] d(task loss)/du[t] (already divided by A)
    dreg_dz: np.ndarray  # [n, n_rec] d(regularisation loss)/dz[t] (already divided by A)
    readout: np.ndarray  # [data steps, n_out] readout_signal of data step j (as run_online_bsshslm records it)
    target_signal: np.ndarray  # [data steps, n_out]
    error_signal: np.ndarray  # [data steps, n_out]
    spike_counts: np.ndarray  # [intervals, n_rec] n_k as NEST counts them
    interval_loss: np.ndarray  # [intervals] task + regularisation loss of each update interval (divided by A)
    loss_task: float
    loss_reg: float
    loss: float


def _readout_params(spec: NetworkSpec) -> dict[str, float]:
    rp, dt = spec.readout_params, spec.resolution
    E_L = rp.get("E_L", 0.0)
    P_v = np.exp(-dt / rp["tau_m"])
    return {
        "E_L": E_L,
        "P_v": P_v,
        "P_i": rp["tau_m"] / rp["C_m"] * (1.0 - P_v),
        "P_z": 1.0 if rp.get("regular_spike_arrival", True) else 1.0 - P_v,
        "V_min": rp.get("V_min", -np.finfo(float).max) - E_L,
        "I_e": rp.get("I_e", 0.0),
        "V_m": rp.get("V_m", E_L) - E_L,
    }


def _logsumexp(u: np.ndarray) -> float:
    m = float(np.max(u))
    return m + float(np.log(np.sum(np.exp(u - m))))


def forward(spec: NetworkSpec, weights: dict[str, np.ndarray] | None = None, smooth: bool = False) -> BsshslmForward:
    """Replay ``spec`` at fixed ``weights`` (default ``spec.weights``) with online_bsshslm's dynamics; the loss E."""
    st = validate_bsshslm(spec)
    weights = spec.weights if weights is None else weights
    dt = spec.resolution
    T, lw = st.update_interval, st.learning_window
    n_in, n_rec, n_out = spec.n_in, spec.n_rec, spec.n_out
    n_data = spec.input_spikes.shape[0]
    n = n_data + st.extra_steps
    n_int = n_data // T
    avg = float(lw) if st.average_gradient else 1.0
    m = ob._Recurrent(st.groups, dt)  # parameters (per neuron) and initial state
    if smooth and np.any(m.refr != 0):
        raise SpecError("smooth mode needs t_ref = 0 (refractoriness is not differentiable)")
    ro = _readout_params(spec)
    cross_entropy = st.loss == "cross_entropy"
    normalize = cross_entropy and st.readout_normalization
    W_in = np.asarray(weights["in_rec"], float) * spec.masks["in_rec"]
    W_rec = np.asarray(weights["rec_rec"], float) * spec.masks["rec_rec"]
    W_out = np.asarray(weights["rec_out"], float) * spec.masks["rec_out"]

    rec = {k: np.zeros((n, n_rec)) for k in ("z_rec_in", "z_out_in", "v", "a", "theta", "psi", "z")}
    clamped = np.zeros((n, n_rec), bool)
    x_in = np.zeros((n, n_in))
    reset_rec = np.zeros(n, bool)
    reset_out = np.zeros(n, bool)
    v_out_rec = np.zeros((n, n_out))
    clamped_out = np.zeros((n, n_out), bool)

    v, a = m.v.copy(), m.a.copy()
    r = np.zeros(n_rec, dtype=np.int64)
    i_in = np.zeros(n_rec)
    v_o = np.full(n_out, ro["V_m"])
    i_o = np.zeros(n_out)
    z_prev = np.zeros(n_rec)
    for t in range(n):
        drop = cmod(t - SHIFT_REC, T) == 0  # spikes stamped at a recurrent interval step 0 are discarded
        j = t - INPUT_STAMP_OFFSET
        if 0 <= j < n_data and not drop:
            x_in[t] = spec.input_spikes[j]
        z_rec_in = np.zeros(n_rec) if drop else z_prev
        # recurrent neurons
        zp = z_prev
        if drop and st.reset:  # interval step 0: v, r, pending spike (its subtraction) and adaptation reset
            reset_rec[t] = True
            v, r, zp = np.zeros(n_rec), np.zeros(n_rec, dtype=np.int64), np.zeros(n_rec)
            a = np.where(m.adaptive, 0.0, a)
        r = np.where(r > 0, r - 1, r)
        v_raw = m.P_i * i_in + m.P_z * (W_in @ x_in[t] + W_rec @ z_rec_in) + m.P_v * v - m.V_th * zp
        clamped[t] = v_raw < m.V_min
        v = np.maximum(v_raw, m.V_min)
        a = np.where(m.adaptive, m.P_a * a + zp, a)
        theta = m.V_th + m.beta * a
        psi = m.psi(r, v, theta)
        if smooth:
            z = np.empty(n_rec)
            for name, sl in m.sg_groups:
                z[sl] = smooth_spike(name, v[sl] - theta[sl], m.sg_height[sl], m.sg_width[sl])
        else:
            z = ((v >= theta) & (r == 0)).astype(float)
            r = np.where(z > 0, m.refr, r)
        i_in = np.full(n_rec, m.I_e)
        for key, val in (("z_rec_in", z_rec_in), ("z_out_in", z_prev), ("v", v), ("a", a), ("theta", theta)):
            rec[key][t] = val
        rec["psi"][t], rec["z"][t] = psi, z
        # readouts (spikes emitted in step t - 1 enter in step t)
        if cmod(t - SHIFT_OUT, T) == 0 and st.reset:
            reset_out[t] = True
            v_o = np.zeros(n_out)
        vo_raw = ro["P_i"] * i_o + ro["P_z"] * (W_out @ z_prev) + ro["P_v"] * v_o
        clamped_out[t] = vo_raw < ro["V_min"]
        v_o = np.maximum(vo_raw, ro["V_min"])
        i_o = np.full(n_out, ro["I_e"])
        v_out_rec[t] = v_o
        z_prev = z
    u = v_out_rec + ro["E_L"]

    # task loss: data step j of the learning window compares u[j + 3] in update step j + 4
    window = np.asarray(spec.window, float) > 0
    target = np.asarray(spec.target, float)
    readout = np.zeros((n_data, n_out))
    target_signal = target * window[:, None]
    dl_du = np.zeros((n, n_out))
    interval_loss = np.zeros(n_int)
    loss_task = 0.0
    for jj in np.flatnonzero(window):
        t = jj + SIGNAL_STEP_OFFSET
        if t >= n or jj >= n_int * T:
            continue
        uu, ys = u[t - 1], target[jj]
        if not cross_entropy:
            y = uu.copy()
            lval = 0.5 * float(np.sum((uu - ys) ** 2))
        elif normalize:
            lse = _logsumexp(uu)
            y = np.exp(uu - lse)
            lval = lse - float(ys @ uu)
        else:
            y = np.ones(n_out)
            lval = float(np.sum(uu) - ys @ uu)
        readout[jj] = y
        dl_du[t - 1] = (y - ys) / avg
        loss_task += lval / avg
        interval_loss[jj // T] += lval / avg
    error_signal = (readout - target_signal) * window[:, None]

    # firing-rate regularisation per interval, counted as NEST counts (steps before interval 0 join interval 0)
    z = rec["z"]
    count_of = np.maximum(np.arange(n) - SHIFT_REC, 0) // T  # interval whose count includes step t
    stored = np.array([(k + 1) * T + SHIFT_REC - 1 < n for k in range(n_int)], bool)
    counts = np.zeros((n_int, n_rec))
    for k in range(n_int):
        counts[k] = z[count_of == k].sum(0)
    dev = counts / T - m.f_target * dt  # [intervals, n_rec]
    reg_loss_k = 0.5 * np.sum(m.c_reg * dev**2, axis=1) * stored / avg
    dreg_dz = np.zeros((n, n_rec))
    for k in np.flatnonzero(stored):
        dreg_dz[count_of == k] = m.c_reg * dev[k] / T / avg
    interval_loss += reg_loss_k
    loss_reg = float(reg_loss_k.sum())

    return BsshslmForward(
        st,
        x_in,
        rec["z_rec_in"],
        rec["z_out_in"],
        rec["v"],
        clamped,
        rec["a"],
        rec["theta"],
        rec["psi"],
        z,
        reset_rec,
        v_out_rec,
        clamped_out,
        reset_out,
        u,
        dl_du,
        dreg_dz,
        readout,
        target_signal,
        error_signal,
        counts,
        interval_loss,
        loss_task,
        loss_reg,
        loss_task + loss_reg,
    )


def bptt_gradient_bsshslm(
    spec: NetworkSpec, weights: dict[str, np.ndarray] | None = None, convention: str = "eprop", smooth: bool = False
) -> tuple[dict[str, np.ndarray], BsshslmForward]:
    """dE/dW for in_rec, rec_rec, rec_out (masked) by BPTT through :func:`forward`, and the forward record."""
    if convention not in CONVENTIONS:
        raise SpecError(f"convention = {convention!r}; one of {CONVENTIONS}")
    weights = spec.weights if weights is None else weights
    fw = forward(spec, weights, smooth=smooth)
    full = convention == "full"
    m = ob._Recurrent(fw.settings.groups, spec.resolution)
    ro = _readout_params(spec)
    W_rec = np.asarray(weights["rec_rec"], float) * spec.masks["rec_rec"]
    W_out = np.asarray(weights["rec_out"], float) * spec.masks["rec_out"]
    n, n_rec = fw.z.shape

    # readouts: dvo_raw[t] = dE/d(v_out[t] before the V_min clamp)
    dvo_raw = np.zeros_like(fw.u)
    nxt = np.zeros(fw.u.shape[1])
    for t in range(n - 1, -1, -1):
        dvo = fw.dl_du[t] + nxt
        dvo_raw[t] = np.where(fw.clamped_out[t], 0.0, dvo) if full else dvo
        nxt = 0.0 if fw.reset_out[t] else ro["P_v"] * dvo_raw[t]

    # recurrent neurons: dv_raw[t] = dE/d(v[t] before the clamp), da[t] = dE/da[t]
    dv_raw = np.zeros((n, n_rec))
    dv_next = np.zeros(n_rec)  # dv_raw[t + 1]
    da_next = np.zeros(n_rec)  # da[t + 1]
    for t in range(n - 1, -1, -1):
        dz = fw.dreg_dz[t].copy()
        carry = t + 1 < n and not fw.reset_rec[t + 1]
        if t + 1 < n:
            dz += ro["P_z"] * (W_out.T @ dvo_raw[t + 1])
            if cmod(t + 1 - SHIFT_REC, fw.settings.update_interval) != 0:  # else dropped by the synapses
                dz += W_rec.T @ (m.P_z * dv_next)  # each target's input factor
        if carry:
            if full:
                dz += -m.V_th * dv_next  # v[t + 1] = ... - V_th z[t]
            dz += da_next  # a[t + 1] = P_a a[t] + z[t] (zero for the plain model)
        dv = fw.psi[t] * dz + (m.P_v * dv_next if carry else 0.0)
        dv_raw[t] = np.where(fw.clamped[t], 0.0, dv) if full else dv
        da_next = np.where(m.adaptive, -m.beta * fw.psi[t] * dz + (m.P_a * da_next if carry else 0.0), 0.0)
        dv_next = dv_raw[t]

    grads = {
        "in_rec": m.P_z[:, None] * (dv_raw.T @ fw.x_in) * spec.masks["in_rec"],  # P_z of the target (row)
        "rec_rec": m.P_z[:, None] * (dv_raw.T @ fw.z_rec_in) * spec.masks["rec_rec"],
        "rec_out": ro["P_z"] * (dvo_raw.T @ fw.z_out_in) * spec.masks["rec_out"],
    }
    return grads, fw


# -- e-prop at fixed weights -----------------------------------------------------------------------------------------
@dataclass
class EpropBsshslm:
    gradients: dict[str, np.ndarray]  # windows of the data's update intervals: closed ones plus those still open
    closed: dict[str, np.ndarray]  # what the synapses handed to the optimizer (== run_online_bsshslm's gradients)
    open: dict[str, np.ndarray]  # windows of data intervals still open at the end of the run
    result: BsshslmResult  # the replay at learning rate 0


_PATCH_LOCK = threading.Lock()


def eprop_gradient_bsshslm(spec: NetworkSpec, weights: dict[str, np.ndarray] | None = None) -> EpropBsshslm:
    """The e-prop gradient NEST's bsshslm synapses compute at fixed ``weights``, summed over the windows of the
    data's update intervals, taken from :func:`run_online_bsshslm` itself (not reimplemented).

    The replay runs at learning rate 0 with unbounded weights (so weights stay fixed). It is instrumented, without
    editing online_bsshslm, by substituting recording subclasses of its ``_Synapses`` and ``_Recurrent`` classes for
    the duration of the call: every closing window's gradient is recorded with the window's interval
    (``t_prev_update // T``), and the windows still open at the end contribute what NEST would hand to the optimizer
    if they closed after all their learning signals arrived (``(G + reg_k sum_e) / A`` recurrent, ``G / A`` readout,
    with ``reg_k`` the value the neurons stored for that interval). Windows of intervals after the data (opened in
    the extra steps) are left out. Needs ``extra_steps >= 5`` so that every learning signal of the data arrives.
    """
    st = validate_bsshslm(spec)
    if st.extra_steps < SIGNAL_STEP_OFFSET + 1:
        raise SpecError(f"extra_steps = {st.extra_steps}: the learning signals of the last steps need >= 5")
    T = st.update_interval
    n_int = spec.input_spikes.shape[0] // T
    avg = float(st.learning_window) if st.average_gradient else 1.0
    weights = spec.weights if weights is None else weights
    fixed = spec.replace(
        weights={k: np.array(w, float, copy=True) for k, w in weights.items()},
        optimizer={"type": "gradient_descent", "eta": 0.0, "batch_size": 1, "Wmin": -np.inf, "Wmax": np.inf},
    )
    synapses: list[ob._Synapses] = []
    regs: list[np.ndarray] = []

    class RecordingSynapses(ob._Synapses):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.closed_data = np.zeros_like(self.w)
            synapses.append(self)

        def deliver(self, spiking, s, closing_gradient, flushing=None):
            def recording(p, cols):
                g = closing_gradient(p, cols)
                data = (p.t_prev_update[cols] // T) < n_int
                self.closed_data[:, cols[data]] += g[:, data]
                return g

            return super().deliver(spiking, s, recording, flushing)

    class RecordingRecurrent(ob._Recurrent):
        def firing_rate_reg(self, T_):
            reg = super().firing_rate_reg(T_)
            regs.append(reg.copy())
            return reg

    with _PATCH_LOCK:
        saved = ob._Synapses, ob._Recurrent
        ob._Synapses, ob._Recurrent = RecordingSynapses, RecordingRecurrent
        try:
            result = ob.run_online_bsshslm(fixed)
        finally:
            ob._Synapses, ob._Recurrent = saved

    closed, opened, total = {}, {}, {}
    for name, p in zip(PROJECTIONS, synapses, strict=True):  # created in this order by run_online_bsshslm
        o = np.zeros_like(p.w)
        k = p.t_prev_update // T
        live = (p.trigger > 0) & (p.trigger < p.t_next_update + p.shift) & (k < n_int)
        for col in np.flatnonzero(live):
            o[:, col] = p.G[:, col] + (regs[k[col]] * p.sum_e[:, col] if p.to_recurrent else 0.0)
        o = o / avg * spec.masks[name]
        closed[name] = p.closed_data * spec.masks[name]
        opened[name] = o
        total[name] = closed[name] + o
    return EpropBsshslm(total, closed, opened, result)

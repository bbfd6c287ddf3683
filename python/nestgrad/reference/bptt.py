"""Backpropagation through time for the same discrete-time networks, at fixed weights.

The forward pass replays the network of a :class:`NetworkSpec` with fixed weights (update steps as in
:mod:`nestgrad.reference.online`) and records what the backward pass needs. The loss is

    E = 1/2 sum_t sum_k (window[t] (y_k[t] - target_k[t]))^2
        + c_reg dt / 2 sum_t sum_j (f_j[t] - f_target dt)^2,   f_j[t] = kappa_reg f_j[t-1] + (1 - kappa_reg) z_j[t] / dt

(the second term is the regularisation loss whose e-prop gradient NEST computes). Spikes are differentiated with the
model's surrogate gradient psi. Two conventions:

* ``"eprop"``: what e-prop does not differentiate is not differentiated here either: the reset, the refractory
  clamping and the lower bound V_min (the membrane is treated as ``v[t] = P v[t-1] + input[t]``). With this
  convention e-prop and BPTT agree exactly where theory says they must (readout weights; input weights of a network
  without recurrent connections and adaptation), given symmetric feedback B = W_out^T and kappa = exp(-dt/tau_out).
* ``"full"``: everything is differentiated (reset, refractory clamping).

``smooth=True`` replaces the spike step function by a differentiable function whose derivative is the surrogate
gradient (same code otherwise); there, ``"full"`` BPTT is the exact gradient, which the tests check against finite
differences. Smooth mode requires t_ref = 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nestgrad.errors import SpecError
from nestgrad.reference.neurons import (
    RECURRENT_MODELS,
    EpropGlif3Psc,
    EpropIafAdapt,
    EpropIafPscDelta,
    EpropIafPscDeltaAdapt,
    EpropIafPscDeltaAsc,
    EpropIafPscExp,
    EpropIafPscExpAdapt,
    EpropReadout,
)
from nestgrad.reference.online import INPUT_TO_REC_STEPS, LEAD_STEPS
from nestgrad.reference.spec import NetworkSpec

CONVENTIONS = ("eprop", "full")


def smooth_spike(name: str, x: np.ndarray, height: float, width: float) -> np.ndarray:
    """A differentiable spike function S with S'(x) = surrogate_gradient(x) and S(-inf) = 0."""
    a = np.abs(x)
    if name == "piecewise_linear":
        c = np.clip(x, -width, width)
        return height * np.where(
            x <= -width, 0.0, np.where(x >= width, width, (c + width) - np.sign(c) * c * c / (2 * width) - width / 2)
        )
    if name == "exponential":
        return height * width * np.where(x < 0, np.exp(-a / width), 2.0 - np.exp(-a / width))
    if name == "fast_sigmoid_derivative":
        return height * width * (1.0 + (x / width) / (1.0 + a / width))
    if name == "arctan_derivative":
        return height * width * (np.arctan(x / width) + np.pi / 2)
    raise SpecError(f"unknown surrogate gradient {name!r}")


@dataclass
class ForwardRecord:
    x_in: np.ndarray  # [T, n_in] input spikes entering in step t
    z: np.ndarray  # [T, n_rec] spikes emitted in step t (enter their targets in step t + 1)
    psi: np.ndarray  # [T, n_rec]
    v_pre: np.ndarray  # [T, n_rec] membrane before reset
    free: np.ndarray  # [T, n_rec] not refractory at the start of step t (v integrates)
    theta: np.ndarray  # [T, n_rec] threshold used in step t
    adapt_free: np.ndarray  # [T, n_rec] whether the adaptation variable was updated in step t
    f_av: np.ndarray  # [T, n_rec]
    y: np.ndarray  # [T, n_out] readout
    err: np.ndarray  # [T, n_out] window (y - target)
    window: np.ndarray  # [T]
    loss: float


def masked_weights(spec: NetworkSpec, weights: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """W_in, W_rec, W_out with absent synapses set to zero."""
    return tuple(weights[k] * spec.masks[k] for k in ("in_rec", "rec_rec", "rec_out"))  # type: ignore[return-value]


def data_by_update_step(spec: NetworkSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Input spikes entering, targets and learning window per update step (data step j is update step j + 2)."""
    T = LEAD_STEPS + spec.input_spikes.shape[0]
    x_in = np.zeros((T, spec.n_in))
    x_in[INPUT_TO_REC_STEPS : INPUT_TO_REC_STEPS + spec.input_spikes.shape[0]] = spec.input_spikes
    target = np.zeros((T, spec.n_out))
    window = np.zeros(T)
    target[INPUT_TO_REC_STEPS : INPUT_TO_REC_STEPS + spec.target.shape[0]] = spec.target
    window[INPUT_TO_REC_STEPS : INPUT_TO_REC_STEPS + spec.window.shape[0]] = spec.window
    return x_in, target, window


def forward(spec: NetworkSpec, weights: dict[str, np.ndarray], smooth: bool = False) -> ForwardRecord:
    spec.validate()
    dt = spec.resolution
    m = RECURRENT_MODELS[spec.rec_model](spec.rec_params, dt)
    if isinstance(m, EpropGlif3Psc):
        raise SpecError("eprop_glif3_psc: use nestgrad.reference.bptt_glif3.forward_glif3")
    out = EpropReadout(spec.readout_params, dt)
    if smooth and m.refractory_steps != 0:
        raise SpecError("smooth mode needs t_ref = 0 (refractoriness is not differentiable)")
    n_rec, n_out = spec.n_rec, spec.n_out
    W_in, W_rec, W_out = masked_weights(spec, weights)
    x_in, target, window = data_by_update_step(spec)
    T = x_in.shape[0]

    rec = {k: np.zeros((T, n_rec)) for k in ("z", "psi", "v_pre", "free", "theta", "adapt_free", "f_av")}
    y = np.zeros((T, n_out))
    err = np.zeros((T, n_out))
    s = m.init_state(n_rec)
    so = out.init_state(n_out)
    z_prev = np.zeros(n_rec)
    f_av = np.zeros(n_rec)
    name, height, width = m.sg
    for t in range(T):
        inp = W_in @ x_in[t] + W_rec @ z_prev
        free = s.r == 0
        rec["free"][t] = free
        if isinstance(m, EpropIafPscExp):
            ex = np.where(W_in >= 0, W_in, 0) @ x_in[t] + np.where(W_rec >= 0, W_rec, 0) @ z_prev
            v_pre = np.where(
                free,
                m.P22 * s.v + m.P21_ex * s.extra["i_ex"] + m.P21_in * s.extra["i_in"] + m.P20 * (m.I_e + s.i_in),
                s.v,
            )
            s.extra["i_ex"] = m.P11_ex * s.extra["i_ex"] + ex
            s.extra["i_in"] = m.P11_in * s.extra["i_in"] + (inp - ex)
            s.r = np.where(free, s.r, s.r - 1)
            theta = np.full(n_rec, m.V_th)
            if isinstance(m, EpropIafPscExpAdapt):  # a decays every step; a spike adds 1 after its step
                s.extra["adapt"] = m.P_a * s.extra["adapt"]
                theta = m.V_th + m.beta * s.extra["adapt"]
                rec["adapt_free"][t] = 1.0
        elif isinstance(m, EpropIafPscDeltaAsc):
            v_pre = np.where(free, m.P_i * (s.i_in + m.I_e) + m.P_v * s.v + m.P_va * s.extra["asc"] + inp, s.v)
            s.extra["asc"] = m.P_a * s.extra["asc"]
            theta = np.full(n_rec, m.V_th)
            s.r = np.where(free, s.r, s.r - 1)
        elif isinstance(m, EpropIafPscDelta):
            v_pre = np.where(free, m.P_i * (s.i_in + m.I_e) + m.P_v * s.v + inp, s.v)
            if isinstance(m, EpropIafPscDeltaAdapt):
                s.extra["adapt"] = np.where(free, m.P_a * s.extra["adapt"] + s.extra["z"], s.extra["adapt"])
                s.extra["v_th_adapt"] = np.where(free, m.V_th + m.beta * s.extra["adapt"], s.extra["v_th_adapt"])
                theta = s.extra["v_th_adapt"].copy()
                rec["adapt_free"][t] = free
            else:
                theta = np.full(n_rec, m.V_th)
            s.r = np.where(free, s.r, s.r - 1)
        else:  # eprop_iaf, eprop_iaf_adapt: the refractory counter only blocks spikes
            s.r = np.where(s.r > 0, s.r - 1, s.r)
            v_pre = m.P_i * s.i_in + inp + m.P_v * s.v
            if isinstance(m, EpropIafAdapt):
                s.extra["adapt"] = m.P_a * s.extra["adapt"] + s.extra["z"]
                theta = m.V_th + m.beta * s.extra["adapt"]
                rec["adapt_free"][t] = 1.0
            else:
                theta = np.full(n_rec, m.V_th)
            rec["free"][t] = s.r == 0
        v_pre = np.maximum(v_pre, m.V_min)
        psi = m.psi(s.r, v_pre, theta)
        if smooth:
            z = smooth_spike(name, v_pre - theta, height, width)
        elif isinstance(m, EpropIafPscDelta) and not isinstance(m, EpropIafPscExp):
            z = (v_pre >= theta).astype(float)
        else:
            z = ((v_pre >= theta) & (s.r == 0)).astype(float)
        if isinstance(m, EpropIafPscDelta | EpropIafPscExp):
            s.v = (1.0 - z) * v_pre + z * m.V_reset
            s.r = np.where(z > 0, m.refractory_steps, s.r) if not smooth else s.r
        else:
            s.v = v_pre - m.V_th * z
            s.r = np.where(z > 0, m.refractory_steps, s.r) if not smooth else s.r
        if "z" in s.extra:
            s.extra["z"] = z
        if isinstance(m, EpropIafPscDeltaAsc):
            s.extra["asc"] = s.extra["asc"] + m.asc_amp * z
        if isinstance(m, EpropIafPscExpAdapt):
            s.extra["adapt"] = s.extra["adapt"] + z
        s.i_in = np.full(n_rec, m.I_e) if not isinstance(m, EpropIafPscDelta | EpropIafPscExp) else np.zeros(n_rec)
        f_av = m.kappa_reg * f_av + (1.0 - m.kappa_reg) * z / dt
        rec["z"][t], rec["psi"][t], rec["v_pre"][t], rec["theta"][t], rec["f_av"][t] = z, psi, v_pre, theta, f_av
        y[t], err[t] = out.step(so, W_out @ z_prev, target[t], window[t])
        z_prev = z
    loss = 0.5 * np.sum(err**2) + m.c_reg * dt / 2 * np.sum((rec["f_av"] - m.f_target_per_ms * dt) ** 2)
    return ForwardRecord(
        x_in,
        rec["z"],
        rec["psi"],
        rec["v_pre"],
        rec["free"],
        rec["theta"],
        rec["adapt_free"],
        rec["f_av"],
        y,
        err,
        window,
        float(loss),
    )


def bptt_gradient(
    spec: NetworkSpec, weights: dict[str, np.ndarray] | None = None, convention: str = "eprop", smooth: bool = False
) -> tuple[dict[str, np.ndarray], ForwardRecord]:
    """dE/dW for the projections in_rec, rec_rec, rec_out (masked), and the forward record."""
    if convention not in CONVENTIONS:
        raise SpecError(f"convention = {convention!r}; one of {CONVENTIONS}")
    if spec.rec_model == EpropGlif3Psc.name:
        if smooth:
            raise SpecError("smooth mode is not available for eprop_glif3_psc (its refractoriness is essential)")
        from nestgrad.reference.bptt_glif3 import bptt_gradient_glif3

        return bptt_gradient_glif3(spec, weights, convention)
    weights = spec.weights if weights is None else weights
    fw = forward(spec, weights, smooth=smooth)
    dt = spec.resolution
    m = RECURRENT_MODELS[spec.rec_model](spec.rec_params, dt)
    out = EpropReadout(spec.readout_params, dt)
    full = convention == "full"
    W_in, W_rec, W_out = masked_weights(spec, weights)
    T, n_rec = fw.z.shape
    is_exp = isinstance(m, EpropIafPscExp)
    is_delta = isinstance(m, EpropIafPscDelta) and not is_exp
    adaptive = isinstance(m, EpropIafAdapt | EpropIafPscDeltaAdapt | EpropIafPscExpAdapt)
    # a[t+1] = P_a a[t] + jump z[t]: NEST's models add the spike after the decay, the NESTML ALIF before it
    jump = m.P_a if isinstance(m, EpropIafPscExpAdapt) else 1.0
    P_v = m.P22 if is_exp else m.P_v

    # readout adjoint: d_out[t] = dE/dv_out[t]
    d_out = np.zeros_like(fw.err)
    acc = np.zeros(fw.err.shape[1])
    for t in range(T - 1, -1, -1):
        acc = fw.window[t] * fw.err[t] + out.P_v * acc
        d_out[t] = acc
    # regularisation adjoint: d_f[t] = dE/df[t]
    d_f = np.zeros((T, n_rec))
    acc = np.zeros(n_rec)
    for t in range(T - 1, -1, -1):
        acc = m.c_reg * dt * (fw.f_av[t] - m.f_target_per_ms * dt) + m.kappa_reg * acc
        d_f[t] = acc

    # Backward pass. d_in[x][t] = dE/d(synaptic input of receptor x entering in step t): for eprop_iaf kin and
    # psc_delta kin the input jumps into v_pre[t]; for psc_exp it enters the current I_x[t].
    freeze = full and (is_exp or is_delta)  # v is held while refractory ("full" differentiates the clamp)
    dv = np.zeros((T, n_rec))  # dE/dv_pre[t]
    d_in = {"ex": np.zeros((T, n_rec)), "in": np.zeros((T, n_rec))}
    da_next = np.zeros(n_rec)  # dE/da[t+1]
    asc = isinstance(m, EpropIafPscDeltaAsc)
    dasc_next = np.zeros(n_rec)  # dE/dI_asc[t+1] (after-spike current at the end of step t + 1)
    W_ex = np.where(W_rec >= 0, W_rec, 0.0)
    W_ih = W_rec - W_ex
    for t in range(T - 1, -1, -1):
        z = fw.z[t]
        last = t + 1 >= T
        dz = d_f[t] * (1.0 - m.kappa_reg) / dt  # regularisation
        if not last:
            dz = dz + W_out.T @ d_out[t + 1] + W_ex.T @ d_in["ex"][t + 1] + W_ih.T @ d_in["in"][t + 1]
            if adaptive:  # a[t+1] = P_a a[t] + z[t]  (psc_delta_adapt: only if not refractory in t+1)
                dz = dz + jump * da_next * (fw.adapt_free[t + 1] if isinstance(m, EpropIafPscDeltaAdapt) else 1.0)
        # dE/dv_post[t], from v_pre[t+1] = P v_post[t] + ... (or = v_post[t] while refractory)
        if last:
            dv_post = np.zeros(n_rec)
        elif freeze:
            dv_post = dv[t + 1] * np.where(fw.free[t + 1] > 0, P_v, 1.0)
        else:
            dv_post = dv[t + 1] * P_v
        # reset: v_post = v_pre - V_th z (eprop_iaf kin) or (1 - z) v_pre + z V_reset (psc_delta kin, psc_exp)
        dvpost_dvpre = 1.0
        if full:
            if is_exp or is_delta:
                dz = dz + dv_post * (m.V_reset - fw.v_pre[t])
                dvpost_dvpre = 1.0 - z
            else:
                dz = dz + dv_post * (-m.V_th)
        if asc:  # I_asc[t] = P_a I_asc[t-1] + asc_amp z[t]; v_pre[t+1] uses I_asc[t] through P_va (if it integrates)
            dasc = 0.0 if last else m.P_a * dasc_next + m.P_va * dv[t + 1] * (fw.free[t + 1] if freeze else 1.0)
            dz = dz + m.asc_amp * dasc
            dasc_next = dasc
        dv[t] = dv_post * dvpost_dvpre + fw.psi[t] * dz
        if adaptive:  # z[t] = H(v - V_th - beta a[t])
            da = -m.beta * fw.psi[t] * dz
            carry = m.P_a * da_next
            if isinstance(m, EpropIafPscDeltaAdapt) and full and not last:
                carry = np.where(fw.adapt_free[t + 1] > 0, m.P_a, 1.0) * da_next
            if isinstance(m, EpropIafPscDeltaAdapt) and full:
                da = np.where(fw.adapt_free[t] > 0, da, 0.0)
            da_next = da + (0.0 if last else carry)
        if is_exp:
            # I_x[t] = P11 I_x[t-1] + in_x[t]; v_pre[t+1] uses I_x[t] through P21 (if it integrates)
            into = 0.0 if last else dv[t + 1] * (fw.free[t + 1] if freeze else 1.0)
            for key, P11, P21 in (("ex", m.P11_ex, m.P21_ex), ("in", m.P11_in, m.P21_in)):
                prev = 0.0 if last else d_in[key][t + 1]
                d_in[key][t] = P11 * prev + P21 * into
        else:
            gate = fw.free[t] if freeze else 1.0
            d_in["ex"][t] = d_in["in"][t] = dv[t] * gate

    z_prev = np.vstack([np.zeros((1, n_rec)), fw.z[:-1]])
    grads = {"rec_out": (d_out.T @ z_prev) * spec.masks["rec_out"]}
    grads["in_rec"] = np.where(W_in >= 0, d_in["ex"].T @ fw.x_in, d_in["in"].T @ fw.x_in) * spec.masks["in_rec"]
    grads["rec_rec"] = np.where(W_rec >= 0, d_in["ex"].T @ z_prev, d_in["in"].T @ z_prev) * spec.masks["rec_rec"]
    return grads, fw

"""Backpropagation through time for the classic e-prop network of GLIF3 neurons (``eprop_glif3_psc``).

The same loss and conventions as :mod:`nestgrad.reference.bptt`, for the GLIF3 dynamics of
:class:`~nestgrad.reference.neurons.EpropGlif3Psc` (state per neuron: membrane U, after-spike currents A_1, A_2,
alpha currents (y1_r, y2_r) per receptor port r; excitatory weights on port 1, inhibitory ones on port 2). In a
step t in which the neuron is not refractory

    Ubar[t] = P33 U[t-1] + P30 (I_e + sum_j c_j A_j[t-1]) + sum_r (P31_r y1_r[t-1] + P32_r y2_r[t-1])
    z[t]    = H(Ubar[t] - theta)                      (differentiated with the surrogate gradient psi[t])
    A_j[t]  = d_j A_j[t-1] + z[t] (a_j + (rho_j - 1) d_j A_j[t-1])
    U[t]    = Ubar[t] (1 - z[t]) + V_reset z[t]

and in a refractory step U and A_j keep their values (z = 0); always y2_r[t] = h P11_r y1_r[t-1] + P11_r y2_r[t-1],
y1_r[t] = P11_r y1_r[t-1] + (e / tau_syn_r) in_r[t]. Conventions:

* ``"eprop"``: the reset is not differentiated (dU[t]/dUbar[t] = 1, no dU[t]/dz[t]); everything else is. The
  forward-mode eligibility vector of ``eprop_glif3_psc`` is the derivative of this convention, so e-prop equals this
  BPTT where theory says it must (no recurrent connections, symmetric feedback, kappa = readout decay).
* ``"full"``: the reset is differentiated too.

This module is written in reverse mode, independently of the forward-mode eligibility recursion, which makes the
theory-case agreement a check of the derivation in docs/ and in the C++ model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nestgrad.errors import SpecError
from nestgrad.reference.bptt import CONVENTIONS, data_by_update_step, masked_weights
from nestgrad.reference.neurons import EpropGlif3Psc, EpropReadout
from nestgrad.reference.spec import NetworkSpec


@dataclass
class Glif3Record:
    x_in: np.ndarray  # [T, n_in] input spikes entering in step t
    z: np.ndarray  # [T, n_rec] spikes emitted in step t
    psi: np.ndarray  # [T, n_rec]
    u_pre: np.ndarray  # [T, n_rec] membrane before the reset
    free: np.ndarray  # [T, n_rec] bool: integrated in step t (not refractory)
    jump: np.ndarray  # [T, 2, n_rec] a_j + (rho_j - 1) d_j A_j[t-1]: dA_j[t]/dz[t]
    f_av: np.ndarray  # [T, n_rec]
    y: np.ndarray  # [T, n_out]
    err: np.ndarray  # [T, n_out]
    window: np.ndarray  # [T]
    loss: float


def forward_glif3(spec: NetworkSpec, weights: dict[str, np.ndarray]) -> Glif3Record:
    spec.validate()
    dt = spec.resolution
    m = EpropGlif3Psc(spec.rec_params, dt)
    out = EpropReadout(spec.readout_params, dt)
    n_rec, n_out = spec.n_rec, spec.n_out
    W_in, W_rec, W_out = masked_weights(spec, weights)
    x_in, target, window = data_by_update_step(spec)
    T = x_in.shape[0]

    z_rec, psi_rec, u_pre, free_rec, f_rec = (np.zeros((T, n_rec)) for _ in range(5))
    jump_rec = np.zeros((T, 2, n_rec))
    y, err = np.zeros((T, n_out)), np.zeros((T, n_out))
    s, so = m.init_state(n_rec), out.init_state(n_out)
    z_prev, f_av = np.zeros(n_rec), np.zeros(n_rec)
    W_in_ex, W_rec_ex = np.where(W_in >= 0, W_in, 0.0), np.where(W_rec >= 0, W_rec, 0.0)
    for t in range(T):
        ex = W_in_ex @ x_in[t] + W_rec_ex @ z_prev
        inh = (W_in - W_in_ex) @ x_in[t] + (W_rec - W_rec_ex) @ z_prev
        free = s.r == 0
        psi, z = m.step(s, ex, inh)
        jump = m._step[2]
        u_pre[t] = m._last_u_pre
        z_rec[t], psi_rec[t], free_rec[t], jump_rec[t] = z, psi, free, jump
        f_av = m.kappa_reg * f_av + (1.0 - m.kappa_reg) * z / dt
        f_rec[t] = f_av
        y[t], err[t] = out.step(so, W_out @ z_prev, target[t], window[t])
        z_prev = z
    loss = 0.5 * np.sum(err**2) + m.c_reg * dt / 2 * np.sum((f_rec - m.f_target_per_ms * dt) ** 2)
    return Glif3Record(x_in, z_rec, psi_rec, u_pre, free_rec > 0, jump_rec, f_rec, y, err, window, float(loss))


def bptt_gradient_glif3(
    spec: NetworkSpec, weights: dict[str, np.ndarray] | None = None, convention: str = "eprop"
) -> tuple[dict[str, np.ndarray], Glif3Record]:
    """dE/dW for in_rec, rec_rec and rec_out (masked) of a GLIF3 network, and the forward record."""
    if convention not in CONVENTIONS:
        raise SpecError(f"convention = {convention!r}; one of {CONVENTIONS}")
    weights = spec.weights if weights is None else weights
    fw = forward_glif3(spec, weights)
    dt = spec.resolution
    m = EpropGlif3Psc(spec.rec_params, dt)
    out = EpropReadout(spec.readout_params, dt)
    full = convention == "full"
    W_in, W_rec, W_out = masked_weights(spec, weights)
    T, n_rec = fw.z.shape

    d_out = np.zeros_like(fw.err)  # dE/dv_out[t]
    acc = np.zeros(fw.err.shape[1])
    for t in range(T - 1, -1, -1):
        acc = fw.window[t] * fw.err[t] + out.P_v * acc
        d_out[t] = acc
    d_f = np.zeros((T, n_rec))  # dE/df[t]
    acc = np.zeros(n_rec)
    for t in range(T - 1, -1, -1):
        acc = m.c_reg * dt * (fw.f_av[t] - m.f_target_per_ms * dt) + m.kappa_reg * acc
        d_f[t] = acc

    W_ex = np.where(W_rec >= 0, W_rec, 0.0)
    W_ih = W_rec - W_ex
    ports = (0, 1)  # excitatory, inhibitory
    # adjoints of the state after step t, accumulated from step t + 1
    gU = np.zeros(n_rec)
    gA = np.zeros((2, n_rec))
    gy1 = np.zeros((2, n_rec))
    gy2 = np.zeros((2, n_rec))
    d_in = np.zeros((2, T, n_rec))  # dE/d(summed weights entering port r in step t)
    for t in range(T - 1, -1, -1):
        z, psi, free = fw.z[t], fw.psi[t], fw.free[t]
        # y1_r[t] = P11 y1_r[t-1] + b_r in_r[t]
        d_in[:, t] = m.psc_initial[:2, None] * gy1
        dz = d_f[t] * (1.0 - m.kappa_reg) / dt
        if t + 1 < T:
            dz = dz + W_out.T @ d_out[t + 1] + W_ex.T @ d_in[0, t + 1] + W_ih.T @ d_in[1, t + 1]
        dz = dz + np.sum(gA * fw.jump[t], axis=0)  # A_j[t] = ... + z[t] jump_j[t]
        if full:
            dz = dz + gU * (m.V_reset - fw.u_pre[t])
            g_ubar = gU * (1.0 - z) + psi * dz
        else:
            g_ubar = gU + psi * dz
        # to the state after step t - 1
        gU_prev = np.where(free, m.P33 * g_ubar, gU)
        gA_prev = np.empty_like(gA)
        for j in range(2):
            through_decay = (1.0 + z * (m.rho[j] - 1.0)) * m.d[j] * gA[j]
            gA_prev[j] = np.where(free, m.P30 * m.c[j] * g_ubar + through_decay, gA[j])
        gy1_prev = np.empty_like(gy1)
        gy2_prev = np.empty_like(gy2)
        for r in ports:
            into_u = np.where(free, g_ubar, 0.0)
            gy1_prev[r] = m.P11[r] * gy1[r] + m.P21[r] * gy2[r] + m.P31[r] * into_u
            gy2_prev[r] = m.P11[r] * gy2[r] + m.P32[r] * into_u
        gU, gA, gy1, gy2 = gU_prev, gA_prev, gy1_prev, gy2_prev

    z_prev = np.vstack([np.zeros((1, n_rec)), fw.z[:-1]])
    grads = {"rec_out": (d_out.T @ z_prev) * spec.masks["rec_out"]}
    grads["in_rec"] = np.where(W_in >= 0, d_in[0].T @ fw.x_in, d_in[1].T @ fw.x_in) * spec.masks["in_rec"]
    grads["rec_rec"] = np.where(W_rec >= 0, d_in[0].T @ z_prev, d_in[1].T @ z_prev) * spec.masks["rec_rec"]
    return grads, fw

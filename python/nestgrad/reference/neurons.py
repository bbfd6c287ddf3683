"""Discrete-time dynamics of the e-prop neuron models, exactly as NEST's (and nestgrad's) C++ code computes them.

Every model is a small class built from the model's NEST parameters (NEST names and units) and the resolution.
``step`` advances all neurons of a population by one time step and returns the surrogate gradient and the spikes
of that step; the ``*_trace`` methods advance the e-prop eligibility vectors of the population's incoming synapses.
Voltages are kept relative to E_L, as in the C++ code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nestgrad.errors import SpecError


def surrogate_gradient(
    name: str, r: np.ndarray, v: np.ndarray, v_th: np.ndarray | float, height: float, width: float
) -> np.ndarray:
    """NEST's surrogate gradients (EpropArchivingNodeRecurrent), zero while refractory (r > 0)."""
    x = v - v_th
    if name == "piecewise_linear":
        psi = height * np.maximum(0.0, 1.0 - np.abs(x) / width)
    elif name == "exponential":
        psi = height * np.exp(-np.abs(x) / width)
    elif name == "fast_sigmoid_derivative":
        psi = height * (1.0 + np.abs(x) / width) ** -2.0
    elif name == "arctan_derivative":
        psi = height / (1.0 + (x / width) ** 2)
    else:
        raise SpecError(
            f"surrogate_gradient_function = {name!r} is unknown; known: piecewise_linear, "
            "exponential, fast_sigmoid_derivative, arctan_derivative"
        )
    return np.where(r > 0, 0.0, psi)


def steps_of(ms: float, dt: float) -> int:
    """NEST's Time(ms).get_steps(): round to the nearest step."""
    if not np.isfinite(ms):
        return np.iinfo(np.int64).max // 4
    return int(np.floor(ms / dt + 0.5))


@dataclass
class PopulationState:
    v: np.ndarray
    r: np.ndarray
    i_in: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)


class RecurrentModel:
    """Base class of the recurrent e-prop models. Subclasses set ``traces`` (per-synapse eligibility state names)."""

    name = ""
    traces: tuple[str, ...] = ("z_bar",)
    per_synapse_traces = False  # whether traces depend on the synapse (e.g. on its weight's sign)
    receptor_fixed_at_connection = False  # excitatory/inhibitory input by the initial weight's sign, not the current
    trace_depends_on_window = False  # trace_step takes the synapses' gradient-window mask (``active``)

    def __init__(self, params: dict[str, Any], dt: float):
        self.p = params
        self.dt = dt
        E_L = params["E_L"]
        self.E_L = E_L
        self.V_th = params["V_th"] - E_L
        self.V_min = params.get("V_min", -np.finfo(float).max) - E_L
        self.C_m = params["C_m"]
        self.tau_m = params["tau_m"]
        self.I_e = params.get("I_e", 0.0)
        self.refractory_steps = steps_of(params.get("t_ref", 0.0), dt)
        self.kappa = params["kappa"]
        self.kappa_reg = params["kappa_reg"]
        self.c_reg = params["c_reg"]
        self.f_target_per_ms = params["f_target"] / 1000.0  # NEST stores spikes per ms
        self.sg = (
            params["surrogate_gradient_function"],
            params["surrogate_gradient_height"],
            params["surrogate_gradient_width"],
        )
        self.cutoff_steps = steps_of(params.get("eprop_isi_trace_cutoff", np.inf), dt)
        self.P_v = np.exp(-dt / self.tau_m)
        self.P_i = self.tau_m / self.C_m * (1.0 - self.P_v)

    def init_state(self, n: int) -> PopulationState:
        v0 = self.p.get("V_m", self.E_L) - self.E_L
        return PopulationState(np.full(n, v0), np.zeros(n, dtype=np.int64), np.zeros(n))

    def psi(self, r: np.ndarray, v: np.ndarray, v_th: np.ndarray | float) -> np.ndarray:
        return surrogate_gradient(self.sg[0], r, v, v_th, self.sg[1], self.sg[2])

    # hooks
    def step(self, s: PopulationState, z_in_ex: np.ndarray, z_in_in: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def init_traces(self, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
        """Trace arrays for the synapses [post, pre] of one projection (z_bar depends only on the presynaptic
        neuron for these models)."""
        return {"z_bar": np.zeros(shape[1])}

    def trace_step(
        self, tr: dict[str, np.ndarray], z_pre: np.ndarray, psi_post: np.ndarray, excitatory: np.ndarray | None
    ) -> np.ndarray:
        """Advance the eligibility vectors by one step (z_pre: presynaptic spikes entering this step, [pre]);
        return the eligibility traces e [post, pre] of this step."""
        tr["z_bar"] = self.P_v * tr["z_bar"] + z_pre
        return psi_post[:, None] * tr["z_bar"][None, :]

    def after_masked_e(self, tr: dict[str, np.ndarray], e_masked: np.ndarray) -> None:
        """Model-specific updates that use the eligibility trace after the cutoff mask (adaptation)."""


class EpropIaf(RecurrentModel):
    """NEST's ``eprop_iaf``: v = P_i i_in + z_in + P_v v; reset by subtraction of V_th."""

    name = "eprop_iaf"

    def step(self, s, z_in_ex, z_in_in):
        s.r = np.where(s.r > 0, s.r - 1, s.r)
        s.v = self.P_i * s.i_in + (z_in_ex + z_in_in) + self.P_v * s.v
        s.v = np.maximum(s.v, self.V_min)
        psi = self.psi(s.r, s.v, self.V_th)
        z = ((s.v >= self.V_th) & (s.r == 0)).astype(float)
        s.v = s.v - self.V_th * z
        s.r = np.where(z > 0, self.refractory_steps, s.r)
        s.i_in = np.full_like(s.v, self.I_e)
        return psi, z


class EpropIafAdapt(RecurrentModel):
    """NEST's ``eprop_iaf_adapt``: eprop_iaf with an adaptive threshold V_th + beta a, a = P_a a + z_prev."""

    name = "eprop_iaf_adapt"
    traces = ("z_bar", "epsilon")
    per_synapse_traces = True  # epsilon depends on the postsynaptic surrogate gradient

    def __init__(self, params, dt):
        super().__init__(params, dt)
        self.beta = params["adapt_beta"]
        self.P_a = np.exp(-dt / params["adapt_tau"])

    def init_state(self, n):
        s = super().init_state(n)
        s.extra = {"adapt": np.zeros(n), "z": np.zeros(n)}
        return s

    def step(self, s, z_in_ex, z_in_in):
        s.r = np.where(s.r > 0, s.r - 1, s.r)
        s.v = self.P_i * s.i_in + (z_in_ex + z_in_in) + self.P_v * s.v
        s.v = np.maximum(s.v, self.V_min)
        s.extra["adapt"] = self.P_a * s.extra["adapt"] + s.extra["z"]
        v_th_adapt = self.V_th + self.beta * s.extra["adapt"]
        psi = self.psi(s.r, s.v, v_th_adapt)
        z = ((s.v >= v_th_adapt) & (s.r == 0)).astype(float)
        s.v = s.v - self.V_th * z
        s.r = np.where(z > 0, self.refractory_steps, s.r)
        s.extra["z"] = z
        s.i_in = np.full_like(s.v, self.I_e)
        return psi, z

    def init_traces(self, shape):
        return {"z_bar": np.zeros(shape[1]), "epsilon": np.zeros(shape)}

    def trace_step(self, tr, z_pre, psi_post, excitatory):
        tr["z_bar"] = self.P_v * tr["z_bar"] + z_pre
        return psi_post[:, None] * (tr["z_bar"][None, :] - self.beta * tr["epsilon"])

    def after_masked_e(self, tr, e_masked):
        tr["epsilon"] = self.P_a * tr["epsilon"] + e_masked


class EpropIafPscDelta(RecurrentModel):
    """NEST's ``eprop_iaf_psc_delta``: v frozen at V_reset while refractory; reset to V_reset."""

    name = "eprop_iaf_psc_delta"

    def __init__(self, params, dt):
        super().__init__(params, dt)
        self.V_reset = params["V_reset"] - self.E_L
        if params.get("with_refr_input", False):
            raise SpecError("eprop_iaf_psc_delta: with_refr_input = True is not supported by the reference engine")

    def step(self, s, z_in_ex, z_in_in):
        free = s.r == 0
        v_new = self.P_i * (s.i_in + self.I_e) + self.P_v * s.v + (z_in_ex + z_in_in)
        s.v = np.where(free, np.maximum(v_new, self.V_min), s.v)
        s.r = np.where(free, s.r, s.r - 1)
        psi = self.psi(s.r, s.v, self.V_th)
        z = (s.v >= self.V_th).astype(float)
        s.r = np.where(z > 0, self.refractory_steps, s.r)
        s.v = np.where(z > 0, self.V_reset, s.v)
        s.i_in = np.zeros_like(s.v)
        return psi, z


class EpropIafPscDeltaAdapt(EpropIafPscDelta):
    """NEST's ``eprop_iaf_psc_delta_adapt``: psc_delta with an adaptive threshold; v and the adaptation are frozen
    while refractory (so a spike's own adaptation increment is lost if t_ref > 0, as in NEST's code)."""

    name = "eprop_iaf_psc_delta_adapt"
    traces = ("z_bar", "epsilon")
    per_synapse_traces = True
    keeps_increment_while_refractory = False  # the NESTML twin keeps it (waiting in "z") and spikes only if r == 0

    def __init__(self, params, dt):
        super().__init__(params, dt)
        self.beta = params["adapt_beta"]
        self.P_a = np.exp(-dt / params["adapt_tau"])

    def init_state(self, n):
        s = super().init_state(n)
        s.extra = {"adapt": np.zeros(n), "z": np.zeros(n), "v_th_adapt": np.full(n, self.V_th)}
        return s

    def step(self, s, z_in_ex, z_in_in):
        free = s.r == 0
        v_new = self.P_i * (s.i_in + self.I_e) + self.P_v * s.v + (z_in_ex + z_in_in)
        s.v = np.where(free, np.maximum(v_new, self.V_min), s.v)
        s.extra["adapt"] = np.where(free, self.P_a * s.extra["adapt"] + s.extra["z"], s.extra["adapt"])
        s.extra["v_th_adapt"] = np.where(free, self.V_th + self.beta * s.extra["adapt"], s.extra["v_th_adapt"])
        s.r = np.where(free, s.r, s.r - 1)
        psi = self.psi(s.r, s.v, s.extra["v_th_adapt"])
        crossed = s.v >= s.extra["v_th_adapt"]
        keep = self.keeps_increment_while_refractory
        z = (crossed & (s.r == 0) if keep else crossed).astype(float)
        s.r = np.where(z > 0, self.refractory_steps, s.r)
        s.v = np.where(z > 0, self.V_reset, s.v)
        # NEST's model: the increment is consumed by the next step, refractory or not
        s.extra["z"] = np.where(free, 0.0, s.extra["z"]) + z if keep else z
        s.i_in = np.zeros_like(s.v)
        return psi, z

    init_traces = EpropIafAdapt.init_traces
    trace_step = EpropIafAdapt.trace_step
    after_masked_e = EpropIafAdapt.after_masked_e


class EpropIafPscExp(RecurrentModel):
    """nestgrad's ``eprop_iaf_psc_exp`` (cpp_module/models/eprop_iaf_psc_exp.cpp)."""

    name = "eprop_iaf_psc_exp"
    traces = ("eps_v", "eps_i")
    per_synapse_traces = True

    def __init__(self, params, dt):
        super().__init__(params, dt)
        self.V_reset = params["V_reset"] - self.E_L
        self.P22 = np.exp(-dt / self.tau_m)
        self.P20 = -self.tau_m / self.C_m * np.expm1(-dt / self.tau_m)
        self.tau_ex, self.tau_in = params["tau_syn_ex"], params["tau_syn_in"]
        self.P11_ex, self.P11_in = np.exp(-dt / self.tau_ex), np.exp(-dt / self.tau_in)
        self.P21_ex = current_to_voltage_propagator(self.tau_ex, self.tau_m, self.C_m, dt)
        self.P21_in = current_to_voltage_propagator(self.tau_in, self.tau_m, self.C_m, dt)

    def init_state(self, n):
        s = super().init_state(n)
        s.extra = {"i_ex": np.zeros(n), "i_in": np.zeros(n)}
        return s

    def step(self, s, z_in_ex, z_in_in):
        free = s.r == 0
        v_new = (
            self.P22 * s.v
            + self.P21_ex * s.extra["i_ex"]
            + self.P21_in * s.extra["i_in"]
            + self.P20 * (self.I_e + s.i_in)
        )
        s.v = np.where(free, np.maximum(v_new, self.V_min), s.v)
        s.r = np.where(free, s.r, s.r - 1)
        s.extra["i_ex"] = self.P11_ex * s.extra["i_ex"] + z_in_ex
        s.extra["i_in"] = self.P11_in * s.extra["i_in"] + z_in_in
        psi = self.psi(s.r, s.v, self.V_th)
        z = ((s.v >= self.V_th) & (s.r == 0)).astype(float)
        s.r = np.where(z > 0, self.refractory_steps, s.r)
        s.v = np.where(z > 0, self.V_reset, s.v)
        s.i_in = np.zeros_like(s.v)  # no current generators in these networks
        return psi, z

    def init_traces(self, shape):
        return {"eps_v": np.zeros(shape), "eps_i": np.zeros(shape)}

    def trace_step(self, tr, z_pre, psi_post, excitatory):
        P11 = np.where(excitatory, self.P11_ex, self.P11_in)
        P21 = np.where(excitatory, self.P21_ex, self.P21_in)
        tr["eps_v"] = self.P22 * tr["eps_v"] + P21 * tr["eps_i"]
        tr["eps_i"] = P11 * tr["eps_i"] + z_pre[None, :]
        return psi_post[:, None] * tr["eps_v"]


class EpropIafPscDeltaNestml(EpropIafPscDelta):
    """nestgrad's NESTML twin ``eprop_iaf_psc_delta_nestml`` (nestml_models/): the dynamics of NEST's model."""

    name = "eprop_iaf_psc_delta_nestml"


class EpropIafPscDeltaAdaptNestml(EpropIafPscDeltaAdapt):
    """nestgrad's NESTML twin ``eprop_iaf_psc_delta_adapt_nestml``: NEST's model, except that a spike's adaptation
    increment is kept when the next step is refractory (NEST's model drops it), so the two agree for t_ref = 0."""

    name = "eprop_iaf_psc_delta_adapt_nestml"
    keeps_increment_while_refractory = True


class EpropIafPscDeltaAsc(EpropIafPscDelta):
    """nestgrad's NESTML model ``eprop_iaf_psc_delta_asc_nestml`` (no NEST twin): eprop_iaf_psc_delta with an
    after-spike current I_asc (+= asc_amp per spike, decays with asc_tau, keeps decaying while refractory) that
    flows into the membrane. Eligibility vector (eps_v, eps_a): the adaptation acts through v, not the threshold."""

    name = "eprop_iaf_psc_delta_asc_nestml"
    traces = ("eps_v", "eps_a")
    per_synapse_traces = True

    def __init__(self, params, dt):
        super().__init__(params, dt)
        self.asc_amp = params["asc_amp"]
        tau_a = params["asc_tau"]
        if tau_a == self.tau_m:
            raise SpecError(f"{self.name}: asc_tau = tau_m = {tau_a} ms makes the exact propagators singular")
        self.P_a = np.exp(-dt / tau_a)
        # V_m's response to I_asc over one step: (1/C_m) int_0^h exp(-(h-s)/tau_m) exp(-s/tau_a) ds
        self.P_va = tau_a * self.tau_m / (self.C_m * (tau_a - self.tau_m)) * (self.P_a - self.P_v)

    def init_state(self, n):
        s = super().init_state(n)
        s.extra = {"asc": np.zeros(n)}
        return s

    def step(self, s, z_in_ex, z_in_in):
        free = s.r == 0
        v_new = self.P_i * (s.i_in + self.I_e) + self.P_v * s.v + self.P_va * s.extra["asc"] + (z_in_ex + z_in_in)
        s.v = np.where(free, np.maximum(v_new, self.V_min), s.v)
        s.extra["asc"] = self.P_a * s.extra["asc"]
        s.r = np.where(free, s.r, s.r - 1)
        psi = self.psi(s.r, s.v, self.V_th)
        z = ((s.v >= self.V_th) & (s.r == 0)).astype(float)
        s.r = np.where(z > 0, self.refractory_steps, s.r)
        s.v = np.where(z > 0, self.V_reset, s.v)
        s.extra["asc"] = s.extra["asc"] + self.asc_amp * z
        s.i_in = np.zeros_like(s.v)
        return psi, z

    def init_traces(self, shape):
        return {"eps_v": np.zeros(shape), "eps_a": np.zeros(shape)}

    def trace_step(self, tr, z_pre, psi_post, excitatory):
        tr["eps_v"] = self.P_v * tr["eps_v"] + self.P_va * tr["eps_a"] + z_pre[None, :]
        tr["eps_a"] = self.P_a * tr["eps_a"]
        return psi_post[:, None] * tr["eps_v"]

    def after_masked_e(self, tr, e_masked):
        tr["eps_a"] = tr["eps_a"] + self.asc_amp * e_masked


class EpropIafPscExpNestml(EpropIafPscExp):
    """nestgrad's NESTML model ``eprop_iaf_psc_exp_nestml`` (the tutorial's): ``eprop_iaf_psc_exp`` with one
    synaptic time constant ``tau_syn`` for excitation and inhibition."""

    name = "eprop_iaf_psc_exp_nestml"

    def __init__(self, params, dt):
        super().__init__(dict(params, tau_syn_ex=params["tau_syn"], tau_syn_in=params["tau_syn"]), dt)


class EpropIafPscExpAdapt(EpropIafPscExpNestml):
    """nestgrad's NESTML model ``eprop_iaf_psc_exp_adapt_nestml`` (no NEST twin): ``eprop_iaf_psc_exp_nestml`` with
    an adaptive threshold V_th + beta a; a += 1 at a spike, a decays with adapt_tau (also while refractory).
    Eligibility vector (eps_v, eps_i, eps_a)."""

    name = "eprop_iaf_psc_exp_adapt_nestml"
    traces = ("eps_v", "eps_i", "eps_a")

    def __init__(self, params, dt):
        super().__init__(params, dt)
        self.beta = params["adapt_beta"]
        self.P_a = np.exp(-dt / params["adapt_tau"])

    def init_state(self, n):
        s = super().init_state(n)
        s.extra["adapt"] = np.zeros(n)  # after this step's spike
        return s

    def step(self, s, z_in_ex, z_in_in):
        free = s.r == 0
        i_syn = s.extra["i_ex"] + s.extra["i_in"]
        v_new = self.P22 * s.v + self.P21_ex * i_syn + self.P20 * (self.I_e + s.i_in)
        s.v = np.where(free, np.maximum(v_new, self.V_min), s.v)
        s.r = np.where(free, s.r, s.r - 1)
        s.extra["i_ex"] = self.P11_ex * i_syn + (z_in_ex + z_in_in)  # one current, both signs
        s.extra["i_in"] = np.zeros_like(i_syn)
        s.extra["adapt"] = self.P_a * s.extra["adapt"]
        v_th = self.V_th + self.beta * s.extra["adapt"]
        psi = self.psi(s.r, s.v, v_th)
        z = ((s.v >= v_th) & (s.r == 0)).astype(float)
        s.r = np.where(z > 0, self.refractory_steps, s.r)
        s.v = np.where(z > 0, self.V_reset, s.v)
        s.extra["adapt"] = s.extra["adapt"] + z
        s.i_in = np.zeros_like(s.v)
        return psi, z

    def init_traces(self, shape):
        return {"eps_v": np.zeros(shape), "eps_i": np.zeros(shape), "eps_a": np.zeros(shape)}

    def trace_step(self, tr, z_pre, psi_post, excitatory):
        tr["eps_v"] = self.P22 * tr["eps_v"] + self.P21_ex * tr["eps_i"]
        tr["eps_i"] = self.P11_ex * tr["eps_i"] + z_pre[None, :]
        tr["eps_a"] = self.P_a * tr["eps_a"]
        return psi_post[:, None] * (tr["eps_v"] - self.beta * tr["eps_a"])

    def after_masked_e(self, tr, e_masked):
        tr["eps_a"] = tr["eps_a"] + e_masked


class EpropIafPscExpExcInh(EpropIafPscExp):
    """nestgrad's NESTML model ``eprop_iaf_psc_exp_exc_inh_nestml``: ``eprop_iaf_psc_exp`` with the current chosen by
    the receptor port of the connection (weights >= 0 at connection time: excitatory), not by the current sign."""

    name = "eprop_iaf_psc_exp_exc_inh_nestml"
    receptor_fixed_at_connection = True


class EpropGlif3Psc(RecurrentModel):
    """nestgrad's ``eprop_glif3_psc`` (cpp_module/models/eprop_glif3_psc.cpp): NEST's ``glif_psc`` as GLIF3 (two
    after-spike currents A_j, alpha-shaped synaptic currents per receptor port, U and A_j frozen while refractory).
    In the e-prop networks excitatory weights enter port 1 and inhibitory ones port 2 (by the sign at connection).

    Eligibility vector per synapse (eps_y, eps_I, eps_U, eps_A1, eps_A2): it follows the step actually taken
    (frozen while refractory, A_j's spike factor rho_j) inside the gradient window of the synapse and the propagator
    of a free step beyond the cutoff, as the C++ model does; ``trace_step`` therefore takes the window mask."""

    name = "eprop_glif3_psc"
    traces = ("eps_y", "eps_I", "eps_U", "eps_A1", "eps_A2")
    per_synapse_traces = True
    receptor_fixed_at_connection = True
    trace_depends_on_window = True

    def __init__(self, params, dt):
        tau_m = params["C_m"] / params["g"]
        super().__init__(dict(params, tau_m=tau_m), dt)
        self.V_reset = params["V_reset"] - self.E_L
        self.P33 = np.exp(-dt / tau_m)
        self.P30 = 1 / self.C_m * (1 - self.P33) * tau_m
        k = np.asarray(params["asc_decay"], float)
        if k.shape != (2,) or np.asarray(params["asc_amps"]).shape != (2,) or np.asarray(params["asc_r"]).shape != (2,):
            raise SpecError(f"{self.name}: asc_decay, asc_amps and asc_r need exactly two entries")
        self.asc_amps = np.asarray(params["asc_amps"], float)
        self.asc_init = np.asarray(params.get("asc_init", [0.0, 0.0]), float)
        self.d = np.exp(-k * dt)
        self.c = ((1.0 / k) / dt) * (1.0 - self.d)
        self.rho = np.asarray(params["asc_r"], float) * np.exp(-k * params["t_ref"])
        tau_syn = np.asarray(params["tau_syn"], float)
        if tau_syn.size < 2:
            raise SpecError(f"{self.name}: the e-prop network needs two receptor ports (tau_syn has {tau_syn.size})")
        self.P11 = np.exp(-dt / tau_syn)
        self.P21 = dt * self.P11
        propagators = [alpha_current_to_voltage_propagators(ts, tau_m, self.C_m, dt) for ts in tau_syn]
        self.P31, self.P32 = np.array(propagators).T
        self.psc_initial = 1.0 * np.e / tau_syn
        self._step = None  # (refractory, spiked, jump[2, n]) of the last step, for trace_step
        self._last_u_pre = None

    def eligibility_growth(self, psi_peak: float, max_on: int = 40, max_off: int = 60) -> float:
        """Largest growth per step of the (eps_U, eps_A1, eps_A2) recursion over periodic patterns of ``on`` steps
        near threshold (psi = psi_peak or psi_peak / 2, no spike) and ``off`` steps away from it (psi = 0), for
        1 <= on < max_on, 0 <= off < max_off: the spectral radius of one period's product, per step. Each step's map
        contracts, but the maps do not commute (the after-spike currents feed the neuron's own spike sensitivity back
        into its membrane), so products can grow; > 1 means that eligibility traces can grow without bound (a lower
        bound of the switched system's growth rate: other patterns can grow faster)."""

        def step(psi: float) -> np.ndarray:
            m = np.zeros((3, 3))
            m[0] = [self.P33, self.P30 * self.c[0], self.P30 * self.c[1]]
            for j in range(2):
                m[1 + j] = self.asc_amps[j] * psi * m[0]
                m[1 + j, 1 + j] += self.d[j]
            return m

        off_step, growth = step(0.0), 0.0
        for psi in (psi_peak, psi_peak / 2):
            on_step = step(psi)
            on_power = np.eye(3)
            for on in range(1, max_on):
                on_power = on_step @ on_power
                product = on_power
                for off in range(max_off):
                    radius = float(np.abs(np.linalg.eigvals(product)).max())
                    growth = max(growth, radius ** (1.0 / (on + off)))
                    product = off_step @ product
        return growth

    def init_state(self, n):
        s = super().init_state(n)
        n_ports = self.P11.size
        s.extra = {
            "A": np.tile(self.asc_init[:, None], (1, n)),
            "y1": np.zeros((n_ports, n)),
            "y2": np.zeros((n_ports, n)),
        }
        return s

    def step(self, s, z_in_ex, z_in_in):
        free = s.r == 0
        A, y1, y2 = s.extra["A"], s.extra["y1"], s.extra["y2"]
        asc_sum = 0.0 + self.c[0] * A[0]
        asc_sum = asc_sum + self.c[1] * A[1]
        A_decayed = A * self.d[:, None]
        jump = self.asc_amps[:, None] + (self.rho - 1.0)[:, None] * A_decayed
        u = s.v * self.P33 + (s.i_in + self.I_e + asc_sum) * self.P30
        for r in range(self.P11.size):
            u = u + (self.P31[r] * y1[r] + self.P32[r] * y2[r])
        s.v = np.where(free, u, s.v)
        self._last_u_pre = s.v.copy()  # compared with the threshold (BPTT's forward record)
        A = np.where(free, A_decayed, A)
        psi = np.where(free, self.psi(np.zeros_like(s.r), s.v, self.V_th), 0.0)
        z = free & (s.v > self.V_th)
        s.r = np.where(free, np.where(z, self.refractory_steps, 0), s.r - 1)
        A = np.where(z, self.asc_amps[:, None] + A * self.rho[:, None], A)
        s.v = np.where(z, self.V_reset, s.v)
        y2 = self.P21[:, None] * y1 + self.P11[:, None] * y2
        y1 = y1 * self.P11[:, None]
        y1[0] = y1[0] + self.psc_initial[0] * z_in_ex
        y1[1] = y1[1] + self.psc_initial[1] * z_in_in
        s.extra.update(A=A, y1=y1, y2=y2)
        s.i_in = np.zeros_like(s.v)
        self._step = (~free, z, jump)
        return psi, z.astype(float)

    def init_traces(self, shape):
        return {k: np.zeros(shape) for k in self.traces}

    def trace_step(self, tr, z_pre, psi_post, excitatory, active=None):
        refractory, spiked, jump = self._step
        inside = np.ones((1, z_pre.size), bool) if active is None else active[None, :]
        frozen = refractory[:, None] & inside
        factor = np.where(spiked[:, None] & inside, 1.0, 0.0)
        port = lambda P: np.where(excitatory, P[0], P[1])  # noqa: E731
        eps_u = (
            self.P33 * tr["eps_U"]
            + self.P30 * self.c[0] * tr["eps_A1"]
            + self.P30 * self.c[1] * tr["eps_A2"]
            + port(self.P31) * tr["eps_y"]
            + port(self.P32) * tr["eps_I"]
        )
        tr["eps_U"] = np.where(frozen, tr["eps_U"], eps_u)
        for j, key in enumerate(("eps_A1", "eps_A2")):
            f = np.where(factor > 0, self.rho[j], 1.0)
            tr[key] = np.where(frozen, tr[key], f * self.d[j] * tr[key])
        tr["eps_I"] = port(self.P21) * tr["eps_y"] + port(self.P11) * tr["eps_I"]
        tr["eps_y"] = port(self.P11) * tr["eps_y"] + port(self.psc_initial) * z_pre[None, :]
        self._jump = jump
        return psi_post[:, None] * tr["eps_U"]

    def after_masked_e(self, tr, e_masked):
        tr["eps_A1"] = tr["eps_A1"] + self._jump[0][:, None] * e_masked
        tr["eps_A2"] = tr["eps_A2"] + self._jump[1][:, None] * e_masked


def alpha_current_to_voltage_propagators(tau_syn: float, tau_m: float, c_m: float, h: float) -> tuple[float, float]:
    """(P31, P32): response of V_m over a step h to the two components (dI, I) of an alpha-shaped current, with
    the limits used near tau_syn = tau_m; the arithmetic of NEST's IAFPropagatorAlpha (glif_psc, eprop_glif3_psc)."""
    f = np.float64
    with np.errstate(divide="ignore", invalid="ignore"):
        beta = f(tau_syn) * tau_m / (f(tau_m) - tau_syn)  # inf if tau_syn == tau_m
        gamma = beta / c_m
        inv_beta = (f(tau_m) - tau_syn) / (f(tau_syn) * tau_m)
        h_min = 1e-7 * f(tau_m) * tau_m / abs(f(tau_m) - tau_syn)
        exp_h_tau_syn = np.exp(-h * (1 / f(tau_syn)))
        expm1_h = np.expm1(h * inv_beta)
        exp_h_tau_m = np.exp(-h * (1 / f(tau_m)))
        p32 = gamma * exp_h_tau_syn * expm1_h
        if not (np.isfinite(p32) and abs(p32) >= np.finfo(float).tiny and p32 > 0):  # C's isnormal(P32) and P32 > 0
            p32 = h * (1 / f(c_m)) * exp_h_tau_m
        p31 = gamma * exp_h_tau_syn * (beta * expm1_h - h) if h > h_min else 0.5 * h * h * (1 / f(c_m)) * exp_h_tau_m
    return float(p31), float(p32)


def current_to_voltage_propagator(tau_syn: float, tau_m: float, c_m: float, h: float) -> float:
    """Same formula as nestgrad::psc_exp_current_to_voltage_propagator."""
    p22 = np.exp(-h / tau_m)
    rate_difference = 1.0 / tau_syn - 1.0 / tau_m
    if rate_difference == 0.0:
        return h / c_m * p22
    return tau_syn * tau_m / (c_m * (tau_m - tau_syn)) * (-p22 * np.expm1(-h * rate_difference))


class EpropReadout:
    """NEST's ``eprop_readout``: leaky integrator; error = (y - target) * learning window."""

    name = "eprop_readout"

    def __init__(self, params: dict[str, Any], dt: float):
        self.p = params
        self.E_L = params["E_L"]
        self.tau_m = params["tau_m"]
        self.C_m = params["C_m"]
        self.I_e = params.get("I_e", 0.0)
        self.V_min = params.get("V_min", -np.finfo(float).max) - self.E_L
        self.P_v = np.exp(-dt / self.tau_m)
        self.P_i = self.tau_m / self.C_m * (1.0 - self.P_v)
        self.cutoff_steps = steps_of(params.get("eprop_isi_trace_cutoff", np.inf), dt)

    def init_state(self, n: int) -> PopulationState:
        return PopulationState(
            np.full(n, self.p.get("V_m", self.E_L) - self.E_L), np.zeros(n, dtype=np.int64), np.zeros(n)
        )

    def step(self, s: PopulationState, z_in: np.ndarray, target: np.ndarray, window: float):
        s.v = self.P_i * s.i_in + z_in + self.P_v * s.v
        s.v = np.maximum(s.v, self.V_min)
        y = s.v + self.E_L
        err = (y - target) * window
        s.i_in = np.full_like(s.v, self.I_e)
        return y, err


RECURRENT_MODELS: dict[str, type[RecurrentModel]] = {
    m.name: m
    for m in (
        EpropIaf,
        EpropIafAdapt,
        EpropIafPscDelta,
        EpropIafPscDeltaAdapt,
        EpropIafPscExp,
        EpropIafPscDeltaNestml,
        EpropIafPscDeltaAdaptNestml,
        EpropIafPscDeltaAsc,
        EpropIafPscExpNestml,
        EpropIafPscExpAdapt,
        EpropIafPscExpExcInh,
        EpropGlif3Psc,
    )
}

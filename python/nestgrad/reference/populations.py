"""Populations with per-neuron parameters for the general reference engine (:mod:`nestgrad.reference.spec_online`).

A population's parameters come as one dictionary or one per neuron (:class:`nestgrad.spec.Population`); here they
become one array per parameter with the neuron as the *last* axis ([n] for numbers, [k, n] for lists such as
``tau_syn``), so that every parameter acts on its own neuron. The eligibility vectors live on the edges of a
projection: :meth:`Glif3Population.edge_view` gathers, for each edge, the parameters of its target neuron and its
receptor port.

Every value comes from the parameter dictionaries (the comparison glue reads them back from NEST); a missing key,
a value that would have to be shared but differs between neurons, or a key the engine does not model is refused
with a :class:`~nestgrad.errors.SpecError` that names the population and the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from nestgrad.errors import SpecError
from nestgrad.reference.neurons import (
    alpha_current_to_voltage_propagators,
    current_to_voltage_propagator,
    surrogate_gradient,
)

GLIF3_NUMBERS = ("C_m", "g", "E_L", "V_th", "V_reset", "V_m", "t_ref", "I_e")
GLIF3_LISTS = {"asc_init": 2, "asc_decay": 2, "asc_amps": 2, "asc_r": 2, "tau_syn": None}  # entries (None: >= 1)
EPROP_NUMBERS = (
    "surrogate_gradient_height",
    "surrogate_gradient_width",
    "kappa",
    "kappa_reg",
    "c_reg",
    "f_target",  # Hz
    "eprop_isi_trace_cutoff",  # ms
)
EPROP_SHARED = ("surrogate_gradient_function",)  # one value for the whole population
# keys that change how NEST computes, not what (eprop_event_synapse's segment length), or only report state
GLIF3_IGNORED = ("event_segment_steps", "has_connections", "ASCurrents")
# NEST features the engine does not replay: accepted only at these (NEST's default) values
EPROP_FIXED = {"flush_event_send_interval": np.inf, "ignore_and_spike": False, "frozen": False}
PSC_EXP_NUMBERS = ("C_m", "tau_m", "tau_syn_ex", "tau_syn_in", "E_L", "V_th", "V_reset", "V_m", "V_min", "t_ref",
                   "I_e")  # fmt: skip
PSC_EXP_IGNORED = ("I_syn_ex", "I_syn_in")
READOUT_NUMBERS = ("C_m", "E_L", "I_e", "V_m", "V_min", "tau_m", "eprop_isi_trace_cutoff")


TICS_PER_MS = 1000.0  # NEST's default tic length (1 us)


def time_steps(ms: np.ndarray, dt: float) -> np.ndarray:
    """NEST's ``Time(Time::ms(x)).get_steps()`` per element (how models convert t_ref and the e-prop cutoff): the
    time is rounded to tics, then *up* to whole steps (t_ref = 1.2 ms at 1 ms is 2 steps); infinite: a very large
    number of steps."""
    ms = np.asarray(ms, float)
    tics_per_step = np.floor(TICS_PER_MS * dt)
    big = np.iinfo(np.int64).max // 4
    with np.errstate(invalid="ignore", over="ignore"):
        tics = np.floor(np.where(np.isfinite(ms), ms, 0.0) * TICS_PER_MS + 0.5)
        steps = np.trunc((tics + (tics_per_step - 1)) * (1.0 / tics_per_step))
    return np.where(np.isfinite(ms), steps, big).astype(np.int64)


def delay_steps(ms: np.ndarray, dt: float) -> np.ndarray:
    """NEST's ``Time::delay_ms_to_steps`` per element: delays are rounded to the nearest step (1.7 ms at 1 ms: 2)."""
    return np.floor(np.asarray(ms, float) * (1.0 / dt) + 0.5).astype(np.int64)


def parameter_arrays(
    where: str,
    params: dict[str, Any] | list[dict[str, Any]],
    n: int,
    numbers: tuple[str, ...],
    lists: dict[str, int | None],
    shared: tuple[str, ...],
    ignored: tuple[str, ...] = (),
    fixed: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One array per parameter, neuron last: [n] for ``numbers``, [k, n] for ``lists`` (k entries, the same for
    every neuron), one value for ``shared`` (must be equal for every neuron)."""
    per_neuron = params if isinstance(params, list) else [params] * n
    if len(per_neuron) != n:
        raise SpecError(f"{where}: {len(per_neuron)} parameter sets for {n} neurons")
    fixed = fixed or {}
    for key, allowed in fixed.items():
        for j, p in enumerate(per_neuron):
            if key in p and p[key] != allowed:
                raise SpecError(
                    f"{where}: {key} = {p[key]!r} (neuron {j}) is not replayed by the reference engine; only "
                    f"{allowed!r} is supported"
                )
    known = set(numbers) | set(lists) | set(shared) | set(ignored) | set(fixed)
    unknown = sorted({k for p in per_neuron for k in p} - known)
    if unknown:
        raise SpecError(
            f"{where}: parameter(s) {unknown} are not modelled by the reference engine; it reads {sorted(known)}"
        )
    out: dict[str, Any] = {}
    for key in (*numbers, *lists, *shared):
        missing = [j for j, p in enumerate(per_neuron) if key not in p]
        if missing:
            raise SpecError(
                f"{where}: parameter {key!r} is missing (neuron {missing[0]}); the reference engine takes every value "
                "from the spec (nestgrad.comparison reads them back from NEST)"
            )
    for key in numbers:
        values = [p[key] for p in per_neuron]
        try:
            arr = np.array(values, dtype=float)
        except (TypeError, ValueError):
            raise SpecError(f"{where}: parameter {key!r} must be a number per neuron") from None
        if arr.shape != (n,) or np.any(np.isnan(arr)):
            raise SpecError(f"{where}: parameter {key!r} must be one number (not NaN) per neuron")
        out[key] = arr
    for key, size in lists.items():
        rows = [np.atleast_1d(np.asarray(p[key], dtype=float)) for p in per_neuron]
        sizes = {r.shape for r in rows}
        if len(sizes) != 1 or len(next(iter(sizes))) != 1:
            raise SpecError(f"{where}: parameter {key!r} must be a list of the same length for every neuron")
        k = rows[0].size
        if (size is not None and k != size) or k < 1:
            raise SpecError(f"{where}: parameter {key!r} needs {size or 'at least 1'} entries, has {k}")
        arr = np.stack(rows, axis=1)  # [k, n]
        if not np.all(np.isfinite(arr)):
            raise SpecError(f"{where}: parameter {key!r} contains NaN or infinite values")
        out[key] = arr
    for key in shared:
        values = {str(p[key]) for p in per_neuron}
        if len(values) != 1:
            raise SpecError(
                f"{where}: parameter {key!r} differs between neurons ({sorted(values)}); the reference engine needs "
                "one value per population"
            )
        out[key] = per_neuron[0][key]
    return out


@dataclass
class Glif3State:
    v: np.ndarray  # [n] mV relative to E_L
    r: np.ndarray  # [n] refractory steps left
    A: np.ndarray  # [2, n] after-spike currents (pA)
    y1: np.ndarray  # [ports, n] alpha-current derivative states
    y2: np.ndarray  # [ports, n] alpha currents (pA)
    f_av: np.ndarray  # [n] firing-rate average of the regularisation
    # the step just taken, for the eligibility vectors of its history entry
    refractory: np.ndarray  # [n] bool
    spiked: np.ndarray  # [n] bool
    jump: np.ndarray  # [2, n] after-spike current increments at a spike


class Glif3Population:
    """nestgrad's ``eprop_glif3_psc`` (cpp_module/models/eprop_glif3_psc.cpp) for a population whose neurons may
    each have their own parameters, with any number of receptor ports (``len(tau_syn)``, the same for every
    neuron). The arithmetic follows the C++ model operation by operation (as
    :class:`~nestgrad.reference.neurons.EpropGlif3Psc` does for one shared parameter set)."""

    model = "eprop_glif3_psc"

    def __init__(self, name: str, params: dict[str, Any] | list[dict[str, Any]], n: int, dt: float):
        where = f"population {name!r} ({self.model})"
        p = parameter_arrays(
            where, params, n, GLIF3_NUMBERS + EPROP_NUMBERS, GLIF3_LISTS, EPROP_SHARED, GLIF3_IGNORED, EPROP_FIXED
        )
        self.n, self.dt = n, dt
        for key, low in (("C_m", 0.0), ("g", 0.0), ("tau_syn", 0.0), ("asc_decay", 0.0)):
            if np.any(p[key] <= low):
                raise SpecError(f"{where}: {key} > {low} required")
        self.E_L = p["E_L"]
        self.V_th = p["V_th"] - p["E_L"]  # th_inf_ of the C++ model
        self.V_reset = p["V_reset"] - p["E_L"]
        self.V_m0 = p["V_m"] - p["E_L"]
        self.I_e = p["I_e"]
        self.C_m = p["C_m"]
        tau_m = p["C_m"] / p["g"]
        self.P33 = np.exp(-dt / tau_m)
        self.P30 = 1 / self.C_m * (1 - self.P33) * tau_m
        k = p["asc_decay"]  # [2, n]
        self.asc_amps = p["asc_amps"]
        self.asc_init = p["asc_init"]
        self.d = np.exp(-k * dt)
        self.c = ((1.0 / k) / dt) * (1.0 - self.d)
        self.rho = p["asc_r"] * np.exp(-k * p["t_ref"][None, :])
        tau_syn = p["tau_syn"]  # [ports, n]
        self.n_ports = tau_syn.shape[0]
        self.P11 = np.exp(-dt / tau_syn)
        self.P21 = dt * self.P11
        self.P31 = np.empty_like(tau_syn)
        self.P32 = np.empty_like(tau_syn)
        cache: dict[tuple[float, float, float], tuple[float, float]] = {}
        for r in range(self.n_ports):
            for j in range(n):
                key = (float(tau_syn[r, j]), float(tau_m[j]), float(self.C_m[j]))
                if key not in cache:
                    cache[key] = alpha_current_to_voltage_propagators(*key, dt)
                self.P31[r, j], self.P32[r, j] = cache[key]
        self.psc_initial = 1.0 * np.e / tau_syn
        self.refractory_steps = time_steps(p["t_ref"], dt)
        self.sg = (p["surrogate_gradient_function"], p["surrogate_gradient_height"], p["surrogate_gradient_width"])
        surrogate_gradient(self.sg[0], np.zeros(1, np.int64), np.zeros(1), 1.0, 1.0, 1.0)  # refuses unknown names
        self.kappa = p["kappa"]
        self.kappa_reg = p["kappa_reg"]
        self.c_reg = p["c_reg"]
        self.f_target_per_ms = p["f_target"] / 1000.0  # as NEST stores it
        self.cutoff_steps = time_steps(p["eprop_isi_trace_cutoff"], dt)

    # -- neurons -------------------------------------------------------------------------------------------------
    def init_state(self) -> Glif3State:
        n = self.n
        return Glif3State(
            v=self.V_m0.copy(),
            r=np.zeros(n, np.int64),
            A=self.asc_init.copy(),
            y1=np.zeros((self.n_ports, n)),
            y2=np.zeros((self.n_ports, n)),
            f_av=np.zeros(n),
            refractory=np.zeros(n, bool),
            spiked=np.zeros(n, bool),
            jump=np.zeros((2, n)),
        )

    def step(self, s: Glif3State, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One update step; ``inputs`` [ports, n] are the weights (pA) of the spikes entering each port in this step.
        Returns the surrogate gradient psi, the spikes z (float) and the firing-rate regularisation of the step."""
        free = s.r == 0
        A = s.A
        asc_sum = 0.0 + self.c[0] * A[0]
        asc_sum = asc_sum + self.c[1] * A[1]
        A_decayed = A * self.d
        jump = self.asc_amps + (self.rho - 1.0) * A_decayed
        u = s.v * self.P33 + (0.0 + self.I_e + asc_sum) * self.P30
        for r in range(self.n_ports):
            u = u + (self.P31[r] * s.y1[r] + self.P32[r] * s.y2[r])
        v = np.where(free, u, s.v)
        A = np.where(free, A_decayed, A)
        psi = np.where(free, surrogate_gradient(self.sg[0], np.zeros_like(s.r), v, self.V_th, *self.sg[1:]), 0.0)
        z = free & (v > self.V_th)
        s.r = np.where(free, np.where(z, self.refractory_steps, 0), s.r - 1)
        s.A = np.where(z, self.asc_amps + A * self.rho, A)
        s.v = np.where(z, self.V_reset, v)
        y2 = self.P21 * s.y1 + self.P11 * s.y2
        s.y1 = s.y1 * self.P11 + self.psc_initial * inputs
        s.y2 = y2
        s.refractory, s.spiked, s.jump = ~free, z, jump
        zf = z.astype(float)
        s.f_av = self.kappa_reg * s.f_av + (1.0 - self.kappa_reg) * zf / self.dt
        fr = self.c_reg * (s.f_av - self.f_target_per_ms * self.dt)
        return psi, zf, fr

    # -- eligibility vectors of a projection's plastic edges -----------------------------------------------------
    def ports(self, receptors: np.ndarray | None, weights: np.ndarray) -> np.ndarray:
        """Input row of each edge: its receptor port (1-based in NEST), fixed at connection time."""
        return np.asarray(receptors, np.int64) - 1

    def edge_view(self, targets: np.ndarray, receptors: np.ndarray | None) -> Glif3Edges:
        return Glif3Edges(self, np.asarray(targets, np.int64), np.asarray(receptors, np.int64) - 1)


class Glif3Edges:
    """The eligibility vectors (eps_y, eps_I, eps_U, eps_A1, eps_A2) of edges into a :class:`Glif3Population`,
    each with its target neuron's parameters and its receptor port's propagators."""

    def __init__(self, pop: Glif3Population, tgt: np.ndarray, port: np.ndarray):
        self.tgt = tgt
        self.P11, self.P21 = pop.P11[port, tgt], pop.P21[port, tgt]
        self.P31, self.P32 = pop.P31[port, tgt], pop.P32[port, tgt]
        self.b = pop.psc_initial[port, tgt]
        self.P33 = pop.P33[tgt]
        self.P30c = pop.P30[tgt][None, :] * pop.c[:, tgt]  # [2, E]
        self.d = pop.d[:, tgt]
        self.rho = pop.rho[:, tgt]
        self.kappa, self.kappa_reg = pop.kappa[tgt], pop.kappa_reg[tgt]
        self.cutoff = pop.cutoff_steps[tgt]
        m = tgt.size
        self.eps = {k: np.zeros(m) for k in ("y", "I", "U", "A1", "A2")}

    def step(self, z_pre: np.ndarray, s: Glif3State, psi: np.ndarray, active: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Advance by one history entry (z_pre: the presynaptic spike entering in it, per edge; ``active``: the entry
        lies inside the edge's gradient window; ``w``: the edges' weights, unused: the port is fixed) and return the
        eligibility trace e of the entry (0 outside)."""
        eps, tgt = self.eps, self.tgt
        frozen = s.refractory[tgt] & active
        spiked = s.spiked[tgt] & active
        eps_u = (
            self.P33 * eps["U"]
            + self.P30c[0] * eps["A1"]
            + self.P30c[1] * eps["A2"]
            + self.P31 * eps["y"]
            + self.P32 * eps["I"]
        )
        eps["U"] = np.where(frozen, eps["U"], eps_u)
        e = psi[tgt] * eps["U"] * active
        for j, key in enumerate(("A1", "A2")):
            f = np.where(spiked, self.rho[j], 1.0)
            decayed = f * self.d[j] * eps[key]
            eps[key] = np.where(frozen, eps[key], decayed + s.jump[j][tgt] * e)
        eps["I"] = self.P21 * eps["y"] + self.P11 * eps["I"]
        eps["y"] = self.P11 * eps["y"] + self.b * z_pre
        return e


@dataclass
class PscExpState:
    v: np.ndarray  # [n] mV relative to E_L
    r: np.ndarray  # [n] refractory steps left
    i_ex: np.ndarray  # [n] pA
    i_in: np.ndarray  # [n] pA
    f_av: np.ndarray


class PscExpPopulation:
    """nestgrad's ``eprop_iaf_psc_exp`` (cpp_module/models/eprop_iaf_psc_exp.cpp; without learning NEST's
    ``iaf_psc_exp``) with parameters per neuron, as :class:`~nestgrad.reference.neurons.EpropIafPscExp` computes it
    for one shared parameter set. A spike enters the excitatory current if the weight it carries is >= 0, else the
    inhibitory one (input rows 0 and 1); the eligibility vector (eps_v, eps_i) of an e-prop edge follows the current
    its last spike entered (the sign of the weight it carried)."""

    model = "eprop_iaf_psc_exp"
    n_ports = 2

    def __init__(self, name: str, params: dict[str, Any] | list[dict[str, Any]], n: int, dt: float):
        where = f"population {name!r} ({self.model})"
        p = parameter_arrays(
            where, params, n, PSC_EXP_NUMBERS + EPROP_NUMBERS, {}, EPROP_SHARED, PSC_EXP_IGNORED, EPROP_FIXED
        )
        for key in ("C_m", "tau_m", "tau_syn_ex", "tau_syn_in"):
            if np.any(p[key] <= 0):
                raise SpecError(f"{where}: {key} > 0 required")
        self.n, self.dt = n, dt
        self.E_L = p["E_L"]
        self.V_th = p["V_th"] - self.E_L
        self.V_reset = p["V_reset"] - self.E_L
        self.V_min = p["V_min"] - self.E_L
        self.V_m0 = p["V_m"] - self.E_L
        self.I_e = p["I_e"]
        tau_m, C_m = p["tau_m"], p["C_m"]
        self.P22 = np.exp(-dt / tau_m)
        self.P20 = -tau_m / C_m * np.expm1(-dt / tau_m)
        self.P11_ex, self.P11_in = np.exp(-dt / p["tau_syn_ex"]), np.exp(-dt / p["tau_syn_in"])
        self.P21_ex = np.empty(n)
        self.P21_in = np.empty(n)
        cache: dict[tuple[float, float, float], float] = {}
        for j in range(n):
            for out, tau in ((self.P21_ex, p["tau_syn_ex"][j]), (self.P21_in, p["tau_syn_in"][j])):
                key = (float(tau), float(tau_m[j]), float(C_m[j]))
                if key not in cache:
                    cache[key] = current_to_voltage_propagator(*key, dt)
                out[j] = cache[key]
        self.refractory_steps = time_steps(p["t_ref"], dt)
        self.sg = (p["surrogate_gradient_function"], p["surrogate_gradient_height"], p["surrogate_gradient_width"])
        surrogate_gradient(self.sg[0], np.zeros(1, np.int64), np.zeros(1), 1.0, 1.0, 1.0)
        self.kappa, self.kappa_reg, self.c_reg = p["kappa"], p["kappa_reg"], p["c_reg"]
        self.f_target_per_ms = p["f_target"] / 1000.0
        self.cutoff_steps = time_steps(p["eprop_isi_trace_cutoff"], dt)

    def init_state(self) -> PscExpState:
        z = np.zeros(self.n)
        return PscExpState(self.V_m0.copy(), np.zeros(self.n, np.int64), z.copy(), z.copy(), z.copy())

    def step(self, s: PscExpState, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        free = s.r == 0
        v_new = self.P22 * s.v + self.P21_ex * s.i_ex + self.P21_in * s.i_in + self.P20 * (self.I_e + 0.0)
        s.v = np.where(free, np.maximum(v_new, self.V_min), s.v)
        s.r = np.where(free, s.r, s.r - 1)
        s.i_ex = self.P11_ex * s.i_ex + inputs[0]
        s.i_in = self.P11_in * s.i_in + inputs[1]
        psi = surrogate_gradient(self.sg[0], s.r, s.v, self.V_th, *self.sg[1:])
        z = (s.v >= self.V_th) & (s.r == 0)
        s.r = np.where(z, self.refractory_steps, s.r)
        s.v = np.where(z, self.V_reset, s.v)
        zf = z.astype(float)
        s.f_av = self.kappa_reg * s.f_av + (1.0 - self.kappa_reg) * zf / self.dt
        return psi, zf, self.c_reg * (s.f_av - self.f_target_per_ms * self.dt)

    def ports(self, receptors: np.ndarray | None, weights: np.ndarray) -> np.ndarray:
        """Input row of each edge: 0 (excitatory current) for a weight >= 0, else 1, as NEST's handle() does."""
        if receptors is not None and np.any(np.asarray(receptors) != 0):
            raise SpecError(f"{self.model} takes spikes on receptor port 0 only")
        return (np.asarray(weights) < 0.0).astype(np.int64)

    def edge_view(self, targets: np.ndarray, receptors: np.ndarray | None) -> PscExpEdges:
        return PscExpEdges(self, np.asarray(targets, np.int64))


class PscExpEdges:
    """The eligibility vectors (eps_v, eps_i) of edges into a :class:`PscExpPopulation`."""

    def __init__(self, pop: PscExpPopulation, tgt: np.ndarray):
        self.tgt = tgt
        self.P22 = pop.P22[tgt]
        self.P11 = (pop.P11_ex[tgt], pop.P11_in[tgt])
        self.P21 = (pop.P21_ex[tgt], pop.P21_in[tgt])
        self.kappa, self.kappa_reg = pop.kappa[tgt], pop.kappa_reg[tgt]
        self.cutoff = pop.cutoff_steps[tgt]
        self.eps_v = np.zeros(tgt.size)
        self.eps_i = np.zeros(tgt.size)

    def step(self, z_pre: np.ndarray, s: PscExpState, psi: np.ndarray, active: np.ndarray, w: np.ndarray) -> np.ndarray:
        excitatory = w >= 0.0  # the current the edge's spikes enter (its current weight is the one they carried)
        P11 = np.where(excitatory, *self.P11)
        P21 = np.where(excitatory, *self.P21)
        self.eps_v = self.P22 * self.eps_v + P21 * self.eps_i
        self.eps_i = P11 * self.eps_i + z_pre
        return psi[self.tgt] * self.eps_v * active


class ReadoutPopulation:
    """NEST's ``eprop_readout`` (as :class:`~nestgrad.reference.neurons.EpropReadout`), parameters per neuron."""

    model = "eprop_readout"

    def __init__(self, name: str, params: dict[str, Any] | list[dict[str, Any]], n: int, dt: float):
        where = f"population {name!r} ({self.model})"
        p = parameter_arrays(where, params, n, READOUT_NUMBERS, {}, ())
        self.n = n
        self.E_L = p["E_L"]
        self.I_e = p["I_e"]
        self.V_min = p["V_min"] - self.E_L
        self.V_m0 = p["V_m"] - self.E_L
        self.P_v = np.exp(-dt / p["tau_m"])
        self.P_i = p["tau_m"] / p["C_m"] * (1.0 - self.P_v)
        self.cutoff_steps = time_steps(p["eprop_isi_trace_cutoff"], dt)

    def init_state(self) -> dict[str, np.ndarray]:
        return {"v": self.V_m0.copy(), "i_in": np.zeros(self.n)}

    def ports(self, receptors: np.ndarray | None, weights: np.ndarray) -> np.ndarray:
        """Spikes of either sign enter the one input (row 0)."""
        if receptors is not None and np.any(np.asarray(receptors) != 0):
            raise SpecError(f"{self.model} takes spikes on receptor port 0 only")
        return np.zeros(np.size(weights), np.int64)

    def step(self, s: dict[str, np.ndarray], z_in: np.ndarray, target: np.ndarray, window: float):
        v = self.P_i * s["i_in"] + z_in + self.P_v * s["v"]
        s["v"] = np.maximum(v, self.V_min)
        y = s["v"] + self.E_L
        err = (y - target) * window
        s["i_in"] = np.full_like(s["v"], 1.0) * self.I_e
        return y, err

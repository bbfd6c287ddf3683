"""E-prop exactly as NEST 3.10 computes it, for a general network (:class:`nestgrad.spec.NetworkSpec`).

The same replay as :mod:`nestgrad.reference.online` (NEST's order of events, its gradient windows, cutoff and
optimizer), on edge lists instead of dense matrices, so that it covers what the classic engine cannot:

* several populations, of ``eprop_glif3_psc`` and ``eprop_iaf_psc_exp`` (also mixed); parameters per neuron (each
  acts on its own neuron: a plastic edge's eligibility vector uses its *target's* parameters);
* ``eprop_glif3_psc`` with any number of receptor ports, the port given per edge (``Projection.receptors``);
  ``eprop_iaf_psc_exp`` with the current chosen by the sign of the weight a spike carries;
* static edges with delays of several steps (a spike stamped ``s`` over a delay of ``d`` steps enters its target
  in update step ``s + d - 1``, as NEST's ring buffers do); e-prop edges have a delay of one step;
* Dale's law per edge (``Projection.nonneg``: the bounds of NEST's sign-bounded model copies), a learning rate per
  projection (``Projection.learning_rate``);
* learning signals routed by the spec's ``learning_signal`` projections (readout -> neuron, weight = feedback).

Supported populations: one ``parrot_neuron`` input population (fed with the data: data step ``j`` is stamped
``j + 2``), ``eprop_glif3_psc`` and ``eprop_iaf_psc_exp`` neuron populations, one ``eprop_readout`` population.
Anything else (other models, Poisson generators, which are random and cannot be replayed, bad ports, delays) is
refused with a :class:`~nestgrad.errors.SpecError` that names it, before anything is computed.

Time index ``t`` is NEST's update step; the conventions (``LEAD_STEPS``, learning signal ``L[e]`` = error of step
``e + 1``, the order of the four phases of a step) are those of :func:`nestgrad.reference.online.run_online`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from nestgrad.errors import SpecError
from nestgrad.reference.online import INPUT_TO_REC_STEPS, LEAD_STEPS, LEARNING_SIGNAL_SHIFT
from nestgrad.reference.optimizers import OptimizerState
from nestgrad.reference.populations import Glif3Population, PscExpPopulation, ReadoutPopulation, delay_steps
from nestgrad.spec import NetworkSpec, Projection, Role, SynapseKind

INPUT_MODEL = "parrot_neuron"
NEURON_MODELS = {m.model: m for m in (Glif3Population, PscExpPopulation)}
NeuronPopulation = Glif3Population | PscExpPopulation
READOUT_MODEL = ReadoutPopulation.model
PLASTIC_MODELS = {  # target model -> e-prop synapse models whose gradients this engine replays
    Glif3Population.model: ("eprop_vector_synapse", "eprop_event_synapse"),
    PscExpPopulation.model: ("eprop_synapse", "eprop_event_synapse"),
    READOUT_MODEL: ("eprop_synapse",),
}
_NEVER = np.iinfo(np.int64).min // 2


@dataclass
class SpecData:
    """What the data devices feed a spec, per data step (``nestgrad.tasks.TrialBatch``es back to back)."""

    input_spikes: np.ndarray  # bool [steps, n_in]
    target: np.ndarray  # [steps, n_out]
    window: np.ndarray  # [steps]
    iteration_steps: int

    @property
    def steps(self) -> int:
        return int(self.input_spikes.shape[0])

    @property
    def iterations(self) -> int:
        return self.steps // self.iteration_steps

    def validate(self, n_in: int, n_out: int) -> None:
        if self.input_spikes.ndim != 2 or self.input_spikes.shape[1] != n_in:
            raise SpecError(f"data: input_spikes has shape {self.input_spikes.shape}, expected (steps, {n_in})")
        if self.target.shape != (self.steps, n_out) or self.window.shape != (self.steps,):
            raise SpecError(
                f"data: target {self.target.shape} and window {self.window.shape} must be ({self.steps}, {n_out}) "
                f"and ({self.steps},)"
            )
        if self.iteration_steps < 1 or self.steps % self.iteration_steps:
            raise SpecError(f"data: iteration_steps = {self.iteration_steps} must divide the {self.steps} steps")
        if not (np.all(np.isfinite(self.target)) and np.all(np.isfinite(self.window))):
            raise SpecError("data: target or window contains NaN or infinite values")


@dataclass
class SpecOnlineResult:
    weights: dict[str, np.ndarray]  # per spike projection, edge order (static edges keep their weight)
    gradients: dict[str, np.ndarray]  # every gradient the plastic edges computed (0 for static edges)
    readout: np.ndarray  # [data steps, n_out]
    spikes: dict[str, np.ndarray]  # bool [data steps, n] per neuron population
    losses: np.ndarray  # per iteration, 1/2 sum of squared readout errors in the learning window


class _PlasticEdges:
    """The e-prop edges of one projection: weights, gradient windows, optimizer and traces."""

    def __init__(self, spec: NetworkSpec, name: str, proj: Projection, edges: np.ndarray, target_pop: Any):
        self.edges = edges  # indices into the projection's edge arrays
        self.src = np.asarray(proj.sources, np.int64)[edges]
        self.tgt = np.asarray(proj.targets, np.int64)[edges]
        self.w = np.asarray(proj.weights, float)[edges].copy()
        cfg = {k: v for k, v in spec.optimizer.items() if k != "sign_constrained"}  # Dale's law: Projection.nonneg
        if proj.learning_rate is not None:
            cfg["eta"] = proj.learning_rate
        nonneg = None if proj.nonneg is None else np.asarray(proj.nonneg, bool)[edges]
        try:
            self.opt = OptimizerState(self.w.shape, cfg, self.w, nonneg=nonneg)
        except SpecError as err:
            raise SpecError(f"projection {name!r}: {err}") from None
        if np.any(self.w < np.broadcast_to(self.opt.Wmin, self.w.shape)) or np.any(
            self.w > np.broadcast_to(self.opt.Wmax, self.w.shape)
        ):
            raise SpecError(f"projection {name!r}: a plastic weight lies outside the optimizer's [Wmin, Wmax]")
        self.cutoff = target_pop.cutoff_steps[self.tgt]
        n_src = int(spec.populations[proj.source].size)
        self.last_stamp = np.full(n_src, _NEVER, np.int64)
        self.has_spiked = np.zeros(n_src, bool)
        self.G = np.zeros(edges.size)  # gradient of each edge's open window
        self.total = np.zeros(edges.size)
        self.pending: dict[int, Any] = {}
        self.e_bar = np.zeros(edges.size)
        self.e_bar_reg = np.zeros(edges.size)
        self.receptors = None if proj.receptors is None else np.asarray(proj.receptors, np.int64)[edges]
        self.target_pop = target_pop
        self.neuron_edges: Any = None  # eligibility vectors of edges into e-prop neurons
        if isinstance(target_pop, NeuronPopulation):
            self.neuron_edges = target_pop.edge_view(self.tgt, self.receptors)
        else:
            self.z_bar = np.zeros(edges.size)
            self.P_v = target_pop.P_v[self.tgt]

    def deliver(self, spiking: np.ndarray, t: int) -> None:
        """Spikes stamped t pass their edges: optimizer call with the closed window (not for a first spike)."""
        ready = (spiking & self.has_spiked)[self.src]
        if ready.any():
            idx = np.flatnonzero(ready)
            self.opt.apply_at(self.w, (idx,), self.G[idx], t - 1)
            self.total[idx] += self.G[idx]
            self.G[idx] = 0.0
        self.has_spiked |= spiking

    def active(self, entry: int) -> np.ndarray:
        return entry < self.last_stamp[self.src] - 1 + self.cutoff


@dataclass
class _Static:
    src: np.ndarray
    tgt: np.ndarray
    w: np.ndarray
    port: np.ndarray
    delay_steps: np.ndarray


def check_supported(spec: NetworkSpec) -> None:
    """Refuse (SpecError) populations the engine cannot replay, before anything runs; parameters, ports, delays and
    synapse models are checked by :func:`run_spec_online` itself."""
    spec.validate()
    for pop in spec.populations.values():
        _check_population(pop)


def _check_population(pop: Any) -> None:
    where = f"population {pop.name!r}"
    if pop.model == "poisson_generator":
        raise SpecError(
            f"{where}: poisson_generator is random and cannot be replayed by the reference engine; turn the "
            "background off for a comparison (network.v1.background_rate = 0)"
        )
    ok = (
        (pop.role == Role.INPUT and pop.model == INPUT_MODEL)
        or (pop.role == Role.READOUT and pop.model == READOUT_MODEL)
        or (pop.role == Role.NEURONS and pop.model in NEURON_MODELS)
    )
    if not ok:
        raise SpecError(
            f"{where}: model {pop.model!r} (role {pop.role.value}) is not supported by the reference engine for "
            f"general networks; supported: {INPUT_MODEL} (input), {', '.join(NEURON_MODELS)} (neurons), "
            f"{READOUT_MODEL} (readout)"
        )


def _check_and_build(spec: NetworkSpec) -> tuple[dict[str, Any], str, str, dict, dict, list]:
    check_supported(spec)
    dt = spec.resolution
    pops: dict[str, Any] = {}
    input_name = readout_name = ""
    for pop in spec.populations.values():
        if pop.role == Role.INPUT:
            input_name = pop.name
        elif pop.role == Role.READOUT:
            readout_name = pop.name
            pops[pop.name] = ReadoutPopulation(pop.name, pop.neuron_params(), int(pop.size), dt)
        else:
            pops[pop.name] = NEURON_MODELS[pop.model](pop.name, pop.neuron_params(), int(pop.size), dt)
    if not readout_name:
        raise SpecError("the spec has no readout population (role 'readout'): nothing to learn from")
    plastic: dict[str, _PlasticEdges] = {}
    static: dict[str, _Static] = {}
    signals: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for name, proj in spec.projections.items():
        where = f"projection {name!r}"
        src_role = spec.populations[proj.source].role
        target = pops.get(proj.target)
        steps = delay_steps(proj.delays, dt)
        if proj.kind == SynapseKind.LEARNING_SIGNAL:
            if proj.source != readout_name or not isinstance(target, NeuronPopulation):
                raise SpecError(f"{where}: learning signals must go from the readout population to e-prop neurons")
            if proj.size and np.any(steps != 1):
                raise SpecError(f"{where}: learning-signal connections need a delay of one step ({dt} ms)")
            signals.append((np.asarray(proj.sources, np.int64), np.asarray(proj.targets, np.int64),
                            np.asarray(proj.weights, float), proj.target))  # fmt: skip
            continue
        if src_role not in (Role.INPUT, Role.NEURONS) or target is None:
            raise SpecError(
                f"{where}: spike projections must go from the input or a neuron population to a neuron or the readout "
                f"population ({proj.source!r} -> {proj.target!r})"
            )
        if isinstance(target, Glif3Population):
            if proj.receptors is None:
                raise SpecError(f"{where}: edges into {target.model} need a receptor port (receptors) per edge")
            ports = np.asarray(proj.receptors, np.int64)
            if proj.size and (ports.min() < 1 or ports.max() > target.n_ports):
                raise SpecError(
                    f"{where}: receptor ports must lie in 1 .. {target.n_ports} (len(tau_syn) of {proj.target!r}); "
                    f"found {ports.min()} .. {ports.max()}"
                )
            port = target.ports(proj.receptors, proj.weights)
        else:
            try:
                port = target.ports(proj.receptors, proj.weights)
            except SpecError as err:
                raise SpecError(f"{where}: {err}") from None
        mask = proj.plastic_mask()
        if mask.any():
            allowed = PLASTIC_MODELS[target.model]
            if proj.synapse_model not in allowed:
                raise SpecError(
                    f"{where}: synapse_model {proj.synapse_model!r} into {target.model} is not replayed by the "
                    f"reference engine; supported: {', '.join(allowed)}"
                )
            plastic[name] = _PlasticEdges(spec, name, proj, np.flatnonzero(mask), target)
        st = np.flatnonzero(~mask)
        static[name] = _Static(
            np.asarray(proj.sources, np.int64)[st], np.asarray(proj.targets, np.int64)[st],
            np.asarray(proj.weights, float)[st], port[st], steps[st],
        )  # fmt: skip
    return pops, input_name, readout_name, plastic, static, signals


def run_spec_online(spec: NetworkSpec, data: SpecData, deliver_final_spikes: bool = False) -> SpecOnlineResult:
    """Simulate ``spec`` fed with ``data`` with NEST's e-prop semantics; final weights, readouts, spikes, losses.

    As in :func:`nestgrad.reference.online.run_online`, spikes emitted in the last simulated step are delivered only
    with ``deliver_final_spikes``, and ``gradients`` include the windows still open at the end.
    """
    spec = spec.materialized()  # drawn projections (the microcircuit's static circuit) as edge lists
    pops, input_name, readout_name, plastic, static, signals = _check_and_build(spec)
    readout: ReadoutPopulation = pops[readout_name]
    n_in = spec.populations[input_name].size if input_name else 0
    data.validate(n_in, readout.n)
    neuron_names = [k for k, p in pops.items() if isinstance(p, NeuronPopulation)]
    n_data = data.steps
    n_steps = LEAD_STEPS + n_data
    states = {k: pops[k].init_state() for k in neuron_names}
    out_state = readout.init_state()
    no_spikes = {k: np.zeros(spec.populations[k].size, bool) for k in spec.populations}
    stamps: dict[str, dict[int, np.ndarray]] = {k: {} for k in neuron_names}
    psi_hist: dict[str, dict[int, np.ndarray]] = {k: {} for k in neuron_names}
    fr_hist: dict[str, dict[int, np.ndarray]] = {k: {} for k in neuron_names}
    err_hist: dict[int, np.ndarray] = {}
    buffers: dict[int, dict[str, np.ndarray]] = {}  # update step -> population -> [ports, n] input
    readout_y = np.zeros((n_data, readout.n))
    spikes = {k: np.zeros((n_data, pops[k].n), bool) for k in neuron_names}
    no_err = np.zeros(readout.n)

    def stamped(pop: str, t: int) -> np.ndarray:
        if pop == input_name:
            j = t - INPUT_TO_REC_STEPS
            return data.input_spikes[j].astype(bool) if 0 <= j < n_data else no_spikes[pop]
        return stamps[pop].get(t, no_spikes[pop])

    def add_input(step: int, pop: str, port: np.ndarray, tgt: np.ndarray, w: np.ndarray) -> None:
        slot = buffers.setdefault(step, {})
        if pop not in slot:
            p = pops[pop]
            slot[pop] = np.zeros((p.n_ports if isinstance(p, NeuronPopulation) else 1, p.n))
        np.add.at(slot[pop], (port, tgt), w)

    for t in range(n_steps + 2):  # two steps past the end close the last history entries
        # 1. gradient increments of entry t - 2: its learning signal (readout error of step t - 1) has arrived
        e = t - 2
        if e >= 0:
            err = err_hist.get(e + LEARNING_SIGNAL_SHIFT, no_err)
            L = {k: np.zeros(pops[k].n) for k in neuron_names}
            for src, tgt, w, pop in signals:
                np.add.at(L[pop], tgt, w * err[src])
            for name, p in plastic.items():
                if p.neuron_edges is not None:
                    ebar_act, reg_incr = p.pending.pop(e)
                    p.G += L[spec.projections[name].target][p.tgt] * ebar_act + reg_incr
                else:
                    p.G += p.pending.pop(e)

        # 2. spikes stamped t pass their synapses (optimizer), then are transmitted (static edges: their delay)
        if t < n_steps or (t == n_steps and deliver_final_spikes):
            for name, proj in spec.projections.items():
                if proj.kind == SynapseKind.LEARNING_SIGNAL:
                    continue
                s = stamped(proj.source, t)
                if name in plastic:
                    p = plastic[name]
                    p.deliver(s, t)
                    p.last_stamp[s] = t
                    hit = s[p.src]
                    if hit.any():  # with the new weights (their sign picks eprop_iaf_psc_exp's current)
                        port = p.target_pop.ports(p.receptors, p.w)
                        add_input(t, proj.target, port[hit], p.tgt[hit], p.w[hit])
                st = static[name]
                hit = s[st.src]
                if hit.any():
                    for d in np.unique(st.delay_steps[hit]):
                        sel = hit & (st.delay_steps == d)
                        add_input(t + int(d) - 1, proj.target, st.port[sel], st.tgt[sel], st.w[sel])

        # 3. traces of history entry t - 1 (presynaptic spikes stamped t - 1 enter; windows as of stamps <= t)
        e = t - 1
        if 0 <= e < n_steps:
            for name, p in plastic.items():
                proj = spec.projections[name]
                z_pre = stamped(proj.source, e)[p.src].astype(float)
                act = p.active(e)
                ne = p.neuron_edges
                if ne is not None:
                    pop = proj.target
                    # the neurons' state holds the record (refractory, spike, jump) of step e, the last one taken
                    e_trace = ne.step(z_pre, states[pop], psi_hist[pop][e], act, p.w)
                    p.e_bar = ne.kappa * p.e_bar + e_trace
                    p.e_bar_reg = ne.kappa_reg * p.e_bar_reg + (1.0 - ne.kappa_reg) * e_trace
                    actf = act.astype(float)
                    p.pending[e] = (p.e_bar * actf, fr_hist[pop][e][p.tgt] * p.e_bar_reg * actf)
                else:
                    p.z_bar = p.P_v * p.z_bar + z_pre
                    p.pending[e] = err_hist[e][p.tgt] * p.z_bar * act
            for k in neuron_names:
                stamps[k].pop(e - 1, None)
                psi_hist[k].pop(e - 1, None)
                fr_hist[k].pop(e - 1, None)

        if t >= n_steps:
            continue
        # 4. neuron updates of step t
        slot = buffers.pop(t, {})
        for k in neuron_names:
            pop = pops[k]
            psi, z, fr = pop.step(states[k], slot.get(k, np.zeros((pop.n_ports, pop.n))))
            psi_hist[k][t] = psi
            fr_hist[k][t] = fr
            stamps[k][t + 1] = z > 0
        j = t - INPUT_TO_REC_STEPS
        in_data = 0 <= j < n_data
        target = data.target[j] if in_data else np.zeros(readout.n)
        window = data.window[j] if in_data else 0.0
        z_in = slot[readout_name][0] if readout_name in slot else np.zeros(readout.n)
        y, err = readout.step(out_state, z_in, target, window)
        err_hist[t] = err
        if in_data:
            readout_y[j] = y
            for k in neuron_names:
                spikes[k][j] = stamps[k][t + 1]

    T = data.iteration_steps
    sq = data.window[:, None] * (readout_y - data.target) ** 2
    losses = np.array([0.5 * np.sum(sq[k * T : (k + 1) * T]) for k in range(data.iterations)])
    weights, gradients = {}, {}
    for name, proj in spec.projections.items():
        if proj.kind == SynapseKind.LEARNING_SIGNAL:
            continue
        w = np.asarray(proj.weights, float).copy()
        g = np.zeros(proj.size)
        if name in plastic:
            p = plastic[name]
            w[p.edges] = p.w
            g[p.edges] = p.total + p.G
        weights[name], gradients[name] = w, g
    return SpecOnlineResult(weights, gradients, readout_y, spikes, losses)

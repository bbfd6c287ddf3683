"""EventProp in NEST: build a reference-engine network (:mod:`nestgrad.reference.eventprop`) in NEST with nestgrad's
EventProp models, run its trials and read back what the reference's forward pass records.

Mapping. One NEST node per reference neuron, in the reference's global order: ``input`` -> ``eventprop_input_ps``,
``lif`` -> ``eventprop_iaf_psc_exp_ps``, ``glif3`` -> ``eventprop_glif3_psc_ps`` (edge ports as ``receptor_type``),
``li`` -> ``eventprop_readout_ps``; one ``eventprop_synapse`` per edge, in edge order. All trials run in one
``Simulate``: trial k occupies [origin + k period, origin + k period + T) with ``period`` long enough that no spike
of one trial reaches the next (docs/eventprop_nest_design.md).

Backward pass (:func:`run_gradients`): each trial's period also holds the loss exchange between the readouts and the
backward pass in mirrored time; ``eventprop_reverse_synapse`` connections (readout -> hidden, one per forward edge)
carry the readouts' loss coefficients and the spiking neurons' adjoint jumps back, and every ``eventprop_synapse``
sums dL/dw over the trials. Supported so far: networks of inputs, spiking neurons (feedforward, multi-layer,
recurrent) and leaky readouts; losses ``ReadoutCrossEntropy`` on the mean (``"sum"``), the maximum (``"max"``) or the
exponentially weighted mean (``"sum_exp"``) voltage (over the whole trial or a response window,
``window_start``), ``FirstSpikeLoss`` on a spiking output population (the outputs
exchange their first spike times in the step where readouts exchange y, over ``eventprop_exchange_synapse``
connections) and ``SpikeCountRegulariser`` on spiking populations (local to each neuron). ``loss`` is one of them or a
sequence: the first is the main loss, the others are added as the reference's ``evaluate(net, trials, loss,
regularisers=...)`` adds its regularisers (``LossTerms.merge``). Other losses (``ReadoutMSE``) raise
:class:`ModelError`. GLIF3 networks (docs/eventprop_glif3.md) support the same losses; a ``FirstSpikeLoss`` on glif3
outputs needs ``tau_s`` (:class:`ConfigError` otherwise, as in the reference).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nestgrad.errors import ConfigError, ModelError
from nestgrad.nest_engine import connections
from nestgrad.reference.eventprop.losses import FirstSpikeLoss, ReadoutCrossEntropy, SpikeCountRegulariser
from nestgrad.reference.eventprop.network import CompiledNetwork, Network, Trial, compile_network, input_spikes
from nestgrad.reference.eventprop.optimizer import (
    EXCITATORY,
    INHIBITORY,
    Bounds,
    LearningRates,
    Signs,
    edge_bounds,
    edge_learning_rates,
    neuron_signs,
)

INPUT_MODEL = "eventprop_input_ps"
LIF_MODEL = "eventprop_iaf_psc_exp_ps"
GLIF3_MODEL = "eventprop_glif3_psc_ps"
READOUT_MODEL = "eventprop_readout_ps"
SYNAPSE_MODEL = "eventprop_synapse"
REVERSE_MODEL = "eventprop_reverse_synapse"
EXCHANGE_MODEL = "eventprop_exchange_synapse"
_MODELS = {"input": INPUT_MODEL, "lif": LIF_MODEL, "glif3": GLIF3_MODEL, "li": READOUT_MODEL}
_SPIKING = ("lif", "glif3")
_LIF_KEYS = ("C_m", "tau_m", "tau_syn", "E_L", "I_e", "V_th", "V_reset", "t_ref", "adapt_tau", "adapt_beta")
_LI_KEYS = ("C_m", "tau_m", "tau_syn", "E_L", "I_e")
_GLIF3_KEYS = ("C_m", "g", "E_L", "V_th", "V_reset", "t_ref", "I_e")
_GLIF3_VECTOR_KEYS = ("asc_init", "asc_decay", "asc_amps", "asc_r", "tau_syn")


@dataclass
class TrialLayout:
    """Where the trials lie on NEST's time axis (ms): trial k starts at ``origin + k * period``."""

    resolution: float
    T: float
    origin: float
    period: float
    n_trials: int
    backward: bool = False
    delay_bound: float = 0.0

    @property
    def sim_time(self) -> float:
        """Simulate() length that covers every trial and the arrivals that belong to the last one."""
        return self.origin + self.n_trials * self.period


@dataclass
class NestForward:
    """What the NEST forward pass recorded, per trial, in the reference's global neuron numbering."""

    layout: TrialLayout
    # per trial: global neuron -> spike times (ms, trial-local, ascending)
    spike_times: list[dict[int, np.ndarray]] = field(default_factory=list)
    # per trial: global neuron -> (gdot, vdot_plus, release_vdot) per spike, as ForwardRecord keeps them
    spike_derivs: list[dict[int, np.ndarray]] = field(default_factory=list)
    # per trial: global readout -> (t, v, I) after each arrival (v relative to E_L)
    readout_segments: list[dict[int, np.ndarray]] = field(default_factory=list)


def _grid_steps(value: float, resolution: float, what: str) -> int:
    steps = round(value / resolution)
    if steps < 1 or not math.isclose(steps * resolution, value, rel_tol=1e-12, abs_tol=1e-12):
        raise ConfigError(f"{what} = {value!r} ms: NEST needs a positive multiple of the resolution {resolution} ms")
    return steps


def layout_for(cnet: CompiledNetwork, n_trials: int, resolution: float, backward: bool = False) -> TrialLayout:
    """Trial layout for ``cnet``: every delay must be a multiple of ``resolution`` (:class:`ConfigError` naming the
    projection and the delay otherwise); the period leaves room for the longest delay after each trial, and with
    ``backward`` for the loss exchange and the backward pass (the layout of EventpropSchedule in
    cpp_module/eventprop/eventprop_node.h)."""
    for name, sl in cnet.proj_slices.items():
        for k, d in enumerate(cnet.d[sl]):
            _grid_steps(float(d), resolution, f"projection {name!r}: delay of edge {k}")
    max_delay = float(cnet.d.max()) if len(cnet.d) else resolution
    n_t = math.ceil(cnet.net.T / resolution - 1e-9)
    if not backward:
        period_steps = math.ceil((cnet.net.T + max_delay) / resolution) + 2
        return TrialLayout(resolution, cnet.net.T, resolution, period_steps * resolution, n_trials)
    d_steps = max(1, round(max_delay / resolution))
    n_b = n_t + 2 * (d_steps + 2)
    period_steps = n_b + n_t + d_steps + 4  # 2 steps of margin over the minimum the models check
    return TrialLayout(
        resolution, cnet.net.T, resolution, period_steps * resolution, n_trials, True, d_steps * resolution
    )


@dataclass(frozen=True)
class EdgeGroup:
    """Edges (edge order) connected with one pair of synapse models: the base models, or the copies that carry one
    projection's weight bounds for one sign of source (Dale's law)."""

    model: str
    reverse_model: str
    edges: np.ndarray  # int, ascending


@dataclass
class BuiltEventprop:
    nest: Any
    cnet: CompiledNetwork
    layout: TrialLayout
    nodes: Any  # NodeCollection, one node per reference neuron
    groups: list[EdgeGroup] = field(default_factory=list)
    local: np.ndarray | None = None  # per neuron: held by this rank (read under MPI only)
    plan: LossPlan | None = None  # the losses of the backward pass (None: forward only)


NestLoss = ReadoutCrossEntropy | FirstSpikeLoss | SpikeCountRegulariser
_SUPPORTED = (ReadoutCrossEntropy, FirstSpikeLoss, SpikeCountRegulariser)


@dataclass
class LossPlan:
    """The losses of a NEST backward pass, checked against the network: ``losses[0]`` is the main loss, the rest are
    added to it (the reference's ``regularisers``)."""

    losses: tuple[NestLoss, ...]
    ce: ReadoutCrossEntropy | None = None
    first_spike: FirstSpikeLoss | None = None
    tau_s: float = math.nan  # the first-spike loss's tau_s (ms), resolved
    spike_count: dict[int, SpikeCountRegulariser] = field(default_factory=dict)  # global neuron -> its regulariser
    readouts: list[int] = field(default_factory=list)  # global ids of the CE readouts
    spiking_outputs: list[int] = field(default_factory=list)  # global ids of the first-spike outputs


def loss_tuple(loss: NestLoss | Sequence[NestLoss] | None) -> tuple[NestLoss, ...]:
    """``loss`` as a tuple (empty for None); a sequence keeps its order (main loss first)."""
    if loss is None:
        return ()
    if isinstance(loss, Sequence) and not isinstance(loss, str):
        if len(loss) == 0:
            raise ConfigError("loss: an empty sequence; give a loss or leave loss=None")
        return tuple(loss)
    return (loss,)


def _population_ids(cnet: CompiledNetwork, population: str, kind: str, what: str) -> list[int]:
    if population not in cnet.offsets:
        raise ConfigError(f"{what}: loss population {population!r} does not exist; have {sorted(cnet.offsets)}")
    ids = list(cnet.global_ids(population))
    if kind == "spiking" and cnet.kind[ids[0]] in _SPIKING:
        return ids
    if cnet.kind[ids[0]] != kind:
        need = {"lif": "a spiking (lif)", "spiking": "a spiking (lif or glif3)"}.get(kind, "a leaky readout (li)")
        raise ConfigError(
            f"{what}: loss population {population!r} is {cnet.kind[ids[0]]!r}; it must be {need} population"
        )
    return ids


def _check_backward(cnet: CompiledNetwork, loss: NestLoss | Sequence[NestLoss] | None) -> LossPlan | None:
    """What the NEST backward pass supports so far (ModelError naming the loss otherwise); None without a loss."""
    losses = loss_tuple(loss)
    if not losses:
        return None
    plan = LossPlan(losses)
    for lo in losses:
        if not isinstance(lo, _SUPPORTED):
            raise ModelError(
                "EventProp in NEST supports the losses FirstSpikeLoss, SpikeCountRegulariser and "
                f"ReadoutCrossEntropy (mode 'sum', 'max' or 'sum_exp') so far, not {type(lo).__name__}"
            )
        if isinstance(lo, ReadoutCrossEntropy):
            if plan.ce is not None:
                raise ModelError("EventProp in NEST: at most one ReadoutCrossEntropy per network; got two")
            plan.ce = lo
            plan.readouts = _population_ids(cnet, lo.population, "li", "ReadoutCrossEntropy")
            if not lo.window_start < cnet.net.T:
                raise ConfigError(
                    f"window_start = {lo.window_start} ms: the response window needs window_start < T = {cnet.net.T} ms"
                )
        elif isinstance(lo, FirstSpikeLoss):
            if plan.first_spike is not None:
                raise ModelError("EventProp in NEST: at most one FirstSpikeLoss per network; got two")
            plan.first_spike = lo
            plan.spiking_outputs = _population_ids(cnet, lo.population, "spiking", "FirstSpikeLoss")
            glif3_outputs = cnet.kind[plan.spiking_outputs[0]] == "glif3"
            for name, value in (("xi", lo.xi), ("beta", lo.beta)):
                if not (math.isfinite(value) and value > 0):
                    raise ConfigError(f"FirstSpikeLoss {name} = {value!r}: must be finite and > 0")
            if not (math.isfinite(lo.alpha) and lo.alpha >= 0):
                raise ConfigError(f"FirstSpikeLoss alpha = {lo.alpha!r}: must be finite and >= 0")
            if lo.tau_s is None and glif3_outputs:
                raise ConfigError(
                    f"first-spike loss on glif3 population {lo.population!r}: pass tau_s (ms; a glif3 neuron has one "
                    "tau_syn per port)"
                )
            if lo.tau_s is None:
                taus = {cnet.params[n].tau_syn for n in plan.spiking_outputs}
                if len(taus) != 1:
                    raise ConfigError(f"first-spike loss: readouts have several tau_syn {sorted(taus)}; pass tau_s")
                plan.tau_s = float(taus.pop())
            elif not (math.isfinite(lo.tau_s) and lo.tau_s > 0):
                raise ConfigError(f"FirstSpikeLoss tau_s = {lo.tau_s!r} ms: must be finite and > 0")
            else:
                plan.tau_s = float(lo.tau_s)
        else:
            if isinstance(lo.populations, str):
                raise ConfigError(f"SpikeCountRegulariser populations = {lo.populations!r}: need a tuple of names")
            if not (math.isfinite(lo.rho) and lo.rho >= 0) or not math.isfinite(lo.nu):
                raise ConfigError(f"SpikeCountRegulariser rho = {lo.rho!r}, nu = {lo.nu!r}: need rho >= 0, finite nu")
            for pop in lo.populations:
                for n in _population_ids(cnet, pop, "spiking", "SpikeCountRegulariser"):
                    if n in plan.spike_count:
                        raise ModelError(
                            f"EventProp in NEST: population {pop!r} is regularised twice by SpikeCountRegulariser; "
                            "one regulariser per neuron (combine them into one)"
                        )
                    plan.spike_count[n] = lo
    if plan.first_spike is not None and plan.ce is not None:
        # an output's first spike time, sent in the readouts' exchange step, would reach the readouts as a y value
        outs = set(plan.spiking_outputs)
        into = {int(cnet.tgt[e]) for e in range(len(cnet.src)) if int(cnet.src[e]) in outs}
        if into & set(plan.readouts):
            raise ModelError(
                f"EventProp in NEST: FirstSpikeLoss population {plan.first_spike.population!r} projects to the "
                f"ReadoutCrossEntropy population {plan.ce.population!r}; not supported"
            )
    return plan


def build(
    net: Network | CompiledNetwork,
    trials: Sequence[Trial],
    *,
    resolution: float = 0.1,
    threads: int = 1,
    loss: NestLoss | Sequence[NestLoss] | None = None,
    optimizer: dict[str, Any] | None = None,
    bounds: Bounds | None = None,
    signs: Signs | None = None,
    learning_rates: LearningRates | None = None,
    record: bool = True,
) -> BuiltEventprop:
    """Reset NEST and build ``net`` with the inputs of ``trials``; with ``loss`` (one loss or a sequence, main loss
    first; see the module docstring) also the loss exchange, the reverse connections and the backward pass;
    ``optimizer`` (the synapses' optimizer dictionary: type, batch_size in trials, eta, Wmin, Wmax, beta_1, beta_2,
    epsilon) turns learning on, on both copies of every edge. With it, ``bounds`` (projection -> (Wmin, Wmax), pA,
    replacing the optimizer's for that projection) and ``signs`` (Dale's law: population -> +1 excitatory, -1
    inhibitory or 0, one value or one per neuron) bound the weights
    (:func:`~nestgrad.reference.eventprop.optimizer.edge_bounds`; :class:`ConfigError` for empty bounds or initial
    weights outside them): the edges of a projection whose bounds differ from the optimizer's use copies of both
    synapse models with these bounds, one per projection and sign of source (:func:`bounded_models`); so do the
    projections with a learning rate of their own (``learning_rates``: projection -> eta, 0 freezes it;
    :func:`~nestgrad.reference.eventprop.optimizer.edge_learning_rates`). The outputs of
    a labelled loss get one label more than there are trials (0), for the extra trial period that applies the last
    batch's step (:func:`run_training`). ``record=False``: the neurons and readouts keep no spike or (t, v, I) record
    (it grows with every trial; :func:`read_forward` then returns empty records); ``trial_y`` (readouts),
    ``trial_t_first`` (first-spike outputs: trial-local ms, +inf without a spike) and ``trial_spike_score``
    (regularised neurons) are kept per trial."""
    from nestgrad.nest_engine import fresh_kernel

    cnet = net if isinstance(net, CompiledNetwork) else compile_network(net)
    if len(trials) == 0:
        raise ConfigError("need at least one trial")
    plan = _check_backward(cnet, loss)
    layout = layout_for(cnet, len(trials), resolution, backward=plan is not None)
    nest = fresh_kernel(resolution, threads)
    schedule: dict[str, Any] = {
        "trial_origin": layout.origin,
        "trial_duration": layout.T,
        "trial_period": layout.period,
    }
    if layout.backward:
        schedule |= {"backward": True, "delay_bound": layout.delay_bound}
    readouts = plan.readouts if plan is not None else []
    outputs = plan.spiking_outputs if plan is not None else []
    readout_set, output_set = set(readouts), set(outputs)
    labels = []
    for trial in trials:
        for ids in (readouts, outputs):
            if ids and (trial.label is None or not 0 <= int(trial.label) < len(ids)):
                raise ConfigError(f"trial label {trial.label!r}: need an int in [0, {len(ids)})")
        labels.append(int(trial.label) if trial.label is not None else -1)
    labels.append(0)  # the extra period after the last trial (no inputs)
    groups = [EdgeGroup(SYNAPSE_MODEL, REVERSE_MODEL, np.arange(len(cnet.src)))]
    clip = math.inf  # per-trial gradient clipping: a parameter of the spiking neurons, not of the synapses
    if optimizer is not None:
        if plan is None:
            raise ConfigError("an optimizer needs a loss (learning needs the backward pass)")
        optimizer = dict(optimizer)
        clip = optimizer.pop("max_trial_gradient", math.inf)
        if isinstance(clip, bool) or not isinstance(clip, int | float) or not clip > 0:
            raise ConfigError(f"optimizer max_trial_gradient = {clip!r}: need a number > 0 (1/pA; inf: off)")
        lo, hi = edge_bounds(cnet, optimizer, bounds, signs)  # checked before NEST sees a connection
        eta = edge_learning_rates(cnet, optimizer, learning_rates)
        for model in (SYNAPSE_MODEL, REVERSE_MODEL):
            nest.SetDefaults(model, {"optimizer": dict(optimizer)})
        groups = bounded_models(nest, cnet, optimizer, lo, hi, neuron_signs(cnet, signs), eta)
    elif bounds or signs or learning_rates:
        raise ConfigError(
            "weight bounds, Dale's law and learning rates (bounds, signs, learning_rates) need an optimizer"
        )
    node_ids: list[int] = []
    inputs: dict[int, tuple[list[float], list[int]]] = {j: ([], []) for j, k in enumerate(cnet.kind) if k == "input"}
    for k, trial in enumerate(trials):
        for j, t in input_spikes(cnet, trial):
            inputs[j][0].append(t)
            inputs[j][1].append(k)
    for j, kind in enumerate(cnet.kind):
        node = nest.Create(_MODELS[kind])
        status: dict[str, Any] = dict(schedule)
        if kind == "input":
            if inputs[j][0]:  # (an input silent in every trial keeps the model's empty lists: NEST cannot type [])
                status["spike_times"], status["spike_trials"] = inputs[j]
        else:
            p = cnet.params[j]
            status["record"] = record
            if kind == "glif3":
                status |= {key: float(getattr(p, key)) for key in _GLIF3_KEYS}
                status |= {key: [float(x) for x in getattr(p, key)] for key in _GLIF3_VECTOR_KEYS}
            else:
                status |= {key: float(getattr(p, key)) for key in (_LIF_KEYS if kind == "lif" else _LI_KEYS)}
            if kind == "lif" and clip != math.inf:
                status["max_trial_gradient"] = float(clip)
        if j in readout_set:
            ce = plan.ce
            status |= {"readout_index": j - readouts[0], "labels": labels, "loss": ce.mode}
            if ce.mode == "sum_exp":
                status["tau_w"] = float(ce.tau_w if ce.tau_w is not None else cnet.net.T)
            if ce.window_start > 0.0:
                status["window_start"] = ce.window_start
        if j in output_set:
            fs = plan.first_spike
            status |= {
                "output_index": j - outputs[0],
                "labels": labels,
                "first_spike_xi": float(fs.xi),
                "first_spike_alpha": float(fs.alpha),
                "first_spike_beta": float(fs.beta),
                "first_spike_tau_s": plan.tau_s,
            }
        if plan is not None and j in plan.spike_count:
            reg = plan.spike_count[j]
            status |= {"spike_count_rho": float(reg.rho), "spike_count_nu": float(reg.nu)}
        node.set(status)
        node_ids.append(node.global_id)
    nodes = nest.NodeCollection(node_ids)
    ids = np.asarray(node_ids)
    # receptor port of each edge (glif3 targets: 1..len(tau_syn); others 0); given only for glif3 networks
    has_ports = "glif3" in cnet.kind
    is_glif3 = np.array([k == "glif3" for k in cnet.kind], bool)
    receptor = np.where(is_glif3[cnet.tgt], cnet.port + 1, 0).astype(int) if len(cnet.src) else np.zeros(0, int)
    for group in groups:
        e = group.edges
        if len(e):
            spec = {"synapse_model": group.model, "weight": cnet.w[e].astype(float), "delay": cnet.d[e].astype(float)}
            if has_ports:
                spec["receptor_type"] = receptor[e]
            nest.Connect(ids[cnet.src[e]], ids[cnet.tgt[e]], "one_to_one", spec)
    if plan is not None:
        # reverse connections target -> spiking source, one per forward edge, same weight and delay (and the
        # forward edge's port, for the mirror of a glif3 target)
        is_spiking = np.array([k in _SPIKING for k in cnet.kind], bool)
        for group in groups:
            rev = group.edges[is_spiking[cnet.src[group.edges]]] if len(group.edges) else group.edges
            if len(rev):
                spec = {
                    "synapse_model": group.reverse_model,
                    "weight": cnet.w[rev].astype(float),
                    "delay": cnet.d[rev].astype(float),
                }
                if has_ports:
                    spec["forward_receptor"] = receptor[rev]
                nest.Connect(ids[cnet.tgt[rev]], ids[cnet.src[rev]], "one_to_one", spec)
        # every output sends its value (readouts: y; spiking outputs: the first spike time) to the others (the
        # softmax needs all of them), with the network's shortest delay: a shorter one would lower NEST's min_delay
        # and make it exchange spikes more often
        y_delay = float(cnet.d.min()) if len(cnet.d) else resolution
        for members, model in ((readouts, SYNAPSE_MODEL), (outputs, EXCHANGE_MODEL)):
            pre = [ids[a] for a in members for b in members if a != b]
            post = [ids[b] for a in members for b in members if a != b]
            if pre:
                spec: dict[str, Any] = {"synapse_model": model, "delay": np.full(len(pre), y_delay)}
                if model == SYNAPSE_MODEL:
                    spec["weight"] = np.ones(len(pre))
                nest.Connect(np.asarray(pre), np.asarray(post), "one_to_one", spec)
    return BuiltEventprop(nest, cnet, layout, nodes, groups, plan=plan)


def bounded_models(
    nest: Any,
    cnet: CompiledNetwork,
    optimizer: dict[str, Any],
    lo: np.ndarray,
    hi: np.ndarray,
    sign: np.ndarray,
    eta: np.ndarray | None = None,
) -> list[EdgeGroup]:
    """Group the edges by the models that bound them: edges whose (Wmin, Wmax) and eta are the optimizer's keep the
    base models; the others get copies of both models (NEST's ``CopyModel``: bounds and eta are common properties,
    so Dale's law, bounds and learning rates cost no memory per synapse), one per projection and sign of source,
    named ``<model>__<projection>`` with ``_exc`` or ``_inh`` for an excitatory or inhibitory source. Both copies of
    an edge get the same settings, so that they take the same steps bit for bit. ``sign``: per global neuron;
    ``eta``: per edge (None: the optimizer's)."""
    base = (float(optimizer.get("Wmin", -math.inf)), float(optimizer.get("Wmax", math.inf)))
    base_eta = float(optimizer.get("eta", 0.0))
    eta = np.full(len(cnet.src), base_eta) if eta is None else eta
    plain = np.ones(len(cnet.src), bool)
    groups: list[EdgeGroup] = []
    suffix = {EXCITATORY: "_exc", INHIBITORY: "_inh"}
    for name, sl in cnet.proj_slices.items():
        edges = np.arange(sl.start, sl.stop)
        src_sign = sign[cnet.src[edges]] if len(edges) else np.zeros(0, np.int8)
        for s in (EXCITATORY, INHIBITORY, 0):
            mine = edges[src_sign == s]
            mine = mine[(lo[mine] != base[0]) | (hi[mine] != base[1]) | (eta[mine] != base_eta)]
            if not len(mine):
                continue
            # one (Wmin, Wmax) per projection and sign, one eta per projection
            w_min, w_max, rate = float(lo[mine[0]]), float(hi[mine[0]]), float(eta[mine[0]])
            models = []
            for model in (SYNAPSE_MODEL, REVERSE_MODEL):
                copy = f"{model}__{name}{suffix.get(s, '')}"
                nest.CopyModel(model, copy)
                # unbounded first: the default weight must lie within the bounds at every step of the change
                own = dict(optimizer) | {"eta": rate}
                nest.SetDefaults(copy, {"optimizer": own | {"Wmin": -math.inf, "Wmax": math.inf}})
                nest.SetDefaults(copy, {"weight": min(max(0.0, w_min), w_max)})
                nest.SetDefaults(copy, {"optimizer": own | {"Wmin": w_min, "Wmax": w_max}})
                models.append(copy)
            groups.append(EdgeGroup(models[0], models[1], mine))
            plain[mine] = False
    return [EdgeGroup(SYNAPSE_MODEL, REVERSE_MODEL, np.flatnonzero(plain)), *groups]


def read_forward(built: BuiltEventprop) -> NestForward:
    """Collect the records of every (local) node after ``Simulate``."""
    cnet, layout = built.cnet, built.layout
    out = NestForward(layout)
    for _ in range(layout.n_trials):
        out.spike_times.append({})
        out.spike_derivs.append({})
        out.readout_segments.append({})
    for j, kind in enumerate(cnet.kind):
        node = built.nodes[j]
        if kind in _SPIKING:
            st = node.get(["spike_trials", "spike_times", "spike_gdot", "spike_vdot_plus", "release_vdot"])
            trials = np.asarray(st["spike_trials"], int)
            for k in range(layout.n_trials):
                sel = trials == k
                out.spike_times[k][j] = np.asarray(st["spike_times"], float)[sel]
                out.spike_derivs[k][j] = np.stack(
                    [np.asarray(st[key], float)[sel] for key in ("spike_gdot", "spike_vdot_plus", "release_vdot")]
                )
        elif kind == "li":
            st = node.get(["seg_trials", "seg_times", "seg_v", "seg_I"])
            trials = np.asarray(st["seg_trials"], int)
            for k in range(layout.n_trials):
                sel = trials == k
                out.readout_segments[k][j] = np.stack(
                    [np.asarray(st[key], float)[sel] for key in ("seg_times", "seg_v", "seg_I")]
                )
    return out


def run_forward(
    net: Network | CompiledNetwork, trials: Sequence[Trial], *, resolution: float = 0.1, threads: int = 1
) -> NestForward:
    """Build ``net`` in NEST, simulate every trial of ``trials`` in one ``Simulate`` and return the records."""
    built = build(net, trials, resolution=resolution, threads=threads)
    built.nest.Simulate(built.layout.sim_time)
    return read_forward(built)


@dataclass
class NestGradients:
    """dL/dw per projection in edge order (1/pA), mean over the trials (the reference's ``reduction="mean"``), the
    loss per trial (main loss plus regularisers) and the main loss's outputs per trial (``[trial, output]``: readout
    values y, or first spike times in ms with T for no spike, as the reference's ``Result.outputs``; empty for a
    regulariser alone)."""

    grad_weights: dict[str, np.ndarray]
    losses: np.ndarray
    forward: NestForward
    outputs: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))


def trial_outputs(built: BuiltEventprop, loss: NestLoss) -> np.ndarray:
    """``[trial, output]`` values of a labelled loss read from the nodes: readouts' ``trial_y``, or the first-spike
    outputs' ``trial_t_first`` with +inf (no spike) replaced by T (the reference's convention); every period
    simulated so far."""
    plan = built.plan
    if isinstance(loss, ReadoutCrossEntropy):
        return np.array([np.asarray(built.nodes[j].get("trial_y"), float) for j in plan.readouts]).T
    if isinstance(loss, FirstSpikeLoss):
        t = np.array([np.asarray(built.nodes[j].get("trial_t_first"), float) for j in plan.spiking_outputs]).T
        return np.where(np.isinf(t), built.layout.T, t)
    return np.zeros((built.layout.n_trials, 0))


def _log_softmax(z: np.ndarray, label: int) -> float:
    z = z - z.max()
    return float(z[label] - math.log(np.exp(z).sum()))


def trial_losses(built: BuiltEventprop, trials: Sequence[Trial]) -> tuple[np.ndarray, np.ndarray]:
    """Loss of each trial (the reference's ``LossTerms.value`` after merging the regularisers) and the main loss's
    outputs, from what the nodes recorded per trial."""
    plan = built.plan
    n = len(trials)
    losses = np.zeros(n)
    main_outputs = np.zeros((n, 0))
    for i, lo in enumerate(plan.losses):
        if isinstance(lo, SpikeCountRegulariser):
            if lo.rho == 0.0:
                continue  # (the neurons record no score then)
            # the neurons of this regulariser, in the reference's order (populations, then neurons)
            for j in (j for j, reg in plan.spike_count.items() if reg is lo):
                score = np.asarray(built.nodes[j].get("trial_spike_score"), float)[:n]
                losses += 0.5 * lo.rho * (score - lo.nu) ** 2
            continue
        out = trial_outputs(built, lo)[:n]
        if i == 0:
            main_outputs = out
        for k, trial in enumerate(trials):
            label = int(trial.label)
            if isinstance(lo, ReadoutCrossEntropy):
                losses[k] += -_log_softmax(out[k], label)
            else:
                scale = lo.xi * plan.tau_s
                reg = lo.alpha * (math.exp(out[k, label] / (lo.beta * plan.tau_s)) - 1.0)
                losses[k] += -_log_softmax(-out[k] / scale, label) + reg
    return losses, main_outputs


def read_gradients(built: BuiltEventprop) -> np.ndarray:
    """dL/dw of every edge (edge order), summed over the trials: the ``gradient`` of each ``eventprop_synapse``."""
    return read_edges(built, ("gradient",))["gradient"]


def run_gradients(
    net: Network | CompiledNetwork,
    trials: Sequence[Trial],
    loss: NestLoss | Sequence[NestLoss],
    *,
    resolution: float = 0.1,
    threads: int = 1,
    record: bool = True,
) -> NestGradients:
    """Forward and backward pass of every trial in one ``Simulate``; the gradients as
    ``reference.eventprop.evaluate(net, trials, loss).grad_weights`` computes them (a sequence ``loss``: as
    ``evaluate(net, trials, loss[0], regularisers=loss[1:])``)."""
    built = build(net, trials, resolution=resolution, threads=threads, loss=loss, record=record)
    built.nest.Simulate(built.layout.sim_time)
    cnet = built.cnet
    total = read_gradients(built) / len(trials)
    losses, outputs = trial_losses(built, trials)
    return NestGradients(
        {name: total[sl] for name, sl in cnet.proj_slices.items()}, losses, read_forward(built), outputs
    )


@dataclass
class NestTraining:
    """Weights after training (per projection, edge order) from the forward connections and, for edges with a
    spiking source, from their reverse copies (NaN elsewhere), and the gradients summed over all trials."""

    weights: dict[str, np.ndarray]
    reverse_weights: dict[str, np.ndarray]
    gradient_sum: dict[str, np.ndarray]
    reverse_gradient_sum: dict[str, np.ndarray]


def _ranked(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows of ``keys`` (int, [n, k]): the order that sorts them (stably, so equal rows keep their order) and, in
    that order, each row's rank among the rows equal to it (0, 1, ...)."""
    n = len(keys)
    order = np.lexsort((np.arange(n),) + tuple(keys[:, j] for j in reversed(range(keys.shape[1]))))
    k = keys[order]
    new = np.ones(n, bool)
    new[1:] = np.any(k[1:] != k[:-1], axis=1)
    first = np.maximum.accumulate(np.where(new, np.arange(n), 0))
    return order, np.arange(n) - first


def _index_keys(built: BuiltEventprop, reverse: bool) -> list[str]:
    """The connection keys :func:`_edge_index` matches edges by: source, target and, in glif3 networks, the port."""
    ports = ["forward_receptor" if reverse else "receptor"] if "glif3" in built.cnet.kind else []
    return ["source", "target", *ports]


def _edge_index(built: BuiltEventprop, found: dict[str, np.ndarray], reverse: bool, edges: np.ndarray) -> np.ndarray:
    """For every edge of ``edges`` the position of its connection among those whose :func:`_index_keys` are
    ``found`` (-1: none here: reverse copies exist for edges from spiking sources only, and under MPI a rank holds
    its own connections only); several edges between one pair of nodes are matched in connection order (in glif3
    networks per receptor port: NEST does not keep the order of connections on different ports). Vectorised: the
    i-th edge with a given (source, target, port) gets the i-th connection with it, found by sorting both sides'
    (source, target, port, rank) rows together (a loop over the edges took ~5 s per million edges)."""
    ids = np.asarray(built.nodes.tolist())
    cnet = built.cnet
    by = _index_keys(built, reverse)
    ports = len(by) == 3
    index = np.full(len(edges), -1, dtype=np.int64)
    if not found["source"].size or not len(edges):
        return index
    src_l, tgt_l = found["source"], found["target"]
    port_l = found[by[2]] if ports else np.zeros(len(src_l), int)
    conn_keys = np.column_stack([src_l, tgt_l, port_l]).astype(np.int64)
    is_glif3 = np.array([k == "glif3" for k in cnet.kind], bool)
    edges = np.asarray(edges, np.int64)
    s, t = ids[cnet.src[edges]], ids[cnet.tgt[edges]]
    pt = np.where(is_glif3[cnet.tgt[edges]], cnet.port[edges] + 1, 0) if ports else np.zeros(len(edges), int)
    edge_keys = np.column_stack([t, s, pt] if reverse else [s, t, pt]).astype(np.int64)
    c_order, c_rank = _ranked(conn_keys)
    e_order, e_rank = _ranked(edge_keys)
    rows = np.concatenate(
        [np.column_stack([conn_keys[c_order], c_rank]), np.column_stack([edge_keys[e_order], e_rank])]
    )
    is_edge = np.concatenate([np.zeros(len(c_order), bool), np.ones(len(e_order), bool)])
    order = np.lexsort((is_edge,) + tuple(rows[:, j] for j in reversed(range(4))))
    r, e = rows[order], is_edge[order]
    # (source, target, port, rank) is unique on each side: a match is a connection row followed by an equal edge row
    match = np.flatnonzero(np.all(r[1:] == r[:-1], axis=1) & e[1:] & ~e[:-1]) + 1
    index[e_order[order[match] - len(c_order)]] = c_order[order[match - 1]]
    return index


def _serial() -> Any:
    from nestgrad.parallel import SerialCommunicator

    return SerialCommunicator()


def read_edges(
    built: BuiltEventprop, keys: Sequence[str], reverse: bool = False, comm: Any = None
) -> dict[str, np.ndarray]:
    """Per-edge values (``weight``, ``gradient``, ``adam_m``, ``adam_v``) of the forward connections, or with
    ``reverse`` of their reverse copies (NaN for edges without one), in edge order. Each rank reads the connections
    it holds; with ``comm`` (a :mod:`nestgrad.parallel` communicator; collective: every rank must call) the values
    are gathered so that every rank gets every edge's, exactly (values are moved, not summed)."""
    comm = comm or _serial()
    found: list[np.ndarray] = []
    values: dict[str, list[np.ndarray]] = {key: [] for key in keys}
    for group in built.groups:
        conns = built.nest.GetConnections(synapse_model=group.reverse_model if reverse else group.model)
        by = _index_keys(built, reverse)
        d = connections.read(conns, [*by, *(k for k in keys if k not in by)])  # one pass over NEST for all keys
        index = _edge_index(built, d, reverse, group.edges)
        have = index >= 0
        found.append(group.edges[have])
        for key in keys:
            values[key].append(d[key].astype(float)[index[have]])
    edges = comm.concat(np.concatenate(found).astype(np.int64))
    out = {}
    for key in keys:
        full = np.full(len(built.cnet.src), np.nan)
        full[edges] = comm.concat(np.concatenate(values[key]))
        out[key] = full
    return out


def write_edges(built: BuiltEventprop, values: dict[str, np.ndarray]) -> None:
    """Set per-edge values in edge order (e.g. Adam's moments ``adam_m``, ``adam_v`` of a checkpoint) on both copies
    of every edge, so that forward and reverse connections stay equal; every rank sets the connections it holds."""
    for reverse in (False, True):
        for group in built.groups:
            conns = built.nest.GetConnections(synapse_model=group.reverse_model if reverse else group.model)
            if not len(conns):
                continue
            by = _index_keys(built, reverse)
            d = connections.read(conns, [*by, *values])
            index = _edge_index(built, d, reverse, group.edges)
            have = index >= 0
            rows, edges = index[have], group.edges[have]
            update = {}
            for key, v in values.items():
                update[key] = d[key].astype(float)
                update[key][rows] = np.asarray(v, float)[edges]
            connections.write(conns, update)


def discard_batch(built: BuiltEventprop) -> None:
    """Between batches: the batch just simulated adds no gradient and takes no optimizer step (Adam's moments and
    bias correction stay as they are), on both copies of every edge (``discard_batch`` of the EventProp synapses).
    O(all edges) per call; every rank sets the connections it holds."""
    for group in built.groups:
        for model in (group.model, group.reverse_model):
            conns = built.nest.GetConnections(synapse_model=model)
            if len(conns):
                conns.set({"discard_batch": True})


def add_to_weights_into(built: BuiltEventprop, targets: np.ndarray, delta: float) -> None:
    """Add ``delta`` (pA) to the weight of every edge into the neurons at global positions ``targets``, on both
    copies of each edge (the forward connection and its reverse copy, which starts at the target). Reads and writes
    only these connections (O(edges into ``targets``), not O(all edges)); every rank changes the connections it
    holds, so no communication is needed."""
    targets = np.unique(np.asarray(targets, np.int64))
    if not len(targets):
        return
    into = np.isin(built.cnet.tgt, targets)
    at = built.nodes[targets.tolist()]
    for reverse in (False, True):
        for group in built.groups:
            edges = group.edges[into[group.edges]]
            if not len(edges):
                continue
            model = group.reverse_model if reverse else group.model
            # NEST's filters (slower in a long-lived process, see wiring.py): still cheaper than a pass over every
            # connection of the model for the few neurons this is called for
            conns = built.nest.GetConnections(source=at, synapse_model=model) if reverse else (
                built.nest.GetConnections(target=at, synapse_model=model))  # fmt: skip
            if not len(conns):
                continue
            d = connections.read(conns, [*_index_keys(built, reverse), "weight"])
            index = _edge_index(built, d, reverse, edges)
            rows = index[index >= 0]
            weights = d["weight"].astype(float)
            weights[rows] = weights[rows] + delta
            connections.write(conns, {"weight": weights})


def gather_nodes(
    built: BuiltEventprop, positions: Sequence[int], keys: Sequence[str], comm: Any = None
) -> list[dict[str, np.ndarray]]:
    """For the neurons at global positions ``positions`` the values ``keys`` (float arrays, e.g. ``trial_y``,
    ``spike_trials``, ``spike_times``), in that order, on every rank: each rank reads the nodes it holds (NEST has
    no status for another rank's nodes), then the values are gathered (collective with ``comm``)."""
    comm = comm or _serial()
    positions = [int(j) for j in positions]
    if not positions:
        return []
    if comm.size > 1 and built.local is None:
        built.local = np.atleast_1d(built.nodes.local).astype(bool)  # the collection is in global order
    mine = [i for i, j in enumerate(positions) if built.local is None or built.local[j]]
    where, lengths, flat = [], [], {key: [] for key in keys}
    for i in mine:
        st = built.nodes[positions[i]].get(list(keys))
        n = None
        for key in keys:
            v = np.atleast_1d(np.asarray(st[key], float))
            n = len(v) if n is None else n
            if len(v) != n:
                raise ValueError(f"gather_nodes: keys {list(keys)} differ in length")
            flat[key].append(v)
        where.append(i)
        lengths.append(n or 0)
    where_all = comm.concat(np.asarray(where, np.int64))
    len_all = comm.concat(np.asarray(lengths, np.int64))
    out: list[dict[str, np.ndarray]] = [{} for _ in positions]
    for key in keys:
        values = comm.concat(np.concatenate(flat[key]) if flat[key] else np.zeros(0))
        for i, part in zip(where_all, np.split(values, np.cumsum(len_all)[:-1]), strict=True):
            out[int(i)][key] = part
    return out


def run_training(
    net: Network | CompiledNetwork,
    trials: Sequence[Trial],
    loss: NestLoss | Sequence[NestLoss],
    optimizer: dict[str, Any],
    *,
    resolution: float = 0.1,
    threads: int = 1,
    bounds: Bounds | None = None,
    signs: Signs | None = None,
    learning_rates: LearningRates | None = None,
) -> NestTraining:
    """Train on ``trials`` in order, one optimizer step per ``optimizer["batch_size"]`` trials, all in NEST: one
    ``Simulate`` for the trials, one more trial period (no inputs) in which every synapse applies the last batch's
    step; returns the weights of both copies of every edge. ``bounds``, ``signs`` (Dale's law) and
    ``learning_rates``: as for :func:`build`."""
    built = build(net, trials, resolution=resolution, threads=threads, loss=loss, optimizer=optimizer,
                  bounds=bounds, signs=signs, learning_rates=learning_rates)  # fmt: skip
    nest, cnet = built.nest, built.cnet
    nest.Simulate(built.layout.sim_time)
    nest.Simulate(built.layout.period)
    fwd = read_edges(built, ("weight", "gradient"))
    rev = read_edges(built, ("weight", "gradient"), reverse=True)
    w, g, w_rev, g_rev = fwd["weight"], fwd["gradient"], rev["weight"], rev["gradient"]
    per = {name: sl for name, sl in cnet.proj_slices.items()}
    return NestTraining(
        {k: w[sl] for k, sl in per.items()},
        {k: w_rev[sl] for k, sl in per.items()},
        {k: g[sl] for k, sl in per.items()},
        {k: g_rev[sl] for k, sl in per.items()},
    )

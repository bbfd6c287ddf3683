"""EventProp in NEST: build a reference-engine network (:mod:`nestgrad.reference.eventprop`) in NEST with nestgrad's
EventProp models, run its trials and read back what the reference's forward pass records.

Mapping. One NEST node per reference neuron, in the reference's global order: ``input`` -> ``eventprop_input_ps``,
``lif`` -> ``eventprop_iaf_psc_exp_ps``, ``li`` -> ``eventprop_readout_ps``; one ``eventprop_synapse`` per edge, in
edge order. All trials run in one ``Simulate``: trial k occupies [origin + k period, origin + k period + T) with
``period`` long enough that no spike of one trial reaches the next (docs/eventprop_nest_design.md).

Backward pass (:func:`run_gradients`): each trial's period also holds the loss exchange between the readouts and the
backward pass in mirrored time; ``eventprop_reverse_synapse`` connections (readout -> hidden, one per forward edge)
carry the readouts' loss coefficients and the spiking neurons' adjoint jumps back, and every ``eventprop_synapse``
sums dL/dw over the trials. Supported so far: networks of inputs, spiking neurons (feedforward, multi-layer,
recurrent) and leaky readouts; losses ``ReadoutCrossEntropy`` on the mean (``"sum"``), the maximum (``"max"``) or the
exponentially weighted mean (``"sum_exp"``) voltage, ``FirstSpikeLoss`` on a spiking output population (the outputs
exchange their first spike times in the step where readouts exchange y, over ``eventprop_exchange_synapse``
connections) and ``SpikeCountRegulariser`` on spiking populations (local to each neuron). ``loss`` is one of them or a
sequence: the first is the main loss, the others are added as the reference's ``evaluate(net, trials, loss,
regularisers=...)`` adds its regularisers (``LossTerms.merge``). Other losses (``ReadoutMSE``) raise
:class:`ModelError`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nestgrad.errors import ConfigError, ModelError
from nestgrad.reference.eventprop.losses import FirstSpikeLoss, ReadoutCrossEntropy, SpikeCountRegulariser
from nestgrad.reference.eventprop.network import CompiledNetwork, Network, Trial, compile_network, input_spikes

INPUT_MODEL = "eventprop_input_ps"
LIF_MODEL = "eventprop_iaf_psc_exp_ps"
READOUT_MODEL = "eventprop_readout_ps"
SYNAPSE_MODEL = "eventprop_synapse"
REVERSE_MODEL = "eventprop_reverse_synapse"
EXCHANGE_MODEL = "eventprop_exchange_synapse"
_MODELS = {"input": INPUT_MODEL, "lif": LIF_MODEL, "li": READOUT_MODEL}
_LIF_KEYS = ("C_m", "tau_m", "tau_syn", "E_L", "I_e", "V_th", "V_reset", "t_ref", "adapt_tau", "adapt_beta")
_LI_KEYS = ("C_m", "tau_m", "tau_syn", "E_L", "I_e")


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


@dataclass
class BuiltEventprop:
    nest: Any
    cnet: CompiledNetwork
    layout: TrialLayout
    nodes: Any  # NodeCollection, one node per reference neuron
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
    if cnet.kind[ids[0]] != kind:
        need = "a spiking (lif)" if kind == "lif" else "a leaky readout (li)"
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
        elif isinstance(lo, FirstSpikeLoss):
            if plan.first_spike is not None:
                raise ModelError("EventProp in NEST: at most one FirstSpikeLoss per network; got two")
            plan.first_spike = lo
            plan.spiking_outputs = _population_ids(cnet, lo.population, "lif", "FirstSpikeLoss")
            for name, value in (("xi", lo.xi), ("beta", lo.beta)):
                if not (math.isfinite(value) and value > 0):
                    raise ConfigError(f"FirstSpikeLoss {name} = {value!r}: must be finite and > 0")
            if not (math.isfinite(lo.alpha) and lo.alpha >= 0):
                raise ConfigError(f"FirstSpikeLoss alpha = {lo.alpha!r}: must be finite and >= 0")
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
                for n in _population_ids(cnet, pop, "lif", "SpikeCountRegulariser"):
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
    record: bool = True,
) -> BuiltEventprop:
    """Reset NEST and build ``net`` with the inputs of ``trials``; with ``loss`` (one loss or a sequence, main loss
    first; see the module docstring) also the loss exchange, the reverse connections and the backward pass;
    ``optimizer`` (the synapses' optimizer dictionary: type, batch_size in trials, eta, Wmin, Wmax, beta_1, beta_2,
    epsilon) turns learning on, on both copies of every edge. The outputs of a labelled loss get one label more than
    there are trials (0), for the extra trial period that applies the last batch's step (:func:`run_training`).
    ``record=False``: the neurons and readouts keep no spike or (t, v, I) record (it grows with every trial;
    :func:`read_forward` then returns empty records); ``trial_y`` (readouts), ``trial_t_first`` (first-spike outputs:
    trial-local ms, +inf without a spike) and ``trial_spike_score`` (regularised neurons) are kept per trial."""
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
    if optimizer is not None:
        if plan is None:
            raise ConfigError("an optimizer needs a loss (learning needs the backward pass)")
        for model in (SYNAPSE_MODEL, REVERSE_MODEL):
            nest.SetDefaults(model, {"optimizer": dict(optimizer)})
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
            status |= {key: float(getattr(p, key)) for key in (_LIF_KEYS if kind == "lif" else _LI_KEYS)}
        if j in readout_set:
            ce = plan.ce
            status |= {"readout_index": j - readouts[0], "labels": labels, "loss": ce.mode}
            if ce.mode == "sum_exp":
                status["tau_w"] = float(ce.tau_w if ce.tau_w is not None else cnet.net.T)
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
    if len(cnet.src):
        nest.Connect(
            np.asarray(node_ids)[cnet.src],
            np.asarray(node_ids)[cnet.tgt],
            "one_to_one",
            {"synapse_model": SYNAPSE_MODEL, "weight": cnet.w.astype(float), "delay": cnet.d.astype(float)},
        )
    if plan is not None:
        ids = np.asarray(node_ids)
        # reverse connections target -> spiking source, one per forward edge, same weight and delay
        rev = np.array([k for k in range(len(cnet.src)) if cnet.kind[int(cnet.src[k])] == "lif"], dtype=int)
        if len(rev):
            nest.Connect(
                ids[cnet.tgt[rev]],
                ids[cnet.src[rev]],
                "one_to_one",
                {
                    "synapse_model": REVERSE_MODEL,
                    "weight": cnet.w[rev].astype(float),
                    "delay": cnet.d[rev].astype(float),
                },
            )
        # every output sends its value (readouts: y; spiking outputs: the first spike time) to the others (the
        # softmax needs all of them), with the network's shortest delay: a shorter one would lower NEST's min_delay
        # and make it exchange spikes more often
        y_delay = float(cnet.d.min()) if len(cnet.d) else resolution
        for group, model in ((readouts, SYNAPSE_MODEL), (outputs, EXCHANGE_MODEL)):
            pre = [ids[a] for a in group for b in group if a != b]
            post = [ids[b] for a in group for b in group if a != b]
            if pre:
                spec: dict[str, Any] = {"synapse_model": model, "delay": np.full(len(pre), y_delay)}
                if model == SYNAPSE_MODEL:
                    spec["weight"] = np.ones(len(pre))
                nest.Connect(np.asarray(pre), np.asarray(post), "one_to_one", spec)
    return BuiltEventprop(nest, cnet, layout, nodes, plan)


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
        if kind == "lif":
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


def _edge_index(built: BuiltEventprop, conns: Any, reverse: bool) -> np.ndarray:
    """For every edge (edge order) the position of its connection in ``conns`` (-1: none; reverse copies exist for
    edges from spiking sources only); several edges between one pair of nodes are matched in connection order."""
    ids = np.asarray(built.nodes.tolist())
    by_pair: dict[tuple[int, int], list[int]] = {}
    if len(conns):
        st = conns.get(["source", "target"])
        for i, (src, tgt) in enumerate(zip(np.atleast_1d(st["source"]), np.atleast_1d(st["target"]), strict=True)):
            by_pair.setdefault((int(src), int(tgt)), []).append(i)
    index = np.full(len(built.cnet.src), -1, dtype=np.int64)
    for e in range(len(built.cnet.src)):
        s, t = int(ids[built.cnet.src[e]]), int(ids[built.cnet.tgt[e]])
        found = by_pair.get((t, s) if reverse else (s, t))
        if found:
            index[e] = found.pop(0)
    return index


def read_edges(built: BuiltEventprop, keys: Sequence[str], reverse: bool = False) -> dict[str, np.ndarray]:
    """Per-edge values (``weight``, ``gradient``, ``adam_m``, ``adam_v``) of the forward connections, or with
    ``reverse`` of their reverse copies (NaN for edges without one), in edge order; local connections only (one
    rank)."""
    conns = built.nest.GetConnections(synapse_model=REVERSE_MODEL if reverse else SYNAPSE_MODEL)
    index = _edge_index(built, conns, reverse)
    out = {}
    for key in keys:
        values = np.atleast_1d(conns.get(key)).astype(float) if len(conns) else np.zeros(0)
        out[key] = np.where(index >= 0, values[np.maximum(index, 0)] if len(values) else np.nan, np.nan)
    return out


def write_edges(built: BuiltEventprop, values: dict[str, np.ndarray]) -> None:
    """Set per-edge values in edge order (e.g. Adam's moments ``adam_m``, ``adam_v`` of a checkpoint) on both copies
    of every edge, so that forward and reverse connections stay equal."""
    for reverse in (False, True):
        conns = built.nest.GetConnections(synapse_model=REVERSE_MODEL if reverse else SYNAPSE_MODEL)
        if not len(conns):
            continue
        index = _edge_index(built, conns, reverse)
        have = index >= 0
        update = {}
        for key, v in values.items():
            current = np.atleast_1d(conns.get(key)).astype(float)
            current[index[have]] = np.asarray(v, float)[have]
            update[key] = current.tolist()
        conns.set(update)


def run_training(
    net: Network | CompiledNetwork,
    trials: Sequence[Trial],
    loss: NestLoss | Sequence[NestLoss],
    optimizer: dict[str, Any],
    *,
    resolution: float = 0.1,
    threads: int = 1,
) -> NestTraining:
    """Train on ``trials`` in order, one optimizer step per ``optimizer["batch_size"]`` trials, all in NEST: one
    ``Simulate`` for the trials, one more trial period (no inputs) in which every synapse applies the last batch's
    step; returns the weights of both copies of every edge."""
    built = build(net, trials, resolution=resolution, threads=threads, loss=loss, optimizer=optimizer)
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

"""EventProp in NEST: build a reference-engine network (:mod:`nestgrad.reference.eventprop`) in NEST with nestgrad's
EventProp models, run its trials and read back what the reference's forward pass records.

Mapping. One NEST node per reference neuron, in the reference's global order: ``input`` -> ``eventprop_input_ps``,
``lif`` -> ``eventprop_iaf_psc_exp_ps``, ``li`` -> ``eventprop_readout_ps``; one ``eventprop_synapse`` per edge, in
edge order. All trials run in one ``Simulate``: trial k occupies [origin + k period, origin + k period + T) with
``period`` long enough that no spike of one trial reaches the next (docs/eventprop_nest_design.md).

Only the forward pass exists so far (issue 20, milestone 2); the backward pass is the next step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nestgrad.errors import ConfigError
from nestgrad.reference.eventprop.network import CompiledNetwork, Network, Trial, compile_network, input_spikes

INPUT_MODEL = "eventprop_input_ps"
LIF_MODEL = "eventprop_iaf_psc_exp_ps"
READOUT_MODEL = "eventprop_readout_ps"
SYNAPSE_MODEL = "eventprop_synapse"
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


def layout_for(cnet: CompiledNetwork, n_trials: int, resolution: float) -> TrialLayout:
    """Trial layout for ``cnet``: every delay must be a multiple of ``resolution`` (:class:`ConfigError` naming the
    projection and the delay otherwise); the period leaves room for the longest delay after each trial."""
    for name, sl in cnet.proj_slices.items():
        for k, d in enumerate(cnet.d[sl]):
            _grid_steps(float(d), resolution, f"projection {name!r}: delay of edge {k}")
    max_delay = float(cnet.d.max()) if len(cnet.d) else resolution
    period_steps = math.ceil((cnet.net.T + max_delay) / resolution) + 2
    return TrialLayout(resolution, cnet.net.T, resolution, period_steps * resolution, n_trials)


@dataclass
class BuiltEventprop:
    nest: Any
    cnet: CompiledNetwork
    layout: TrialLayout
    nodes: Any  # NodeCollection, one node per reference neuron


def build(
    net: Network | CompiledNetwork, trials: Sequence[Trial], *, resolution: float = 0.1, threads: int = 1
) -> BuiltEventprop:
    """Reset NEST and build ``net`` with the inputs of ``trials``."""
    from nestgrad.nest_engine import fresh_kernel

    cnet = net if isinstance(net, CompiledNetwork) else compile_network(net)
    if len(trials) == 0:
        raise ConfigError("need at least one trial")
    layout = layout_for(cnet, len(trials), resolution)
    nest = fresh_kernel(resolution, threads)
    schedule = {"trial_origin": layout.origin, "trial_duration": layout.T, "trial_period": layout.period}
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
            status["spike_times"], status["spike_trials"] = inputs[j]
        else:
            p = cnet.params[j]
            status |= {key: float(getattr(p, key)) for key in (_LIF_KEYS if kind == "lif" else _LI_KEYS)}
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
    return BuiltEventprop(nest, cnet, layout, nodes)


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

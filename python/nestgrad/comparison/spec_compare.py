"""``nestgrad compare`` for networks described by a :class:`nestgrad.spec.NetworkSpec` (the V1 column, the e-prop
microcircuit): run the spec in NEST (the one wiring function, the data devices, one kernel, the task's batches, as
the Trainer does) and in the general reference engine (:mod:`nestgrad.reference.spec_online`), and compare the
weight updates per projection and the losses per iteration.

The reference engine takes every parameter from the spec; the parameters of each neuron are read back from the
built NEST nodes (so NEST's defaults and unit conversions are the ones NEST used).

Per projection with plastic edges: ``max_rel_err`` = max |dW_nest - dW_ref| / max |dW_ref| over its plastic edges
(dW: weight change over all iterations), ``mean_rel_err`` over edges with |dW_ref| >= 1e-6 max |dW_ref| (as
:mod:`nestgrad.comparison.compare` defines them).
"""

from __future__ import annotations

import dataclasses
import pathlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from nestgrad.comparison.compare import NEGLIGIBLE, write_result
from nestgrad.config import ConfigError, ExperimentConfig
from nestgrad.errors import SpecError
from nestgrad.nest_engine import devices as dev
from nestgrad.nest_engine import fresh_kernel, wiring
from nestgrad.parallel import SerialCommunicator
from nestgrad.reference import populations as rp
from nestgrad.reference.spec_online import SpecData, check_supported, run_spec_online
from nestgrad.spec import NetworkSpec, Role, SynapseKind
from nestgrad.tasks import TrialBatch

# the parameters the reference engine reads, per model (read back from NEST)
_READ_BACK = {
    "eprop_glif3_psc": rp.GLIF3_NUMBERS
    + rp.EPROP_NUMBERS
    + tuple(rp.GLIF3_LISTS)
    + rp.EPROP_SHARED
    + tuple(rp.EPROP_FIXED),
    "eprop_iaf_psc_exp": rp.PSC_EXP_NUMBERS + rp.EPROP_NUMBERS + rp.EPROP_SHARED + tuple(rp.EPROP_FIXED),
    "eprop_readout": rp.READOUT_NUMBERS,
}


@dataclass
class SpecCase:
    """A spec with the data of its first iterations (what ``Trainer(config)`` would train)."""

    spec: NetworkSpec
    batches: list[TrialBatch]
    meta: dict[str, Any]

    def data(self) -> SpecData:
        b = self.batches
        return SpecData(
            np.concatenate([x.input_spikes for x in b]).astype(bool),
            np.concatenate([x.target for x in b]),
            np.concatenate([x.learning_window for x in b]),
            b[0].steps,
        )


def case_from_config(config: ExperimentConfig, iterations: int) -> SpecCase:
    """The network and the first ``iterations`` batches a training run of ``config`` starts with; refused
    (SpecError) before anything is built if the reference engine cannot replay it."""
    from nestgrad.networks.registry import make_learner

    if iterations < 1:
        raise ConfigError(f"iterations = {iterations}: at least 1 is required")
    learner, task = make_learner(config)
    if not hasattr(learner, "network_spec"):
        raise ConfigError(
            f"network.architecture = {config.network.architecture!r}: this network is not built from a spec yet, "
            "so `nestgrad compare` cannot replay it (supported: classic, microcircuit, v1)"
        )
    weights = learner.initial_weights(config.network.seed)
    import nest

    from nestgrad.module import install

    install()  # the models' defaults, without a kernel reset or a simulation
    learner.prepare(nest)  # what the algorithm chooses from NEST's defaults
    spec = learner.network_spec(weights, record_neurons=0, plastic=True)
    check_supported(spec)
    batches = [task.batch(k) for k in range(iterations)]
    meta = {"architecture": config.network.architecture, "task": config.task.name, "describe": learner.describe()}
    return SpecCase(spec, batches, meta)


@dataclass
class NestSpecRun:
    weights: dict[str, np.ndarray]  # per projection with plastic edges, edge order
    readout: np.ndarray  # [data steps, n_out]
    params: dict[str, list[dict[str, Any]]]  # per non-input population: each neuron's parameters as NEST holds them


def _read_params(nodes: Any, model: str) -> list[dict[str, Any]]:
    keys = _READ_BACK.get(model)
    if keys is None:
        raise SpecError(f"model {model!r}: no parameter list for the reference engine")
    values = nodes.get(list(keys))
    n = len(nodes)
    if n == 1:
        values = {k: [v] for k, v in values.items()}
    out = []
    for j in range(n):
        p = {}
        for k in keys:
            v = values[k][j]
            p[k] = list(v) if isinstance(v, list | tuple | np.ndarray) else v
        out.append(p)
    return out


def run_spec_nest(case: SpecCase, threads: int = 1) -> NestSpecRun:
    """Build the spec in a fresh kernel, run every batch in it (as the Trainer's block does) and read back weights,
    readouts and each neuron's parameters."""
    spec = case.spec
    step = spec.resolution
    nest = fresh_kernel(step, threads)
    built = wiring.build(nest, spec)
    params = {
        name: _read_params(built.nodes[name], pop.model)
        for name, pop in spec.populations.items()
        if pop.role != Role.INPUT
    }
    dev.set_generators(built.devices, case.batches, step)
    t = dev.lead_in_ms(step)
    comm = SerialCommunicator()
    readout = []
    nest.Prepare()
    nest.Run(t)
    for b in case.batches:
        nest.Run(b.steps * step)
        readout.append(dev.collect(built.devices, t, b.steps, step, comm).readout)
        t += b.steps * step
    nest.Cleanup()
    read = wiring.read_projections(built, nest, list(spec.plastic_projections()), ("weight",), comm)
    weights = {name: values["weight"] for name, values in read.items()}
    nest.ResetKernel()
    return NestSpecRun(weights, np.concatenate(readout), params)


def microcircuit_run(config: ExperimentConfig, iterations: int, threads: int = 1) -> tuple[SpecCase, NestSpecRun]:
    """The e-prop microcircuit (:mod:`nestgrad.networks.pd_eprop`) run in NEST through the one wiring function, and
    its spec with the static circuit drawn into edge lists (what NEST built: the same edges in the same order).
    Refused before NEST starts if its background is Poisson."""
    mc = config.section("network")
    if mc.background != "dc":
        raise SpecError(
            f"network.microcircuit.background = {mc.background!r}: the Poisson background is random and "
            "cannot be replayed by the reference engine; use background = 'dc' for a comparison"
        )
    case = case_from_config(config, iterations)
    run = run_spec_nest(case, threads)
    return dataclasses.replace(case, spec=case.spec.materialized()), run


def compare_run(case: SpecCase, nest_run: NestSpecRun, out_dir: str | pathlib.Path | None = None, threads: int = 1):
    """Replay ``case`` in the reference engine with the parameters NEST held and compare with ``nest_run``."""
    return _compare(case, nest_run, threads, out_dir)


def with_parameters(spec: NetworkSpec, params: dict[str, list[dict[str, Any]]]) -> NetworkSpec:
    """A copy of ``spec`` whose populations carry the given per-neuron parameters."""
    pops = {
        name: dataclasses.replace(pop, params=params[name], per_neuron={}) if name in params else pop
        for name, pop in spec.populations.items()
    }
    return dataclasses.replace(spec, populations=pops)


def check_one_setting_per_model(spec: NetworkSpec) -> None:
    """NEST keeps one optimizer setting per synapse model (its common properties): two plastic projections of one
    model with different learning rates would both learn at the rate set last. The reference engine applies each
    projection's own rate, so such a spec is refused (give the projections different models, e.g.
    eprop_synapse and eprop_event_synapse)."""
    seen: dict[str, tuple[str, Any]] = {}
    for name, proj in spec.projections.items():
        if proj.kind != SynapseKind.SPIKE or not proj.plastic_mask().any():
            continue
        eta = proj.learning_rate if proj.learning_rate is not None else spec.optimizer.get("eta")
        if proj.synapse_model in seen and seen[proj.synapse_model][1] != eta:
            other, other_eta = seen[proj.synapse_model]
            raise SpecError(
                f"projections {other!r} (eta {other_eta}) and {name!r} (eta {eta}) share the synapse model "
                f"{proj.synapse_model!r}, which has one optimizer setting in NEST; give them different models"
            )
        seen.setdefault(proj.synapse_model, (name, eta))


def compare_case(case: SpecCase, threads: int = 1, out_dir: str | pathlib.Path | None = None) -> dict[str, Any]:
    """Run ``case`` in NEST through the one wiring function and in the reference engine; compare."""
    check_supported(case.spec)
    check_one_setting_per_model(case.spec)
    return _compare(case, run_spec_nest(case, threads), threads, out_dir)


def _compare(case: SpecCase, nest_run: NestSpecRun, threads: int, out_dir: str | pathlib.Path | None) -> dict[str, Any]:
    spec = case.spec.materialized()
    data = case.data()
    ref = run_spec_online(with_parameters(spec, nest_run.params), data)
    result: dict[str, Any] = dict(case.meta) | {
        "iterations": data.iterations,
        "threads": threads,
        "optimizer": spec.optimizer,
        "populations": {k: [p.model, int(p.size)] for k, p in spec.populations.items()},
        "projections": {},
    }
    result["static_edges"] = {}
    for name, proj in spec.projections.items():
        mask = proj.plastic_mask()
        if proj.kind == SynapseKind.SPIKE and (~mask).any():
            steps = rp.delay_steps(np.asarray(proj.delays)[~mask], spec.resolution)
            result["static_edges"][name] = {"n_edges": int((~mask).sum()),
                                            "delay_steps": [int(steps.min()), int(steps.max())]}  # fmt: skip
        if proj.kind != SynapseKind.SPIKE or not mask.any():
            continue
        w0 = np.asarray(proj.weights, float)
        dn = (nest_run.weights[name] - w0)[mask]
        dr = (ref.weights[name] - w0)[mask]
        scale = float(np.abs(dr).max())
        if scale > 0:
            keep = np.abs(dr) >= NEGLIGIBLE * scale
            max_rel = float(np.abs(dn - dr).max() / scale)
            mean_rel = float(np.mean(np.abs(dn[keep] - dr[keep]) / np.abs(dr[keep])))
        else:
            max_rel = mean_rel = float("nan")
        static_moved = float(np.abs(nest_run.weights[name] - w0)[~mask].max()) if (~mask).any() else 0.0
        result["projections"][name] = {
            "n_edges": int(proj.size),
            "n_plastic": int(mask.sum()),
            "max_abs_update": scale,
            "max_rel_err": max_rel,
            "mean_rel_err": mean_rel,
            "static_max_abs_change": static_moved,
            # plastic edges that Dale's law holds at 0 (NEST's weights; they moved towards the other sign)
            "n_held_at_zero": int(np.sum((nest_run.weights[name][mask] == 0.0) & (w0[mask] != 0.0))),
        }
    T = data.iteration_steps
    sq = data.window[:, None] * (nest_run.readout - data.target) ** 2
    result["loss_nest"] = [float(0.5 * np.sum(sq[k * T : (k + 1) * T])) for k in range(data.iterations)]
    result["loss_reference"] = [float(x) for x in ref.losses]
    ln, lr = np.array(result["loss_nest"]), np.array(result["loss_reference"])
    result["loss_max_rel_err"] = float(np.max(np.abs(ln - lr) / np.maximum(np.abs(lr), 1e-300)))
    result["readout_max_abs_err"] = float(np.abs(nest_run.readout - ref.readout).max())
    result["spikes_reference"] = {k: int(v.sum()) for k, v in ref.spikes.items()}
    if out_dir is not None:
        write_result(out_dir, result)
    return result


def format_table(result: dict[str, Any]) -> str:
    pops = ", ".join(f"{k} {m} x{n}" for k, (m, n) in result["populations"].items())
    lines = [
        f"{result['architecture']} network ({pops}), task {result['task']}, {result['iterations']} iterations, "
        f"{result['threads']} thread(s)",
        f"{'projection':12s} {'edges':>8s} {'plastic':>8s} {'max|dW|':>10s} {'max_rel_err':>12s} {'mean_rel_err':>12s}",
    ]
    for p, r in result["projections"].items():
        lines.append(
            f"{p:12s} {r['n_edges']:8d} {r['n_plastic']:8d} {r['max_abs_update']:10.3e} {r['max_rel_err']:12.3e} "
            f"{r['mean_rel_err']:12.3e}"
        )
    if result.get("static_edges"):
        lines.append(
            "static edges (replayed, not compared): "
            + ", ".join(
                f"{k} {v['n_edges']} (delays {v['delay_steps'][0]}-{v['delay_steps'][1]} steps)"
                for k, v in result["static_edges"].items()
            )
        )
    lines.append(
        "loss per iteration (NEST | reference): "
        + ", ".join(f"{a:.6g} | {b:.6g}" for a, b in zip(result["loss_nest"], result["loss_reference"], strict=True))
    )
    lines.append(
        f"loss max relative difference {result['loss_max_rel_err']:.3e}; readout max abs difference "
        f"{result['readout_max_abs_err']:.3e}; spikes (reference) {result['spikes_reference']}"
    )
    return "\n".join(lines)

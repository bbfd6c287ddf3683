"""``nestgrad compare`` for the V1 column with EventProp (``architecture = "v1"``, ``gradient_algorithm =
"eventprop"``): the column of the configuration (:func:`nestgrad.networks.v1_eventprop.v1_eventprop_column`) run in
NEST (``eventprop_glif3_psc_ps``, :mod:`nestgrad.nest_engine.eventprop`) and in the EventProp reference engine
(:mod:`nestgrad.reference.eventprop`, pure NumPy), on the task's first batches.

Per EventProp projection (the column's LGN -> V1 and V1 -> V1 split by receptor port, and the readout):

* **gradient** of the first batch (mean over its trials): NEST's dL/dw (forward and backward pass in one
  ``Simulate``) against the reference's; ``gradient_max_rel_err`` = max over the edges of |g_nest - g_ref| /
  max(|g_ref|, 1e-3 max |g_ref|), the max taken over the projection: the rule of
  tests/test_eventprop_nest_gradients.py per synapse, with the floor for tiny gradients set by the projection's own
  largest (stricter than the network's largest where a projection's gradients are small);
* **training**: the weights after ``iterations`` batches, one optimizer step per batch inside NEST's synapses,
  against the reference's gradient of each batch and the same optimizer in NumPy with the same bounds
  (:func:`nestgrad.reference.eventprop.optimizer.train`; Dale's law as per-projection bounds); ``max_rel_err`` = max
  |dW_nest - dW_ref| / max(|dW_ref|, 1e-3 max |dW_ref|) over the edges (dW: change over all batches).

Losses per batch are compared too. The rule: every ``gradient_max_rel_err`` and ``max_rel_err`` <= 1e-9.
"""

from __future__ import annotations

import pathlib
import time
from typing import Any

import numpy as np

from nestgrad.comparison.compare import write_result
from nestgrad.config import ExperimentConfig
from nestgrad.nest_engine import eventprop as engine
from nestgrad.networks.registry import make_learner
from nestgrad.networks.v1_eventprop import optimizer_settings
from nestgrad.reference.eventprop import compile_network, evaluate
from nestgrad.reference.eventprop.optimizer import train

TINY = 1e-3  # gradients (updates) below this fraction of their projection's largest are held to 1e-9 of it


def per_synapse_rel_err(nest: np.ndarray, ref: np.ndarray) -> float:
    """max |nest - ref| / max(|ref|, TINY max |ref|); 0 for an empty or all-zero projection that NEST matches."""
    if ref.size == 0:
        return 0.0
    scale = float(np.abs(ref).max())
    diff = np.abs(nest - ref)
    if scale == 0.0:
        return 0.0 if not diff.any() else float("inf")
    return float(np.max(diff / np.maximum(np.abs(ref), TINY * scale)))


def compare_v1_eventprop(
    config: ExperimentConfig, iterations: int, threads: int = 1, out_dir: str | pathlib.Path | None = None
) -> dict[str, Any]:
    t_start = time.perf_counter()
    learner, task = make_learner(config)  # the V1 EventProp learner: its column with the initial weights
    batches = [task.batch(k) for k in range(iterations)]
    window, col = learner.window, learner.column
    trial_sets = [learner.trials(b) for b in batches]  # (ConfigError for a batch whose window is not the task's)
    cnet = compile_network(col.network)
    names = list(cnet.proj_slices)
    res_ep = col.resolution

    # gradient of the first batch
    t0 = time.perf_counter()
    ref0 = evaluate(cnet, trial_sets[0], col.loss)
    t_ref = time.perf_counter() - t0
    t0 = time.perf_counter()
    ng = engine.run_gradients(cnet, trial_sets[0], col.loss, resolution=res_ep, threads=threads, record=False)
    t_nest = time.perf_counter() - t0

    # training: every batch in one kernel, the optimizer in the synapses; the reference's step per batch in NumPy
    settings = optimizer_settings(config.optimizer, config.task.batch_size)
    all_trials = [t for ts in trial_sets for t in ts]
    t0 = time.perf_counter()
    rates = learner.learning_rates()
    built = engine.build(cnet, all_trials, resolution=res_ep, threads=threads, loss=col.loss, optimizer=settings,
                         bounds=col.bounds, learning_rates=rates, record=False)  # fmt: skip
    built.nest.Simulate(built.layout.sim_time)
    built.nest.Simulate(built.layout.period)  # the period in which every synapse applies the last batch's step
    w_nest_flat = engine.read_edges(built, ("weight",))["weight"]
    trial_loss_nest, _ = engine.trial_losses(built, all_trials)
    t_nest += time.perf_counter() - t0
    n = config.task.batch_size
    losses_nest = [float(trial_loss_nest[k * n : (k + 1) * n].mean()) for k in range(iterations)]

    t0 = time.perf_counter()
    ref = train(cnet, all_trials, col.loss, settings, bounds=col.bounds, learning_rates=rates)
    t_ref += time.perf_counter() - t0

    result: dict[str, Any] = {
        "architecture": "v1",
        "gradient_algorithm": "eventprop",
        "task": config.task.name,
        "iterations": iterations,
        "trials_per_iteration": n,
        "threads": threads,
        "network": learner.net.describe(),
        "eventprop": {
            "resolution_ms": res_ep,
            "trial_ms": window.end,
            "window_ms": [window.start, window.end],
            "readout": col.settings.readout,
            "loss": col.settings.loss,
        },
        "optimizer": config.optimizer.type.value,
        "projections": {},
    }
    for name in names:
        sl = cnet.proj_slices[name]
        g_ref, g_nest = ref0.grad_weights[name], ng.grad_weights[name]
        d_ref, d_nest = ref.weights[name] - cnet.w[sl], w_nest_flat[sl] - cnet.w[sl]
        result["projections"][name] = {
            "n_edges": int(sl.stop - sl.start),
            "receptor": col.network.projection(name).receptor,
            "max_abs_gradient": float(np.abs(g_ref).max(initial=0.0)),
            "nonzero_gradients": int(np.count_nonzero(g_ref)),
            "gradient_max_rel_err": per_synapse_rel_err(g_nest, g_ref),
            "learning_rate": rates.get(name, settings["eta"]),
            "max_abs_update": float(np.abs(d_ref).max(initial=0.0)),
            "clipped_steps": ref.clipped[name],
            "max_rel_err": per_synapse_rel_err(d_nest, d_ref),
        }
    result["loss_nest"] = losses_nest
    result["loss_reference"] = ref.losses
    first_nest = float(ng.losses.mean())
    ln, lr = np.array([first_nest, *losses_nest]), np.array([ref.losses[0], *ref.losses])
    result["loss_max_rel_err"] = float(np.max(np.abs(ln - lr) / np.maximum(np.abs(lr), 1e-300)))
    result["v1_spikes_reference"] = [int(len(rec.spike_t)) for rec in ref0.records]
    result["seconds"] = {"nest": t_nest, "reference": t_ref, "total": time.perf_counter() - t_start}
    if out_dir is not None:
        write_result(out_dir, result)
    return result


def format_table(result: dict[str, Any]) -> str:
    ep = result["eventprop"]
    lines = [
        f"{result['network']}",
        f"EventProp: task {result['task']}, {result['iterations']} iterations of {result['trials_per_iteration']} "
        f"trials of {ep['trial_ms']:g} ms (loss window {ep['window_ms'][0]:g}-{ep['window_ms'][1]:g} ms, readout "
        f"{ep['readout']}, cross-entropy '{ep['loss']}'), NEST grid {ep['resolution_ms']:g} ms, {result['optimizer']}, "
        f"{result['threads']} thread(s)",
        f"{'projection':12s} {'port':>4s} {'edges':>7s} {'max|g|':>10s} {'grad rel err':>13s} {'max|dW|':>10s} "
        f"{'dW rel err':>11s} {'clipped':>8s}",
    ]
    for p, r in result["projections"].items():
        port = "-" if r["receptor"] is None else str(r["receptor"])
        lines.append(
            f"{p:12s} {port:>4s} {r['n_edges']:7d} {r['max_abs_gradient']:10.3e} {r['gradient_max_rel_err']:13.3e} "
            f"{r['max_abs_update']:10.3e} {r['max_rel_err']:11.3e} {r['clipped_steps']:8d}"
        )
    lines.append(
        "loss per iteration (NEST | reference): "
        + ", ".join(f"{a:.9g} | {b:.9g}" for a, b in zip(result["loss_nest"], result["loss_reference"], strict=True))
    )
    s = result["seconds"]
    lines.append(
        f"loss max relative difference {result['loss_max_rel_err']:.3e}; V1 spikes per trial of the first batch "
        f"(reference) {result['v1_spikes_reference']}; seconds: NEST {s['nest']:.1f}, reference {s['reference']:.1f}, "
        f"total {s['total']:.1f}"
    )
    return "\n".join(lines)

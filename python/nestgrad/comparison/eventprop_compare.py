"""``nestgrad compare`` for the ``eventprop`` architecture: EventProp in NEST against the EventProp reference engine
(:mod:`nestgrad.reference.eventprop`, pure NumPy) on the network and the first training batches of a configuration.

Two checks, per projection:

* **gradient** of the first batch: NEST's dL/dw (``nest_engine.eventprop.run_gradients``, forward and backward pass
  in one ``Simulate``) against ``reference.eventprop.evaluate(...).grad_weights``; ``max_rel_err`` = max |g_nest -
  g_ref| / max |g_ref| over the projection's edges;
* **training**: the weights after ``iterations`` batches trained inside NEST by the learner the Trainer uses
  (optimizer steps in the synapses) against the reference's gradient of each batch followed by the same optimizer
  in NumPy (gradient descent, or Adam with NEST's bias correction), clipped to the same bounds
  (:func:`nestgrad.reference.eventprop.optimizer.train`; ``clipped_steps`` counts the (edge, step) pairs clipped);
  ``max_rel_err`` = max |dW_nest - dW_ref| /
  max |dW_ref| (dW: weight change over all batches), ``mean_rel_err`` over edges with |dW_ref| >= 1e-6 max.

Losses per batch are compared too. The rule the tests hold: every ``max_rel_err`` <= 1e-9.
"""

from __future__ import annotations

import math
import pathlib
from typing import Any

import numpy as np

from nestgrad.comparison.compare import NEGLIGIBLE, write_result
from nestgrad.config import ExperimentConfig
from nestgrad.nest_engine import eventprop as engine
from nestgrad.nest_engine import fresh_kernel
from nestgrad.networks.registry import make_learner
from nestgrad.reference.eventprop import evaluate
from nestgrad.reference.eventprop.optimizer import train


def _rel(nest: np.ndarray, ref: np.ndarray) -> tuple[float, float, float]:
    scale = float(np.abs(ref).max()) if ref.size else 0.0
    if scale == 0.0:  # nothing to compare against (e.g. a frozen projection): 0 if NEST did not move either
        err = 0.0 if not np.any(nest) else math.inf
        return scale, err, err
    keep = np.abs(ref) >= NEGLIGIBLE * scale
    mean = float(np.mean(np.abs(nest[keep] - ref[keep]) / np.abs(ref[keep])))
    return scale, float(np.abs(nest - ref).max() / scale), mean


def compare_eventprop(
    config: ExperimentConfig, iterations: int, threads: int = 1, out_dir: str | pathlib.Path | None = None
) -> dict[str, Any]:
    learner, task = make_learner(config)
    res_ms = config.task.resolution
    nest = fresh_kernel(res_ms, threads, config.training.rng_seed)
    learner.validate(nest)
    w0 = learner.initial_weights(config.network.seed)
    batches = [task.batch(k) for k in range(iterations)]
    trials = [learner.trials(b) for b in batches]  # as the network takes them (e.g. with the bias spike)
    T = learner.trial_duration
    loss = learner.loss()

    # gradient of the first batch
    ng = engine.run_gradients(learner.network(w0, T), trials[0], loss, resolution=res_ms, threads=threads,
                              record=False)  # fmt: skip
    ref0 = evaluate(learner.network(w0, T), trials[0], loss)

    # training: the learner the Trainer uses, every batch in one kernel
    nest = fresh_kernel(res_ms, threads, config.training.rng_seed)
    learner.build(nest, w0, record_neurons=0)
    losses_nest = [learner.metrics(b, rec)["loss"] for b, rec, _ in learner.simulate(nest, batches, res_ms)]
    w_nest = learner.read_weights(nest)

    # the reference: the same optimizer in NumPy with the same bounds (network.params' bounds, Dale's law)
    ref = train(learner.network(w0, T), [t for ts in trials for t in ts], loss,
                learner.optimizer_settings(config.task.batch_size), bounds=learner.bounds(), signs=learner.signs(),
                learning_rates=learner.learning_rates())  # fmt: skip

    result: dict[str, Any] = {
        "architecture": "eventprop",
        "task": config.task.name,
        "iterations": iterations,
        "trials_per_iteration": config.task.batch_size,
        "threads": threads,
        "network": learner.describe(),
        "optimizer": config.optimizer.type.value,
        "projections": {},
    }
    for name in w0:
        g_scale, g_max, g_mean = _rel(ng.grad_weights[name], ref0.grad_weights[name])
        d_scale, d_max, d_mean = _rel(w_nest[name] - w0[name], ref.weights[name] - w0[name])
        result["projections"][name] = {
            "n_edges": int(w0[name].size),
            "max_abs_gradient": g_scale,
            "gradient_max_rel_err": g_max,
            "gradient_mean_rel_err": g_mean,
            "max_abs_update": d_scale,
            "clipped_steps": ref.clipped[name],
            "max_rel_err": d_max,
            "mean_rel_err": d_mean,
        }
    result["loss_nest"] = losses_nest
    result["loss_reference"] = ref.losses
    ln, lr = np.array(losses_nest), np.array(ref.losses)
    result["loss_max_rel_err"] = float(np.max(np.abs(ln - lr) / np.maximum(np.abs(lr), 1e-300)))
    result["hidden_spikes_reference"] = int(sum(len(rec.spike_t) for rec in ref0.records))
    if out_dir is not None:
        write_result(out_dir, result)
    return result


def format_table(result: dict[str, Any]) -> str:
    lines = [
        f"{result['network']}; task {result['task']}, {result['iterations']} iterations of "
        f"{result['trials_per_iteration']} trials, {result['optimizer']}, {result['threads']} thread(s)",
        f"{'projection':10s} {'edges':>7s} {'max|g|':>10s} {'grad max_rel':>13s} {'max|dW|':>10s} {'max_rel_err':>12s} "
        f"{'mean_rel_err':>12s}",
    ]
    for p, r in result["projections"].items():
        lines.append(
            f"{p:10s} {r['n_edges']:7d} {r['max_abs_gradient']:10.3e} {r['gradient_max_rel_err']:13.3e} "
            f"{r['max_abs_update']:10.3e} {r['max_rel_err']:12.3e} {r['mean_rel_err']:12.3e}"
        )
    lines.append(
        "loss per iteration (NEST | reference): "
        + ", ".join(f"{a:.6g} | {b:.6g}" for a, b in zip(result["loss_nest"], result["loss_reference"], strict=True))
    )
    lines.append(
        f"loss max relative difference {result['loss_max_rel_err']:.3e}; hidden spikes of the first batch "
        f"(reference) {result['hidden_spikes_reference']}"
    )
    return "\n".join(lines)

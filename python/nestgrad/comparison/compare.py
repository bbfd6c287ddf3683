"""``nestgrad compare``: run one network in NEST and in the reference engine and measure how far apart they are.

Per projection (in_rec, rec_rec, rec_out) it reports

* ``max_rel_err``: max |dW_nest - dW_eprop| / max |dW_eprop|, where dW are the weight changes over all iterations
  (NEST online vs the reference's replay of NEST's online e-prop);
* ``mean_rel_err``: mean of |dW_nest - dW_eprop| / |dW_eprop| over synapses with |dW_eprop| >= 1e-6 max |dW_eprop|;
* ``cosine_bptt`` and ``norm_ratio_bptt``: cosine similarity and norm ratio |g_eprop| / |g_bptt| of the e-prop
  gradient and the BPTT gradient of the same loss, at the initial weights over the first iteration (BPTT with
  e-prop's conventions; ``cosine_bptt_full`` with everything differentiated);

and per iteration ``loss_nest`` and ``loss_reference`` (1/2 sum of squared readout errors in the learning window).
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import numpy as np

from nestgrad.reference.bptt import bptt_gradient
from nestgrad.reference.online import run_online
from nestgrad.reference.spec import PROJECTIONS, NetworkSpec

NEGLIGIBLE = 1e-6  # relative to the largest update of a projection


def iteration_losses(readout: np.ndarray, spec: NetworkSpec) -> list[float]:
    T = spec.iteration_steps
    err = spec.window[:, None] * (readout - spec.target)
    return [float(0.5 * np.sum(err[k * T : (k + 1) * T] ** 2)) for k in range(spec.iterations)]


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float(np.sum(a * b) / (na * nb)) if na > 0 and nb > 0 else float("nan")


def first_iteration(spec: NetworkSpec) -> NetworkSpec:
    T = spec.iteration_steps
    return spec.replace(input_spikes=spec.input_spikes[:T], target=spec.target[:T], window=spec.window[:T])


def gradient_agreement(spec: NetworkSpec) -> dict[str, dict[str, float]]:
    """e-prop vs BPTT at the initial weights over the first iteration (learning rate zero)."""
    from nestgrad.reference.online_bsshslm import BSSHSLM_MODELS

    first = first_iteration(spec)
    if spec.rec_model in BSSHSLM_MODELS:
        from nestgrad.reference.bptt_bsshslm import bptt_gradient_bsshslm, eprop_gradient_bsshslm

        g_eprop = eprop_gradient_bsshslm(first).gradients
        g_bptt, _ = bptt_gradient_bsshslm(first, convention="eprop")
        g_full, _ = bptt_gradient_bsshslm(first, convention="full")
    else:
        first = first.replace(optimizer=dict(spec.optimizer, type="gradient_descent", eta=0.0))
        g_eprop = run_online(first).gradients
        g_bptt, _ = bptt_gradient(first, convention="eprop")
        g_full, _ = bptt_gradient(first, convention="full")
    out = {}
    for p in PROJECTIONS:
        nb = np.linalg.norm(g_bptt[p])
        out[p] = {
            "cosine_bptt": _cos(g_eprop[p], g_bptt[p]),
            "norm_ratio_bptt": float(np.linalg.norm(g_eprop[p]) / nb) if nb > 0 else float("nan"),
            "cosine_bptt_full": _cos(g_eprop[p], g_full[p]),
        }
    return out


def compare(
    spec: NetworkSpec, out_dir: str | pathlib.Path | None = None, threads: int = 1, plots: bool = True
) -> dict[str, Any]:
    from nestgrad.comparison.nest_runs import run_nest
    from nestgrad.reference.online_bsshslm import BSSHSLM_MODELS

    spec.validate()
    if spec.rec_model in BSSHSLM_MODELS:
        return _compare_bsshslm(spec, out_dir, threads)
    nest_run = run_nest(spec, threads=threads)
    ref = run_online(spec)
    result: dict[str, Any] = {
        "model": spec.rec_model,
        "task": spec.meta.get("task"),
        "iterations": spec.iterations,
        "optimizer": spec.optimizer,
        "projections": {},
        "event_window_summaries_used": nest_run.event_window_summaries_used,
        "event_block_sums_used": nest_run.event_block_sums_used,
    }
    agreement = gradient_agreement(spec)
    for p in PROJECTIONS:
        dn = (nest_run.weights[p] - spec.weights[p])[spec.masks[p]]
        dr = (ref.weights[p] - spec.weights[p])[spec.masks[p]]
        scale = np.abs(dr).max() if dr.size else 0.0
        if scale > 0:
            keep = np.abs(dr) >= NEGLIGIBLE * scale
            max_rel = float(np.abs(dn - dr).max() / scale)
            mean_rel = float(np.mean(np.abs(dn[keep] - dr[keep]) / np.abs(dr[keep])))
        else:
            max_rel = mean_rel = float("nan") if dr.size else 0.0
        result["projections"][p] = {
            "n_synapses": int(dr.size),
            "max_abs_update": float(scale),
            "max_rel_err": max_rel,
            "mean_rel_err": mean_rel,
        } | agreement[p]
    result["loss_nest"] = iteration_losses(nest_run.readout, spec)
    result["loss_reference"] = iteration_losses(ref.readout, spec)
    ln, lr = np.array(result["loss_nest"]), np.array(result["loss_reference"])
    result["loss_max_rel_err"] = float(np.max(np.abs(ln - lr) / np.maximum(np.abs(lr), 1e-300)))
    result["readout_max_abs_err"] = float(np.abs(nest_run.readout - ref.readout).max())
    if out_dir is not None:
        out = write_result(out_dir, result)
        if plots:
            _plot(spec, nest_run.weights, ref.weights, result, out)
    return result


def _compare_bsshslm(spec: NetworkSpec, out_dir: str | pathlib.Path | None, threads: int) -> dict[str, Any]:
    """The original-formulation models: NEST vs the reference replay, and e-prop vs BPTT."""
    from nestgrad.comparison.bsshslm_nest import compare_bsshslm

    result = compare_bsshslm(spec, threads=threads)
    result["iterations"] = spec.iterations
    result["optimizer"] = spec.optimizer
    agreement = gradient_agreement(spec)
    for p, r in result["projections"].items():
        r.update(agreement[p])
    if out_dir is not None:
        write_result(out_dir, result)
    return result


def write_result(out_dir: str | pathlib.Path, result: dict[str, Any]) -> pathlib.Path:
    """Write ``result`` as ``compare.json`` into ``out_dir`` (created); returns the folder."""
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(json.dumps(result, indent=2))
    return out


def format_table(result: dict[str, Any]) -> str:
    lines = [
        f"model {result['model']}, task {result['task']}, {result['iterations']} iterations",
        f"{'projection':12s} {'synapses':>9s} {'max|dW|':>10s} {'max_rel_err':>12s} {'mean_rel_err':>12s} "
        f"{'cos(BPTT)':>10s} {'|e|/|BPTT|':>10s} {'cos(full)':>10s}",
    ]
    for p, r in result["projections"].items():
        lines.append(
            f"{p:12s} {r['n_synapses']:9d} {r['max_abs_update']:10.3e} {r['max_rel_err']:12.3e} "
            f"{r['mean_rel_err']:12.3e} {r['cosine_bptt']:10.4f} {r['norm_ratio_bptt']:10.4f} "
            f"{r['cosine_bptt_full']:10.4f}"
        )
    lines.append(
        "loss per iteration (NEST | reference): "
        + ", ".join(f"{a:.6g} | {b:.6g}" for a, b in zip(result["loss_nest"], result["loss_reference"], strict=True))
    )
    lines.append(
        f"loss max relative difference {result['loss_max_rel_err']:.3e}; readout max abs difference "
        f"{result['readout_max_abs_err']:.3e}"
    )
    if "note" in result:
        lines.append(result["note"])
    return "\n".join(lines)


def _plot(spec: NetworkSpec, w_nest: dict, w_ref: dict, result: dict, out: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
    for ax, p in zip(axes, PROJECTIONS, strict=True):
        dn = (w_nest[p] - spec.weights[p])[spec.masks[p]]
        dr = (w_ref[p] - spec.weights[p])[spec.masks[p]]
        ax.scatter(dr, dn, s=3, color="#2854c5")
        if dr.size:
            lim = np.abs(np.concatenate([dr, dn])).max() * 1.05 or 1.0
            ax.plot([-lim, lim], [-lim, lim], color="#e04b40", lw=0.8)
        ax.set_title(f"{p}: max rel err {result['projections'][p]['max_rel_err']:.1e}", fontsize=9)
        ax.set_xlabel("dW reference e-prop")
        ax.ticklabel_format(style="sci", scilimits=(-2, 2))
        ax.set_ylabel("dW NEST")
    fig.suptitle(f"{spec.rec_model}: weight updates, NEST vs reference")
    fig.tight_layout()
    fig.savefig(out / "compare_updates.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3.4))
    x = np.arange(len(PROJECTIONS))
    ax.bar(x - 0.2, [result["projections"][p]["cosine_bptt"] for p in PROJECTIONS], 0.4, label="BPTT (e-prop conv.)")
    ax.bar(x + 0.2, [result["projections"][p]["cosine_bptt_full"] for p in PROJECTIONS], 0.4, label="BPTT (full)")
    ax.set_xticks(x, PROJECTIONS)
    ax.set_ylabel("cosine similarity with e-prop")
    ax.set_ylim(min(0.0, ax.get_ylim()[0]), 1.05)
    ax.legend(fontsize=8)
    ax.set_title("e-prop vs BPTT gradient, first iteration")
    fig.tight_layout()
    fig.savefig(out / "compare_bptt.png", dpi=110)
    plt.close(fig)

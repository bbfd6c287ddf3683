"""Plots written by the Trainer: loss (and accuracy) per iteration, spike raster, readout vs target."""

from __future__ import annotations

import pathlib
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_learning_curve(history: list[dict[str, Any]], path: pathlib.Path) -> None:
    it = [h["iteration"] for h in history]
    has_acc = any("accuracy" in h for h in history)
    fig, axes = plt.subplots(2 if has_acc else 1, 1, figsize=(6, 5 if has_acc else 3.2), sharex=True, squeeze=False)
    ax = axes[0, 0]
    ax.plot(it, [h["loss"] for h in history], color="#2854c5")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.set_title("Learning curve")
    if has_acc:
        axes[1, 0].plot(it, [h.get("accuracy", np.nan) for h in history], color="#e04b40")
        axes[1, 0].set_ylabel("accuracy")
        axes[1, 0].set_ylim(0, 1.05)
    axes[-1, 0].set_xlabel("iteration")
    _save(fig, path)


def plot_raster(
    spike_steps: np.ndarray, senders: np.ndarray, steps: int, resolution: float, path: pathlib.Path, title: str
) -> None:
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.scatter(spike_steps * resolution, senders, s=1.5, color="black", marker="|")
    ax.set_xlim(0, steps * resolution)
    ax.set_xlabel("time in iteration (ms)")
    ax.set_ylabel("recurrent neuron")
    ax.set_title(title)
    _save(fig, path)


def plot_readout(
    readout: np.ndarray, target: np.ndarray, window: np.ndarray, resolution: float, path: pathlib.Path, title: str
) -> None:
    t = np.arange(readout.shape[0]) * resolution
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for k in range(readout.shape[1]):
        (line,) = ax.plot(t, readout[:, k], lw=1.2, label=f"readout {k}")
        ax.plot(
            t, np.where(window > 0, target[:, k], np.nan), lw=1.2, ls="--", color=line.get_color(), label=f"target {k}"
        )
    ax.set_xlabel("time in iteration (ms)")
    ax.set_ylabel("signal")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=7, ncol=2)
    _save(fig, path)


def _save(fig: Any, path: pathlib.Path) -> None:
    for side in ("top", "right"):
        for ax in fig.axes:
            ax.spines[side].set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_forward_backward_raster(
    times: np.ndarray, neurons: np.ndarray, T: float, path: pathlib.Path, title: str
) -> None:
    """EventProp: the hidden spikes of one trial in forward time, and the same spikes as the backward pass replays
    them in mirrored time s = T - t (where the adjoint jumps)."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5), sharey=True)
    for ax, x, xlabel, what in (
        (axes[0], times, "t (ms)", "forward pass"),
        (axes[1], T - times, "s = T - t (ms)", "backward pass (adjoint jumps)"),
    ):
        ax.scatter(x, neurons, s=3, c="k" if what == "forward pass" else "tab:red", marker="|")
        ax.set_xlim(0, T)
        ax.set_xlabel(xlabel)
        ax.set_title(what, fontsize=9)
    axes[0].set_ylabel("hidden neuron")
    fig.suptitle(title, fontsize=10)
    _save(fig, path)


def plot_decision_regions(
    xs: np.ndarray,
    ys: np.ndarray,
    predicted: np.ndarray,
    points: np.ndarray,
    labels: np.ndarray,
    path: pathlib.Path,
    title: str,
    class_names: tuple[str, ...] = ("yin", "yang", "dot"),
) -> None:
    """Yin-Yang: the class a network predicts over a grid (``predicted`` [len(ys), len(xs)], -1 where it gives no
    answer, e.g. no output spike, NaN outside the data's circle) as coloured regions, and the points coloured by
    their true label on top."""
    colours = ("#2854c5", "#e04b40", "#f2b134")
    fig, ax = plt.subplots(figsize=(5.2, 5.0))
    pred = np.asarray(predicted, float)
    n = len(class_names)
    rgba = np.full(pred.shape + (4,), np.nan)
    palette = matplotlib.colors.to_rgba_array(list(colours[:n]) + ["#9a9a9a"])
    for k in range(n + 1):
        sel = pred == (k if k < n else -1)
        rgba[sel] = palette[k] * (0.35, 0.35, 0.35, 1.0) + (0.65, 0.65, 0.65, 0.0)  # pale region colours
    rgba[~np.isfinite(pred)] = (1.0, 1.0, 1.0, 0.0)
    dx = (xs[1] - xs[0]) / 2 if len(xs) > 1 else 0.5
    dy = (ys[1] - ys[0]) / 2 if len(ys) > 1 else 0.5
    ax.imshow(rgba, origin="lower", extent=(xs[0] - dx, xs[-1] + dx, ys[0] - dy, ys[-1] + dy), interpolation="nearest")
    for k in range(n):
        sel = np.asarray(labels) == k
        ax.scatter(points[sel, 0], points[sel, 1], s=7, color=colours[k], edgecolor="k", linewidth=0.2,
                   label=class_names[k])  # fmt: skip
    if np.any(pred == -1):
        ax.scatter([], [], s=30, marker="s", color="#d7d7d7", label="no output spike")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper right", fontsize=7, framealpha=0.8)
    _save(fig, path)

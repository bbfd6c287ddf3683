"""Yin-Yang first-spike-time runs (issue 21, item 4): train ``configs/yinyang_ttfs.toml`` with several seeds one after
another, evaluate each on the 1,000 test points and draw its decision regions (docs/first_spike_time.md).

For each seed the run folder ``<out>/seed<k>`` is an ordinary ``nestgrad train`` folder (checkpoint, metrics.csv,
loss.png); the script adds ``evaluation.json`` (``nestgrad evaluate``, all test points), ``decision_regions.png``
(predicted class over a grid of (x, y) inside the circle, grey where no output spikes, the test points coloured by
their label on top), ``run.json`` (the seed's result) and ``yinyang_ttfs.json`` in ``<out>`` (per seed: test
accuracy, epochs, seconds per epoch; mean and standard deviation), rebuilt from every ``seed*/run.json`` in
``<out>``, so that several series may run side by side into one folder (one seed each). A folder with a
checkpoint is resumed, so an interrupted series continues.

    python scaling_runs/yinyang_ttfs.py --seeds 1 2 3 4 5 --out out/yinyang_ttfs
    python scaling_runs/yinyang_ttfs.py --seeds 1 --epochs 20 --out out/yinyang_ttfs   # shorter
    python scaling_runs/yinyang_ttfs.py --seeds 1 --figure-only --out out/yinyang_ttfs  # figure of a trained run
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys
import time

import numpy as np

from nestgrad import plotting
from nestgrad.config import ExperimentConfig
from nestgrad.reference.eventprop import Trial
from nestgrad.tasks import yinyang
from nestgrad.training.checkpoint import load_checkpoint
from nestgrad.training.trainer import Trainer

CONFIG = pathlib.Path(__file__).resolve().parents[1] / "python/nestgrad/configs/yinyang_ttfs.toml"


def seed_config(
    config: ExperimentConfig,
    seed: int,
    iterations: int | None,
    every: int | None = None,
    eta: float | None = None,
    average_last: int | None = None,
) -> ExperimentConfig:
    network = dataclasses.replace(config.network, seed=seed)
    training = config.training if iterations is None else dataclasses.replace(config.training, iterations=iterations)
    if every is not None:
        training = dataclasses.replace(training, checkpoint_every=every)
    if average_last is not None:
        training = dataclasses.replace(training, average_weights_last=average_last)
    optimizer = config.optimizer if eta is None else dataclasses.replace(config.optimizer, eta=eta)
    return dataclasses.replace(config, network=network, training=training, optimizer=optimizer)


def decision_regions(trainer: Trainer, out: pathlib.Path, side: int = 80) -> float:
    """Predict the class over a side x side grid (inside the big circle) and on the test points with the trained
    weights (NEST forward pass, learning off); draw the figure; return the test accuracy of that forward pass."""
    net, task_cfg = trainer.network, trainer.config.section("task")
    state = load_checkpoint(trainer.checkpoint_path, trainer.config)
    xs = ys = (np.arange(side) + 0.5) / side
    gx, gy = np.meshgrid(xs, ys)
    inside = np.hypot(gx - 0.5, gy - 0.5) <= 0.5
    u = np.column_stack([gx[inside], gy[inside], 1 - gx[inside], 1 - gy[inside]])
    test = yinyang.split("test")

    def trials(values: np.ndarray) -> list[Trial]:
        t = task_cfg.t_early + values * (task_cfg.t_late - task_cfg.t_early)
        return [Trial({"in": [[float(v)] for v in row]}) for row in t]

    resolution, threads = trainer.config.task.resolution, trainer.config.training.threads
    weights = state.trained_weights  # the mean weights with training.average_weights_last, else the last ones
    t_grid = net.first_spike_times(weights, trials(u), resolution, threads)
    t_test = net.first_spike_times(weights, trials(test.inputs), resolution, threads)

    def predict(t: np.ndarray) -> np.ndarray:
        return np.where(np.isfinite(t).any(axis=1), np.argmin(t, axis=1), -1)

    pred = np.full(gx.shape, np.nan)
    pred[inside] = predict(t_grid)
    accuracy = float(np.mean(predict(t_test) == test.labels))
    which = (
        f"mean weights of iterations {state.averaged_after + 1}-{state.iteration}"
        if state.averaged_count
        else f"iteration {state.iteration}"
    )
    title = (
        f"Yin-Yang, first-spike-time network (seed {trainer.config.network.seed}, {which})\n"
        f"test accuracy {100 * accuracy:.1f} %; regions: predicted class, dots: test points by label"
    )
    plotting.plot_decision_regions(xs, ys, pred, test.points, test.labels, out / "decision_regions.png", title)
    return accuracy


def summarise(out: pathlib.Path) -> dict:
    """Every seed's ``run.json`` in ``out`` (whichever process wrote it), their mean and standard deviation."""
    runs = {}
    for path in sorted(out.glob("seed*/run.json"), key=lambda p: int(p.parent.name[4:] or 0)):
        run = json.loads(path.read_text())
        if "test_accuracy" in run:
            runs[path.parent.name[4:]] = run
    acc = [r["test_accuracy"] for r in runs.values()]
    summary = {"runs": runs, "mean_test_accuracy": float(np.mean(acc)), "std_test_accuracy": float(np.std(acc))}
    final = [r["test_accuracy_final_weights"] for r in runs.values() if "test_accuracy_final_weights" in r]
    if final and len(final) == len(acc):
        summary["mean_test_accuracy_final_weights"] = float(np.mean(final))
        summary["std_test_accuracy_final_weights"] = float(np.std(final))
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(CONFIG))
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    ap.add_argument("--epochs", type=int, default=None, help="training epochs (default: the config's iterations)")
    ap.add_argument("--out", default="out/yinyang_ttfs")
    ap.add_argument("--checkpoint-every", type=int, default=None, help="override training.checkpoint_every")
    ap.add_argument("--eta", type=float, default=None, help="override optimizer.eta")
    ap.add_argument("--average-last", type=int, default=None, help="override training.average_weights_last")
    ap.add_argument("--figure-only", action="store_true", help="evaluate and draw trained runs, no training")
    args = ap.parse_args(argv)
    base = ExperimentConfig.from_toml(args.config)
    per_epoch = yinyang.SPLIT_SIZES["train"] / base.task.batch_size  # iterations per epoch (33.3 for 150)
    iterations = None if args.epochs is None else round(args.epochs * per_epoch)
    out = pathlib.Path(args.out)
    summary_path = out / "yinyang_ttfs.json"
    for seed in args.seeds:
        config = seed_config(base, seed, iterations, args.checkpoint_every, args.eta, args.average_last)
        folder = out / f"seed{seed}"
        trainer = Trainer(config, folder)
        run_path = folder / "run.json"
        run = json.loads(run_path.read_text()) if run_path.exists() else {}
        if not args.figure_only:
            resume = trainer.checkpoint_path.exists()
            start = load_checkpoint(trainer.checkpoint_path, config).iteration if resume else 0
            t0 = time.perf_counter()
            history = trainer.run(resume=resume)
            seconds = time.perf_counter() - t0
            trained = len(history) - start  # iterations run by this call
            train_seconds = sum(h["seconds"] for h in history[start:])
            run = {
                "iterations": len(history),
                "epochs": len(history) / per_epoch,
                "wall_seconds_this_call": seconds,
                "simulate_seconds_per_epoch": train_seconds / max(trained, 1) * per_epoch,
                "wall_seconds_per_epoch_this_call": seconds / max(trained, 1) * per_epoch,
            }
        if args.figure_only and "iterations" not in run:  # a run trained elsewhere (or stopped): from its checkpoint
            history = load_checkpoint(trainer.checkpoint_path, config).history
            run = {
                "iterations": len(history),
                "epochs": len(history) / per_epoch,
                "simulate_seconds_per_epoch": sum(h["seconds"] for h in history) / max(len(history), 1) * per_epoch,
            }
        n_eval = yinyang.SPLIT_SIZES["test"] // base.task.batch_size
        result = trainer.evaluate(n_eval)
        run["test_accuracy"] = result["accuracy"]
        run["test_loss"] = result["loss"]
        run["test_points"] = result["trials"]
        run["weights"] = result["weights"]
        if config.training.average_weights_last:  # the last weights too, to show what averaging changed
            run["test_accuracy_final_weights"] = trainer.evaluate(n_eval, final_weights=True)["accuracy"]
        run["figure_test_accuracy"] = decision_regions(trainer, folder)
        run_path.write_text(json.dumps(run, indent=2))
        summary = summarise(out)
        summary["config"] = str(args.config)
        summary["overrides"] = {
            "checkpoint_every": args.checkpoint_every,
            "eta": args.eta,
            "average_weights_last": args.average_last,
        }
        summary_path.write_text(json.dumps(summary, indent=2))
        print(f"seed {seed}: test accuracy {100 * run['test_accuracy']:.2f} % ({run.get('epochs', '?')} epochs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

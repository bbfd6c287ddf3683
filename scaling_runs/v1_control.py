"""Examples to criterion: the data-based V1 column against its random LIF control (issue 22, item 4).

Chen et al. (2022) report that the Billeh column needs fewer training examples to reach a criterion than a control
network of the same size without its laminar, cell-class structure. This script trains them with the same recipe
for several seeds: ``configs/v1_orientation.toml`` (e-prop, 5,000 neurons, orientation discrimination at a fixed
phase), its control ``configs/v1_orientation_control.toml``, which differs only in ``network.v1.structure =
"random_lif"`` (:mod:`nestgrad.networks.v1_control`) and in the calibration that gives its untrained pools the
column's rate; the two mixed cases that vary one factor at a time, ``configs/v1_orientation_random_wiring.toml``
(``"random_wiring"``: the column's neurons with the control's wiring) and ``configs/v1_orientation_column_lif.toml``
(``"column_lif"``: the column's wiring with the control's neurons); ``configs/v1_orientation_random_one_fit.toml``
(``"random_one_fit"``: random wiring, one GLIF3 fit per E/I group) and ``v1_orientation_random_one_fit_no_asc.toml``
(the same with the after-spike currents off). It counts the training trials each run needs until its accuracy,
averaged over the last ``--window`` iterations, first reaches ``--criterion``. A seed sets ``network.seed``
(initial weights, trials) and ``network.v1.seed`` (the column drawn, and with it its controls).

Each run is an ordinary ``nestgrad train`` folder ``<out>/<name>_seed<k>`` (``--name``, default the config's
structure; resumed if it has a checkpoint) plus ``run.json`` (training accuracies, examples to criterion, accuracy
on new trials with learning off, trained and untrained, the Trainer's seconds per iteration, wall-clock time of the
training call);
``<out>/v1_control.json`` summarises every run.json in ``<out>`` (examples to each of ``--criteria``) and
``<out>/v1_control.png`` draws the running accuracies. Runs of one call go one after the other (each with the
config's threads). Any V1 e-prop configuration runs the same way: the table of Chen et al.'s five tasks
(docs/v1_model.md) is ``--configs python/nestgrad/configs/v1_<task>.toml --name <task> --seeds 1``, one ``--out``
folder per task. With ``v1_multi.toml`` (five tasks at once), run.json also holds each task's accuracy on its own
readouts, in training and on new trials.

    python scaling_runs/v1_control.py --out out/v1_control                        # 6 networks x 3 seeds
    python scaling_runs/v1_control.py --configs python/nestgrad/configs/v1_orientation_control_low_drive.toml \
        --name random_lif_low_drive --out out/v1_control                         # the control's second calibration
    python scaling_runs/v1_control.py --configs python/nestgrad/configs/v1_orientation_control.toml \
        --seeds 2 --iterations 20 --out /tmp/c                                    # one shorter run
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import pathlib
import sys
import time
from collections.abc import Sequence

import numpy as np

from nestgrad.config import ExperimentConfig
from nestgrad.training.trainer import Trainer

CONFIGS = [
    str(pathlib.Path(__file__).resolve().parents[1] / f"python/nestgrad/configs/{name}.toml")
    for name in (
        "v1_orientation",
        "v1_orientation_control",
        "v1_orientation_random_wiring",
        "v1_orientation_column_lif",
        "v1_orientation_random_one_fit",
        "v1_orientation_random_one_fit_no_asc",
    )
]


def run_config(base: ExperimentConfig, seed: int, iterations: int | None) -> ExperimentConfig:
    v1 = dict(base.network.v1) | {"seed": seed}  # the [network.v1] table
    network = dataclasses.replace(base.network, seed=seed, v1=v1)
    training = base.training if iterations is None else dataclasses.replace(base.training, iterations=iterations)
    if iterations is not None and training.checkpoint_every > iterations:
        training = dataclasses.replace(training, checkpoint_every=iterations)
    return dataclasses.replace(base, network=network, training=training)


def running_accuracy(accuracy: Sequence[float], window: int) -> np.ndarray:
    """Mean training accuracy over the last ``window`` iterations, defined from iteration ``window`` on."""
    acc = np.asarray(accuracy, float)
    if acc.size < window:
        return np.array([])
    return np.convolve(acc, np.ones(window) / window, mode="valid")


def examples_to_criterion(accuracy: Sequence[float], window: int, criterion: float, batch_size: int) -> int | None:
    """Training trials seen when the running accuracy first reaches ``criterion`` (None: not within the run)."""
    above = np.flatnonzero(running_accuracy(accuracy, window) >= criterion)
    return None if above.size == 0 else int((above[0] + window) * batch_size)


def load_runs(out: pathlib.Path) -> dict[str, dict[str, dict]]:
    """Every ``<structure>_seed<k>/run.json`` in ``out``, by structure and seed."""
    runs: dict[str, dict[str, dict]] = {}
    for path in sorted(out.glob("*_seed*/run.json")):
        structure, seed = path.parent.name.rsplit("_seed", 1)
        runs.setdefault(structure, {})[seed] = json.loads(path.read_text())
    return runs


def summarise(out: pathlib.Path, window: int, batch_size: int, criteria: list[float]) -> dict:
    """Every ``run.json`` in ``out``; per structure and criterion the examples to criterion of each seed (None: not
    reached within the run) and the accuracies on new trials, trained and untrained."""
    runs = load_runs(out)
    summary: dict = {"window_iterations": window, "batch_size": batch_size, "runs": runs, "per_structure": {}}
    for structure, by_seed in runs.items():
        reached = {
            str(c): {
                seed: examples_to_criterion(r["training_accuracy"], window, c, batch_size)
                for seed, r in by_seed.items()
            }
            for c in criteria
        }
        test = [r["test_accuracy"] for r in by_seed.values()]
        summary["per_structure"][structure] = {
            "seeds": sorted(by_seed, key=int),
            "examples_to_criterion": reached,
            "test_accuracy_mean": float(np.mean(test)),
            "test_accuracy_sd": float(np.std(test, ddof=1)) if len(test) > 1 else 0.0,
            "initial_test_accuracy_mean": float(
                np.mean([r.get("initial_test_accuracy", np.nan) for r in by_seed.values()])
            ),
        }
    return summary


def figure(out: pathlib.Path, window: int, criterion: float, batch_size: int, task: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {
        "billeh": "#2854c5",
        "random_lif": "#e04b40",
        "random_wiring": "#e8a33d",
        "column_lif": "#7a4fb0",
        "random_one_fit": "#3a9e5c",
        "random_one_fit_no_asc": "#1b1b1b",
        "random_lif_low_drive": "#8c8c8c",
    }
    labels = {
        "billeh": "Billeh column (GLIF3, data-based wiring)",
        "random_wiring": "column's GLIF3 neurons, random wiring",
        "column_lif": "control's LIF neurons, column's wiring",
        "random_one_fit": "one GLIF3 fit per E/I group, random wiring",
        "random_one_fit_no_asc": "one GLIF3 fit per E/I group, after-spike currents off",
        "random_lif": "control (LIF, random wiring)",
        "random_lif_low_drive": "control, second calibration (drive 0.85)",
    }
    fig, ax = plt.subplots(figsize=(7, 5))
    runs = load_runs(out)
    order = [name for name in labels if name in runs] + sorted(set(runs) - set(labels))  # the legend's order
    for structure in order:
        by_seed = runs[structure]
        for seed, run in enumerate(by_seed.values()):
            acc = running_accuracy(run["training_accuracy"], window)
            trials = (np.arange(acc.size) + window) * batch_size
            label = labels.get(structure, structure) if seed == 0 else "_nolegend_"  # one entry per structure
            ax.plot(trials, acc, color=colours.get(structure, "k"), lw=1.2, label=label)
    ax.axhline(criterion, color="0.5", ls="--", lw=0.8)
    ax.axhline(0.5, color="0.8", lw=0.8)
    ax.set_xlabel("training trials")
    ax.set_ylabel(f"accuracy, mean of the last {window * batch_size} trials")
    ax.set_ylim(0.3, 1.0)
    ax.set_title(f"{task}: data-based column vs random control (each line a seed)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize="small", frameon=False)
    fig.tight_layout()
    fig.savefig(out / "v1_control.png", dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="+", default=CONFIGS, help="V1 configurations (default: column, controls)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--iterations", type=int, default=None, help="training iterations (default: the config's)")
    ap.add_argument("--window", type=int, default=25, help="iterations averaged for the criterion")
    ap.add_argument("--criterion", type=float, default=0.8, help="the criterion of the figure and progress line")
    ap.add_argument("--criteria", type=float, nargs="+", default=[0.7, 0.75, 0.8, 0.85], help="in the summary")
    ap.add_argument("--eval-batches", type=int, default=20, help="batches of new trials, learning off")
    ap.add_argument("--out", default="out/v1_control")
    ap.add_argument(
        "--name", default=None, help="run folders <name>_seed<k> (one config only; default: its network.v1.structure)"
    )
    args = ap.parse_args(argv)
    if args.name is not None and (len(args.configs) != 1 or not args.name.isidentifier()):
        ap.error(f"--name {args.name!r}: needs exactly one config and a name of letters, digits and '_'")
    bases = [ExperimentConfig.from_toml(path) for path in args.configs]
    out = pathlib.Path(args.out)
    batch = bases[0].task.batch_size
    for seed in args.seeds:
        for path, base in zip(args.configs, bases, strict=True):
            structure = base.section("network").structure
            name = args.name or structure
            config = run_config(base, seed, args.iterations)
            folder = out / f"{name}_seed{seed}"
            trainer = Trainer(config, folder)
            run_path = folder / "run.json"
            before = json.loads(run_path.read_text()) if run_path.exists() else {}
            t0 = time.perf_counter()
            history = trainer.run(resume=trainer.checkpoint_path.exists())
            seconds = time.perf_counter() - t0
            # a folder trained and evaluated before (same iterations and trials) is not evaluated again
            accuracy = [h["accuracy"] for h in history]
            done = before.get("iterations") == len(history) and before.get("test_trials") == args.eval_batches * batch
            run = {
                "name": name,
                "structure": structure,
                "config": path,
                "seed": seed,
                "network": trainer.network.describe(),
                "iterations": len(history),
                "examples_to_criterion": examples_to_criterion(accuracy, args.window, args.criterion, batch),
                "test_trials": args.eval_batches * batch,
                "training_accuracy": accuracy,
                "rate_hz_first_last": [history[0]["rate_hz"], history[-1]["rate_hz"]],
                "seconds_per_iteration": float(np.mean([h["seconds"] for h in history])),  # the Trainer's timing
                "wall_seconds_training_call": before["wall_seconds_training_call"] if done else seconds,
            }
            for key, initial in (("test_accuracy", False), ("initial_test_accuracy", True)):  # initial: untrained
                if done and key in before:
                    run[key] = before[key]
                    if f"{key}_per_task" in before:
                        run[f"{key}_per_task"] = before[f"{key}_per_task"]
                    continue
                result = trainer.evaluate(args.eval_batches, initial=initial)
                run[key] = result["accuracy"]
                if "accuracy_per_task" in result:
                    run[f"{key}_per_task"] = result["accuracy_per_task"]
            # several tasks at once (v1_multi): each task's accuracy on its own readouts, per iteration; the tasks are
            # those the evaluation scored (the batches' TaskReadouts), not guessed from the metrics' names
            tasks = list(run.get("test_accuracy_per_task", {}))
            if tasks:
                # (NaN where a resumed run's earlier history has no per-task metric)
                run["training_accuracy_per_task"] = {t: [h.get(f"accuracy_{t}", math.nan) for h in history]
                                                     for t in tasks}  # fmt: skip
            run_path.write_text(json.dumps(run, indent=2))
            reached = run["examples_to_criterion"]
            print(
                f"{name} seed {seed}: criterion {args.criterion} after "
                f"{reached if reached is not None else f'> {len(history) * batch}'} trials; "
                f"new trials {run['test_accuracy']:.3f} (untrained {run['initial_test_accuracy']:.3f}); "
                f"{seconds:.0f} s",
                flush=True,
            )
            for task, per in run.get("test_accuracy_per_task", {}).items():
                untrained = run["initial_test_accuracy_per_task"][task]["accuracy"]
                print(f"  {task}: new trials {per['accuracy']:.3f} (untrained {untrained:.3f}), {per['trials']} trials")
            summary = summarise(out, args.window, batch, sorted(set(args.criteria) | {args.criterion}))
            (out / "v1_control.json").write_text(json.dumps(summary, indent=2))
            figure(out, args.window, args.criterion, batch, bases[0].task.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())

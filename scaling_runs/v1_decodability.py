"""What a readout can find in the untrained V1 column's activity, per task and time window (issue 22, item 3).

The e-prop recipe of the V1 tasks (docs/v1_model.md) makes only the readout pools' incoming synapses plastic: the
rest of the column keeps its initial weights, so the pools can learn what the column's activity already carries in
and shortly before the response window, and nothing else. This script measures that: it runs the untrained column
of a configuration (static synapses, the column running on through the trials as in training, a fresh kernel every
``--chunk`` batches), counts every V1 neuron's spikes per trial in a few windows, and fits a linear classifier
(ridge on the most label-related neurons) to each window's counts, scored by stratified k-fold cross-validation
(scikit-learn; number of neurons and regularisation chosen inside each training fold), for all V1 neurons and for
the LGN's spikes (the task's input; ``--sources`` adds the untrained readout pools alone). A window whose counts
decode the label at chance tells that a learner which does not change the rest of the column is unlikely to solve
the task from that window (the decoder is linear and sees a few hundred trials: a lower bound); one that decodes
well says the information is there.

Windows (ms, from the trial's start): ``response`` (the task's response window), ``pre_response`` (the 50 ms before
it) and ``stimulus`` (the task's stimulus: the grating or digit; image or grating B for the change tasks; the
cues for the evidence task); the change tasks add ``first_stimulus`` (A). For the image-change task the script also
decodes which image A was (``<source>/<window>/image_a``): is A still in the column when B comes? ``--v1 key=value``
sets a ``network.v1`` value (e.g. ``lgn_weight_scale=0.6``) to ask the same of another calibration.

    python scaling_runs/v1_decodability.py --out out/v1_decodability                 # the five tasks' configs
    python scaling_runs/v1_decodability.py --configs python/nestgrad/configs/v1_digits.toml --trials 64 \
        --n-neurons 2000 --out /tmp/d                                                  # a quick look

Writes ``<out>/v1_decodability.json`` (per config and window: cross-validated accuracy, its standard deviation
over folds, chance, number of trials and features) and prints a table.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import pathlib
import sys
import time
import tomllib
from collections.abc import Sequence
from typing import Any

import numpy as np

from nestgrad.config import ExperimentConfig
from nestgrad.errors import ConfigError
from nestgrad.tasks.v1 import MultiTask

CONFIG_DIR = pathlib.Path(__file__).resolve().parents[1] / "python/nestgrad/configs"
CONFIGS = [
    str(CONFIG_DIR / f"{name}.toml")
    for name in (
        "v1_orientation",  # the variant e-prop learns: fixed phase, window inside the grating
        "v1_orientation_chen",  # Chen's: random phase, +-2 deg, window after the grating
        "v1_digits",
        "v1_image_change",
        "v1_grating_change",
        "v1_evidence",
    )
]


def _span(mask: np.ndarray) -> tuple[int, int]:
    on = np.flatnonzero(mask)
    return int(on[0]), int(on[-1]) + 1


def task_windows(task: Any) -> dict[str, tuple[int, int]]:
    """[start, stop) in time steps within a trial, from the task's own timing: its response window, the 50 ms before
    it and the stimulus that carries the answer (the change tasks' B, and A as ``first_stimulus``; the evidence
    task's cues)."""
    start, stop = _span(task.window > 0)
    windows = {"response": (start, stop), "pre_response": (max(start - round(50.0 / task.resolution), 0), start)}
    if task.name == "v1_evidence":
        windows["stimulus"] = (0, task.config.n_cues * task.period)
    elif task.name in ("v1_image_change", "v1_grating_change"):
        windows["stimulus"] = _span(task.frame_of_step == 2)
        windows["first_stimulus"] = _span(task.frame_of_step == 1)
    else:  # one frame: the grating or the digit
        windows["stimulus"] = _span(task.frame_of_step == 1)
    return windows


def majority_fraction(y: np.ndarray) -> float:
    """Chance: the fraction of the most common label."""
    return float(np.bincount(y).max() / y.size)


def load_config(path: str, n_neurons: int | None, v1_values: Sequence[str] = ()) -> tuple[str, ExperimentConfig]:
    """A configuration and its label; ``n_neurons`` scales the column (pools of 15 below 5,000 neurons) and
    ``v1_values`` ("key=value", the value in TOML) set ``network.v1`` entries (checked as the config's own)."""
    config = ExperimentConfig.from_toml(path)
    v1 = dict(config.network.v1)
    if n_neurons is not None:
        v1 |= {"n_neurons": n_neurons, "pool_size": 30 if n_neurons >= 5000 else 15}
    for item in v1_values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ConfigError(f"--v1 {item!r}: expected key=value, e.g. lgn_weight_scale=0.6")
        try:
            v1[key.strip()] = tomllib.loads(f"x = {value}")["x"]
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"--v1 {item!r}: the value is not TOML ({err})") from None
    label = pathlib.Path(path).stem + "".join(f",{item}" for item in v1_values)
    return label, dataclasses.replace(config, network=dataclasses.replace(config.network, v1=v1))


def spike_counts(
    config: ExperimentConfig, net: Any, task: Any, n_batches: int, chunk: int, threads: int
) -> dict[str, Any]:
    """Per trial: every V1 neuron's and LGN unit's spike counts in each window of the task, and the labels."""
    from nestgrad.nest_engine import fresh_kernel

    weights = net.initial_weights(config.network.seed)
    windows = task_windows(task)
    v1_counts: dict[str, list[np.ndarray]] = {}
    lgn_counts: dict[str, list[np.ndarray]] = {}
    labels: list[np.ndarray] = []
    image_a: list[np.ndarray] = []
    seconds = 0.0
    for start in range(0, n_batches, chunk):
        # new trials (iterations from 2,000,000: neither training's nor `evaluate`'s, which start at 1,000,000),
        # chunked to bound the generators' memory
        iterations = [2_000_000 + i for i in range(start, min(start + chunk, n_batches))]
        batches = [task.batch(i) for i in iterations]
        if config.task.name == "v1_image_change":
            image_a += [np.array([s["image_a"] for s in b.stimuli], np.int64) for b in batches]
        nest = fresh_kernel(config.task.resolution, threads)
        net.build(nest, weights, record_neurons=-1, plastic=False)
        t0 = time.perf_counter()
        for batch, rec, _ in net.simulate(nest, batches, config.task.resolution):
            ts = batch.trial_steps
            trial = rec.spike_steps // ts
            step_in_trial = rec.spike_steps % ts
            lgn_steps, lgn_units = np.nonzero(batch.input_spikes)
            for key, (a, b) in windows.items():
                inside = (step_in_trial >= a) & (step_in_trial < b)
                counts = np.zeros((batch.n_trials, net.layout.cls.size))
                np.add.at(counts, (trial[inside], rec.spike_senders[inside]), 1.0)
                v1_counts.setdefault(key, []).append(counts)
                lin = (lgn_steps % ts >= a) & (lgn_steps % ts < b)
                lcounts = np.zeros((batch.n_trials, batch.input_spikes.shape[1]))
                np.add.at(lcounts, (lgn_steps[lin] // ts, lgn_units[lin]), 1.0)
                lgn_counts.setdefault(key, []).append(lcounts)
            labels.append(np.asarray(batch.labels))
        seconds += time.perf_counter() - t0
    return {
        "windows": windows,
        "v1": {k: np.concatenate(v) for k, v in v1_counts.items()},
        "lgn": {k: np.concatenate(v) for k, v in lgn_counts.items()},
        "labels": np.concatenate(labels),
        "image_a": np.concatenate(image_a) if image_a else None,  # the image-change task's first image per trial
        "pools": [np.asarray(p) for p in net.pools],
        "simulate_s": seconds,
    }


def decode(x: np.ndarray, y: np.ndarray, folds: int, seed: int) -> tuple[float, float]:
    """Stratified k-fold accuracy (mean, std over folds) of a linear classifier: the features most related to the
    label (ANOVA F), standardised, into a ridge classifier (one-vs-rest for several classes). The number of
    features and the regularisation are chosen on each training fold by an inner cross-validation, so the score is
    of trials the choice has not seen. With a few hundred trials and thousands of neurons this is a lower bound on
    what the counts carry (a decoder of infinite data could do better), and the same bound for every window."""
    from sklearn.feature_selection import SelectKBest, f_classif
    from sklearn.linear_model import RidgeClassifierCV
    from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    keep = x.std(axis=0) > 0  # neurons silent (or constant) in every trial carry nothing
    if not keep.any():
        return majority_fraction(y), 0.0
    x = x[:, keep]
    ks = sorted({k for k in (10, 50, 200, 1000) if k < x.shape[1]} | {x.shape[1]})
    model = Pipeline(
        [
            ("select", SelectKBest(f_classif)),
            ("scale", StandardScaler()),
            ("ridge", RidgeClassifierCV(alphas=np.logspace(-1, 5, 13))),
        ]
    )
    inner = StratifiedKFold(3, shuffle=True, random_state=seed + 1)
    search = GridSearchCV(model, {"select__k": ks}, cv=inner)
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    with np.errstate(divide="ignore", invalid="ignore"):  # F of a feature constant within a training fold
        scores = cross_val_score(search, x, y, cv=cv)
    return float(scores.mean()), float(scores.std())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="+", default=CONFIGS, help="V1 e-prop configurations of single tasks")
    ap.add_argument("--trials", type=int, default=320, help="trials per config (a multiple of the batch size)")
    ap.add_argument("--chunk", type=int, default=8, help="batches per NEST kernel")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--n-neurons", type=int, default=None, help="column size (default: the config's)")
    ap.add_argument("--threads", type=int, default=None, help="default: the config's training.threads")
    ap.add_argument(
        "--v1", action="append", default=[], metavar="KEY=VALUE", help="set a network.v1 value (TOML), repeatable"
    )
    ap.add_argument(
        "--sources", nargs="+", choices=("v1", "pools", "lgn"), default=["v1", "lgn"], help="whose counts to decode"
    )
    ap.add_argument("--out", default="out/v1_decodability")
    args = ap.parse_args(argv)
    out = pathlib.Path(args.out)
    try:  # every config checked before a run
        configs = [load_config(spec, args.n_neurons, args.v1) for spec in args.configs]
    except ConfigError as err:
        ap.error(str(err))
    for label, config in configs:
        if config.task.name not in MultiTask.TASK_NAMES:
            ap.error(f"{label}: task.name = {config.task.name!r} is not one of Chen et al.'s single tasks")
        if str(config.network.gradient_algorithm) == "eventprop":  # its column runs each trial from rest
            ap.error(f"{label}: network.gradient_algorithm = 'eventprop'; this script runs the e-prop column")
        if args.trials < config.task.batch_size or args.trials % config.task.batch_size:
            ap.error(f"--trials {args.trials}: a positive multiple of {label}'s batch size {config.task.batch_size}")
    from nestgrad.networks.registry import make_learner

    learners = [make_learner(config) for _, config in configs]  # layouts drawn, sizes checked, before any run
    out.mkdir(parents=True, exist_ok=True)
    path = out / "v1_decodability.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    for (label, config), (net, task) in zip(configs, learners, strict=True):
        threads = args.threads or config.training.threads
        data = spike_counts(config, net, task, args.trials // config.task.batch_size, args.chunk, threads)
        y = data["labels"]
        chance = majority_fraction(y)
        pool_neurons = np.concatenate(data["pools"])
        row: dict[str, Any] = {"task": config.task.name, "trials": int(y.size), "chance": chance,
                               "n_neurons": int(data["v1"]["response"].shape[1]), "simulate_s": data["simulate_s"],
                               "windows_ms": data["windows"], "decoding": {}}  # fmt: skip
        # the label; for the image-change task also which image A was (is A still in the column when B comes?)
        targets = {"": y} if data["image_a"] is None else {"": y, "/image_a": data["image_a"]}
        if data["image_a"] is not None:
            row["chance_image_a"] = majority_fraction(data["image_a"])
        for key in data["windows"]:
            features = {"v1": data["v1"][key], "pools": data["v1"][key][:, pool_neurons], "lgn": data["lgn"][key]}
            for (suffix, target), source in itertools.product(targets.items(), args.sources):
                x = features[source]
                mean, std = decode(x, target, args.folds, config.network.seed)
                row["decoding"][f"{source}/{key}{suffix}"] = {
                    "accuracy": mean,
                    "fold_std": std,
                    "features": int(x.shape[1]),
                    "mean_count": float(x.mean()),
                }
                print(f"{label:24s} {source:5s} {key + suffix:22s} {mean:.3f} +- {std:.3f}", flush=True)
        results[label] = row
        path.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

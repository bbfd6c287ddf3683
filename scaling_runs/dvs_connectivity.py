"""Dense vs sparse vs Deep R e-prop on the DVS-style task (issue 24, item 4; docs/deep_rewiring.md).

Five cases of ``configs/dvs_glyphs_eprop.toml`` (100 ALIF neurons, 512 input channels, 6 readouts):

* ``dense``: all input -> recurrent and recurrent -> recurrent pairs connected;
* ``rec10_fixed`` / ``rec10_deepr``: 10 % of the recurrent and 5 % of the input pairs, fixed or with Deep R;
* ``rec1_fixed`` / ``rec1_deepr``: 1 % of the recurrent and 5 % of the input pairs, fixed or with Deep R.

All cases share everything else: the same iterations, ``optimizer.sign_constrained = true`` and
``training.checkpoint_every = --every`` (every case restarts from rest equally often; Deep R rewires at those block
ends, ``every`` = ``checkpoint_every``). Each case x seed is trained by ``nestgrad train`` in its own subprocess
(peak memory = that process's ``ru_maxrss``, read with ``os.wait4``; its CPU time too) and evaluated on held-out
test trials with learning off by ``nestgrad evaluate --batches B`` (another subprocess). A run's record goes to
``<out>/<case>/seed<k>/result.json``; a case/seed with a record is skipped, so an interrupted series continues.
The summary (JSON, Markdown table, figure of accuracy vs connectivity) is rebuilt from all records at the end.

    nice -n 5 python scaling_runs/dvs_connectivity.py --out out/dvs_connectivity             # the table
    python scaling_runs/dvs_connectivity.py --out /tmp/dvs_tiny --iterations 2 --every 1 --batches 1   # a smoke run
    python scaling_runs/dvs_connectivity.py --out out/dvs_connectivity --timing --timing-iterations 5 --repeats 3
    python scaling_runs/dvs_connectivity.py --out out/dvs_connectivity --summary-only   # table + figure from records

``--timing`` measures time per iteration side by side: short training runs (``--timing-iterations``) of every case,
interleaved case by case and repeated ``--repeats`` times, one subprocess each; per case it keeps the best (smallest)
of the repeats, so that another job's load on the machine inflates it as little as possible.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import pathlib
import subprocess
import sys
import time
import tomllib
from typing import Any

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
CONFIG = ROOT / "python/nestgrad/configs/dvs_glyphs_eprop.toml"


@dataclasses.dataclass(frozen=True)
class Case:
    """One connectivity: fractions of the input -> recurrent and recurrent -> recurrent pairs; Deep R on or off."""

    name: str
    label: str
    in_fraction: float
    rec_fraction: float
    rewiring: bool


CASES: tuple[Case, ...] = (
    Case("dense", "dense", 1.0, 1.0, False),
    Case("rec10_fixed", "10 % rec, 5 % in, fixed", 0.05, 0.10, False),
    Case("rec10_deepr", "10 % rec, 5 % in, Deep R", 0.05, 0.10, True),
    Case("rec1_fixed", "1 % rec, 5 % in, fixed", 0.05, 0.01, False),
    Case("rec1_deepr", "1 % rec, 5 % in, Deep R", 0.05, 0.01, True),
)
CASE_BY_NAME = {c.name: c for c in CASES}


@dataclasses.dataclass(frozen=True)
class DeepR:
    """Deep R settings shared by the rewiring cases (docs/deep_rewiring.md explains the choice)."""

    alpha: float = 0.0
    temperature: float = 0.0
    new_weight: float = 1e-6


# --- configuration -------------------------------------------------------------------------------------------------


def case_config(
    base: dict[str, Any], case: Case, seed: int, iterations: int, every: int, deep_r: DeepR
) -> dict[str, Any]:
    """The configuration dictionary of one case and seed, derived from the shipped DVS configuration ``base``."""
    cfg = json.loads(json.dumps(base))  # a deep copy of plain TOML data
    net = cfg.setdefault("network", {})
    net["seed"] = seed
    if case.in_fraction < 1.0 or case.rec_fraction < 1.0:
        rw: dict[str, Any] = {"in_fraction": case.in_fraction, "rec_fraction": case.rec_fraction}
        rw["enabled"] = case.rewiring
        if case.rewiring:
            rw |= {"every": every, "alpha": deep_r.alpha, "temperature": deep_r.temperature}
            rw["new_weight"] = deep_r.new_weight
        net["rewiring"] = rw
    else:
        net.pop("rewiring", None)
    cfg.setdefault("optimizer", {})["sign_constrained"] = True
    training = cfg.setdefault("training", {})
    training["iterations"] = iterations
    training["checkpoint_every"] = every
    return cfg


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError(f"TOML has no literal for {v!r}")
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise ValueError(f"cannot write {type(v).__name__} {v!r} as TOML")


def to_toml(data: dict[str, Any], prefix: str = "") -> str:
    """TOML text of nested dictionaries of numbers, strings, booleans and lists (what the configurations hold)."""
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    scalars = {k: v for k, v in data.items() if k not in tables}
    lines = [f"{k} = {_toml_value(v)}" for k, v in scalars.items()]
    for k, v in tables.items():
        name = f"{prefix}.{k}" if prefix else k
        lines += ["", f"[{name}]", to_toml(v, name)]
    return "\n".join(lines).strip("\n") + "\n"


# --- one run ---------------------------------------------------------------------------------------------------------


def run_dir(out: pathlib.Path, case: Case, seed: int) -> pathlib.Path:
    return out / case.name / f"seed{seed}"


def is_done(out: pathlib.Path, case: Case, seed: int) -> bool:
    """A case/seed is finished when its record exists (written last, after the evaluation)."""
    return (run_dir(out, case, seed) / "result.json").is_file()


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    src = str(ROOT / "python")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


# A small launcher between this process and the measured one: Linux carries the resident size a process had when it
# forked into the child's ru_maxrss (through exec), so a child forked from a large parent (e.g. a test run with NEST
# loaded) would report the parent's size. The launcher is a fresh, small interpreter that forks the measured command
# and passes on its CPU time and ru_maxrss (kB) through a file, and its exit code.
_LAUNCHER = (
    "import json, os, sys\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    os.execvp(sys.argv[2], sys.argv[2:])\n"
    "_, status, u = os.wait4(pid, 0)\n"
    "open(sys.argv[1], 'w').write(json.dumps([u.ru_utime + u.ru_stime, u.ru_maxrss]))\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def run_measured(cmd: list[str], log: pathlib.Path) -> dict[str, float]:
    """Run ``cmd`` as a child process (output to ``log``); its wall time, CPU time (user + system, s) and peak
    resident memory (``ru_maxrss``, bytes) from ``os.wait4`` in a small launcher, i.e. of that process alone."""
    usage_file = log.with_name(log.name + ".rusage.json")
    usage_file.unlink(missing_ok=True)
    t0 = time.perf_counter()
    with log.open("w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER, str(usage_file), *cmd], stdout=fh, stderr=subprocess.STDOUT,
            env=_child_env(),
        )  # fmt: skip
        proc.wait()
    wall = time.perf_counter() - t0
    if proc.returncode != 0 or not usage_file.exists():
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{' '.join(cmd)} failed with exit code {proc.returncode}; end of {log}:\n{tail}")
    cpu_s, maxrss_kb = json.loads(usage_file.read_text())
    return {"wall_s": wall, "cpu_s": float(cpu_s), "maxrss_bytes": int(maxrss_kb) * 1024}


def synapse_counts(checkpoint: pathlib.Path) -> dict[str, int]:
    """Connections of each plastic projection in a trained checkpoint: the ones of its mask (``w_mask_<name>``, sparse
    projections) or all pairs of its weight matrix (dense; autapses excluded for ``rec_rec``)."""
    import numpy as np

    out = {}
    with np.load(checkpoint) as z:
        for name in ("in_rec", "rec_rec", "rec_out"):
            if f"w_mask_{name}" in z.files:
                out[name] = int(np.count_nonzero(z[f"w_mask_{name}"]))
            else:
                rows, cols = z[f"w_{name}"].shape
                out[name] = rows * cols - (min(rows, cols) if name == "rec_rec" else 0)
    return out


def simulate_seconds(checkpoint: pathlib.Path) -> list[float]:
    """The Trainer's per-iteration seconds (``history[*].seconds``: the NEST simulation of one batch, wall clock)
    saved in the checkpoint."""
    import numpy as np

    with np.load(checkpoint) as z:
        meta = json.loads(str(z["meta"]))
    return [float(h["seconds"]) for h in meta["history"]]


def _median(values: list[float]) -> float:
    v = sorted(values)
    n = len(v)
    return float("nan") if n == 0 else (v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2]))


def train_and_evaluate(
    out: pathlib.Path, base: dict[str, Any], case: Case, seed: int, iterations: int, every: int, batches: int,
    deep_r: DeepR,
) -> dict[str, Any]:  # fmt: skip
    """Train one case/seed in a subprocess, evaluate it in another, write and return its record."""
    folder = run_dir(out, case, seed)
    folder.mkdir(parents=True, exist_ok=True)
    cfg_path = folder / "config.toml"
    cfg_path.write_text(to_toml(case_config(base, case, seed, iterations, every, deep_r)))
    py = sys.executable
    train = run_measured(
        [py, "-m", "nestgrad", "train", str(cfg_path), "--out", str(folder), "--overwrite"], folder / "train.log"
    )
    ev = run_measured(
        [py, "-m", "nestgrad", "evaluate", str(cfg_path), "--out", str(folder), "--batches", str(batches)],
        folder / "evaluate.log",
    )
    evaluation = json.loads((folder / "evaluation.json").read_text())
    acc, trials = evaluation["accuracy"], evaluation["trials"]
    record = {
        "case": case.name,
        "seed": seed,
        "in_fraction": case.in_fraction,
        "rec_fraction": case.rec_fraction,
        "rewiring": case.rewiring,
        "iterations": iterations,
        "checkpoint_every": every,
        "test_accuracy": acc,
        "test_loss": evaluation["loss"],
        "test_trials": trials,
        # binomial standard error of one run's test accuracy over its test trials
        "test_accuracy_se": math.sqrt(acc * (1 - acc) / trials) if trials else float("nan"),
        "synapses": synapse_counts(folder / "checkpoint.npz"),
        "train_wall_s": train["wall_s"],
        "train_cpu_s": train["cpu_s"],
        "wall_s_per_iteration": train["wall_s"] / iterations,
        "cpu_s_per_iteration": train["cpu_s"] / iterations,
        "simulate_s_per_iteration_median": _median(simulate_seconds(folder / "checkpoint.npz")),
        "train_peak_rss_bytes": train["maxrss_bytes"],
        "evaluate_wall_s": ev["wall_s"],
        "evaluate_peak_rss_bytes": ev["maxrss_bytes"],
        "finished_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    (folder / "result.json").write_text(json.dumps(record, indent=2))
    return record


# --- summary ---------------------------------------------------------------------------------------------------------


def _mean_sd(values: list[float]) -> tuple[float, float]:
    n = len(values)
    if n == 0:
        return float("nan"), float("nan")
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else float("nan")
    return mean, sd


SUMMARY_KEYS = (
    "test_accuracy",
    "test_accuracy_se",
    "wall_s_per_iteration",
    "cpu_s_per_iteration",
    "simulate_s_per_iteration_median",
    "train_peak_rss_bytes",
)


def load_records(out: pathlib.Path) -> list[dict[str, Any]]:
    """All finished records under ``out``, in case order, then seed order."""
    records = []
    for case in CASES:
        for path in sorted((out / case.name).glob("seed*/result.json"), key=lambda p: int(p.parent.name[4:])):
            records.append(json.loads(path.read_text()))
    return records


def summarize(records: list[dict[str, Any]], timing: dict[str, Any] | None = None) -> dict[str, Any]:
    """Per case: seeds, mean and sample standard deviation over seeds of the ``SUMMARY_KEYS``, the synapse counts;
    the speed ratio dense / case of the mean CPU time per iteration (and of the best-of timing, if given)."""
    cases: dict[str, Any] = {}
    for case in CASES:
        runs = [r for r in records if r["case"] == case.name]
        if not runs:
            continue
        entry: dict[str, Any] = {
            "label": case.label,
            "in_fraction": case.in_fraction,
            "rec_fraction": case.rec_fraction,
            "rewiring": case.rewiring,
            "seeds": [r["seed"] for r in runs],
            "synapses": runs[0]["synapses"],
        }
        for key in SUMMARY_KEYS:
            values = [float(r[key]) for r in runs if key in r]  # a key older records lack counts as missing
            entry[key] = dict(zip(("mean", "sd"), _mean_sd(values), strict=True))
        entry["test_trials_per_seed"] = runs[0]["test_trials"]
        cases[case.name] = entry
    if "dense" in cases:
        dense_cpu = cases["dense"]["cpu_s_per_iteration"]["mean"]
        for entry in cases.values():
            entry["speedup_cpu_vs_dense"] = dense_cpu / entry["cpu_s_per_iteration"]["mean"]
    if timing and "dense" in timing.get("cases", {}):
        best_dense = timing["cases"]["dense"]["best_s_per_iteration"]
        for name, t in timing["cases"].items():
            if name in cases:
                cases[name]["timing_best_s_per_iteration"] = t["best_s_per_iteration"]
                cases[name]["speedup_timing_vs_dense"] = best_dense / t["best_s_per_iteration"]
                if "best_simulate_s" in t and "best_simulate_s" in timing["cases"]["dense"]:
                    cases[name]["timing_best_simulate_s"] = t["best_simulate_s"]
                    sim_dense = timing["cases"]["dense"]["best_simulate_s"]
                    cases[name]["speedup_simulate_vs_dense"] = sim_dense / t["best_simulate_s"]
    return {"cases": cases, "runs": records, "timing": timing}


def _pm(stat: dict[str, float], scale: float = 1.0, digits: int = 1) -> str:
    mean, sd = stat["mean"] * scale, stat["sd"] * scale
    if math.isnan(sd):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


def markdown_table(summary: dict[str, Any]) -> str:
    """The results table: one row per case, mean ± sd over seeds of the series' runs; the timing mode's best-of
    columns (``-`` without it)."""
    head = (
        "| network | synapses in + rec | seeds | test accuracy (%) | CPU s / iteration | speed-up (CPU) "
        "| wall s / iteration | NEST simulate s / iteration | timing: CPU s / iteration | timing: simulate s "
        "| timing speed-up CPU / simulate | peak RSS (MB) |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    rows = [head]
    for entry in summary["cases"].values():
        syn = entry["synapses"]
        t_cpu, t_sim = entry.get("timing_best_s_per_iteration"), entry.get("timing_best_simulate_s")
        t_up = entry.get("speedup_timing_vs_dense"), entry.get("speedup_simulate_vs_dense")
        rows.append(
            f"| {entry['label']} | {syn['in_rec']:,} + {syn['rec_rec']:,} | {len(entry['seeds'])} "
            f"| {_pm(entry['test_accuracy'], 100)} | {_pm(entry['cpu_s_per_iteration'], 1, 2)} "
            f"| {entry.get('speedup_cpu_vs_dense', float('nan')):.1f}x | {_pm(entry['wall_s_per_iteration'], 1, 2)} "
            f"| {_pm(entry['simulate_s_per_iteration_median'], 1, 2)} "
            f"| {'-' if t_cpu is None else f'{t_cpu:.2f}'} | {'-' if t_sim is None else f'{t_sim:.2f}'} "
            f"| {' / '.join('-' if u is None else f'{u:.1f}x' for u in t_up)} "
            f"| {_pm(entry['train_peak_rss_bytes'], 1e-6, 0)} |"
        )
    return "\n".join(rows) + "\n"


def plot_accuracy(summary: dict[str, Any], path: pathlib.Path) -> None:
    """Test accuracy vs recurrent connectivity: fixed and Deep R lines (mean ± sd), the seeds as dots, dense."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.0))
    styles = {False: ("fixed random sparsity", "tab:blue", "o"), True: ("Deep R", "tab:red", "s")}
    for rewiring, (label, colour, marker) in styles.items():
        entries = [e for e in summary["cases"].values() if e["rewiring"] == rewiring and e["rec_fraction"] < 1.0]
        entries.sort(key=lambda e: e["rec_fraction"])
        if not entries:
            continue
        x = [100 * e["rec_fraction"] for e in entries]
        y = [100 * e["test_accuracy"]["mean"] for e in entries]
        sd = [100 * (0.0 if math.isnan(e["test_accuracy"]["sd"]) else e["test_accuracy"]["sd"]) for e in entries]
        ax.errorbar(x, y, yerr=sd, color=colour, marker=marker, capsize=3, label=label)
    dense = summary["cases"].get("dense")
    if dense:
        ax.axhline(100 * dense["test_accuracy"]["mean"], color="k", ls="--", label="dense (100 %)")
        sd = dense["test_accuracy"]["sd"]
        if not math.isnan(sd):
            m = 100 * dense["test_accuracy"]["mean"]
            ax.axhspan(m - 100 * sd, m + 100 * sd, color="k", alpha=0.1)
    for run in summary["runs"]:
        if run["rec_fraction"] < 1.0:
            ax.plot(100 * run["rec_fraction"], 100 * run["test_accuracy"], ".", color="0.4", ms=4)
        else:
            ax.plot(100.0, 100 * run["test_accuracy"], ".", color="0.4", ms=4)
    ax.axhline(100 / 6, color="0.6", ls=":", label="chance")
    ax.set_xscale("log")
    ax.set_xlabel("recurrent connectivity (%); input 5 % (sparse) or 100 % (dense)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("DVS-style task: e-prop, 100 ALIF neurons")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_summary(out: pathlib.Path, json_path: pathlib.Path | None, figure: pathlib.Path | None) -> dict[str, Any]:
    timing_path = out / "timing.json"
    timing = json.loads(timing_path.read_text()) if timing_path.exists() else None
    summary = summarize(load_records(out), timing)
    table = markdown_table(summary)
    (out / "dvs_connectivity.md").write_text(table)
    (out / "dvs_connectivity.json").write_text(json.dumps(summary, indent=2))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(summary, indent=2))
    if figure is not None and summary["cases"]:
        plot_accuracy(summary, figure)
    print(table)
    return summary


# --- timing mode -----------------------------------------------------------------------------------------------------


def timing_runs(
    out: pathlib.Path, base: dict[str, Any], iterations: int, every: int, repeats: int, deep_r: DeepR
) -> dict[str, Any]:
    """Short training runs of every case, interleaved (case 1, 2, ..., 5, then again), ``repeats`` rounds; per case
    the best (smallest) CPU and wall seconds per iteration, and all the repeats. Seed 1 throughout."""
    folder = out / "timing"
    folder.mkdir(parents=True, exist_ok=True)
    per_case: dict[str, list[dict[str, float]]] = {c.name: [] for c in CASES}
    py = sys.executable
    for r in range(repeats):
        for case in CASES:
            run = folder / f"{case.name}_r{r}"
            run.mkdir(exist_ok=True)
            cfg_path = run / "config.toml"
            cfg_path.write_text(to_toml(case_config(base, case, 1, iterations, every, deep_r)))
            m = run_measured(
                [py, "-m", "nestgrad", "train", str(cfg_path), "--out", str(run), "--overwrite"], run / "train.log"
            )
            sim = _median(simulate_seconds(run / "checkpoint.npz"))
            per_case[case.name].append(
                {"cpu_s_per_iteration": m["cpu_s"] / iterations, "wall_s": m["wall_s"], "simulate_s_median": sim}
            )
            print(f"timing {case.name} repeat {r}: {m['cpu_s'] / iterations:.2f} s CPU / iteration", flush=True)
    result = {
        "iterations": iterations,
        "repeats": repeats,
        "what": "best_s_per_iteration: CPU seconds (user + system) of a whole `nestgrad train` process divided by "
        "its iterations (start-up, input generation and builds included); best_simulate_s: the median over the "
        "iterations of the Trainer's per-batch NEST simulation time (wall clock); both the best of the repeats",
        "cases": {
            name: {
                "best_s_per_iteration": min(x["cpu_s_per_iteration"] for x in xs),
                "best_simulate_s": min(x["simulate_s_median"] for x in xs),
                "repeats": xs,
            }
            for name, xs in per_case.items()
        },
    }
    (out / "timing.json").write_text(json.dumps(result, indent=2))
    return result


# --- main ------------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(CONFIG), help="the base configuration (default: the shipped DVS one)")
    ap.add_argument("--out", default="out/dvs_connectivity")
    ap.add_argument("--cases", nargs="+", default=[c.name for c in CASES], choices=[c.name for c in CASES])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--iterations", type=int, default=None, help="training iterations (default: the config's)")
    ap.add_argument("--every", type=int, default=5, help="checkpoint_every of all cases = Deep R's every (batches)")
    ap.add_argument("--batches", type=int, default=40, help="test batches of `nestgrad evaluate` per run")
    ap.add_argument("--alpha", type=float, default=0.0, help="Deep R L1 coefficient")
    ap.add_argument("--temperature", type=float, default=0.0, help="Deep R temperature")
    ap.add_argument("--json", default=None, help="also write the summary JSON here")
    ap.add_argument("--figure", default=None, help="write the accuracy-vs-connectivity figure here (.png)")
    ap.add_argument("--summary-only", action="store_true", help="no runs: table, JSON and figure from the records")
    ap.add_argument("--timing", action="store_true", help="the side-by-side timing mode instead of the table runs")
    ap.add_argument("--timing-iterations", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args(argv)
    for name in ("iterations", "every", "batches", "timing_iterations", "repeats"):
        v = getattr(args, name)
        if v is not None and v < 1:
            ap.error(f"--{name.replace('_', '-')} = {v}: a positive integer is required")
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base = tomllib.loads(pathlib.Path(args.config).read_text())
    iterations = args.iterations or base["training"]["iterations"]
    deep_r = DeepR(alpha=args.alpha, temperature=args.temperature)
    # fail on a bad configuration now, not after the first runs
    from nestgrad.config import ExperimentConfig

    for case in CASES:
        ExperimentConfig.from_dict(case_config(base, case, 1, iterations, args.every, deep_r), source=case.name)
    if args.timing:
        timing_runs(out, base, args.timing_iterations, args.every, args.repeats, deep_r)
    elif not args.summary_only:
        for seed in args.seeds:  # seed-major: a partial series has every case of the first seeds
            for name in args.cases:
                case = CASE_BY_NAME[name]
                if is_done(out, case, seed):
                    print(f"{name} seed {seed}: done, skipped", flush=True)
                    continue
                rec = train_and_evaluate(out, base, case, seed, iterations, args.every, args.batches, deep_r)
                print(
                    f"{name} seed {seed}: test accuracy {rec['test_accuracy']:.3f} ({rec['test_trials']} trials), "
                    f"{rec['cpu_s_per_iteration']:.2f} s CPU / iteration, "
                    f"peak {rec['train_peak_rss_bytes'] / 1e6:.0f} MB",
                    flush=True,
                )
    write_summary(
        out, pathlib.Path(args.json) if args.json else None, pathlib.Path(args.figure) if args.figure else None
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The meta-test: the learned settings against the base configuration's (the defaults) on unseen tasks.

Both settings train on the same ``meta.test.tasks`` tasks, drawn from the family's test stream (never used by the
meta-training), with the same inner budget. Measured per task: the iterations to the criterion (the first inner
iteration whose normalised loss is <= ``meta.test.criterion``; not reached within the budget: counted as budget + 1
and reported separately), the final normalised loss, and the wall-clock of the inner run. Results are kept after
every inner run in ``meta_test_state.json`` (a killed meta-test resumes where it was); written at the end:
``meta_test.json``, ``meta_test.md`` (the table) and ``meta_test.png`` (loss curves, median and quartiles).
"""

from __future__ import annotations

import io
import json
import pathlib
from typing import Any

import numpy as np

from nestgrad.errors import CheckpointError
from nestgrad.meta.config import MetaConfig
from nestgrad.meta.executors import make_pool
from nestgrad.meta.family import TEST_STREAM, task_rng
from nestgrad.meta.inner import InnerJob
from nestgrad.meta.outer import STATE_NAME, MetaState, _raise_inner_error, normalised
from nestgrad.run_folder import FolderLock, atomic_write

TEST_STATE = "meta_test_state.json"


def iterations_to(curve: list[float], criterion: float) -> int | None:
    """The first iteration (1-based) whose normalised loss is <= criterion; None if none is."""
    for i, value in enumerate(curve):
        if value <= criterion:
            return i + 1
    return None


def summarise(curves: list[list[float]], seconds: list[float], criterion: float, budget: int) -> dict[str, Any]:
    """Statistics of one setting over its test tasks (see the module's docstring)."""
    hits = [iterations_to(c, criterion) for c in curves]
    counted = np.array([h if h is not None else budget + 1 for h in hits], float)
    final = np.array([c[-1] if len(c) == budget else np.inf for c in curves])
    return {
        "tasks": len(curves),
        "reached": int(sum(h is not None for h in hits)),
        "iterations_median": float(np.median(counted)),
        "iterations_q25": float(np.percentile(counted, 25)),
        "iterations_q75": float(np.percentile(counted, 75)),
        "iterations_mean": float(np.mean(counted)),
        "final_loss_median": float(np.median(final)),
        "final_loss_q25": float(np.percentile(final, 25)),
        "final_loss_q75": float(np.percentile(final, 75)),
        "seconds_mean": float(np.mean(seconds)),
        "per_task_iterations": [h for h in hits],
    }


class MetaTest:
    """Run the meta-test of a finished (or partly finished) meta-training in ``out_dir``."""

    def __init__(self, config: MetaConfig, out_dir: str | pathlib.Path, tasks: int | None = None, verbose: bool = True):
        self.config = config
        self.out_dir = pathlib.Path(out_dir)
        self.tasks = tasks if tasks is not None else config.test.tasks
        self.budget = config.test.iterations or config.inner_iterations
        self.verbose = verbose

    def learned_settings(self) -> tuple[dict[str, Any], MetaState]:
        path = self.out_dir / STATE_NAME
        if not path.exists():
            raise CheckpointError(f"no meta-training in {self.out_dir} ({STATE_NAME} is missing): run `nestgrad meta`")
        state = MetaState.load(path)
        if state.search != self.config.search_dict():
            raise CheckpointError(f"{path} was written for another meta configuration than {self.config.source}")
        if not state.best:
            raise CheckpointError(f"{path}: no generation has finished yet; nothing was learned")
        return state.best["settings"], state

    def run(self) -> dict[str, Any]:
        learned, state = self.learned_settings()
        settings = {"default": {}, "learned": learned}
        with FolderLock(self.out_dir):
            results = self._load_results()
            jobs = []
            for name, values in settings.items():
                for i in range(self.tasks):
                    key = f"{name}_t{i:02d}"
                    if key in results:
                        continue
                    task = self.config.family.sample(task_rng(self.config.seed, TEST_STREAM, i))
                    config = self.config.task_config(task, values, self.budget)
                    jobs.append(InnerJob(key, config, str(self.out_dir / "test_runs" / key)))
            pool = make_pool(
                self.config.inner, self.config.executor, self.config.base["training"]["threads"], self.out_dir / "jobs"
            )
            try:
                self._run_jobs(pool, jobs, results, settings)
            finally:
                pool.shutdown()
            report = self._report(results, learned, state)
        return report

    def _load_results(self) -> dict[str, Any]:
        path = self.out_dir / TEST_STATE
        if not path.exists():
            return {}
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise CheckpointError(f"meta-test state {path} cannot be read: {err}") from None
        same = saved.get("search") == self.config.search_dict() and saved.get("budget") == self.budget
        # results of another search or budget are not this test's: start over
        return saved.get("results", {}) if same else {}

    def _run_jobs(self, pool: Any, jobs: list[InnerJob], results: dict[str, Any], settings: dict[str, Any]) -> None:
        pending, in_flight = list(jobs), {}
        while pending or in_flight:
            free = pool.in_flight_limit - len(in_flight)
            if pending and free > 0:
                batch, pending = pending[:free], pending[free:]
                in_flight.update(zip(pool.submit(batch), batch, strict=True))
            for handle in pool.wait(list(in_flight)):
                job = in_flight.pop(handle)
                result = pool.result(handle)
                if "error_class" in result:
                    _raise_inner_error(job.key, settings[job.key.split("_t")[0]], result)
                results[job.key] = result
                state = {"search": self.config.search_dict(), "budget": self.budget, "results": results}
                atomic_write(self.out_dir / TEST_STATE, json.dumps(state))
                if self.verbose:
                    print(f"meta-test: {len(results)}/{2 * self.tasks} inner runs done", flush=True)

    def _report(self, results: dict[str, Any], learned: dict[str, Any], state: MetaState) -> dict[str, Any]:
        crit = self.config.test.criterion
        curves: dict[str, list[list[float]]] = {}
        summary: dict[str, Any] = {}
        for name in ("default", "learned"):
            rs = [results[f"{name}_t{i:02d}"] for i in range(self.tasks)]
            curves[name] = [normalised(r) for r in rs]
            summary[name] = summarise(curves[name], [r["seconds"] for r in rs], crit, self.budget)
        d, lr = summary["default"]["iterations_median"], summary["learned"]["iterations_median"]
        report = {
            "family": self.config.family.name,
            "tasks": self.tasks,
            "budget": self.budget,
            "criterion": crit,
            "learned_settings": learned,
            "default_settings": {k: _base_value(self.config.base, k) for k in learned},
            "speedup_median": d / lr,
            # the default's count is censored at budget + 1 where it never reached the criterion: a lower bound then
            "speedup_is_lower_bound": summary["default"]["reached"] < self.tasks,
            "outer_loop": {
                "generations": len(state.generations),
                "evaluations": len(state.evaluations),
                "elapsed_s": state.elapsed_s,
                "inner_seconds": state.inner_seconds,
            },
            **summary,
        }
        atomic_write(self.out_dir / "meta_test.json", json.dumps(report, indent=2))
        atomic_write(self.out_dir / "meta_test.md", format_table(report))
        atomic_write(self.out_dir / "meta_test.png", plot_curves(curves, crit))
        return report


def _base_value(base: dict[str, Any], key: str) -> Any:
    node: Any = base
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return "(builder default)"
        node = node[part]
    return node


def format_table(r: dict[str, Any]) -> str:
    """The meta-test as a Markdown table."""
    lines = [
        f"Meta-test, family {r['family']!r}: {r['tasks']} unseen tasks, inner budget {r['budget']} iterations, "
        f"criterion normalised loss <= {r['criterion']:g}",
        "",
        "| settings | reached | iterations to criterion, median [q25, q75] | final normalised loss, median [q25, q75] "
        "| seconds per inner run |",
        "|---|---|---|---|---|",
    ]
    for name in ("default", "learned"):
        s = r[name]
        lines.append(
            f"| {name} | {s['reached']}/{s['tasks']} | {s['iterations_median']:g} [{s['iterations_q25']:g}, "
            f"{s['iterations_q75']:g}] | {s['final_loss_median']:.3g} [{s['final_loss_q25']:.3g}, "
            f"{s['final_loss_q75']:.3g}] | {s['seconds_mean']:.1f} |"
        )
    o = r["outer_loop"]
    bound = " (a lower bound: the default did not always reach the criterion)" if r["speedup_is_lower_bound"] else ""
    lines += [
        "",
        f"Speed-up (median iterations, default / learned): {r['speedup_median']:.2f}x{bound}.",
        f"Outer loop: {o['generations']} generations, {o['evaluations']} inner runs, {o['elapsed_s']:.0f} s wall-clock "
        f"({o['inner_seconds']:.0f} s in inner runs).",
        "Learned: " + ", ".join(f"{k} = {v!r}" for k, v in r["learned_settings"].items()),
        "Default: " + ", ".join(f"{k} = {v!r}" for k, v in r["default_settings"].items()),
    ]
    return "\n".join(lines) + "\n"


def plot_curves(curves: dict[str, list[list[float]]], criterion: float) -> bytes:
    """PNG: normalised loss per inner iteration, median and quartiles over the test tasks, both settings."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for (name, cs), color in zip(curves.items(), ("#7f7f7f", "#2854c5"), strict=False):
        n = min(len(c) for c in cs)
        a = np.array([c[:n] for c in cs])
        it = np.arange(1, n + 1)
        ax.fill_between(it, np.percentile(a, 25, axis=0), np.percentile(a, 75, axis=0), color=color, alpha=0.2)
        ax.plot(it, np.median(a, axis=0), color=color, label=f"{name} (median, quartiles)")
    ax.axhline(criterion, color="#e04b40", ls="--", lw=1, label="criterion")
    ax.set_yscale("log")
    ax.set_xlabel("inner iteration")
    ax.set_ylabel("loss / silent readout's loss")
    ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()

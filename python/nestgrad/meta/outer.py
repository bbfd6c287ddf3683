"""The outer loop: CMA-ES (the ``cma`` package) over the search space, each candidate scored by inner trainings on
tasks sampled from the family, state saved after every finished inner run.

Generation ``g``: CMA-ES proposes ``population`` points of the unit cube (:meth:`cma.CMAEvolutionStrategy.ask`);
every candidate is trained on the same ``tasks_per_candidate`` tasks of generation ``g`` (common random numbers);
a run's normalised loss is its loss divided by a silent readout's loss on the same trials, its score the mean of
the last ``score_window`` normalised losses; a candidate's score is the mean over its tasks (a diverged run counts
``diverged_score``); CMA-ES is told the scores and proposes generation ``g + 1``.

State (``meta_state.json``, written atomically after every finished inner run and every generation): every
finished evaluation, the points and scores of every finished generation and the points of the current one. A
resumed outer loop (``--resume``) rebuilds CMA-ES by replaying its finished generations (a fresh strategy with the
same seed asked and told the saved points and scores: CMA-ES is deterministic given its seed, and each replayed
``ask`` is checked against the saved points), then re-runs only the inner runs that had not finished. It ends with
the same evaluations as an uninterrupted run. (A pickled strategy would not do: ``cma`` files the points it asked
under Python's string hash, which differs from process to process, so a strategy unpickled in another process treats
its own points as foreign "injected" solutions and updates differently.)
"""

from __future__ import annotations

import datetime
import io
import json
import math
import os
import pathlib
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nestgrad import errors
from nestgrad.errors import CheckpointError, ConfigError, NestgradError
from nestgrad.meta.config import DEFAULT_INNER, MetaConfig
from nestgrad.meta.executors import make_pool
from nestgrad.meta.family import TRAIN_STREAM, task_rng
from nestgrad.meta.inner import InnerJob
from nestgrad.run_folder import TMP_SUFFIX, FolderLock, atomic_write

STATE_NAME = "meta_state.json"
STATE_FORMAT = 1
META_FILES = (STATE_NAME, "meta_progress.csv", "meta_progress.png", "meta_best.json")


def normalised(result: dict[str, Any]) -> list[float]:
    """Loss / silent-readout loss of every inner iteration of a run's result."""
    return [
        float(a) / float(b) if b > 0 else float(a) for a, b in zip(result["losses"], result["silent"], strict=False)
    ]


def run_score(result: dict[str, Any], window: int, iterations: int, diverged_score: float) -> float:
    """The score of one inner run: mean normalised loss of the last ``window`` of ``iterations`` iterations, or
    ``diverged_score`` if it diverged or did not finish them (a non-finite loss counts as diverged)."""
    losses = normalised(result)
    if result.get("diverged") or len(losses) < iterations:
        return diverged_score
    value = float(np.mean(losses[iterations - window : iterations]))
    return value if math.isfinite(value) else diverged_score


def _raise_inner_error(key: str, settings: dict[str, Any], result: dict[str, Any]) -> None:
    """A failed inner run stops the outer loop: the same NestgradError class (a user's error, e.g. a parameter NEST
    does not know), or a RuntimeError with the worker's traceback (a bug)."""
    where = f"inner run {key} ({', '.join(f'{k} = {v!r}' for k, v in settings.items())})"
    kind, text = result["error_class"], result["error"]
    if kind == "bug":
        raise RuntimeError(f"{where} failed:\n{text}")
    klass = getattr(errors, kind, NestgradError)
    try:
        err = klass(f"{where}: {text}")
    except TypeError:
        err = NestgradError(f"{where}: {text}")
    raise err


def _show(key: str, value: Any) -> str:
    return f"{key} = {value:.4g}" if isinstance(value, float) else f"{key} = {value!r}"


@dataclass
class MetaState:
    """What the outer loop has done (see the module's docstring); serialised to ``meta_state.json``."""

    search: dict[str, Any]
    generation: int = 0
    solutions: list[list[float]] = field(default_factory=list)  # the current generation's points
    evaluations: dict[str, dict[str, Any]] = field(default_factory=dict)
    generations: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=dict)
    elapsed_s: float = 0.0
    inner_seconds: float = 0.0
    started: str = ""

    def to_json(self) -> str:
        d = {"format": STATE_FORMAT, **self.__dict__}
        return json.dumps(d, indent=1)

    @classmethod
    def load(cls, path: pathlib.Path) -> MetaState:
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise CheckpointError(f"outer-loop state {path} cannot be read: {err}") from None
        if not isinstance(d, dict) or d.get("format") != STATE_FORMAT:
            raise CheckpointError(f"outer-loop state {path}: field 'format': {STATE_FORMAT} expected")
        d.pop("format")
        try:
            return cls(**d)
        except TypeError as err:
            raise CheckpointError(f"outer-loop state {path}: {err}") from None


class MetaRun:
    """The outer loop of a meta configuration, writing into ``out_dir``.

    >>> MetaRun(MetaConfig.from_toml("meta_sine.toml"), "out/meta").run()       # or run(resume=True)
    """

    def __init__(self, config: MetaConfig, out_dir: str | pathlib.Path, verbose: bool = True):
        self.config = config
        self.out_dir = pathlib.Path(out_dir)
        self.verbose = verbose
        self.state: MetaState | None = None
        self._lock = FolderLock(self.out_dir)
        self._t0 = 0.0
        self._elapsed0 = 0.0

    @property
    def state_path(self) -> pathlib.Path:
        return self.out_dir / STATE_NAME

    def _print(self, text: str) -> None:
        if self.verbose:
            print(text, flush=True)

    # -- the tasks and jobs of a generation ---------------------------------------------------------------------------
    def task_values(self, generation: int, task: int) -> dict[str, Any]:
        return self.config.family.sample(task_rng(self.config.seed, TRAIN_STREAM, generation, task))

    @staticmethod
    def key(generation: int, candidate: int, task: int) -> str:
        return f"g{generation:03d}_c{candidate:02d}_t{task:02d}"

    def jobs_of(self, generation: int, solutions: list[list[float]]) -> list[tuple[InnerJob, dict[str, Any]]]:
        out = []
        for c, x in enumerate(solutions):
            settings = self.config.space.values(x)
            for t in range(self.config.tasks_per_candidate):
                key = self.key(generation, c, t)
                config = self.config.task_config(self.task_values(generation, t), settings)
                job = InnerJob(key, config, str(self.out_dir / "runs" / key))
                out.append((job, {"generation": generation, "candidate": c, "task": t, "settings": settings}))
        return out

    # -- the loop -------------------------------------------------------------------------------------------------
    def run(self, resume: bool = False, overwrite: bool = False) -> MetaState:
        """Run (or continue, ``resume``) until ``generations`` generations are done; returns the state."""
        if resume and overwrite:
            raise ConfigError("--resume and --overwrite exclude each other")
        if resume and not self.state_path.exists():
            raise CheckpointError(f"no outer-loop state at {self.state_path} to resume")
        with self._lock:
            for name in (*META_FILES, "meta_test_state.json"):  # temporaries a killed loop left (we hold the lock)
                for tmp in self.out_dir.glob(f".{name}.*{TMP_SUFFIX}"):
                    tmp.unlink(missing_ok=True)
            if resume:
                self.state = MetaState.load(self.state_path)
                self._check_same_search(self.state)
            else:
                if self.state_path.exists() and not overwrite:
                    raise CheckpointError(
                        f"{self.state_path} exists: resume it (--resume), replace it (--overwrite) or choose another "
                        "output folder; nothing was overwritten"
                    )
                for name in META_FILES:  # the state first: never an old state beside a new run's files
                    (self.out_dir / name).unlink(missing_ok=True)
                self.state = self._initial_state()
            self._validate_space()
            self._t0, self._elapsed0 = time.perf_counter(), self.state.elapsed_s
            self._save()
            pool = make_pool(
                self.config.inner, self.config.executor, self.config.base["training"]["threads"], self.out_dir / "jobs"
            )
            try:
                self._loop(pool)
            finally:
                pool.shutdown()
        return self.state

    def _initial_state(self) -> MetaState:
        return MetaState(
            search=self.config.search_dict(),
            started=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        )

    def strategy(self) -> Any:
        """CMA-ES as it stands before the current generation is told: a fresh strategy (the configuration's seed)
        asked and told every finished generation again, then asked the current one (whose points are saved in the
        state, or stored there if none are yet). CheckpointError if a replayed ``ask`` differs from the saved points
        (another version of ``cma``)."""
        import cma

        c, state = self.config, self.state
        assert state is not None
        # cma cannot search one dimension: a one-key space gets a second coordinate that nothing reads
        start = c.space.start() + ([0.5] if len(c.space) == 1 else [])
        es = cma.CMAEvolutionStrategy(
            start,
            c.sigma0,
            {"bounds": [0.0, 1.0], "popsize": c.population, "seed": c.seed, "verbose": -9},
        )
        for row in state.generations:
            self._ask(es, row["solutions"], row["generation"])
            es.tell([np.array(x) for x in row["solutions"]], row["scores"])
        state.solutions = self._ask(es, state.solutions, state.generation)
        return es

    def _ask(self, es: Any, saved: list[list[float]], generation: int) -> list[list[float]]:
        asked = [list(map(float, x)) for x in es.ask()]
        if saved and asked != saved:
            raise CheckpointError(
                f"outer-loop state {self.state_path}: CMA-ES does not replay generation {generation + 1} (another "
                "version of the cma package?); start again with --overwrite"
            )
        return asked

    def _check_same_search(self, state: MetaState) -> None:
        now = self.config.search_dict()
        if state.search != now:
            diffs = sorted(k for k in set(now) | set(state.search) if now.get(k) != state.search.get(k))
            raise CheckpointError(
                f"outer-loop state {self.state_path} was written for another search (differs in: {', '.join(diffs)}); "
                "only meta.generations, [meta.executor] and [meta.test] may change on --resume"
            )

    def _validate_space(self) -> None:
        """With the default inner run: check in a fresh process, with NEST, that the base configuration and both
        ends of every range build (a misspelt neuron parameter is refused now, not in generation 0)."""
        if self.config.inner != DEFAULT_INNER:
            return
        import concurrent.futures as cf
        import multiprocessing

        from nestgrad.meta import inner

        c = self.config
        probes = [c.base]
        for d in c.space.dimensions:
            values = list(d.choices) if d.kind == "choice" else [d.value(0.0), d.value(1.0)]
            probes += [c.task_config({}, {d.key: v}) for v in values]
        os.environ.setdefault("PYNEST_QUIET", "1")  # no NEST banner from the checking process
        with cf.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            try:
                pool.submit(inner.validate, probes, str(self.out_dir / "runs")).result()
            except NestgradError as err:
                raise type(err)(f"{c.source}: the search space does not build: {err}") from None

    def _loop(self, pool: Any) -> None:
        state = self.state
        assert state is not None
        es = self.strategy()
        self._save()
        while state.generation < self.config.generations:
            g = state.generation
            t_gen = time.perf_counter()
            self._evaluate_generation(pool, g, state.solutions)
            scores = [self._candidate_score(g, c) for c in range(len(state.solutions))]
            es.tell([np.array(x) for x in state.solutions], scores)
            self._record_generation(g, scores, es.sigma, time.perf_counter() - t_gen)
            state.generation = g + 1
            # the next generation is asked for even after the last one: a run continued with more generations
            # (--resume --generations N) replays exactly what one run of N generations did
            state.solutions = self._ask(es, [], g + 1)
            self._save()
            self._write_progress()
        self._print(
            f"meta: done: best score {state.best['score']:.4g} (generation {state.best['generation'] + 1}): "
            + ", ".join(
                f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v!r}" for k, v in state.best["settings"].items()
            )
            + f"; results in {self.out_dir}"
        )

    def _evaluate_generation(self, pool: Any, g: int, solutions: list[list[float]]) -> None:
        """Run the generation's inner runs that have not finished yet; save the state after each."""
        state = self.state
        assert state is not None
        pending = [(job, info) for job, info in self.jobs_of(g, solutions) if job.key not in state.evaluations]
        in_flight: dict[Any, tuple[InnerJob, dict[str, Any]]] = {}
        while pending or in_flight:
            free = pool.in_flight_limit - len(in_flight)
            if pending and free > 0:
                batch, pending = pending[:free], pending[free:]
                for handle, item in zip(pool.submit([j for j, _ in batch]), batch, strict=True):
                    in_flight[handle] = item
            for handle in pool.wait(list(in_flight)):
                job, info = in_flight.pop(handle)
                result = pool.result(handle)
                if "error_class" in result:
                    self._save()
                    _raise_inner_error(job.key, info["settings"], result)
                c = self.config
                score = run_score(result, c.score_window, c.inner_iterations, c.diverged_score)
                state.evaluations[job.key] = {**info, "x": solutions[info["candidate"]], "score": score, **result}
                state.inner_seconds += float(result.get("seconds", 0.0))
                self._save()

    def _candidate_score(self, g: int, c: int) -> float:
        assert self.state is not None
        ev = self.state.evaluations
        return float(np.mean([ev[self.key(g, c, t)]["score"] for t in range(self.config.tasks_per_candidate)]))

    def _record_generation(self, g: int, scores: list[float], sigma: float, seconds: float) -> None:
        state = self.state
        assert state is not None
        best_c = int(np.argmin(scores))
        settings = self.config.space.values(state.solutions[best_c])
        if not state.best or scores[best_c] < state.best["score"]:
            state.best = {
                "score": scores[best_c],
                "generation": g,
                "candidate": best_c,
                "x": state.solutions[best_c],
                "settings": settings,
            }
        xs = np.array(state.solutions)[:, : len(self.config.space)]  # without the pad of a one-key space
        row = {
            "generation": g,
            "best": float(np.min(scores)),
            "median": float(np.median(scores)),
            "worst": float(np.max(scores)),
            "spread": float(np.std(scores)),  # of the scores across the population
            "x_spread": float(np.mean(np.std(xs, axis=0))),  # of the candidates in the unit cube
            "sigma": float(sigma),
            "best_so_far": float(state.best["score"]),
            "best_settings": settings,
            "seconds": seconds,
            "solutions": state.solutions,  # what CMA-ES was told, replayed on --resume
            "scores": [float(v) for v in scores],
        }
        state.generations.append(row)
        self._print(
            f"meta: generation {g + 1}/{self.config.generations}: best {row['best']:.4g} (so far "
            f"{row['best_so_far']:.4g}), median {row['median']:.4g}, spread {row['spread']:.3g} (scores) "
            f"{row['x_spread']:.3g} (parameters), sigma {row['sigma']:.3g}, {seconds:.0f} s"
        )

    # -- files ---------------------------------------------------------------------------------------------------
    def _save(self) -> None:
        state = self.state
        assert state is not None
        state.elapsed_s = self._elapsed0 + (time.perf_counter() - self._t0 if self._t0 else 0.0)
        atomic_write(self.state_path, state.to_json())

    def _write_progress(self) -> None:
        state = self.state
        assert state is not None
        keys = ["generation", "best", "median", "worst", "spread", "x_spread", "sigma", "best_so_far", "seconds"]
        lines = [",".join(keys)] + [",".join(repr(r[k]) for k in keys) for r in state.generations]
        atomic_write(self.out_dir / "meta_progress.csv", "\n".join(lines) + "\n")
        best = {
            **state.best,
            "config": self.config.task_config({}, state.best["settings"]),
            "elapsed_s": state.elapsed_s,
            "inner_seconds": state.inner_seconds,
            "evaluations": len(state.evaluations),
        }
        atomic_write(self.out_dir / "meta_best.json", json.dumps(best, indent=2))
        atomic_write(self.out_dir / "meta_progress.png", plot_progress(state.generations, self.config.space.keys))


def plot_progress(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> bytes:
    """PNG of the outer loop: scores per generation (best, median, worst, best so far) and the step size; the
    settings of each generation's best candidate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = [r["generation"] + 1 for r in rows]
    fig, (a, b) = plt.subplots(2, 1, figsize=(6.5, 6), sharex=True)
    a.fill_between(g, [r["best"] for r in rows], [r["worst"] for r in rows], color="#bcd0f5", label="population")
    a.plot(g, [r["median"] for r in rows], color="#2854c5", label="median")
    a.plot(g, [r["best_so_far"] for r in rows], color="#e04b40", marker="o", ms=3, label="best so far")
    a.set_ylabel("score (normalised loss)")
    a.set_yscale("log")
    a.legend(fontsize=7)
    a2 = a.twinx()
    a2.plot(g, [r["sigma"] for r in rows], color="gray", ls=":", label="CMA-ES sigma")
    a2.set_ylabel("sigma (unit cube)", color="gray")
    for key in keys:
        values = [r["best_settings"][key] for r in rows]
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            ref = abs(values[0]) or 1.0
            b.plot(g, [v / ref for v in values], marker=".", label=f"{key} / {values[0]:.3g}")
    b.set_yscale("log")
    b.set_xlabel("generation")
    b.set_ylabel("best candidate's value\n(relative to generation 1)")
    b.legend(fontsize=6)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()

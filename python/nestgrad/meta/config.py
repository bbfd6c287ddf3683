"""The meta configuration: a TOML file with a ``[meta]`` table beside (or instead of) an inner configuration.

::

    [meta]
    base = "sine_eprop_iaf_psc_exp.toml"  # optional: the inner configuration (relative to this file, or shipped)
    inner_iterations = 20                # K: the inner budget, training iterations per inner run
    tasks_per_candidate = 2              # tasks of the family each candidate is scored on (mean)
    generations = 6
    population = 6                       # candidates per generation (CMA-ES popsize)
    sigma0 = 0.25                        # CMA-ES initial step size, in unit-cube coordinates
    seed = 1

    [meta.family]   # name = "sine" or "evidence", plus the family's ranges (nestgrad.meta.family)
    [meta.space]    # the search space (nestgrad.meta.space)
    [meta.executor] # kind = "local" | "submitit_local" | "slurm", workers, SLURM options (nestgrad.meta.executors)
    [meta.test]     # tasks = 20, criterion = 0.3, iterations (default: inner_iterations)

    [network]       # ... the inner configuration's sections, laid over ``base``
"""

from __future__ import annotations

import importlib
import json
import math
import pathlib
import tomllib
from dataclasses import dataclass, field, fields
from typing import Any

from nestgrad.config import ExperimentConfig
from nestgrad.errors import ConfigError
from nestgrad.meta.family import TaskFamily, make_family
from nestgrad.meta.space import SearchSpace, set_keys

DEFAULT_INNER = "nestgrad.meta.inner:train"
CONFIGS = pathlib.Path(__file__).resolve().parent.parent / "configs"
EXECUTOR_KINDS = ("local", "submitit_local", "slurm")


def _int(where: str, value: Any, low: int, high: int | None = None) -> int:
    if not (
        isinstance(value, int) and not isinstance(value, bool) and value >= low and (high is None or value <= high)
    ):
        raise ConfigError(
            f"{where} = {value!r}: an integer >= {low}" + (f" and <= {high}" if high else "") + " is required"
        )
    return value


def _float(where: str, value: Any, low: float, high: float = math.inf, open_low: bool = True) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (value <= low if open_low else value < low) or value > high:
        rel = ">" if open_low else ">="
        raise ConfigError(
            f"{where} = {value!r}: a finite number {rel} {low:g}" + (f" and <= {high:g}" if high < math.inf else "")
        )
    return float(value)


def _table(where: str, value: Any, known: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"[{where}] must be a table")
    bad = sorted(set(value) - known)
    if bad:
        raise ConfigError(f"[{where}] unknown key(s) {', '.join(bad)}; known: {', '.join(sorted(known))}")
    return value


@dataclass(frozen=True)
class ExecutorConfig:
    """Where inner runs go. ``local``: processes on this machine (``workers`` at a time, a fresh process for every
    inner run); ``slurm``: SLURM jobs through submitit (an array per generation, ``workers`` running at once);
    ``submitit_local``: the SLURM code path with submitit's LocalExecutor (jobs as local processes), to try a
    configuration on a workstation. The remaining keys are SLURM's (ignored by ``local``)."""

    kind: str = "local"
    workers: int = 2
    partition: str = ""
    account: str = ""
    timeout_min: int = 60  # per inner run
    mem_gb: float = 4.0  # per inner run
    cpus_per_task: int = 0  # 0: the inner configuration's training.threads
    setup: tuple[str, ...] = ()  # shell lines run before each job (module load ..., source venv/bin/activate)
    additional: dict[str, Any] = field(default_factory=dict)  # more sbatch options, e.g. {qos = "normal"}
    poll_s: float = 5.0  # seconds between status checks of submitted jobs

    @classmethod
    def from_table(cls, table: Any) -> ExecutorConfig:
        t = dict(_table("meta.executor", table, {f.name for f in fields(cls)}))
        if t.get("kind", "local") not in EXECUTOR_KINDS:
            raise ConfigError(f"meta.executor.kind = {t['kind']!r}: one of {', '.join(EXECUTOR_KINDS)}")
        _int("meta.executor.workers", t.get("workers", 2), 1, 100000)
        _int("meta.executor.timeout_min", t.get("timeout_min", 60), 1)
        _int("meta.executor.cpus_per_task", t.get("cpus_per_task", 0), 0)
        _float("meta.executor.mem_gb", t.get("mem_gb", 4.0), 0.0)
        _float("meta.executor.poll_s", t.get("poll_s", 5.0), 0.0)
        for key in ("partition", "account"):
            if not isinstance(t.get(key, ""), str):
                raise ConfigError(f"meta.executor.{key} = {t[key]!r}: a string is required")
        setup = t.get("setup", [])
        if not (isinstance(setup, list) and all(isinstance(s, str) for s in setup)):
            raise ConfigError(f"meta.executor.setup = {setup!r}: a list of shell lines (strings) is required")
        t["setup"] = tuple(setup)
        if not isinstance(t.get("additional", {}), dict):
            raise ConfigError(f"meta.executor.additional = {t['additional']!r}: a table of sbatch options is required")
        return cls(**t)


@dataclass(frozen=True)
class TestConfig:
    """The meta-test: ``tasks`` unseen tasks of the family; ``criterion``: the normalised loss (loss / loss of a
    silent readout) an inner run must reach; ``iterations``: the inner budget (0: the meta-training's K)."""

    tasks: int = 20
    criterion: float = 0.3
    iterations: int = 0

    @classmethod
    def from_table(cls, table: Any) -> TestConfig:
        t = _table("meta.test", table, {f.name for f in fields(cls)})
        _int("meta.test.tasks", t.get("tasks", 20), 1)
        _float("meta.test.criterion", t.get("criterion", 0.3), 0.0)
        _int("meta.test.iterations", t.get("iterations", 0), 0)
        return cls(**t)


@dataclass(frozen=True)
class MetaConfig:
    """A validated meta configuration. ``base`` is the inner configuration (a dictionary of an ExperimentConfig)
    with the outer loop's settings applied: ``training.iterations = checkpoint_every = inner_iterations`` (one block,
    one NEST kernel per inner run) and no plots."""

    base: dict[str, Any]
    family: TaskFamily
    space: SearchSpace
    inner_iterations: int = 20
    tasks_per_candidate: int = 2
    generations: int = 6
    population: int = 6
    sigma0: float = 0.25
    seed: int = 1
    score_window: int = 1  # the score is the mean normalised loss of the last score_window inner iterations
    diverged_score: float = 2.0  # the normalised loss given to an inner run that diverged (a silent readout: 1)
    inner: str = DEFAULT_INNER  # "module:function" that runs one inner training (nestgrad.meta.inner)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    test: TestConfig = field(default_factory=TestConfig)
    source: str = "configuration"

    SCALARS = (
        "inner_iterations",
        "tasks_per_candidate",
        "generations",
        "population",
        "sigma0",
        "seed",
        "score_window",
        "diverged_score",
        "inner",
    )

    def search_dict(self) -> dict[str, Any]:
        """What defines the search (a resumed run must have the same): everything but the number of generations,
        the executor and the meta-test."""
        d = {k: getattr(self, k) for k in self.SCALARS if k != "generations"}
        d["base"] = self.base
        d["family"] = {f.name: getattr(self.family, f.name) for f in fields(self.family)}
        d["space"] = [
            {"key": x.key, "kind": x.kind, "low": x.low, "high": x.high, "choices": list(x.choices), "start": x.start}
            for x in self.space.dimensions
        ]
        return json.loads(json.dumps(d))

    def task_config(self, task: dict[str, Any], settings: dict[str, Any], iterations: int | None = None) -> dict:
        """The inner configuration of one run: the base, the settings (search-space values), the task's values."""
        config = set_keys(self.base, {**settings, **task})
        if iterations is not None:
            config = set_keys(config, {"training.iterations": iterations, "training.checkpoint_every": iterations})
        return config

    def inner_function(self) -> Any:
        """The inner-run function named by ``inner`` (imported; ConfigError if it cannot be)."""
        return resolve(self.inner)

    @classmethod
    def from_toml(cls, path: str | pathlib.Path) -> MetaConfig:
        path = pathlib.Path(path)
        if not path.is_file():
            raise ConfigError(f"meta configuration {path} does not exist or is not a file")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
            raise ConfigError(f"{path}: not valid TOML: {err}") from None
        return cls.from_dict(data, path.parent, source=str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], folder: pathlib.Path, source: str = "configuration") -> MetaConfig:
        data = dict(data)
        if "meta" not in data or not isinstance(data["meta"], dict):
            raise ConfigError(f"{source}: a [meta] table is required (docs/meta_learning.md)")
        meta = dict(data.pop("meta"))
        known = set(cls.SCALARS) | {"base", "family", "space", "executor", "test"}
        bad = sorted(set(meta) - known)
        if bad:
            raise ConfigError(f"{source}: unknown key(s) {', '.join('meta.' + b for b in bad)}; known: {sorted(known)}")
        inner = _load_base(meta.pop("base", None), folder, source)
        for section, values in data.items():  # the inline sections lie over the base file
            if not isinstance(values, dict):
                raise ConfigError(f"{source}: [{section}] must be a table")
            inner[section] = _merge(inner.get(section, {}), values)
        base_config = ExperimentConfig.from_dict(inner, source=source)
        k = _int("meta.inner_iterations", meta.get("inner_iterations", 20), 1)
        base = json.loads(json.dumps(base_config.to_dict()))
        base = set_keys(base, {"training.iterations": k, "training.checkpoint_every": k, "training.plot": False})
        family = make_family(meta.get("family"))
        if base["task"]["name"] != family.task:
            raise ConfigError(
                f"{source}: meta.family.name = {family.name!r} needs task.name = {family.task!r} in the inner "
                f"configuration, found {base['task']['name']!r}"
            )
        reserved = {key: f"drawn per task by the {family.name!r} family" for key in family.keys}
        for key in ("training.iterations", "training.checkpoint_every"):
            reserved[key] = "meta.inner_iterations"
        reserved["training.plot"] = "inner runs draw no plots"
        space = SearchSpace.from_table(meta.get("space"), base, reserved)
        kwargs: dict[str, Any] = {"inner_iterations": k}
        kwargs["tasks_per_candidate"] = _int("meta.tasks_per_candidate", meta.get("tasks_per_candidate", 2), 1)
        kwargs["generations"] = _int("meta.generations", meta.get("generations", 6), 1)
        kwargs["population"] = _int("meta.population", meta.get("population", 6), 2)
        kwargs["sigma0"] = _float("meta.sigma0", meta.get("sigma0", 0.25), 0.0, 1.0)
        kwargs["seed"] = _int("meta.seed", meta.get("seed", 1), 1, 2**32 - 1)
        kwargs["score_window"] = _int("meta.score_window", meta.get("score_window", 1), 1, k)
        kwargs["diverged_score"] = _float("meta.diverged_score", meta.get("diverged_score", 2.0), 0.0)
        inner_name = meta.get("inner", DEFAULT_INNER)
        resolve(inner_name)  # fails now, naming the key, rather than in every worker
        kwargs["inner"] = inner_name
        return cls(
            base=base,
            family=family,
            space=space,
            executor=ExecutorConfig.from_table(meta.get("executor", {})),
            test=TestConfig.from_table(meta.get("test", {})),
            source=source,
            **kwargs,
        )


def resolve(name: Any) -> Any:
    """The function ``module:function`` names; ConfigError (naming meta.inner) if it cannot be imported."""
    if not isinstance(name, str) or name.count(":") != 1:
        raise ConfigError(f"meta.inner = {name!r}: 'module:function' is required (default {DEFAULT_INNER!r})")
    module, function = name.split(":")
    try:
        fn = getattr(importlib.import_module(module), function)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"meta.inner = {name!r} cannot be imported: {err}") from None
    if not callable(fn):
        raise ConfigError(f"meta.inner = {name!r} is not a function")
    return fn


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for key, value in b.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _load_base(base: Any, folder: pathlib.Path, source: str) -> dict[str, Any]:
    """The sections of the ``base`` file: relative to the meta file's folder, else a shipped configuration."""
    if base is None:
        return {}
    if not isinstance(base, str) or not base:
        raise ConfigError(f"{source}: meta.base = {base!r}: a file name is required")
    for candidate in (folder / base, CONFIGS / base):
        if candidate.is_file():
            try:
                return tomllib.loads(candidate.read_text(encoding="utf-8"))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
                raise ConfigError(f"{candidate} (meta.base): not valid TOML: {err}") from None
    raise ConfigError(
        f"{source}: meta.base = {base!r} is neither a file beside the configuration nor a shipped configuration "
        f"({CONFIGS})"
    )

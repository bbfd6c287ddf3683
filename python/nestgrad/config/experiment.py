"""Configuration of a training run: frozen dataclasses, validated on construction, loadable from TOML.

A TOML file has the sections ``[network]``, ``[task]``, ``[optimizer]`` and ``[training]``; every key is a field
of the matching dataclass below. Unknown sections or keys and bad values raise :class:`ConfigError` naming them,
before anything is simulated.

The configuration knows no network. An architecture (``network.architecture``) declares here, through
:func:`register_sections`, which tasks it trains and the typed dataclasses of its own tables (``[network.v1]``,
``[task.v1]``, ...); the networks layer registers the builders (:mod:`nestgrad.networks.registry`).
"""

from __future__ import annotations

import dataclasses
import enum
import math
import pathlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nestgrad.errors import ConfigError


class GradientAlgorithm(enum.StrEnum):
    """The built-in gradient algorithms: e-prop's (same updates) ``step`` = NEST's ``eprop_synapse`` (a loop over
    each window; ``eprop_vector_synapse`` where the neuron asks for it) and ``event`` = nestgrad's
    ``eprop_event_synapse`` (running sums, O(1) per spike); and ``eventprop``, exact gradients in nestgrad's EventProp
    neurons (the V1 column: nestgrad.networks.v1_eventprop). More are added by
    :func:`nestgrad.networks.algorithms.register_algorithm`."""

    STEP = "step"
    EVENT = "event"
    EVENTPROP = "eventprop"


class OptimizerType(enum.StrEnum):
    GRADIENT_DESCENT = "gradient_descent"
    ADAM = "adam"


GRADIENT_ALGORITHMS = tuple(a.value for a in GradientAlgorithm)  # the built-in ones; all: gradient_algorithms()
OPTIMIZERS = tuple(o.value for o in OptimizerType)


@dataclass(frozen=True)
class ArchitectureSections:
    """What the configuration knows of an architecture: the tasks it trains and the dataclasses of its tables.

    ``network_table`` / ``task_table`` name the field of :class:`NetworkConfig` / :class:`TaskConfig` that holds the
    architecture's own table (``"v1"``, ``"microcircuit"``; plug-ins use ``"params"``); ``network_type`` /
    ``task_type`` validate it (a class with ``from_dict``), None: the architecture has no such table. ``task_type``
    may also map each task name to its own class (tasks with different tables).
    """

    name: str
    tasks: tuple[str, ...]
    network_table: str | None = None
    network_type: Any = None
    task_table: str | None = None
    task_type: Any = None
    resolutions: tuple[float, ...] | None = None  # the time steps (ms) the architecture runs at; None: any


_ARCHITECTURES: dict[str, ArchitectureSections] = {}


def register_sections(sections: ArchitectureSections) -> None:
    """Declare an architecture to the configuration (called by :func:`nestgrad.networks.registry.register`)."""
    for table, owner in ((sections.network_table, NetworkConfig), (sections.task_table, TaskConfig)):
        if table is not None and table not in {f.name for f in dataclasses.fields(owner)}:
            raise ConfigError(f"architecture {sections.name!r}: {owner.__name__} has no table {table!r}")
    _ARCHITECTURES[sections.name] = sections


_GRADIENT_ALGORITHMS: list[str] = list(GRADIENT_ALGORITHMS)


def register_gradient_algorithm(name: str) -> None:
    """Make ``network.gradient_algorithm = <name>`` valid (called by
    :func:`nestgrad.networks.algorithms.register_algorithm`, which knows what the name means)."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ConfigError(f"gradient algorithm name {name!r} is invalid: a non-empty identifier is required")
    if name not in _GRADIENT_ALGORITHMS:
        _GRADIENT_ALGORITHMS.append(name)


def gradient_algorithms() -> tuple[str, ...]:
    """The names ``network.gradient_algorithm`` accepts: the built-ins and the registered ones."""
    return tuple(_GRADIENT_ALGORITHMS)


def architectures() -> dict[str, ArchitectureSections]:
    return dict(_ARCHITECTURES)


def task_names() -> tuple[str, ...]:
    return tuple(t for a in _ARCHITECTURES.values() for t in a.tasks)


# NEST's time base: times are integer multiples of a tic (0.001 ms unless tics_per_ms is changed, which nestgrad
# never does); a resolution must be a whole number of tics
TIC_MS = 0.001
# largest value NEST accepts as rng_seed (an unsigned 32-bit integer, 0 excluded)
MAX_RNG_SEED = 2**32 - 1
# hard upper bound of training.threads whatever the machine (the Trainer also checks 4 x the CPUs it runs on)
MAX_THREADS = 1024
MAX_SEED = 2**63 - 1
# neuron parameters whose NEST defaults are infinite (no lower bound of V_m, no cutoff): the only ones that may be
INFINITE_PARAMETERS = frozenset({"V_min", "eprop_isi_trace_cutoff", "flush_event_send_interval"})


def _require(condition: bool, key: str, value: Any, requirement: str) -> None:
    if not condition:
        raise ConfigError(f"{key} = {value!r} is invalid: {requirement}")


def _tables(owner: type) -> list[str]:
    """The fields of NetworkConfig / TaskConfig that hold an architecture's own table."""
    tables = {t for a in _ARCHITECTURES.values() for t in (a.network_table, a.task_table) if t}
    return [f.name for f in dataclasses.fields(owner) if f.name in tables | {"params"}]


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _int(x: Any) -> bool:
    """An integer, and not a boolean (TOML's ``true`` would pass ``isinstance(x, int)``)."""
    return isinstance(x, int) and not isinstance(x, bool)


def _is_time_constant(name: str) -> bool:
    return name.startswith("tau_") or name == "C_m"


def check_neuron_params(key: str, params: Any) -> None:
    """Neuron parameters: every number finite; time constants (``tau_*``) and ``C_m`` > 0; ``t_ref*`` >= 0. Lists
    (one value per receptor or per neuron) are checked element by element. ConfigError names ``key.name``."""
    _require(isinstance(params, dict), key, params, "a table of NEST parameters is required")
    for name, value in params.items():
        values = value if isinstance(value, list | tuple) else [value]
        for v in values:
            if isinstance(v, bool) or not isinstance(v, int | float):
                continue  # strings and flags are NEST's to check
            _require(
                math.isfinite(v) or (name in INFINITE_PARAMETERS and not math.isnan(v)),
                f"{key}.{name}",
                value,
                "a finite number is required",
            )
            if _is_time_constant(str(name)):
                _require(v > 0, f"{key}.{name}", value, "a time constant (or capacitance) must be > 0")
            elif str(name).startswith("t_ref"):
                _require(v >= 0, f"{key}.{name}", value, "a refractory time must be >= 0 ms")


def _check_tables(key: str, table: Any) -> None:
    """Every number in a nested table (microcircuit, v1) finite; neuron-parameter tables checked as such."""
    if isinstance(table, dict):
        for name, value in table.items():
            sub = f"{key}.{name}"
            if isinstance(value, dict) and str(name).endswith("params"):
                check_neuron_params(sub, value)
            else:
                _check_tables(sub, value)
    elif isinstance(table, list | tuple):
        for value in table:
            _check_tables(key, value)
    elif isinstance(table, float):
        _require(math.isfinite(table), key, table, "a finite number is required")


@dataclass(frozen=True)
class NetworkConfig:
    """The classic e-prop network: inputs -> recurrent neurons -> leaky readouts (Bellec et al. 2020).

    ``n_in`` and ``n_out`` of 0 mean "as the task needs". ``neuron_params`` and ``readout_params`` override the
    builder's defaults for the chosen models (NEST parameter names and units).
    """

    architecture: str = "classic"  # "classic" (Bellec et al.) or "microcircuit" (Potjans-Diesmann, pd_eprop)
    neuron_model: str = "eprop_iaf_psc_exp"
    n_rec: int = 100
    n_in: int = 0
    n_out: int = 0
    neuron_params: dict[str, Any] = field(default_factory=dict)
    readout_params: dict[str, Any] = field(default_factory=dict)
    recurrent: bool = True  # recurrent -> recurrent e-prop connections
    weight_scale: float = 1.0  # multiplies the default initial weights
    seed: int = 1  # initial weights and task data
    microcircuit: dict[str, Any] = field(default_factory=dict)  # EpropMicrocircuitConfig fields (architecture)
    v1: dict[str, Any] = field(default_factory=dict)  # nestgrad.config.v1.V1Config fields (architecture "v1")
    # "step": NEST's eprop_synapse (loop over each window); "event": nestgrad's eprop_event_synapse into the
    # recurrent neurons (running sums, O(1) per spike; docs/event_driven_eprop.md). Same weight updates. Or the name
    # of a registered algorithm (nestgrad.networks.algorithms); the built-ins become GradientAlgorithm members.
    gradient_algorithm: GradientAlgorithm | str = GradientAlgorithm.STEP
    params: dict[str, Any] = field(default_factory=dict)  # the table of a plug-in architecture (ArchitectureSections)
    # sparse connectivity and deep rewiring of the classic network (nestgrad.rewiring.RewiringConfig fields,
    # docs/deep_rewiring.md); empty: dense, no rewiring
    rewiring: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _require(
            isinstance(self.architecture, str) and self.architecture in _ARCHITECTURES,
            "network.architecture",
            self.architecture,
            f"one of {', '.join(_ARCHITECTURES)}",
        )
        _require(
            isinstance(self.neuron_model, str) and self.neuron_model != "",
            "network.neuron_model",
            self.neuron_model,
            "a model name is required",
        )
        for key in ("n_rec", "n_in", "n_out"):
            v = getattr(self, key)
            minimum = 1 if key == "n_rec" else 0
            _require(
                isinstance(v, int) and not isinstance(v, bool) and v >= minimum,
                f"network.{key}",
                v,
                f"an integer >= {minimum} is required",
            )
        _require(
            _finite(self.weight_scale) and self.weight_scale > 0,
            "network.weight_scale",
            self.weight_scale,
            "a finite number > 0 is required",
        )
        _require(
            _int(self.seed) and 0 <= self.seed <= MAX_SEED, "network.seed", self.seed, f"an integer in 0 ... {MAX_SEED}"
        )
        _require(isinstance(self.recurrent, bool), "network.recurrent", self.recurrent, "true or false")
        _require(
            isinstance(self.gradient_algorithm, str) and self.gradient_algorithm in _GRADIENT_ALGORITHMS,
            "network.gradient_algorithm",
            self.gradient_algorithm,
            f"one of {', '.join(_GRADIENT_ALGORITHMS)} (more are added by registering them: docs/architecture.md)",
        )
        if self.gradient_algorithm in GRADIENT_ALGORITHMS:
            object.__setattr__(self, "gradient_algorithm", GradientAlgorithm(self.gradient_algorithm))
        for key in ("neuron_params", "readout_params"):
            check_neuron_params(f"network.{key}", getattr(self, key))
        for key in ("microcircuit", "v1", "params"):
            _require(isinstance(getattr(self, key), dict), f"network.{key}", getattr(self, key), "a table")
        if self.rewiring:
            from nestgrad.rewiring import RewiringConfig

            _require(
                self.architecture == "classic",
                "network.rewiring",
                self.rewiring,
                "used with network.architecture = 'classic' only",
            )
            rw = RewiringConfig.from_dict(self.rewiring)
            _require(
                self.recurrent or rw.rec_fraction == 1.0,
                "network.rewiring.rec_fraction",
                rw.rec_fraction,
                "1 with network.recurrent = false (there are no recurrent connections)",
            )


@dataclass(frozen=True)
class TaskConfig:
    """The task. ``sine``: regression of a sum of four sines from frozen noise; ``evidence``: evidence
    accumulation (which side had more cues), a two-class classification with a recall period.

    Durations are in time steps of ``resolution`` ms.
    """

    name: str = "sine"
    resolution: float = 1.0  # ms
    sequence_steps: int = 1000  # sine: length of the pattern
    input_rate: float = 50.0  # Hz, sine: rate of the frozen input noise
    batch_size: int = 1  # trials per training iteration
    # evidence accumulation (Bellec et al. 2020, reduced): cue timing in steps
    n_cues: int = 7
    cue_steps: int = 100
    cue_spacing_steps: int = 50
    delay_steps: int = 600
    recall_steps: int = 150
    cue_rate: float = 40.0  # Hz, rate of a cue population while its cue is on
    background_rate: float = 10.0  # Hz
    # evidence: each trial's cues fall on the left with probability p or 1 - p (half of the trials each), p in [0.5, 1]
    cue_side_probability: float = 0.8
    # sine: periods (ms) of the summed sines; amplitudes (relative) and phases (rad): empty = drawn from network.seed
    sine_periods: tuple[float, ...] = (1000.0, 500.0, 333.0, 200.0)
    sine_amplitudes: tuple[float, ...] = ()
    sine_phases: tuple[float, ...] = ()
    v1: dict[str, Any] = field(default_factory=dict)  # nestgrad.config.v1.V1TaskConfig fields (v1_* tasks)
    params: dict[str, Any] = field(default_factory=dict)  # the task table of a plug-in architecture

    def __post_init__(self) -> None:
        _require(self.name in task_names(), "task.name", self.name, f"one of {', '.join(task_names())}")
        _require(
            _finite(self.resolution) and self.resolution >= TIC_MS,
            "task.resolution",
            self.resolution,
            f"a finite number of ms >= {TIC_MS} (NEST's tic)",
        )
        tics = self.resolution / TIC_MS
        _require(
            abs(tics - round(tics)) <= 1e-9 * tics,
            "task.resolution",
            self.resolution,
            f"a whole multiple of NEST's tic ({TIC_MS} ms), e.g. 0.1 or 1.0",
        )
        for key in ("sequence_steps", "batch_size", "n_cues", "cue_steps", "recall_steps"):
            v = getattr(self, key)
            _require(isinstance(v, int) and not isinstance(v, bool) and v >= 1, f"task.{key}", v, "an integer >= 1")
        for key in ("cue_spacing_steps", "delay_steps"):
            v = getattr(self, key)
            _require(isinstance(v, int) and not isinstance(v, bool) and v >= 0, f"task.{key}", v, "an integer >= 0")
        for key in ("input_rate", "cue_rate", "background_rate"):
            v = getattr(self, key)
            _require(
                _finite(v) and 0 <= v <= 1000.0 / self.resolution,
                f"task.{key}",
                v,
                f"a rate in Hz between 0 and 1/task.resolution ({1000.0 / self.resolution:g} Hz)",
            )
        if self.name == "evidence":
            _require(self.n_cues % 2 == 1, "task.n_cues", self.n_cues, "an odd number (so that one side wins)")
        _require(
            _finite(self.cue_side_probability) and 0.5 <= self.cue_side_probability <= 1.0,
            "task.cue_side_probability",
            self.cue_side_probability,
            "a probability in [0.5, 1]",
        )
        for key in ("sine_periods", "sine_amplitudes", "sine_phases"):
            v = getattr(self, key)
            _require(
                isinstance(v, list | tuple) and all(_finite(x) for x in v),
                f"task.{key}",
                v,
                "a list of finite numbers",
            )
            object.__setattr__(self, key, tuple(float(x) for x in v))  # TOML and JSON give lists
        _require(
            len(self.sine_periods) >= 1 and all(p > 0 for p in self.sine_periods),
            "task.sine_periods",
            list(self.sine_periods),
            "at least one period, every one > 0 ms",
        )
        for key in ("sine_amplitudes", "sine_phases"):
            v = getattr(self, key)
            _require(
                len(v) in (0, len(self.sine_periods)),
                f"task.{key}",
                list(v),
                f"empty (drawn from network.seed) or one value per period ({len(self.sine_periods)})",
            )


@dataclass(frozen=True)
class OptimizerConfig:
    """Settings of the weight optimizer of NEST's ``eprop_synapse`` (shared by all e-prop projections).

    ``batch_size`` is NEST's: the number of time steps over which gradients are summed (and averaged) before the
    weight changes; 1 updates at every presynaptic spike (NEST 3.10's continual e-prop).
    """

    type: OptimizerType = OptimizerType.GRADIENT_DESCENT
    eta: float = 1e-5
    batch_size: int = 1
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-8
    Wmin: float = -100.0
    Wmax: float = 100.0
    optimize_each_step: bool = False
    # Dale's law: every plastic weight keeps the sign it has at connection time (bounds [max(Wmin, 0), Wmax] for
    # weights >= 0, [Wmin, min(Wmax, 0)] for negative ones); excitatory neurons stay excitatory.
    sign_constrained: bool = False
    # step-wise learning-rate decay (PyTorch's StepLR): eta * eta_decay ** (iteration // eta_decay_every) for the
    # iterations after that many; applied between NEST kernels (the Trainer ends a segment at every step of it)
    eta_decay: float = 1.0
    eta_decay_every: int = 0  # iterations; 0: no decay

    def __post_init__(self) -> None:
        _require(self.type in OPTIMIZERS, "optimizer.type", self.type, f"one of {', '.join(OPTIMIZERS)}")
        object.__setattr__(self, "type", OptimizerType(self.type))
        _require(_finite(self.eta) and self.eta >= 0, "optimizer.eta", self.eta, "a finite number >= 0")
        _require(
            _int(self.batch_size) and self.batch_size >= 1,
            "optimizer.batch_size",
            self.batch_size,
            "an integer >= 1 (time steps)",
        )
        _require(_finite(self.beta_1) and 0 <= self.beta_1 < 1, "optimizer.beta_1", self.beta_1, "in [0, 1)")
        _require(_finite(self.beta_2) and 0 <= self.beta_2 < 1, "optimizer.beta_2", self.beta_2, "in [0, 1)")
        _require(_finite(self.epsilon) and self.epsilon >= 0, "optimizer.epsilon", self.epsilon, ">= 0")
        _require(
            _finite(self.Wmin) and _finite(self.Wmax) and self.Wmin < self.Wmax,
            "optimizer.Wmin/Wmax",
            (self.Wmin, self.Wmax),
            "finite with Wmin < Wmax",
        )
        for key in ("optimize_each_step", "sign_constrained"):
            _require(isinstance(getattr(self, key), bool), f"optimizer.{key}", getattr(self, key), "true or false")
        _require(
            _finite(self.eta_decay) and 0 < self.eta_decay <= 1, "optimizer.eta_decay", self.eta_decay, "in (0, 1]"
        )
        _require(
            _int(self.eta_decay_every) and self.eta_decay_every >= 0,
            "optimizer.eta_decay_every",
            self.eta_decay_every,
            "an integer >= 0 (iterations; 0: no decay)",
        )

    @property
    def decays(self) -> bool:
        return self.eta_decay_every > 0 and self.eta_decay != 1.0

    def at_iteration(self, done: int) -> OptimizerConfig:
        """These settings for the iterations after ``done`` completed ones: eta decayed
        ``done // eta_decay_every`` times (self when nothing decays)."""
        if not self.decays:
            return self
        return dataclasses.replace(self, eta=self.eta * self.eta_decay ** (done // self.eta_decay_every))

    def check_bounds(self, name: str, weights: Any) -> None:
        """Initial plastic weights must lie in [Wmin, Wmax]: NEST's optimizer would clip them at their first update."""
        import numpy as np

        w = np.asarray(weights, float)
        if w.size and (w.min() < self.Wmin or w.max() > self.Wmax):
            raise ConfigError(
                f"initial weights of {name!r} span [{w.min():.4g}, {w.max():.4g}] pA, outside optimizer.Wmin/Wmax = "
                f"[{self.Wmin:g}, {self.Wmax:g}]: the optimizer would clip them at the first update; widen "
                "[optimizer] Wmin/Wmax"
            )

    def nest_dict(self) -> dict[str, Any]:
        """The ``optimizer`` dictionary for ``nest.SetDefaults("eprop_synapse", ...)``."""
        d: dict[str, Any] = {
            "type": str(self.type),
            "eta": self.eta,
            "batch_size": self.batch_size,
            "Wmin": self.Wmin,
            "Wmax": self.Wmax,
            "optimize_each_step": self.optimize_each_step,
        }
        if self.type == OptimizerType.ADAM:
            d.update(beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon)
        return d


@dataclass(frozen=True)
class TrainingConfig:
    """How training runs.

    Each block of ``checkpoint_every`` iterations is simulated in one NEST kernel; at the block boundary the
    weights and optimizer state are saved and the network restarts from rest (membrane potentials and
    eligibility traces at zero). This makes a resumed run bit-identical to an uninterrupted one.
    """

    iterations: int = 50
    checkpoint_every: int = 10
    threads: int = 1
    rng_seed: int = 1  # NEST's random seed
    plot: bool = True
    record_neurons: int = 100  # recurrent neurons shown in the raster plot
    # training stops at once (TrainingDivergedError) when an iteration's loss is not finite or exceeds this factor
    # times the loss a silent readout (output 0) would have on the same trials ("exploding"); inf: non-finite only
    divergence_factor: float = 1000.0
    # weight averaging (Polyak; stochastic weight averaging, Izmailov et al. 2018): the trained network is the mean of
    # the weights at the checkpoints of the last this many iterations (0: the last weights). Training itself is
    # unchanged; ``evaluate`` and ``export-nir`` use the mean
    average_weights_last: int = 0

    def __post_init__(self) -> None:
        for key in ("iterations", "checkpoint_every", "threads", "rng_seed"):
            v = getattr(self, key)
            _require(_int(v) and v >= 1, f"training.{key}", v, "an integer >= 1")
        _require(
            self.threads <= MAX_THREADS,
            "training.threads",
            self.threads,
            f"at most {MAX_THREADS} (and at most 4 x the CPUs of the machine that runs it)",
        )
        _require(
            self.rng_seed <= MAX_RNG_SEED,
            "training.rng_seed",
            self.rng_seed,
            f"an integer in 1 ... {MAX_RNG_SEED} (NEST's seed is an unsigned 32-bit integer)",
        )
        _require(isinstance(self.plot, bool), "training.plot", self.plot, "true or false")
        _require(
            isinstance(self.divergence_factor, int | float)
            and not isinstance(self.divergence_factor, bool)
            and self.divergence_factor > 1,
            "training.divergence_factor",
            self.divergence_factor,
            "a number > 1 (inf: stop on non-finite losses only)",
        )
        _require(
            _int(self.record_neurons) and self.record_neurons >= 0,
            "training.record_neurons",
            self.record_neurons,
            "an integer >= 0",
        )
        _require(
            _int(self.average_weights_last) and 0 <= self.average_weights_last <= self.iterations,
            "training.average_weights_last",
            self.average_weights_last,
            f"an integer in 0 ... training.iterations = {self.iterations} (0: no averaging)",
        )


@dataclass(frozen=True)
class ExperimentConfig:
    network: NetworkConfig = field(default_factory=NetworkConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)

    def __post_init__(self) -> None:
        for key, klass in (
            ("network", NetworkConfig),
            ("task", TaskConfig),
            ("optimizer", OptimizerConfig),
            ("training", TrainingConfig),
        ):
            _require(isinstance(getattr(self, key), klass), key, getattr(self, key), f"a {klass.__name__}")
        for prefix, owner in (("network", self.network), ("task", self.task)):
            for table in _tables(type(owner)):
                _check_tables(f"{prefix}.{table}", getattr(owner, table))
        arch = _ARCHITECTURES[self.network.architecture]
        if self.task.name not in arch.tasks:
            owners = [a.name for a in _ARCHITECTURES.values() if self.task.name in a.tasks]
            raise ConfigError(
                f"task.name = {self.task.name!r} with network.architecture = {arch.name!r}: task "
                f"{self.task.name!r} goes with the {' or '.join(repr(o) for o in owners)} architecture; "
                f"{arch.name!r} trains {', '.join(repr(t) for t in arch.tasks)}"
            )
        if arch.resolutions is not None:
            _require(
                self.task.resolution in arch.resolutions,
                "task.resolution",
                self.task.resolution,
                f"{' or '.join(f'{r} ms' for r in arch.resolutions)} with network.architecture = {arch.name!r}",
            )
        for owner, prefix, table, klass in (
            (self.network, "network", arch.network_table, arch.network_type),
            (self.task, "task", arch.task_table, arch.task_type),
        ):
            for other in _tables(type(owner)):
                if other != table and getattr(owner, other):
                    raise ConfigError(
                        f"{prefix}.{other} is not used with network.architecture = {arch.name!r}"
                        + (f" (its table is {prefix}.{table})" if table else "")
                    )
            if klass is not None:
                self.section(prefix)

    def section(self, which: str) -> Any:
        """The typed table of this configuration's architecture: ``"network"`` (e.g. a V1Config) or ``"task"``
        (e.g. a V1TaskConfig); None if the architecture has no such table."""
        arch = _ARCHITECTURES[self.network.architecture]
        owner, table, klass = (
            (self.network, arch.network_table, arch.network_type)
            if which == "network"
            else (self.task, arch.task_table, arch.task_type)
        )
        if isinstance(klass, Mapping):
            klass = klass.get(self.task.name)  # one table class per task
        if klass is None:
            return None
        try:
            return klass.from_dict(getattr(owner, table))
        except ConfigError:
            raise
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{which}.{table}: {err}") from None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "configuration") -> ExperimentConfig:
        sections = {f.name: f.type for f in dataclasses.fields(cls)}
        classes = {
            "network": NetworkConfig,
            "task": TaskConfig,
            "optimizer": OptimizerConfig,
            "training": TrainingConfig,
        }
        if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
            raise ConfigError(f"{source}: a table of sections is required, found {type(data).__name__}")
        unknown = sorted(set(data) - set(sections))
        if unknown:
            raise ConfigError(f"{source}: unknown section(s) {unknown}; known sections: {sorted(sections)}")
        kwargs = {}
        for name, klass in classes.items():
            values = data.get(name, {})
            if not isinstance(values, dict) or not all(isinstance(k, str) for k in values):
                raise ConfigError(f"{source}: [{name}] must be a table")
            known = {f.name for f in dataclasses.fields(klass)}
            bad = sorted(set(values) - known)
            if bad:
                raise ConfigError(
                    f"{source}: unknown key(s) {', '.join(name + '.' + b for b in bad)}; "
                    f"known keys of [{name}]: {', '.join(sorted(known))}"
                )
            try:
                kwargs[name] = klass(**values)
            except ConfigError as err:
                raise ConfigError(f"{source}: {err}") from None
        return cls(**kwargs)

    @classmethod
    def from_toml(cls, path: str | pathlib.Path) -> ExperimentConfig:
        path = pathlib.Path(path)
        if not path.exists():
            raise ConfigError(f"configuration file {path} does not exist")
        if not path.is_file():
            raise ConfigError(f"configuration file {path} is not a file (a folder?); give a .toml file")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{path}: not valid TOML: {err}") from None
        except UnicodeDecodeError as err:
            raise ConfigError(f"{path}: not a text file (UTF-8): {err}") from None
        except OSError as err:
            raise ConfigError(f"configuration file {path} cannot be read: {err.strerror or err}") from None
        return cls.from_dict(data, source=str(path))

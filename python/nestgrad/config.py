"""Configuration of a training run: frozen dataclasses, validated on construction, loadable from TOML.

A TOML file has the sections ``[network]``, ``[task]``, ``[optimizer]`` and ``[training]``; every key is a field
of the matching dataclass below. Unknown sections or keys and bad values raise :class:`ConfigError` naming them,
before anything is simulated.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
import tomllib
from dataclasses import dataclass, field
from typing import Any

from nestgrad.errors import ConfigError

V1_TASK_NAMES = ("v1_orientation", "v1_digits", "v1_image_change", "v1_grating_change", "v1_evidence", "v1_multi")
TASKS = ("sine", "evidence", "thalamic", *V1_TASK_NAMES)
ARCHITECTURES = ("classic", "microcircuit", "v1")
GRADIENT_ALGORITHMS = ("step", "event")
OPTIMIZERS = ("gradient_descent", "adam")



def _require(condition: bool, key: str, value: Any, requirement: str) -> None:
    if not condition:
        raise ConfigError(f"{key} = {value!r} is invalid: {requirement}")


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


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
    v1: dict[str, Any] = field(default_factory=dict)  # nestgrad.networks.v1.V1Config fields (architecture "v1")
    # "step": NEST's eprop_synapse (loop over each window); "event": nestgrad's eprop_event_synapse into the
    # recurrent neurons (running sums, O(1) per spike; docs/event_driven_eprop.md). Same weight updates.
    gradient_algorithm: str = "step"

    def __post_init__(self) -> None:
        _require(
            self.architecture in ARCHITECTURES,
            "network.architecture",
            self.architecture,
            f"one of {', '.join(ARCHITECTURES)}",
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
        _require(isinstance(self.seed, int) and self.seed >= 0, "network.seed", self.seed, "an integer >= 0")
        _require(
            self.gradient_algorithm in GRADIENT_ALGORITHMS,
            "network.gradient_algorithm",
            self.gradient_algorithm,
            f"one of {', '.join(GRADIENT_ALGORITHMS)}",
        )
        for key in ("neuron_params", "readout_params"):
            params = getattr(self, key)
            _require(isinstance(params, dict), f"network.{key}", params, "a table of NEST parameters is required")
            for name, value in params.items():
                if isinstance(value, float):
                    _require(not math.isnan(value), f"network.{key}.{name}", value, "NaN is not a parameter value")


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
    v1: dict[str, Any] = field(default_factory=dict)  # nestgrad.v1_tasks.V1TaskConfig fields (v1_* tasks)

    def __post_init__(self) -> None:
        _require(self.name in TASKS, "task.name", self.name, f"one of {', '.join(TASKS)}")
        _require(_finite(self.resolution) and self.resolution > 0, "task.resolution", self.resolution, "> 0 ms")
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
                "a rate in Hz between 0 and 1/resolution",
            )
        if self.name == "evidence":
            _require(self.n_cues % 2 == 1, "task.n_cues", self.n_cues, "an odd number (so that one side wins)")


@dataclass(frozen=True)
class OptimizerConfig:
    """Settings of the weight optimizer of NEST's ``eprop_synapse`` (shared by all e-prop projections).

    ``batch_size`` is NEST's: the number of time steps over which gradients are summed (and averaged) before the
    weight changes; 1 updates at every presynaptic spike (NEST 3.10's continual e-prop).
    """

    type: str = "gradient_descent"
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

    def __post_init__(self) -> None:
        _require(self.type in OPTIMIZERS, "optimizer.type", self.type, f"one of {', '.join(OPTIMIZERS)}")
        _require(_finite(self.eta) and self.eta >= 0, "optimizer.eta", self.eta, "a finite number >= 0")
        _require(
            isinstance(self.batch_size, int) and self.batch_size >= 1,
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

    def check_bounds(self, name: str, weights: Any) -> None:
        """Initial plastic weights must lie in [Wmin, Wmax]: NEST's optimizer would clip them at their first update."""
        import numpy as np

        w = np.asarray(weights, float)
        if w.size and (w.min() < self.Wmin or w.max() > self.Wmax):
            raise ValueError(
                f"initial weights of {name!r} span [{w.min():.4g}, {w.max():.4g}] pA, outside optimizer.Wmin/Wmax = "
                f"[{self.Wmin:g}, {self.Wmax:g}]: the optimizer would clip them at the first update; widen "
                "[optimizer] Wmin/Wmax"
            )

    def signed_bounds(self, sign: str) -> tuple[float, float]:
        """(Wmin, Wmax) of the synapses whose initial weight is ``"nonneg"`` or ``"neg"`` under Dale's law."""
        if sign == "nonneg":
            return max(self.Wmin, 0.0), self.Wmax
        return self.Wmin, min(self.Wmax, 0.0)

    def nest_dict(self) -> dict[str, Any]:
        """The ``optimizer`` dictionary for ``nest.SetDefaults("eprop_synapse", ...)``."""
        d: dict[str, Any] = {
            "type": self.type,
            "eta": self.eta,
            "batch_size": self.batch_size,
            "Wmin": self.Wmin,
            "Wmax": self.Wmax,
            "optimize_each_step": self.optimize_each_step,
        }
        if self.type == "adam":
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

    def __post_init__(self) -> None:
        for key in ("iterations", "checkpoint_every", "threads", "rng_seed"):
            v = getattr(self, key)
            _require(isinstance(v, int) and not isinstance(v, bool) and v >= 1, f"training.{key}", v, "an integer >= 1")
        _require(
            isinstance(self.record_neurons, int) and self.record_neurons >= 0,
            "training.record_neurons",
            self.record_neurons,
            "an integer >= 0",
        )


@dataclass(frozen=True)
class ExperimentConfig:
    network: NetworkConfig = field(default_factory=NetworkConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)

    def __post_init__(self) -> None:
        micro = self.network.architecture == "microcircuit"
        v1 = self.network.architecture == "v1"
        expected = (
            "microcircuit" if self.task.name == "thalamic" else "v1" if self.task.name in V1_TASK_NAMES else "classic"
        )
        if self.network.architecture != expected:
            raise ConfigError(
                f"task.name = {self.task.name!r} with network.architecture = "
                f"{self.network.architecture!r}: the 'thalamic' task goes with the 'microcircuit' "
                "architecture, the v1_* tasks with 'v1', the other tasks with 'classic'"
            )
        if v1:
            from nestgrad.networks.v1 import V1Config
            from nestgrad.v1_tasks import V1TaskConfig

            try:
                V1Config.from_dict(self.network.v1)
                V1TaskConfig.from_dict(self.task.v1)
            except (TypeError, ValueError) as err:
                raise ConfigError(str(err)) from None
        elif self.network.v1 or self.task.v1:
            raise ConfigError("network.v1 and task.v1 are only used with network.architecture = 'v1'")
        if micro:
            from nestgrad.networks.pd_eprop import EpropMicrocircuitConfig

            try:
                EpropMicrocircuitConfig.from_dict(self.network.microcircuit)
            except (TypeError, ValueError) as err:
                raise ConfigError(str(err)) from None
        elif self.network.microcircuit:
            raise ConfigError("network.microcircuit is only used with network.architecture = 'microcircuit'")

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
        unknown = sorted(set(data) - set(sections))
        if unknown:
            raise ConfigError(f"{source}: unknown section(s) {unknown}; known sections: {sorted(sections)}")
        kwargs = {}
        for name, klass in classes.items():
            values = data.get(name, {})
            if not isinstance(values, dict):
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
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{path}: not valid TOML: {err}") from None
        return cls.from_dict(data, source=str(path))

"""The registry of architectures: what ``network.architecture`` names, and how a configuration becomes a learner
and its task.

An :class:`Architecture` joins what the configuration knows of it (its tasks and the dataclasses of its tables,
:class:`~nestgrad.config.ArchitectureSections`) with a factory that makes the learner
(:class:`~nestgrad.networks.base.Learner`) and the task. The Trainer looks architectures up here and never branches
on their names; a new network plugs in with one call to :func:`register` (docs/architecture.md has a worked
example). Where a gradient algorithm needs another network than the architecture's factory builds (EventProp's
neurons instead of e-prop's), :func:`register_learner` names the learner for that (architecture, algorithm) pair:
built in, the V1 column with EventProp (:class:`~nestgrad.networks.v1_eventprop.V1EventpropLearner`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nestgrad import resources
from nestgrad.config import ArchitectureSections, ConfigError, ExperimentConfig, architectures, register_sections
from nestgrad.errors import ModelError
from nestgrad.networks.base import Learner
from nestgrad.resources import NetworkSize
from nestgrad.tasks import Task

LearnerFactory = Callable[[ExperimentConfig], tuple[Learner, Task]]


@dataclass(frozen=True)
class Architecture:
    sections: ArchitectureSections
    make: LearnerFactory  # configuration -> (learner, task); raises ConfigError for what does not fit
    # configuration -> the sizes memory grows with, estimated before anything is built (None: not checked)
    size: Callable[[ExperimentConfig], NetworkSize] | None = None

    @property
    def name(self) -> str:
        return self.sections.name


_REGISTRY: dict[str, Architecture] = {}


@dataclass(frozen=True)
class AlgorithmLearner:
    """The learner an architecture uses for one gradient algorithm, where that algorithm needs another network than
    the architecture's own factory builds (EventProp's neurons instead of e-prop's)."""

    make: LearnerFactory
    size: Callable[[ExperimentConfig], NetworkSize] | None = None


_ALGORITHM_LEARNERS: dict[tuple[str, str], AlgorithmLearner] = {}


def register(architecture: Architecture) -> None:
    """Make ``network.architecture = <name>`` mean ``architecture`` (its tasks and tables are validated by the
    configuration from then on)."""
    register_sections(architecture.sections)
    _REGISTRY[architecture.name] = architecture


def register_learner(architecture: str, gradient_algorithm: str, learner: AlgorithmLearner) -> None:
    """Make ``network.architecture = <architecture>`` with ``network.gradient_algorithm = <gradient_algorithm>``
    build its learner with ``learner`` instead of the architecture's factory (other algorithms keep that one).
    Registering a pair again replaces it."""
    _ALGORITHM_LEARNERS[(architecture, str(gradient_algorithm))] = learner


def get(name: str) -> Architecture:
    if name not in _REGISTRY:
        raise ConfigError(f"network.architecture = {name!r} is not registered; known: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def make_learner(config: ExperimentConfig) -> tuple[Learner, Task]:
    """The learner and task of ``config`` (the architecture's, or the one registered for its gradient algorithm,
    :func:`register_learner`), after a check that the run fits in memory (ResourceError, before anything
    large is allocated) and of the number of threads."""
    arch = get(config.network.architecture)
    special = _ALGORITHM_LEARNERS.get((arch.name, str(config.network.gradient_algorithm)))
    size = special.size if special is not None else arch.size
    if size is not None:
        resources.check_training(config, size(config))
    else:
        resources.check_threads(config.training.threads)
    return (special.make if special is not None else arch.make)(config)


# -- sizes of the built-in architectures (coarse, from the configuration alone) ------------------------------------
def _trial_steps(task: Any) -> int:
    if task.name == "sine":
        return int(task.sequence_steps)
    if task.name == "evidence":
        return int(task.n_cues * (task.cue_steps + task.cue_spacing_steps) + task.delay_steps + task.recall_steps)
    return int(task.cue_steps + task.delay_steps + task.recall_steps)  # thalamic


def _size_classic(config: ExperimentConfig) -> NetworkSize:
    net, task = config.network, config.task
    n_in = net.n_in or (100 if task.name == "sine" else 40)
    n_out = net.n_out or (1 if task.name == "sine" else 2)
    steps = _trial_steps(task)
    if task.name == "dvs_glyphs":  # sizes and trial length from its table [task.params]
        dvs = config.section("task")
        n_in, n_out = net.n_in or dvs.n_in, net.n_out or dvs.n_classes
        steps = int(round(dvs.duration_ms / task.resolution))
    neurons, synapses, dense = resources.classic_size(n_in, net.n_rec, n_out, net.recurrent)
    if net.rewiring:  # sparse projections (network.rewiring): NEST holds the drawn connections only
        from nestgrad.rewiring import RewiringConfig, connection_count

        rw, n = RewiringConfig.from_dict(net.rewiring), net.n_rec
        rec = n * (n - 1) if net.recurrent else 0
        sparse_rec = connection_count(rw.rec_fraction, n, n, False) if net.recurrent else 0
        synapses += connection_count(rw.in_fraction, n, n_in, True) + sparse_rec - n_in * n - rec
        dense += n_in * n + n * n  # the connectivity masks beside the dense weight matrices
    return NetworkSize(neurons, synapses, dense, float(task.batch_size) * steps * (n_in + 8 * (n_out + 1)))


def _size_microcircuit(config: ExperimentConfig) -> NetworkSize:
    mc, task = config.section("network"), config.task
    neurons, synapses, dense = resources.microcircuit_size(mc.n_scaling, mc.k_scaling)
    return NetworkSize(neurons, synapses, dense, float(task.batch_size) * _trial_steps(task) * 8 * 3)


def _size_v1(config: ExperimentConfig) -> NetworkSize:
    # the V1 tasks' trials are short and their LGN is sized by the column: counted in the synapses
    return NetworkSize(*resources.v1_size(config.section("network").n_neurons), 0.0)


# -- the built-in architectures (imports inside the factories keep `import nestgrad.networks` light) ------------------
def _make_classic(config: ExperimentConfig) -> tuple[Learner, Task]:
    from nestgrad.networks.eprop_classic import EpropNetwork
    from nestgrad.tasks import make_task

    task = make_task(config.task, config.network.seed)
    n_in = config.network.n_in or task.n_in
    n_out = config.network.n_out or task.n_out
    if n_in != task.n_in or n_out != task.n_out:
        raise ConfigError(
            f"task {config.task.name!r} needs n_in = {task.n_in} and n_out = {task.n_out}; the configuration asks "
            f"for network.n_in = {n_in} and network.n_out = {n_out}"
        )
    net = EpropNetwork(config.network, config.optimizer, n_in, n_out, config.task.resolution)
    # the signs of the initial weights choose receptor ports and Dale's copies in every block
    net.sign_reference = net.initial_weights(config.network.seed, dense=True)
    return net, task


def _make_microcircuit(config: ExperimentConfig) -> tuple[Learner, Task]:
    from nestgrad.networks.pd_eprop import EpropMicrocircuit
    from nestgrad.tasks import make_task

    mc = config.section("network")
    task = make_task(config.task, config.network.seed, n_in=mc.n_thalamus)
    net = EpropMicrocircuit(
        mc,
        config.optimizer,
        task.n_out,
        config.task.resolution,
        config.network.neuron_params,
        config.network.gradient_algorithm,
    )
    return net, task


def _make_v1(config: ExperimentConfig) -> tuple[Learner, Task]:
    from nestgrad.networks.v1 import V1Network
    from nestgrad.tasks.v1 import V1_TASKS, make_v1_task

    net = V1Network(
        config.section("network"),
        config.optimizer,
        V1_TASKS[config.task.name].n_out,
        config.task.resolution,
        config.network.gradient_algorithm,
    )
    task = make_v1_task(
        config.task.name,
        config.section("task"),
        config.network.seed,
        net.lgn,
        config.task.resolution,
        config.task.batch_size,
    )
    return net, task


def _make_v1_eventprop(config: ExperimentConfig) -> tuple[Learner, Task]:
    from nestgrad.networks.v1_eventprop import make_v1_eventprop_learner

    column, task = _make_v1(config)
    return make_v1_eventprop_learner(column, task, config.task.resolution), task  # type: ignore[return-value]


def _size_v1_eventprop(config: ExperimentConfig) -> NetworkSize:
    neurons, synapses, dense = resources.v1_size(config.section("network").n_neurons)
    return NetworkSize(neurons, 2 * synapses, dense, 0.0)  # every edge has a reverse copy for the backward pass


def _make_eventprop(config: ExperimentConfig) -> tuple[Learner, Task]:
    from nestgrad.networks.eventprop import DigitsTask, EventpropLearner, YinYangTask
    from nestgrad.tasks.digits_latency import DigitsLatency
    from nestgrad.tasks.yinyang import YinYangSpikes

    model = config.network.neuron_model
    if model not in ("eventprop_iaf_psc_exp_ps", "eprop_iaf_psc_exp"):  # the latter: the configuration's default
        raise ModelError(
            f"network.neuron_model = {model!r} has no EventProp adjoint in nestgrad; the eventprop architecture "
            "trains eventprop_iaf_psc_exp_ps (exact spike times, exponential current, refractoriness, adaptation)"
        )
    c = config.section("network")
    if config.task.name == "evidence_spikes":
        from nestgrad.networks.eventprop import EvidenceTask
        from nestgrad.tasks.evidence_spikes import EvidenceSpikes

        task: Any = EvidenceTask(EvidenceSpikes(config.section("task"), config.task.batch_size, config.network.seed))
        net = EventpropLearner(c, config.optimizer, task.n_in, task.n_out, config.task.resolution)
        duration = task.duration
        if net.config.window_start is None:
            net.window_start = task.recall_start  # the decision is read in the recall period
    else:
        yinyang = config.task.name == "yinyang"
        data = YinYangSpikes(config.section("task")) if yinyang else DigitsLatency(config.section("task"))
        net = EventpropLearner(c, config.optimizer, data.n_in, data.n_out, config.task.resolution)
        duration = data.duration
        task = (YinYangTask if yinyang else DigitsTask)(data, config.task.batch_size, config.network.seed)
    net.trial_duration = duration
    if c.bias_time is not None and not c.bias_time < duration:
        raise ConfigError(
            f"network.params.bias_time = {c.bias_time} ms: need < the trial duration {duration} ms "
            "(task.params.duration)"
        )
    if not net.window_start < duration:
        raise ConfigError(f"network.params.window_start = {net.window_start} ms: need < the trial's {duration} ms")
    return net, task  # type: ignore[return-value]


def _size_eventprop(config: ExperimentConfig) -> NetworkSize:
    c, task = config.section("network"), config.section("task")
    yinyang = config.task.name == "yinyang"
    n_in, n_out, h = (4, 3, c.n_hidden) if yinyang else (task.n_in, getattr(task, "n_out", 10), c.n_hidden)
    n_in += c.bias_time is not None
    synapses = 2 * (n_in * h + h * n_out + (h * (h - 1) if c.recurrent else 0))  # forward and reverse copies
    return NetworkSize(n_in + h + n_out, synapses, 0, float(config.task.batch_size) * n_in * 8)


# the configuration declared the built-in architectures' sections (nestgrad.config); here they get their factories
for _name, _make, _size in (
    ("classic", _make_classic, _size_classic),
    ("microcircuit", _make_microcircuit, _size_microcircuit),
    ("v1", _make_v1, _size_v1),
    ("eventprop", _make_eventprop, _size_eventprop),
):
    register(Architecture(architectures()[_name], _make, _size))
register_learner("v1", "eventprop", AlgorithmLearner(_make_v1_eventprop, _size_v1_eventprop))

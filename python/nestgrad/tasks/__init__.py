"""Tasks: input spike trains, targets and learning windows, generated offline and deterministically.

The data of iteration ``k`` depend only on the task configuration, the seed and ``k``, so a resumed run sees the
same trials as an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nestgrad.config import TaskConfig
from nestgrad.errors import ConfigError

# task batch indices of evaluation batches: far beyond any training iteration, so never trained on (tasks with a test
# split draw these batches from it)
EVALUATION_FIRST_BATCH = 1_000_000


@dataclass(frozen=True)
class TaskReadouts:
    """Several tasks trained together, each with its own readouts (Chen et al. 2022 train five tasks at once and score
    each on its own readouts): a trial's decision is the largest of its task's readouts, and accuracy is reported
    per task as well."""

    names: tuple[str, ...]  # the tasks
    readouts: tuple[tuple[int, int], ...]  # per task its readouts, [first, end)
    of_trial: np.ndarray  # int, (batch_size,): the task of each trial (index into ``names``)

    def __post_init__(self) -> None:
        if len(self.names) != len(self.readouts):
            raise ValueError(f"TaskReadouts: {len(self.names)} names for {len(self.readouts)} readout ranges")
        if np.size(self.of_trial) and not (np.min(self.of_trial) >= 0 and np.max(self.of_trial) < len(self.names)):
            raise ValueError(f"TaskReadouts: of_trial {np.asarray(self.of_trial).tolist()} outside 0 ... "
                             f"{len(self.names) - 1}")  # fmt: skip

    def trials_per_task(self) -> dict[str, int]:
        counts = np.bincount(np.asarray(self.of_trial, np.int64), minlength=len(self.names))
        return {name: int(c) for name, c in zip(self.names, counts, strict=True)}


@dataclass(frozen=True)
class TrialBatch:
    """The data of one training iteration: ``batch_size`` trials back to back.

    Arrays are indexed by time step (``resolution`` ms each) from the start of the iteration.
    """

    input_spikes: np.ndarray  # bool, (steps, n_in)
    target: np.ndarray  # float, (steps, n_out)
    learning_window: np.ndarray  # float in {0, 1}, (steps,): where the loss and learning signals count
    trial_steps: int
    labels: np.ndarray | None = None  # int, (batch_size,), classification tasks only
    # per trial what was shown, by name (task-specific, e.g. the V1 image-change task's "image_a", "image_b"), for
    # analyses that need more than the label; None: the task does not say
    stimuli: list[dict[str, float]] | None = None
    # several tasks at once: which readouts each trial answers with; None: every trial answers among all readouts
    task_readouts: TaskReadouts | None = None

    @property
    def steps(self) -> int:
        return self.input_spikes.shape[0]

    @property
    def n_trials(self) -> int:
        return self.steps // self.trial_steps

    @property
    def nbytes(self) -> int:
        """Memory of the batch's data (the Trainer bounds what one simulated segment holds)."""
        return self.input_spikes.nbytes + self.target.nbytes + self.learning_window.nbytes


class Task:
    """Base class: a task knows its input and output sizes and makes the trials of an iteration."""

    kind = "regression"

    def __init__(self, config: TaskConfig, seed: int):
        self.config = config
        self.seed = seed

    n_in: int
    n_out: int
    trial_steps: int

    def batch(self, iteration: int) -> TrialBatch:
        raise NotImplementedError

    def _rng(self, iteration: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, iteration])


class SineWaveTask(Task):
    """Pattern generation (Bellec et al. 2020, Fig. 2): reproduce a fixed sum of sines (by default four, periods
    1000, 500, 333 and 200 ms, random amplitudes and phases; ``task.sine_periods``, ``sine_amplitudes`` and
    ``sine_phases`` choose them) from fixed ("frozen") Poisson input noise. The target is shifted to start at 0 and
    scaled to a peak of 1."""

    n_in = 100
    n_out = 1

    def __init__(self, config: TaskConfig, seed: int):
        super().__init__(config, seed)
        self.trial_steps = config.sequence_steps
        rng = np.random.default_rng([seed, 0xF0])
        p = config.input_rate * config.resolution / 1000.0
        self._input = rng.random((self.trial_steps, self.n_in)) < p
        periods_ms = np.array(config.sine_periods)
        # drawn in this order whatever is given, so that the defaults reproduce the targets of earlier versions
        amplitudes = rng.uniform(0.5, 2.0, periods_ms.size)
        phases = rng.uniform(0.0, 2.0 * np.pi, periods_ms.size)
        if config.sine_amplitudes:
            amplitudes = np.array(config.sine_amplitudes)
        if config.sine_phases:
            phases = np.array(config.sine_phases)
        t = np.arange(self.trial_steps) * config.resolution
        signal = (amplitudes[:, None] * np.sin(2 * np.pi * t[None, :] / periods_ms[:, None] + phases[:, None])).sum(0)
        signal -= signal[0]
        signal /= max(np.abs(signal).max(), 1e-12)
        self._target = signal[:, None]

    def batch(self, iteration: int) -> TrialBatch:
        b = self.config.batch_size
        return TrialBatch(
            input_spikes=np.tile(self._input, (b, 1)),
            target=np.tile(self._target, (b, 1)),
            learning_window=np.ones(b * self.trial_steps),
            trial_steps=self.trial_steps,
        )


class EvidenceAccumulationTask(Task):
    """Evidence accumulation (Bellec et al. 2020, Fig. 3, after Morcos & Harvey 2016): ``n_cues`` cues, each on
    the left or the right, then a delay, then a recall cue; the network must tell which side had more cues.

    Inputs: four populations of 10 neurons (left cues, right cues, recall cue, background noise). Outputs: two
    readouts trained towards a one-hot target during the recall period (the learning window); the decision is the
    readout with the larger mean over the recall period.
    """

    kind = "classification"
    n_in = 40
    n_out = 2
    group = 10

    def __init__(self, config: TaskConfig, seed: int):
        super().__init__(config, seed)
        c = config
        self.cue_period = c.cue_steps + c.cue_spacing_steps
        self.recall_start = c.n_cues * self.cue_period + c.delay_steps
        self.trial_steps = self.recall_start + c.recall_steps

    def batch(self, iteration: int) -> TrialBatch:
        c = self.config
        rng = self._rng(iteration)
        to_p = c.resolution / 1000.0
        trials_in, trials_target, trials_window, labels = [], [], [], []
        for _ in range(c.batch_size):
            rate = np.zeros((self.trial_steps, self.n_in))
            rate[:, 3 * self.group :] = c.background_rate
            # bias the cue side per trial so that both close and clear majorities occur
            p = c.cue_side_probability
            p_left = rng.choice([1.0 - p, p])
            sides = (rng.random(c.n_cues) >= p_left).astype(int)  # 0 = left, 1 = right
            for i, side in enumerate(sides):
                start = i * self.cue_period
                rate[start : start + c.cue_steps, side * self.group : (side + 1) * self.group] = c.cue_rate
            rate[self.recall_start :, 2 * self.group : 3 * self.group] = c.cue_rate
            label = int(sides.sum() > c.n_cues // 2)
            target = np.zeros((self.trial_steps, self.n_out))
            target[self.recall_start :, label] = 1.0
            window = np.zeros(self.trial_steps)
            window[self.recall_start :] = 1.0
            trials_in.append(rng.random(rate.shape) < rate * to_p)
            trials_target.append(target)
            trials_window.append(window)
            labels.append(label)
        return TrialBatch(
            input_spikes=np.concatenate(trials_in),
            target=np.concatenate(trials_target),
            learning_window=np.concatenate(trials_window),
            trial_steps=self.trial_steps,
            labels=np.array(labels),
        )


class ThalamicPatternTask(Task):
    """Two-class discrimination through the thalamus of the microcircuit: each class is a fixed random half of the
    thalamic neurons firing at ``cue_rate`` for ``cue_steps``; after ``delay_steps`` the readout of the class must be
    high and the other low for ``recall_steps`` (the learning window). ``n_in`` is the thalamus size."""

    kind = "classification"
    n_out = 2

    def __init__(self, config: TaskConfig, seed: int, n_in: int):
        super().__init__(config, seed)
        self.n_in = n_in
        rng = np.random.default_rng([seed, 0x7A])
        order = rng.permutation(n_in)
        self.patterns = [order[: n_in // 2], order[n_in // 2 :]]
        self.recall_start = config.cue_steps + config.delay_steps
        self.trial_steps = self.recall_start + config.recall_steps

    def batch(self, iteration: int) -> TrialBatch:
        c = self.config
        rng = self._rng(iteration)
        p_on = c.cue_rate * c.resolution / 1000.0
        p_bg = c.background_rate * c.resolution / 1000.0
        ins, targets, windows, labels = [], [], [], []
        for _ in range(c.batch_size):
            label = int(rng.integers(2))
            p = np.full((self.trial_steps, self.n_in), p_bg)
            p[: c.cue_steps, self.patterns[label]] = p_on
            target = np.zeros((self.trial_steps, 2))
            target[self.recall_start :, label] = 1.0
            window = np.zeros(self.trial_steps)
            window[self.recall_start :] = 1.0
            ins.append(rng.random(p.shape) < p)
            targets.append(target)
            windows.append(window)
            labels.append(label)
        return TrialBatch(
            np.concatenate(ins), np.concatenate(targets), np.concatenate(windows), self.trial_steps, np.array(labels)
        )


TASK_CLASSES: dict[str, type[Task]] = {
    "sine": SineWaveTask,
    "evidence": EvidenceAccumulationTask,
    "thalamic": ThalamicPatternTask,
}


def make_task(config: TaskConfig, seed: int, n_in: int | None = None) -> Task:
    if config.name == "thalamic":
        if n_in is None:
            raise ConfigError(
                "task 'thalamic' drives the microcircuit's thalamus: use network.architecture = 'microcircuit'"
            )
        return ThalamicPatternTask(config, seed, n_in)
    if config.name == "dvs_glyphs":
        from nestgrad.tasks.dvs_glyphs import DvsGlyphsTask  # imports this module

        return DvsGlyphsTask(config, seed)
    if config.params:
        raise ConfigError(f"task.params is used by the task 'dvs_glyphs' only, not by task.name = {config.name!r}")
    return TASK_CLASSES[config.name](config, seed)


def mse_loss(readout: np.ndarray, target: np.ndarray, window: np.ndarray, trial_steps: int) -> float:
    """0.5 * sum over steps and outputs of (y - y*)^2 inside the learning window, averaged over trials."""
    n_trials = readout.shape[0] // trial_steps
    return float(0.5 * np.sum(window[:, None] * (readout - target) ** 2) / n_trials)


def _decisions(readout: np.ndarray, batch: TrialBatch) -> np.ndarray:
    """Per trial the readout with the largest mean inside the learning window (among the trial's task's readouts if
    the batch has :class:`TaskReadouts`)."""
    if batch.labels is None:
        raise ConfigError("accuracy needs a classification task")
    n = batch.labels.size
    y = readout.reshape(n, batch.trial_steps, -1)
    w = batch.learning_window.reshape(n, batch.trial_steps)[:, :, None]
    means = (y * w).sum(1)  # [trials, readouts]
    tasks = batch.task_readouts
    if tasks is None:
        return np.argmax(means, axis=1)
    decision = np.empty(n, np.int64)
    for k, j in enumerate(np.asarray(tasks.of_trial)):
        first, end = tasks.readouts[j]
        decision[k] = first + int(np.argmax(means[k, first:end]))
    return decision


def accuracy(readout: np.ndarray, batch: TrialBatch) -> float:
    """Fraction of trials whose readout with the largest mean inside the learning window is the label (the largest
    among the trial's own task's readouts, if the batch has :class:`TaskReadouts`)."""
    return float(np.mean(_decisions(readout, batch) == batch.labels))


def accuracy_per_task(readout: np.ndarray, batch: TrialBatch) -> dict[str, float]:
    """For a batch with :class:`TaskReadouts`: per task, the fraction of its trials that :func:`accuracy` counts as
    right; NaN for a task without trials in the batch. Empty for a batch of one task."""
    tasks = batch.task_readouts
    if tasks is None:
        return {}
    right = _decisions(readout, batch) == batch.labels
    of_trial = np.asarray(tasks.of_trial)
    return {
        name: float(np.mean(right[of_trial == j])) if np.any(of_trial == j) else float("nan")
        for j, name in enumerate(tasks.names)
    }

"""The five visual tasks of Chen et al. (2022, Science Advances, eabq7592) for the V1 model, stimuli generated offline.

Every trial is a short movie of static frames (120 x 240 px, 1 px = 1 deg, values in [-1, 1], 0 = gray; see
:mod:`nestgrad.tasks.lgn`) that the LGN turns into spike trains (``lgn.rates`` then ``lgn.spikes`` with the task's
random generator). Each task has one readout per class; the target is one-hot (1 for the label's readout, 0 for
the others) inside the response window, which is the learning window, and 0 elsewhere. The decision
(:func:`nestgrad.tasks.accuracy`) is the readout with the largest mean inside the window.

Timings (Chen et al., multi_training.py flags; all durations are multiplied by ``time_scale``; 600 ms per trial):

* ``v1_orientation`` (fine orientation discrimination): 50 ms gray, 100 ms static grating (0.05 cycles/deg, random
  phase, or the fixed phase ``orientation_phase_deg``) at 45 deg +- up to ``orientation_difference_deg`` (0.1 deg
  steps; 45 itself is left out so that every stimulus has a defined answer), 450 ms gray; label 1 if the orientation
  is > 45 deg. Response window 150-200 ms.
* ``v1_digits``: like the orientation task with an 8 x 8 scikit-learn digit (16 levels) upsampled to 120 x 120 and
  padded with gray to 120 x 240; 10 classes.
* ``v1_image_change``: 50 ms gray, image A 100 ms, 200 ms gray, image B 100 ms, 150 ms gray; B = A with probability
  ``p_reappear``, else another image of a fixed set of ``n_images`` smooth random (1/f) images; label 1 = change,
  0 = no change. Response window 150-200 ms after B's onset (500-550 ms), as Chen's fourth 50-ms chunk after the
  onset of a 300-ms presentation.
* ``v1_grating_change``: the same with static gratings of 120-150 deg (0.1 deg steps); a change is a different
  orientation.
* ``v1_evidence``: 5 cues x (50 ms cue + 10 ms gray), 250 ms gray, 50 ms recall; a cue is a bright (``contrast``)
  bar of ``cue_width_deg`` next to the vertical midline in the left or the right half of the field, the recall cue
  a full-field dark flash; label 0 = more cues on the left, 1 = on the right. Response window = the recall period.
* ``v1_multi``: all five, each trial from one task, readouts concatenated (2 + 10 + 2 + 2 + 2 = 18).

Orientations are directions of the grating's wave vector in the field's (x, y) = (column, row) coordinates, the
convention of the LGN unit positions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from nestgrad.config.v1 import FIELD_SHAPE, V1TaskConfig
from nestgrad.errors import ConfigError
from nestgrad.tasks import Task, TaskReadouts, TrialBatch
from nestgrad.tasks.lgn import LGN, pixel_centres

_x_deg, _y_deg = pixel_centres()
_GRAY = np.zeros(FIELD_SHAPE)
DIGIT_SPLIT_SEED = 0xD161  # fixed train/test permutation of the digits, independent of the task seed
DIGIT_TEST_FRACTION = 0.2


@dataclass(frozen=True)
class V1Trial:
    """One trial's stimulus: the movie shows ``frames[frame_of_step[t]]`` in step t."""

    frames: np.ndarray  # [n_frames, 120, 240]
    frame_of_step: np.ndarray  # int, [trial_steps]
    label: int
    window: np.ndarray  # float {0, 1}, [trial_steps]
    # what was shown, by name (orientation and phase, the digit's index in scikit-learn's set, images A and B, ...)
    stimulus: dict[str, float] = field(default_factory=dict)


# -- stimuli ---------------------------------------------------------------------------------------------------------
def grating(orientation_deg: float, phase: float, spatial_frequency: float, contrast: float) -> np.ndarray:
    """Static sinusoidal grating ``contrast * cos(2 pi f (x cos o + y sin o) + phase)`` over the field."""
    o = math.radians(orientation_deg)
    return contrast * np.cos(2 * math.pi * spatial_frequency * (_x_deg * math.cos(o) + _y_deg * math.sin(o)) + phase)


def smooth_images(n: int, seed: int) -> np.ndarray:
    """``n`` natural-image-like frames: white noise filtered to a 1/f amplitude spectrum, mean 0, scaled so that the
    largest absolute value is 1 (contrast 1). Deterministic in ``seed``."""
    rng = np.random.default_rng([seed, 0x1F])
    fy = np.fft.fftfreq(FIELD_SHAPE[0])[:, None]
    fx = np.fft.rfftfreq(FIELD_SHAPE[1])[None, :]
    f = np.hypot(fx, fy)
    amplitude = np.divide(1.0, f, out=np.zeros_like(f), where=f > 0)  # f = 0 removed: mean gray
    images = np.fft.irfft2(np.fft.rfft2(rng.standard_normal((n, *FIELD_SHAPE))) * amplitude, s=FIELD_SHAPE)
    images -= images.mean(axis=(1, 2), keepdims=True)
    return images / np.abs(images).max(axis=(1, 2), keepdims=True)


def _resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``[n_out, n_in]`` linear interpolation between pixel centres (edges clamped)."""
    pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    m = np.zeros((n_out, n_in))
    np.add.at(m, (np.arange(n_out), lo), 1 - (pos - lo))
    np.add.at(m, (np.arange(n_out), hi), pos - lo)
    return m


def digit_frame(image: np.ndarray, contrast: float, max_value: float = 16.0) -> np.ndarray:
    """A digit image (values 0 ... ``max_value``) upsampled to the field's height keeping its aspect ratio, mapped
    to [-contrast, contrast] (0 -> -contrast, the dark background) and centred on a gray field."""
    h, w = FIELD_SHAPE
    out_w = int(round(h * image.shape[1] / image.shape[0]))
    big = _resize_matrix(image.shape[0], h) @ image @ _resize_matrix(image.shape[1], out_w).T
    frame = np.zeros(FIELD_SHAPE)
    left = (w - out_w) // 2
    frame[:, left : left + out_w] = contrast * (2.0 * big / max_value - 1.0)
    return frame


def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8 x 8 digits: images ``[1797, 8, 8]`` (0 ... 16) and labels."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError(
            "the v1_digits task uses scikit-learn's digits data set, and scikit-learn is not installed: "
            "pip install scikit-learn"
        ) from None
    data = load_digits()
    return np.asarray(data.images, float), np.asarray(data.target, np.int64)


# -- tasks -----------------------------------------------------------------------------------------------------------
class V1Task(Task):
    """Base of the V1 tasks: ``trial(rng)`` draws a stimulus; ``batch`` turns ``batch_size`` of them into LGN spikes.

    Parameters
    ----------
    config
        Stimuli and timing.
    seed
        Trials of iteration k depend only on (seed, k).
    lgn
        The LGN of the network; ``n_in = lgn.n_units``.
    resolution
        Time step (ms).
    batch_size
        Trials per iteration, back to back.
    """

    kind = "classification"
    name = ""
    n_out = 2

    def __init__(self, config: V1TaskConfig, seed: int, lgn: LGN, resolution: float, batch_size: int):
        if not isinstance(config, V1TaskConfig):
            raise TypeError(f"config must be a V1TaskConfig, not {type(config).__name__}")
        if isinstance(resolution, bool) or not (isinstance(resolution, int | float) and resolution > 0):
            raise ConfigError(f"task.resolution = {resolution!r} is invalid: > 0 ms is required")
        if isinstance(batch_size, bool) or not (isinstance(batch_size, int) and batch_size >= 1):
            raise ConfigError(f"task.batch_size = {batch_size!r} is invalid: an integer >= 1 is required")
        super().__init__(config, seed)  # type: ignore[arg-type]  # a V1TaskConfig, not a TaskConfig
        self.config: V1TaskConfig = config
        self.lgn = lgn
        self.resolution = float(resolution)
        self.batch_size = batch_size
        self.n_in = lgn.n_units

    def _steps(self, key: str, positive: bool = False) -> int:
        n = self.config.steps(key, self.resolution)
        if positive and n < 1:
            raise ConfigError(
                f"task.v1.{key} = {getattr(self.config, key)!r} is invalid: shorter than one time step of "
                f"{self.resolution} ms (time_scale {self.config.time_scale})"
            )
        return n

    def trial(self, rng: np.random.Generator) -> V1Trial:
        raise NotImplementedError

    def batch(self, iteration: int) -> TrialBatch:
        rng = self._rng(iteration)
        return _assemble([self.trial(rng) for _ in range(self.batch_size)], [0] * self.batch_size, self, rng)


def _assemble(trials: list[V1Trial], offsets: list[int], task: V1Task, rng: np.random.Generator) -> TrialBatch:
    """LGN spikes, one-hot targets (readout ``offset + label``) inside the windows, trials back to back."""
    ins, targets, windows = [], [], []
    for tr, off in zip(trials, offsets, strict=True):
        rates = task.lgn.rates(tr.frames, tr.frame_of_step, task.resolution)
        ins.append(task.lgn.spikes(rates, rng, task.resolution))
        target = np.zeros((tr.window.size, task.n_out))
        target[:, off + tr.label] = tr.window
        targets.append(target)
        windows.append(tr.window)
    return TrialBatch(
        input_spikes=np.concatenate(ins),
        target=np.concatenate(targets),
        learning_window=np.concatenate(windows),
        trial_steps=task.trial_steps,
        labels=np.array([off + tr.label for tr, off in zip(trials, offsets, strict=True)], dtype=np.int64),
        stimuli=[dict(tr.stimulus) for tr in trials],
    )


class _SingleStimulusTask(V1Task):
    """Gray ``pre_delay``, one frame for ``stimulus_ms``, gray ``post_delay``; window from ``response_start``."""

    def __init__(self, config: V1TaskConfig, seed: int, lgn: LGN, resolution: float, batch_size: int):
        super().__init__(config, seed, lgn, resolution, batch_size)
        pre, stim = self._steps("pre_delay_ms"), self._steps("stimulus_ms", True)
        self.trial_steps = pre + stim + self._steps("post_delay_ms")
        self.frame_of_step = np.zeros(self.trial_steps, np.int64)
        self.frame_of_step[pre : pre + stim] = 1
        start = self._steps("response_start_ms")
        self.window = np.zeros(self.trial_steps)
        self.window[start : start + self._steps("response_ms", True)] = 1.0

    def _trial(self, frame: np.ndarray, label: int, stimulus: dict[str, float]) -> V1Trial:
        return V1Trial(np.stack([_GRAY, frame]), self.frame_of_step, label, self.window, stimulus)


class FineOrientationTask(_SingleStimulusTask):
    """Is the grating's orientation above 45 deg? (2 readouts; label 1 = above)."""

    name = "v1_orientation"
    n_out = 2

    def trial(self, rng: np.random.Generator) -> V1Trial:
        c = self.config
        n_max = max(int(round(c.orientation_difference_deg / c.orientation_step_deg)), 1)
        side = 1 if rng.random() < 0.5 else -1
        orientation = c.orientation_center_deg + side * int(rng.integers(1, n_max + 1)) * c.orientation_step_deg
        phase = rng.uniform(0, 2 * math.pi)  # drawn in both cases, so that the other draws do not depend on the choice
        if c.orientation_phase_deg != "random":
            phase = math.radians(float(c.orientation_phase_deg))
        frame = grating(orientation, phase, c.spatial_frequency, c.contrast)
        return self._trial(frame, int(side > 0), {"orientation_deg": orientation, "phase_rad": phase})


class DigitsTask(_SingleStimulusTask):
    """Which digit (0-9) is shown? (10 readouts). Needs scikit-learn (``load_digits``)."""

    name = "v1_digits"
    n_out = 10

    def __init__(self, config: V1TaskConfig, seed: int, lgn: LGN, resolution: float, batch_size: int):
        super().__init__(config, seed, lgn, resolution, batch_size)
        self.images, self.labels = _load_digits()
        order = np.random.default_rng(DIGIT_SPLIT_SEED).permutation(self.labels.size)
        n_test = int(round(DIGIT_TEST_FRACTION * order.size))
        split = {"train": order[n_test:], "test": order[:n_test], "all": order}[config.digits_split]
        self.indices = np.sort(split)

    def trial(self, rng: np.random.Generator) -> V1Trial:
        i = int(self.indices[rng.integers(self.indices.size)])
        return self._trial(digit_frame(self.images[i], self.config.contrast), int(self.labels[i]), {"digit_index": i})


class _ChangeTask(V1Task):
    """Gray, A, gray, B, gray; label 1 if B differs from A. Window ``change_response_delay`` after B's onset."""

    n_out = 2

    def __init__(self, config: V1TaskConfig, seed: int, lgn: LGN, resolution: float, batch_size: int):
        super().__init__(config, seed, lgn, resolution, batch_size)
        pre, stim, gap = self._steps("pre_delay_ms"), self._steps("stimulus_ms", True), self._steps("change_gap_ms")
        self.b_onset = pre + stim + gap
        self.trial_steps = self.b_onset + stim + self._steps("change_post_ms")
        self.frame_of_step = np.zeros(self.trial_steps, np.int64)
        self.frame_of_step[pre : pre + stim] = 1
        self.frame_of_step[self.b_onset : self.b_onset + stim] = 2
        start = self.b_onset + self._steps("change_response_delay_ms")
        self.window = np.zeros(self.trial_steps)
        self.window[start : start + self._steps("response_ms", True)] = 1.0

    def _trial(self, a: np.ndarray, b: np.ndarray, change: bool, stimulus: dict[str, float]) -> V1Trial:
        return V1Trial(np.stack([_GRAY, a, b]), self.frame_of_step, int(change), self.window, stimulus)


class ImageChangeTask(_ChangeTask):
    """Did the image change? (readout 0 = no change, 1 = change), over a fixed set of smooth random images."""

    name = "v1_image_change"

    def __init__(self, config: V1TaskConfig, seed: int, lgn: LGN, resolution: float, batch_size: int):
        super().__init__(config, seed, lgn, resolution, batch_size)
        self.images = config.contrast * smooth_images(config.n_images, config.image_seed)

    def trial(self, rng: np.random.Generator) -> V1Trial:
        n = self.images.shape[0]
        a = int(rng.integers(n))
        change = bool(rng.random() >= self.config.p_reappear)
        b = (a + int(rng.integers(1, n))) % n if change else a  # uniform over the other images
        return self._trial(self.images[a], self.images[b], change, {"image_a": a, "image_b": b})


class GratingChangeTask(_ChangeTask):
    """Did the grating's orientation change? (readout 0 = no change, 1 = change), orientations 120-150 deg."""

    name = "v1_grating_change"

    def trial(self, rng: np.random.Generator) -> V1Trial:
        c = self.config
        n = int(math.floor((c.grating_change_max_deg - c.grating_change_min_deg) / c.orientation_step_deg + 1e-9)) + 1
        a = int(rng.integers(n))
        change = bool(rng.random() >= c.p_reappear)
        b = (a + int(rng.integers(1, n))) % n if change else a
        phase_a = rng.uniform(0, 2 * math.pi)
        phase_b = rng.uniform(0, 2 * math.pi) if c.grating_change_random_phase else phase_a
        orientations = [c.grating_change_min_deg + k * c.orientation_step_deg for k in (a, b)]
        frames = [
            grating(o, phase, c.spatial_frequency, c.contrast)
            for o, phase in zip(orientations, (phase_a, phase_b), strict=True)
        ]
        stimulus = {"orientation_a_deg": orientations[0], "orientation_b_deg": orientations[1]}
        return self._trial(frames[0], frames[1], change, stimulus | {"phase_a_rad": phase_a, "phase_b_rad": phase_b})


class EvidenceTask(V1Task):
    """Were more cues on the left (readout 0) or on the right (readout 1)?"""

    name = "v1_evidence"
    n_out = 2

    def __init__(self, config: V1TaskConfig, seed: int, lgn: LGN, resolution: float, batch_size: int):
        super().__init__(config, seed, lgn, resolution, batch_size)
        c = config
        self.cue_steps = self._steps("cue_ms", True)
        self.period = self.cue_steps + self._steps("cue_gap_ms")
        self.recall_start = c.n_cues * self.period + self._steps("evidence_pause_ms")
        self.trial_steps = self.recall_start + self._steps("recall_ms", True)
        self.window = np.zeros(self.trial_steps)
        self.window[self.recall_start :] = 1.0
        mid, w = FIELD_SHAPE[1] / 2, c.cue_width_deg
        left = np.where((_x_deg >= mid - w) & (_x_deg < mid), c.contrast, 0.0)
        right = np.where((_x_deg >= mid) & (_x_deg < mid + w), c.contrast, 0.0)
        self.frames = np.stack([_GRAY, left, right, np.full(FIELD_SHAPE, -c.contrast)])

    def trial(self, rng: np.random.Generator) -> V1Trial:
        n = self.config.n_cues
        p_right = 0.8 if rng.random() < 0.5 else 0.2  # biased per trial: both clear and close majorities occur
        sides = (rng.random(n) < p_right).astype(np.int64)  # 0 = left, 1 = right
        fos = np.zeros(self.trial_steps, np.int64)
        for i, side in enumerate(sides):
            fos[i * self.period : i * self.period + self.cue_steps] = 1 + side
        fos[self.recall_start :] = 3
        return V1Trial(self.frames, fos, int(2 * sides.sum() > n), self.window, {"right_cues": int(sides.sum())})


class MultiTask(V1Task):
    """All five tasks with concatenated readouts (``task_slices``): each trial comes from one task (``multi_order``:
    trial k of the run from task k mod 5, or at random), its target and label concern only that task's readouts
    (labels index the concatenated readouts; the other readouts' target is 0).

    Each batch says which readouts each trial answers with (:class:`~nestgrad.tasks.TaskReadouts`, one group per
    task): a trial's decision is the largest of its own task's readouts, as Chen et al. score each task on its own
    readout, and the Trainer reports accuracy per task besides the overall one. Trials shorter than the longest
    task's are padded with gray (outside the learning window).
    """

    name = "v1_multi"
    TASK_NAMES = ("v1_orientation", "v1_digits", "v1_image_change", "v1_grating_change", "v1_evidence")
    n_out = 18

    def __init__(self, config: V1TaskConfig, seed: int, lgn: LGN, resolution: float, batch_size: int):
        super().__init__(config, seed, lgn, resolution, batch_size)
        self.tasks: list[V1Task] = [V1_TASKS[n](config, seed, lgn, resolution, batch_size) for n in self.TASK_NAMES]
        bounds = np.concatenate([[0], np.cumsum([t.n_out for t in self.tasks])])
        assert bounds[-1] == self.n_out
        self.task_slices: dict[str, slice] = {
            n: slice(int(a), int(b)) for n, a, b in zip(self.TASK_NAMES, bounds[:-1], bounds[1:], strict=True)
        }
        self.trial_steps = max(t.trial_steps for t in self.tasks)

    def trial_tasks(self, iteration: int) -> np.ndarray:
        """Index (into ``TASK_NAMES``) of the task of each trial of ``iteration``."""
        n = len(self.tasks)
        if self.config.multi_order == "cycle":
            return (iteration * self.batch_size + np.arange(self.batch_size)) % n
        return np.random.default_rng([self.seed, iteration, 0x3D]).integers(n, size=self.batch_size)

    def batch(self, iteration: int) -> TrialBatch:
        rng = self._rng(iteration)
        ids = self.trial_tasks(iteration)
        trials = []
        for i in ids:
            tr = self.tasks[i].trial(rng)
            pad = self.trial_steps - tr.window.size
            if pad:  # gray after the trial, outside the window
                tr = replace(
                    tr,
                    frames=np.concatenate([tr.frames, _GRAY[None]]),
                    frame_of_step=np.concatenate([tr.frame_of_step, np.full(pad, tr.frames.shape[0], np.int64)]),
                    window=np.concatenate([tr.window, np.zeros(pad)]),
                )
            trials.append(replace(tr, stimulus=tr.stimulus | {"task": int(i)}))
        offsets = [self.task_slices[self.TASK_NAMES[i]].start for i in ids]
        groups = TaskReadouts(
            self.TASK_NAMES, tuple((s.start, s.stop) for s in self.task_slices.values()), np.asarray(ids, np.int64)
        )
        return replace(_assemble(trials, offsets, self, rng), task_readouts=groups)


V1_TASKS: dict[str, type[V1Task]] = {
    "v1_orientation": FineOrientationTask,
    "v1_digits": DigitsTask,
    "v1_image_change": ImageChangeTask,
    "v1_grating_change": GratingChangeTask,
    "v1_evidence": EvidenceTask,
    "v1_multi": MultiTask,
}


def make_v1_task(
    name: str,
    config: V1TaskConfig | Mapping[str, Any] | None,
    seed: int,
    lgn: LGN,
    resolution: float,
    batch_size: int,
) -> V1Task:
    """The V1 task ``name`` (a key of :data:`V1_TASKS`); ``config`` may be a dict of V1TaskConfig fields or None
    for the defaults."""
    if name not in V1_TASKS:
        raise ConfigError(f"task.name = {name!r} is not a V1 task; known: {', '.join(V1_TASKS)}")
    if config is None:
        config = V1TaskConfig()
    elif not isinstance(config, V1TaskConfig):
        config = V1TaskConfig.from_dict(config)
    return V1_TASKS[name](config, seed, lgn, resolution, batch_size)

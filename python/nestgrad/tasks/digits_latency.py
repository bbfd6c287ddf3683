"""Latency-coded digits (issue 20, item 8): scikit-learn's 8 x 8 handwritten digits as one spike per lit pixel.

The deliverable's Figure 3 trains one hidden layer (100, 200, 400 neurons) on latency-encoded MNIST. MNIST needs a
download; scikit-learn ships 1,797 8 x 8 digits (UCI "optdigits", 17 grey levels 0..16) inside the package, so this
task builds the same input format from them, offline:

1. **Intensity.** Each 8 x 8 image is divided by 16: intensities in [0, 1].
2. **Upsampling to 28 x 28** (784 inputs, MNIST's size) by bilinear interpolation of pixel centres: output pixel
   (i, j) sits at source coordinates ``((i + 0.5) * 8 / 28 - 0.5, (j + 0.5) * 8 / 28 - 0.5)``, clamped to [0, 7]
   (the edge pixels are repeated), and takes the bilinear mix of the four nearest source pixels. No smoothing beyond
   that; the result stays in [0, 1].
3. **Latency code** (mlGeNN's ``linear_latency_encode_data``, as its EventProp latency-MNIST examples call it with
   ``EXAMPLE_TIME = 20`` ms, ``DT = 1`` ms, ``max_time = 18``, ``min_time = 2``): a pixel spikes once if its
   intensity x is above ``threshold`` (default 1/255, mlGeNN's ``thresh = 1`` on 0..255 data), at
   ``t = t_min + (1 - x) * (t_max - t_min)`` ms; brighter pixels spike earlier (x = 1 at ``t_min``, x -> 0 towards
   ``t_max``); dark pixels never spike. A trial lasts ``duration`` ms (default 20).
4. **Split.** A fixed, stratified train/test split: per class, the images are permuted with
   ``numpy.random.default_rng(split_seed)`` (one generator, classes in order 0..9) and the first
   ``round(n_class * test_fraction)`` go to the test set. Defaults: seed 0xD161 (the V1 digits task's), 20 % test:
   1,438 training and 359 test images (35-37 test images per class).

Three forms of the same trials:

* :meth:`DigitsLatency.arrays`: spike times [n, 784] (ms, ``inf`` = no spike) and labels, for PyTorch and NumPy;
* :meth:`DigitsLatency.raster`: the same on a time grid (bool [n, steps, 784], a spike at t falls in step
  ``floor(t / dt)``), for time-stepped simulators;
* :meth:`DigitsLatency.trials`: :class:`nestgrad.reference.eventprop.Trial` objects (population -> one list of spike
  times per neuron, label) for the EventProp reference engine, exact times;
* :meth:`DigitsLatency.trial_batch`: a :class:`nestgrad.tasks.TrialBatch` (trials back to back on NEST's grid,
  one-hot target over the whole trial) for nestgrad's e-prop networks in NEST.
"""

from __future__ import annotations

import gzip
import importlib.util
import math
import pathlib

import numpy as np

from nestgrad.config.eventprop import SOURCE_SIDE, DigitsLatencyConfig  # noqa: F401 (re-exported: the task's table)
from nestgrad.errors import ConfigError
from nestgrad.tasks import TrialBatch

SOURCE_LEVELS = 16.0  # grey levels 0..16
N_CLASSES = 10
SPLITS = ("train", "test")


def load_digit_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 handwritten digits: images [n, 8, 8] (grey levels 0..16, float) and labels (int64).

    Read from the file scikit-learn ships (``sklearn/datasets/data/digits.csv.gz``, what ``load_digits`` reads, same
    values) without importing scikit-learn: that import (with SciPy's) costs about 1.2 s of CPU in every process
    that makes the task, a training run's start-up included. Falls back to ``load_digits`` if the file has moved."""
    spec = importlib.util.find_spec("sklearn")  # locates the package without running it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the digits data set comes with scikit-learn, not installed: pip install scikit-learn")
    path = pathlib.Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz"
    if path.is_file():
        with gzip.open(path, "rt") as fh:
            table = np.loadtxt(fh, delimiter=",")
        return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits

    digits = load_digits()
    return np.asarray(digits.images, float), np.asarray(digits.target, np.int64)


def upsample_bilinear(images: np.ndarray, side: int) -> np.ndarray:
    """Bilinear interpolation of pixel centres from [n, s, s] to [n, side, side] (edges clamped), see the module
    docstring. Values stay within the input's range."""
    images = np.asarray(images, dtype=float)
    s = images.shape[-1]
    coords = np.clip((np.arange(side) + 0.5) * s / side - 0.5, 0.0, s - 1.0)
    lo = np.floor(coords).astype(int)
    hi = np.minimum(lo + 1, s - 1)
    frac = coords - lo
    rows = images[:, lo, :] * (1 - frac)[None, :, None] + images[:, hi, :] * frac[None, :, None]
    return rows[:, :, lo] * (1 - frac)[None, None, :] + rows[:, :, hi] * frac[None, None, :]


def latency_times(intensity: np.ndarray, config: DigitsLatencyConfig) -> np.ndarray:
    """Spike time (ms) of every pixel, ``inf`` where the intensity is not above the threshold."""
    x = np.asarray(intensity, dtype=float)
    t = config.t_min + (1.0 - x) * (config.t_max - config.t_min)
    return np.where(x > config.threshold, t, np.inf)


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices, sorted: per class a seeded permutation, its first round(n * test_fraction) to test."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in range(int(labels.max()) + 1):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = int(round(idx.size * test_fraction))
        if k == 0 or k == idx.size:
            raise ConfigError(
                f"digits_latency.test_fraction = {test_fraction}: class {c} ({idx.size} images) would have an empty "
                "train or test set"
            )
        test.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


class DigitsLatency:
    """The latency-coded digits with their fixed split (see the module docstring).

    >>> data = DigitsLatency()
    >>> times, labels = data.arrays("train")   # [1437, 784] ms (inf: no spike), [1437]
    >>> trials = data.trials("test", range(5))  # for nestgrad.reference.eventprop.evaluate
    """

    def __init__(self, config: DigitsLatencyConfig | None = None):
        self.config = config if config is not None else DigitsLatencyConfig()
        self.config.validate()
        images, self.labels = load_digit_images()  # shipped with scikit-learn: no download
        self.images = upsample_bilinear(images / SOURCE_LEVELS, self.config.side)  # [n, side, side]
        self.times = latency_times(self.images.reshape(len(self.labels), -1), self.config)  # [n, n_in]
        self.indices = dict(
            zip(SPLITS, stratified_split(self.labels, self.config.test_fraction, self.config.split_seed), strict=True)
        )

    n_out = N_CLASSES

    @property
    def n_in(self) -> int:
        return self.config.n_in

    @property
    def duration(self) -> float:
        return self.config.duration

    def _select(self, split: str, indices: np.ndarray | range | list[int] | None) -> np.ndarray:
        if split not in SPLITS:
            raise ConfigError(f"digits_latency split {split!r}: allowed {SPLITS}")
        base = self.indices[split]
        if indices is None:
            return base
        sel = np.asarray(list(indices) if isinstance(indices, range) else indices, dtype=np.int64).ravel()
        if sel.size and (sel.min() < 0 or sel.max() >= base.size):
            raise ConfigError(
                f"digits_latency {split} indices must be in [0, {base.size}); got {sel.min()}..{sel.max()}"
            )
        return base[sel]

    def size(self, split: str) -> int:
        return int(self._select(split, None).size)

    def arrays(
        self, split: str, indices: np.ndarray | range | list[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(spike times [n, n_in] in ms with ``inf`` for silent pixels, labels [n]) of the split (or the given
        positions within it)."""
        sel = self._select(split, indices)
        return self.times[sel], self.labels[sel]

    def steps(self, dt: float) -> int:
        """Time steps of ``dt`` ms in one trial."""
        if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
            raise ConfigError(f"time step dt = {dt!r} ms: need a finite number > 0")
        return int(round(self.config.duration / dt))

    def raster(self, split: str, dt: float, indices: np.ndarray | range | list[int] | None = None) -> np.ndarray:
        """bool [n, steps, n_in]: the spike at t falls in step floor(t / dt) (ms)."""
        times, _ = self.arrays(split, indices)
        steps = self.steps(dt)
        out = np.zeros((times.shape[0], steps, times.shape[1]), dtype=bool)
        trial, neuron = np.nonzero(np.isfinite(times))
        k = np.minimum(np.floor(times[trial, neuron] / dt + 1e-9).astype(np.int64), steps - 1)
        out[trial, k, neuron] = True
        return out

    def trials(self, split: str, indices: np.ndarray | range | list[int] | None = None, population: str = "in"):
        """:class:`nestgrad.reference.eventprop.Trial` per image: ``{population: [[t] or [] per pixel]}``, label."""
        from nestgrad.reference.eventprop import Trial

        times, labels = self.arrays(split, indices)
        return [
            Trial({population: [[float(t)] if math.isfinite(t) else [] for t in row]}, label=int(label))
            for row, label in zip(times, labels, strict=True)
        ]

    def trial_batch(
        self,
        split: str,
        dt: float,
        indices: np.ndarray | range | list[int] | None = None,
        gap: float = 0.0,
    ) -> TrialBatch:
        """The trials back to back as one :class:`~nestgrad.tasks.TrialBatch` on a grid of ``dt`` ms, for nestgrad's
        NEST networks: one-hot target (1 for the label's readout) and learning window over the trial, so that
        :func:`nestgrad.tasks.accuracy` decides by the readouts' mean voltage over the trial. ``gap`` ms of silence
        (no input, learning window 0) follow each trial, so that a network that is not reset between trials (NEST's
        continual e-prop) can settle before the next one; ``trial_steps`` counts them."""
        if not (isinstance(gap, (int, float)) and math.isfinite(gap) and gap >= 0):
            raise ConfigError(f"gap = {gap!r} ms: need a finite number >= 0")
        raster = self.raster(split, dt, indices)
        _, labels = self.arrays(split, indices)
        n, steps, n_in = raster.shape
        total = steps + int(round(gap / dt))
        spikes = np.zeros((n, total, n_in), dtype=bool)
        spikes[:, :steps] = raster
        target = np.zeros((n, total, N_CLASSES))
        target[np.arange(n), :, labels] = 1.0
        window = np.zeros((n, total))
        window[:, :steps] = 1.0
        return TrialBatch(
            input_spikes=spikes.reshape(n * total, n_in),
            target=target.reshape(n * total, N_CLASSES),
            learning_window=window.reshape(n * total),
            trial_steps=total,
            labels=labels.copy(),
        )

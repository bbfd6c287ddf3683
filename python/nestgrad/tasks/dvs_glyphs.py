"""DVS-style event streams generated offline (issue 24, item 3): digit glyphs moving over a simulated dynamic vision
sensor, classified by their motion.

Real DVS Gesture recordings (Amir et al. 2017, CVPR: 11 gestures of 29 performers, a 128 x 128 DVS128, about 6 s
each) cannot be downloaded here, so this module makes a stand-in with the same format, ON/OFF events on a pixel grid,
and the same kind of problem, telling motions apart whatever moves (docs/dvs_glyphs.md has every constant and why):

1. **Scene.** One of scikit-learn's 8 x 8 digit glyphs (shipped with the package), divided by 16 and upsampled
   bilinearly to ``glyph_side`` px, is bright ink (1) on a dark background (``background``): intensity
   ``I = background + (1 - background) * glyph``. Its centre follows a path for ``motion_ms`` after ``blank_ms`` at
   rest: a translation through the sensor's centre (right, left, up, down or diagonal) or a circle of
   ``radius_px`` around it (clockwise or counter-clockwise), at a speed drawn per trial in
   [``speed_min``, ``speed_max``] px/ms, with the path offset by up to ``jitter_px`` in x and y.
2. **Rendering.** A frame every ``frame_ms``: each sensor pixel samples the glyph bilinearly at its centre
   (sub-pixel positions, zero outside the glyph), so intensities change smoothly as the glyph moves.
3. **DVS pixel** (Lichtsteiner, Posch & Delbruck 2008, IEEE JSSC 43(2):566-576): each pixel keeps a reference
   level of its log intensity ``ln I``, set at the trial's start. When ``ln I`` has risen by the pixel's contrast
   threshold ``C`` above the reference it emits an ON event, when it has fallen by ``C`` an OFF event; the reference
   then moves to the level at the event. Between frames ``ln I`` is interpolated linearly, which times each
   crossing within the frame. After an event the pixel is held in reset for ``refractory_ms`` (crossings then are
   lost) and takes the level at its release as the new reference. ``C`` varies from pixel to pixel by
   ``threshold_mismatch`` (relative, fixed per sensor). Background-activity events (``noise_rate_hz`` per pixel,
   either polarity, Poisson) are added independently of the scene.
4. **Channels.** Events are binned on the simulation grid (an event at t falls in step ``floor(t / dt)``; a
   channel spikes at most once per step) into ``2 * (side / pool)**2`` channels: OFF channels first, then ON, each
   a row-major grid; ``pool`` > 1 sums ``pool`` x ``pool`` blocks (any event in the block spikes the channel).
5. **Classes** = ``motions`` x ``glyph_groups`` (default: 6 motions, one group of all ten digits, so the class is
   the motion and the digit a nuisance variable, as the performer is in DVS Gesture). Each batch holds the classes
   in equal numbers (exactly when ``batch_size`` is a multiple of the class count) in a seeded random order.
6. **Split.** The glyph images are split per digit as in :mod:`nestgrad.tasks.digits_latency` (seed
   ``split_seed``, ``test_fraction`` held out): training batches draw glyphs from the training images, evaluation
   batches (indices from ``EVALUATION_FIRST_BATCH`` on) from the test images. Trial ``k`` of a batch depends only on
   the configuration, ``network.seed`` and the batch index.

A trial lasts ``blank_ms + motion_ms`` (default 500 ms, at most 1 s); its last ``readout_ms`` are the learning
window, during which the readout of the class is trained towards 1 and the others towards 0 (as in evidence
accumulation); the decision is the readout with the larger mean there.

Figure of examples: ``python -m nestgrad.tasks.dvs_glyphs --figure docs/figures/dvs_glyphs_examples.png``.
"""

from __future__ import annotations

import argparse
import math
import pathlib
from dataclasses import dataclass

import numpy as np

from nestgrad.config import TaskConfig
from nestgrad.config.dvs_glyphs import ROTATIONS, TRANSLATIONS, DvsGlyphsConfig
from nestgrad.errors import ConfigError
from nestgrad.tasks import EVALUATION_FIRST_BATCH, Task, TrialBatch

__all__ = [
    "DvsGlyphs",
    "DvsGlyphsConfig",
    "DvsGlyphsTask",
    "EventStream",
    "TrialParams",
    "glyph_samples",
    "pixel_events",
    "render",
]

SOURCE_LEVELS = 16.0  # scikit-learn's digits have grey levels 0..16
SPLITS = ("train", "test")
CHUNK_TRIALS = 32  # trials rendered and converted together (memory: ~4 MB per trial at the defaults)


@dataclass(frozen=True)
class EventStream:
    """Events of ``n_trials`` trials: time (ms from the trial's start), pixel column x and row y, polarity
    (1 ON, 0 OFF) and trial index, sorted by trial then time."""

    t: np.ndarray  # float64 ms
    x: np.ndarray  # int
    y: np.ndarray  # int
    p: np.ndarray  # int8
    trial: np.ndarray  # int
    n_trials: int
    duration: float  # ms

    @property
    def size(self) -> int:
        return int(self.t.size)

    def select(self, mask: np.ndarray) -> EventStream:
        return EventStream(self.t[mask], self.x[mask], self.y[mask], self.p[mask], self.trial[mask], self.n_trials,
                           self.duration)  # fmt: skip


@dataclass(frozen=True)
class TrialParams:
    """What one trial shows: a glyph image, a motion, its speed (px/ms), the path's offset (px) and, for circles,
    the starting angle (rad)."""

    image: np.ndarray  # [glyph_side, glyph_side] in [0, 1]
    motion: str
    speed: float
    offset: tuple[float, float]
    phase: float = 0.0
    glyph: int = -1  # index of the image in scikit-learn's digits (-1: not one of them)


# -- the scene --------------------------------------------------------------------------------------------------------
def glyph_centres(trial: TrialParams, config: DvsGlyphsConfig, times: np.ndarray) -> np.ndarray:
    """Centre (x, y) in px of the glyph at ``times`` (ms from the trial's start): at rest during ``blank_ms``, then
    moving for ``motion_ms``. A translation passes ``centre + offset`` halfway through the motion."""
    tau = np.clip(np.asarray(times, float) - config.blank_ms, 0.0, config.motion_ms)
    centre = np.array([config.side / 2.0 + trial.offset[0], config.side / 2.0 + trial.offset[1]])
    if trial.motion in TRANSLATIONS:
        d = np.array(TRANSLATIONS[trial.motion])
        return centre[None, :] + d[None, :] * (trial.speed * (tau - config.motion_ms / 2.0))[:, None]
    if trial.motion in ROTATIONS:
        angle = trial.phase + ROTATIONS[trial.motion] * trial.speed / config.radius_px * tau
        return centre[None, :] + config.radius_px * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    raise ConfigError(f"motion {trial.motion!r}: known motions are {', '.join((*TRANSLATIONS, *ROTATIONS))}")


def _hat_weights(coords: np.ndarray, n: int) -> np.ndarray:
    """Bilinear weights [..., n] of glyph pixels 0..n-1 at fractional glyph coordinates (zero beyond the glyph):
    max(0, 1 - |coords - g|). Only g = floor(coords) and the one after can be nonzero (|coords - g| >= 1 for the
    others, in floating point too), so only those two are computed and the rest stays 0."""
    w = np.zeros((*coords.shape, n))
    below = np.floor(coords)
    for g in (below, below + 1.0):
        on_glyph = (g >= 0.0) & (g < n)
        weight = 1.0 - np.abs(coords - g)
        w[(*np.nonzero(on_glyph), g[on_glyph].astype(np.intp))] = weight[on_glyph]
    return w


def glyph_samples(image: np.ndarray, centres: np.ndarray, side: int) -> np.ndarray:
    """Glyph values [n_frames, side, side] in [0, 1] seen by the sensor pixels with ``image`` centred at ``centres``
    (px, [n, 2]): each sensor pixel samples the glyph bilinearly at its centre (zero outside the glyph)."""
    image = np.asarray(image, float)
    gs = image.shape[0]
    pix = np.arange(side)
    # sensor pixel b has its centre at b + 0.5 px; glyph pixel g at centre - gs / 2 + g + 0.5
    ux = pix[None, :] - centres[:, 0:1] + gs / 2.0  # [n, side]
    uy = pix[None, :] - centres[:, 1:2] + gs / 2.0
    wx, wy = _hat_weights(ux, gs), _hat_weights(uy, gs)  # [n, side, gs]
    # (wy image) wx^T as two matrix products: the contraction order (and so every rounding) of the
    # einsum("tag,gh,tbh->tab", optimize=True) this replaced, without its path search (which cost more than the sums)
    return np.matmul(wy @ image, wx.transpose(0, 2, 1))


def render(image: np.ndarray, centres: np.ndarray, side: int, background: float) -> np.ndarray:
    """Intensity frames [n_frames, side, side] of ``image`` (values in [0, 1]) centred at ``centres`` (px, [n, 2]):
    each sensor pixel samples the glyph bilinearly at its centre, ``I = background + (1 - background) * glyph``."""
    return background + (1.0 - background) * glyph_samples(image, centres, side)


# -- the DVS pixel ----------------------------------------------------------------------------------------------------
def pixel_events(
    log_intensity: np.ndarray, frame_ms: float, threshold: np.ndarray | float, refractory_ms: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Events of DVS pixels (Lichtsteiner et al. 2008) from log intensities [n_frames, n_pixels] sampled every
    ``frame_ms`` (frame k at k * frame_ms), linearly interpolated in between.

    Each pixel's reference is its first frame's level. A rise of ``threshold`` (per pixel or one value) above the
    reference emits ON (1), a fall OFF (0), at the interpolated crossing time; the reference moves to the level at
    the event. Then the pixel is held in reset for ``refractory_ms``: crossings are lost and at its release the
    reference becomes the level there. Returns (time ms, pixel index, polarity), in the order found (per frame)."""
    log_intensity = np.asarray(log_intensity, float)
    n_frames, n = log_intensity.shape
    c = np.broadcast_to(np.asarray(threshold, float), (n,))
    # the levels of the next ON and OFF event, reference + c and reference - c (the reference itself is not kept):
    # updated where the reference moves instead of recomputed every frame; +-inf while the pixel is held in reset,
    # so that it is no candidate
    on_level, off_level = log_intensity[0] + c, log_intensity[0] - c
    blocked_until = np.full(n, np.inf)  # release time of pixels held in reset (inf: not held)
    out_t, out_i, out_p = [], [], []
    for k in range(n_frames - 1):
        t0 = k * frame_ms
        t1 = t0 + frame_ms
        l0, l1 = log_intensity[k], log_intensity[k + 1]
        released = np.flatnonzero(blocked_until <= t1)
        if released.size:
            released_at = blocked_until[released]
            slope = (l1[released] - l0[released]) / frame_ms
            ref = l0[released] + slope * (released_at - t0)
            on_level[released], off_level[released] = ref + c[released], ref - c[released]
            blocked_until[released] = np.inf
        # pixels whose level crosses ref +- c within this frame (l is monotonic in between); checked again after
        # each event, since a fast change crosses several thresholds within one frame
        cand = np.flatnonzero((l1 >= on_level) | (l1 <= off_level))
        if not cand.size:
            continue
        # where each candidate's frame begins: t0, or its release within this frame
        start: np.ndarray | float = t0
        if released.size:
            start = np.full(n, t0)
            start[released] = released_at
            start = start[cand]
        l0c, l1c, cc = l0[cand], l1[cand], c[cand]
        sc = (l1c - l0c) / frame_ms  # the slope
        while cand.size:
            on_c, off_c = on_level[cand], off_level[cand]
            up = l1c >= on_c
            level = np.where(up, on_c, off_c)
            # = np.clip(..., start, t1) (rounding at the frame's ends), without np.clip's slower dispatch
            tc = np.minimum(np.maximum(t0 + (level - l0c) / sc, start), t1)
            out_t.append(tc)
            out_i.append(cand)
            out_p.append(up)
            if refractory_ms > 0:
                release = tc + refractory_ms
                inside = release <= t1
                if not inside.any():  # the usual case: all are held in reset beyond this frame
                    on_level[cand], off_level[cand], blocked_until[cand] = np.inf, -np.inf, release
                    break
                later = cand[~inside]
                on_level[later], off_level[later], blocked_until[later] = np.inf, -np.inf, release[~inside]
                # pixels released within this frame take the level there as their reference
                cand, l0c, l1c, sc, cc, start = (x[inside] for x in (cand, l0c, l1c, sc, cc, release))
                level = l0c + sc * (start - t0)
            else:
                start = tc
            on_c, off_c = level + cc, level - cc
            on_level[cand], off_level[cand] = on_c, off_c
            again = (l1c >= on_c) | (l1c <= off_c)
            cand, l0c, l1c, sc, cc, start = (x[again] for x in (cand, l0c, l1c, sc, cc, start))
    if not out_t:
        return np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int8)
    return np.concatenate(out_t), np.concatenate(out_i).astype(np.int64), np.concatenate(out_p).astype(np.int8)


def noise_events(
    rng: np.random.Generator, n_pixels: int, duration: float, rate_hz: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Background-activity events: Poisson at ``rate_hz`` per pixel (either polarity with probability 1/2), times
    uniform over [0, duration) ms."""
    counts = rng.poisson(rate_hz * duration / 1000.0, n_pixels)
    pixels = np.repeat(np.arange(n_pixels), counts)
    t = rng.uniform(0.0, duration, pixels.size)
    p = (rng.random(pixels.size) < 0.5).astype(np.int8)
    return t, pixels, p


# -- the data set -----------------------------------------------------------------------------------------------------
class DvsGlyphs:
    """The glyphs, their split and the fixed sensor; makes event streams and rasters of trials (module docstring).

    >>> data = DvsGlyphs()
    >>> params, labels = data.draw_trials(np.random.default_rng(0), "train", 6)
    >>> events = data.events(params, np.random.default_rng(1))   # an EventStream
    >>> raster = data.raster(events, dt=1.0)                     # bool [6, 500, 2048]
    """

    def __init__(self, config: DvsGlyphsConfig | None = None):
        from nestgrad.tasks.digits_latency import load_digit_images, stratified_split, upsample_bilinear

        self.config = config if config is not None else DvsGlyphsConfig()
        c = self.config
        images, self.digits = load_digit_images()  # shipped with scikit-learn: no download
        self.glyphs = upsample_bilinear(images / SOURCE_LEVELS, c.glyph_side)
        self.indices = dict(zip(SPLITS, stratified_split(self.digits, c.test_fraction, c.split_seed), strict=True))
        # per split and glyph group: the images it draws from
        self.pools = {
            split: [idx[np.isin(self.digits[idx], group)] for group in c.glyph_groups]
            for split, idx in self.indices.items()
        }
        mismatch = np.random.default_rng([c.sensor_seed, 0x7E]).standard_normal(c.side * c.side)
        self.threshold = c.contrast_threshold * np.maximum(1.0 + c.threshold_mismatch * mismatch, 0.5)

    @property
    def n_in(self) -> int:
        return self.config.n_in

    @property
    def n_out(self) -> int:
        return self.config.n_classes

    def class_names(self) -> list[str]:
        c = self.config
        if len(c.glyph_groups) == 1:
            return list(c.motions)
        return [f"{m}/{''.join(map(str, g))}" for g in c.glyph_groups for m in c.motions]

    def label_of(self, motion_index: int, group_index: int) -> int:
        return group_index * len(self.config.motions) + motion_index

    def draw_trials(
        self, rng: np.random.Generator, split: str, n: int, labels: np.ndarray | None = None
    ) -> tuple[list[TrialParams], np.ndarray]:
        """``n`` trials of ``split``: labels in equal numbers in a random order (or the given ones), then per trial a
        glyph of the label's group, a speed, an offset and a starting angle, drawn from ``rng`` in that order."""
        if split not in SPLITS:
            raise ConfigError(f"dvs_glyphs split {split!r}: allowed {SPLITS}")
        c = self.config
        if labels is None:
            labels = rng.permutation(np.arange(n) % c.n_classes)
        labels = np.asarray(labels, np.int64)
        if labels.size and (labels.min() < 0 or labels.max() >= c.n_classes):
            raise ConfigError(f"dvs_glyphs labels must be in [0, {c.n_classes}); got {labels.min()}..{labels.max()}")
        n = labels.size
        groups, motions = np.divmod(labels, len(c.motions))
        picks = rng.random(n)
        speeds = rng.uniform(c.speed_min, c.speed_max, n)
        offsets = rng.uniform(-c.jitter_px, c.jitter_px, (n, 2))
        phases = rng.uniform(0.0, 2.0 * math.pi, n)
        trials = []
        for i in range(n):
            pool = self.pools[split][groups[i]]
            glyph = int(pool[int(picks[i] * pool.size)])
            trials.append(
                TrialParams(self.glyphs[glyph], c.motions[motions[i]], float(speeds[i]),
                            (float(offsets[i, 0]), float(offsets[i, 1])), float(phases[i]), glyph)
            )  # fmt: skip
        return trials, labels

    def events(self, trials: list[TrialParams], rng: np.random.Generator) -> EventStream:
        """The event stream of ``trials`` (the DVS pixel model on rendered frames, plus noise from ``rng``)."""
        c = self.config
        n_frames = int(round(c.duration_ms / c.frame_ms)) + 1
        times = np.arange(n_frames) * c.frame_ms
        n_pix = c.side * c.side
        parts = []
        for first in range(0, len(trials), CHUNK_TRIALS):
            chunk = trials[first : first + CHUNK_TRIALS]
            # A pixel whose glyph value never changes keeps its first level and emits no events, so only the others
            # (about half of a trial's pixels) become log intensities and go through the pixel model: one column per
            # (trial, pixel) in ascending order, which keeps pixel_events' order of events.
            columns, pixels = [], []
            for i, tr in enumerate(chunk):
                glyph = glyph_samples(tr.image, glyph_centres(tr, c, times), c.side).reshape(n_frames, n_pix)
                active = np.flatnonzero((glyph != glyph[0]).any(axis=0))
                columns.append(glyph.take(active, axis=1))  # C order (glyph[:, active] is F): rows are frames
                pixels.append(active + i * n_pix)
            idx = np.concatenate(pixels)
            level = np.concatenate(columns, axis=1)
            # ln I = ln(background + (1 - background) * glyph), as render() computes I, in place
            np.multiply(level, 1.0 - c.background, out=level)
            np.add(level, c.background, out=level)
            np.log(level, out=level)
            t, col, p = pixel_events(level, c.frame_ms, self.threshold[idx % n_pix], c.refractory_ms)
            trial, pix = np.divmod(idx[col], n_pix)
            parts.append((t, pix, p, trial + first))
        t, pix, p, trial = (np.concatenate(a) for a in zip(*parts, strict=True))
        if c.noise_rate_hz > 0:
            nt, npix, np_ = noise_events(rng, len(trials) * n_pix, c.duration_ms, c.noise_rate_hz)
            ntrial, npix = np.divmod(npix, n_pix)
            t, pix, p, trial = (np.concatenate(a) for a in ((t, nt), (pix, npix), (p, np_), (trial, ntrial)))
        order = np.lexsort((t, trial))
        y, x = np.divmod(pix[order], c.side)
        return EventStream(t[order], x, y, p[order], trial[order], len(trials), c.duration_ms)

    def channels(self, events: EventStream) -> np.ndarray:
        """Input channel of every event: OFF channels first, then ON, each a row-major (side / pool)**2 grid."""
        s, pool = self.config.sensor_side, self.config.pool
        return events.p.astype(np.int64) * s * s + (events.y // pool) * s + events.x // pool

    def steps(self, dt: float) -> int:
        """Time steps of ``dt`` ms per trial; the trial and the readout window must be whole numbers of steps."""
        c = self.config
        if not (isinstance(dt, int | float) and math.isfinite(dt) and dt > 0):
            raise ConfigError(f"time step dt = {dt!r} ms: need a finite number > 0")
        for key, value in (("blank_ms + motion_ms", c.duration_ms), ("readout_ms", c.readout_ms)):
            k = value / dt
            if abs(k - round(k)) > 1e-9 * max(k, 1.0):
                raise ConfigError(
                    f"task.params.{key} = {value!r} ms is not a whole number of time steps (task.resolution = {dt} ms)"
                )
        return int(round(c.duration_ms / dt))

    def raster(self, events: EventStream, dt: float) -> np.ndarray:
        """bool [n_trials, steps, n_in]: the event at t falls in step floor(t / dt) (a channel spikes once per step)."""
        steps = self.steps(dt)
        out = np.zeros((events.n_trials, steps, self.n_in), dtype=bool)
        k = np.minimum(np.floor(events.t / dt + 1e-9).astype(np.int64), steps - 1)
        out[events.trial, k, self.channels(events)] = True
        return out

    def trial_batch(self, events: EventStream, labels: np.ndarray, dt: float) -> TrialBatch:
        """The trials back to back as a :class:`~nestgrad.tasks.TrialBatch`: one-hot target and learning window over
        the last ``readout_ms`` of each trial."""
        raster = self.raster(events, dt)
        n, steps, n_in = raster.shape
        window = np.zeros((n, steps))
        window[:, steps - int(round(self.config.readout_ms / dt)) :] = 1.0
        target = np.zeros((n, steps, self.n_out))
        target[np.arange(n), :, labels] = 1.0
        target *= window[:, :, None]
        return TrialBatch(
            input_spikes=raster.reshape(n * steps, n_in),
            target=target.reshape(n * steps, self.n_out),
            learning_window=window.reshape(n * steps),
            trial_steps=steps,
            labels=np.asarray(labels, np.int64).copy(),
        )


class DvsGlyphsTask(Task):
    """The task ``dvs_glyphs`` of the classic e-prop network (``[task.params]``: :class:`DvsGlyphsConfig`).

    Batch ``k`` draws ``task.batch_size`` trials from the generator seeded with (``network.seed``, k): from the
    training glyphs for k < ``EVALUATION_FIRST_BATCH``, from the test glyphs from there on."""

    kind = "classification"

    def __init__(self, config: TaskConfig, seed: int):
        super().__init__(config, seed)
        self.data = DvsGlyphs(DvsGlyphsConfig.from_dict(config.params))
        self.n_in, self.n_out = self.data.n_in, self.data.n_out
        self.trial_steps = self.data.steps(config.resolution)

    def batch(self, iteration: int) -> TrialBatch:
        rng = self._rng(iteration)
        split = "test" if iteration >= EVALUATION_FIRST_BATCH else "train"
        trials, labels = self.data.draw_trials(rng, split, self.config.batch_size)
        events = self.data.events(trials, rng)
        return self.data.trial_batch(events, labels, self.config.resolution)


# -- the figure of examples -------------------------------------------------------------------------------------------
def plot_examples(path: str | pathlib.Path, config: DvsGlyphsConfig | None = None, seed: int = 1,
                  n_frames: int = 5) -> dict[str, float]:  # fmt: skip
    """One row per class: the events of a test trial in ``n_frames`` equal time bins of the motion (ON red, OFF
    blue, accumulated per pixel). Returns the mean events per trial and per class of the shown trials."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = DvsGlyphs(config)
    c = data.config
    rng = np.random.default_rng([seed, 0xF16])
    trials, labels = data.draw_trials(rng, "test", c.n_classes, labels=np.arange(c.n_classes))
    events = data.events(trials, rng)
    names = data.class_names()
    edges = np.linspace(c.blank_ms, c.duration_ms, n_frames + 1)
    fig, axes = plt.subplots(c.n_classes, n_frames, figsize=(1.6 * n_frames, 1.6 * c.n_classes), squeeze=False)
    counts = {}
    for row, label in enumerate(labels):
        ev = events.select(events.trial == row)
        counts[names[label]] = float(ev.size)
        for col in range(n_frames):
            sel = (ev.t >= edges[col]) & (ev.t < edges[col + 1])
            img = np.zeros((c.side, c.side, 3))
            np.add.at(img[:, :, 0], (ev.y[sel & (ev.p == 1)], ev.x[sel & (ev.p == 1)]), 1.0)
            np.add.at(img[:, :, 2], (ev.y[sel & (ev.p == 0)], ev.x[sel & (ev.p == 0)]), 1.0)
            ax = axes[row, col]
            ax.imshow(np.minimum(img / max(np.percentile(img[img > 0], 95) if (img > 0).any() else 1.0, 1e-9), 1.0),
                      interpolation="nearest")  # fmt: skip
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(names[label])
            if row == 0:
                ax.set_title(f"{edges[col]:.0f}-{edges[col + 1]:.0f} ms", fontsize=8)
    fig.suptitle("dvs_glyphs: events per time bin (ON red, OFF blue)", fontsize=9)
    fig.tight_layout()
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return counts


def _main() -> None:
    parser = argparse.ArgumentParser(description="Figure of example event frames of the dvs_glyphs task")
    parser.add_argument("--figure", default="docs/figures/dvs_glyphs_examples.png")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    counts = plot_examples(args.figure, seed=args.seed)
    print(f"wrote {args.figure}; events per shown trial: " + ", ".join(f"{k} {v:.0f}" for k, v in counts.items()))


if __name__ == "__main__":
    _main()

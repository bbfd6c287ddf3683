"""LGN of the Billeh et al. (2020) / Chen et al. (2022) mouse V1 model: visual stimuli -> firing rates -> spikes.

Every unit is a linear spatio-temporal filter followed by a rectifier:

    rate(t) = max(0, spont + sum over subunits of  sign * gain * (k * (G . frame))(t))

* ``G``: a normalised Gaussian receptive field (sigma = size / 3 deg, weights summing to 1), so that a full-field
  frame of value ``c`` gives a spatial response ``c``;
* ``k``: a biphasic temporal kernel made of two raised-cosine bumps on a logarithmic time axis (the construction
  of bmtk's ``makeBasis_StimKernel`` with two cosine basis functions), a positive lobe and a later negative one.
  Its peaks depend on the temporal-frequency tag of the type (TF1 slow ... TF15 fast); sustained ("s") types have
  a weaker negative lobe than transient ("t") types. Kernels are normalised so that a full-field step of contrast 1
  gives a peak filtered response of exactly 1, so ``gain`` (Hz) is the rate increase to a preferred full-contrast
  step;
* ``sign``: +1 for ON, -1 for OFF (sub)units. The two-subunit types (sONsOFF_001, sONtOFF_001) sum an ON and an OFF
  subunit whose centres are ``sf_sep`` degrees apart along a random angle.

Visual field (Billeh et al.): 240 x 120 deg, 1 px = 1 deg; a frame is an array ``[120, 240]`` (rows = elevation y,
columns = azimuth x), values in [-1, 1] with 0 = gray. Pixel ``(r, c)`` covers x in [c, c + 1), y in [r, r + 1); unit
positions ``x_deg``, ``y_deg`` use the same coordinates (angles are measured in this (x, y) frame, i.e. clockwise
on a screen whose rows go down).

Published facts used (docs/v1_data_sources.md, section 4): the 14 types and their units per tile (116 per tile, 150
tiles, 17,400 units), the triangular size distribution (2, 3, 10) deg, the sizes 6 / 9 deg and subunit separations
6 / 4 deg of the two-subunit types, their maximal ON / OFF rates (21 / 35 and 31 / 46 Hz) and spontaneous rates (4.0 and
5.5 Hz). The fitted per-unit temporal parameters of the published model are not available; the kernels here are
parametrised by the temporal-frequency tag (see :data:`TF_PEAKS_MS`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.fft
import scipy.sparse

from nestgrad.config.v1 import FIELD_SHAPE  # rows (elevation), columns (azimuth); 1 px = 1 deg
from nestgrad.errors import ConfigError

FIELD_EXTENT_DEG: tuple[float, float] = (240.0, 120.0)  # (x, y)
FIELD_CENTER_DEG: tuple[float, float] = (120.0, 60.0)

# Billeh et al.'s 14 LGN filter types and their units per tile (kaeldai/v1_network_builder lgn_models.json `N`)
LGN_TYPES: dict[str, int] = {
    "sON_TF1": 7,
    "sON_TF2": 5,
    "sON_TF4": 7,
    "sON_TF8": 15,
    "sOFF_TF1": 8,
    "sOFF_TF2": 8,
    "sOFF_TF4": 15,
    "sOFF_TF8": 8,
    "sOFF_TF15": 7,
    "tOFF_TF4": 10,
    "tOFF_TF8": 5,
    "tOFF_TF15": 8,
    "sONsOFF_001": 8,
    "sONtOFF_001": 5,
}
LGN_TYPE_NAMES: tuple[str, ...] = tuple(LGN_TYPES)
UNITS_PER_TILE = sum(LGN_TYPES.values())  # 116
N_TILES = 150  # 15 x 10 tiles over the 240 x 120 deg field
N_FULL = UNITS_PER_TILE * N_TILES  # 17,400

SIZE_TRIANGULAR_DEG = (2.0, 3.0, 10.0)  # (min, mode, max) of single-subunit receptive-field sizes
TWO_SUBUNIT_SIZE_DEG = {"sONsOFF_001": 6.0, "sONtOFF_001": 9.0}
SF_SEP_DEG = {"sONsOFF_001": 6.0, "sONtOFF_001": 4.0}  # distance between the ON and the OFF subunit centres

KERNEL_MS = 250.0  # length of the temporal kernels (the second lobe of the slowest type ends at ~225 ms)
# Peaks (ms) of the positive and the negative lobe by temporal-frequency tag: faster tags peak earlier
TF_PEAKS_MS: dict[int, tuple[float, float]] = {
    1: (50.0, 100.0),
    2: (40.0, 85.0),
    4: (30.0, 65.0),
    8: (20.0, 45.0),
    15: (12.0, 30.0),
}
# Area of the negative lobe relative to the positive one: sustained units keep 60 % of the step response's
# integral, transient ones 10 %
SUSTAINED_NEGATIVE_RATIO = 0.4
TRANSIENT_NEGATIVE_RATIO = 0.9
_LOG_OFFSET_MS = 0.3  # bmtk's ``b``: offset of the logarithmic time axis
_LOG_HALF_WIDTH = 0.8  # half width of a bump on the log(t + b) axis: a bump spans peak * [0.45, 2.2]

# Rates (Hz): gain = rate increase to a preferred full-contrast step; spontaneous rate with a gray screen.
# Single-subunit values are round numbers within the published LGN range; two-subunit values are published.
GAIN_HZ = {"sON": 30.0, "sOFF": 30.0, "tOFF": 40.0}
SPONT_HZ = {"sON": 4.0, "sOFF": 4.0, "tOFF": 3.0, "sONsOFF_001": 4.0, "sONtOFF_001": 5.5}
TWO_SUBUNIT_GAIN_HZ = {"sONsOFF_001": (21.0, 35.0), "sONtOFF_001": (31.0, 46.0)}  # (ON, OFF)
JITTER = 0.2  # per-unit gains and spontaneous rates are scaled by U(1 - JITTER, 1 + JITTER)


@dataclass(frozen=True)
class TemporalKernel:
    """A biphasic kernel: two raised-cosine bumps on a log(t + b) axis peaking at ``peaks_ms``, the second negative
    with ``negative_ratio`` times the area of the first, scaled so that its step response peaks at 1."""

    peaks_ms: tuple[float, float]
    negative_ratio: float

    def _raw(self, t_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lt = np.log(t_ms + _LOG_OFFSET_MS)
        bumps = []
        for peak in self.peaks_ms:
            arg = (lt - math.log(peak + _LOG_OFFSET_MS)) * math.pi / _LOG_HALF_WIDTH
            bumps.append(0.5 * (1.0 + np.cos(np.clip(arg, -math.pi, math.pi))))
        return bumps[0], bumps[1]

    def _fine(self) -> tuple[np.ndarray, np.ndarray]:
        """Kernel and step response on a 0.01 ms grid (normalised)."""
        t = np.arange(0.0, KERNEL_MS + 1e-9, 0.01)
        b0, b1 = self._raw(t)
        area0, area1 = np.trapezoid(b0, t), np.trapezoid(b1, t)
        k = b0 / area0 - self.negative_ratio * b1 / area1
        step = np.concatenate([[0.0], np.cumsum(0.5 * (k[1:] + k[:-1]) * np.diff(t))])
        scale = step.max()
        return t, step / scale

    def step_response(self, t_ms: np.ndarray) -> np.ndarray:
        """Filtered response at ``t_ms`` after a unit step at t = 0 (0 before, peak 1)."""
        t, step = self._fine()
        return np.interp(np.asarray(t_ms, float), t, step, left=0.0, right=step[-1])

    def sampled(self, dt_ms: float) -> np.ndarray:
        """Discrete kernel for steps of ``dt_ms``: ``k[n] = s((n + 1) dt) - s(n dt)`` (s = step response), so that a
        stimulus switched on at step c gives ``s((n + 1) dt)`` at step c + n, i.e. at the end of that step."""
        n = int(math.ceil(KERNEL_MS / dt_ms))
        return np.diff(self.step_response(np.arange(n + 1) * dt_ms))

    def impulse(self, t_ms: np.ndarray) -> np.ndarray:
        """The (normalised) kernel itself, 1/ms."""
        t, step = self._fine()
        return np.interp(np.asarray(t_ms, float), t[:-1] + 0.005, np.diff(step) / 0.01, left=0.0, right=0.0)


def _tag(name: str) -> tuple[str, int]:
    """'sOFF_TF4' -> ('sOFF', 4)."""
    kind, tf = name.split("_TF")
    return kind, int(tf)


def _kernel_of(kind: str, tf: int) -> TemporalKernel:
    ratio = SUSTAINED_NEGATIVE_RATIO if kind.startswith("s") else TRANSIENT_NEGATIVE_RATIO
    return TemporalKernel(TF_PEAKS_MS[tf], ratio)


# (sign, kernel, gain in Hz) of each subunit of a type; two-subunit types list the ON subunit first
def _type_subunits() -> dict[str, tuple[tuple[int, TemporalKernel, float], ...]]:
    table: dict[str, tuple[tuple[int, TemporalKernel, float], ...]] = {}
    for name in LGN_TYPE_NAMES:
        if name in TWO_SUBUNIT_GAIN_HZ:
            g_on, g_off = TWO_SUBUNIT_GAIN_HZ[name]
            # sONsOFF: two sustained subunits; sONtOFF: a sustained ON and a transient OFF subunit (faster, after
            # the published times to peak: ~120 / 115 ms and ~94 / 65 ms)
            off_kind = "tOFF" if name.startswith("sONtOFF") else "sOFF"
            tf_on, tf_off = (1, 1) if name.startswith("sONsOFF") else (2, 4)
            table[name] = ((1, _kernel_of("sON", tf_on), g_on), (-1, _kernel_of(off_kind, tf_off), g_off))
        else:
            kind, tf = _tag(name)
            sign = 1 if kind == "sON" else -1
            table[name] = ((sign, _kernel_of(kind, tf), GAIN_HZ[kind]),)
    return table


TYPE_SUBUNITS = _type_subunits()


def type_counts(n_units: int) -> np.ndarray:
    """Units per type for ``n_units`` units, proportional to the units per tile (largest-remainder rounding, ties
    to the earlier type); exactly ``N_TILES`` x the per-tile counts for 17,400 units."""
    per_tile = np.array(list(LGN_TYPES.values()), dtype=np.int64)
    exact = n_units * per_tile / UNITS_PER_TILE
    counts = np.floor(exact).astype(np.int64)
    rest = n_units - int(counts.sum())
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[:rest]] += 1
    return counts


def pixel_centres() -> tuple[np.ndarray, np.ndarray]:
    """x and y (deg) of the pixel centres, each ``[120, 240]``."""
    y, x = np.mgrid[0 : FIELD_SHAPE[0], 0 : FIELD_SHAPE[1]]
    return x + 0.5, y + 0.5


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ConfigError(f"LGN: {name} = {value!r} is invalid: an integer >= {minimum} is required")
    return int(value)


def _check_dt(dt_ms: float) -> float:
    if (
        isinstance(dt_ms, bool)
        or not isinstance(dt_ms, int | float | np.floating)
        or not (math.isfinite(dt_ms) and dt_ms > 0)
    ):
        raise ConfigError(f"LGN: dt_ms = {dt_ms!r} is invalid: a finite time step > 0 ms is required")
    return float(dt_ms)


@dataclass(eq=False)
class LGN:
    """A population of LGN units; make one with :meth:`create`.

    Per-unit arrays (length ``n_units``; units are ordered by type):

    ``x_deg``, ``y_deg``
        Receptive-field centre (two-subunit types: midpoint of the two subunits).
    ``size_deg``
        Receptive-field size; the Gaussian's sigma is size / 3.
    ``sign``
        +1 ON, -1 OFF; two-subunit types count as ON (+1).
    ``is_on``
        ``sign > 0``: the unit has an ON (sub)unit.
    ``type_index``, ``type_names``
        Index into :data:`LGN_TYPE_NAMES` and the type name of each unit.
    ``spont_hz``
        Spontaneous rate (gray screen).
    ``tuning_angle_deg``
        Direction from the OFF to the ON subunit of two-subunit types, NaN for the others.

    Subunit arrays (``n_subunits`` = ``n_units`` + number of two-subunit units; subunit ``i < n_units`` belongs to
    unit ``i``, the others to ``sub_unit[i]``): ``sub_unit``, ``sub_x_deg``, ``sub_y_deg``, ``sub_sigma_deg``,
    ``sub_coef_hz`` (sign x gain) and ``sub_kernel`` (index into ``kernels``).
    """

    x_deg: np.ndarray
    y_deg: np.ndarray
    size_deg: np.ndarray
    sign: np.ndarray
    is_on: np.ndarray
    type_index: np.ndarray
    type_names: np.ndarray
    spont_hz: np.ndarray
    tuning_angle_deg: np.ndarray
    sub_unit: np.ndarray
    sub_x_deg: np.ndarray
    sub_y_deg: np.ndarray
    sub_sigma_deg: np.ndarray
    sub_coef_hz: np.ndarray
    sub_kernel: np.ndarray
    kernels: tuple[TemporalKernel, ...]
    _weights: scipy.sparse.csr_matrix | None = field(default=None, init=False, repr=False)
    _kernel_cache: dict[float, np.ndarray] = field(default_factory=dict, init=False, repr=False)

    # frame sets with at most this many distinct frames are filtered per frame (see rates)
    MAX_FRAMES_FOR_INDICATORS = 64

    @classmethod
    def create(
        cls,
        n_units: int,
        seed: int,
        center_deg: tuple[float, float] = FIELD_CENTER_DEG,
        extent_deg: tuple[float, float] = FIELD_EXTENT_DEG,
    ) -> LGN:
        """``n_units`` units with the published type proportions, centres uniform over the rectangle of size
        ``extent_deg`` (x, y) around ``center_deg``. Deterministic in ``seed``."""
        n_units = _check_int("n_units", n_units, 1)
        seed = _check_int("seed", seed, 0)
        for name, pair, positive in (("center_deg", center_deg, False), ("extent_deg", extent_deg, True)):
            ok = len(pair) == 2 and all(
                isinstance(v, int | float | np.number) and not isinstance(v, bool) and math.isfinite(v) for v in pair
            )
            if not ok or (positive and min(pair) <= 0):
                need = "two finite numbers" + (" > 0" if positive else "")
                raise ConfigError(f"LGN: {name} = {pair!r} is invalid: {need} (deg) are required")
        rng = np.random.default_rng([seed, 0x16E])
        counts = type_counts(n_units)
        type_index = np.repeat(np.arange(len(LGN_TYPE_NAMES)), counts)
        names = np.array(LGN_TYPE_NAMES)[type_index]
        x = center_deg[0] + extent_deg[0] * (rng.random(n_units) - 0.5)
        y = center_deg[1] + extent_deg[1] * (rng.random(n_units) - 0.5)
        size = rng.triangular(*SIZE_TRIANGULAR_DEG, n_units)
        angle = np.full(n_units, np.nan)
        two = np.isin(names, list(TWO_SUBUNIT_SIZE_DEG))
        angle[two] = rng.uniform(0.0, 360.0, int(two.sum()))
        gain_jitter = rng.uniform(1 - JITTER, 1 + JITTER, n_units)
        spont_jitter = rng.uniform(1 - JITTER, 1 + JITTER, n_units)

        kernels: list[TemporalKernel] = []
        sign = np.empty(n_units, np.int8)
        spont = np.empty(n_units)
        # primary subunits (index = unit) and second subunits of two-subunit units
        sub = {k: np.empty(n_units) for k in ("x", "y", "sigma", "coef")}
        sub_kernel = np.empty(n_units, np.int64)
        extra: dict[str, list] = {k: [] for k in ("unit", "x", "y", "sigma", "coef", "kernel")}
        for t, name in enumerate(LGN_TYPE_NAMES):
            idx = np.flatnonzero(type_index == t)
            parts = TYPE_SUBUNITS[name]
            kid = []
            for _, kernel, _ in parts:
                if kernel not in kernels:
                    kernels.append(kernel)
                kid.append(kernels.index(kernel))
            spont[idx] = (SPONT_HZ[name] if name in SPONT_HZ else SPONT_HZ[_tag(name)[0]]) * spont_jitter[idx]
            sign[idx] = parts[0][0]
            if len(parts) == 1:
                sub["x"][idx], sub["y"][idx] = x[idx], y[idx]
                sub["sigma"][idx] = size[idx] / 3.0
                sub["coef"][idx] = parts[0][0] * parts[0][2] * gain_jitter[idx]
                sub_kernel[idx] = kid[0]
                continue
            size[idx] = TWO_SUBUNIT_SIZE_DEG[name]
            half = SF_SEP_DEG[name] / 2.0
            dx, dy = half * np.cos(np.deg2rad(angle[idx])), half * np.sin(np.deg2rad(angle[idx]))
            sub["x"][idx], sub["y"][idx] = x[idx] + dx, y[idx] + dy  # ON subunit
            sub["sigma"][idx] = size[idx] / 3.0
            sub["coef"][idx] = parts[0][0] * parts[0][2] * gain_jitter[idx]
            sub_kernel[idx] = kid[0]
            extra["unit"].append(idx)
            extra["x"].append(x[idx] - dx)  # OFF subunit
            extra["y"].append(y[idx] - dy)
            extra["sigma"].append(size[idx] / 3.0)
            extra["coef"].append(parts[1][0] * parts[1][2] * gain_jitter[idx])
            extra["kernel"].append(np.full(idx.size, kid[1]))

        def cat(first: np.ndarray, key: str) -> np.ndarray:
            return np.concatenate([first, *extra[key]])

        return cls(
            x_deg=x,
            y_deg=y,
            size_deg=size,
            sign=sign,
            is_on=sign > 0,
            type_index=type_index,
            type_names=names,
            spont_hz=spont,
            tuning_angle_deg=angle,
            sub_unit=cat(np.arange(n_units), "unit").astype(np.int64),
            sub_x_deg=cat(sub["x"], "x"),
            sub_y_deg=cat(sub["y"], "y"),
            sub_sigma_deg=cat(sub["sigma"], "sigma"),
            sub_coef_hz=cat(sub["coef"], "coef"),
            sub_kernel=cat(sub_kernel, "kernel").astype(np.int64),
            kernels=tuple(kernels),
        )

    @property
    def n_units(self) -> int:
        return int(self.x_deg.size)

    @property
    def n_subunits(self) -> int:
        return int(self.sub_x_deg.size)

    def units_near(self, x_deg: float, y_deg: float, radius_deg: float, on: bool | None = None) -> np.ndarray:
        """Indices of the units whose centre lies within ``radius_deg`` of (x_deg, y_deg); ``on`` = True / False
        keeps only ON / OFF units."""
        near = (self.x_deg - x_deg) ** 2 + (self.y_deg - y_deg) ** 2 <= radius_deg**2
        if on is not None:
            near &= self.is_on == bool(on)
        return np.flatnonzero(near)

    # -- filtering ---------------------------------------------------------------------------------------------------
    def spatial_weights(self) -> scipy.sparse.csr_matrix:
        """``[n_subunits, 120 * 240]``: each subunit's Gaussian over the pixels within 3 sigma of its centre,
        normalised to sum 1 including pixels outside the field (which are gray), built once and cached."""
        if self._weights is not None:
            return self._weights
        rows, cols, vals = [], [], []
        sigma = self.sub_sigma_deg
        radius = np.ceil(3.0 * sigma).astype(np.int64) + 1  # pixels around the centre pixel that can be within 3 sigma
        h, w = FIELD_SHAPE
        for r in np.unique(radius):
            idx = np.flatnonzero(radius == r)
            off = np.arange(-r, r + 1)
            ox, oy = np.meshgrid(off, off)
            ox, oy = ox.ravel(), oy.ravel()
            px = np.floor(self.sub_x_deg[idx]).astype(np.int64)[:, None] + ox[None, :]
            py = np.floor(self.sub_y_deg[idx]).astype(np.int64)[:, None] + oy[None, :]
            d2 = (px + 0.5 - self.sub_x_deg[idx, None]) ** 2 + (py + 0.5 - self.sub_y_deg[idx, None]) ** 2
            s2 = sigma[idx, None] ** 2
            g = np.exp(-d2 / (2.0 * s2)) * (d2 <= 9.0 * s2)
            g /= g.sum(axis=1, keepdims=True)
            inside = (px >= 0) & (px < w) & (py >= 0) & (py < h) & (g > 0)
            rows.append(np.broadcast_to(idx[:, None], g.shape)[inside])
            cols.append((py * w + px)[inside])
            vals.append(g[inside])
        self._weights = scipy.sparse.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(self.n_subunits, h * w)
        )
        return self._weights

    def spatial_responses(self, frames: np.ndarray) -> np.ndarray:
        """``[n_subunits, n_frames]``: each subunit's Gaussian-weighted mean of each frame (before sign and gain)."""
        frames = self._check_frames(frames)
        return np.asarray(self.spatial_weights() @ frames.reshape(frames.shape[0], -1).T)

    def _sampled_kernels(self, dt_ms: float) -> np.ndarray:
        if dt_ms not in self._kernel_cache:
            self._kernel_cache[dt_ms] = np.stack([k.sampled(dt_ms) for k in self.kernels])
        return self._kernel_cache[dt_ms]

    @staticmethod
    def _check_frames(frames: np.ndarray) -> np.ndarray:
        frames = np.asarray(frames, dtype=float)
        given = frames.shape
        if frames.ndim == 2:
            frames = frames[None]
        if frames.ndim != 3 or frames.shape[1:] != FIELD_SHAPE or frames.shape[0] < 1:
            raise ConfigError(
                f"LGN: frames of shape {given} are invalid: [n_frames, {FIELD_SHAPE[0]}, {FIELD_SHAPE[1]}] "
                f"or [{FIELD_SHAPE[0]}, {FIELD_SHAPE[1]}] (rows = elevation, columns = azimuth, 1 px = 1 deg)"
            )
        if not np.all(np.isfinite(frames)):
            bad = np.argwhere(~np.isfinite(frames))[0]
            value = float(frames[tuple(bad)])
            raise ConfigError(f"LGN: frames{tuple(bad.tolist())} = {value!r} is invalid: finite values are required")
        return frames

    def rates(self, frames: np.ndarray, frame_of_step: np.ndarray, dt_ms: float) -> np.ndarray:
        """Firing rates (Hz), ``[steps, n_units]``, of the movie that shows ``frames[frame_of_step[t]]`` during
        step ``t`` (``dt_ms`` each). The screen is gray before step 0.

        Stimuli are piecewise constant in time, so the spatial filter runs once per distinct frame. With at most
        ``MAX_FRAMES_FOR_INDICATORS`` frames, each kernel is convolved (FFT) with each frame's on/off time course
        and the results are combined with the frames' spatial responses, which is exact; with more frames, each
        subunit's spatial response time course is convolved directly (FFT).

        Parameters
        ----------
        frames
            ``[n_frames, 120, 240]`` (or one ``[120, 240]`` frame), finite, 0 = gray.
        frame_of_step
            ``[steps]`` integers in ``[0, n_frames)``.
        dt_ms
            Time step (ms).
        """
        frames = self._check_frames(frames)
        dt_ms = _check_dt(dt_ms)
        fos = np.asarray(frame_of_step)
        if fos.ndim != 1 or fos.size < 1 or not np.issubdtype(fos.dtype, np.integer):
            raise ConfigError(
                f"LGN: frame_of_step (shape {fos.shape}, dtype {fos.dtype}) is invalid: a 1-D integer array with at "
                "least one step is required"
            )
        n_frames = frames.shape[0]
        if fos.min() < 0 or fos.max() >= n_frames:
            bad = fos[(fos < 0) | (fos >= n_frames)][0]
            raise ConfigError(f"LGN: frame_of_step value {bad} is invalid: indices in [0, {n_frames}) are required")
        steps = fos.size
        used, fos = np.unique(fos, return_inverse=True)  # filter only the frames shown
        resp = self.spatial_responses(frames[used]) * self.sub_coef_hz[:, None]  # [n_sub, n_used]
        kern = self._sampled_kernels(dt_ms)  # [n_kernels, K]
        n_fft = scipy.fft.next_fast_len(steps + kern.shape[1] - 1, real=True)
        kern_f = scipy.fft.rfft(kern, n_fft, axis=1)
        out = np.empty((steps, self.n_subunits))
        if used.size <= self.MAX_FRAMES_FOR_INDICATORS:
            shown = np.zeros((used.size, steps))
            shown[fos, np.arange(steps)] = 1.0
            shown_f = scipy.fft.rfft(shown, n_fft, axis=1)
            # filtered on/off time course of each frame under each kernel: [n_kernels, n_used, steps]
            courses = scipy.fft.irfft(kern_f[:, None, :] * shown_f[None], n_fft, axis=2)[:, :, :steps]
            for g in range(len(self.kernels)):
                idx = np.flatnonzero(self.sub_kernel == g)
                out[:, idx] = courses[g].T @ resp[idx].T
        else:
            drive_f = scipy.fft.rfft(resp[:, fos], n_fft, axis=1)  # [n_sub, F]
            filt = scipy.fft.irfft(drive_f * kern_f[self.sub_kernel], n_fft, axis=1)[:, :steps]
            out[:] = filt.T
        n = self.n_units
        rates = out[:, :n] + self.spont_hz[None, :]
        rates[:, self.sub_unit[n:]] += out[:, n:]
        return np.maximum(rates, 0.0, out=rates)

    @staticmethod
    def spikes(rates: np.ndarray, rng: np.random.Generator, dt_ms: float) -> np.ndarray:
        """Bernoulli spikes, ``[steps, n_units]`` bool: in each step a unit spikes with probability
        ``rate * dt_ms / 1000`` (clipped to 1), independently of other steps and units, i.e. a discretised Poisson
        process with at most one spike per step."""
        dt_ms = _check_dt(dt_ms)
        rates = np.asarray(rates, dtype=float)
        if rates.ndim != 2:
            raise ConfigError(f"LGN: rates of shape {rates.shape} are invalid: [steps, n_units] is required")
        if not np.all(np.isfinite(rates)) or (rates.size and rates.min() < 0):
            bad = rates[~np.isfinite(rates) | (rates < 0)][0]
            raise ConfigError(f"LGN: rate {float(bad)!r} is invalid: finite rates >= 0 Hz are required")
        return rng.random(rates.shape) < np.minimum(rates * (dt_ms / 1000.0), 1.0)

"""The table ``[task.params]`` of the classic e-prop task ``dvs_glyphs``: a DVS-style event stream generated offline
(tasks/dvs_glyphs.py, docs/dvs_glyphs.md).

Every constant is explained in docs/dvs_glyphs.md; in short: scikit-learn's 8 x 8 digit glyphs, upsampled to
``glyph_side`` px, move over a ``side`` x ``side`` sensor; each pixel emits ON/OFF events when its log intensity
moved by the contrast threshold since its last event (Lichtsteiner, Posch & Delbruck 2008). Times in ms, distances
in sensor pixels (px), speeds in px/ms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from nestgrad.config.tables import from_table
from nestgrad.errors import ConfigError

# the motion vocabulary: translations through the sensor's centre (screen coordinates, y grows downwards) and
# circles around it
TRANSLATIONS: dict[str, tuple[float, float]] = {
    "right": (1.0, 0.0),
    "left": (-1.0, 0.0),
    "up": (0.0, -1.0),
    "down": (0.0, 1.0),
    "up_right": (math.sqrt(0.5), -math.sqrt(0.5)),
    "up_left": (-math.sqrt(0.5), -math.sqrt(0.5)),
    "down_right": (math.sqrt(0.5), math.sqrt(0.5)),
    "down_left": (-math.sqrt(0.5), math.sqrt(0.5)),
}
ROTATIONS: dict[str, float] = {"cw": 1.0, "ccw": -1.0}  # sign of the angular velocity on the screen (y down)
MOTIONS = tuple(TRANSLATIONS) + tuple(ROTATIONS)
WHERE = "task.params"


@dataclass(frozen=True)
class DvsGlyphsConfig:
    """How the event stream is made. Defaults: 6 classes (4 translations, 2 circles), 500 ms trials, 2 x 32 x 32
    channels; see docs/dvs_glyphs.md for the rationale of each value."""

    side: int = 32  # px, sensor side (DVS128 pooled by 4, as SNN studies of DVS Gesture commonly do)
    pool: int = 1  # sum-pooling factor: channels = 2 * (side / pool)**2 (2: 2 x 16 x 16 = 512)
    glyph_side: int = 16  # px, the 8 x 8 glyph upsampled bilinearly (half the sensor)
    motions: tuple[str, ...] = ("right", "left", "up", "down", "cw", "ccw")
    # digits per glyph group; classes = motions x groups (one group: classes are the motions, the digit is a
    # nuisance variable as the performer is in DVS Gesture)
    glyph_groups: tuple[tuple[int, ...], ...] = ((0, 1, 2, 3, 4, 5, 6, 7, 8, 9),)
    blank_ms: float = 50.0  # ms, glyph at rest before it moves (noise only): the previous trial's activity decays
    motion_ms: float = 450.0  # ms, the glyph moves
    readout_ms: float = 100.0  # ms, the last part of the motion: learning window and decision
    speed_min: float = 0.04  # px/ms (40 px/s): a translation covers 18 px, a third of a circle of radius 8 px
    speed_max: float = 0.08  # px/ms: twice the slowest, as gestures differ in speed between performers
    jitter_px: float = 3.0  # px, random offset of the path (perpendicular for translations, centre for circles)
    radius_px: float = 8.0  # px, circle radius (the glyph stays on the 32 px sensor)
    background: float = 0.1  # intensity of the background, glyph ink 1: ln(10) = 2.3 between ink and background
    contrast_threshold: float = 0.2  # ln units (a 22 % intensity step)
    threshold_mismatch: float = 0.021  # relative std of the per-pixel threshold (2.1 %, Lichtsteiner et al. 2008)
    refractory_ms: float = 1.0  # ms after an event during which the pixel is held in reset
    noise_rate_hz: float = 0.2  # background-activity events per pixel per second (both polarities)
    frame_ms: float = 1.0  # ms between rendered frames; events are timed by linear interpolation within a frame
    test_fraction: float = 0.2  # of the glyph images per digit, held out for the test trials
    split_seed: int = 0xD161  # the glyph split (the digits tasks' seed)
    sensor_seed: int = 0x5E45  # the fixed per-pixel threshold mismatch of "the sensor"

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("motions", "glyph_groups"):
                continue
            if f.type in ("int", int):
                if isinstance(value, bool) or not isinstance(value, int | np.integer):
                    raise ConfigError(f"{WHERE}.{f.name} = {value!r}: an integer is required")
            elif isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ConfigError(f"{WHERE}.{f.name} = {value!r}: a finite number is required")
        self._check_positive_ints()
        self._check_classes()
        self._check_times()
        for key in ("speed_min", "speed_max", "radius_px", "contrast_threshold", "frame_ms"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"{WHERE}.{key} = {getattr(self, key)!r}: must be > 0")
        if self.speed_max < self.speed_min:
            raise ConfigError(f"{WHERE}.speed_max = {self.speed_max!r}: must be >= speed_min = {self.speed_min!r}")
        for key in ("jitter_px", "refractory_ms", "noise_rate_hz", "threshold_mismatch"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{WHERE}.{key} = {getattr(self, key)!r}: must be >= 0")
        if not 0.0 < self.background < 1.0:
            raise ConfigError(f"{WHERE}.background = {self.background!r}: must be in (0, 1) (glyph ink is 1)")
        if self.threshold_mismatch > 0.5:
            raise ConfigError(f"{WHERE}.threshold_mismatch = {self.threshold_mismatch!r}: must be <= 0.5")
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"{WHERE}.test_fraction = {self.test_fraction!r}: must be in (0, 1)")

    def _check_positive_ints(self) -> None:
        if not 4 <= self.side <= 256:
            raise ConfigError(f"{WHERE}.side = {self.side!r}: must be in 4..256 px")
        if self.pool < 1 or self.side % self.pool:
            raise ConfigError(f"{WHERE}.pool = {self.pool!r}: must be >= 1 and divide side = {self.side}")
        if not 2 <= self.glyph_side <= self.side:
            raise ConfigError(f"{WHERE}.glyph_side = {self.glyph_side!r}: must be in 2..side ({self.side}) px")
        for key in ("split_seed", "sensor_seed"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{WHERE}.{key} = {getattr(self, key)!r}: must be >= 0")

    def _check_classes(self) -> None:
        motions = self.motions
        if isinstance(motions, str) or not isinstance(motions, list | tuple) or not motions:
            raise ConfigError(f"{WHERE}.motions = {motions!r}: a non-empty list of {', '.join(MOTIONS)}")
        bad = [m for m in motions if m not in MOTIONS]
        if bad:
            raise ConfigError(f"{WHERE}.motions: unknown motion(s) {bad}; known: {', '.join(MOTIONS)}")
        if len(set(motions)) != len(motions):
            raise ConfigError(f"{WHERE}.motions = {list(motions)!r}: every motion at most once")
        object.__setattr__(self, "motions", tuple(motions))  # TOML gives lists
        groups = self.glyph_groups
        if isinstance(groups, str) or not isinstance(groups, list | tuple) or not groups:
            raise ConfigError(f"{WHERE}.glyph_groups = {groups!r}: a non-empty list of lists of digits 0..9")
        seen: set[int] = set()
        for g in groups:
            if isinstance(g, str) or not isinstance(g, list | tuple) or not g:
                raise ConfigError(f"{WHERE}.glyph_groups: group {g!r} is not a non-empty list of digits 0..9")
            for d in g:
                if isinstance(d, bool) or not isinstance(d, int) or not 0 <= d <= 9:
                    raise ConfigError(f"{WHERE}.glyph_groups: {d!r} in group {list(g)} is not a digit 0..9")
                if d in seen:
                    raise ConfigError(f"{WHERE}.glyph_groups: digit {d} is in more than one group")
                seen.add(d)
        object.__setattr__(self, "glyph_groups", tuple(tuple(int(d) for d in g) for g in groups))
        if self.n_classes < 2:
            raise ConfigError(
                f"{WHERE}.motions x glyph_groups = {len(motions)} x {len(groups)} class(es): at least 2 are needed"
            )

    def _check_times(self) -> None:
        if self.blank_ms < 0:
            raise ConfigError(f"{WHERE}.blank_ms = {self.blank_ms!r}: must be >= 0 ms")
        if not self.motion_ms > 0:
            raise ConfigError(f"{WHERE}.motion_ms = {self.motion_ms!r}: must be > 0 ms")
        if not 0 < self.readout_ms <= self.motion_ms:
            raise ConfigError(f"{WHERE}.readout_ms = {self.readout_ms!r}: must be in (0, motion_ms = {self.motion_ms}]")
        if self.duration_ms > 1000.0:
            raise ConfigError(
                f"{WHERE}.blank_ms + motion_ms = {self.duration_ms!r} ms: at most 1000 ms of biological time per trial"
            )
        for key in ("blank_ms", "motion_ms"):
            frames = getattr(self, key) / self.frame_ms
            if abs(frames - round(frames)) > 1e-9 * max(frames, 1.0):
                raise ConfigError(
                    f"{WHERE}.{key} = {getattr(self, key)!r}: must be a whole number of frames (frame_ms = "
                    f"{self.frame_ms})"
                )

    @property
    def n_classes(self) -> int:
        return len(self.motions) * len(self.glyph_groups)

    @property
    def sensor_side(self) -> int:
        """Side of the (pooled) channel grid."""
        return self.side // self.pool

    @property
    def n_in(self) -> int:
        """Input channels: OFF then ON, each a (side / pool)**2 grid in row-major order."""
        return 2 * self.sensor_side**2

    @property
    def duration_ms(self) -> float:
        return float(self.blank_ms + self.motion_ms)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DvsGlyphsConfig:
        return from_table(cls, d, WHERE)

"""Task families: seeded samplers of tasks, each task a set of configuration values laid over the base configuration.

A family draws, per task, the task's own parameters and ``network.seed`` (which fixes the frozen input noise of the
sine task and the initial weights), from a NumPy generator seeded with (meta seed, stream, generation, task index):
the same meta configuration always sees the same tasks, and the meta-test's tasks come from a stream of their own,
unseen during meta-training.

``sine``: ``n_components`` sines with periods drawn log-uniformly from ``periods_ms``, amplitudes uniformly from
``amplitudes`` and phases uniformly from [0, 2 pi) (:class:`~nestgrad.tasks.SineWaveTask` scales the sum to a peak
of 1). ``evidence``: the cue rate, the background rate and the cue-side probability (how lopsided the cues of a
trial are) drawn uniformly from ``cue_rate``, ``background_rate`` and ``cue_side_probability``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from nestgrad.errors import ConfigError

# streams of task seeds: meta-training draws (seed, TRAIN_STREAM, generation, task), the meta-test (seed, TEST_STREAM,
# task); disjoint streams, so the test tasks were never trained on
TRAIN_STREAM = 0x4D45
TEST_STREAM = 0x7E57
MAX_NETWORK_SEED = 2**31 - 1


def _range(where: str, value: Any, low: float = -math.inf, positive: bool = False) -> tuple[float, float]:
    ok = (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value)
        and value[0] <= value[1]
        and value[0] >= low
        and (not positive or value[0] > 0)
    )
    if not ok:
        bound = "> 0" if positive else (f">= {low:g}" if low > -math.inf else "finite")
        raise ConfigError(f"{where} = {value!r}: [low, high] with low <= high, both {bound}, is required")
    return float(value[0]), float(value[1])


@dataclass(frozen=True)
class SineFamily:
    """Sine-wave generation with random periods (ms), relative amplitudes and phases per task."""

    name: str = "sine"
    n_components: int = 4
    periods_ms: tuple[float, float] = (200.0, 1000.0)
    amplitudes: tuple[float, float] = (0.5, 2.0)
    task: str = "sine"  # the base configuration's task.name this family needs

    def __post_init__(self) -> None:
        n = self.n_components
        if not (isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 32):
            raise ConfigError(f"meta.family.n_components = {n!r}: an integer in 1 ... 32 is required")
        object.__setattr__(self, "periods_ms", _range("meta.family.periods_ms", self.periods_ms, positive=True))
        object.__setattr__(self, "amplitudes", _range("meta.family.amplitudes", self.amplitudes, positive=True))

    @property
    def keys(self) -> tuple[str, ...]:
        return ("network.seed", "task.sine_periods", "task.sine_amplitudes", "task.sine_phases")

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        lo, hi = np.log(self.periods_ms)
        return {
            "network.seed": int(rng.integers(1, MAX_NETWORK_SEED)),
            "task.sine_periods": [float(p) for p in np.exp(rng.uniform(lo, hi, self.n_components))],
            "task.sine_amplitudes": [float(a) for a in rng.uniform(*self.amplitudes, self.n_components)],
            "task.sine_phases": [float(p) for p in rng.uniform(0.0, 2.0 * np.pi, self.n_components)],
        }


@dataclass(frozen=True)
class EvidenceFamily:
    """Evidence accumulation with random cue statistics per task: cue rate (Hz), background rate (Hz) and the
    probability that a trial's cues fall on its majority side."""

    name: str = "evidence"
    cue_rate: tuple[float, float] = (20.0, 60.0)
    background_rate: tuple[float, float] = (0.0, 20.0)
    cue_side_probability: tuple[float, float] = (0.6, 0.95)
    task: str = "evidence"

    def __post_init__(self) -> None:
        for key in ("cue_rate", "background_rate"):
            object.__setattr__(self, key, _range(f"meta.family.{key}", getattr(self, key), low=0.0))
        p = _range("meta.family.cue_side_probability", self.cue_side_probability, low=0.5)
        if p[1] > 1.0:
            raise ConfigError(f"meta.family.cue_side_probability = {list(p)!r}: probabilities in [0.5, 1] are required")
        object.__setattr__(self, "cue_side_probability", p)

    @property
    def keys(self) -> tuple[str, ...]:
        return ("network.seed", "task.cue_rate", "task.background_rate", "task.cue_side_probability")

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        return {
            "network.seed": int(rng.integers(1, MAX_NETWORK_SEED)),
            "task.cue_rate": float(rng.uniform(*self.cue_rate)),
            "task.background_rate": float(rng.uniform(*self.background_rate)),
            "task.cue_side_probability": float(rng.uniform(*self.cue_side_probability)),
        }


TaskFamily = SineFamily | EvidenceFamily
FAMILIES: dict[str, type[SineFamily] | type[EvidenceFamily]] = {"sine": SineFamily, "evidence": EvidenceFamily}


def make_family(table: Any) -> TaskFamily:
    """The family of a ``[meta.family]`` table (``name`` and the family's ranges); ConfigError names bad keys."""
    if not isinstance(table, dict) or "name" not in table:
        raise ConfigError(f"[meta.family] needs name = one of {', '.join(FAMILIES)}")
    name = table["name"]
    if name not in FAMILIES:
        raise ConfigError(f"meta.family.name = {name!r}: one of {', '.join(FAMILIES)}")
    klass = FAMILIES[name]
    known = {f.name for f in fields(klass)} - {"task"}
    bad = sorted(set(table) - known)
    if bad:
        raise ConfigError(
            f"[meta.family] unknown key(s) {', '.join(bad)} for family {name!r}; known: {', '.join(sorted(known))}"
        )
    return klass(**table)


def task_rng(seed: int, stream: int, *index: int) -> np.random.Generator:
    """The generator of one task: (meta seed, stream, generation, task) or (meta seed, stream, task)."""
    return np.random.default_rng([seed, stream, *index])


__all__ = ["FAMILIES", "EvidenceFamily", "SineFamily", "TaskFamily", "make_family", "task_rng"]

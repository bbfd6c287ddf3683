"""Deep rewiring (Deep R, Bellec et al., ICLR 2018) for the plastic projections of e-prop networks.

Every potential connection (post, pre) of a projection has a sign s fixed once (the sign of the network's dense
initial weight at that pair, >= 0 counts as +1). A connection is *active* while its parameter theta = s * w > 0.
e-prop changes the weights inside NEST while batches run; between batches (every ``every`` batches) the rule here

1. optionally applies Deep R's L1 and noise terms to the active connections:
   ``theta <- theta - eta * alpha * n + sqrt(2 * eta * T * n) * N(0, 1)`` (n = batches since the last step, eta the
   optimizer's learning rate), then caps theta at the sign's weight bound;
2. makes every active connection with theta <= 0 inactive (its weight crossed zero, or the sign-constrained
   optimizer clipped it to 0);
3. activates the same number of connections chosen uniformly at random among the absent pairs of the projection
   (autapses excluded where the projection forbids them), with theta = ``new_weight`` (Deep R starts them at
   theta = 0; a tiny positive theta keeps them on the active side of NEST's clip at 0, see docs/deep_rewiring.md),

so that every projection keeps its number of connections. Decisions come from a generator seeded by
(seed, iteration, projection) and from weights gathered over all ranks, so every rank makes the same ones.

Connectivity is kept as sorted *keys* ``post * n_pre + pre`` (int64): the rule's cost scales with the number of
connections, not with n_post * n_pre.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from nestgrad.errors import ConfigError

# the generator's stream tag: decisions never share a stream with initial weights or task data
_STREAM = 0xDEE9
# pairs up to this many are enumerated to draw new connections; larger projections draw by rejection
_ENUMERATE_LIMIT = 1 << 22


@dataclass(frozen=True)
class RewiringConfig:
    """``[network.rewiring]``: sparse connectivity and Deep R for the classic e-prop network.

    ``in_fraction`` / ``rec_fraction``: fraction of the possible input -> recurrent and recurrent -> recurrent pairs
    (autapses excluded) that are connected (1: dense, the default). ``enabled``: rewire (else the sparse
    connectivity stays as drawn: the fixed random control). ``every``: batches between rewiring steps.
    ``alpha``: Deep R's L1 coefficient; ``temperature``: its noise temperature T (both 0: off). ``new_weight``:
    |w| of a new connection (pA), > 0."""

    in_fraction: float = 1.0
    rec_fraction: float = 1.0
    enabled: bool = False
    every: int = 1
    alpha: float = 0.0
    temperature: float = 0.0
    new_weight: float = 1e-6

    def __post_init__(self) -> None:
        p = "network.rewiring"
        for key in ("in_fraction", "rec_fraction"):
            v = getattr(self, key)
            if not (_number(v) and 0.0 < v <= 1.0):
                raise ConfigError(f"{p}.{key} = {v!r}: a fraction in (0, 1] is required")
        if not isinstance(self.enabled, bool):
            raise ConfigError(f"{p}.enabled = {self.enabled!r}: true or false")
        if not (isinstance(self.every, int) and not isinstance(self.every, bool) and self.every >= 1):
            raise ConfigError(f"{p}.every = {self.every!r}: an integer >= 1 (batches) is required")
        for key in ("alpha", "temperature"):
            v = getattr(self, key)
            if not (_number(v) and v >= 0.0):
                raise ConfigError(f"{p}.{key} = {v!r}: a finite number >= 0 is required")
        if not (_number(self.new_weight) and self.new_weight > 0.0):
            raise ConfigError(f"{p}.new_weight = {self.new_weight!r}: a finite number > 0 (pA) is required")
        if self.enabled and self.in_fraction == 1.0 and self.rec_fraction == 1.0:
            raise ConfigError(
                f"{p}.enabled = true with in_fraction = rec_fraction = 1: a dense projection has no absent pairs to "
                "rewire to; set a fraction < 1"
            )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RewiringConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"network.rewiring = {data!r}: a table is required")
        known = {f.name for f in dataclasses.fields(cls)}
        bad = sorted(set(data) - known)
        if bad:
            raise ConfigError(f"network.rewiring: unknown key(s) {bad}; known: {', '.join(sorted(known))}")
        return cls(**data)

    @property
    def sparse(self) -> bool:
        return self.in_fraction < 1.0 or self.rec_fraction < 1.0


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def rng_for(seed: int, iteration: int, projection: int) -> np.random.Generator:
    """The generator of one rewiring step of one projection (the same on every rank)."""
    return np.random.default_rng([seed, _STREAM, iteration, projection])


def connection_count(fraction: float, n_post: int, n_pre: int, autapses: bool) -> int:
    """Connections of a projection at ``fraction`` of its allowed pairs (at least one if any pair is allowed)."""
    allowed = n_post * n_pre - (0 if autapses else min(n_post, n_pre))
    return min(allowed, max(1, round(fraction * allowed))) if allowed > 0 else 0


def draw_absent(
    rng: np.random.Generator, present: np.ndarray, k: int, n_post: int, n_pre: int, autapses: bool
) -> np.ndarray:
    """``k`` distinct keys drawn uniformly among the pairs not in ``present`` (sorted keys), autapses excluded
    unless allowed. Small projections enumerate the absent pairs (``rng.choice`` without replacement); large ones
    draw candidates and reject present pairs, duplicates and autapses, keeping the first of each."""
    if k == 0:
        return np.zeros(0, np.int64)
    if not autapses and n_post != n_pre:
        raise ValueError(f"autapses are defined for square projections only, not {n_post} x {n_pre}")
    n_pairs = n_post * n_pre
    if n_pairs <= _ENUMERATE_LIMIT:
        allowed = np.ones(n_pairs, bool)
        allowed[present] = False
        if not autapses:
            d = np.arange(min(n_post, n_pre), dtype=np.int64)
            allowed[d * n_pre + d] = False
        absent = np.flatnonzero(allowed)
        if absent.size < k:
            raise ValueError(f"{k} new connections requested, only {absent.size} absent pairs")
        return np.sort(rng.choice(absent, size=k, replace=False).astype(np.int64))
    # rejection: candidates uniform over the allowed pairs (index space without the diagonal where autapses are
    # forbidden), present pairs found by binary search in the sorted keys, the first of repeated candidates kept
    diagonal = 0 if autapses else min(n_post, n_pre)
    chosen = np.zeros(0, np.int64)
    while chosen.size < k:
        need = k - chosen.size
        cand = _allowed_to_key(rng.integers(0, n_pairs - diagonal, size=need + need // 8 + 16, dtype=np.int64),
                               n_pre, autapses)  # fmt: skip
        cand = cand[~_contains(present, cand)]
        _, first = np.unique(cand, return_index=True)
        cand = cand[np.sort(first)]
        cand = cand[~_contains(np.sort(chosen), cand)]
        chosen = np.concatenate([chosen, cand[:need]])
    return np.sort(chosen)


def _contains(sorted_keys: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """Which of ``cand`` are in ``sorted_keys`` (binary search: O(len(cand) log len(sorted_keys)))."""
    if sorted_keys.size == 0:
        return np.zeros(cand.size, bool)
    pos = np.minimum(np.searchsorted(sorted_keys, cand), sorted_keys.size - 1)
    return sorted_keys[pos] == cand


def _allowed_to_key(index: np.ndarray, n_pre: int, autapses: bool) -> np.ndarray:
    """Index among the allowed pairs -> key: without autapses, row ``post`` skips its diagonal entry (rows of
    n_pre - 1 pairs; only square projections forbid autapses)."""
    if autapses:
        return index
    post, off = np.divmod(index, n_pre - 1)
    return post * n_pre + off + (off >= post)


def initial_keys(seed: int, projection: int, fraction: float, n_post: int, n_pre: int, autapses: bool) -> np.ndarray:
    """The sorted keys of a projection's initial sparse connectivity (exactly :func:`connection_count` pairs)."""
    k = connection_count(fraction, n_post, n_pre, autapses)
    return draw_absent(rng_for(seed, 0, projection), np.zeros(0, np.int64), k, n_post, n_pre, autapses)


@dataclass
class StepResult:
    """What one rewiring step did to one projection."""

    keys: np.ndarray  # sorted keys of the active connections after the step
    theta: np.ndarray  # their |w| (pA), aligned with keys: the weight is sign * theta
    removed: np.ndarray  # keys made inactive
    added: np.ndarray  # keys activated


def rewire_step(
    keys: np.ndarray,
    weights: np.ndarray,
    signs: np.ndarray,
    rng: np.random.Generator,
    n_post: int,
    n_pre: int,
    *,
    autapses: bool,
    eta: float = 0.0,
    alpha: float = 0.0,
    temperature: float = 0.0,
    batches: int = 1,
    new_weight: float = 1e-6,
    w_min: float = -math.inf,
    w_max: float = math.inf,
) -> StepResult:
    """One Deep R step of one projection. ``keys`` (sorted) and ``weights`` are its active connections, ``signs``
    (+1/-1) their fixed signs. Random numbers are drawn in this order: the noise (one standard normal per active
    connection, in key order, only if ``temperature`` > 0), then the new pairs (:func:`draw_absent`). Returns |w|
    (theta) per active connection: the caller multiplies by each pair's sign (new pairs get theta = ``new_weight``).
    ``rng`` of iteration >= 1 (:func:`rng_for`; iteration 0 draws the initial connectivity)."""
    keys = np.asarray(keys, np.int64)
    theta = np.asarray(signs, float) * np.asarray(weights, float)
    if alpha > 0.0:
        theta = theta - eta * alpha * batches
    if temperature > 0.0:
        theta = theta + math.sqrt(2.0 * eta * temperature * batches) * rng.standard_normal(keys.size)
    cap = np.where(np.asarray(signs) > 0, w_max, -w_min)  # |w| bound of each sign
    theta = np.minimum(theta, cap)
    dead = theta <= 0.0
    kept_keys, kept_theta = keys[~dead], theta[~dead]
    added = draw_absent(rng, kept_keys, int(dead.sum()), n_post, n_pre, autapses)
    at = np.searchsorted(kept_keys, added)  # merge two sorted lists in O(connections)
    all_keys = np.insert(kept_keys, at, added)
    all_theta = np.insert(kept_theta, at, np.full(added.size, new_weight))
    return StepResult(all_keys, all_theta, keys[dead], added)

"""Finite-difference check of BPTT gradients, shared by the reference-engine tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def assert_matches_finite_differences(
    spec,
    grads: dict[str, np.ndarray],
    loss: Callable[[dict], float],
    samples: int = 4,
    h: float = 1e-5,
    rtol: float = 1e-5,
) -> None:
    """Fourth-order central differences of ``loss(weights)`` at ``samples`` random synapses per projection.

    The losses are ~1e3, so rounding limits a difference quotient to ~1e-8 absolute: components are compared relative
    to max(|fd|, 1e-3 x the largest gradient of the projection).
    """
    rng = np.random.default_rng(0)

    def at(p: str, i: int, j: int, delta: float) -> float:
        w = {k: v.copy() for k, v in spec.weights.items()}
        w[p][i, j] += delta
        return loss(w)

    for p in ("in_rec", "rec_rec", "rec_out"):
        rows, cols = np.nonzero(spec.masks[p])
        floor = 1e-3 * np.abs(grads[p]).max()
        assert floor > 0, f"{p}: zero gradient, the check would be empty"
        for q in rng.choice(rows.size, samples, replace=False):
            i, j = rows[q], cols[q]
            fd = (8 * (at(p, i, j, h) - at(p, i, j, -h)) - (at(p, i, j, 2 * h) - at(p, i, j, -2 * h))) / (12 * h)
            assert abs(fd - grads[p][i, j]) <= rtol * max(abs(fd), floor), (p, i, j, fd, grads[p][i, j])

"""Timing of training iterations in NEST, shared by the benchmark scripts of this folder."""

from __future__ import annotations

import time
from typing import Any


def time_iterations(nest: Any, net: Any, batches: list[Any]) -> list[float]:
    """Wall-clock seconds of each iteration in ``batches[1:]``, after a warm-up iteration ``batches[0]`` (with the
    network's lead-in); one Prepare/Run/Cleanup context, as the Trainer runs a block."""
    net.load_segment(nest, batches)
    nest.Prepare()
    nest.Run(net.lead_in_ms() + batches[0].steps)  # warm-up iteration
    times = []
    for b in batches[1:]:
        t0 = time.perf_counter()
        nest.Run(float(b.steps))
        times.append(time.perf_counter() - t0)
    nest.Cleanup()
    return times

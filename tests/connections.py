"""Reading connections back in tests without NEST's source and target filters (see
:func:`nestgrad.nest_engine.connections.among`: they grow slower with every kernel with devices a process has made,
which late in one pytest session cost minutes per call)."""

from __future__ import annotations

from typing import Any

import numpy as np

from nestgrad.nest_engine import connections


def connections_among(nest: Any, sources: Any, targets: Any, keys: list[str]) -> dict[str, np.ndarray]:
    """``source``, ``target`` and ``keys`` of the connections from node collection ``sources`` to ``targets``."""
    return connections.among(nest, np.asarray(sources.tolist()), np.asarray(targets.tolist()), keys)

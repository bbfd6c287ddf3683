"""Reading connections back in tests without NEST's source and target filters: in PyNEST 3.10 those grow slower with
every kernel with devices that a process has made (per requested node, a pass over every device the process has
ever created), which late in one pytest session cost minutes per call; an unfiltered ``GetConnections`` does not."""

from __future__ import annotations

from typing import Any

import numpy as np


def connections_among(nest: Any, sources: Any, targets: Any, keys: list[str]) -> dict[str, np.ndarray]:
    """``source``, ``target`` and ``keys`` of the connections from node collection ``sources`` to ``targets``."""
    d = nest.GetConnections().get(["source", "target", *keys])
    among = np.isin(np.asarray(d["source"]), sources.tolist()) & np.isin(np.asarray(d["target"]), targets.tolist())
    return {k: np.asarray(v)[among] for k, v in d.items()}

"""Reading and writing the values of many NEST connections in bounded memory.

PyNEST's ``SynapseCollection.get(keys)`` asks NEST for every connection's full status dictionary (a dozen keys and
more) and only then picks ``keys``, for all connections at once; ``set`` builds one dictionary per connection. That
is ~2.4 kB of Python objects per connection at once: 2.3 GB for a million, 7 GB for three million
(``scaling_runs/bench_connection_reads.py``, PyNEST 3.10). Slices of a SynapseCollection (PyNEST's public indexing)
of :data:`CHUNK` connections each, turned into NumPy arrays one by one, take the same time (~12 us per connection)
with a peak of at most ~170 MB, the arrays of four keys for three million connections included; one call reads
every key, where a call per key repeats the whole pass (3x the time for four keys). Dictionary-valued keys (NEST's
``optimizer`` of ``eprop_synapse``) stay one Python dictionary (~230 B) per connection.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

# connections per slice: large enough that PyNEST's per-call overhead (a kernel status query) is negligible, small
# enough that a slice's status dictionaries stay near 150 MB
CHUNK = 1 << 16


def read(conns: Any, keys: Sequence[str], chunk: int = CHUNK) -> dict[str, np.ndarray]:
    """``keys`` of every connection of ``conns`` (a SynapseCollection), one NumPy array per key in connection order
    (float or int as NEST reports them, float for an empty collection; object arrays for dictionary values such as
    NEST's ``optimizer``)."""
    keys = list(dict.fromkeys(keys))
    parts: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    if not keys:
        return {}
    for start in range(0, len(conns), chunk):
        part = conns[start : start + chunk]
        d = part.get(keys)
        for k in keys:
            v = d[k] if len(part) > 1 else [d[k]]  # NEST returns scalars for a single connection
            parts[k].append(_array(v))
    return {k: np.concatenate(v) if v else np.zeros(0) for k, v in parts.items()}


def _array(values: list) -> np.ndarray:
    if values and isinstance(values[0], dict):
        out = np.empty(len(values), object)
        out[:] = values
        return out
    return np.asarray(values)


def write(conns: Any, values: Mapping[str, np.ndarray], chunk: int = CHUNK) -> None:
    """Set ``values`` (one array per key, in connection order) on ``conns``, a slice at a time, as one dictionary per
    connection: PyNEST turns lists per key into the same dictionaries itself, and refuses lists under MPI."""
    arrays = {k: np.asarray(v) for k, v in values.items()}
    n = len(conns)
    for k, v in arrays.items():
        if v.shape != (n,):
            raise ValueError(f"{k}: {v.shape[0] if v.ndim else 'a scalar'} values for {n} connections")
    for start in range(0, n, chunk):
        columns = {k: v[start : start + chunk].tolist() for k, v in arrays.items()}
        rows = [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)]
        conns[start : start + chunk].set(rows)


def among(nest: Any, sources: np.ndarray, targets: np.ndarray, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """``source``, ``target`` and ``keys`` of this rank's connections from any of the node ids ``sources`` to any
    of ``targets``. Reads every connection and filters in NumPy: NEST 3.10's source and target filters of
    ``GetConnections`` grow slower with every kernel with devices a process has made (per requested node, a pass
    over every device it ever created), which late in a long-lived process costs more than reading everything."""
    d = read(nest.GetConnections(), ["source", "target", *keys])
    mine = np.isin(d["source"], sources) & np.isin(d["target"], targets)
    return {k: v[mine] for k, v in d.items()}

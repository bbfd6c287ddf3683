"""Read SONATA networks into NEST and write NEST networks back to SONATA.

SONATA (https://github.com/AllenInstitute/sonata) stores a network as a JSON config with a path manifest, node and
edge populations in HDF5, node/edge *type* tables in space-separated CSV files, per-type dynamics parameter JSON
files, and input spike trains in HDF5. This module covers the point-neuron subset that the Brain Modeling Toolkit
(bmtk, "PointNet") writes for NEST::

    from nestgrad import sonata

    net = sonata.SonataNetwork.from_config("config.simulation.json")   # or config.circuit.json
    net.nodes["v1"].size, net.edges["lgn_to_v1"].weights()             # plain numpy, no NEST needed

    import nest, nestgrad
    nestgrad.install()
    built = sonata.build_in_nest(net, nest)            # GLIF3 cells become glif3_psc_nestml
    nest.Simulate(500.0)

    sonata.export_sonata("out_dir", nest, built.populations)         # NEST -> SONATA files
    net.write("copy_dir")                                            # in-memory network -> SONATA files

    spec = sonata.spec_from_sonata(net).spec       # the network as a nestgrad.spec.NetworkSpec (no NEST needed)
    sonata.export_spec("spec_dir", spec)            # any spec -> SONATA files; spec_from_sonata reads it back equal

``build_in_nest`` is ``spec_from_sonata`` followed by the one wiring function (nestgrad.nest_engine.wiring.build);
this module connects nothing itself.

Conventions (those of bmtk's PointNet) and the GLIF parameter mapping are documented in docs/sonata.md.
Malformed input raises :class:`SonataError` (a ``ValueError``) naming the file and the field.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from nestgrad.errors import SonataError, SpecError
from nestgrad.nest_engine import connections
from nestgrad.spec import NetworkSpec, Population, Projection, Role, SynapseKind
from nestgrad.spec.io import scalar_kind

__all__ = [
    "BuiltNetwork",
    "EdgePopulation",
    "NodePopulation",
    "SonataError",
    "SonataNetwork",
    "SpikeInput",
    "SonataSpec",
    "build_in_nest",
    "export_sonata",
    "export_spec",
    "network_from_nest",
    "nest_model_and_params",
    "read_spikes",
    "sonata_from_spec",
    "spec_from_sonata",
]

GLIF3_MODEL = "glif3_psc_nestml"
GLIF3_PORTS = 4
# glif_psc (NEST) parameter names that glif3_psc_nestml takes as scalars under the same name
GLIF_SCALARS = ("C_m", "g", "E_L", "V_th", "V_reset", "t_ref", "I_e")
# glif_psc vector parameters -> numbered scalars of glif3_psc_nestml (asc_* have 2 entries, tau_syn up to 4)
GLIF_VECTORS = {"asc_init": 2, "asc_decay": 2, "asc_amps": 2, "asc_r": 2, "tau_syn": GLIF3_PORTS}
GLIF3_FLAGS = {"after_spike_currents": True, "spike_dependent_threshold": False, "adapting_threshold": False}
# names used by NEST 2's glif_lif_asc_psc (and bmtk's older converters) for what glif_psc calls asc_decay / asc_r
GLIF_LEGACY_NAMES = {"k": "asc_decay", "r": "asc_r"}
# bmtk's default synaptic time constants for GLIF cells converted from Allen Cell Types configs
ALLEN_TAU_SYN = [5.5, 8.5, 2.8, 5.8]

# edge/node group columns that must be numbers (NaN = no value for that row, then the type's value is used)
NUMERIC_COLUMNS = ("syn_weight", "delay", "nsyns", "receptor_type", "weight")
# run settings written when the network has none (bmtk needs both): simulated time and resolution (ms)
DEFAULT_TSTOP = 1000.0
DEFAULT_DT = 0.1
# NEST's default synaptic delay (ms): what bmtk and NEST's own SONATA reader use for edges without a delay
NEST_DEFAULT_DELAY = 1.0

MISSING_VALUES = ("NULL", "None", "none", "null", "NaN", "nan", "")

# ----------------------------------------------------------------------------------------------------------------
# small readers
# ----------------------------------------------------------------------------------------------------------------


def _parse_value(text: str) -> Any:
    """A CSV cell: int, float, None (NULL/None/empty) or the string itself."""
    if text in MISSING_VALUES:
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _read_json(path: Path, what: str = "json") -> dict:
    if not path.is_file():
        raise SonataError(path, what, "file not found")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise SonataError(path, what, f"invalid JSON ({err})") from None
    if not isinstance(data, dict):
        raise SonataError(path, what, f"expected a JSON object, found {type(data).__name__}")
    return data


def _read_types_csv(path: Path, id_column: str) -> tuple[list[str], dict[int, dict[str, Any]]]:
    """A node/edge types table: space-separated, header line, one row per type id."""
    if not path.is_file():
        raise SonataError(path, id_column, "types file not found")
    with path.open(newline="") as fh:
        rows = [row for row in csv.reader(fh, delimiter=" ", quotechar='"', skipinitialspace=True) if row]
    if not rows:
        raise SonataError(path, id_column, "empty types file (no header line)")
    header, types = rows[0], {}
    if id_column not in header:
        raise SonataError(path, id_column, f"column missing from header {header}")
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            col = header[len(row)] if len(row) < len(header) else f"<extra value {row[len(header)]!r}>"
            raise SonataError(path, col, f"line {line} has {len(row)} values for {len(header)} columns")
        values = {name: _parse_value(text) for name, text in zip(header, row, strict=True)}
        type_id = values[id_column]
        if not isinstance(type_id, int):
            raise SonataError(path, id_column, f"line {line}: {row[header.index(id_column)]!r} is not an integer")
        if type_id in types:
            raise SonataError(path, id_column, f"line {line}: duplicate type id {type_id}")
        types[type_id] = values
    return header, types


def _memory_bytes() -> int:
    """Physical memory of this machine (bytes); a dataset larger than this cannot be read."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not POSIX: no limit known
        return 2**62


def _open_h5(path: Path, field: str) -> h5py.File:
    """An HDF5 file opened for reading; SonataError naming ``path`` and ``field`` if missing or not HDF5."""
    if not path.is_file():
        raise SonataError(path, field, "file not found")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise SonataError(path, field, f"not a readable HDF5 file (truncated or another format?): {err}") from None


def _dataset(
    group: h5py.Group, name: str, path: Path, where: str, kind: str | None = None, rows: int | None = None
) -> np.ndarray:
    """A 1-D dataset of ``group``, read whole.

    ``kind`` = "id" (non-negative integers), "number" (finite reals, NaN allowed for missing values) or None
    (anything, strings decoded); ``rows`` the expected length. Checked before reading: shape, size against the
    machine's memory, type. SonataError naming ``path`` and ``where/name`` for every problem.
    """
    field = f"{where}/{name}".lstrip("/")
    try:
        ds = group.get(name)
    except (OSError, KeyError, RuntimeError) as err:
        raise SonataError(path, field, f"cannot be read (truncated or corrupt file?): {err}") from None
    if ds is None or not isinstance(ds, h5py.Dataset):
        raise SonataError(path, field, "dataset missing")
    if len(ds.shape) != 1:
        raise SonataError(path, field, f"must be 1-D (one value per row), has shape {ds.shape}")
    if rows is not None and ds.shape[0] != rows:
        raise SonataError(path, field, f"has {ds.shape[0]} rows, expected {rows}")
    nbytes = ds.shape[0] * max(ds.dtype.itemsize, 8)
    if nbytes > _memory_bytes():
        raise SonataError(path, field, f"declares {ds.shape[0]} rows ({nbytes / 2**30:.1f} GiB), more than this "
                          f"machine's memory ({_memory_bytes() / 2**30:.1f} GiB)")  # fmt: skip
    if kind is not None and ds.dtype.kind not in "biuf":
        raise SonataError(path, field, f"must be numeric, found type {ds.dtype}")
    try:
        data = ds[()]
    except (OSError, MemoryError, RuntimeError) as err:
        raise SonataError(path, field, f"cannot be read (truncated or corrupt file?): {err}") from None
    if data.dtype.kind in "SO":  # variable-length / fixed strings
        data = np.array([v.decode() if isinstance(v, bytes) else v for v in data], dtype=object)
    if kind == "id":
        if data.dtype.kind == "f":  # integral floats are accepted up to 2**53 (beyond that they are not exact)
            bad = ~np.isfinite(data) | (data != np.round(data)) | (np.abs(data) > 2.0**53)
            if np.any(bad):
                raise SonataError(path, field, f"row {np.flatnonzero(bad)[0]}: {data[bad][0]} is not an integer id")
        if len(data) and data.min() < 0:
            raise SonataError(path, field, f"row {int(np.argmin(data))}: negative value {data.min()}")
        if data.dtype.kind == "u" and len(data) and data.max() > np.iinfo(np.int64).max:
            raise SonataError(path, field, f"value {data.max()} is too large for an id")
        data = data.astype(np.int64)
    elif kind == "number":
        data = data.astype(np.float64) if data.dtype.kind in "bf" else data
        if np.any(np.isinf(data)):
            raise SonataError(path, field, f"row {np.flatnonzero(np.isinf(data))[0]}: infinite value")
    return data


def _read_groups(
    pop: h5py.Group, group_ids: np.ndarray, group_index: np.ndarray, path: Path, where: str
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[int, list[str]]]:
    """Per-row attributes and per-row dynamics_params from the numbered groups of a population.

    Rows of groups lacking an attribute get NaN (numbers) or None (strings).
    """
    n = len(group_ids)
    attrs: dict[str, np.ndarray] = {}
    dyn: dict[str, np.ndarray] = {}
    group_columns: dict[int, list[str]] = {}
    for gid in np.unique(group_ids):
        gname = str(int(gid))
        if gname not in pop or not isinstance(pop[gname], h5py.Group):
            raise SonataError(path, f"{where}/{gname}", "group referenced by the group_id dataset is missing")
        grp = pop[gname]
        rows = np.flatnonzero(group_ids == gid)
        index = group_index[rows]
        columns = []
        for target, sub, prefix in ((attrs, grp, ""), (dyn, grp.get("dynamics_params"), "dynamics_params/")):
            if sub is None:
                continue
            for name, ds in sub.items():
                if not isinstance(ds, h5py.Dataset):
                    continue
                kind = "number" if name in NUMERIC_COLUMNS else None
                values = _dataset(sub, name, path, f"{where}/{gname}/{prefix}".rstrip("/"), kind)
                if len(index) and index.max() >= len(values):
                    raise SonataError(
                        path, f"{where}/{gname}/{prefix}{name}", f"has {len(values)} rows, group index needs more"
                    )
                if name not in target:
                    if values.dtype.kind in "biuf":
                        target[name] = np.full(n, np.nan, dtype=np.result_type(values.dtype, np.float64))
                        if np.all(group_ids == gid):  # complete column: keep the file's dtype
                            target[name] = np.empty(n, dtype=values.dtype)
                    else:
                        target[name] = np.full(n, None, dtype=object)
                target[name][rows] = values[index]
                columns.append(prefix + name)
        group_columns[int(gid)] = columns
    return attrs, dyn, group_columns


def _group_layout(pop: h5py.Group, n: int, prefix: str, path: Path, where: str) -> tuple[np.ndarray, np.ndarray]:
    gid_name, gidx_name = f"{prefix}_group_id", f"{prefix}_group_index"
    if gid_name in pop:
        group_ids = _dataset(pop, gid_name, path, where, "id", rows=n)
        group_index = _dataset(pop, gidx_name, path, where, "id", rows=n)
        return group_ids, group_index
    # no group datasets: everything is in group "0" if it exists, else there are no attributes
    return np.zeros(n, dtype=np.uint32), np.arange(n, dtype=np.uint64)


# ----------------------------------------------------------------------------------------------------------------
# data model
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class NodePopulation:
    """One SONATA node population. Arrays are per node, in file order."""

    name: str
    node_ids: np.ndarray
    node_type_ids: np.ndarray
    types: dict[int, dict[str, Any]]  # node_type_id -> row of the node types CSV
    type_dynamics: dict[int, dict[str, Any]]  # node_type_id -> loaded dynamics_params JSON ({} if none)
    attributes: dict[str, np.ndarray] = field(default_factory=dict)  # per-node columns of the HDF5 groups
    dynamics: dict[str, np.ndarray] = field(default_factory=dict)  # per-node dynamics_params (HDF5 subgroup)
    group_ids: np.ndarray | None = None
    group_index: np.ndarray | None = None
    group_columns: dict[int, list[str]] = field(default_factory=dict)
    nodes_file: Path | None = None
    types_file: Path | None = None

    @property
    def size(self) -> int:
        return len(self.node_ids)

    def model_type(self, type_id: int) -> str | None:
        return self.types[type_id].get("model_type")

    @property
    def is_virtual(self) -> bool:
        return all(self.model_type(t) == "virtual" for t in np.unique(self.node_type_ids))

    def index_of(self, node_ids: np.ndarray, where: tuple[Path | None, str]) -> np.ndarray:
        """Positions of ``node_ids`` in this population (SonataError naming ``where`` if one is unknown)."""
        order = np.argsort(self.node_ids, kind="stable")
        sorted_ids = self.node_ids[order]
        pos = np.searchsorted(sorted_ids, node_ids)
        pos_c = np.minimum(pos, max(len(sorted_ids) - 1, 0))
        bad = (pos >= len(sorted_ids)) | (sorted_ids[pos_c] != node_ids) if len(sorted_ids) else np.ones(len(node_ids))
        if np.any(bad):
            first = node_ids[np.flatnonzero(bad)[0]]
            raise SonataError(where[0], where[1], f"node id {first} is not in population '{self.name}'")
        return order[pos_c]

    def type_attribute(self, name: str) -> np.ndarray:
        """Per-node value of a column: the HDF5 group value where present, else the node types CSV value."""
        if name in self.attributes:
            return self.attributes[name]
        return np.array([self.types[t].get(name) for t in self.node_type_ids], dtype=object)


@dataclass
class EdgePopulation:
    """One SONATA edge population. Arrays are per edge, in file order."""

    name: str
    source_population: str
    target_population: str
    source_ids: np.ndarray
    target_ids: np.ndarray
    edge_type_ids: np.ndarray
    types: dict[int, dict[str, Any]]
    type_dynamics: dict[int, dict[str, Any]]
    attributes: dict[str, np.ndarray] = field(default_factory=dict)
    dynamics: dict[str, np.ndarray] = field(default_factory=dict)
    group_ids: np.ndarray | None = None
    group_index: np.ndarray | None = None
    group_columns: dict[int, list[str]] = field(default_factory=dict)
    edges_file: Path | None = None
    types_file: Path | None = None

    @property
    def size(self) -> int:
        return len(self.source_ids)

    def column(self, name: str, default: Any = None) -> np.ndarray:
        """Per-edge value: HDF5 group value, else edge types CSV value, else type dynamics JSON, else ``default``.

        Raises SonataError if some edge has no value and no default is given.
        """
        out = np.full(self.size, np.nan)
        if name in self.attributes:
            out = self.attributes[name].astype(np.float64)
        todo = np.isnan(out)
        for type_id in np.unique(self.edge_type_ids[todo]) if np.any(todo) else []:
            value = self.types[type_id].get(name)
            if value is None:
                value = self.type_dynamics.get(type_id, {}).get(name)
            if value is None:
                if default is None:
                    raise SonataError(
                        self.types_file or self.edges_file, name, f"no value for edges of edge_type_id {type_id}"
                    )
                value = default  # the caller's (NaN marks "no value" for the caller to fill)
            elif isinstance(value, bool) or not isinstance(value, int | float):
                raise SonataError(self.types_file, name, f"edge_type_id {type_id}: {value!r} is not a number")
            elif not math.isfinite(value):
                raise SonataError(self.types_file, name, f"edge_type_id {type_id}: {value!r} is not finite")
            out[todo & (self.edge_type_ids == type_id)] = value
        return out

    def nsyns(self) -> np.ndarray:
        return self.column("nsyns", default=1)

    def weights(self) -> np.ndarray:
        """NEST weight of every edge: ``syn_weight * nsyns`` (bmtk PointNet convention; nsyns defaults to 1)."""
        return self.column("syn_weight") * self.nsyns()

    def delays(self, default: float = NEST_DEFAULT_DELAY) -> np.ndarray:
        """Delay of every edge (ms): HDF5 group, else edge types CSV, else the type's dynamics JSON, else
        ``default`` (NEST's default delay, as in bmtk and NEST's own SONATA reader; NaN marks edges without one)."""
        return self.column("delay", default=default)

    def receptor_types(self) -> np.ndarray:
        """Receptor port per edge: edge attribute ``receptor_type``, else the edge type's dynamics JSON, else 0."""
        rec = self.column("receptor_type", default=0)
        if np.any(rec != np.round(rec)) or np.any(rec < 0):
            raise SonataError(self.types_file, "receptor_type", "must be a non-negative integer")
        return rec.astype(np.int64)

    def synapse_model(self, type_id: int) -> str:
        model = self.types[type_id].get("model_template") or "static_synapse"
        return model.split(":", 1)[1] if model.startswith("nest:") else model


@dataclass
class SpikeInput:
    """Spike trains for (some) nodes of one population."""

    population: str
    node_ids: np.ndarray
    timestamps: np.ndarray  # ms
    file: Path | None = None

    def trains(self, node_ids: Iterable[int]) -> list[np.ndarray]:
        """Sorted spike times of each of ``node_ids`` (empty arrays for silent nodes)."""
        order = np.lexsort((self.timestamps, self.node_ids))
        ids, times = self.node_ids[order], self.timestamps[order]
        out = []
        for nid in node_ids:
            lo, hi = np.searchsorted(ids, nid, "left"), np.searchsorted(ids, nid, "right")
            out.append(times[lo:hi])
        return out


def read_spikes(path: str | Path, population: str | None = None) -> dict[str, SpikeInput]:
    """Spikes from a SONATA spike file: ``/spikes/<population>/{node_ids,timestamps}``, or the older
    ``/spikes/{gids|node_ids,timestamps}`` (then ``population`` names the population), or bmtk's space-separated
    CSV (columns ``timestamps population node_ids``). Times in seconds (``units`` attribute "s") become ms."""
    path = Path(path)
    if not path.is_file():
        raise SonataError(path, "input_file", "spike file not found")
    if path.suffix in (".csv", ".txt"):
        return _read_spikes_csv(path, population)
    with _open_h5(path, "spikes") as fh:
        if "spikes" not in fh:
            raise SonataError(path, "spikes", "group missing")
        spikes = fh["spikes"]
        layouts = {}
        if "timestamps" in spikes:  # old layout, one unnamed population
            ids_name = "node_ids" if "node_ids" in spikes else "gids"
            if population is None:
                raise SonataError(path, "spikes", "old layout without population name: pass population=...")
            layouts[population] = spikes
        else:
            layouts = {name: grp for name, grp in spikes.items() if isinstance(grp, h5py.Group)}
            ids_name = "node_ids"
            if not layouts:
                raise SonataError(path, "spikes", "no population groups and no timestamps dataset")
        out = {}
        for name, grp in layouts.items():
            where = grp.name.lstrip("/")
            ids = _dataset(grp, ids_name, path, where, "id")
            times = _dataset(grp, "timestamps", path, where, "number", rows=len(ids)).astype(np.float64)
            if np.any(np.isnan(times)):  # NEST would drop them silently
                raise SonataError(path, f"{where}/timestamps", f"row {np.flatnonzero(np.isnan(times))[0]}: NaN time")
            units = grp["timestamps"].attrs.get("units", "ms")
            units = units.decode() if isinstance(units, bytes) else str(units)
            if units not in ("ms", "s"):
                raise SonataError(path, f"{where}/timestamps", f"unknown units {units!r} (expected 'ms' or 's')")
            if units == "s":
                times = times * 1000.0
            out[name] = SpikeInput(name, ids, times, path)
        return out


def _read_spikes_csv(path: Path, population: str | None) -> dict[str, SpikeInput]:
    with path.open(newline="") as fh:
        rows = [r for r in csv.reader(fh, delimiter=" ", skipinitialspace=True) if r]
    if not rows:
        raise SonataError(path, "timestamps", "empty spike file")
    header = rows[0]
    for col in ("timestamps", "node_ids"):
        if col not in header:
            raise SonataError(path, col, "column missing")
    per_pop: dict[str, tuple[list[int], list[float]]] = {}
    for line, row in enumerate(rows[1:], start=2):
        rec = dict(zip(header, row, strict=False))
        pop = rec.get("population", population)
        if pop is None:
            raise SonataError(path, "population", f"line {line}: no population")
        ids, times = per_pop.setdefault(pop, ([], []))
        for col in ("node_ids", "timestamps"):
            if col not in rec:
                raise SonataError(path, col, f"line {line}: no value")
        try:
            node_id = int(rec["node_ids"])
        except ValueError:
            raise SonataError(path, "node_ids", f"line {line}: {rec['node_ids']!r} is not an integer id") from None
        try:
            time = float(rec["timestamps"])
        except ValueError:
            raise SonataError(path, "timestamps", f"line {line}: {rec['timestamps']!r} is not a number") from None
        if node_id < 0:
            raise SonataError(path, "node_ids", f"line {line}: negative id {node_id}")
        if not math.isfinite(time):
            raise SonataError(path, "timestamps", f"line {line}: {time} is not a finite time")
        ids.append(node_id)
        times.append(time)
    return {p: SpikeInput(p, np.array(i, dtype=np.int64), np.array(t), path) for p, (i, t) in per_pop.items()}


# ----------------------------------------------------------------------------------------------------------------
# config and manifest
# ----------------------------------------------------------------------------------------------------------------

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def _substitute(value: Any, variables: Mapping[str, str], path: Path, where: str) -> Any:
    if isinstance(value, dict):
        return {k: _substitute(v, variables, path, f"{where}/{k}".lstrip("/")) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, variables, path, f"{where}/{i}") for i, v in enumerate(value)]
    if not isinstance(value, str) or "$" not in value:
        return value

    def repl(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        if name not in variables:
            raise SonataError(path, where, f"unknown manifest variable ${name}")
        return variables[name]

    return _VAR.sub(repl, value)


def _load_config(path: Path) -> dict:
    """A config JSON with its manifest variables substituted; relative paths stay relative to its folder."""
    cfg = _read_json(path, "config")
    base = path.parent.resolve()
    raw = cfg.get("manifest", {})
    if not isinstance(raw, dict):
        raise SonataError(path, "manifest", "must be a JSON object")
    variables = {"configdir": str(base)}
    pending = {k.lstrip("$").strip("{}"): v for k, v in raw.items()}
    for _ in range(len(pending) + 1):  # resolve variables that refer to each other
        for name, value in list(pending.items()):
            refs = [m.group(1) or m.group(2) for m in _VAR.finditer(str(value))]
            if all(r in variables for r in refs):
                resolved = _substitute(value, variables, path, f"manifest/${name}")
                variables[name] = str((base / resolved).resolve()) if not Path(resolved).is_absolute() else resolved
                del pending[name]
    if pending:
        name = next(iter(pending))
        raise SonataError(path, f"manifest/${name}", f"cannot resolve {pending[name]!r} (unknown or cyclic variable)")
    body = {k: v for k, v in cfg.items() if k != "manifest"}
    out = _substitute(body, variables, path, "")
    out["_config_path"] = path.resolve()
    return out


def _node_sets(sim_cfg: dict, circuit_cfg: dict, base: Path, cbase: Path, path: Path) -> tuple[dict, str]:
    """Named node sets: inline ``node_sets`` or the JSON named by ``node_sets_file`` (simulation config first), and
    a note for error messages if the named file does not exist. A missing file is not an error by itself: NEST's
    own 300_pointneurons example names one it does not ship, and its inputs name populations."""
    for cfg, folder in ((sim_cfg, base), (circuit_cfg, cbase)):
        where = cfg.get("_config_path", path)
        if "node_sets" in cfg:
            if not isinstance(cfg["node_sets"], dict):
                raise SonataError(where, "node_sets", "must be a JSON object (name -> node set)")
            return cfg["node_sets"], ""
        if "node_sets_file" in cfg:
            if not isinstance(cfg["node_sets_file"], str):
                raise SonataError(where, "node_sets_file", "must be a file name")
            file = _resolve(folder, cfg["node_sets_file"])
            if not file.exists():
                return {}, f"; node_sets_file {file} does not exist"
            return _read_json(file, "node_sets_file"), ""
    return {}, ""


def _node_set_populations(
    node_set: Any, node_sets: Mapping[str, Any], nodes: Mapping[str, Any], path: Path, field: str, depth: int = 0,
    note: str = "",
) -> list[str]:  # fmt: skip
    """Names of the virtual node populations an input's ``node_set`` selects (a node set name, a population name,
    a filter object with ``population(s)``, or a list of node set names). SonataError unless it selects at least one
    virtual population and names no real (non-virtual) one."""
    if depth > 20:
        raise SonataError(path, field, "node sets refer to each other in a cycle")
    if isinstance(node_set, str):
        if node_set in node_sets:
            return _node_set_populations(node_sets[node_set], node_sets, nodes, path, field, depth + 1, note)
        if node_set in nodes:
            node_set = {"population": node_set}
        else:
            raise SonataError(path, field, f"{node_set!r} names no node set ({', '.join(node_sets) or 'none defined'}"
                              f"{note}) and no node population ({', '.join(nodes)})")  # fmt: skip
    if isinstance(node_set, list) and node_set and all(isinstance(n, str) for n in node_set):
        out = []
        for member in node_set:
            members = _node_set_populations(member, node_sets, nodes, path, field, depth + 1, note)
            out += [p for p in members if p not in out]
        return out
    if not isinstance(node_set, dict):
        raise SonataError(path, field, f"{node_set!r} is not a node set (name, filter object or list of names)")
    explicit = node_set.get("population", node_set.get("populations"))
    names = [explicit] if isinstance(explicit, str) else explicit
    if names is None:  # no population given: every virtual population (as bmtk)
        names = [p for p, pop in nodes.items() if pop.is_virtual]
    elif not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise SonataError(path, field, f"population {explicit!r} must be a name or a list of names")
    for pop_name in names:
        if pop_name not in nodes:
            raise SonataError(path, field, f"population {pop_name!r} is not in the network ({', '.join(nodes)})")
        if not nodes[pop_name].is_virtual:
            raise SonataError(path, field, f"population {pop_name!r} has no virtual nodes: spike inputs feed "
                              "virtual nodes only")  # fmt: skip
    if not names:
        raise SonataError(path, field, "selects no virtual node population")
    return names


def _resolve(base: Path, value: str) -> Path:
    p = Path(value)
    return p if p.is_absolute() else (base / p).resolve()


# ----------------------------------------------------------------------------------------------------------------
# the network
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class SonataNetwork:
    """Node and edge populations, spike inputs and run settings of a SONATA network."""

    nodes: dict[str, NodePopulation] = field(default_factory=dict)
    edges: dict[str, EdgePopulation] = field(default_factory=dict)
    inputs: dict[str, SpikeInput] = field(default_factory=dict)  # population name -> spikes
    run: dict[str, Any] = field(default_factory=dict)  # "run" section of the simulation config (tstop, dt, ...)
    skipped_inputs: dict[str, str] = field(default_factory=dict)  # input name -> input_type, not loaded
    config_path: Path | None = None
    # the "nestgrad" section of the circuit config: what SONATA has no place for (export_spec writes it)
    nestgrad: dict[str, Any] = field(default_factory=dict)
    nestgrad_path: Path | None = None  # the circuit config that holds it

    # ------------------------------------------------------------------ reading
    @classmethod
    def from_config(cls, path: str | Path, *, skip_unsupported_inputs: bool = False) -> SonataNetwork:
        """Read a simulation config (with ``network`` pointing to a circuit config, or ``networks`` inline) or a
        circuit config. Spike inputs (``inputs`` of type spikes) are read when present. Inputs of other types
        (current clamps, ...) are refused with a SonataError naming them, since the network would otherwise run
        without them; ``skip_unsupported_inputs=True`` loads the network without them (listed in
        ``skipped_inputs``)."""
        path = Path(path)
        cfg = _load_config(path)
        base = path.parent.resolve()
        sim_cfg = cfg
        if "networks" not in cfg:
            if "network" not in cfg:
                raise SonataError(path, "networks", "neither 'networks' nor 'network' (circuit config path) given")
            cfg = _load_config(_resolve(base, cfg["network"]))
            cfg["components"] = {**cfg.get("components", {}), **sim_cfg.get("components", {})}
        circuit_path: Path = cfg["_config_path"]
        cbase = circuit_path.parent
        components = {k: _resolve(cbase, v) for k, v in cfg.get("components", {}).items() if isinstance(v, str)}
        networks = cfg["networks"]
        net = cls(run=dict(sim_cfg.get("run", {})), config_path=path.resolve(), nestgrad=cfg.get("nestgrad", {}),
                  nestgrad_path=circuit_path)  # fmt: skip
        if not isinstance(net.nestgrad, dict):
            raise SonataError(
                circuit_path, "nestgrad", "must be a JSON object (written by nestgrad.sonata.export_spec)"
            )
        for i, entry in enumerate(networks.get("nodes", [])):
            for key in ("nodes_file", "node_types_file"):
                if key not in entry:
                    raise SonataError(circuit_path, f"networks/nodes/{i}/{key}", "missing")
            dyn_dir = components.get("point_neuron_models_dir", cbase)
            for pop in _read_nodes(
                _resolve(cbase, entry["nodes_file"]), _resolve(cbase, entry["node_types_file"]), dyn_dir
            ):
                if pop.name in net.nodes:
                    raise SonataError(pop.nodes_file, f"nodes/{pop.name}", "population defined twice")
                net.nodes[pop.name] = pop
        for i, entry in enumerate(networks.get("edges", [])):
            for key in ("edges_file", "edge_types_file"):
                if key not in entry:
                    raise SonataError(circuit_path, f"networks/edges/{i}/{key}", "missing")
            dyn_dir = components.get("synaptic_models_dir", cbase)
            for pop in _read_edges(
                _resolve(cbase, entry["edges_file"]), _resolve(cbase, entry["edge_types_file"]), dyn_dir
            ):
                net.edges[pop.name] = pop
        node_sets = _node_sets(sim_cfg, cfg, base, cbase, path)  # (node sets, note on a missing node_sets_file)
        inputs = sim_cfg.get("inputs", {})
        if not isinstance(inputs, dict):
            raise SonataError(path, "inputs", "must be a JSON object (input name -> settings)")
        for name, spec in inputs.items():
            if not isinstance(spec, dict):
                raise SonataError(path, f"inputs/{name}", "must be a JSON object")
            if spec.get("input_type") != "spikes":
                if not skip_unsupported_inputs:
                    raise SonataError(
                        path,
                        f"inputs/{name}/input_type",
                        f"{spec.get('input_type')!r} is not supported (spikes only); the network would run without "
                        "this input: remove it, or load with skip_unsupported_inputs=True",
                    )
                net.skipped_inputs[name] = str(spec.get("input_type"))
                continue
            if "input_file" not in spec:
                raise SonataError(path, f"inputs/{name}/input_file", "missing")
            net._add_spike_input(name, spec, node_sets, path, base)
        net.validate()
        return net

    def _add_spike_input(self, name: str, spec: dict, node_sets: tuple[dict, str], path: Path, base: Path) -> None:
        """Read one spike input and assign its trains to the virtual populations of its node set (bmtk's rules:
        a file with one population feeds every population of the node set, by node id; with several populations
        each must be one of the node set's). Anything that would leave a population without input is refused."""
        field = f"inputs/{name}/node_set"
        targets = _node_set_populations(spec.get("node_set"), node_sets[0], self.nodes, path, field, note=node_sets[1])
        file = _resolve(base, spec["input_file"])
        spikes = read_spikes(file, targets[0])
        if len(spikes) == 1:
            assignment = dict.fromkeys(targets, next(iter(spikes.values())))
        else:
            for pop_name in spikes:
                if pop_name not in targets:
                    raise SonataError(
                        file,
                        f"spikes/{pop_name}",
                        f"population '{pop_name}' is not in the node set "
                        f"of input '{name}' ({', '.join(targets)}); its spikes would feed nothing",
                    )
            assignment = {t: spikes[t] for t in targets if t in spikes}
        for target, trains in assignment.items():
            if target in self.inputs:
                raise SonataError(path, field, f"population '{target}' already gets spikes from "
                                  f"{self.inputs[target].file}; one spike input per population")  # fmt: skip
            self.inputs[target] = SpikeInput(target, trains.node_ids, trains.timestamps, trains.file)

    def validate(self) -> None:
        """Cross-file consistency: edge populations refer to known node populations and node ids."""
        for e in self.edges.values():
            for role, pop_name, ids in (
                ("source", e.source_population, e.source_ids),
                ("target", e.target_population, e.target_ids),
            ):
                where = f"edges/{e.name}/{role}_node_id"
                if pop_name not in self.nodes:
                    raise SonataError(e.edges_file, where, f"node_population '{pop_name}' is not in the network")
                self.nodes[pop_name].index_of(ids, (e.edges_file, where))
        for spikes in self.inputs.values():
            if spikes.population in self.nodes:
                self.nodes[spikes.population].index_of(np.unique(spikes.node_ids), (spikes.file, "node_ids"))

    # ------------------------------------------------------------------ writing
    def write(self, out_dir: str | Path) -> Path:
        """Write this network as SONATA files under ``out_dir``; returns the simulation config path."""
        return _write_network(self, Path(out_dir))


def _check_type_ids(type_ids: np.ndarray, types: dict, path: Path, field: str, types_file: Path) -> None:
    unknown = set(np.unique(type_ids).tolist()) - set(types)
    if unknown:
        raise SonataError(path, field, f"ids {sorted(unknown)} are not in {types_file.name}")


def _read_population_groups(grp: Any, n: int, kind: str, path: Path, where: str) -> tuple:
    """Group layout and per-group attributes / dynamics columns of one node or edge population."""
    group_ids, group_index = _group_layout(grp, n, kind, path, where)
    has_groups = f"{kind}_group_id" in grp or "0" in grp
    attrs, dyn, cols = _read_groups(grp, group_ids, group_index, path, where) if has_groups else ({}, {}, {})
    return group_ids, group_index, attrs, dyn, cols


def _read_nodes(nodes_file: Path, types_file: Path, dyn_dir: Path) -> list[NodePopulation]:
    _, types = _read_types_csv(types_file, "node_type_id")
    type_dynamics = {t: _type_dynamics(row, types_file, dyn_dir) for t, row in types.items()}
    for t, row in types.items():
        if row.get("model_type") is None:
            raise SonataError(types_file, "model_type", f"missing for node_type_id {t}")
    with _open_h5(nodes_file, "nodes") as fh:
        try:
            return [_read_node_population(name, grp, nodes_file, types_file, types, type_dynamics)
                    for name, grp in _populations(fh, "nodes", nodes_file)]  # fmt: skip
        except OSError as err:  # h5py reports damaged files as OSError at any access
            raise SonataError(nodes_file, "nodes", f"cannot be read (truncated or corrupt file?): {err}") from None


def _populations(fh: h5py.File, kind: str, path: Path) -> list[tuple[str, h5py.Group]]:
    if kind not in fh or not isinstance(fh[kind], h5py.Group):
        raise SonataError(path, kind, "group missing")
    pops = [(name, grp) for name, grp in fh[kind].items() if isinstance(grp, h5py.Group)]
    if not pops:
        raise SonataError(path, kind, "no populations")
    return pops


def _read_node_population(
    name: str, grp: h5py.Group, nodes_file: Path, types_file: Path, types: dict, type_dynamics: dict
) -> NodePopulation:
    where = f"nodes/{name}"
    type_ids = _dataset(grp, "node_type_id", nodes_file, where, "id")
    n = len(type_ids)
    node_ids = _dataset(grp, "node_id", nodes_file, where, "id", rows=n) if "node_id" in grp else np.arange(n)
    unique, counts = np.unique(node_ids, return_counts=True)
    if np.any(counts > 1):
        raise SonataError(nodes_file, f"{where}/node_id", f"node id {unique[counts > 1][0]} appears "
                          f"{counts[counts > 1][0]} times")  # fmt: skip
    _check_type_ids(type_ids, types, nodes_file, f"{where}/node_type_id", types_file)
    group_ids, group_index, attrs, dyn, cols = _read_population_groups(grp, n, "node", nodes_file, where)
    return NodePopulation(name, node_ids.astype(np.int64), type_ids, types, type_dynamics, attrs, dyn,
                          group_ids, group_index, cols, nodes_file, types_file)  # fmt: skip


def _read_edges(edges_file: Path, types_file: Path, dyn_dir: Path) -> list[EdgePopulation]:
    _, types = _read_types_csv(types_file, "edge_type_id")
    type_dynamics = {t: _type_dynamics(row, types_file, dyn_dir) for t, row in types.items()}
    with _open_h5(edges_file, "edges") as fh:
        try:
            return [_read_edge_population(name, grp, edges_file, types_file, types, type_dynamics)
                    for name, grp in _populations(fh, "edges", edges_file)]  # fmt: skip
        except OSError as err:
            raise SonataError(edges_file, "edges", f"cannot be read (truncated or corrupt file?): {err}") from None


def _read_edge_population(
    name: str, grp: h5py.Group, edges_file: Path, types_file: Path, types: dict, type_dynamics: dict
) -> EdgePopulation:
    where = f"edges/{name}"
    src = _dataset(grp, "source_node_id", edges_file, where, "id")
    n = len(src)
    trg = _dataset(grp, "target_node_id", edges_file, where, "id", rows=n)
    type_ids = _dataset(grp, "edge_type_id", edges_file, where, "id", rows=n)
    pop_names = []
    for label in ("source_node_id", "target_node_id"):
        value = grp[label].attrs.get("node_population")
        if value is None:
            raise SonataError(edges_file, f"{where}/{label}", "attribute 'node_population' missing")
        pop_names.append(value.decode() if isinstance(value, bytes) else str(value))
    _check_type_ids(type_ids, types, edges_file, f"{where}/edge_type_id", types_file)
    group_ids, group_index, attrs, dyn, cols = _read_population_groups(grp, n, "edge", edges_file, where)
    pop = EdgePopulation(name, pop_names[0], pop_names[1], src, trg, type_ids, types, type_dynamics, attrs,
                         dyn, group_ids, group_index, cols, edges_file, types_file)  # fmt: skip
    # raise SonataError now (naming the file) if some edge type lacks a weight or has a non-finite value
    pop.weights()
    pop.delays()
    pop.receptor_types()
    return pop


def _type_dynamics(row: dict[str, Any], types_file: Path, dyn_dir: Path) -> dict[str, Any]:
    name = row.get("dynamics_params")
    if name is None:
        return {}
    if not isinstance(name, str) or not name.endswith(".json"):
        raise SonataError(types_file, "dynamics_params", f"{name!r} is not a .json file name")
    # confine the name to the components folder: no absolute paths, no way out with '..' (or a symlink)
    folder = dyn_dir.resolve()
    path = (folder / name).resolve()
    if Path(name).is_absolute() or not path.is_relative_to(folder):
        raise SonataError(types_file, "dynamics_params", f"{name!r} lies outside the folder {folder} (components)")
    if not path.is_file():
        raise SonataError(types_file, "dynamics_params", f"{name} not found in {dyn_dir}")
    return _read_json(path, "dynamics_params")


# ----------------------------------------------------------------------------------------------------------------
# neuron models: SONATA/bmtk templates -> NEST models and parameters
# ----------------------------------------------------------------------------------------------------------------


def allen_glif_to_nest(config: Mapping[str, Any]) -> dict[str, Any]:
    """An Allen Cell Types GLIF neuron_config (SI units, ``"type": "GLIF"``) -> glif_psc parameters (pA, mV, ms,
    nS, pF). Same formulas and initial state (V_m = E_L) as bmtk 1.2's converter for NEST 3; ``tau_syn`` defaults to
    bmtk's [5.5, 8.5, 2.8, 5.8] ms."""
    coeffs = config["coeffs"]
    el_ref = config["El_reference"] * 1e3
    params = {
        "V_th": coeffs["th_inf"] * config["th_inf"] * 1e3 + el_ref,
        "g": coeffs["G"] / config["R_input"] * 1e9,
        "E_L": config["El"] * 1e3 + el_ref,
        "V_m": config["El"] * 1e3 + el_ref,  # bmtk starts the cell at rest (NEST's glif_psc default is -78.85 mV)
        "C_m": coeffs["C"] * config["C"] * 1e12,
        "t_ref": config["spike_cut_length"] * config["dt"] * 1e3,
        "V_reset": el_ref,
        "tau_syn": list(config.get("tau_syn", ALLEN_TAU_SYN)),
    }
    if "asc_amp_array" in config:
        params["asc_init"] = [v * 1e12 for v in config["init_AScurrents"]]
        params["asc_decay"] = [1.0 / (tau * 1e3) for tau in config["asc_tau_array"]]
        params["asc_amps"] = [a * c * 1e12 for a, c in zip(config["asc_amp_array"], coeffs["asc_amp_array"],
                                                          strict=True)]  # fmt: skip
        # bmtk (NEST 3) leaves asc_r at NEST's default [1, 1] and ignores AScurrent_reset_method's r; so do we
        params["asc_r"] = [1.0, 1.0]
        params.update(GLIF3_FLAGS)
    return params


def _glif_to_nestml(params: Mapping[str, Any], where: tuple[Path | None, str]) -> dict[str, Any]:
    """glif_psc-named parameters (GLIF3) -> glif3_psc_nestml parameters; see docs/sonata.md."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key in GLIF_SCALARS:
            out[key] = float(value)
        elif key in GLIF_VECTORS:
            values = list(np.atleast_1d(value).astype(float))
            if key == "tau_syn" and not 1 <= len(values) <= GLIF3_PORTS:
                raise SonataError(where[0], f"{where[1]}.tau_syn", f"{len(values)} entries, {GLIF3_MODEL} has 1..4")
            if key != "tau_syn" and len(values) != 2:
                raise SonataError(where[0], f"{where[1]}.{key}", f"{len(values)} entries, {GLIF3_MODEL} needs 2")
            for i, v in enumerate(values, start=1):
                out[f"{key}_{i}"] = v
        elif key in GLIF3_FLAGS or key in ("V_m", "V_dynamics_method"):
            pass
        else:
            raise SonataError(where[0], f"{where[1]}.{key}", f"parameter not known to {GLIF3_MODEL}")
    if "V_m" in params:  # the model keeps the membrane potential relative to E_L
        out["U_m"] = float(params["V_m"]) - float(params.get("E_L", out.get("E_L", -78.85)))
    return out


def _is_glif3(params: Mapping[str, Any]) -> bool:
    return all(bool(params.get(k, v if k != "after_spike_currents" else False)) == v for k, v in GLIF3_FLAGS.items())


def nest_model_and_params(
    model_template: str | None, dynamics: Mapping[str, Any], *, glif_model: str = GLIF3_MODEL,
    where: tuple[Path | None, str] = (None, "model_template"),
) -> tuple[str, dict[str, Any], int | None]:  # fmt: skip
    """NEST model name, its parameters and the number of GLIF receptor ports (None if not a GLIF) for a node type.

    * ``nest:glif_psc`` with GLIF3 flags, ``nest:glif_lif_asc_psc`` (NEST 2 name) and Allen configs
      (``"type": "GLIF"``) -> ``glif_model`` (default ``glif3_psc_nestml``; ``"glif_psc"`` uses NEST's model);
    * other ``nest:glif_psc`` variants -> NEST's ``glif_psc`` as given;
    * any other ``nest:<model>`` -> that NEST model with the dynamics parameters unchanged.
    """
    if not isinstance(model_template, str) or not model_template.startswith("nest:"):
        raise SonataError(where[0], where[1], f"{model_template!r}: only 'nest:<model>' templates can be built in NEST")
    model = model_template.split(":", 1)[1]
    params = dict(dynamics)
    if params.get("type") == "GLIF":
        params = allen_glif_to_nest(params)
    if model in ("glif_lif_asc_psc", "glif_psc") or model.startswith("glif_lif"):
        for old, new in GLIF_LEGACY_NAMES.items():
            if old in params:
                params[new] = params.pop(old)
        params.pop("V_dynamics_method", None)
        if model == "glif_lif_asc_psc":
            params.update(GLIF3_FLAGS)
        elif model != "glif_psc":
            raise SonataError(where[0], where[1], f"{model_template!r}: only GLIF3 (glif_lif_asc_psc) is mapped")
        n_ports = len(np.atleast_1d(params.get("tau_syn", [2.0])))
        if _is_glif3(params) and glif_model == GLIF3_MODEL:
            return GLIF3_MODEL, _glif_to_nestml(params, (where[0], "dynamics_params")), n_ports
        return "glif_psc", params, n_ports
    return model, params, None


# ----------------------------------------------------------------------------------------------------------------
# building: SONATA -> nestgrad.spec.NetworkSpec -> NEST (nestgrad.nest_engine.wiring.build)
# ----------------------------------------------------------------------------------------------------------------

# version of the "nestgrad" section of config.circuit.json (what SONATA has no place for: roles, optimizer, ...)
SECTION_VERSION = 1
LEARNING_SIGNAL_MODEL = "eprop_learning_signal_connection"
# edge type column that keeps the sign Dale's law holds a plastic edge to ("nonneg" or "neg")
SIGN_COLUMN = "nestgrad_sign"


def _eprop_capable(model: str) -> bool:
    return model.startswith("eprop_") and "bsshslm" not in model


def _is_eprop_synapse(model: str) -> bool:
    """An e-prop synapse model nestgrad trains (eprop_synapse, eprop_event_synapse, eprop_vector_synapse)."""
    return model.startswith("eprop_") and model.endswith("_synapse") and "bsshslm" not in model


@dataclass
class SonataSpec:
    """A SONATA network as a :class:`nestgrad.spec.NetworkSpec`, with the map between the two.

    A SONATA node population becomes one spec population per run of nodes (in node order) that share a NEST model:
    named as the SONATA population if it has one model, else ``<name>[<first>:<stop>]``. A virtual population
    becomes a population of ``spike_generator``s (role ``device``; with ``parrots=True`` they are named
    ``<name>.generators`` and feed ``parrot_neuron``s named ``<name>`` through the projection ``<name>.parrots``).
    An edge population becomes one projection per (source, target) spec population pair, named as the edge
    population if there is one pair and one static synapse model (with its parameters), else ``<name>[<k>]``."""

    spec: NetworkSpec
    nodes: dict[str, list[tuple[str, np.ndarray]]]  # SONATA population -> [(spec population, node rows)]
    edges: dict[str, list[tuple[str, np.ndarray]]]  # SONATA edge population -> [(spec projection, edge rows)]
    generators: dict[str, str]  # virtual SONATA population -> spec population of its spike_generators
    models: dict[str, dict[int, str]]  # SONATA population -> node_type_id -> NEST model
    dropped_spikes: int = 0  # spikes at t <= 0 (NEST cannot emit them)


def _section(net: SonataNetwork) -> dict[str, Any]:
    """The ``nestgrad`` section of the circuit config (written by :func:`export_spec`), checked; {} if none."""
    sec = net.nestgrad
    where = net.nestgrad_path or net.config_path or "config.circuit.json"
    if not sec:
        return {}
    if not isinstance(sec, dict) or sec.get("version") != SECTION_VERSION:
        version = sec.get("version") if isinstance(sec, dict) else sec
        raise SonataError(where, "nestgrad/version", f"{version!r} is not supported (this nestgrad reads "
                          f"{SECTION_VERSION})")  # fmt: skip
    for key in ("populations", "projections", "optimizer"):
        if not isinstance(sec.get(key, {}), dict):
            raise SonataError(where, f"nestgrad/{key}", "must be a JSON object")
    resolution = sec.get("resolution", DEFAULT_DT)
    if isinstance(resolution, bool) or not isinstance(resolution, int | float) or not resolution > 0:
        raise SonataError(where, "nestgrad/resolution", f"{resolution!r}: a number of ms > 0 is required")
    roles = [r.value for r in Role]
    for name, entry in sec.get("populations", {}).items():
        field = f"nestgrad/populations/{name}"
        if not isinstance(entry, dict) or not isinstance(entry.get("model"), str) or entry.get("role") not in roles:
            raise SonataError(where, field, f"{entry!r}: a table with 'model' (a NEST model) and 'role' (one of "
                              f"{roles}) is required")  # fmt: skip
    kinds = [k.value for k in SynapseKind]
    for name, entry in sec.get("projections", {}).items():
        field = f"nestgrad/projections/{name}"
        if not isinstance(entry, dict) or entry.get("kind", "spike") not in kinds:
            raise SonataError(where, field, f"{entry!r}: a table with 'kind' (one of {kinds}) is required")
        rate = entry.get("learning_rate")
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int | float) or rate != rate):
            raise SonataError(where, f"{field}/learning_rate", f"{rate!r}: a number or null is required")
    recorded = sec.get("recorded")
    if recorded is not None and not (
        isinstance(recorded, list) and len(recorded) == 2 and isinstance(recorded[0], str)
        and isinstance(recorded[1], list) and all(isinstance(i, int) and not isinstance(i, bool) for i in recorded[1])
    ):  # fmt: skip
        raise SonataError(where, "nestgrad/recorded", "[population, [neuron indices]] is required")
    return sec


def _node_runs(models: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of the runs of equal values in ``models`` (node order)."""
    if len(models) == 0:
        return []
    change = np.flatnonzero(models[1:] != models[:-1]) + 1
    bounds = [0, *change.tolist(), len(models)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def _positions(pop: NodePopulation, rows: np.ndarray) -> np.ndarray | None:
    """[len(rows), 3] from the x, y, z node attributes (um), if all three are numeric and complete."""
    cols = [pop.attributes.get(k) for k in ("x", "y", "z")]
    if any(c is None or c.dtype.kind not in "iuf" for c in cols):
        return None
    out = np.stack([np.asarray(c, np.float64)[rows] for c in cols], axis=1)
    return out if np.all(np.isfinite(out)) else None


def _real_population(
    net: SonataNetwork, name: str, pop: NodePopulation, sec: dict, glif_model: str, nest: Any, spec: Any,
    models: dict, ports: dict, nodes_map: dict,
) -> None:  # fmt: skip
    entry = sec.get("populations", {}).get(name)
    where = (pop.types_file, "model_template")
    type_params: dict[int, dict[str, Any]] = {}
    for type_id in np.unique(pop.node_type_ids).tolist():
        row = pop.types[type_id]
        if row.get("model_type") == "virtual":
            raise SonataError(pop.types_file, "model_type", f"population '{name}' mixes virtual and real nodes")
        if row.get("model_processing") is not None:  # a bmtk Python hook that would change the cells: refuse
            raise SonataError(pop.types_file, "model_processing", f"node_type_id {type_id}: "
                              f"{row['model_processing']!r} is a bmtk Python hook nestgrad cannot run")  # fmt: skip
        if entry is not None:  # written by export_spec: the spec's model and parameters as they are
            model, params, n_ports = str(entry["model"]), _plain_dict(pop.type_dynamics[type_id]), None
        else:
            model, params, n_ports = nest_model_and_params(
                row.get("model_template"), pop.type_dynamics[type_id], glif_model=glif_model, where=where
            )
        if nest is not None and model not in nest.node_models:
            raise SonataError(pop.types_file, "model_template", f"NEST has no model '{model}' (type {type_id})")
        models[name][type_id], ports[name][type_id], type_params[type_id] = model, n_ports, params
    per_node: list[dict[str, Any]] | None = None
    if pop.dynamics:  # per-node dynamics_params from the HDF5 file override the type's
        per_node = []
        for r, type_id in enumerate(pop.node_type_ids.tolist()):
            merged = dict(pop.type_dynamics[type_id])
            merged.update({k: _plain(v[r]) for k, v in pop.dynamics.items() if not _is_missing(v[r])})
            if entry is not None:
                per_node.append(_plain_dict(merged))
            else:
                per_node.append(nest_model_and_params(pop.types[type_id].get("model_template"), merged,
                                                      glif_model=glif_model, where=where)[1])  # fmt: skip
    node_models = np.array([models[name][t] for t in pop.node_type_ids.tolist()], dtype=object)
    runs = _node_runs(node_models)
    role = Role(entry.get("role", "neurons")) if entry is not None else Role.NEURONS
    nodes_map[name] = []
    for start, stop in runs:
        rows = np.arange(start, stop)
        types = pop.node_type_ids[start:stop]
        if per_node is not None:
            params: Any = per_node[start:stop]
        elif np.all(types == types[0]):
            params = dict(type_params[int(types[0])])
        else:
            params = [type_params[t] for t in types.tolist()]
        spec_name = name if len(runs) == 1 else f"{name}[{start}:{stop}]"
        spec.add_population(Population(spec_name, str(node_models[start]), stop - start, params, role,
                                       _positions(pop, rows)))  # fmt: skip
        nodes_map[name].append((spec_name, rows))


def _virtual_population(
    net: SonataNetwork, name: str, pop: NodePopulation, sec: dict, spec: Any, parrots: bool, spike_offset: float
) -> tuple[str | None, int]:
    """Spec populations of a virtual SONATA population; returns (its generators' population, dropped spikes)."""
    entry = sec.get("populations", {}).get(name)
    if entry is not None and entry.get("role") == "input":  # the task's input parrots (export_spec)
        spec.add_population(Population(name, str(entry["model"]), pop.size, {}, Role.INPUT))
        return None, 0
    params: Any = {"precise_times": True}
    dropped = 0
    spikes = net.inputs.get(name)
    if spikes is not None:
        # as bmtk's PointNet: precise_times, so a spike at t is emitted at the end of the step containing t
        # (allow_offgrid_times would first round t to the tic grid and move some spikes one step earlier)
        trains = spikes.trains(pop.node_ids)
        dropped = sum(int(np.sum(t + spike_offset <= 0)) for t in trains)
        params = [{"precise_times": True, "spike_times": (t[t + spike_offset > 0] + spike_offset)} for t in trains]
    gen_name = f"{name}.generators" if parrots else name
    spec.add_population(Population(gen_name, "spike_generator", pop.size, params, Role.DEVICE))
    if parrots:  # one step of delay, as bmtk's use_parrot_neurons
        spec.add_population(Population(name, "parrot_neuron", pop.size, {}))
        idx = np.arange(pop.size)
        spec.add_projection(f"{name}.parrots", Projection(gen_name, name, idx, idx, np.ones(pop.size),
                                                          np.full(pop.size, spec.resolution)))  # fmt: skip
    return gen_name, dropped


def _run_of(nodes_map: list[tuple[str, np.ndarray]], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per node of a SONATA population: the index of its spec population (in ``nodes_map``) and its index there."""
    run, local = np.zeros(size, np.int64), np.zeros(size, np.int64)
    for k, (_, rows) in enumerate(nodes_map):
        run[rows], local[rows] = k, np.arange(len(rows))
    return run, local


def _edge_population(
    net: SonataNetwork, ename: str, edges: EdgePopulation, sec: dict, nest: Any, spec: Any, models: dict,
    ports: dict, nodes_map: dict, plastic_sel: dict, plastic_synapse: str, optimizer: dict[str, Any] | None,
) -> list[tuple[str, np.ndarray]]:  # fmt: skip
    resolution = spec.resolution
    entry = sec.get("projections", {}).get(ename)
    src_pop, trg_pop = net.nodes[edges.source_population], net.nodes[edges.target_population]
    src_idx = src_pop.index_of(edges.source_ids, (edges.edges_file, "source_node_id"))
    trg_idx = trg_pop.index_of(edges.target_ids, (edges.edges_file, "target_node_id"))
    trg_types = trg_pop.node_type_ids[trg_idx]
    weights, delays, receptors = edges.weights(), edges.delays(default=np.nan), edges.receptor_types()
    plastic = np.zeros(edges.size, bool)
    static_key = np.zeros(edges.size, np.int64)  # index into static_kinds
    static_kinds: list[tuple[str, dict[str, Any]]] = []
    plastic_models: set[str] = set()
    learning_signal = np.zeros(edges.size, bool)
    for type_id in np.unique(edges.edge_type_ids).tolist():
        sel_type = edges.edge_type_ids == type_id
        model = edges.synapse_model(type_id)
        hook = edges.types[type_id].get("weight_function")
        if hook is not None:  # bmtk would compute these weights with a Python function: refuse, never ignore
            raise SonataError(edges.types_file, "weight_function", f"edge_type_id {type_id}: {hook!r} is a bmtk "
                              "Python hook nestgrad cannot run; write the weights as syn_weight instead")  # fmt: skip
        chosen = ename in plastic_sel and (plastic_sel[ename] is None or type_id in plastic_sel[ename])
        is_plastic = chosen or _is_eprop_synapse(model)
        if chosen:
            model = plastic_synapse
        if nest is not None and model not in nest.synapse_models:
            raise SonataError(edges.types_file, "model_template",
                              f"{ename} type {type_id}: NEST has no synapse model '{model}'")  # fmt: skip
        missing = sel_type & np.isnan(delays)
        if np.any(missing):  # no delay anywhere: the synapse model's default, as bmtk leaves it to NEST
            delays[missing] = nest.GetDefaults(model)["delay"] if nest is not None else NEST_DEFAULT_DELAY
        if is_plastic:
            plastic[sel_type] = True
            plastic_models.add(model)
        elif model == LEARNING_SIGNAL_MODEL:
            learning_signal[sel_type] = True
        else:
            # the type's dynamics JSON goes to syn_spec; weight and delay then come from the edges (as in bmtk)
            extra = {k: _plain(v) for k, v in edges.type_dynamics[type_id].items()
                     if k not in ("receptor_type", "weight", "delay")}  # fmt: skip
            kind = (model, extra)
            if kind not in static_kinds:
                static_kinds.append(kind)
            static_key[sel_type] = static_kinds.index(kind)
        for ttype in np.unique(trg_types[sel_type]).tolist():
            target_model = models[trg_pop.name][ttype]
            n_ports = ports[trg_pop.name].get(ttype)
            for rec in np.unique(receptors[sel_type & (trg_types == ttype)]).tolist():
                if n_ports is not None and not 1 <= rec <= n_ports:
                    raise SonataError(edges.types_file, "receptor_type",
                                      f"edge_type_id {type_id}: receptor {rec} but target {target_model} "
                                      f"(node type {ttype}) has ports 1..{n_ports}")  # fmt: skip
            if is_plastic and not _eprop_capable(target_model):
                raise SonataError(edges.types_file, "edge_type_id",
                                  f"{ename} type {type_id} selected as plastic ({model}) but target "
                                  f"model {target_model} (node type {ttype}) does not support e-prop "
                                  "synapses; use an eprop_* neuron model")  # fmt: skip
        bad = sel_type & ~np.isclose(delays, resolution)
        if is_plastic and np.any(bad):  # NEST 3.10's e-prop synapses need it
            raise SonataError(edges.types_file, "delay", f"{ename} type {type_id}: e-prop synapses need a delay "
                              f"of one step ({resolution} ms), found {delays[bad][0]} ms")  # fmt: skip
    if np.any(delays < resolution - 1e-12):
        raise SonataError(
            edges.types_file, "delay", f"{ename}: delay {delays.min()} ms is below the resolution {resolution} ms"
        )
    if len(plastic_models) > 1:
        raise SonataError(edges.types_file, "model_template", f"{ename}: plastic edges of several synapse models "
                          f"{sorted(plastic_models)}; a projection has one (split the edge population)")  # fmt: skip
    if learning_signal.any() and not learning_signal.all():
        raise SonataError(edges.types_file, "model_template", f"{ename}: {LEARNING_SIGNAL_MODEL} edges mixed with "
                          "spike edges; put them in an edge population of their own")  # fmt: skip
    if plastic.any() and not spec.optimizer:
        if optimizer is not None:
            spec.optimizer = dict(optimizer)
        elif nest is not None:  # the model's current settings, as a plain nest.Connect would use them
            spec.optimizer = dict(nest.GetDefaults(next(iter(plastic_models)))["optimizer"])
        else:
            raise SonataError(edges.types_file, "model_template", f"{ename}: e-prop synapses need optimizer "
                              "settings: pass optimizer=... (NEST's optimizer dictionary)")  # fmt: skip
    sign = None
    if any(SIGN_COLUMN in edges.types[t] for t in np.unique(edges.edge_type_ids).tolist()):
        sign_of = {t: edges.types[t].get(SIGN_COLUMN) for t in np.unique(edges.edge_type_ids).tolist()}
        bad = [t for t, s in sign_of.items() if s not in SIGNS_WRITTEN]
        if bad:
            raise SonataError(edges.types_file, SIGN_COLUMN, f"edge_type_id {bad[0]}: {sign_of[bad[0]]!r}, expected "
                              f"{' or '.join(SIGNS_WRITTEN)}")  # fmt: skip
        sign = np.array([sign_of[t] == "nonneg" for t in edges.edge_type_ids.tolist()], bool)
    src_run, src_local = _run_of(nodes_map[src_pop.name], src_pop.size)
    trg_run, trg_local = _run_of(nodes_map[trg_pop.name], trg_pop.size)
    pair = src_run[src_idx] * len(nodes_map[trg_pop.name]) + trg_run[trg_idx]
    groups: list[tuple[int, int | None, np.ndarray]] = []  # (pair, static kind or None for all, edge rows)
    for p in np.unique(pair).tolist():
        in_pair = pair == p
        kinds = np.unique(static_key[in_pair & ~plastic & ~learning_signal]).tolist()
        if len(kinds) <= 1:
            groups.append((p, kinds[0] if kinds else None, np.flatnonzero(in_pair)))
            continue
        for n, k in enumerate(kinds):  # one projection per static synapse model; plastic edges join the first
            sel = in_pair & ((static_key == k) & ~plastic | (plastic if n == 0 else False))
            groups.append((p, k, np.flatnonzero(sel)))
    out = []
    entry = entry or {}
    for g, (_, k, rows) in enumerate(groups):
        name = ename if len(groups) == 1 else f"{ename}[{g}]"
        src_spec = nodes_map[src_pop.name][int(src_run[src_idx[rows[0]]])][0]
        trg_spec = nodes_map[trg_pop.name][int(trg_run[trg_idx[rows[0]]])][0]
        static_model, syn_params = static_kinds[k] if k is not None else (entry.get("static_synapse",
                                                                                   "static_synapse"), {})  # fmt: skip
        rec = receptors[rows]
        keep_receptors = entry.get("receptors", bool(np.any(rec != 0)))
        is_plastic = plastic[rows]
        plastic_model = next(iter(plastic_models)) if plastic_models else entry.get("synapse_model", "eprop_synapse")
        kind = SynapseKind.LEARNING_SIGNAL if learning_signal[rows].all() else SynapseKind.SPIKE
        spec.add_projection(name, Projection(
            src_spec, trg_spec, src_local[src_idx[rows]], trg_local[trg_idx[rows]], weights[rows], delays[rows],
            rec if keep_receptors else None, is_plastic if entry.get("plastic", is_plastic.any()) else None,
            sign[rows] if sign is not None else None, plastic_model, entry.get("learning_rate"), kind,
            static_model, syn_params,
        ))  # fmt: skip
        out.append((name, rows))
    return out


SIGNS_WRITTEN = ("nonneg", "neg")


def spec_from_sonata(
    net: SonataNetwork,
    *,
    resolution: float | None = None,
    nest: Any = None,
    glif_model: str = GLIF3_MODEL,
    plastic: Mapping[str, Iterable[int] | None] | Iterable[str] | None = None,
    plastic_synapse: str = "eprop_synapse",
    optimizer: Mapping[str, Any] | None = None,
    parrots: bool = False,
    spike_offset: float = 0.0,
) -> SonataSpec:
    """``net`` as a :class:`nestgrad.spec.NetworkSpec` (see :class:`SonataSpec` for the names), checked.

    Node types become NEST models and parameters by :func:`nest_model_and_params` (files written by
    :func:`export_spec` keep the spec's models and parameters as written); per-node ``dynamics_params`` override
    the type's; ``x``, ``y``, ``z`` become positions. Edges: weight ``syn_weight * nsyns``, the edge delay (else the
    synapse model's NEST default: ``nest``'s if given, else 1 ms), ``receptor_type``, the edge type's model and
    dynamics JSON (static edges). Edges of e-prop synapse models, and those ``plastic`` selects (edge population
    names, or edge population -> edge type ids, None = all types; they get ``plastic_synapse``), are plastic; their
    optimizer is the file's (``export_spec``), else ``optimizer``, else NEST's current defaults of the model (needs
    ``nest``). ``resolution`` (ms) defaults to the file's, else ``run/dt``. With ``nest`` the models are checked
    against NEST's. Anything the spec cannot hold raises :class:`SonataError` naming the file and field."""
    if glif_model not in (GLIF3_MODEL, "glif_psc"):
        raise ValueError(f"glif_model must be '{GLIF3_MODEL}' or 'glif_psc', not {glif_model!r}")
    sec = _section(net)
    if resolution is None:
        resolution = float(sec.get("resolution", net.run.get("dt", DEFAULT_DT)))
    spec = NetworkSpec(resolution=float(resolution), optimizer=dict(sec.get("optimizer", {})))
    models: dict[str, dict[int, str]] = {}
    ports: dict[str, dict[int, int | None]] = {}
    nodes_map: dict[str, list[tuple[str, np.ndarray]]] = {}
    generators: dict[str, str] = {}
    dropped = 0
    try:
        for name, pop in net.nodes.items():
            models[name], ports[name] = {}, {}
            if pop.is_virtual:
                gen, n = _virtual_population(net, name, pop, sec, spec, parrots, spike_offset)
                dropped += n
                if gen is not None:
                    generators[name] = gen
                model = "parrot_neuron" if parrots or gen is None else "spike_generator"
                models[name] = dict.fromkeys(np.unique(pop.node_type_ids).tolist(), model)
                ports[name] = dict.fromkeys(models[name])
                nodes_map[name] = [(name, np.arange(pop.size))]
                continue
            _real_population(net, name, pop, sec, glif_model, nest, spec, models, ports, nodes_map)
        plastic_sel = _plastic_selection(net, plastic)
        edges_map = {}
        for ename, edges in net.edges.items():
            edges_map[ename] = _edge_population(net, ename, edges, sec, nest, spec, models, ports, nodes_map,
                                                plastic_sel, plastic_synapse, optimizer)  # fmt: skip
        recorded = sec.get("recorded")
        if recorded is not None:
            spec.recorded = (str(recorded[0]), np.asarray(recorded[1], np.int64))
        spec.validate()
    except SpecError as err:
        raise SonataError(net.config_path or "network", "network", f"not a valid nestgrad network: {err}") from None
    return SonataSpec(spec, nodes_map, edges_map, generators, models, dropped)


@dataclass
class BuiltNetwork:
    """Handles of a network built by :func:`build_in_nest`."""

    populations: dict[str, Any]  # name -> NodeCollection (neurons; spike generators or parrots for virtual nodes)
    gids: dict[str, np.ndarray]  # name -> NEST global id of every node, in the population's node order
    generators: dict[str, Any]  # virtual population name -> its spike_generator NodeCollection
    models: dict[str, dict[int, str]]  # population -> node_type_id -> NEST model
    n_connections: dict[str, int]  # edge population -> number of NEST connections
    dropped_spikes: int = 0  # spikes at t <= 0 (NEST cannot emit them)
    converted: SonataSpec | None = None  # the spec that was built and its map to the SONATA populations
    wired: Any = None  # nestgrad.nest_engine.wiring.BuiltNetwork (read_plastic etc.)

    def gid_of(self, population: str, node_ids: Iterable[int], net: SonataNetwork) -> np.ndarray:
        pop = net.nodes[population]
        return self.gids[population][pop.index_of(np.asarray(list(node_ids)), (pop.nodes_file, "node_id"))]


def build_in_nest(
    net: SonataNetwork,
    nest: Any,
    *,
    glif_model: str = GLIF3_MODEL,
    plastic: Mapping[str, Iterable[int] | None] | Iterable[str] | None = None,
    plastic_synapse: str = "eprop_synapse",
    plastic_syn_params: Mapping[str, Any] | None = None,
    parrots: bool = False,
    spike_offset: float = 0.0,
) -> BuiltNetwork:
    """Create the nodes and connections of ``net`` in the current NEST kernel: :func:`spec_from_sonata` at NEST's
    resolution, built by the one wiring function (:func:`nestgrad.nest_engine.wiring.build`).

    Non-virtual node types become NEST neurons (see :func:`nest_model_and_params`); virtual populations become one
    ``spike_generator`` per node fed from ``net.inputs`` (``parrots=True`` puts a ``parrot_neuron`` after each).
    Connections are one NEST connection per edge with weight ``syn_weight * nsyns``, the edge delay and
    ``receptor_type`` from the edge type's dynamics JSON. ``plastic`` selects edges that get ``plastic_synapse``
    instead of the edge type's model: a list of edge population names, or a mapping edge population -> edge type
    ids (None = all types). Plastic targets must be e-prop neurons (model name ``eprop_*``), else SonataError.
    ``plastic_syn_params`` may hold ``optimizer`` (NEST's optimizer dictionary, over the model's defaults).
    """
    from nestgrad.nest_engine import wiring

    optimizer = None
    if plastic_syn_params:
        unknown = sorted(set(plastic_syn_params) - {"optimizer"})
        if unknown:
            raise SonataError(net.config_path or "network", "plastic_syn_params", f"{unknown}: only 'optimizer' can "
                              "be given (e-prop synapses take their settings from the model's defaults)")  # fmt: skip
        optimizer = {**nest.GetDefaults(plastic_synapse)["optimizer"], **plastic_syn_params["optimizer"]}
    conv = spec_from_sonata(net, resolution=nest.resolution, nest=nest, glif_model=glif_model, plastic=plastic,
                            plastic_synapse=plastic_synapse, optimizer=optimizer, parrots=parrots,
                            spike_offset=spike_offset)  # fmt: skip
    try:
        wired = wiring.build(nest, conv.spec)
    except nest.NESTError as err:
        raise SonataError(net.config_path or "network", "network", f"NEST refused to build it: {err}") from err
    gids: dict[str, np.ndarray] = {}
    populations: dict[str, Any] = {}
    for name, parts in conv.nodes.items():
        pop_gids = np.zeros(net.nodes[name].size, dtype=np.int64)
        for spec_name, rows in parts:
            pop_gids[rows] = wired.ids[spec_name]
        gids[name] = pop_gids
        populations[name] = nest.NodeCollection(sorted(pop_gids.tolist()))
    generators = {name: wired.nodes[gen] for name, gen in conv.generators.items()}
    n_connections = {name: e.size for name, e in net.edges.items()}
    return BuiltNetwork(populations, gids, generators, conv.models, n_connections, conv.dropped_spikes, conv, wired)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _plain_dict(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _plain(v) for k, v in d.items()}


def _plastic_selection(net: SonataNetwork, plastic: Any) -> dict[str, set[int] | None]:
    if plastic is None:
        return {}
    sel = dict(plastic) if isinstance(plastic, Mapping) else dict.fromkeys(plastic)
    for name, types in sel.items():
        if name not in net.edges:
            raise ValueError(f"plastic: no edge population {name!r} (have {sorted(net.edges)})")
        if types is not None:
            sel[name] = {int(t) for t in types}
            unknown = sel[name] - set(net.edges[name].types)
            if unknown:
                raise ValueError(f"plastic: edge population {name!r} has no edge types {sorted(unknown)}")
    return sel


# ----------------------------------------------------------------------------------------------------------------
# NEST -> SONATA
# ----------------------------------------------------------------------------------------------------------------

# status keys that are bookkeeping, read-only or plasticity traces, never exported as parameters
_NOT_PARAMETERS = {
    "global_id", "local", "model", "model_id", "node_uses_wfr", "thread", "thread_local_id", "vp", "element_type",
    "elementsize", "frozen", "instantiations", "capacity", "available", "t_spike", "archiver_length", "recordables",
    "receptor_types", "synaptic_elements", "type_id", "post_trace", "Ca", "tau_Ca", "beta_Ca", "tau_minus",
    "tau_minus_triplet", "has_connections",
}  # fmt: skip
_VIRTUAL_MODELS = ("spike_generator", "parrot_neuron")
# receptor_type given to nest.Connect minus the "receptor" that GetConnections reports
_RPORT_OFFSET = {GLIF3_MODEL: 1}


def _glif3_to_glif_psc(status: Mapping[str, Any]) -> dict[str, Any]:
    """glif3_psc_nestml status -> glif_psc-named dynamics (inverse of the import mapping)."""
    out: dict[str, Any] = {k: float(status[k]) for k in GLIF_SCALARS if k != "I_e"}
    if float(status["I_e"]) != 0.0:
        out["I_e"] = float(status["I_e"])
    out["V_m"] = float(status["U_m"]) + float(status["E_L"])
    for key, n in GLIF_VECTORS.items():
        out[key] = [float(status[f"{key}_{i}"]) for i in range(1, n + 1)]
    out.update(GLIF3_FLAGS)
    return out


def _glif3_keys() -> list[str]:
    keys = [k for k in GLIF_SCALARS] + ["U_m"]
    return keys + [f"{k}_{i}" for k, n in GLIF_VECTORS.items() for i in range(1, n + 1)]


_SETTABLE: dict[tuple[str, str], bool] = {}


def _settable(nest: Any, model: str, key: str, default: Any) -> bool:
    """Whether NEST accepts ``key`` as a parameter of ``model`` (read-only entries such as the multisynapse models'
    ``n_synapses``/``n_receptors`` would make the export impossible to build). Probed by setting the model's
    default to its own value, which changes nothing."""
    if (model, key) not in _SETTABLE:
        try:
            nest.SetDefaults(model, {key: default})
            _SETTABLE[(model, key)] = True
        except nest.NESTError:
            _SETTABLE[(model, key)] = False
    return _SETTABLE[(model, key)]


def _node_dynamics(nest: Any, model: str, nodes: Any) -> tuple[str, list[dict[str, Any]]]:
    """(model_template, per-node dynamics dicts) of NEST nodes of one model."""
    if model == GLIF3_MODEL:
        status = nodes.get(_glif3_keys())
        per_node = [{k: status[k][i] for k in status} for i in range(len(nodes))] if len(nodes) > 1 else [status]
        return "nest:glif_psc", [_glif3_to_glif_psc(s) for s in per_node]
    defaults = nest.GetDefaults(model)
    keys = [k for k, v in defaults.items() if k not in _NOT_PARAMETERS and _is_number(v)]
    keys = [k for k in keys if _settable(nest, model, k, defaults[k])]
    status = nodes.get(keys)
    per_node = [{k: status[k][i] for k in keys} for i in range(len(nodes))] if len(nodes) > 1 else [status]
    changed = [k for k in keys if any(not np.array_equal(np.asarray(d[k]), np.asarray(defaults[k])) for d in per_node)]
    return f"nest:{model}", [{k: _plain(d[k]) for k in changed} for d in per_node]


def _is_number(value: Any) -> bool:
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "biuf"
    return isinstance(value, int | float | bool)


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _virtual_spikes(nest: Any, name: str, nc: Any, node_ids: np.ndarray, every: dict[str, np.ndarray]) -> SpikeInput:
    """The spike times of a population of spike generators, or of parrots fed one to one by generators (``every``:
    source and target of all connections, read once by the caller instead of NEST's slow target filter)."""
    gids = np.asarray(nc.tolist())
    model = nc[0].get("model")
    if model == "spike_generator":
        gens = nc
    else:  # parrots: spike times come from the generators that feed them one to one
        into = np.isin(every["target"], gids) if every else np.zeros(0, bool)
        src, trg = (every["source"][into], every["target"][into]) if every else (into, into)
        feed = dict(zip(trg.tolist(), src.tolist(), strict=True))
        missing = [g for g in gids.tolist() if g not in feed]
        if missing:
            raise ValueError(f"export: parrot neurons {missing[:5]} of '{name}' have no spike_generator input")
        gens = nest.NodeCollection(sorted(set(feed.values())))
        gen_times = dict(zip(gens.tolist(), _as_list(gens.get("spike_times"), len(gens)), strict=True))
        trains = [np.asarray(gen_times[feed[g]]) for g in gids.tolist()]
        return _spike_input(name, node_ids, trains)
    return _spike_input(name, node_ids, [np.asarray(t) for t in _as_list(gens.get("spike_times"), len(gens))])


def _as_list(value: Any, n: int) -> list:
    return list(value) if n > 1 else [value]


def _spike_input(name: str, node_ids: np.ndarray, trains: list[np.ndarray]) -> SpikeInput:
    ids = np.concatenate([np.full(len(t), nid, dtype=np.int64) for nid, t in zip(node_ids, trains, strict=True)])
    times = np.concatenate(trains).astype(np.float64) if trains else np.zeros(0)
    return SpikeInput(name, ids, times)


def network_from_nest(
    nest: Any, populations: Mapping[str, Any], *, run: Mapping[str, Any] | None = None
) -> SonataNetwork:
    """Describe NEST node collections and the connections among them as a :class:`SonataNetwork`.

    Node ids are positions in each collection. Nodes of one model with equal vector parameters form a node type
    (ids 100, 101, ...); scalar parameters shared by the type go to its dynamics JSON, those that differ between
    nodes to per-node ``dynamics_params`` in the HDF5 file. Populations of ``spike_generator`` (or parrots fed by
    them) become virtual nodes with their spike times as input. Every connection between two of the populations is
    one edge with its own ``syn_weight`` and ``delay``; edge types are the distinct (synapse model, receptor, numeric
    synapse parameters that differ from the model's defaults), the parameters going to the type's dynamics JSON.
    ``run`` (the simulation config's run section) defaults to NEST's resolution as ``dt``.
    """
    net = SonataNetwork(run={"dt": nest.resolution, **(run or {})})
    # every connection at once, split by population here: NEST's source and target filters grow slower with every
    # kernel with devices that the process has made (PyNEST 3.10), an unfiltered GetConnections does not
    everything = nest.GetConnections()
    status_keys = ["source", "target", "weight", "delay", "receptor", "synapse_model", "target_thread", "port"]
    every = connections.read(everything, status_keys) if len(everything) else {}
    gid_maps = {}
    for name, nc in populations.items():
        gids = np.asarray(nc.tolist(), dtype=np.int64)
        node_ids = np.arange(len(gids), dtype=np.int64)
        gid_maps[name] = gids
        node_models = np.asarray(_as_list(nc.get("model"), len(nc)), dtype=object)
        if all(m in _VIRTUAL_MODELS for m in node_models):
            types = {100: {"node_type_id": 100, "model_type": "virtual"}}
            net.nodes[name] = NodePopulation(name, node_ids, np.full(len(gids), 100, dtype=np.int64), types, {100: {}})
            net.inputs[name] = _virtual_spikes(nest, name, nc, node_ids, every)
            continue
        type_ids = np.zeros(len(gids), dtype=np.int64)
        types, type_dyn, per_node_dyn = {}, {}, {}
        next_type = 100
        for model in sorted(set(node_models.tolist())):
            rows = np.flatnonzero(node_models == model)
            template, dyn = _node_dynamics(nest, model, nest.NodeCollection(gids[rows].tolist()))
            groups: dict[tuple, list[int]] = {}
            for r, d in zip(rows, dyn, strict=True):
                key = tuple(sorted((k, tuple(v)) for k, v in d.items() if isinstance(v, list)))
                groups.setdefault(key, []).append(r)
            for key, members in groups.items():
                local = [dyn[list(rows).index(r)] for r in members]
                shared = {k: v for k, v in local[0].items() if all(d.get(k) == v for d in local)}
                shared.update(dict(key))
                shared = {k: (list(v) if isinstance(v, tuple) else v) for k, v in shared.items()}
                for r, d in zip(members, local, strict=True):
                    for k, v in d.items():
                        if k not in shared:
                            per_node_dyn.setdefault(k, np.full(len(gids), np.nan))[r] = v
                types[next_type] = {"node_type_id": next_type, "model_type": "point_neuron", "model_template": template}
                type_dyn[next_type] = shared
                type_ids[members] = next_type
                next_type += 1
        net.nodes[name] = NodePopulation(name, node_ids, type_ids, types, type_dyn, dynamics=per_node_dyn)

    if every:  # the edges: from any population into a non-virtual one; their parameters read once, for all pairs
        sources = np.concatenate(list(gid_maps.values()))
        targets = np.concatenate([gid_maps[n] for n in populations if not net.nodes[n].is_virtual] or [sources[:0]])
        edges = np.isin(every["source"], sources) & np.isin(every["target"], targets)
        every = {k: v[edges] for k, v in every.items()}
        every_params = _synapse_parameters(nest, every)
    for src_name, src_nc in populations.items():
        for trg_name, trg_nc in populations.items():
            if net.nodes[trg_name].is_virtual or len(src_nc) == 0 or len(trg_nc) == 0 or not every:
                continue
            pair = np.isin(every["source"], gid_maps[src_name]) & np.isin(every["target"], gid_maps[trg_name])
            if not pair.any():
                continue
            status = {k: v[pair] for k, v in every.items()}
            params = [every_params[i] for i in np.flatnonzero(pair)]
            src_ids = _gid_to_node(gid_maps[src_name], status["source"])
            trg_ids = _gid_to_node(gid_maps[trg_name], status["target"])
            order = np.lexsort((src_ids, trg_ids))
            # NESTML models number their spike ports from 0 internally: GetConnections reports receptor_type - 1
            trg_models = np.asarray(_as_list(trg_nc.get("model"), len(trg_nc)), dtype=object)[trg_ids]
            offset = np.array([_RPORT_OFFSET.get(m, 0) for m in trg_models])
            status["receptor"] = status["receptor"] + offset
            keys = [(m, r, p) for m, r, p in zip(status["synapse_model"].tolist(), status["receptor"].tolist(),
                                                 params, strict=True)]  # fmt: skip
            kind_id = {k: 100 + i for i, k in enumerate(sorted(set(keys)))}
            etype = np.array([kind_id[k] for k in keys])
            ename = f"{src_name}_to_{trg_name}"
            types = {t: {"edge_type_id": t, "model_template": m} for (m, _, _), t in kind_id.items()}
            type_dyn = {t: {**({"receptor_type": int(r)} if r else {}), **dict(p)} for (_, r, p), t in kind_id.items()}
            attrs = {
                "syn_weight": status["weight"][order].astype(np.float64),
                "delay": status["delay"][order].astype(np.float64),
            }
            n = len(order)
            net.edges[ename] = EdgePopulation(
                ename, src_name, trg_name, src_ids[order], trg_ids[order], etype[order], types, type_dyn, attrs,
                group_ids=np.zeros(n, dtype=np.int64), group_index=np.arange(n), group_columns={0: list(attrs)},
            )  # fmt: skip
    return net


# connection status entries that are not synapse parameters (or are written as edge columns)
_SYN_NOT_PARAMETERS = {
    "weight", "delay", "receptor", "source", "target", "synapse_id", "port", "rport", "target_thread", "sizeof",
    "synapse_model", "num_connections", "has_delay", "requires_symmetric", "weight_recorder", "element_type",
    "receptor_type", "synapse_modelid",
}  # fmt: skip


def _synapse_parameters(nest: Any, status: Mapping[str, np.ndarray]) -> list[tuple]:
    """Per connection of ``status``: sorted (name, value) of the numeric synapse parameters that differ from the
    synapse model's defaults (e.g. U, tau_rec, tau_fac of tsodyks2_synapse); they go to the edge type's JSON."""
    models = status["synapse_model"]
    out: list[tuple] = [()] * len(models)
    conn_id = list(zip(*(status[k].tolist() for k in ("source", "target", "target_thread", "port")), strict=True))
    for model in sorted(set(models.tolist())):
        defaults = nest.GetDefaults(model)
        keys = [k for k, v in defaults.items() if k not in _SYN_NOT_PARAMETERS and _is_number(v)
                and not isinstance(v, np.ndarray) and _settable(nest, model, k, v)]  # fmt: skip
        if not keys:
            continue
        # the connections of this model (all of them, once: NEST's source and target filters are slow, see
        # network_from_nest), matched to rows of ``status`` by NEST's connection id
        got = connections.read(nest.GetConnections(synapse_model=model), ["source", "target", "target_thread", "port",
                                                                         *keys])  # fmt: skip
        got = {k: v.tolist() for k, v in got.items()}
        ids = zip(*(got[k] for k in ("source", "target", "target_thread", "port")), strict=True)
        row_of = {cid: i for i, cid in enumerate(ids)}
        for row in np.flatnonzero(models == model):
            j = row_of[conn_id[row]]
            out[row] = tuple((k, _plain(got[k][j])) for k in keys if got[k][j] != defaults[k])
    return out


def _gid_to_node(gids: np.ndarray, values: np.ndarray) -> np.ndarray:
    order = np.argsort(gids)
    pos = np.searchsorted(gids[order], values)
    return order[pos].astype(np.int64)


def export_sonata(
    out_dir: str | Path, nest: Any, populations: Mapping[str, Any], *, run: Mapping[str, Any] | None = None
) -> Path:
    """Write NEST node collections (name -> NodeCollection) and their connections as SONATA files.

    Returns the path of ``config.simulation.json`` (which points to ``config.circuit.json``)."""
    return network_from_nest(nest, populations, run=run).write(out_dir)


def _csv_cell(value: Any) -> str:
    if _is_missing(value):
        return "NULL"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _write_types(path: Path, id_column: str, types: dict[int, dict], dyn_names: dict[int, str | None]) -> None:
    columns = [id_column]
    for row in types.values():
        columns += [c for c in row if c not in columns and c != "dynamics_params"]
    columns.append("dynamics_params")
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh, delimiter=" ", quotechar='"', quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
        writer.writerow(columns)
        for type_id, row in types.items():
            values = {**row, id_column: type_id, "dynamics_params": dyn_names[type_id]}
            writer.writerow([_csv_cell(values.get(c)) for c in columns])


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.write_text(json.dumps({k: _plain(v) for k, v in data.items()}, indent=2) + "\n")


def _write_groups(pop_grp: h5py.Group, prefix: str, attrs: dict, dyn: dict, group_ids, group_index, columns) -> None:
    n = len(pop_grp[f"{'node_id' if prefix == 'node' else 'source_node_id'}"])
    if group_ids is None:
        group_ids, group_index = np.zeros(n, dtype=np.int64), np.arange(n)
    if not columns:
        columns = {0: list(attrs) + [f"dynamics_params/{k}" for k in dyn]}
    new_index = np.zeros(n, dtype=np.uint64)
    for gid in sorted(set(np.unique(group_ids).tolist()) | set(columns)):
        rows = np.flatnonzero(group_ids == gid)
        rows = rows[np.argsort(group_index[rows], kind="stable")]
        new_index[rows] = np.arange(len(rows))
        grp = pop_grp.create_group(str(gid))
        for col in columns.get(gid, []):
            source, name = (dyn, col.split("/", 1)[1]) if col.startswith("dynamics_params/") else (attrs, col)
            values = source[name][rows]
            if values.dtype == object:
                values = np.array([str(v) for v in values], dtype=h5py.string_dtype())
            target = grp.require_group("dynamics_params") if source is dyn else grp
            target.create_dataset(name, data=values)
    pop_grp.create_dataset(f"{prefix}_group_id", data=group_ids.astype(np.uint32))
    pop_grp.create_dataset(f"{prefix}_group_index", data=new_index)


def _write_type_table(
    csv_path: Path,
    id_column: str,
    population: str,
    types: dict,
    type_dynamics: dict,
    dynamics_dir: Path,
) -> None:
    """A node or edge type CSV, with one dynamics-parameter JSON per type (``{}`` if it has no parameters: bmtk
    loads the JSON of every edge type and of every non-virtual node type); virtual node types get none."""
    dyn_names = {}
    for t in types:
        had_file = types[t].get("dynamics_params") is not None
        needs_file = had_file or type_dynamics.get(t) or types[t].get("model_type") != "virtual"
        dyn_names[t] = f"{population}_{t}.json" if needs_file else None
        if dyn_names[t]:
            _write_json(dynamics_dir / dyn_names[t], type_dynamics.get(t, {}))
    _write_types(csv_path, id_column, types, dyn_names)


def _check_file_name_part(out: Path, field: str, name: Any) -> None:
    """Population names become parts of file names: refuse any that could leave the output folder."""
    if (not isinstance(name, str) or not name or name.startswith(".") or any(c in name for c in "/\\\0")
            or Path(name).is_absolute()):  # fmt: skip
        raise SonataError(out, field, f"population name {name!r} cannot be part of a file name (no '/', '\\', "
                          "NUL, leading '.'); rename the population")  # fmt: skip


def _write_network(net: SonataNetwork, out: Path) -> Path:
    for kind, names in (("nodes", net.nodes), ("edges", net.edges), ("inputs", net.inputs)):
        for name in names:
            _check_file_name_part(out, f"{kind}/{name}", name)
    network_dir, cells_dir, syn_dir, inputs_dir = (
        out / "network", out / "components" / "cell_models", out / "components" / "synaptic_models", out / "inputs"
    )  # fmt: skip
    for d in (network_dir, cells_dir, syn_dir, inputs_dir):
        d.mkdir(parents=True, exist_ok=True)
    node_entries, edge_entries, inputs = [], [], {}
    for name, pop in net.nodes.items():
        _write_type_table(
            network_dir / f"{name}_node_types.csv", "node_type_id", name, pop.types, pop.type_dynamics, cells_dir
        )
        with h5py.File(network_dir / f"{name}_nodes.h5", "w") as fh:
            fh.attrs["magic"] = np.uint32(0x0A7A)
            fh.attrs["version"] = np.array([0, 1], dtype=np.uint32)
            grp = fh.create_group(f"nodes/{name}")
            grp.create_dataset("node_id", data=pop.node_ids.astype(np.uint64))
            grp.create_dataset("node_type_id", data=pop.node_type_ids.astype(np.uint64))
            _write_groups(grp, "node", pop.attributes, pop.dynamics, pop.group_ids, pop.group_index, pop.group_columns)
        node_entries.append(
            {"nodes_file": f"$NETWORK_DIR/{name}_nodes.h5", "node_types_file": f"$NETWORK_DIR/{name}_node_types.csv"}
        )
    for name, e in net.edges.items():
        _write_type_table(
            network_dir / f"{name}_edge_types.csv", "edge_type_id", name, e.types, e.type_dynamics, syn_dir
        )
        with h5py.File(network_dir / f"{name}_edges.h5", "w") as fh:
            fh.attrs["magic"] = np.uint32(0x0A7A)
            fh.attrs["version"] = np.array([0, 1], dtype=np.uint32)
            grp = fh.create_group(f"edges/{name}")
            src = grp.create_dataset("source_node_id", data=e.source_ids.astype(np.uint64))
            src.attrs["node_population"] = e.source_population
            trg = grp.create_dataset("target_node_id", data=e.target_ids.astype(np.uint64))
            trg.attrs["node_population"] = e.target_population
            grp.create_dataset("edge_type_id", data=e.edge_type_ids.astype(np.uint32))
            _write_groups(grp, "edge", e.attributes, e.dynamics, e.group_ids, e.group_index, e.group_columns)
        edge_entries.append(
            {"edges_file": f"$NETWORK_DIR/{name}_edges.h5", "edge_types_file": f"$NETWORK_DIR/{name}_edge_types.csv"}
        )
    for pop_name, spikes in net.inputs.items():
        with h5py.File(inputs_dir / f"{pop_name}_spikes.h5", "w") as fh:
            fh.attrs["magic"] = np.uint32(0x0A7A)
            fh.attrs["version"] = np.array([0, 1], dtype=np.uint32)
            grp = fh.create_group(f"spikes/{pop_name}")
            grp.attrs["sorting"] = "none"
            grp.create_dataset("node_ids", data=spikes.node_ids.astype(np.uint64))
            grp.create_dataset("timestamps", data=spikes.timestamps.astype(np.float64)).attrs["units"] = "ms"
        inputs[f"{pop_name}_spikes"] = {
            "input_type": "spikes", "module": "sonata", "input_file": f"$INPUT_DIR/{pop_name}_spikes.h5",
            "node_set": pop_name,
        }  # fmt: skip
    circuit = {
        "manifest": {"$BASE_DIR": ".", "$NETWORK_DIR": "$BASE_DIR/network", "$COMPONENTS_DIR": "$BASE_DIR/components"},
        "components": {
            "point_neuron_models_dir": "$COMPONENTS_DIR/cell_models",
            "synaptic_models_dir": "$COMPONENTS_DIR/synaptic_models",
        },
        "networks": {"nodes": node_entries, "edges": edge_entries},
    }
    if net.nestgrad:
        circuit["nestgrad"] = net.nestgrad
    run = {"tstop": DEFAULT_TSTOP, "dt": DEFAULT_DT, **{k: _plain(v) for k, v in net.run.items()}}
    simulation = {
        "manifest": {"$BASE_DIR": ".", "$INPUT_DIR": "$BASE_DIR/inputs"},
        "target_simulator": "NEST",
        "run": run,
        # bmtk writes its results to (and first empties) output_dir, the working directory if none is given
        "output": {"output_dir": "$BASE_DIR/output", "log_file": "log.txt", "spikes_file": "spikes.h5"},
        "inputs": inputs,
        "network": "config.circuit.json",
    }
    (out / "config.circuit.json").write_text(json.dumps(circuit, indent=2) + "\n")
    sim_path = out / "config.simulation.json"
    sim_path.write_text(json.dumps(simulation, indent=2) + "\n")
    return sim_path


# ----------------------------------------------------------------------------------------------------------------
# nestgrad.spec.NetworkSpec -> SONATA
# ----------------------------------------------------------------------------------------------------------------


def _spec_node_types(pop: Population) -> tuple[np.ndarray, dict, dict, dict[str, np.ndarray]]:
    """Node types of a spec population: (type id per neuron, types, type dynamics, per-node dynamics columns).
    Parameters that every neuron has as a number of one kind and that differ between neurons go to per-node
    columns; the others (equal everywhere, lists, strings, held by some neurons only) make the node types."""
    template = {"model_type": "point_neuron", "model_template": f"nest:{pop.model}"}
    if not isinstance(pop.params, list):
        return np.full(pop.size, 100, np.int64), {100: {"node_type_id": 100, **template}}, {100: _plain_dict(
            pop.params)}, {}  # fmt: skip
    params = pop.params
    keys: list[str] = []
    for p in params:
        keys += [k for k in p if k not in keys]
    columns: dict[str, np.ndarray] = {}
    for key in keys:
        values = [p.get(key) for p in params]
        kind = scalar_kind(values) if all(key in p for p in params) else None
        if kind is not None and len({repr(v) for v in values}) > 1:
            columns[key] = np.asarray(values, dtype={"b": bool, "i": np.int64, "f": np.float64}[kind])
    type_of: dict[str, int] = {}
    type_ids = np.zeros(pop.size, np.int64)
    types, type_dyn = {}, {}
    for n, p in enumerate(params):
        shared = {k: _plain(v) for k, v in p.items() if k not in columns}
        key = json.dumps(shared, sort_keys=True, default=str)
        if key not in type_of:
            t = 100 + len(type_of)
            type_of[key] = t
            types[t] = {"node_type_id": t, **template}
            type_dyn[t] = shared
        type_ids[n] = type_of[key]
    return type_ids, types, type_dyn, columns


def _check_generator_params(pop: Population) -> None:
    for n, p in enumerate(pop.params if isinstance(pop.params, list) else [pop.params]):
        extra = sorted(set(p) - {"spike_times", "precise_times"})
        if extra or not p.get("precise_times", False):
            raise SonataError("spec", f"nodes/{pop.name}", f"spike_generator {n}: only spike_times with precise_times "
                              f"= True can be written as SONATA inputs (found {sorted(p)})")  # fmt: skip


def sonata_from_spec(
    spec: NetworkSpec, weights: Mapping[str, np.ndarray] | None = None, *, run: Mapping[str, Any] | None = None
) -> SonataNetwork:
    """A :class:`nestgrad.spec.NetworkSpec` as a :class:`SonataNetwork` (see :func:`export_spec`)."""
    spec.validate()
    net = SonataNetwork(run={"dt": spec.resolution, **(run or {})})
    section: dict[str, Any] = {
        "version": SECTION_VERSION, "resolution": spec.resolution, "optimizer": _plain_dict(spec.optimizer),
        "populations": {}, "projections": {},
    }  # fmt: skip
    for name, pop in spec.populations.items():
        ids = np.arange(pop.size, dtype=np.int64)
        section["populations"][name] = {"model": pop.model, "role": str(pop.role)}
        attrs: dict[str, np.ndarray] = {}
        if pop.positions is not None:
            xyz = np.asarray(pop.positions, np.float64)
            attrs = {"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2]}
        if pop.role == Role.INPUT or pop.model == "spike_generator":  # virtual nodes; generators' spikes as input
            types = {100: {"node_type_id": 100, "model_type": "virtual"}}
            net.nodes[name] = NodePopulation(name, ids, np.full(pop.size, 100, np.int64), types, {100: {}}, attrs,
                                             group_ids=np.zeros(pop.size, np.int64), group_index=ids,
                                             group_columns={0: list(attrs)})  # fmt: skip
            if pop.model == "spike_generator":
                _check_generator_params(pop)
                per = pop.params if isinstance(pop.params, list) else [pop.params] * pop.size
                net.inputs[name] = _spike_input(name, ids, [np.asarray(p.get("spike_times", []), float) for p in per])
            continue
        type_ids, types, type_dyn, columns = _spec_node_types(pop)
        cols = list(attrs) + [f"dynamics_params/{k}" for k in columns]
        net.nodes[name] = NodePopulation(name, ids, type_ids, types, type_dyn, attrs, columns,
                                         np.zeros(pop.size, np.int64), ids, {0: cols})  # fmt: skip
    for name, proj in spec.projections.items():
        w = np.asarray(proj.weights, np.float64)
        if weights is not None and name in weights:
            w = _edge_weights(spec, name, proj, weights[name])
        plastic = proj.plastic_mask()
        receptors = np.zeros(proj.size, np.int64) if proj.receptors is None else np.asarray(proj.receptors, np.int64)
        sign = None if proj.nonneg is None else np.asarray(proj.nonneg, bool)
        keys = list(zip(plastic.tolist(), receptors.tolist(), (sign if sign is not None else plastic).tolist(),
                        strict=True))  # fmt: skip
        kinds = sorted(set(keys))
        type_id = {k: 100 + i for i, k in enumerate(kinds)}
        types, type_dyn = {}, {}
        for (is_plastic, rec, nonneg), t in type_id.items():
            if proj.kind == SynapseKind.LEARNING_SIGNAL:
                model, dyn = LEARNING_SIGNAL_MODEL, {}
            elif is_plastic:
                model, dyn = proj.synapse_model, {}
            else:
                model, dyn = proj.static_synapse, _plain_dict(proj.synapse_params)
            types[t] = {"edge_type_id": t, "model_template": f"nest:{model}"}
            if sign is not None:
                types[t][SIGN_COLUMN] = "nonneg" if nonneg else "neg"
            type_dyn[t] = {**dyn, **({"receptor_type": int(rec)} if rec else {})}
        etype = np.array([type_id[k] for k in keys], np.int64)
        attrs = {"syn_weight": w, "delay": np.asarray(proj.delays, np.float64)}
        net.edges[name] = EdgePopulation(
            name, proj.source, proj.target, np.asarray(proj.sources, np.int64), np.asarray(proj.targets, np.int64),
            etype, types, type_dyn, attrs, group_ids=np.zeros(proj.size, np.int64), group_index=np.arange(proj.size),
            group_columns={0: list(attrs)},
        )  # fmt: skip
        section["projections"][name] = {
            "kind": str(proj.kind), "learning_rate": proj.learning_rate, "synapse_model": proj.synapse_model,
            "static_synapse": proj.static_synapse, "receptors": proj.receptors is not None,
            "plastic": proj.plastic is not None,
        }  # fmt: skip
    if spec.recorded is not None:
        section["recorded"] = [spec.recorded[0], np.asarray(spec.recorded[1]).tolist()]
    net.nestgrad = section
    return net


def _edge_weights(spec: NetworkSpec, name: str, proj: Projection, given: np.ndarray) -> np.ndarray:
    """Weights of ``proj``'s edges in edge order from ``given``: one per edge, or a [target, source] matrix (the
    classic learner's form)."""
    given = np.asarray(given, np.float64)
    shape = (spec.populations[proj.target].size, spec.populations[proj.source].size)
    if given.shape == (proj.size,):
        out = given
    elif given.shape == shape:
        out = given[np.asarray(proj.targets), np.asarray(proj.sources)]
    else:
        raise SonataError("weights", name, f"shape {given.shape}: one weight per edge ({proj.size},) or a "
                          f"[target, source] matrix {shape} is required")  # fmt: skip
    if not np.all(np.isfinite(out)):
        raise SonataError("weights", name, "NaN or infinite weights")
    return out


def export_spec(
    out_dir: str | Path,
    spec: NetworkSpec,
    weights: Mapping[str, np.ndarray] | None = None,
    *,
    run: Mapping[str, Any] | None = None,
) -> Path:
    """Write a :class:`nestgrad.spec.NetworkSpec` as SONATA files under ``out_dir``; returns the path of
    ``config.simulation.json``.

    ``weights`` (projection -> weights in the spec's edge order, or a [target, source] matrix) replaces the spec's
    weights, e.g. the trained weights a learner reads back (``learner.read_weights(nest)``). Every population
    becomes a node population (model ``nest:<model>``, parameters in the type's dynamics JSON or, where they differ
    between neurons, per node; positions as ``x``, ``y``, ``z``); input populations and spike generators become
    virtual nodes (the generators' spike times the input spike file); every projection becomes an edge population
    of its name in edge order (``syn_weight``, ``delay`` per edge; edge types per plastic flag, receptor and sign).
    What SONATA has no place for (roles, optimizer, learning rates, projection kinds, recorded neurons) goes to the
    ``nestgrad`` section of ``config.circuit.json``; :func:`spec_from_sonata` reads it back into an equal spec."""
    return sonata_from_spec(spec, weights, run=run).write(out_dir)

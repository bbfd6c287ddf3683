"""The spec on disk: a lossless ``.npz`` form of a :class:`~nestgrad.spec.NetworkSpec`, with a format version.

One file holds one spec and, optionally, named data arrays (e.g. the input spikes, targets and learning window a
comparison replays) and a JSON ``meta`` table. Layout (an uncompressed NumPy ``.npz`` archive, never pickled):

* ``spec_json``: a JSON document ``{"format": "nestgrad.spec", "version": 1, "resolution", "optimizer",
  "populations": [...], "projections": [...], "recorded", "data", "meta"}``; every array it refers to is named by
  its position only (``e3_weights``, ``p0_k2``, ``d1``), never by a population or projection name, so no name a
  user chose becomes part of a member name;
* per projection ``e<i>_sources``, ``e<i>_targets`` (int), ``e<i>_weights`` (pA), ``e<i>_delays`` (ms) and, if set,
  ``e<i>_receptors``, ``e<i>_plastic``, ``e<i>_nonneg``;
* per population with per-neuron parameters one array per parameter whose values are numbers of one kind
  (``p<i>_k<j>``: bool, int64 or float64, as written); other per-neuron values (spike trains, lists, strings,
  parameters only some neurons have) are kept in the JSON document; positions ``pos<i>`` [size, 3] um.

Reading checks the archive, the document and every array before a :class:`NetworkSpec` is made of them, then
validates the spec; anything wrong raises :class:`~nestgrad.errors.SpecError` (or the error class the caller
passes, e.g. ``CheckpointError``) naming the file and the field. Numbers come back with the type they were
written with (Python ``int``/``float``/``bool``); NumPy arrays inside parameter dictionaries come back as lists.

This module imports NumPy and nestgrad's spec and errors only.
"""

from __future__ import annotations

import io
import json
import math
import os
import pathlib
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nestgrad.errors import NestgradError, SpecError
from nestgrad.spec import NetworkSpec, Population, Projection, Role, SynapseKind

# model parameters whose NEST defaults are infinite, the only ones that may be (as nestgrad.config's)
INFINITE_PARAMETERS = frozenset({"V_min", "eprop_isi_trace_cutoff", "flush_event_send_interval"})
FORMAT = "nestgrad.spec"
FORMAT_VERSION = 1
_EDGE_ARRAYS = ("sources", "targets", "weights", "delays", "receptors", "plastic", "nonneg")
_EDGE_KINDS = {"sources": "iu", "targets": "iu", "weights": "f", "delays": "f", "receptors": "iu", "plastic": "b",
               "nonneg": "b"}  # fmt: skip


@dataclass
class SpecFile:
    """What a spec file holds: the spec, named data arrays and a free ``meta`` table (JSON values)."""

    spec: NetworkSpec
    data: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


# -- writing -----------------------------------------------------------------------------------------------------------
def _plain(x: Any) -> Any:
    """JSON-ready copy: NumPy scalars and arrays become Python numbers and lists."""
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    return x


def scalar_kind(values: list[Any]) -> str | None:
    """'b', 'i' or 'f' if every value is a number of that one kind (NumPy scalars included), else None."""
    kinds = set()
    for v in values:
        if isinstance(v, bool | np.bool_):
            kinds.add("b")
        elif isinstance(v, int | np.integer):
            kinds.add("i")
        elif isinstance(v, float | np.floating):
            kinds.add("f")
        else:
            return None
    return kinds.pop() if len(kinds) == 1 else None


def _per_neuron(i: int, params: list[dict[str, Any]], arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    keys: list[str] = []
    for p in params:
        keys += [k for k in p if k not in keys]
    columns: dict[str, Any] = {}
    for j, key in enumerate(keys):
        present = [key in p for p in params]
        values = [p.get(key) for p in params]
        kind = scalar_kind(values) if all(present) else None
        if kind is not None:
            name = f"p{i}_k{j}"
            arrays[name] = np.asarray(values, dtype={"b": bool, "i": np.int64, "f": np.float64}[kind])
            columns[key] = {"array": name}
        else:
            missing = [n for n, here in enumerate(present) if not here]
            columns[key] = {"json": [_plain(v) for v in values], "missing": missing}
    return columns


def spec_bytes(spec: NetworkSpec, data: Mapping[str, np.ndarray] | None = None, meta: Mapping | None = None) -> bytes:
    """The content of a spec file (see the module docstring); the spec is validated first."""
    spec.validate()
    arrays: dict[str, np.ndarray] = {}
    pops = []
    for i, pop in enumerate(spec.populations.values()):
        entry: dict[str, Any] = {"name": pop.name, "model": pop.model, "size": int(pop.size), "role": str(pop.role)}
        if isinstance(pop.params, list):
            entry["per_neuron"] = _per_neuron(i, pop.params, arrays)
        else:
            entry["params"] = _plain(pop.params)
        if pop.positions is not None:
            arrays[f"pos{i}"] = np.asarray(pop.positions, np.float64)
            entry["positions"] = f"pos{i}"
        pops.append(entry)
    projs = []
    for i, (name, proj) in enumerate(spec.projections.items()):
        entry = {
            "name": name, "source": proj.source, "target": proj.target, "synapse_model": proj.synapse_model,
            "learning_rate": proj.learning_rate, "kind": str(proj.kind), "static_synapse": proj.static_synapse,
            "synapse_params": _plain(proj.synapse_params), "arrays": {},
        }  # fmt: skip
        for key in _EDGE_ARRAYS:
            value = getattr(proj, key)
            if value is not None:
                arr = np.asarray(value)
                arr = arr.astype(bool) if _EDGE_KINDS[key] == "b" else arr
                arr = arr.astype(np.float64) if _EDGE_KINDS[key] == "f" else arr
                arrays[f"e{i}_{key}"] = arr
                entry["arrays"][key] = f"e{i}_{key}"
        projs.append(entry)
    recorded = None
    if spec.recorded is not None:
        arrays["recorded"] = np.asarray(spec.recorded[1], np.int64)
        recorded = {"population": spec.recorded[0], "indices": "recorded"}
    data_names = {}
    for j, (name, arr) in enumerate((data or {}).items()):
        arrays[f"d{j}"] = np.asarray(arr)
        data_names[str(name)] = f"d{j}"
    doc = {
        "format": FORMAT, "version": FORMAT_VERSION, "resolution": float(spec.resolution),
        "optimizer": _plain(spec.optimizer), "populations": pops, "projections": projs, "recorded": recorded,
        "data": data_names, "meta": _plain(dict(meta or {})),
    }  # fmt: skip
    buffer = io.BytesIO()
    np.savez(buffer, spec_json=np.array(json.dumps(doc)), **arrays)
    return buffer.getvalue()


def save_spec(
    path: str | pathlib.Path,
    spec: NetworkSpec,
    data: Mapping[str, np.ndarray] | None = None,
    meta: Mapping | None = None,
) -> pathlib.Path:
    """Write ``spec`` (and ``data``, ``meta``) to ``path`` atomically (a temporary file in the same folder, then
    renamed): a failure leaves any previous file whole. Returns ``path``."""
    path = pathlib.Path(path)
    content = spec_bytes(spec, data, meta)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent if str(path.parent) else ".")
    umask = os.umask(0)  # mkstemp makes the file private; give it the permissions a plain open() would
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise
    return path


# -- reading -----------------------------------------------------------------------------------------------------------
def read_document(path: pathlib.Path, error: type[NestgradError] = SpecError) -> tuple[dict, dict[str, np.ndarray]]:
    """The JSON document (not yet checked) and arrays of an ``.npz`` file with a ``spec_json`` member."""
    if not path.exists():
        raise error(f"{path}: no such file")
    if not path.is_file():
        raise error(f"{path}: not a file")
    try:
        with np.load(path, allow_pickle=False) as data:
            if not isinstance(data, Mapping):
                raise error(f"{path}: not a nestgrad network file (a single array, not an .npz archive)")
            arrays = {k: data[k] for k in data.files}
    except NestgradError:
        raise
    except Exception as err:  # noqa: BLE001 (zipfile, zlib and NumPy's header parser raise many kinds)
        raise error(f"{path}: cannot be read (truncated or not a network file): {type(err).__name__}: {err}") from None
    raw = arrays.pop("spec_json", None)
    if raw is None:
        raise error(f"{path}: field 'spec_json' is missing (not a nestgrad network file)")
    if raw.shape != () or raw.dtype.kind not in "US":
        raise error(f"{path}: field 'spec_json' must be a JSON string, found {raw.dtype} of shape {raw.shape}")
    try:
        doc = json.loads(str(raw))
    except (ValueError, RecursionError) as err:
        raise error(f"{path}: field 'spec_json' is not valid JSON: {err}") from None
    if not isinstance(doc, dict):
        raise error(f"{path}: field 'spec_json' must be a JSON object, found {type(doc).__name__}")
    return doc, arrays


def is_spec_document(doc: Mapping[str, Any]) -> bool:
    return doc.get("format") == FORMAT


class _Reader:
    """Checked access to the document and arrays of one file; errors name the file and the field."""

    def __init__(self, path: pathlib.Path, arrays: dict[str, np.ndarray], error: type[NestgradError]) -> None:
        self.path, self.arrays, self.error, self.used = path, arrays, error, set()

    def fail(self, where: str, message: str) -> NestgradError:
        return self.error(f"{self.path}: field '{where}': {message}")

    def get(self, obj: Any, key: str, where: str, kind: type | tuple[type, ...], optional: bool = False) -> Any:
        if not isinstance(obj, dict):
            raise self.fail(where, f"a table is required, found {type(obj).__name__}")
        if key not in obj:
            if optional:
                return None
            raise self.fail(f"{where}.{key}".lstrip("."), "missing")
        value = obj[key]
        if optional and value is None:
            return None
        bad_bool = isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,))
        if not isinstance(value, kind) or bad_bool:
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise self.fail(f"{where}.{key}".lstrip("."), f"{value!r}: {names} required")
        return value

    def array(self, name: Any, where: str, kinds: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
        if not isinstance(name, str) or name not in self.arrays:
            raise self.fail(where, f"array {name!r} is missing from the archive")
        arr = self.arrays[name]
        self.used.add(name)
        if arr.dtype.kind not in kinds:
            raise self.fail(where, f"array {name!r} holds {arr.dtype}, expected {'/'.join(kinds)} numbers")
        if shape is not None and arr.shape != shape:
            raise self.fail(where, f"array {name!r} has shape {arr.shape}, expected {shape}")
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise self.fail(where, f"array {name!r}: {int(np.sum(~np.isfinite(arr)))} values are NaN or infinite")
        return arr


def _params(r: _Reader, entry: dict, where: str, size: int) -> dict[str, Any] | list[dict[str, Any]]:
    if "per_neuron" not in entry:
        return dict(r.get(entry, "params", where, dict))
    columns = r.get(entry, "per_neuron", where, dict)
    out: list[dict[str, Any]] = [{} for _ in range(size)]
    for key, col in columns.items():
        w = f"{where}.per_neuron.{key}"
        if not isinstance(col, dict) or ("array" in col) == ("json" in col):
            raise r.fail(w, "a table with 'array' or 'json' is required")
        if "array" in col:
            values = r.array(col["array"], w, "biuf", (size,)).tolist()
            missing: set[int] = set()
        else:
            values = r.get(col, "json", w, list)
            missing_list = r.get(col, "missing", w, list)
            if len(values) != size:
                raise r.fail(w, f"{len(values)} values for {size} neurons")
            if not all(isinstance(m, int) and not isinstance(m, bool) and 0 <= m < size for m in missing_list):
                raise r.fail(f"{w}.missing", f"indices in [0, {size}) are required")
            missing = set(missing_list)
        for n, v in enumerate(values):
            if n not in missing:
                out[n][key] = v
    return out


def check_params(path: Any, label: str, params: Any, error: type[NestgradError] = SpecError) -> None:
    """Model parameters read from a file: a table; numbers finite (but those of ``INFINITE_PARAMETERS``, which may
    be infinite, never NaN); time constants (tau_*) and C_m > 0; t_ref >= 0. A NaN or infinite parameter would run
    and print tables of NaN."""
    if not isinstance(params, dict):
        raise error(f"{path}: field '{label}' must be a table of parameters, found {type(params).__name__}")
    for name, value in params.items():
        for v in value if isinstance(value, list) else [value]:
            if not isinstance(v, int | float) or isinstance(v, bool):
                continue
            if not math.isfinite(v) and (name not in INFINITE_PARAMETERS or math.isnan(v)):
                raise error(f"{path}: field '{label}.{name}' = {value!r}: a finite number is required")
            if (name.startswith("tau_") or name == "C_m") and v <= 0:
                raise error(f"{path}: field '{label}.{name}' = {value!r}: a time constant must be > 0")
            if name.startswith("t_ref") and v < 0:
                raise error(f"{path}: field '{label}.{name}' = {value!r}: must be >= 0 ms")


def _population(r: _Reader, entry: Any, where: str) -> Population:
    name = r.get(entry, "name", where, str)
    model = r.get(entry, "model", where, str)
    size = r.get(entry, "size", where, int)
    if size < 1:
        raise r.fail(f"{where}.size", f"{size}: an integer >= 1 is required")
    role_text = r.get(entry, "role", where, str)
    try:
        role = Role(role_text)
    except ValueError:
        raise r.fail(f"{where}.role", f"{role_text!r} is not one of {[x.value for x in Role]}") from None
    params = _params(r, entry, where, size)
    for n, p in enumerate(params if isinstance(params, list) else [params]):
        check_params(r.path, f"{where}.params" + (f"[{n}]" if isinstance(params, list) else ""), p, r.error)
    positions = None
    if entry.get("positions") is not None:
        positions = r.array(entry["positions"], f"{where}.positions", "f", (size, 3))
    return Population(name, model, size, params, role, positions)


def _projection(r: _Reader, entry: Any, where: str) -> tuple[str, Projection]:
    name = r.get(entry, "name", where, str)
    names = r.get(entry, "arrays", where, dict)
    arrays: dict[str, np.ndarray | None] = {}
    n = None
    for key in _EDGE_ARRAYS:
        if key not in names:
            if key in ("sources", "targets", "weights", "delays"):
                raise r.fail(f"{where}.arrays.{key}", "missing")
            arrays[key] = None
            continue
        arr = r.array(names[key], f"{where}.arrays.{key}", _EDGE_KINDS[key])
        if arr.ndim != 1 or (n is not None and arr.shape[0] != n):
            raise r.fail(f"{where}.arrays.{key}", f"shape {arr.shape}, expected ({n if n is not None else 'edges'},)")
        n = arr.shape[0]
        arrays[key] = arr
    kind_text = r.get(entry, "kind", where, str)
    try:
        kind = SynapseKind(kind_text)
    except ValueError:
        raise r.fail(f"{where}.kind", f"{kind_text!r} is not one of {[x.value for x in SynapseKind]}") from None
    rate = r.get(entry, "learning_rate", where, (int, float), optional=True)
    if rate is not None and not math.isfinite(rate):
        raise r.fail(f"{where}.learning_rate", f"{rate!r}: a finite number is required")
    proj = Projection(
        r.get(entry, "source", where, str), r.get(entry, "target", where, str), arrays["sources"], arrays["targets"],
        arrays["weights"], arrays["delays"], arrays["receptors"], arrays["plastic"], arrays["nonneg"],
        r.get(entry, "synapse_model", where, str), rate, kind, r.get(entry, "static_synapse", where, str),
        dict(r.get(entry, "synapse_params", where, dict)),
    )  # fmt: skip
    return name, proj


def load_spec(path: str | pathlib.Path, error: type[NestgradError] = SpecError) -> SpecFile:
    """Read and check a spec file (see the module docstring); ``error`` is the class raised for a damaged file."""
    path = pathlib.Path(path)
    doc, arrays = read_document(path, error)
    r = _Reader(path, arrays, error)
    if not is_spec_document(doc):
        raise r.fail("format", f"{doc.get('format')!r}: not a nestgrad spec file (expected {FORMAT!r})")
    version = doc.get("version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise r.fail("version", f"{version!r} is not supported (this nestgrad reads version {FORMAT_VERSION})")
    resolution = r.get(doc, "resolution", "", (int, float))
    if not (math.isfinite(resolution) and resolution > 0):
        raise r.fail("resolution", f"{resolution!r}: a finite number of ms > 0 is required")
    spec = NetworkSpec(resolution=float(resolution), optimizer=dict(r.get(doc, "optimizer", "", dict)))
    try:
        for i, entry in enumerate(r.get(doc, "populations", "", list)):
            spec.add_population(_population(r, entry, f"populations[{i}]"))
        for i, entry in enumerate(r.get(doc, "projections", "", list)):
            spec.add_projection(*_projection(r, entry, f"projections[{i}]"))
    except SpecError as err:
        if error is SpecError and str(err).startswith(str(path)):
            raise
        raise error(f"{path}: {err}") from None
    recorded = r.get(doc, "recorded", "", dict, optional=True)
    if recorded is not None:
        spec.recorded = (r.get(recorded, "population", "recorded", str), r.array(recorded.get("indices"),
                         "recorded.indices", "iu"))  # fmt: skip
    data = {}
    for name, member in r.get(doc, "data", "", dict).items():
        data[name] = r.array(member, f"data.{name}", "biuf")
    meta = r.get(doc, "meta", "", dict)
    unused = sorted(set(arrays) - r.used)
    if unused:
        raise r.fail(unused[0], "array not referred to by the document (not written by nestgrad)")
    try:
        spec.validate()
    except SpecError as err:
        raise error(f"{path}: {err}") from None
    return SpecFile(spec, data, meta)


# -- comparing ---------------------------------------------------------------------------------------------------------
def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray | list | tuple) or isinstance(b, np.ndarray | list | tuple):
        try:
            return np.array_equal(np.asarray(a), np.asarray(b))
        except (TypeError, ValueError):
            return False
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


def neuron_params(pop: Population) -> list[dict[str, Any]]:
    """The parameters of every neuron of ``pop`` (one dictionary each, also when the spec holds one for all)."""
    return list(pop.params) if isinstance(pop.params, list) else [dict(pop.params)] * pop.size


def spec_differences(a: NetworkSpec, b: NetworkSpec) -> list[str]:
    """What differs between two specs (empty if they describe the same network): resolution, optimizer, recorded
    neurons, populations in order (model, size, role, each neuron's parameters, positions) and projections in order
    (ends, edges, weights, delays, receptors, plastic flags, signs, synapse models, learning rates, kinds)."""
    out = []
    if a.resolution != b.resolution:
        out.append(f"resolution {a.resolution} != {b.resolution}")
    if not _same(a.optimizer, b.optimizer):
        out.append(f"optimizer {a.optimizer} != {b.optimizer}")
    if list(a.populations) != list(b.populations):
        out.append(f"populations {list(a.populations)} != {list(b.populations)}")
    for name in set(a.populations) & set(b.populations):
        pa, pb = a.populations[name], b.populations[name]
        for key in ("model", "size", "role"):
            if getattr(pa, key) != getattr(pb, key):
                out.append(f"population {name!r}: {key} {getattr(pa, key)!r} != {getattr(pb, key)!r}")
        if pa.size == pb.size:
            for n, (x, y) in enumerate(zip(neuron_params(pa), neuron_params(pb), strict=True)):
                if not _same(x, y):
                    out.append(f"population {name!r}: neuron {n} parameters {x} != {y}")
                    break
        if (pa.positions is None) != (pb.positions is None) or (
            pa.positions is not None and not np.array_equal(pa.positions, pb.positions)
        ):
            out.append(f"population {name!r}: positions differ")
    if list(a.projections) != list(b.projections):
        out.append(f"projections {list(a.projections)} != {list(b.projections)}")
    for name in set(a.projections) & set(b.projections):
        pa, pb = a.projections[name], b.projections[name]
        for key in ("source", "target", "synapse_model", "learning_rate", "kind", "static_synapse"):
            if getattr(pa, key) != getattr(pb, key):
                out.append(f"projection {name!r}: {key} {getattr(pa, key)!r} != {getattr(pb, key)!r}")
        if not _same(pa.synapse_params, pb.synapse_params):
            out.append(f"projection {name!r}: synapse_params {pa.synapse_params} != {pb.synapse_params}")
        for key in _EDGE_ARRAYS:
            x, y = getattr(pa, key), getattr(pb, key)
            if (x is None) != (y is None) or (x is not None and not np.array_equal(np.asarray(x), np.asarray(y))):
                out.append(f"projection {name!r}: {key} differ")
    ra, rb = a.recorded, b.recorded
    if (ra is None) != (rb is None) or (ra is not None and (ra[0] != rb[0] or not np.array_equal(ra[1], rb[1]))):
        out.append("recorded neurons differ")
    return out


__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "INFINITE_PARAMETERS",
    "SpecFile",
    "check_params",
    "load_spec",
    "neuron_params",
    "save_spec",
    "spec_bytes",
    "spec_differences",
]

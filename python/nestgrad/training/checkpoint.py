"""Checkpoints: the state a block of training iterations starts from, on disk.

A checkpoint is a NumPy ``.npz`` archive (never pickled) with

* ``meta``: a JSON document ``{"format": 1, "iteration": int, "config": {...}, "history": [...],
  "virtual_processes": int}``;
* ``w_<projection>``: the weights, one array per projection (pA);
* ``opt_<name>``: the optimizer's state (Adam's moments ``m_<projection>``, ``v_<projection>`` and, where the
  synapses keep them, the bias-correction powers beta_1^t, beta_2^t ``b1_<projection>``, ``b2_<projection>``), if
  any. Checkpoints without the powers (written before they were kept) still load: Adam's bias correction then
  restarts at t = 0.
* ``avg_<projection>``: with weight averaging (``training.average_weights_last``), the mean of the weights at the
  checkpoints averaged so far; ``meta.average = {"after_iteration": int, "count": int}`` says which: the ``count``
  checkpoints written after iteration ``after_iteration`` (this one included).

Reading checks everything before a run resumes: a truncated or foreign file, a missing or mistyped ``meta`` key, an
``iteration`` that disagrees with the history, missing or misshaped arrays and non-finite values each raise a
:class:`~nestgrad.errors.CheckpointError` that names the file and the field. Writing goes through
:func:`nestgrad.run_folder.atomic_write` (unique temporary file, fsync, rename): a crash or a full disk leaves the
previous checkpoint whole.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import pathlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nestgrad.config import ExperimentConfig
from nestgrad.errors import CheckpointError, NestgradError
from nestgrad.run_folder import atomic_write

CHECKPOINT_NAME = "checkpoint.npz"
FORMAT_VERSION = 1


@dataclass
class TrainingState:
    """Everything a block of iterations starts from."""

    iteration: int  # iterations completed
    weights: dict[str, np.ndarray]
    optimizer_state: dict[str, np.ndarray] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    virtual_processes: int = 1  # of the run that wrote the state (ranks x threads)
    # weight averaging: the mean of the weights at the ``averaged_count`` checkpoints after ``averaged_after``
    averaged_weights: dict[str, np.ndarray] = field(default_factory=dict)
    averaged_after: int = 0
    averaged_count: int = 0

    def update_average(self, after: int) -> bool:
        """Add the current weights to the running mean if this checkpoint's iteration lies after ``after``. A mean
        over another window (a resumed run whose ``training.iterations`` changed) is dropped at once, so that it is
        never taken for the trained network, and starts again in the new window: returns True then."""
        restarted = self.averaged_count > 0 and self.averaged_after != after
        if self.averaged_after != after:
            self.averaged_weights, self.averaged_after, self.averaged_count = {}, after, 0
        if self.iteration <= after:
            return restarted
        self.averaged_count += 1
        n = self.averaged_count
        # the running mean in float64, the same operations on every rank and in a resumed run: bit-identical
        self.averaged_weights = {
            k: w.copy() if n == 1 else self.averaged_weights[k] + (w - self.averaged_weights[k]) / n
            for k, w in self.weights.items()
        }
        return restarted

    @property
    def trained_weights(self) -> dict[str, np.ndarray]:
        """The network training produced: the averaged weights if there are any, else the last ones."""
        return self.averaged_weights if self.averaged_count else self.weights

    def describe_weights(self, last: bool = False) -> str:
        """What :attr:`trained_weights` are (``last``: what :attr:`weights` are)."""
        if last or not self.averaged_count:
            return f"weights of iteration {self.iteration}"
        return (
            f"mean of the weights at {self.averaged_count} checkpoint(s) after iteration {self.averaged_after} "
            f"(up to iteration {self.iteration})"
        )


def checkpoint_bytes(config: ExperimentConfig, state: TrainingState) -> bytes:
    """The checkpoint file's content (an uncompressed ``.npz``)."""
    arrays = {f"w_{k}": v for k, v in state.weights.items()} | {f"opt_{k}": v for k, v in state.optimizer_state.items()}
    arrays |= {f"avg_{k}": v for k, v in state.averaged_weights.items()} if state.averaged_count else {}
    meta = {
        "iteration": state.iteration,
        "config": config.to_dict(),
        "history": state.history,
        "format": FORMAT_VERSION,
        "virtual_processes": state.virtual_processes,
    }
    if state.averaged_count:
        meta["average"] = {"after_iteration": state.averaged_after, "count": state.averaged_count}
    buffer = io.BytesIO()
    np.savez(buffer, meta=np.array(json.dumps(meta)), **arrays)
    return buffer.getvalue()


def save_checkpoint(path: pathlib.Path, config: ExperimentConfig, state: TrainingState) -> None:
    """Write atomically: a crash or a failing disk while writing leaves the previous checkpoint intact; a disk error
    raises :class:`~nestgrad.errors.OutputError`."""
    atomic_write(pathlib.Path(path), checkpoint_bytes(config, state))


def _fail(path: pathlib.Path, fieldname: str, message: str) -> CheckpointError:
    return CheckpointError(f"checkpoint {path}: field '{fieldname}': {message}")


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _read_archive(path: pathlib.Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The ``meta`` document and the arrays of a checkpoint file, or a CheckpointError naming what is wrong."""
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} is not a file")
    try:
        with np.load(path, allow_pickle=False) as data:
            if not isinstance(data, Mapping):
                raise CheckpointError(f"checkpoint {path} is not an .npz archive (a single array?)")
            if "meta" not in data.files:
                raise _fail(path, "meta", "missing (not a nestgrad checkpoint?)")
            arrays = {k: data[k] for k in data.files}
    except CheckpointError:
        raise
    except Exception as err:  # noqa: BLE001
        # truncated, damaged or foreign files: np.load, zipfile, zlib and NumPy's header parser raise many kinds
        raise CheckpointError(
            f"checkpoint {path} cannot be read (truncated or not a checkpoint): {type(err).__name__}: {err}"
        ) from None
    raw = arrays.pop("meta")
    if raw.shape != () or raw.dtype.kind not in "US":
        raise _fail(path, "meta", f"a JSON string is required, found an array of {raw.dtype} with shape {raw.shape}")
    try:
        meta = json.loads(str(raw))
    except (ValueError, RecursionError) as err:
        raise _fail(path, "meta", f"not valid JSON: {err}") from None
    if not isinstance(meta, dict):
        raise _fail(path, "meta", f"a JSON object is required, found {type(meta).__name__}")
    return meta, arrays


def _check_meta(path: pathlib.Path, meta: dict[str, Any]) -> None:
    """Types and consistency of the ``meta`` keys."""
    for key in ("format", "iteration", "config", "history"):
        if key not in meta:
            raise _fail(path, f"meta.{key}", "missing")
    if meta["format"] != FORMAT_VERSION or not _is_int(meta["format"]):
        raise _fail(path, "meta.format", f"{meta['format']!r} is not supported (this nestgrad reads {FORMAT_VERSION})")
    iteration = meta["iteration"]
    if not _is_int(iteration) or iteration < 0:
        raise _fail(path, "meta.iteration", f"{iteration!r}: an integer >= 0 is required")
    if not isinstance(meta["config"], dict):
        raise _fail(path, "meta.config", "a table (the run's configuration) is required")
    history = meta["history"]
    if not isinstance(history, list):
        raise _fail(path, "meta.history", "a list of per-iteration metrics is required")
    if len(history) != iteration:
        raise _fail(
            path, "meta.iteration", f"{iteration} disagrees with meta.history, which holds {len(history)} iterations"
        )
    for k, row in enumerate(history):
        if not isinstance(row, dict):
            raise _fail(path, f"meta.history[{k}]", "a table of metrics is required")
        if row.get("iteration") != k + 1 or not _is_int(row.get("iteration")):
            raise _fail(path, f"meta.history[{k}].iteration", f"{row.get('iteration')!r}, expected {k + 1}")
        for name in ("loss", "rate_hz"):
            value = row.get(name)
            if not (isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)):
                raise _fail(path, f"meta.history[{k}].{name}", f"{value!r}: a finite number is required")
    vp = meta.get("virtual_processes", 1)
    if not _is_int(vp) or vp < 1:
        raise _fail(path, "meta.virtual_processes", f"{vp!r}: an integer >= 1 is required")
    if "average" in meta:
        average = meta["average"]
        if not isinstance(average, dict) or set(average) != {"after_iteration", "count"}:
            raise _fail(path, "meta.average", f"{average!r}: a table with after_iteration and count is required")
        after, count = average["after_iteration"], average["count"]
        if not (_is_int(after) and 0 <= after < iteration):
            raise _fail(path, "meta.average.after_iteration", f"{after!r}: an integer in 0 ... {iteration - 1}")
        if not (_is_int(count) and 1 <= count <= iteration - after):
            raise _fail(path, "meta.average.count", f"{count!r}: an integer in 1 ... {iteration - after}")


def _check_arrays(
    path: pathlib.Path,
    arrays: dict[str, np.ndarray],
    expected: Mapping[str, tuple[int, ...]] | None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    weights = {k[2:]: v for k, v in arrays.items() if k.startswith("w_")}
    opt = {k[4:]: v for k, v in arrays.items() if k.startswith("opt_")}
    averaged = {k[4:]: v for k, v in arrays.items() if k.startswith("avg_")}
    unknown = sorted(k for k in arrays if not k.startswith(("w_", "opt_", "avg_")))
    if unknown:
        raise _fail(path, unknown[0], "unknown array (not written by nestgrad)")
    for prefix, group in (("w_", weights), ("opt_", opt), ("avg_", averaged)):
        for name, arr in group.items():
            if arr.dtype.kind not in "fiu":
                raise _fail(path, prefix + name, f"numbers are required, found {arr.dtype}")
            if not np.all(np.isfinite(arr)):
                bad = int(np.sum(~np.isfinite(arr)))
                raise _fail(path, prefix + name, f"{bad} of {arr.size} values are NaN or infinite")
    for name, arr in opt.items():
        power, _, projection = name.partition("_")
        if power not in ("b1", "b2"):
            continue
        other = f"{'b2' if power == 'b1' else 'b1'}_{projection}"
        if other not in opt:
            raise _fail(path, f"opt_{other}", f"missing: Adam's bias-correction powers come in pairs (opt_{name} is)")
        if arr.size and not (arr.min() > 0.0 and arr.max() <= 1.0):
            raise _fail(path, f"opt_{name}", f"values span [{arr.min():.4g}, {arr.max():.4g}]: Adam's bias-correction "
                        "power beta^t must lie in (0, 1]")  # fmt: skip
    if expected is not None:
        for name, shape in expected.items():
            if name not in weights:
                raise _fail(path, f"w_{name}", "missing")
            if weights[name].shape != tuple(shape):
                raise _fail(path, f"w_{name}", f"shape {weights[name].shape}, expected {tuple(shape)}")
        extra = sorted(set(weights) - set(expected))
        if extra:
            raise _fail(path, f"w_{extra[0]}", "this network has no such projection")
        for name, arr in opt.items():
            projection = name.split("_", 1)[1] if "_" in name else ""
            if projection not in expected or arr.shape != tuple(expected[projection]):
                want = tuple(expected[projection]) if projection in expected else "a projection's moments"
                raise _fail(path, f"opt_{name}", f"shape {arr.shape}, expected {want}")
    if averaged and set(averaged) != set(weights):
        name = sorted(set(averaged) ^ set(weights))[0]
        raise _fail(path, f"avg_{name}", "the averaged weights must cover the same projections as the weights")
    for name, arr in averaged.items():
        if arr.shape != weights[name].shape:
            raise _fail(path, f"avg_{name}", f"shape {arr.shape}, expected {weights[name].shape} (as w_{name})")

    def floats(group: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: np.asarray(v, float) for k, v in group.items()}

    return floats(weights), floats(opt), floats(averaged)


def load_checkpoint(
    path: pathlib.Path,
    config: ExperimentConfig,
    expected_shapes: Mapping[str, tuple[int, ...]] | None = None,
) -> TrainingState:
    """Read and check a checkpoint written for ``config``.

    ``expected_shapes`` (projection -> shape of its weights) also checks that every projection is there with its
    shape. Raises :class:`~nestgrad.errors.CheckpointError` naming the file and the field for anything that would
    not resume the same run.
    """
    path = pathlib.Path(path)
    meta, arrays = _read_archive(path)
    _check_meta(path, meta)
    try:
        saved = ExperimentConfig.from_dict(meta["config"], source=f"{path} (saved configuration)")
    except NestgradError as err:
        raise _fail(path, "meta.config", str(err)) from None
    # everything but the number of iterations, threads, plotting and the divergence limit must match, or it would not
    # be the same run; threads (and MPI ranks) may change: the results depend on the number of virtual processes only
    relevant = dataclasses.replace(
        config,
        training=dataclasses.replace(
            config.training,
            iterations=saved.training.iterations,
            plot=saved.training.plot,
            threads=saved.training.threads,
            divergence_factor=saved.training.divergence_factor,
        ),
    )
    if relevant != saved:
        diffs = _config_diff(saved.to_dict(), relevant.to_dict())
        raise CheckpointError(f"checkpoint {path} was written with a different configuration: {', '.join(diffs)}")
    weights, opt, averaged = _check_arrays(path, arrays, expected_shapes)
    average = meta.get("average", {"after_iteration": 0, "count": 0})
    if bool(averaged) != bool(average["count"]):
        which = "meta.average" if averaged else "avg_*"
        raise _fail(path, which, "missing: the averaged weights and their meta.average come together")
    return TrainingState(
        meta["iteration"],
        weights,
        opt,
        meta["history"],
        meta.get("virtual_processes", 1),
        averaged,
        average["after_iteration"],
        average["count"],
    )


def _config_diff(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict) and key not in ("neuron_params", "readout_params"):
            out += _config_diff(va, vb, f"{prefix}{key}.")
        elif va != vb:
            out.append(f"{prefix}{key} (checkpoint {va!r}, now {vb!r})")
    return out

"""The exchange format: one network, runnable by NEST and by the reference engine.

A :class:`NetworkSpec` holds the classic e-prop network (inputs -> recurrent -> readouts) completely: the models
with *all* their parameters (NEST names and units, as NEST reports them), explicit connections (dense [post, pre]
matrices of weights plus boolean masks of which synapses exist; all delays one step, as NEST 3.10 requires),
the optimizer settings, and the data (input spikes, targets, learning window, per time step).

On disk it is a ``.npz`` file (arrays) with a JSON document inside (``spec_json``) holding everything else; see
docs/reference_engine.md for the field list.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nestgrad.errors import SpecError
from nestgrad.reference.neurons import RECURRENT_MODELS
from nestgrad.spec.io import check_params

PROJECTIONS = ("in_rec", "rec_rec", "rec_out")
# parameters whose value is a vector by nature (GLIF3's after-spike currents and receptor time constants)
VECTOR_PARAMETERS = frozenset({"asc_init", "asc_decay", "asc_amps", "asc_r", "tau_syn"})
FORMAT_VERSION = 1


@dataclass
class NetworkSpec:
    resolution: float  # ms
    rec_model: str
    rec_params: dict[str, Any]
    readout_params: dict[str, Any]
    weights: dict[str, np.ndarray]  # in_rec [n_rec, n_in], rec_rec [n_rec, n_rec], rec_out [n_out, n_rec], feedback
    masks: dict[str, np.ndarray]  # same keys (not feedback): which synapses exist
    optimizer: dict[str, Any]
    input_spikes: np.ndarray  # bool [steps, n_in]
    target: np.ndarray  # [steps, n_out]
    window: np.ndarray  # [steps]
    iteration_steps: int  # data steps per iteration
    delays: dict[str, float] | None = None  # ms per projection; None: one step everywhere
    meta: dict[str, Any] = field(default_factory=dict)
    # how NEST computes the gradients ("step": eprop_synapse, "event": eprop_event_synapse); same mathematics, so
    # the reference engine ignores it
    gradient_algorithm: str = "step"

    def __post_init__(self) -> None:
        if self.delays is None:
            self.delays = {p: self.resolution for p in (*PROJECTIONS, "feedback")}

    @property
    def n_in(self) -> int:
        return self.input_spikes.shape[1]

    @property
    def n_rec(self) -> int:
        return self.weights["rec_rec"].shape[0]

    @property
    def n_out(self) -> int:
        return self.target.shape[1]

    @property
    def iterations(self) -> int:
        return self.input_spikes.shape[0] // self.iteration_steps

    def validate(self) -> None:
        """Check everything; errors (SpecError) name the field. The *_bsshslm_2020 models also need their kernel and
        synapse settings in ``meta['bsshslm']`` (see nestgrad.reference.online_bsshslm)."""
        from nestgrad.reference.online_bsshslm import BSSHSLM_MODELS, validate_bsshslm

        if self.rec_model in BSSHSLM_MODELS:
            validate_bsshslm(self)  # includes validate_common
            return
        if self.rec_model not in RECURRENT_MODELS:
            raise SpecError(
                f"rec_model = {self.rec_model!r} is not supported by the reference engine; supported: "
                f"{', '.join(sorted(RECURRENT_MODELS) + list(BSSHSLM_MODELS))}"
            )
        self.validate_common()

    def validate_common(self) -> None:
        """The checks that do not depend on the model: shapes, finiteness, delays, step counts."""
        if not (np.isfinite(self.resolution) and self.resolution > 0):
            raise SpecError(f"resolution = {self.resolution!r} must be > 0 ms")
        if self.gradient_algorithm not in ("step", "event"):
            raise SpecError(f"gradient_algorithm = {self.gradient_algorithm!r} must be 'step' or 'event'")
        n_in, n_rec, n_out = self.n_in, self.n_rec, self.n_out
        shapes = {
            "in_rec": (n_rec, n_in),
            "rec_rec": (n_rec, n_rec),
            "rec_out": (n_out, n_rec),
            "feedback": (n_rec, n_out),
        }
        for key, shape in shapes.items():
            if key not in self.weights:
                raise SpecError(f"weights: projection {key!r} is missing")
            w = np.asarray(self.weights[key])
            if w.shape != shape:
                raise SpecError(f"weights[{key!r}] has shape {w.shape}, expected {shape} [post, pre]")
            if not np.all(np.isfinite(w)):
                raise SpecError(f"weights[{key!r}] contains NaN or infinite values")
            if key != "feedback" and self.masks[key].shape != shape:
                raise SpecError(f"masks[{key!r}] has shape {self.masks[key].shape}, expected {shape}")
        for key, d in self.delays.items():
            if not np.isclose(d, self.resolution):
                raise SpecError(
                    f"delays[{key!r}] = {d} ms: e-prop connections need a delay of one step ({self.resolution} ms)"
                )
        if self.target.shape[0] != self.input_spikes.shape[0] or self.window.shape[0] != self.input_spikes.shape[0]:
            raise SpecError("input_spikes, target and window must have the same number of time steps")
        if self.iteration_steps < 1 or self.input_spikes.shape[0] % self.iteration_steps:
            raise SpecError(
                f"iteration_steps = {self.iteration_steps} must divide the number of steps {self.input_spikes.shape[0]}"
            )
        for name, arr in (("target", self.target), ("window", self.window)):
            if not np.all(np.isfinite(arr)):
                raise SpecError(f"{name} contains NaN or infinite values")
        for label, params in (("rec_params", self.rec_params), ("readout_params", self.readout_params)):
            for k, v in params.items():
                if isinstance(v, float) and np.isnan(v):
                    raise SpecError(f"{label}.{k} is NaN")
                # this format's models act with one value per parameter; per-neuron values (a list as long as the
                # population) would be applied along the wrong axis, so they are refused, not computed wrongly
                if isinstance(v, list | tuple | np.ndarray) and k not in VECTOR_PARAMETERS:
                    raise SpecError(
                        f"{label}.{k} has {len(v)} values: the classic engine takes one value per population "
                        f"({_short(v)} given; vector parameters: {', '.join(sorted(VECTOR_PARAMETERS))}); per-neuron "
                        "parameters are replayed by nestgrad.reference.spec_online (nestgrad.spec networks)"
                    )

    # -- files --------------------------------------------------------------------------------------------------
    def save(self, path: str | pathlib.Path) -> pathlib.Path:
        path = pathlib.Path(path)
        doc = {
            "format": FORMAT_VERSION,
            "resolution": self.resolution,
            "rec_model": self.rec_model,
            "rec_params": self.rec_params,
            "readout_params": self.readout_params,
            "optimizer": self.optimizer,
            "iteration_steps": self.iteration_steps,
            "delays": self.delays,
            "meta": self.meta,
            "gradient_algorithm": self.gradient_algorithm,
        }
        arrays = {f"w_{k}": v for k, v in self.weights.items()} | {f"mask_{k}": v for k, v in self.masks.items()}
        np.savez_compressed(
            path,
            spec_json=np.array(json.dumps(doc, default=_json_default)),
            input_spikes=self.input_spikes,
            target=self.target,
            window=self.window,
            **arrays,
        )
        return path

    @classmethod
    def load(cls, path: str | pathlib.Path) -> NetworkSpec:
        """Read and check a network file; anything wrong raises a SpecError naming the file and the field."""
        path = pathlib.Path(path)
        if path.is_dir():
            raise SpecError(f"{path}: a folder, not a network file")
        try:
            with np.load(path, allow_pickle=False) as data:
                if not isinstance(data, Mapping):
                    raise SpecError(f"{path}: not a nestgrad network file (a single array, not an .npz archive)")
                arrays = {k: data[k] for k in data.files}
            doc = json.loads(str(arrays.pop("spec_json")))
        except SpecError:
            raise
        except Exception as err:  # noqa: BLE001 (any failure to parse the archive means a damaged file)
            raise SpecError(f"{path}: not a nestgrad network file ({type(err).__name__}: {err})") from None
        if not isinstance(doc, dict):
            raise SpecError(f"{path}: field 'spec_json' must be a JSON object, found {type(doc).__name__}")
        if doc.get("format") != FORMAT_VERSION:
            raise SpecError(f"{path}: format {doc.get('format')!r} is not supported (expected {FORMAT_VERSION})")
        _check_document(path, doc, arrays)
        try:
            spec = cls(
                resolution=doc["resolution"],
                rec_model=doc["rec_model"],
                rec_params=doc["rec_params"],
                readout_params=doc["readout_params"],
                optimizer=doc["optimizer"],
                weights={k[2:]: v for k, v in arrays.items() if k.startswith("w_")},
                masks={k[5:]: v.astype(bool) for k, v in arrays.items() if k.startswith("mask_")},
                input_spikes=arrays["input_spikes"].astype(bool),
                target=arrays["target"],
                window=arrays["window"],
                iteration_steps=int(doc["iteration_steps"]),
                delays=doc["delays"],
                meta=doc.get("meta", {}),
                gradient_algorithm=doc.get("gradient_algorithm", "step"),
            )
        except KeyError as err:
            raise SpecError(f"{path}: field {err} is missing") from None
        try:
            spec.validate()
        except SpecError as err:
            raise SpecError(f"{path}: {err}") from None
        except (TypeError, ValueError, KeyError, IndexError, AttributeError) as err:
            # a field of a type the checks did not expect (the checks above name the common ones)
            raise SpecError(f"{path}: invalid content ({type(err).__name__}: {err})") from None
        return spec

    def replace(self, **changes: Any) -> NetworkSpec:
        return dataclasses.replace(self, **changes)


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _check_params(path: pathlib.Path, label: str, params: Any) -> None:
    """Model parameters (the spec files' check, :func:`nestgrad.spec.io.check_params`)."""
    check_params(path, label, params)


def _check_document(path: pathlib.Path, doc: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Types of the JSON fields and of the arrays of a network file, before a NetworkSpec is made of them."""
    for key in ("resolution", "rec_model", "rec_params", "readout_params", "optimizer", "iteration_steps", "delays"):
        if key not in doc:
            raise SpecError(f"{path}: field '{key}' is missing")
    res = doc["resolution"]
    if not _is_number(res) or not math.isfinite(res) or res <= 0:
        raise SpecError(f"{path}: field 'resolution' = {res!r}: a finite number of ms > 0 is required")
    if not isinstance(doc["rec_model"], str):
        raise SpecError(f"{path}: field 'rec_model' = {doc['rec_model']!r}: a model name is required")
    if not isinstance(doc.get("gradient_algorithm", "step"), str):
        raise SpecError(f"{path}: field 'gradient_algorithm' must be 'step' or 'event'")
    for label in ("rec_params", "readout_params"):
        _check_params(path, label, doc[label])
    opt = doc["optimizer"]
    if not isinstance(opt, dict):
        raise SpecError(f"{path}: field 'optimizer' must be a table")
    for name, value in opt.items():
        if _is_number(value) and not math.isfinite(value):
            raise SpecError(f"{path}: field 'optimizer.{name}' = {value!r}: a finite number is required")
    steps = doc["iteration_steps"]
    if not (isinstance(steps, int) and not isinstance(steps, bool)) or steps < 1:
        raise SpecError(f"{path}: field 'iteration_steps' = {steps!r}: an integer >= 1 is required")
    delays = doc["delays"]
    if delays is not None and (
        not isinstance(delays, dict) or not all(_is_number(v) and math.isfinite(v) for v in delays.values())
    ):
        raise SpecError(f"{path}: field 'delays' must be a table of finite delays in ms per projection")
    if not isinstance(doc.get("meta", {}), dict):
        raise SpecError(f"{path}: field 'meta' must be a table")
    dims = {"input_spikes": 2, "target": 2, "window": 1}
    for name in dims:
        if name not in arrays:
            raise SpecError(f"{path}: field '{name}' is missing")
    for name, arr in arrays.items():
        if arr.dtype.kind not in "biuf":
            raise SpecError(f"{path}: field '{name}' must hold numbers, found {arr.dtype}")
        if name in dims and arr.ndim != dims[name]:
            raise SpecError(f"{path}: field '{name}' has {arr.ndim} dimensions, expected {dims[name]}")
        if name.startswith(("w_", "mask_")) and arr.ndim != 2:
            raise SpecError(f"{path}: field '{name}' has shape {arr.shape}, expected a [post, pre] matrix")
    for projection in PROJECTIONS:
        if f"mask_{projection}" not in arrays:
            raise SpecError(f"{path}: field 'mask_{projection}' is missing")
    for projection in (*PROJECTIONS, "feedback"):
        if f"w_{projection}" not in arrays:
            raise SpecError(f"{path}: field 'w_{projection}' is missing")
    if arrays["input_spikes"].shape[0] == 0:
        raise SpecError(f"{path}: field 'input_spikes' has no time steps")


def _json_default(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"cannot store {type(x).__name__} in a network file")


def _short(value: list | tuple | np.ndarray) -> str:
    """The first values of a list for a message (any content: an edited file may hold anything)."""
    items = value.ravel().tolist() if isinstance(value, np.ndarray) else list(value)
    text = repr(items[:4])
    return text[:-1] + ", ...]" if len(items) > 4 else text

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
import pathlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nestgrad.errors import SpecError
from nestgrad.reference.neurons import RECURRENT_MODELS

PROJECTIONS = ("in_rec", "rec_rec", "rec_out")
# parameters that are lists by nature (one entry per receptor port or after-spike current), not per neuron
LIST_PARAMS = ("tau_syn", "asc_init", "asc_decay", "asc_amps", "asc_r")
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
                if np.ndim(v) != 0 and k not in LIST_PARAMS:
                    # this engine applies one value to the whole population; an array would broadcast along the
                    # wrong axis of its [post, pre] traces
                    raise SpecError(
                        f"{label}.{k} has {np.size(v)} values: the classic engine takes one value per population; "
                        "per-neuron parameters are replayed by nestgrad.reference.spec_online (nestgrad.spec networks)"
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
        path = pathlib.Path(path)
        try:
            with np.load(path) as data:
                doc = json.loads(str(data["spec_json"]))
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError, KeyError) as err:
            raise SpecError(f"{path}: not a nestgrad network file ({err})") from None
        if doc.get("format") != FORMAT_VERSION:
            raise SpecError(f"{path}: format {doc.get('format')!r} is not supported (expected {FORMAT_VERSION})")
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
        spec.validate()
        return spec

    def replace(self, **changes: Any) -> NetworkSpec:
        return dataclasses.replace(self, **changes)


def _json_default(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"cannot store {type(x).__name__} in a network file")

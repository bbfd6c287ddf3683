"""The exchange file: one network and its data, runnable by NEST and by the reference engine (`nestgrad compare
--network FILE`, written by `--save-network FILE`).

Since format 2 it is a spec file (:mod:`nestgrad.spec.io`): the :class:`nestgrad.spec.NetworkSpec` NEST builds
(the one wiring function), the data arrays ``input_spikes`` (bool [steps, n_in]), ``target`` ([steps, n_out]) and
``window`` ([steps]), and in ``meta`` the ``iteration_steps``, ``trial_steps`` and a description. The classic
network's file also keeps, in ``meta["classic"]``, what its dense reference engine reads beyond the spec (the
models' full parameter tables as NEST reported them, the optimizer table, per-projection delays,
``gradient_algorithm`` and the old ``meta``), so :func:`classic_view` gives back the dense
:class:`nestgrad.reference.spec.NetworkSpec` exactly.

The old format (format 1, :class:`nestgrad.reference.spec.NetworkSpec`: dense matrices of the classic network) is
still read; :func:`convert_file` (`nestgrad convert-network OLD NEW`) rewrites such a file in the new format.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nestgrad.config import NetworkConfig, OptimizerConfig
from nestgrad.errors import SpecError
from nestgrad.reference.spec import PROJECTIONS
from nestgrad.reference.spec import NetworkSpec as ClassicSpec
from nestgrad.spec import NetworkSpec
from nestgrad.spec.io import check_params, is_spec_document, load_spec, read_document, save_spec
from nestgrad.tasks import TrialBatch

DATA_KEYS = ("input_spikes", "target", "window")
BSSHSLM_SUFFIX = "_bsshslm_2020"


@dataclass
class Exchange:
    """A network in the exchange format: the spec, its data per step and a description."""

    spec: NetworkSpec
    input_spikes: np.ndarray  # bool [steps, n_in]
    target: np.ndarray  # [steps, n_out]
    window: np.ndarray  # [steps]
    iteration_steps: int
    trial_steps: int
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def iterations(self) -> int:
        return self.input_spikes.shape[0] // self.iteration_steps

    def batches(self) -> list[TrialBatch]:
        """The data as one :class:`TrialBatch` per iteration."""
        T = self.iteration_steps
        return [
            TrialBatch(self.input_spikes[k * T : (k + 1) * T], self.target[k * T : (k + 1) * T],
                       self.window[k * T : (k + 1) * T], self.trial_steps)
            for k in range(self.iterations)
        ]  # fmt: skip

    @property
    def is_classic(self) -> bool:
        return "classic" in self.meta


def from_batches(spec: NetworkSpec, batches: list[TrialBatch], meta: dict[str, Any] | None = None) -> Exchange:
    return Exchange(
        spec,
        np.concatenate([b.input_spikes for b in batches]).astype(bool),
        np.concatenate([b.target for b in batches]),
        np.concatenate([b.learning_window for b in batches]),
        batches[0].steps,
        batches[0].trial_steps,
        dict(meta or {}),
    )


def save(path: str | pathlib.Path, ex: Exchange) -> pathlib.Path:
    data = {"input_spikes": ex.input_spikes, "target": ex.target, "window": ex.window}
    meta = {**ex.meta, "iteration_steps": ex.iteration_steps, "trial_steps": ex.trial_steps}
    return save_spec(path, ex.spec, data, meta)


def _checked_data(path: pathlib.Path, data: dict[str, np.ndarray], meta: dict[str, Any]) -> tuple[int, int]:
    for key, ndim in zip(DATA_KEYS, (2, 2, 1), strict=True):
        if key not in data:
            raise SpecError(f"{path}: field 'data.{key}' is missing (not an exchange file?)")
        if data[key].ndim != ndim:
            raise SpecError(f"{path}: field 'data.{key}' has {data[key].ndim} dimensions, expected {ndim}")
    steps = data["input_spikes"].shape[0]
    if steps == 0 or data["target"].shape[0] != steps or data["window"].shape[0] != steps:
        raise SpecError(f"{path}: fields 'data.input_spikes', 'data.target', 'data.window' need the same number "
                        "(>= 1) of steps")  # fmt: skip
    out = []
    for key in ("iteration_steps", "trial_steps"):
        value = meta.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise SpecError(f"{path}: field 'meta.{key}' = {value!r}: an integer >= 1 is required")
        out.append(value)
    if steps % out[0]:
        raise SpecError(f"{path}: field 'meta.iteration_steps' = {out[0]} does not divide the {steps} data steps")
    return out[0], out[1]


def load(path: str | pathlib.Path) -> Exchange | ClassicSpec:
    """An exchange file: an :class:`Exchange` (format 2), or the old dense classic network (format 1) as it was.
    Anything wrong raises a SpecError naming the file and the field."""
    path = pathlib.Path(path)
    doc, _ = read_document(path)
    if not is_spec_document(doc):
        if "format" in doc and "rec_model" in doc:  # the old format of the classic network
            return ClassicSpec.load(path)
        raise SpecError(f"{path}: field 'format': {doc.get('format')!r}: neither a nestgrad spec file nor an old "
                        "classic network file")  # fmt: skip
    file = load_spec(path)
    meta = dict(file.meta)
    iteration_steps, trial_steps = _checked_data(path, file.data, meta)
    for key in ("iteration_steps", "trial_steps"):
        meta.pop(key)
    n_in = file.data["input_spikes"].shape[1]
    ex = Exchange(file.spec, file.data["input_spikes"].astype(bool), np.asarray(file.data["target"], float),
                  np.asarray(file.data["window"], float), iteration_steps, trial_steps, meta)  # fmt: skip
    _check_sizes(path, ex, n_in)
    if "classic" in meta:  # the dense view's own fields, checked as the old format checks them
        classic = meta["classic"]
        if not isinstance(classic, dict):
            raise SpecError(f"{path}: field 'meta.classic' must be a table")
        for label in ("rec_params", "readout_params", "optimizer"):
            check_params(path, f"meta.classic.{label}", classic.get(label))
        try:
            classic_view(ex).validate()
        except (SpecError, KeyError, TypeError, ValueError) as err:
            raise SpecError(f"{path}: field 'meta.classic': {err}") from None
    return ex


def _check_sizes(path: pathlib.Path, ex: Exchange, n_in: int) -> None:
    from nestgrad.spec import Role

    for role, width, key in ((Role.INPUT, n_in, "input_spikes"), (Role.READOUT, ex.target.shape[1], "target")):
        pop = ex.spec.population_with_role(role)
        if pop is not None and pop.size != width:
            raise SpecError(f"{path}: field 'data.{key}' has {width} columns, the {role.value} population "
                            f"{pop.name!r} {pop.size} neurons")  # fmt: skip


# -- the classic network -----------------------------------------------------------------------------------------------
def _classic_learner(old: ClassicSpec) -> Any:
    """The classic learner that builds ``old`` in NEST (as ``comparison.nest_runs.run_nest`` does)."""
    from nestgrad.networks.eprop_classic import EpropNetwork

    net_cfg = NetworkConfig(
        neuron_model=old.rec_model,
        n_rec=old.n_rec,
        neuron_params=old.rec_params,
        readout_params=old.readout_params,
        recurrent=bool(old.masks["rec_rec"].any()),
        gradient_algorithm=old.gradient_algorithm,
    )
    return EpropNetwork(net_cfg, OptimizerConfig(**old.optimizer), old.n_in, old.n_out, old.resolution)


def from_classic(old: ClassicSpec) -> Exchange:
    """The dense classic network as an exchange of the new format: the spec NEST builds of it (the classic learner's
    ``network_spec`` with the file's masks) and the fields the dense view needs in ``meta["classic"]``. Needs NEST
    (the learner asks it for the models' synapse models and receptor ports)."""
    import nest

    from nestgrad.module import install

    if old.rec_model.endswith(BSSHSLM_SUFFIX):
        raise SpecError(f"rec_model = {old.rec_model!r}: networks of the *{BSSHSLM_SUFFIX} models stay in the old "
                        "format (they are not built from a nestgrad.spec network yet)")  # fmt: skip
    old.validate()
    install()
    learner = _classic_learner(old)
    learner.validate(nest)
    learner.prepare(nest)
    learner._masks = {k: np.asarray(old.masks[k], bool) for k in PROJECTIONS}  # the file's synapses
    spec = learner.network_spec(dict(old.weights), record_neurons=0, plastic=True)
    classic = {
        "rec_params": old.rec_params, "readout_params": old.readout_params, "optimizer": old.optimizer,
        "delays": old.delays, "meta": old.meta, "gradient_algorithm": str(old.gradient_algorithm),
    }  # fmt: skip
    meta = {"classic": classic, "description": f"classic network, {old.rec_model}"}
    return Exchange(spec, old.input_spikes.astype(bool), old.target, old.window, old.iteration_steps,
                    int(old.meta.get("trial_steps", old.iteration_steps)), meta)  # fmt: skip


def classic_view(ex: Exchange) -> ClassicSpec:
    """The dense view of a classic network's exchange (for the classic reference engine): weights and masks from
    the spec's edges (so edited weights count), the rest from ``meta["classic"]``."""
    if not ex.is_classic:
        raise SpecError("exchange: not a classic network (meta.classic missing); compare it as a general spec")
    c = ex.meta["classic"]
    spec = ex.spec
    weights, masks = {}, {}
    for name in (*PROJECTIONS, "feedback"):
        if name not in spec.projections:
            raise SpecError(f"exchange: the classic network needs projection {name!r}")
        proj = spec.projections[name]
        shape = (spec.populations[proj.target].size, spec.populations[proj.source].size)
        w, m = np.zeros(shape), np.zeros(shape, bool)
        w[proj.targets, proj.sources] = proj.weights
        m[proj.targets, proj.sources] = True
        weights[name] = w
        if name != "feedback":
            masks[name] = m
    gradient_algorithm = c.get("gradient_algorithm", "step")
    return ClassicSpec(
        resolution=spec.resolution, rec_model=spec.populations["rec"].model, rec_params=c["rec_params"],
        readout_params=c["readout_params"], weights=weights, masks=masks, optimizer=c["optimizer"],
        input_spikes=ex.input_spikes, target=ex.target, window=ex.window, iteration_steps=ex.iteration_steps,
        delays=c.get("delays"), meta=c.get("meta", {}), gradient_algorithm=str(gradient_algorithm),
    )  # fmt: skip


def convert_file(old_path: str | pathlib.Path, new_path: str | pathlib.Path) -> pathlib.Path:
    """Rewrite an old-format (format 1) classic network file in the exchange format; SpecError if it is not one."""
    loaded = load(old_path)
    if isinstance(loaded, Exchange):
        raise SpecError(f"{old_path}: already in the exchange format (a nestgrad spec file)")
    return save(new_path, from_classic(loaded))


__all__ = ["Exchange", "classic_view", "convert_file", "from_batches", "from_classic", "load", "save"]

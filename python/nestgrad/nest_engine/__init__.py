"""The NEST engine: what every network needs to run in NEST, in one place.

* :func:`fresh_kernel`: a reset kernel with nestgrad's module loaded and the run's resolution, threads and seed;
* :func:`set_plastic_defaults`: the optimizer (and weight bounds) of an e-prop synapse model, and its sign-bounded
  copies for Dale's law (:func:`signed_model`);
* :mod:`nestgrad.nest_engine.devices`: generators for inputs, targets and learning windows, and the recorders the
  Trainer reads (:class:`~nestgrad.nest_engine.devices.Recordings`);
* :mod:`nestgrad.nest_engine.connections`: values of many connections read and written in bounded memory.
"""

from __future__ import annotations

from typing import Any

# Synapse models nestgrad's builders use (NEST's and nestgrad's).
EPROP_SYNAPSE = "eprop_synapse"
EVENT_SYNAPSE = "eprop_event_synapse"
VECTOR_SYNAPSE = "eprop_vector_synapse"  # neurons with more than two eligibility states or several receptor ports
STATIC_SYNAPSE = "static_synapse"
LEARNING_SIGNAL_CONNECTION = "eprop_learning_signal_connection"
# nestgrad's synapses keep Adam's moments as adam_m, adam_v and its bias-correction powers beta^t as adam_beta_1_power,
# adam_beta_2_power (NEST's eprop_synapse: optimizer.m, optimizer.v, and no powers: they restart in every kernel)
INLINE_OPTIMIZER_SYNAPSES = (EVENT_SYNAPSE, VECTOR_SYNAPSE)
SIGNS = ("nonneg", "neg")


def fresh_kernel(resolution: float, threads: int = 1, rng_seed: int | None = None) -> Any:
    """Reset NEST, load nestgrad's module and set the resolution (ms), threads and random seed; returns ``nest``.

    Under MPI (more than one process) NEST's compressed spike delivery is switched off: with it, NEST 3.10 run with
    mpirun delivers spikes wrongly in a kernel whose connections differ from those of an earlier kernel of the same
    process (the state it keeps for compressed spikes survives ``ResetKernel``), so results would depend on what ran
    before, e.g. on deep rewiring's earlier connectivity (docs/cluster.md)."""
    import nest

    from nestgrad.module import install

    nest.ResetKernel()
    nest.verbosity = nest.VerbosityLevel.ERROR
    install()
    # NEST shrinks its spike buffers whenever a step sends < 20 % of their size, and logs every resize in the kernel
    # status: with bursty sends (EventProp's trial and backward steps) it resized almost every step, and the log
    # (5 MB after 50 Yin-Yang batches) made every GetKernelStatus, and so every SynapseCollection.get/set, cost
    # tens of ms. Buffers that only grow hold the largest step's spikes; results do not depend on buffer sizes.
    settings: dict[str, Any] = {
        "resolution": resolution,
        "local_num_threads": threads,
        "print_time": False,
        "spike_buffer_shrink_limit": 0.0,
    }
    if int(nest.num_processes) > 1:
        settings["use_compressed_spikes"] = False
    if rng_seed is not None:
        settings["rng_seed"] = rng_seed
    nest.set(**settings)
    return nest


def signed_model(model: str, sign: str) -> str:
    """The copy of a plastic synapse model bounded to one sign (Dale's law): ``<model>_nonneg`` or ``<model>_neg``."""
    return f"{model}_{sign}"


def signed_bounds(w_min: float, w_max: float, sign: str) -> tuple[float, float]:
    """(Wmin, Wmax) of the synapses whose initial weight is ``"nonneg"`` or ``"neg"`` under Dale's law."""
    if sign == "nonneg":
        return max(w_min, 0.0), w_max
    return w_min, min(w_max, 0.0)


def set_plastic_defaults(
    nest: Any, model: str, optimizer: dict[str, Any], *, sign_constrained: bool = False, eta: float | None = None
) -> list[str]:
    """Give the synapse model ``model`` the optimizer settings ``optimizer`` (NEST's dictionary, with Wmin/Wmax);
    ``eta`` overrides the learning rate (0: learning off). With ``sign_constrained`` also create (once) and set the
    two sign-bounded copies. Returns the models set. Must run before any connection of these models exists: NEST's
    optimizer applies the settings a synapse had at its first update."""
    settings = dict(optimizer)
    if eta is not None:
        settings["eta"] = eta
    models = [model]
    _set_optimizer(nest, model, settings, settings["Wmin"], settings["Wmax"])
    if sign_constrained:
        for sign in SIGNS:
            copy = signed_model(model, sign)
            if copy not in nest.synapse_models:
                nest.CopyModel(model, copy)
            _set_optimizer(nest, copy, settings, *signed_bounds(settings["Wmin"], settings["Wmax"], sign))
            models.append(copy)
    return models


def _set_optimizer(nest: Any, model: str, settings: dict[str, Any], w_min: float, w_max: float) -> None:
    # the default connection's weight (1.0) must lie inside the new bounds, or NEST refuses them
    nest.SetDefaults(model, {"weight": min(max(0.0, w_min), w_max)})
    nest.SetDefaults(model, {"optimizer": settings | {"Wmin": w_min, "Wmax": w_max}})

"""The registry of gradient algorithms: what ``network.gradient_algorithm`` names.

An :class:`Algorithm` says which plastic synapse model computes the gradients of the connections into a given neuron
model, and why it cannot train a neuron model (then :meth:`Algorithm.check` raises
:class:`~nestgrad.errors.ModelError` naming the algorithm, the model and the reason, before anything is built). The
networks ask the registry (:func:`get_algorithm`) and never branch on the algorithm's name; a new algorithm plugs in
with one call to :func:`register_algorithm` (docs/architecture.md, docs/examples/own_algorithm.py).

Built in: ``step`` (the synapse the neuron asks for in its ``eprop_synapse_model`` default, else NEST's
``eprop_synapse``) and ``event`` (nestgrad's ``eprop_event_synapse``, for neurons that keep its running sums); and
``eventprop``, which the e-prop learners refuse by name: the V1 column trains with it through its own learner
(:mod:`nestgrad.networks.v1_eventprop`, registered per architecture and algorithm by
:func:`nestgrad.networks.registry.register_learner`; ``nestgrad compare``: :mod:`nestgrad.comparison.registry`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nestgrad.config import GradientAlgorithm, register_gradient_algorithm
from nestgrad.errors import ConfigError, ModelError
from nestgrad.nest_engine import EPROP_SYNAPSE, EVENT_SYNAPSE

# (nest, neuron model) -> the NEST synapse model of the plastic connections into that neuron model
SynapseChoice = Callable[[Any, str], str]
# (nest, neuron model) -> why the algorithm cannot train that neuron model; "" when it can
Refusal = Callable[[Any, str], str]


@dataclass(frozen=True)
class Algorithm:
    """A gradient algorithm, as the networks see it: a synapse model chosen per neuron model, and a check."""

    name: str
    synapse_into: SynapseChoice
    refusal: Refusal
    description: str = ""  # one line for docs and error messages

    def check(self, nest: Any, neuron_model: str, key: str | None = None) -> None:
        """Raise ModelError (naming the algorithm, the neuron model and the reason) when this algorithm cannot train
        ``neuron_model``; called by the networks' ``validate`` before anything is built. ``key``: the configuration
        key that chose the neuron model, if one did (e.g. ``network.neuron_model``)."""
        reason = self.refusal(nest, neuron_model)
        if reason:
            model = f"{key} = {neuron_model!r}" if key else f"neuron model {neuron_model!r}"
            raise ModelError(f"network.gradient_algorithm = {self.name!r} is not supported by {model}: {reason}")


_ALGORITHMS: dict[str, Algorithm] = {}


def register_algorithm(algorithm: Algorithm) -> None:
    """Make ``network.gradient_algorithm = <name>`` mean ``algorithm`` (the configuration accepts the name from
    then on). Registering a name again replaces it."""
    register_gradient_algorithm(algorithm.name)  # ConfigError for a name that is not an identifier
    _ALGORITHMS[algorithm.name] = algorithm


def get_algorithm(name: str) -> Algorithm:
    if name not in _ALGORITHMS:
        raise ConfigError(f"network.gradient_algorithm = {name!r} is not registered; known: {', '.join(_ALGORITHMS)}")
    return _ALGORITHMS[name]


def algorithms() -> dict[str, Algorithm]:
    return dict(_ALGORITHMS)


# -- the built-ins ----------------------------------------------------------------------------------------------
def _step_synapse(nest: Any, neuron_model: str) -> str:
    # NESTML e-prop neurons with more than two eligibility states or several ports, and GLIF3, ask for
    # eprop_vector_synapse in their status; NEST's own e-prop neurons say nothing and take eprop_synapse
    return str(nest.GetDefaults(neuron_model).get("eprop_synapse_model", EPROP_SYNAPSE))


def _step_refusal(nest: Any, neuron_model: str) -> str:
    synapse = _step_synapse(nest, neuron_model)
    if synapse not in nest.synapse_models:
        return f"it asks for synapse model {synapse!r}, which is not loaded (nestgrad.install())"
    return ""


def _event_synapse(nest: Any, neuron_model: str) -> str:
    return EVENT_SYNAPSE


def _event_refusal(nest: Any, neuron_model: str) -> str:
    if EVENT_SYNAPSE not in nest.synapse_models:
        return f"{EVENT_SYNAPSE} is not loaded: it needs nestgrad's module (nestgrad.install())"
    # nestgrad's event-capable neurons say "" (supported) or why not; NEST's own neurons have no such entry
    refusal = nest.GetDefaults(neuron_model).get("event_synapse_refusal")
    if refusal is None:
        return (
            "it keeps no running sums for eprop_event_synapse (nestgrad's eprop_iaf_psc_exp and the NESTML "
            "e-prop neurons with constant eligibility coefficients do)"
        )
    return str(refusal)


register_algorithm(
    Algorithm(
        GradientAlgorithm.STEP.value,
        _step_synapse,
        _step_refusal,
        "NEST's eprop_synapse (or the synapse the neuron asks for): the gradient summed step by step over a window",
    )
)
register_algorithm(
    Algorithm(
        GradientAlgorithm.EVENT.value,
        _event_synapse,
        _event_refusal,
        "nestgrad's eprop_event_synapse: the same gradient from running sums kept by the neuron, O(1) per spike",
    )
)


# -- EventProp ----------------------------------------------------------------------------------------------------
def _eventprop_synapse(nest: Any, neuron_model: str) -> str:
    return "eventprop_synapse"


def _eventprop_refusal(nest: Any, neuron_model: str) -> str:
    # the e-prop learners build e-prop neurons; EventProp runs in nestgrad's EventProp neurons, through the learners
    # registered for it (the V1 column's, nestgrad.networks.v1_eventprop) and the eventprop architecture
    return (
        "EventProp does not train e-prop neurons; the V1 column trains with EventProp (architecture 'v1', "
        "network.v1.eventprop, docs/v1_model.md) and the eventprop architecture trains eventprop_iaf_psc_exp_ps"
    )


register_algorithm(
    Algorithm(
        GradientAlgorithm.EVENTPROP.value,
        _eventprop_synapse,
        _eventprop_refusal,
        "EventProp's exact gradients (Wunderlich & Pehle 2021) in nestgrad's EventProp neurons, eventprop_synapse",
    )
)

"""Neuron dynamics of the EventProp reference engine (closed-form propagation, adjoint, threshold crossings)."""

from nestgrad.reference.eventprop.neurons.dynamics import (
    NeuronParams,
    adjoint_propagate,
    dvdt,
    first_crossing,
    kern,
    propagate,
)

__all__ = ["NeuronParams", "adjoint_propagate", "dvdt", "first_crossing", "kern", "propagate"]

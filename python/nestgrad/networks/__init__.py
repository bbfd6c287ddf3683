"""Network builders."""

from nestgrad.networks.eprop_classic import EpropNetwork, default_neuron_params, supported_neuron_models

__all__ = ["EpropNetwork", "default_neuron_params", "supported_neuron_models"]

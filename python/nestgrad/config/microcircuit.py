"""Configuration of the Potjans & Diesmann (2014) microcircuit (:class:`MicrocircuitConfig`, built by
:mod:`nestgrad.networks.potjans_diesmann`) and of the microcircuit as a learner (``[network.microcircuit]``,
:class:`EpropMicrocircuitConfig`, built by :mod:`nestgrad.networks.pd_eprop`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nestgrad.config.tables import from_table
from nestgrad.errors import ConfigError

THALAMUS_N = 902  # thalamic neurons of the full model


@dataclass(frozen=True)
class MicrocircuitConfig:
    """Parameters of a microcircuit instance. Defaults: the published model."""

    n_scaling: float = 1.0
    k_scaling: float = 1.0
    background: str = "poisson"  # "poisson" or "dc"
    bg_rate: float = 8.0  # Hz per external synapse
    psp_mean: float = 0.15  # mV
    psp_rel_sd: float = 0.1
    g: float = -4.0
    delay_exc: float = 1.5  # ms
    delay_inh: float = 0.75  # ms
    delay_rel_sd: float = 0.5
    thalamus: bool = False
    thalamus_rate: float = 120.0  # Hz, while a stimulus is on
    neuron_model: str = "iaf_psc_exp"
    neuron_params: dict[str, Any] = field(default_factory=dict)
    seed: int = 55

    def __post_init__(self) -> None:
        for key in ("n_scaling", "k_scaling"):
            v = getattr(self, key)
            if not (isinstance(v, int | float) and 0 < v <= 1):
                raise ConfigError(f"{key} = {v!r}: a number in (0, 1] is required")
        if self.background not in ("poisson", "dc"):
            raise ConfigError(f"background = {self.background!r}: 'poisson' or 'dc'")
        if not (self.bg_rate >= 0 and math.isfinite(self.bg_rate)):
            raise ConfigError(f"bg_rate = {self.bg_rate!r}: a rate >= 0 Hz is required")


@dataclass(frozen=True)
class EpropMicrocircuitConfig:
    n_scaling: float = 0.1
    k_scaling: float = 0.1
    background: str = "poisson"
    pool_size: int = 30  # neurons per source population and readout
    thalamic_psp: float = 0.15  # mV, initial mean PSP of thalamic synapses
    readout_weight: float = 0.05  # initial readout weight scale
    feedback_weight: float = 1.0  # learning-signal weight scale (pA per unit error)
    eprop_params: dict[str, Any] = field(default_factory=dict)
    seed: int = 1

    def __post_init__(self) -> None:
        MicrocircuitConfig(n_scaling=self.n_scaling, k_scaling=self.k_scaling, background=self.background)
        if not (isinstance(self.pool_size, int) and self.pool_size >= 1):
            raise ConfigError(f"network.microcircuit.pool_size = {self.pool_size!r}: an integer >= 1 is required")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EpropMicrocircuitConfig:
        return from_table(cls, d, "network.microcircuit")

    @property
    def n_thalamus(self) -> int:
        return max(int(round(THALAMUS_N * self.n_scaling)), 1)

"""Configuration: what a run is, as frozen dataclasses loaded from TOML and validated before anything is built.

``ExperimentConfig`` = ``NetworkConfig`` + ``TaskConfig`` + ``OptimizerConfig`` + ``TrainingConfig``; the built-in
architectures' own tables are :class:`~nestgrad.config.v1.V1Config`, :class:`~nestgrad.config.v1.V1TaskConfig` and
:class:`~nestgrad.config.microcircuit.EpropMicrocircuitConfig`. This package imports no network.
"""

from nestgrad.config.dvs_glyphs import DvsGlyphsConfig
from nestgrad.config.eventprop import DigitsLatencyConfig, EventpropConfig, EvidenceSpikesConfig, YinYangTaskConfig
from nestgrad.config.experiment import (
    GRADIENT_ALGORITHMS,
    OPTIMIZERS,
    ArchitectureSections,
    ExperimentConfig,
    GradientAlgorithm,
    NetworkConfig,
    OptimizerConfig,
    OptimizerType,
    TaskConfig,
    TrainingConfig,
    architectures,
    gradient_algorithms,
    register_gradient_algorithm,
    register_sections,
    task_names,
)
from nestgrad.config.microcircuit import EpropMicrocircuitConfig, MicrocircuitConfig
from nestgrad.config.v1 import V1_TASK_NAMES, V1Config, V1TaskConfig
from nestgrad.errors import ConfigError

# The built-in architectures' tasks and tables (their builders: nestgrad.networks.registry).
# the classic network's task dvs_glyphs has its table [task.params] (the other classic tasks use none)
register_sections(
    ArchitectureSections("classic", ("sine", "evidence", "dvs_glyphs"), task_table="params", task_type=DvsGlyphsConfig)
)
register_sections(
    ArchitectureSections(
        "eventprop",
        ("digits_latency", "evidence_spikes", "yinyang"),
        network_table="params",
        network_type=EventpropConfig,
        task_table="params",
        task_type={
            "digits_latency": DigitsLatencyConfig,
            "evidence_spikes": EvidenceSpikesConfig,
            "yinyang": YinYangTaskConfig,
        },
    )
)
register_sections(
    ArchitectureSections(
        "microcircuit", ("thalamic",), network_table="microcircuit", network_type=EpropMicrocircuitConfig
    )
)
register_sections(
    ArchitectureSections(
        "v1",
        V1_TASK_NAMES,
        network_table="v1",
        network_type=V1Config,
        task_table="v1",
        task_type=V1TaskConfig,
        resolutions=(1.0,),  # the V1 model's delays and tasks are in 1 ms steps
    )
)

__all__ = [
    "GRADIENT_ALGORITHMS",
    "OPTIMIZERS",
    "ArchitectureSections",
    "ConfigError",
    "DigitsLatencyConfig",
    "DvsGlyphsConfig",
    "EpropMicrocircuitConfig",
    "EventpropConfig",
    "EvidenceSpikesConfig",
    "ExperimentConfig",
    "GradientAlgorithm",
    "MicrocircuitConfig",
    "NetworkConfig",
    "OptimizerConfig",
    "OptimizerType",
    "TaskConfig",
    "TrainingConfig",
    "V1Config",
    "V1TaskConfig",
    "YinYangTaskConfig",
    "architectures",
    "gradient_algorithms",
    "register_gradient_algorithm",
    "register_sections",
    "task_names",
]

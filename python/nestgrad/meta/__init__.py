"""Learning to learn: an outer loop (CMA-ES) over nestgrad trainings that searches for settings which make the
inner training learn faster on tasks of a family (docs/meta_learning.md).

``nestgrad meta CONFIG.toml`` runs :class:`~nestgrad.meta.outer.MetaRun`, ``nestgrad meta-test CONFIG.toml``
:class:`~nestgrad.meta.metatest.MetaTest`; the configuration is a :class:`~nestgrad.meta.config.MetaConfig`.
"""

from nestgrad.meta.config import ExecutorConfig, MetaConfig, TestConfig
from nestgrad.meta.family import EvidenceFamily, SineFamily, make_family
from nestgrad.meta.inner import InnerJob
from nestgrad.meta.metatest import MetaTest
from nestgrad.meta.outer import MetaRun, MetaState
from nestgrad.meta.space import Dimension, SearchSpace

__all__ = [
    "Dimension",
    "EvidenceFamily",
    "ExecutorConfig",
    "InnerJob",
    "MetaConfig",
    "MetaRun",
    "MetaState",
    "MetaTest",
    "SearchSpace",
    "SineFamily",
    "TestConfig",
    "make_family",
]

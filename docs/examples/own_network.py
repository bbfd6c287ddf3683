"""Add your own network: a feedforward e-prop network (inputs -> hidden eprop_iaf_psc_exp -> readouts) that the
Trainer trains on the sine task, plugged in by registering it; nothing in the Trainer changes.

Run it:  python docs/examples/own_network.py  (tests/test_docs_examples.py runs it for a few iterations)
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass

import numpy as np

from nestgrad.config import (
    ArchitectureSections,
    ConfigError,
    ExperimentConfig,
    NetworkConfig,
    OptimizerConfig,
    TaskConfig,
    TrainingConfig,
)
from nestgrad.networks import registry
from nestgrad.networks.base import READOUT_DEFAULTS, SpecLearner
from nestgrad.parallel import SerialCommunicator
from nestgrad.spec import NetworkSpec, Population, Projection, Role, SynapseKind
from nestgrad.tasks import make_task


@dataclass(frozen=True)
class FeedforwardConfig:
    """The table [network.params] of this architecture (validated when the configuration is loaded)."""

    n_hidden: int = 50
    weight_scale: float = 0.03

    def __post_init__(self) -> None:
        if not isinstance(self.n_hidden, int) or self.n_hidden < 1:
            raise ConfigError(f"network.params.n_hidden = {self.n_hidden!r}: an integer >= 1 is required")

    @classmethod
    def from_dict(cls, d: dict) -> FeedforwardConfig:
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ConfigError(f"network.params: unknown key(s) {unknown}")
        return cls(**d)


class FeedforwardNetwork(SpecLearner):
    """The learner: says how weights become a spec; building, data, recordings, weights and Adam's moments come
    from SpecLearner and the one wiring function."""

    def __init__(self, config: FeedforwardConfig, optimizer: OptimizerConfig, n_in: int, n_out: int, dt: float):
        self.config, self.optimizer, self.resolution = config, optimizer, dt
        self.n_in, self.n_out = n_in, n_out
        self.comm = SerialCommunicator()
        h = config.n_hidden
        self.edges = {  # all-to-all edge lists (source, target)
            "in_hidden": np.divmod(np.arange(n_in * h), h),
            "hidden_out": np.divmod(np.arange(h * n_out), n_out),
        }

    def describe(self) -> str:
        return f"a feedforward e-prop network ({self.config.n_hidden} hidden eprop_iaf_psc_exp neurons)"

    def validate(self, nest) -> None:
        if "eprop_iaf_psc_exp" not in nest.node_models:
            raise ConfigError("eprop_iaf_psc_exp is not loaded")

    def trainable(self) -> tuple[str, ...]:
        return ("in_hidden", "hidden_out")

    def initial_weights(self, seed: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        s = self.config.weight_scale
        return {
            "in_hidden": rng.normal(0, s / np.sqrt(self.n_in), self.n_in * self.config.n_hidden),
            "hidden_out": rng.normal(0, s / np.sqrt(self.config.n_hidden), self.config.n_hidden * self.n_out),
            "feedback": rng.normal(0, s, (self.config.n_hidden, self.n_out)),
        }

    def network_spec(self, weights, record_neurons: int, plastic: bool = True) -> NetworkSpec:
        dt, h = self.resolution, self.config.n_hidden
        spec = NetworkSpec(resolution=dt, optimizer=self.optimizer.nest_dict())
        spec.add_population(Population("in", "parrot_neuron", self.n_in, role=Role.INPUT))
        hidden = {"C_m": 5.0, "tau_syn_ex": 5.0, "tau_syn_in": 5.0, "V_th": 0.03, "E_L": 0.0, "V_m": 0.0,
                  "V_reset": 0.0, "surrogate_gradient_function": "piecewise_linear"}  # fmt: skip
        spec.add_population(Population("hidden", "eprop_iaf_psc_exp", h, hidden))
        spec.add_population(Population("out", "eprop_readout", self.n_out, dict(READOUT_DEFAULTS), Role.READOUT))
        for name, (src_pop, tgt_pop) in (("in_hidden", ("in", "hidden")), ("hidden_out", ("hidden", "out"))):
            src, tgt = self.edges[name]
            spec.add_projection(
                name,
                Projection(src_pop, tgt_pop, src, tgt, weights[name], np.full(src.size, dt),
                           plastic=np.full(src.size, plastic)),
            )  # fmt: skip
        post, out = np.nonzero(weights["feedback"])  # learning signals: readout -> hidden, fixed weights
        feedback = Projection("out", "hidden", out, post, weights["feedback"][post, out], np.full(post.size, dt),
                              kind=SynapseKind.LEARNING_SIGNAL)  # fmt: skip
        spec.add_projection("feedback", feedback)
        spec.recorded = ("hidden", np.arange(min(max(record_neurons, 0), h)))
        return spec


def make(config: ExperimentConfig):
    """The factory the registry calls: the configuration's learner and task."""
    task = make_task(config.task, config.network.seed)
    net = FeedforwardNetwork(config.section("network"), config.optimizer, task.n_in, task.n_out, config.task.resolution)
    return net, task


registry.register(
    registry.Architecture(
        ArchitectureSections("feedforward", ("sine",), network_table="params", network_type=FeedforwardConfig), make
    )
)


def main(iterations: int = 20, out_dir: str = "out/own_network") -> list[dict]:
    from nestgrad.training.trainer import Trainer

    config = ExperimentConfig(
        network=NetworkConfig(architecture="feedforward", params={"n_hidden": 50}),
        task=TaskConfig(name="sine", sequence_steps=500),
        optimizer=OptimizerConfig(type="adam", eta=5e-3),
        training=TrainingConfig(iterations=iterations, checkpoint_every=10, plot=False),
    )
    return Trainer(config, out_dir).run(overwrite=True)


if __name__ == "__main__":
    history = main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
    print(f"loss {history[0]['loss']:.4g} -> {history[-1]['loss']:.4g}")

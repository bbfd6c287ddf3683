"""Add your own gradient algorithm: "vector" computes every e-prop gradient with nestgrad's eprop_vector_synapse
(the neuron's eligibility vector, up to six states per receptor port), plugged in by registering it; nothing in
the Trainer or the networks changes.

For a neuron with two eligibility states and one port (e.g. eprop_iaf_psc_exp_nestml) "step" uses NEST's
eprop_synapse and "vector" gives the same weight updates (to rounding); neurons that keep no eligibility vector
(NEST's own e-prop neurons, nestgrad's C++ eprop_iaf_psc_exp) are refused before anything is built.

Run it:  python docs/examples/own_algorithm.py  (tests/test_docs_examples.py runs it for a few iterations)
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from nestgrad.config import ExperimentConfig, NetworkConfig, OptimizerConfig, TaskConfig, TrainingConfig
from nestgrad.nest_engine import VECTOR_SYNAPSE
from nestgrad.networks.algorithms import Algorithm, register_algorithm

MAX_STATES = 6  # eligibility states per port that eprop_vector_synapse stores


def synapse_into(nest: Any, neuron_model: str) -> str:
    """The plastic synapse into ``neuron_model``: eprop_vector_synapse, whatever the neuron."""
    return VECTOR_SYNAPSE


def refusal(nest: Any, neuron_model: str) -> str:
    """Why "vector" cannot train ``neuron_model`` ("" when it can). Only neurons that keep an eligibility vector for
    the synapse (nestgrad's NESTML e-prop neurons and eprop_glif3_psc) report ``eligibility_size``."""
    if VECTOR_SYNAPSE not in nest.synapse_models:
        return f"{VECTOR_SYNAPSE} is not loaded (nestgrad.install())"
    size = nest.GetDefaults(neuron_model).get("eligibility_size")
    if size is None:
        return f"it keeps no eligibility vector for {VECTOR_SYNAPSE} (nestgrad's NESTML e-prop neurons and GLIF3 do)"
    if size > MAX_STATES:
        return f"it has {size} eligibility states, {VECTOR_SYNAPSE} stores at most {MAX_STATES}"
    return ""


register_algorithm(Algorithm("vector", synapse_into, refusal, "eprop_vector_synapse into every neuron"))


def config(algorithm: str, iterations: int, neuron_model: str = "eprop_iaf_psc_exp_nestml") -> ExperimentConfig:
    """The classic network (sine task) trained with ``network.gradient_algorithm = algorithm``."""
    return ExperimentConfig(
        network=NetworkConfig(neuron_model=neuron_model, n_rec=100, gradient_algorithm=algorithm),
        task=TaskConfig(name="sine", sequence_steps=1000),
        optimizer=OptimizerConfig(type="gradient_descent", eta=1e-5),  # python/nestgrad/configs/sine_*.toml
        training=TrainingConfig(iterations=iterations, checkpoint_every=iterations, plot=False),
    )


def train(
    algorithm: str, iterations: int, out_dir: str, neuron_model: str = "eprop_iaf_psc_exp_nestml"
) -> tuple[list[dict], dict, dict]:
    """Train through the unchanged Trainer; returns the metrics, the initial and the final weights."""
    from nestgrad.training.trainer import Trainer

    trainer = Trainer(config(algorithm, iterations, neuron_model), out_dir, verbose=False)
    initial = trainer.initial_state().weights
    history = trainer.run(overwrite=True)
    return history, initial, trainer.state.weights


def main(iterations: int = 20, out_dir: str = "out/own_algorithm") -> list[dict]:
    history, _, _ = train("vector", iterations, out_dir)
    return history


if __name__ == "__main__":
    history = main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
    print(f"loss {history[0]['loss']:.4g} -> {history[-1]['loss']:.4g}")
    _, w0, step = train("step", 5, "out/own_algorithm_step")
    _, _, vector = train("vector", 5, "out/own_algorithm_vector")
    for key in ("in_rec", "rec_rec", "rec_out"):
        rel = np.abs(vector[key] - step[key]).max() / np.abs(step[key] - w0[key]).max()
        print(f"{key}: vector vs step after 5 iterations, max |difference| / max |update| = {rel:.2g}")

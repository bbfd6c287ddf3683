"""The worked examples of docs/architecture.md run as documented: a network of one's own plugs into the Trainer by
registering, trains, and resumes bit-identically (Adam's moments included) through the one wiring function; a gradient
algorithm of one's own plugs in by registering and trains through the same Trainer."""

from __future__ import annotations

import importlib.util
import pathlib
import sys

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "docs" / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_own_network_trains_through_the_registry_and_resumes_bit_identically(tmp_path):
    from nestgrad.training.trainer import Trainer, load_checkpoint

    example = _load("own_network")
    history = example.main(iterations=20, out_dir=str(tmp_path / "full"))
    # the sine task is learned: the loss of the last iterations is far below the first (2015 -> ~100 measured)
    assert np.mean([h["loss"] for h in history[-3:]]) < 0.2 * history[0]["loss"]

    config = example.ExperimentConfig(
        network=example.NetworkConfig(architecture="feedforward", params={"n_hidden": 50}),
        task=example.TaskConfig(name="sine", sequence_steps=500),
        optimizer=example.OptimizerConfig(type="adam", eta=5e-3),
        training=example.TrainingConfig(iterations=10, checkpoint_every=10, plot=False),
    )
    Trainer(config, tmp_path / "split", verbose=False).run()
    state = load_checkpoint(tmp_path / "split" / "checkpoint.npz", config)
    assert {"m_in_hidden", "v_in_hidden", "m_hidden_out"} <= set(state.optimizer_state)
    assert np.abs(state.optimizer_state["v_in_hidden"]).max() > 0  # the moments are carried over
    longer = example.dataclasses.replace(config, training=example.dataclasses.replace(config.training, iterations=20))
    resumed = Trainer(longer, tmp_path / "split", verbose=False).run(resume=True)
    assert [h["loss"] for h in resumed] == [h["loss"] for h in history]
    full = load_checkpoint(tmp_path / "full" / "checkpoint.npz", longer)
    split = load_checkpoint(tmp_path / "split" / "checkpoint.npz", longer)
    for key in full.weights:
        assert np.array_equal(full.weights[key], split.weights[key]), key


def test_own_algorithm_trains_through_the_registry_with_the_updates_of_step(tmp_path, nest_kernel):
    """docs/examples/own_algorithm.py: "vector" (eprop_vector_synapse into every neuron) is registered, accepted by
    the configuration, trains through the unchanged Trainer, gives the updates of "step" (NEST's eprop_synapse) for
    two-state neurons, and refuses a neuron without an eligibility vector by name before anything is built."""
    from nestgrad.config import ConfigError, NetworkConfig, gradient_algorithms
    from nestgrad.errors import ModelError
    from nestgrad.networks.algorithms import get_algorithm
    from nestgrad.networks.eprop_classic import EpropNetwork

    example = _load("own_algorithm")
    assert (
        "vector" in gradient_algorithms() and NetworkConfig(gradient_algorithm="vector").gradient_algorithm == "vector"
    )
    with pytest.raises(ConfigError, match="'fast'.*step, event, eventprop, vector"):
        NetworkConfig(gradient_algorithm="fast")

    # (a) it trains: the sine task's loss falls (159 -> 17 in 20 iterations measured)
    history = example.main(iterations=20, out_dir=str(tmp_path / "vector"))
    assert np.mean([h["loss"] for h in history[-3:]]) < 0.3 * history[0]["loss"]

    # (b) the weight updates equal those of "step" where both compute the same gradient (two eligibility states, one
    # port: step uses eprop_synapse); measured: bit-identical after 5 iterations for both models
    for model in ("eprop_iaf_psc_exp_nestml", "eprop_iaf_psc_delta_adapt_nestml"):
        _, w0, step = example.train("step", 5, str(tmp_path / f"step_{model}"), model)
        _, _, vector = example.train("vector", 5, str(tmp_path / f"vector_{model}"), model)
        for key in ("in_rec", "rec_rec", "rec_out"):
            update = np.abs(step[key] - w0[key]).max()
            assert update > 0, (model, key)
            assert np.abs(vector[key] - step[key]).max() <= 1e-12 * update, (model, key)

    # the networks build with the algorithm's synapse model into the recurrent neurons
    nest = nest_kernel
    net = EpropNetwork(example.config("vector", 1).network, example.OptimizerConfig(), 100, 1, 1.0)
    net.validate(nest)
    assert net._recurrent_synapse_model(nest) == "eprop_vector_synapse"

    # (c) a neuron without an eligibility vector is refused by name, in validate (before anything is built)
    for model in ("eprop_iaf_psc_exp", "eprop_iaf"):
        net = EpropNetwork(NetworkConfig(neuron_model=model, gradient_algorithm="vector"), net.optimizer, 3, 1, 1.0)
        with pytest.raises(ModelError, match=f"'vector' is not supported by network.neuron_model = '{model}'.*"):
            net.validate(nest)
    assert get_algorithm("vector").refusal(nest, "eprop_glif3_psc") == ""

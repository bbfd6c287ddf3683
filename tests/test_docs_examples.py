"""The worked examples of docs/architecture.md run as documented: a network of one's own plugs into the Trainer by
registering, trains, and resumes bit-identically (Adam's moments included) through the one wiring function."""

from __future__ import annotations

import importlib.util
import pathlib
import sys

import numpy as np

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

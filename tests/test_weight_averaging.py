"""Weight averaging (training.average_weights_last): the mean of the weights at the last checkpoints is kept in the
checkpoint, resumes bit for bit, leaves training unchanged, and is what evaluate and the CLI score."""

from __future__ import annotations

import dataclasses
import io
import json
import pathlib
import shutil

import numpy as np
import pytest

from nestgrad import cli
from nestgrad.config import ExperimentConfig, NetworkConfig, OptimizerConfig, TaskConfig, TrainingConfig
from nestgrad.errors import CheckpointError, ConfigError
from nestgrad.training.callbacks import Callback
from nestgrad.training.checkpoint import TrainingState, checkpoint_bytes, load_checkpoint
from nestgrad.training.trainer import Trainer


def config(iterations: int = 6, every: int = 1, average: int = 3) -> ExperimentConfig:
    return ExperimentConfig(
        network=NetworkConfig(neuron_model="eprop_iaf_psc_exp", n_rec=30),
        task=TaskConfig(name="sine", sequence_steps=400, batch_size=1),
        optimizer=OptimizerConfig(type="adam", eta=1e-3),  # large enough that consecutive weights differ visibly
        training=TrainingConfig(
            iterations=iterations, checkpoint_every=every, plot=False, average_weights_last=average
        ),
    )


class WeightsAtCheckpoints(Callback):
    """Keeps the weights of every checkpoint, and copies the checkpoint file of one iteration."""

    def __init__(self, copy_at: int = 0, copy_to=None):
        self.weights: dict[int, dict[str, np.ndarray]] = {}
        self.copy_at, self.copy_to = copy_at, copy_to

    def on_checkpoint(self, trainer: Trainer, path: str) -> None:
        self.weights[trainer.iteration] = {k: v.copy() for k, v in trainer.state.weights.items()}
        if trainer.iteration == self.copy_at:
            self.copy_to.mkdir()
            shutil.copy(path, self.copy_to / "checkpoint.npz")


def test_running_mean_equals_the_mean_and_restarts_with_another_window():
    rng = np.random.default_rng(3)
    snapshots = [{"a": rng.normal(size=(4, 5)), "b": rng.normal(size=3)} for _ in range(7)]
    state = TrainingState(0, snapshots[0])
    for k, w in enumerate(snapshots, start=1):
        state.iteration, state.weights = k, w
        assert not state.update_average(after=2)
    assert state.averaged_count == 5 and state.averaged_after == 2
    for key in ("a", "b"):
        # the running mean against NumPy's mean of the five snapshots after iteration 2: rounding of 5 updates
        np.testing.assert_allclose(
            state.averaged_weights[key], np.mean([s[key] for s in snapshots[2:]], axis=0), rtol=1e-14, atol=1e-15
        )
    assert state.trained_weights is state.averaged_weights
    state.iteration = 8
    assert state.update_average(after=7)  # another window: the mean starts again from this checkpoint
    assert state.averaged_count == 1
    np.testing.assert_array_equal(state.averaged_weights["a"], state.weights["a"])
    state.iteration = 9
    assert state.update_average(after=12)  # a window that has not begun: the old mean is dropped at once
    assert (state.averaged_count, state.averaged_weights, state.averaged_after) == (0, {}, 12)
    assert state.trained_weights is state.weights
    assert TrainingState(3, {"a": np.ones(2)}).trained_weights["a"].tolist() == [1.0, 1.0]  # no averaging


def test_trainer_averages_the_last_checkpoints_and_training_is_unchanged(tmp_path):
    seen = WeightsAtCheckpoints()
    averaged = Trainer(config(), tmp_path / "avg", callbacks=[seen], verbose=False)
    averaged.run()
    plain = Trainer(config(average=0), tmp_path / "plain", verbose=False)
    plain.run()
    state = load_checkpoint(tmp_path / "avg" / "checkpoint.npz", config())
    assert (state.averaged_after, state.averaged_count) == (3, 3)  # iterations 4, 5, 6
    for key, w in plain.state.weights.items():
        np.testing.assert_array_equal(averaged.state.weights[key], w, err_msg=key)  # training is not touched
        mean = np.mean([seen.weights[i][key] for i in (4, 5, 6)], axis=0)
        # three running-mean updates against NumPy's mean: rounding only
        np.testing.assert_allclose(state.averaged_weights[key], mean, rtol=1e-13, atol=1e-15, err_msg=key)
    changed = [
        k for k in ("in_rec", "rec_rec", "rec_out") if not np.array_equal(state.averaged_weights[k], state.weights[k])
    ]
    assert changed == ["in_rec", "rec_rec", "rec_out"]
    assert not load_checkpoint(tmp_path / "plain" / "checkpoint.npz", config(average=0)).averaged_count


def test_resumed_average_is_bit_identical(tmp_path):
    full = Trainer(config(iterations=6, every=2, average=4), tmp_path / "full",
                   callbacks=[WeightsAtCheckpoints(4, tmp_path / "cut")], verbose=False)  # fmt: skip
    full.run()
    part = load_checkpoint(tmp_path / "cut" / "checkpoint.npz", config(iterations=6, every=2, average=4))
    assert (part.iteration, part.averaged_count) == (4, 1)  # iteration 4 only; iteration 6 still to come
    resumed = Trainer(config(iterations=6, every=2, average=4), tmp_path / "cut", verbose=False)
    resumed.run(resume=True)
    assert resumed.state.averaged_count == 2
    for key, w in full.state.averaged_weights.items():
        np.testing.assert_array_equal(resumed.state.averaged_weights[key], w, err_msg=key)


class StateAtCheckpoints(Callback):
    def __init__(self) -> None:
        self.seen: list[tuple[int, int]] = []

    def on_checkpoint(self, trainer: Trainer, path: str) -> None:
        self.seen.append((trainer.iteration, load_checkpoint(pathlib.Path(path), trainer.config).averaged_count))


def test_longer_resumed_run_starts_the_mean_again(tmp_path, capsys):
    Trainer(config(iterations=4, every=2, average=2), tmp_path, verbose=False).run()
    seen = StateAtCheckpoints()
    longer = Trainer(config(iterations=8, every=2, average=2), tmp_path, callbacks=[seen], verbose=False)
    longer.run(resume=True)
    assert "that mean is dropped and averaging starts again" in capsys.readouterr().out
    # the mean of iterations 3-4 is not kept into the new window (iterations 7-8): no checkpoint holds a stale mean
    assert seen.seen == [(6, 0), (8, 1)]
    assert (longer.state.averaged_after, longer.state.averaged_count) == (6, 1)
    np.testing.assert_array_equal(longer.state.averaged_weights["rec_rec"], longer.state.weights["rec_rec"])


def test_evaluate_scores_the_mean_unless_asked_for_the_last_weights(tmp_path, monkeypatch, capsys):
    cfg = config(iterations=4, every=2, average=4)
    trainer = Trainer(cfg, tmp_path, verbose=False)
    trainer.run()
    built = []
    original = Trainer._build_frozen
    monkeypatch.setattr(Trainer, "_build_frozen", lambda self, nest, w: (built.append(w), original(self, nest, w)))
    mean = trainer.evaluate(n_batches=1)
    assert built[-1] is trainer.state.averaged_weights
    assert mean["weights"] == "mean of the weights at 2 checkpoint(s) after iteration 0 (up to iteration 4)"
    last = trainer.evaluate(n_batches=1, final_weights=True)
    assert built[-1] is trainer.state.weights and last["weights"] == "weights of iteration 4"
    assert mean["loss"] != last["loss"]
    assert json.loads((tmp_path / "evaluation.json").read_text())["loss"] == mean["loss"]
    assert json.loads((tmp_path / "evaluation_final_weights.json").read_text())["loss"] == last["loss"]
    # the CLI, with a fresh Trainer that reads the checkpoint
    toml = tmp_path / "run.toml"
    toml.write_text(
        '[network]\nneuron_model = "eprop_iaf_psc_exp"\nn_rec = 30\n'
        '[task]\nname = "sine"\nsequence_steps = 400\nbatch_size = 1\n[optimizer]\ntype = "adam"\neta = 1e-3\n'
        "[training]\niterations = 4\ncheckpoint_every = 2\nplot = false\naverage_weights_last = 4\n"
    )
    assert ExperimentConfig.from_toml(toml) == cfg
    capsys.readouterr()
    assert cli.main(["evaluate", str(toml), "--out", str(tmp_path), "--batches", "1"]) == 0
    assert "evaluation of the mean of the weights at 2 checkpoint(s)" in capsys.readouterr().out
    assert cli.main(["evaluate", str(toml), "--out", str(tmp_path), "--batches", "1", "--final-weights"]) == 0
    out = capsys.readouterr().out
    assert "evaluation of iteration 4" in out and "evaluation_final_weights.json" in out


@pytest.mark.parametrize(
    "value, message",
    [(-1, "an integer in 0 ... training.iterations = 6"), (7, "training.average_weights_last = 7"), (2.5, "2.5")],
)
def test_bad_averaging_window_is_refused(value, message):
    with pytest.raises(ConfigError, match=message):
        TrainingConfig(iterations=6, average_weights_last=value)


def test_damaged_average_in_checkpoint_is_refused(tmp_path):
    cfg = config(iterations=2, every=2, average=2)
    rng = np.random.default_rng(1)
    weights = {"w": rng.normal(size=(3, 2))}
    history = [{"iteration": i, "loss": 1.0, "rate_hz": 1.0} for i in (1, 2)]
    good = TrainingState(2, weights, {}, history, 1, {"w": weights["w"] * 0.5}, 0, 1)
    path = tmp_path / "checkpoint.npz"
    path.write_bytes(checkpoint_bytes(cfg, good))
    np.testing.assert_array_equal(load_checkpoint(path, cfg).averaged_weights["w"], weights["w"] * 0.5)

    def refused(state: TrainingState, match: str, meta: dict | None = None) -> None:
        data = dict(np.load(io.BytesIO(checkpoint_bytes(cfg, state))))
        if meta is not None:
            data["meta"] = np.array(json.dumps(json.loads(str(data["meta"])) | meta))
        with open(path, "wb") as f:
            np.savez(f, **data)
        with pytest.raises(CheckpointError, match=match):
            load_checkpoint(path, cfg)

    refused(dataclasses.replace(good, averaged_weights={"w": np.ones((2, 3))}), r"avg_w.*shape \(2, 3\)")
    refused(dataclasses.replace(good, averaged_weights={"w": np.full((3, 2), np.nan)}), "avg_w.*NaN")
    refused(dataclasses.replace(good, averaged_weights={"x": np.ones((3, 2))}), "avg_")
    refused(good, "meta.average.count", {"average": {"after_iteration": 0, "count": 3}})
    refused(good, "meta.average", {"average": {"count": 1}})
    data = dict(np.load(io.BytesIO(checkpoint_bytes(cfg, good))))
    meta = json.loads(str(data["meta"]))
    del meta["average"]
    data["meta"] = np.array(json.dumps(meta))
    with open(path, "wb") as f:
        np.savez(f, **data)
    with pytest.raises(CheckpointError, match="meta.average.*missing"):
        load_checkpoint(path, cfg)

"""EventProp through the Trainer (issue 20, item 7): the `eventprop` architecture trains the latency-coded digits in
NEST; its weights equal the reference engine's gradient descent batch by batch; a checkpointed run resumes bit for
bit; evaluation leaves the weights alone; what EventProp cannot train is refused by name.

Tolerance of the reference comparison: 1e-9 relative per weight change (NEST's gradients equal the reference's to
about 1e-11, tests/test_eventprop_nest_gradients.py; a few steps of gradient descent keep that)."""

from __future__ import annotations

import numpy as np
import pytest

from nestgrad.config import ExperimentConfig
from nestgrad.errors import ConfigError, ModelError
from nestgrad.reference.eventprop import evaluate
from nestgrad.training.checkpoint import load_checkpoint
from nestgrad.training.trainer import Trainer


def tiny(iterations: int = 3, every: int = 3, optimizer: str = "gradient_descent", eta: float = 0.05, **params):
    return ExperimentConfig.from_dict(
        {
            "network": {
                "architecture": "eventprop",
                "neuron_model": "eventprop_iaf_psc_exp_ps",
                "seed": 3,
                "params": {"n_hidden": 12, "w_in_mean": 0.5, "w_in_std": 0.3} | params,
            },  # fmt: skip
            "task": {"name": "digits_latency", "resolution": 1.0, "batch_size": 3, "params": {"side": 8}},
            "optimizer": {"type": optimizer, "eta": eta},
            "training": {"iterations": iterations, "checkpoint_every": every, "threads": 1, "plot": False},
        }
    )


def test_trainer_weights_equal_reference_gradient_descent(tmp_path):
    trainer = Trainer(tiny(), tmp_path, verbose=False)
    w0 = {k: v.copy() for k, v in trainer.initial_state().weights.items()}
    history = trainer.run()
    assert len(history) == 3 and all(np.isfinite(h["loss"]) for h in history)
    net = trainer.network
    w = w0
    for k in range(3):
        batch = trainer.task.batch(k)
        res = evaluate(net.network(w, net.trial_duration), batch.trials, net.loss())
        assert res.loss == pytest.approx(history[k]["loss"], rel=1e-9)
        w = {name: w[name] - 0.05 * res.grad_weights[name] for name in w}
    for name, expected in w.items():
        got = trainer.state.weights[name]
        change = np.abs(expected - w0[name]).max()
        assert change > 0
        assert np.abs(got - expected).max() <= 1e-9 * change, name
    assert (tmp_path / "metrics.csv").read_text().splitlines()[0] == "iteration,loss,accuracy,rate_hz"


def test_adam_run_resumes_bit_identically(tmp_path):
    """A run stopped after its first checkpoint block and resumed equals the uninterrupted run (same blocks: every
    block builds the network afresh from the checkpoint's weights and Adam moments, as for e-prop)."""
    whole = Trainer(tiny(4, 2, "adam", 0.01), tmp_path / "whole", verbose=False)
    whole.run()
    first = Trainer(tiny(2, 2, "adam", 0.01), tmp_path / "split", verbose=False)
    first.run()
    second = Trainer(tiny(4, 2, "adam", 0.01), tmp_path / "split", verbose=False)
    second.run(resume=True)
    for name, w in whole.state.weights.items():
        assert np.array_equal(w, second.state.weights[name]), name
    assert set(second.state.optimizer_state) == {
        f"{m}_{p}" for m in ("m", "v", "b1", "b2") for p in ("in_hid", "hid_out")
    }
    for key, value in whole.state.optimizer_state.items():
        assert np.array_equal(value, second.state.optimizer_state[key]), key
    assert load_checkpoint(tmp_path / "split" / "checkpoint.npz", second.config).iteration == 4


def test_evaluation_keeps_the_weights_and_uses_the_test_split(tmp_path):
    trainer = Trainer(tiny(2, 2), tmp_path, verbose=False)
    trainer.run()
    before = {k: v.copy() for k, v in trainer.state.weights.items()}
    result = trainer.evaluate(n_batches=2)
    assert result["trials"] == 6 and 0.0 <= result["accuracy"] <= 1.0
    for name, w in before.items():
        assert np.array_equal(w, trainer.state.weights[name])
    test_labels = trainer.task.data.arrays("test", range(6))[1]
    got = np.concatenate([trainer.task.batch(1_000_000 + k).labels for k in range(2)])
    assert np.array_equal(got, test_labels)


@pytest.mark.parametrize("loss", ["max", "sum_exp"])
def test_recurrent_network_trains_with_other_losses(tmp_path, loss):
    """Recurrent hidden layer, cross-entropy on the maximum or weighted mean: the first iteration's loss equals the
    reference engine's on the same weights and trials, and the weights move."""
    trainer = Trainer(tiny(2, 2, recurrent=True, loss=loss), tmp_path, verbose=False)
    w0 = trainer.initial_state().weights
    history = trainer.run()
    assert set(trainer.state.weights) == {"in_hid", "hid_hid", "hid_out"}
    assert trainer.state.weights["hid_hid"].size == 12 * 11
    net = trainer.network
    ref = evaluate(net.network(w0, net.trial_duration), trainer.task.batch(0).trials, net.loss())
    assert ref.loss == pytest.approx(history[0]["loss"], rel=1e-9)
    assert not np.array_equal(trainer.state.weights["hid_out"], w0["hid_out"])


@pytest.mark.parametrize(
    ("change", "error", "needle"),
    [
        ({"network": {"neuron_model": "eprop_iaf"}}, ModelError, "'eprop_iaf' has no EventProp adjoint"),
        ({"network": {"params": {"delay": 1.5}}}, ConfigError, "network.params.delay = 1.5"),
        ({"network": {"params": {"n_hidden": 0}}}, ConfigError, "network.params.n_hidden = 0"),
        ({"network": {"params": {"loss": "mse"}}}, ConfigError, "network.params.loss = 'mse'"),
        ({"network": {"params": {"tau_w": 5.0}}}, ConfigError, "tau_w = 5.0 is used by loss = 'sum_exp' only"),
        ({"network": {"params": {"hidden": {"tau_x": 1.0}}}}, ConfigError, "unknown parameter(s) ['tau_x']"),
        ({"network": {"params": {"hidden": {"V_th": -1.0}}}}, ConfigError, "V_th = -1.0 mV must exceed"),
        ({"task": {"params": {"t_min": -1.0}}}, ConfigError, "digits_latency.t_min = -1.0"),
        ({"task": {"params": {"colour": 1}}}, ConfigError, "task.params: unknown key(s) ['colour']"),
    ],
)
def test_bad_eventprop_configurations_are_refused_by_name(tmp_path, change, error, needle):
    d = tiny().to_dict()
    for section, values in change.items():
        for key, value in values.items():
            if isinstance(value, dict):
                d[section][key] = d[section].get(key, {}) | value
            else:
                d[section][key] = value
    with pytest.raises(error) as err:
        Trainer(ExperimentConfig.from_dict(d), tmp_path, verbose=False)
    assert needle in str(err.value)


@pytest.mark.parametrize("threads", [1, 2])
def test_shipped_compare_config_agrees_with_the_reference(tmp_path, threads):
    """`nestgrad compare --config compare_eventprop_small.toml`: a recurrent, refractory, adaptive network, the
    gradient of the first batch and the weights after 3 batches of Adam, NEST vs the reference, <= 1e-9 per
    projection; compare.json written."""
    import json
    import pathlib

    from nestgrad.cli import main

    config = pathlib.Path(__file__).resolve().parents[1] / "python/nestgrad/configs/compare_eventprop_small.toml"
    assert main(["compare", "--config", str(config), "--out", str(tmp_path), "--threads", str(threads)]) == 0
    result = json.loads((tmp_path / "compare.json").read_text())
    assert set(result["projections"]) == {"in_hid", "hid_hid", "hid_out"}
    for name, r in result["projections"].items():
        assert r["max_abs_gradient"] > 0 and r["max_abs_update"] > 0, name
        assert r["gradient_max_rel_err"] <= 1e-9 and r["max_rel_err"] <= 1e-9, (name, r)
    assert result["loss_max_rel_err"] <= 1e-9 and result["hidden_spikes_reference"] > 0

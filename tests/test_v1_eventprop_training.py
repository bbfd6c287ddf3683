"""The V1 column trained with EventProp through the Trainer (issue 22, item 2): ``architecture = "v1"`` with
``gradient_algorithm = "eventprop"`` (nestgrad.networks.v1_eventprop.V1EventpropLearner).

* the first iteration's weights equal the reference engine's Adam step on the same column and trials, per synapse
  to 1e-9 relative (the rule of tests/test_eventprop_nest_gradients.py: |dW_nest - dW_ref| / max(|dW_ref|,
  1e-3 max |dW_ref|) per projection; NEST's gradients equal the reference's to ~1e-11, and one Adam step divides
  by sqrt(v) = |g|, which keeps the relative error);
* a run stopped at a checkpoint and resumed equals the uninterrupted run bit for bit (weights and Adam's state,
  incl. its bias-correction powers, carried from kernel to kernel);
* evaluation runs with learning off and leaves every weight as it was;
* what the learner cannot train is refused by name when the Trainer is made, before anything is simulated."""

from __future__ import annotations

import dataclasses
import math
import pathlib

import numpy as np
import pytest

from nestgrad.comparison.v1_eventprop_compare import compare_v1_eventprop, per_synapse_rel_err
from nestgrad.config import ConfigError, ExperimentConfig
from nestgrad.networks.v1_eventprop import BACKGROUND, V1EventpropLearner, background_trial_spikes, optimizer_settings
from nestgrad.reference.eventprop import compile_network, evaluate
from nestgrad.reference.eventprop.optimizer import NumpyOptimizer, edge_bounds, edge_learning_rates
from nestgrad.training.checkpoint import load_checkpoint
from nestgrad.training.trainer import Trainer

REPO = pathlib.Path(__file__).resolve().parents[1]
SHIPPED = REPO / "python/nestgrad/configs/v1_orientation_eventprop.toml"
RTOL = 1e-9
COLUMN = ("lgn_rec", "rec_rec", "rec_out")


def tiny(iterations: int = 1, every: int = 1, **v1) -> ExperimentConfig:
    """A 150-neuron column, orientation task with Chen's random phase, trials of 90 ms (window 40-90 ms), 2 trials
    per iteration (seed 4: trials of both classes in which the pools fire, so that every projection has gradients),
    Adam with Dale's law."""
    return ExperimentConfig.from_dict(
        {
            "network": {
                "architecture": "v1",
                "gradient_algorithm": "eventprop",
                "seed": 4,
                "v1": {
                    "n_neurons": 150,
                    "pool_size": 5,
                    "background_rate": 0.0,
                    "weight_scale": 0.15,
                    "lgn_weight_scale": 3.0,
                    "readout_weight": 0.05,
                }
                | v1,
            },  # fmt: skip
            "task": {
                "name": "v1_orientation",
                "batch_size": 2,
                "v1": {
                    "pre_delay_ms": 20.0,
                    "stimulus_ms": 60.0,
                    "post_delay_ms": 20.0,
                    "response_start_ms": 40.0,
                    "response_ms": 50.0,
                    "orientation_difference_deg": 20.0,
                },
            },  # fmt: skip
            "optimizer": {"type": "adam", "eta": 0.05, "Wmin": -1e4, "Wmax": 1e4, "sign_constrained": True},
            "training": {"iterations": iterations, "checkpoint_every": every, "threads": 1, "plot": False},
        }
    )


def test_first_step_equals_the_reference_adam_step(tmp_path):
    trainer = Trainer(tiny(), tmp_path, verbose=False)
    net = trainer.network
    assert isinstance(net, V1EventpropLearner)
    w0 = trainer.initial_state().weights
    assert set(w0) == set(COLUMN)
    history = trainer.run()
    # the reference: the same column (initial weights), the same trials, one Adam step with the same bounds
    col, batch = net.column, trainer.task.batch(0)
    cnet = compile_network(col.network)
    ref = evaluate(cnet, net.trials(batch), col.loss)
    assert history[0]["loss"] == pytest.approx(float(ref.loss), rel=1e-9)
    assert 0.0 <= history[0]["accuracy"] <= 1.0 and history[0]["rate_hz"] > 0
    settings = optimizer_settings(trainer.config.optimizer, batch.n_trials)
    opt = NumpyOptimizer(settings, *edge_bounds(cnet, settings, col.bounds))
    g = np.concatenate([ref.grad_weights[name] for name in cnet.proj_slices])  # projections lie in edge order
    w1, _ = opt.step(cnet.w.astype(float).copy(), g)
    per_projection = {name: w1[sl] for name, sl in cnet.proj_slices.items()}
    for name, sl in cnet.proj_slices.items():  # per EventProp projection (each port, the readout)
        got = col.split(trainer.state.weights)[name] - cnet.w[sl]
        want = per_projection[name] - cnet.w[sl]
        assert np.abs(want).max() > 0, name  # every projection learns
        print(name, per_synapse_rel_err(got, want))  # measured: <= 1.7e-12 (2026-12-06)
        assert per_synapse_rel_err(got, want) <= RTOL, name
    expected = col.join(per_projection)
    for key in COLUMN:  # and back in the e-prop column's arrays
        assert per_synapse_rel_err(trainer.state.weights[key] - w0[key], expected[key] - w0[key]) <= RTOL, key
    # Adam's state per e-prop array, its bias-correction powers after one step
    state = trainer.state.optimizer_state
    assert set(state) == {f"{k}_{p}" for k in ("m", "v", "b1", "b2") for p in COLUMN}
    np.testing.assert_array_equal(state["b1_rec_rec"], np.full(w0["rec_rec"].size, 0.9))
    assert (tmp_path / "metrics.csv").read_text().splitlines()[0] == "iteration,loss,accuracy,rate_hz"


def test_learning_rates_per_array_freeze_the_readout_and_scale_the_lgn_step(tmp_path):
    """Chen et al.'s fixed read-out (learning_rates.rec_out = 0) and the LGN synapses at 4 x the optimizer's eta:
    the first step equals the reference's Adam step with the same per-edge rates (per synapse to 1e-9), the
    readout weights stay as they were bit for bit; readout_eta > 0 is the same as learning_rates.rec_out; the
    Trainer's learning-rate decay scales the rates as it scales eta."""
    trainer = Trainer(tiny(eventprop={"learning_rates": {"rec_out": 0.0, "lgn_rec": 0.2}}), tmp_path, verbose=False)
    net = trainer.network
    rates = net.learning_rates()
    assert rates == {"lgn_rec_ee": 0.2, "lgn_rec_ei": 0.2, "rec_out": 0.0}
    assert "rec_out eta 0 (frozen)" in net.describe()
    w0 = trainer.initial_state().weights
    trainer.run()
    np.testing.assert_array_equal(trainer.state.weights["rec_out"], w0["rec_out"])
    col, batch = net.column, trainer.task.batch(0)
    cnet = compile_network(col.network)
    ref = evaluate(cnet, net.trials(batch), col.loss)
    settings = optimizer_settings(trainer.config.optimizer, batch.n_trials)
    opt = NumpyOptimizer(settings, *edge_bounds(cnet, settings, col.bounds), edge_learning_rates(cnet, settings, rates))
    g = np.concatenate([ref.grad_weights[name] for name in cnet.proj_slices])
    w1, _ = opt.step(cnet.w.astype(float).copy(), g)
    got_all = col.split(trainer.state.weights)
    for name, sl in cnet.proj_slices.items():
        got, want = got_all[name] - cnet.w[sl], w1[sl] - cnet.w[sl]
        if name == "rec_out":
            assert not want.any() and not got.any()
            continue
        assert np.abs(want).max() > 0, name
        assert per_synapse_rel_err(got, want) <= RTOL, name
    # readout_eta is learning_rates.rec_out; the decay scales every rate as it scales eta
    decaying = tiny(readout_eta=0.01)
    decaying = _with(decaying, optimizer__eta_decay=0.5, optimizer__eta_decay_every=1)
    learner = Trainer(decaying, tmp_path / "decay", verbose=False).network
    assert learner.learning_rates() == {"rec_out": 0.01}
    learner.optimizer = decaying.optimizer.at_iteration(2)
    assert learner.learning_rates() == {"rec_out": 0.01 * 0.25}


def test_poisson_background_is_replayed_per_trial_and_fixed(tmp_path):
    """network.v1.background_rate > 0: every trial carries its background spikes (one input per V1 neuron, Poisson
    at the rate), the same ones whenever the trial is drawn and different ones in other trials; NEST and the
    reference replay them: gradients and two Adam steps agree per synapse to 1e-9 on every projection, and the
    background's weights (the e-prop column's drive) do not move."""
    config = tiny(2, 2, background_rate=1000.0)
    learner = Trainer(config, tmp_path, verbose=False).network
    assert "Poisson background 1000 Hz" in learner.describe()
    batch = Trainer(config, tmp_path, verbose=False).task.batch(0)
    first, again = learner.trials(batch), learner.trials(batch)
    n, T = learner.net.layout.cls.size, learner.window.end
    counts = []
    for a, b in zip(first, again, strict=True):
        assert len(a.inputs["bg"]) == n
        for x, y in zip(a.inputs["bg"], b.inputs["bg"], strict=True):
            np.testing.assert_array_equal(x, y)
            assert np.all((x >= 0) & (x < T)) and np.all(np.diff(x) >= 0)
        counts.append(sum(len(x) for x in a.inputs["bg"]))
    assert not np.array_equal(np.concatenate(first[0].inputs["bg"]), np.concatenate(first[1].inputs["bg"]))
    expected = n * 1000.0 * T / 1000.0  # Poisson: sd = sqrt(expected)
    assert all(abs(c - expected) < 5 * np.sqrt(expected) for c in counts), (counts, expected)
    # the stream depends on the network seed and the trial's LGN spikes only
    lgn = first[0].inputs["lgn"]
    np.testing.assert_array_equal(  # (network.v1.seed: the column's seed)
        np.concatenate(background_trial_spikes(lgn, n, 1000.0, T, learner.net.config.seed)),
        np.concatenate(first[0].inputs["bg"]),
    )
    other = background_trial_spikes(lgn, n, 1000.0, T, learner.net.config.seed + 1)
    assert not np.array_equal(np.concatenate(other), np.concatenate(first[0].inputs["bg"]))
    result = compare_v1_eventprop(config, 2)
    assert set(BACKGROUND) <= set(result["projections"])
    for name, r in result["projections"].items():
        print(name, r["gradient_max_rel_err"], r["max_rel_err"])  # measured: <= 2.1e-11, <= 6.6e-11
        assert r["nonzero_gradients"] > 0, name
        assert r["gradient_max_rel_err"] <= RTOL and r["max_rel_err"] <= RTOL, name
        assert (r["max_abs_update"] == 0.0) == (name in BACKGROUND), name
    assert result["loss_max_rel_err"] <= 1e-12


def test_resume_equals_the_uninterrupted_run_and_evaluation_keeps_the_weights(tmp_path):
    whole = Trainer(tiny(2, 2), tmp_path / "whole", verbose=False)  # both iterations in one kernel
    whole.run()
    Trainer(tiny(1, 2), tmp_path / "split", verbose=False).run()  # stops after iteration 1 ...
    second = Trainer(tiny(2, 2), tmp_path / "split", verbose=False)
    second.run(resume=True)  # ... and goes on in a new kernel from the checkpoint
    for key in COLUMN:
        assert not np.array_equal(whole.state.weights[key], whole.initial_state().weights[key]), key
        assert np.array_equal(whole.state.weights[key], second.state.weights[key]), key
    assert set(second.state.optimizer_state) == set(whole.state.optimizer_state)
    for key, value in whole.state.optimizer_state.items():
        assert np.array_equal(value, second.state.optimizer_state[key]), key
    for a, b in zip(whole.state.history, second.state.history, strict=True):
        assert a["loss"] == b["loss"]
    # evaluation: new trials, learning off; the weights NEST ends with are the checkpoint's, bit for bit
    checkpoint = tmp_path / "split" / "checkpoint.npz"
    before = checkpoint.read_bytes()
    evaluator = Trainer(tiny(2, 2), tmp_path / "split", verbose=False)
    result = evaluator.evaluate(n_batches=1)
    assert result["trials"] == 2 and np.isfinite(result["loss"]) and 0.0 <= result["accuracy"] <= 1.0
    assert checkpoint.read_bytes() == before
    saved = load_checkpoint(checkpoint, tiny(2, 2))
    after = evaluator.network.read_weights(None)  # read back from NEST after the frozen run
    for key in COLUMN:
        assert np.array_equal(after[key], saved.weights[key]), key


def _with(config: ExperimentConfig, **changes) -> ExperimentConfig:
    d = config.to_dict()
    for path, value in changes.items():
        *head, last = path.split("__")
        node = d
        for key in head:
            node = node.setdefault(key, {})
        node[last] = value
    return ExperimentConfig.from_dict(d)


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        (
            {"network__v1__readout_eta": 0.01, "network__v1__eventprop": {"learning_rates": {"rec_out": 0.0}}},
            r"network\.v1\.readout_eta = 0\.01 and network\.v1\.eventprop\.learning_rates\.rec_out = 0\.0 both",
        ),
        (
            {"network__v1__eventprop": {"learning_rates": {"lgn": 0.1}}},
            r"network\.v1\.eventprop\.learning_rates: unknown weight array 'lgn'; known: \['lgn_rec'",
        ),
        (
            {"network__v1__eventprop": {"learning_rates": {"rec_rec": -1.0}}},
            r"network\.v1\.eventprop\.learning_rates\.rec_rec = -1\.0: must be >= 0\.0 \(0 freezes the array\)",
        ),
        ({"optimizer__batch_size": 1600}, r"optimizer\.batch_size = 1600: EventProp takes one optimizer step"),
        (
            {
                "task__name": "v1_digits",
                "network__v1__pool_size": 1,
                "network__v1__n_neurons": 600,
                "network__v1__eventprop": {"readout": "threshold", "threshold": 1.0},
            },
            r"network\.v1\.eventprop\.readout = 'threshold' is for binary tasks; this task has 10 classes",
        ),
        (
            {"task__name": "v1_multi", "network__v1__pool_size": 1, "network__v1__n_neurons": 600},
            r"task 'v1_multi' has trials with different response windows \(v1_orientation \[40, 90\).*one at a time",
        ),
    ],  # fmt: skip
)
def test_what_the_learner_cannot_train_is_refused_before_any_simulation(tmp_path, monkeypatch, changes, needle):
    from nestgrad.nest_engine import eventprop as engine

    def no_build(*args, **kwargs):
        raise AssertionError("simulated before the configuration was checked")

    monkeypatch.setattr(engine, "build", no_build)
    with pytest.raises(ConfigError, match=needle):
        Trainer(_with(tiny(), **changes), tmp_path, verbose=False)
    assert not any(tmp_path.iterdir())


def test_chens_pool_readout_is_refused_by_name():
    with pytest.raises(ConfigError, match=r"network\.v1\.eventprop\.readout = 'pools' is invalid: one of \('li', 'thr"):
        _with(tiny(), network__v1__eventprop={"readout": "pools"})


@pytest.mark.parametrize("mode", ["sum", "max"])
def test_threshold_readout_is_the_binary_cross_entropy_of_the_class_1_pool(tmp_path, mode):
    """readout = "threshold" (Chen et al.'s binary read-out): only pool 1 feeds a readout; the input-free readout 0
    sits at y = threshold in every trial (its constant current from the closed form), so the softmax of the two is
    sigmoid(y_1 - threshold) and the loss per trial the binary cross-entropy softplus(z) - label z, z = y_1 - theta;
    NEST's gradients and two Adam steps equal the reference's per synapse to 1e-9; pool 0's readout edges are absent
    (0 in the weight array, before and after training)."""
    theta = 0.5
    config = tiny(2, 2, eventprop={"readout": "threshold", "threshold": theta, "loss": mode})
    trainer = Trainer(config, tmp_path, verbose=False)
    net = trainer.network
    assert f"binary cross-entropy of sigmoid(y - {theta:g} mV)" in net.describe()
    col = net.column
    out = col.network.projection("rec_out")
    assert np.all(out.targets == 1) and out.sources.size == net.net.pools[1].size
    batch = trainer.task.batch(0)
    trials = net.trials(batch)
    ref = evaluate(compile_network(col.network), trials, col.loss)
    labels = np.array([t.label for t in trials])
    assert set(labels) == {0, 1}
    y = np.array(ref.outputs)
    np.testing.assert_allclose(y[:, 0], theta, rtol=1e-12)
    z = y[:, 1] - theta
    bce = np.logaddexp(0.0, z) - labels * z
    assert float(ref.loss) == pytest.approx(float(bce.mean()), rel=1e-12)
    w0 = trainer.initial_state().weights["rec_out"]
    pool0 = net.net.out_tgt == 0
    assert np.all(w0[pool0] == 0.0) and np.all(w0[~pool0] != 0.0)
    result = compare_v1_eventprop(config, 2)
    for name, r in result["projections"].items():
        assert r["gradient_max_rel_err"] <= RTOL and r["max_rel_err"] <= RTOL, name
    assert result["loss_max_rel_err"] <= 1e-12
    trainer.run()
    w1 = trainer.state.weights["rec_out"]
    assert np.all(w1[pool0] == 0.0) and not np.array_equal(w1[~pool0], w0[~pool0])
    # the absent edges' Adam state is that of an edge that never stepped, so the checkpoint loads (and resumes)
    saved = load_checkpoint(tmp_path / "checkpoint.npz", config)
    state = saved.optimizer_state
    assert np.all(state["b1_rec_out"][pool0] == 1.0) and np.all(state["m_rec_out"][pool0] == 0.0)
    assert np.all(state["b1_rec_out"][~pool0] == 0.9 * 0.9)  # two steps
    assert Trainer(config, tmp_path, verbose=False).evaluate(n_batches=1)["trials"] == 2


@pytest.mark.parametrize(
    ("eventprop", "needle"),
    [
        ({"readout": "threshold"}, r"network\.v1\.eventprop\.threshold = None is invalid: readout = 'threshold' "),
        ({"readout": "li", "threshold": 1.0}, r"threshold = 1\.0 is invalid: it is used with readout = 'threshold'"),
        ({"readout": "threshold", "threshold": 1.0, "loss": "sum_exp"}, r"loss = 'sum_exp' is invalid: readout ="),
        ({"readout": "threshold", "threshold": math.nan}, r"threshold = nan is invalid"),
    ],  # fmt: skip
)
def test_threshold_readout_settings_are_checked_by_name(eventprop, needle):
    with pytest.raises(ConfigError, match=needle):
        _with(tiny(), network__v1__eventprop=eventprop)


def test_shipped_config_builds_the_eventprop_learner():
    """The shipped training configuration: Chen's random grating phase, the response window after the stimulus
    (150-200 ms), every refusal passed (the learner is made without simulating anything)."""
    from nestgrad.networks.registry import make_learner

    config = ExperimentConfig.from_toml(SHIPPED)
    assert config.section("task").orientation_phase_deg == "random"
    learner, task = make_learner(config)
    assert isinstance(learner, V1EventpropLearner)
    assert (learner.window.start, learner.window.end) == (150.0, 200.0)
    stim_end = config.section("task").pre_delay_ms + config.section("task").stimulus_ms
    assert learner.window.start >= stim_end  # Chen's window: after the grating
    assert dataclasses.asdict(config.optimizer)["sign_constrained"] is True
    assert task.batch(0).n_trials == config.task.batch_size

"""First-spike-time learning on Yin-Yang through the Trainer (issue 21, items 1, 3, 4): the eventprop architecture's
spiking output layer (loss "first_spike", Göltz et al. 2021) and bias spike, the task ``yinyang`` (spike coding,
batches), their validation, metrics and the decision-region figure.

The learner's network is checked with the reference engine (exact EventProp) here; the NEST runs of the spiking
output layer need FirstSpikeLoss in NEST (tests marked below)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from nestgrad.config import ExperimentConfig
from nestgrad.errors import ConfigError
from nestgrad.networks.eventprop import EventpropRecord
from nestgrad.networks.registry import make_learner
from nestgrad.reference.eventprop import FirstSpikeLoss, compile_network, evaluate
from nestgrad.tasks import yinyang

GOELTZ = {"C_m": 5.0, "tau_m": 5.0, "tau_syn": 5.0}


def config(iterations: int = 3, every: int = 3, optimizer: str = "gradient_descent", eta: float = 0.05,
           batch_size: int = 4, task: dict | None = None, decay: dict | None = None, threads: int = 1,
           **params) -> ExperimentConfig:  # fmt: skip
    base = {
        "n_hidden": 10, "output": "spiking", "loss": "first_spike", "bias_time": 4.5, "hidden": GOELTZ,
        "output_neuron": GOELTZ, "w_in_mean": 1.5, "w_in_std": 0.8, "w_out_mean": 0.5, "w_out_std": 0.8,
    }  # fmt: skip
    return ExperimentConfig.from_dict(
        {
            "network": {
                "architecture": "eventprop",
                "neuron_model": "eventprop_iaf_psc_exp_ps",
                "seed": 5,
                "params": base | params,
            },  # fmt: skip
            "task": {"name": "yinyang", "resolution": 1.0, "batch_size": batch_size, "params": task or {}},
            "optimizer": {"type": optimizer, "eta": eta} | (decay or {}),
            "training": {"iterations": iterations, "checkpoint_every": every, "threads": threads, "plot": False},
        }
    )


# -- configuration ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("params", "task", "needle"),
    [
        ({"loss": "sum"}, {}, "network.params.loss = 'sum' does not fit output = 'spiking'"),
        ({"output": "readout"}, {}, "network.params.loss = 'first_spike' does not fit output = 'readout'"),
        ({"output": "spikes"}, {}, "network.params.output = 'spikes'"),
        ({"loss": "ttfs"}, {}, "network.params.loss = 'ttfs'"),
        ({"xi": 0.0}, {}, "network.params.xi = 0.0"),
        ({"beta": -1.0}, {}, "network.params.beta = -1.0"),
        ({"alpha": -0.1}, {}, "network.params.alpha = -0.1"),
        ({"tau_s": math.inf}, {}, "network.params.tau_s = inf"),
        ({"output": "readout", "loss": "max", "output_neuron": {}, "xi": 0.3}, {}, "network.params.xi = 0.3 is used"),
        ({"output": "readout", "loss": "max"}, {}, "network.params.output_neuron is used by output = 'spiking' only"),
        ({"readout": {"tau_m": 5.0}}, {}, "network.params.readout is the leaky readouts' table"),
        ({"output_neuron": {"V_th": -1.0}}, {}, "network.params.output_neuron: V_th = -1.0 mV must exceed"),
        ({"output_neuron": {"tau_x": 1.0}}, {}, "network.params.output_neuron: unknown parameter(s) ['tau_x']"),
        ({"bias_time": -1.0}, {}, "network.params.bias_time = -1.0"),
        ({"bias_time": 25.0}, {}, "network.params.bias_time = 25.0 ms: need < the trial duration 20.0 ms"),
        ({}, {"t_late": 0.5}, "task.params.t_late = 0.5 ms: need > t_early = 0.75 ms"),
        ({}, {"duration": 9.0}, "task.params.duration = 9.0 ms: need > t_late = 10.0 ms"),
        ({}, {"t_early": -0.1}, "task.params.t_early = -0.1"),
        ({}, {"side": 8}, "task.params: unknown key(s) ['side']"),
    ],
)
def test_bad_first_spike_configurations_are_refused_by_name(params, task, needle):
    with pytest.raises(ConfigError) as err:
        make_learner(config(task=task, **params))
    assert needle in str(err.value)


def test_first_spike_constants_default_to_goeltz_and_the_output_tau_syn():
    net, _ = make_learner(config())
    assert net.config.first_spike_constants() == {"xi": 0.2, "alpha": 0.005, "beta": 1.0, "tau_s": 5.0}
    net, _ = make_learner(config(xi=0.4, tau_s=2.0))
    loss = net.loss()
    assert isinstance(loss, FirstSpikeLoss) and (loss.xi, loss.alpha, loss.beta, loss.tau_s) == (0.4, 0.005, 1.0, 2.0)
    assert "first-spike loss" in net.describe() and "bias spike at 4.5 ms" in net.describe()


# -- the task --------------------------------------------------------------------------------------------------
def test_yinyang_batches_shuffle_every_epoch_and_code_the_points_as_spike_times():
    _, task = make_learner(config(batch_size=500, task={"t_early": 1.0, "t_late": 9.0, "duration": 12.0}))
    train = yinyang.split("train")
    epoch = [task.batch(k) for k in range(10)]  # 10 x 500 = the 5,000 training points once
    seen = []
    for b in epoch:
        for trial, label in zip(b.trials, b.labels, strict=True):
            times = np.array([ts[0] for ts in trial.inputs["in"]])
            u = (times - 1.0) / 8.0  # back to (x, y, 1 - x, 1 - y)
            assert np.allclose(u[2:], 1.0 - u[:2], atol=1e-12)
            seen.append((round(u[0], 9), round(u[1], 9), int(label)))
    expected = {(round(x, 9), round(y, 9), int(c)) for (x, y), c in zip(train.points, train.labels, strict=True)}
    assert len(seen) == 5000 and set(seen) == expected
    second = task.batch(10).labels
    assert not np.array_equal(second, epoch[0].labels)  # a new order in the second epoch
    assert np.array_equal(make_learner(config(batch_size=500))[1].batch(3).labels, epoch[3].labels)  # seeded


def test_yinyang_training_jitter_is_seeded_per_iteration_and_leaves_the_test_points_clean():
    """task.params.jitter (Göltz et al.'s training noise): Gaussian with the configured sd on every training input
    time, mirrored at 0, inside the trial; the same iteration always gets the same noise; evaluation batches (test
    points) and jitter = 0 give the clean times."""
    from nestgrad.tasks import EVALUATION_FIRST_BATCH

    def times(task, k):
        return np.array([[ts[0] for ts in t.inputs["in"]] for t in task.batch(k).trials])

    clean = make_learner(config(batch_size=500))[1]
    noisy = make_learner(config(batch_size=500, task={"jitter": 1.0}))[1]
    again = make_learner(config(batch_size=500, task={"jitter": 1.0}))[1]
    for k in (0, 7):
        t0, t1 = times(clean, k), times(noisy, k)
        assert np.array_equal(t1, times(again, k))
        assert np.array_equal(clean.batch(k).labels, noisy.batch(k).labels)  # the same points, in the same order
        assert t1.min() >= 0.0 and t1.max() < 20.0
        far = t0 > 5.0  # 5 sd from 0 and from the trial's end: neither mirrored nor moved in practice
        d = (t1 - t0)[far]
        assert d.size > 800 and abs(d.std() - 1.0) < 0.08 and abs(d.mean()) < 0.12
    assert not np.array_equal(times(noisy, 0), times(noisy, 10))  # fresh noise for the same points next epoch
    e = EVALUATION_FIRST_BATCH
    assert np.array_equal(times(clean, e), times(noisy, e))
    with pytest.raises(ConfigError, match=r"task.params.jitter = 3.0 ms: need <= \(duration - t_late\) / 4 = 2.5"):
        make_learner(config(task={"jitter": 3.0}))
    with pytest.raises(ConfigError, match="task.params.jitter"):
        make_learner(config(task={"jitter": -1.0}))


def test_yinyang_evaluation_walks_through_the_test_split_and_stops_at_its_end():
    _, task = make_learner(config(batch_size=300))
    test = yinyang.split("test")
    got = np.concatenate([task.batch(1_000_000 + k).labels for k in range(3)])
    assert np.array_equal(got, test.labels[:900])
    with pytest.raises(ConfigError, match=r"beyond the 1000 test points; evaluate at most 3 batches"):
        task.batch(1_000_003)


# -- the learner's network, evaluated by the reference engine ------------------------------------------------------
def test_spiking_output_network_has_a_bias_input_and_trains_every_projection_in_the_reference():
    net, task = make_learner(config(n_hidden=12))
    w = net.initial_weights(5)
    assert list(w) == ["in_hid", "bias_hid", "hid_out", "bias_out"]
    assert [w[k].size for k in w] == [4 * 12, 12, 12 * 3, 3]
    batch = task.batch(0)
    trials = net.trials(batch)
    assert all(t.inputs["bias"] == [[4.5]] for t in trials)
    res = evaluate(net.network(w, net.trial_duration), trials, net.loss())
    for name, g in res.grad_weights.items():
        assert np.abs(g).max() > 0, name
    # the learner's metrics on the reference's first-spike times (NEST reports +inf where the reference uses T)
    t_first = np.array(res.outputs)
    first_out = 4 + 1 + 12  # global id of the first output neuron: inputs, bias, hidden
    spiked = np.array([[bool(r.spikes_of[first_out + j]) for j in range(3)] for r in res.records])
    rec = EventpropRecord(np.where(spiked, t_first, np.inf), 0, np.zeros(0), np.zeros(0), net.trial_duration)
    m = net.metrics(batch, rec)
    assert m["loss"] == pytest.approx(res.loss, rel=1e-12)
    pred = np.where(spiked.any(axis=1), np.argmin(t_first, axis=1), -1)
    assert m["accuracy"] == pytest.approx(np.mean(pred == batch.labels))
    assert m["t_label_ms"] == pytest.approx(np.mean(t_first[np.arange(len(trials)), batch.labels]))


def test_a_trial_without_output_spikes_counts_as_wrong():
    net, task = make_learner(config(batch_size=2))
    batch = task.batch(0)
    T = net.trial_duration
    silent = np.full((2, 3), np.inf)
    m = net.metrics(batch, EventpropRecord(silent, 0, np.zeros(0), np.zeros(0), T))
    assert m["accuracy"] == 0.0 and m["t_label_ms"] == T
    assert m["loss"] == pytest.approx(net.divergence_scale(batch), rel=1e-12)  # the silent network's loss
    right = np.full((2, 3), 9.0)
    right[np.arange(2), batch.labels] = 3.0
    assert net.metrics(batch, EventpropRecord(right, 0, np.zeros(0), np.zeros(0), T))["accuracy"] == 1.0


def test_nest_forward_first_spike_times_equal_the_reference():
    """The forward pass the decision-region figure uses (NEST, learning off) gives the reference's spike times."""
    net, task = make_learner(config(n_hidden=12, batch_size=6))
    w = net.initial_weights(5)
    batch = task.batch(0)
    res = evaluate(net.network(w, net.trial_duration), net.trials(batch), net.loss(), gradient=False)
    got = net.first_spike_times(w, batch.trials, resolution=1.0)
    want = np.array(res.outputs)
    assert np.all(np.isfinite(got) == (want < net.trial_duration))
    fin = np.isfinite(got)
    assert fin.sum() > 0 and np.abs(got[fin] - want[fin]).max() <= 1e-9


def test_yinyang_readout_network_trains_through_the_trainer(tmp_path):
    """output = "readout" on Yin-Yang with the bias spike: the Trainer's losses equal the reference's GD."""
    from nestgrad.training.trainer import Trainer

    cfg = config(2, 2, output="readout", loss="max", output_neuron={}, readout=GOELTZ)
    trainer = Trainer(cfg, tmp_path, verbose=False)
    w = {k: v.copy() for k, v in trainer.initial_state().weights.items()}
    history = trainer.run()
    net = trainer.network
    for k in range(2):
        batch = trainer.task.batch(k)
        res = evaluate(net.network(w, net.trial_duration), net.trials(batch), net.loss())
        assert res.loss == pytest.approx(history[k]["loss"], rel=1e-9)
        w = {name: w[name] - 0.05 * res.grad_weights[name] for name in w}
    for name, expected in w.items():
        assert np.abs(trainer.state.weights[name] - expected).max() <= 1e-9 * np.abs(expected).max(), name


def test_decision_region_figure_is_written(tmp_path):
    from nestgrad import plotting

    xs = ys = np.linspace(0, 1, 30)
    gx, gy = np.meshgrid(xs, ys)
    pred = yinyang.classify(gx, gy).astype(float)
    pred[0, :5] = -1
    pred[np.hypot(gx - 0.5, gy - 0.5) > 0.5] = np.nan
    test = yinyang.split("test")
    path = tmp_path / "regions.png"
    plotting.plot_decision_regions(xs, ys, pred, test.points, test.labels, path, "test")
    assert path.stat().st_size > 10_000


# -- through the Trainer in NEST (FirstSpikeLoss in NEST) -------------------------------------------------------------
def test_ttfs_trainer_weights_equal_reference_gradient_descent(tmp_path):
    """3 iterations of gradient descent on Yin-Yang batches with spiking outputs and the bias spike: every weight
    equals the reference engine's gradient descent to 1e-9 of its change; every loss equals the reference's."""
    from nestgrad.training.trainer import Trainer

    trainer = Trainer(config(3, 3, n_hidden=10), tmp_path, verbose=False)
    w0 = {k: v.copy() for k, v in trainer.initial_state().weights.items()}
    history = trainer.run()
    net = trainer.network
    w = w0
    for k in range(3):
        batch = trainer.task.batch(k)
        res = evaluate(net.network(w, net.trial_duration), net.trials(batch), net.loss())
        assert res.loss == pytest.approx(history[k]["loss"], rel=1e-9)
        w = {name: w[name] - 0.05 * res.grad_weights[name] for name in w}
    for name, expected in w.items():
        change = np.abs(expected - w0[name]).max()
        assert change > 0, name
        assert np.abs(trainer.state.weights[name] - expected).max() <= 1e-9 * change, name
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0]
    assert header == "iteration,loss,accuracy,t_label_ms,silent_outputs,rate_hz"


def test_learning_rate_decay_steps_inside_a_block_as_the_reference(tmp_path):
    """optimizer.eta_decay / eta_decay_every (StepLR): 4 iterations of gradient descent in one block of 4 with eta
    halved after every 2: the Trainer ends a NEST kernel at the step, and every weight equals the reference engine's
    gradient descent with eta, eta, eta / 2, eta / 2 to 1e-9 of its change."""
    from nestgrad.training.trainer import Trainer

    decay = {"eta_decay": 0.5, "eta_decay_every": 2}
    trainer = Trainer(config(4, 4, n_hidden=10, decay=decay), tmp_path, verbose=False)
    w0 = {k: v.copy() for k, v in trainer.initial_state().weights.items()}
    history = trainer.run()
    net = trainer.network
    w = w0
    for k in range(4):
        res = evaluate(net.network(w, net.trial_duration), net.trials(trainer.task.batch(k)), net.loss())
        assert res.loss == pytest.approx(history[k]["loss"], rel=1e-9)
        w = {name: w[name] - 0.05 * 0.5 ** (k // 2) * res.grad_weights[name] for name in w}
    for name, expected in w.items():
        change = np.abs(expected - w0[name]).max()
        assert change > 0, name
        assert np.abs(trainer.state.weights[name] - expected).max() <= 1e-9 * change, name


def test_learning_rate_decay_resumes_bit_identically_across_its_step(tmp_path):
    """Adam with eta x 0.3 every 3 iterations, checkpoints every 2: a run stopped at 2 and resumed to 5 (the step
    falls inside the resumed block) equals the uninterrupted run bit for bit, weights and moments."""
    from nestgrad.training.trainer import Trainer

    decay = {"eta_decay": 0.3, "eta_decay_every": 3}
    whole = Trainer(config(5, 2, "adam", 0.01, n_hidden=10, decay=decay), tmp_path / "whole", verbose=False)
    whole.run()
    Trainer(config(2, 2, "adam", 0.01, n_hidden=10, decay=decay), tmp_path / "split", verbose=False).run()
    second = Trainer(config(5, 2, "adam", 0.01, n_hidden=10, decay=decay), tmp_path / "split", verbose=False)
    second.run(resume=True)
    for name, w in whole.state.weights.items():
        assert np.array_equal(w, second.state.weights[name]), name
    for key, value in whole.state.optimizer_state.items():
        assert np.array_equal(value, second.state.optimizer_state[key]), key
    plain = Trainer(config(5, 2, "adam", 0.01, n_hidden=10), tmp_path / "plain", verbose=False)
    plain.run()
    assert not np.array_equal(plain.state.weights["in_hid"], whole.state.weights["in_hid"])  # the decay acted


def test_ttfs_adam_run_resumes_bit_identically(tmp_path):
    from nestgrad.training.checkpoint import load_checkpoint
    from nestgrad.training.trainer import Trainer

    whole = Trainer(config(4, 2, "adam", 0.01, n_hidden=10), tmp_path / "whole", verbose=False)
    whole.run()
    Trainer(config(2, 2, "adam", 0.01, n_hidden=10), tmp_path / "split", verbose=False).run()
    second = Trainer(config(4, 2, "adam", 0.01, n_hidden=10), tmp_path / "split", verbose=False)
    second.run(resume=True)
    names = ("in_hid", "bias_hid", "hid_out", "bias_out")
    assert set(second.state.weights) == set(names)
    for name, w in whole.state.weights.items():
        assert np.array_equal(w, second.state.weights[name]), name
    assert set(second.state.optimizer_state) == {f"{m}_{p}" for m in ("m", "v", "b1", "b2") for p in names}
    for key, value in whole.state.optimizer_state.items():
        assert np.array_equal(value, second.state.optimizer_state[key]), key
    assert load_checkpoint(tmp_path / "split" / "checkpoint.npz", second.config).iteration == 4


def test_adam_bias_correction_continues_across_kernels(tmp_path):
    """Adam through the Trainer with a new NEST kernel for every iteration (checkpoint_every = 1) equals the
    reference's uninterrupted Adam (bias correction beta^t over all steps so far, as PyTorch's Adam) to 1e-9 of the
    change: the synapses' bias-correction powers go into the checkpoint and into each new kernel. (Without them each
    kernel restarted the correction at t = 1, which shrinks Adam's steps, by ~5x over an epoch of 50 batches.)"""
    from nestgrad.reference.eventprop.optimizer import train
    from nestgrad.training.trainer import Trainer

    trainer = Trainer(config(4, 1, "adam", 0.01, n_hidden=10), tmp_path, verbose=False)
    w0 = {k: v.copy() for k, v in trainer.initial_state().weights.items()}
    trainer.run()
    net = trainer.network
    trials = [trial for k in range(4) for trial in net.trials(trainer.task.batch(k))]
    ref = train(net.network(w0, net.trial_duration), trials, net.loss(), net.optimizer_settings(4))
    assert len(ref.losses) == 4
    for name, w in ref.weights.items():
        change = np.abs(w - w0[name]).max()
        assert change > 0, name
        assert np.abs(trainer.state.weights[name] - w).max() <= 1e-9 * change, name
        np.testing.assert_array_equal(trainer.state.optimizer_state[f"b1_{name}"], ref.optimizer.beta_1_power)
        np.testing.assert_array_equal(trainer.state.optimizer_state[f"b2_{name}"], ref.optimizer.beta_2_power)


def test_ttfs_evaluation_keeps_the_weights_and_scores_the_test_points(tmp_path):
    from nestgrad.training.trainer import Trainer

    trainer = Trainer(config(2, 2, n_hidden=10), tmp_path, verbose=False)
    trainer.run()
    before = {k: v.copy() for k, v in trainer.state.weights.items()}
    result = trainer.evaluate(n_batches=2)
    assert result["trials"] == 8
    for name, w in before.items():
        assert np.array_equal(w, trainer.state.weights[name])
    # the evaluation's accuracy is the earliest-spike prediction of the NEST forward pass on the same test points
    net = trainer.network
    test = yinyang.split("test")
    trials = [trainer.task.batch(1_000_000 + k) for k in range(2)]
    t = net.first_spike_times(trainer.state.weights, [tr for b in trials for tr in b.trials], 1.0)
    pred = np.where(np.isfinite(t).any(axis=1), np.argmin(t, axis=1), -1)
    assert result["accuracy"] == pytest.approx(np.mean(pred == test.labels[:8]))


def test_seed_script_trains_evaluates_and_draws(tmp_path, monkeypatch):
    """scaling_runs/yinyang_ttfs.py on a tiny configuration: one seed, one iteration per kernel; the summary holds
    the evaluation's test accuracy, which equals that of the figure's own forward pass over the same test points."""
    import json
    import pathlib
    import sys

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "scaling_runs"))
    import yinyang_ttfs as script

    toml = tmp_path / "tiny.toml"
    toml.write_text(
        """
[network]
architecture = "eventprop"
neuron_model = "eventprop_iaf_psc_exp_ps"
seed = 1
[network.params]
n_hidden = 8
output = "spiking"
loss = "first_spike"
bias_time = 4.5
w_in_mean = 1.5
w_in_std = 0.8
w_out_mean = 0.5
w_out_std = 0.8
hidden = { C_m = 5.0, tau_m = 5.0, tau_syn = 5.0, t_ref = 20.0 }
output_neuron = { C_m = 5.0, tau_m = 5.0, tau_syn = 5.0, t_ref = 20.0 }
[task]
name = "yinyang"
resolution = 1.0
batch_size = 500
[optimizer]
type = "adam"
eta = 0.01
[training]
iterations = 1
checkpoint_every = 1
threads = 1
plot = false
"""
    )
    assert script.main(["--config", str(toml), "--seeds", "3", "--out", str(tmp_path / "runs")]) == 0
    # a second series written beside it (another process, same folder): the summary holds both seeds
    other = dict(json.loads((tmp_path / "runs" / "seed3" / "run.json").read_text()), test_accuracy=0.5)
    (tmp_path / "runs" / "seed7").mkdir()
    (tmp_path / "runs" / "seed7" / "run.json").write_text(json.dumps(other))
    assert script.main(["--config", str(toml), "--seeds", "3", "--out", str(tmp_path / "runs"), "--figure-only"]) == 0
    summary = json.loads((tmp_path / "runs" / "yinyang_ttfs.json").read_text())
    assert set(summary["runs"]) == {"3", "7"}
    run = summary["runs"]["3"]
    assert summary["mean_test_accuracy"] == pytest.approx((run["test_accuracy"] + 0.5) / 2, abs=1e-15)
    assert run["iterations"] == 1 and run["epochs"] == 0.1 and run["test_points"] == 1000
    assert run["test_accuracy"] == pytest.approx(run["figure_test_accuracy"], abs=1e-12)
    assert (tmp_path / "runs" / "seed3" / "decision_regions.png").stat().st_size > 10_000
    header = (tmp_path / "runs" / "seed3" / "metrics.csv").read_text().splitlines()[0]
    assert header == "iteration,loss,accuracy,t_label_ms,silent_outputs,rate_hz"
    per_batch = json.loads((tmp_path / "runs" / "seed3" / "evaluation.json").read_text())["per_batch"]
    assert set(per_batch[0]) == {"loss", "accuracy", "t_label_ms", "silent_outputs", "rate_hz"}


def test_weight_bumping_raises_the_weights_into_silent_outputs(tmp_path):
    """weight_bump: after each batch in which an output missed a spike, the weights into it grow by weight_bump on
    top of the reference's gradient-descent step (1e-9 of the change); outputs that always spiked get the step only."""
    from nestgrad.training.trainer import Trainer

    bump = 0.05
    cfg = config(3, 3, n_hidden=10, w_out_mean=0.1, w_out_std=0.3, weight_bump=bump)
    trainer = Trainer(cfg, tmp_path, verbose=False)
    w0 = {k: v.copy() for k, v in trainer.initial_state().weights.items()}
    history = trainer.run()
    net = trainer.network
    w = w0
    bumped = 0
    for k in range(3):
        batch = trainer.task.batch(k)
        n = net.network(w, net.trial_duration)
        res = evaluate(n, net.trials(batch), net.loss())
        first_out = 4 + 1 + 10
        silent = np.array([any(not r.spikes_of[first_out + j] for r in res.records) for j in range(3)])
        assert history[k]["silent_outputs"] == silent.sum()
        bumped += int(silent.sum())
        new = {}
        for name in w:
            p = n.projection(name)
            into_silent = silent[p.targets] if p.target == "out" else np.zeros(len(w[name]), bool)
            new[name] = w[name] - 0.05 * res.grad_weights[name] + bump * into_silent
        w = new
    assert bumped > 0  # the test exercises bumping
    for name, expected in w.items():
        change = np.abs(expected - w0[name]).max()
        assert np.abs(trainer.state.weights[name] - expected).max() <= 1e-9 * change, name


def _bump_every_edge(self, built, targets: np.ndarray, value: float, comm) -> None:
    """Weight bumping as the learner did it before it touched only the edges into the bumped neurons: every edge
    read (gathered), the bump added to those into a bumped neuron, every edge written back (both copies)."""
    from nestgrad.nest_engine import eventprop as engine

    w = engine.read_edges(built, ("weight",), comm=comm)["weight"]
    w = w + value * np.isin(built.cnet.tgt, targets)
    engine.write_edges(built, {"weight": w})


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, np.float64).view(np.uint64)  # compares -0.0 and 0.0, NaNs, bit for bit


@pytest.mark.parametrize("threads", [1, 2])
def test_weight_bumping_equals_bumping_every_edge_bit_for_bit(tmp_path, monkeypatch, threads):
    """Adam, 6 iterations in 2 blocks with outputs falling silent: the weights and Adam moments after training with
    weight bumping (only the edges into the silent outputs read and written) equal, bit for bit, those of the former
    bumping (every edge of the network read and written after each batch with a silent output); the reverse copy of
    every edge keeps its forward connection's weight."""
    from nestgrad.nest_engine import eventprop as engine
    from nestgrad.networks.eventprop import EventpropLearner
    from nestgrad.training.trainer import Trainer

    # weak output weights and a small bump: 2-3 of the 3 outputs are silent in every batch of both blocks
    cfg = config(6, 3, optimizer="adam", eta=0.01, n_hidden=10, w_out_mean=-0.1, w_out_std=0.3, weight_bump=0.02,
                 threads=threads)  # fmt: skip
    runs = {}
    for how in ("edges_into_silent", "every_edge"):
        with monkeypatch.context() as m:
            if how == "every_edge":
                m.setattr(EventpropLearner, "_bump", _bump_every_edge)
            trainer = Trainer(cfg, tmp_path / how, verbose=False)
            history = trainer.run()
            built = trainer.network.built
            forward = engine.read_edges(built, ("weight",))["weight"]
            reverse = engine.read_edges(built, ("weight",), reverse=True)["weight"]
        has_reverse = ~np.isnan(reverse)
        assert has_reverse.sum() > 0
        np.testing.assert_array_equal(_bits(reverse[has_reverse]), _bits(forward[has_reverse]))
        runs[how] = (trainer.state, [h["silent_outputs"] for h in history])
    (new, new_silent), (old, old_silent) = runs["edges_into_silent"], runs["every_edge"]
    print(f"threads {threads}: silent outputs per iteration {new_silent}")
    assert new_silent == old_silent and all(n > 0 for n in new_silent)  # both bumped after every batch
    assert set(new.weights) == set(old.weights) and set(new.optimizer_state) == set(old.optimizer_state)
    assert set(new.optimizer_state)  # Adam's moments are compared too
    for name, w in old.weights.items():
        assert np.abs(w - new.weights[name]).max() == 0.0 and np.array_equal(_bits(new.weights[name]), _bits(w)), name
    for name, v in old.optimizer_state.items():
        assert np.array_equal(_bits(new.optimizer_state[name]), _bits(v)), name


@pytest.mark.parametrize(
    ("optimizer", "threads", "cap"),
    [("gradient_descent", 1, None), ("gradient_descent", 2, None), ("adam", 1, None), ("adam", 1, 0.075)],
)
def test_goeltz_bumping_protocol_equals_the_reference(tmp_path, optimizer, threads, cap):
    """Göltz et al.'s bumping protocol through the Trainer (gradient descent or Adam, 8 iterations of 4 trials; weak
    input and output weights): after each batch, if more than 30 % of the (trial, hidden neuron) pairs had no spike the
    hidden neurons that missed a spike are bumped, else the outputs that missed one; the bump doubles when the same
    layer was bumped after the previous batch; a bumped batch takes no step. Every weight equals this protocol run on
    the reference engine's spikes and gradients to 1e-9 of its change (Adam: its moments and bias correction move only
    with the steps taken), and each part of it happened. With weight_bump_max (``cap``) the doubling stops there."""
    from nestgrad.reference.eventprop.optimizer import NumpyOptimizer
    from nestgrad.training.trainer import Trainer

    bump, f = 0.05, 0.3
    goeltz = {"weight_bump_doubling": True, "weight_bump_skips_step": True, "weight_bump_hidden_missing": f}
    cfg = config(8, 4, optimizer, 0.05 if optimizer == "gradient_descent" else 0.01, n_hidden=10, w_in_mean=0.6,
                 w_out_mean=0.1, w_out_std=0.3, weight_bump=bump, threads=threads, weight_bump_max=cap,
                 **goeltz)  # fmt: skip
    trainer = Trainer(cfg, tmp_path, verbose=False)
    w0 = {k: v.copy() for k, v in trainer.initial_state().weights.items()}
    history = trainer.run()
    net = trainer.network
    hid, out = np.arange(5, 15), np.arange(15, 18)  # 4 inputs and the bias, then the hidden neurons, the outputs
    w, events, last, value = w0, [], None, bump
    n_edges = sum(len(v) for v in w0.values())
    opt = NumpyOptimizer(net.optimizer_settings(4), np.full(n_edges, -math.inf), np.full(n_edges, math.inf))
    for k in range(8):
        if k == 4:
            last, value = None, bump  # a new kernel (checkpoint_every = 4): the doubling starts afresh
        n = net.network(w, net.trial_duration)
        res = evaluate(n, net.trials(trainer.task.batch(k)), net.loss())
        spiked = np.array([[bool(r.spikes_of[j]) for j in range(18)] for r in res.records])
        layer, targets = None, np.zeros(0, int)
        if 1.0 - spiked[:, hid].mean() > f:
            layer, targets = "hid", hid[~spiked[:, hid].all(axis=0)]
        elif not spiked[:, out].all():
            layer, targets = "out", out[~spiked[:, out].all(axis=0)]
        assert history[k]["silent_outputs"] == int((~spiked[:, out].all(axis=0)).sum())
        if layer is None:
            cnet = compile_network(n)
            g = np.zeros(n_edges)
            flat = np.zeros(n_edges)
            for name, sl in cnet.proj_slices.items():
                g[sl], flat[sl] = res.grad_weights[name], w[name]
            flat, _ = opt.step(flat, g)
            w = {name: flat[sl] for name, sl in cnet.proj_slices.items()}
            events.append("step")
        else:
            value = min(2 * value, math.inf if cap is None else cap) if layer == last else bump
            cnet = compile_network(n)
            w = {name: w[name] + value * np.isin(cnet.tgt[sl], targets) for name, sl in cnet.proj_slices.items()}
            events.append(f"{layer} {value:g}")
        last = layer
    print(f"threads {threads}: {events}")
    assert any(e.startswith("hid") for e in events) and any(e.startswith("out") for e in events)
    doubled = 2 * bump if cap is None else cap
    assert "step" in events and any(e.endswith(f" {doubled:g}") for e in events), events
    for name, expected in w.items():
        change = np.abs(expected - w0[name]).max()
        assert change > 0, name
        assert np.abs(trainer.state.weights[name] - expected).max() <= 1e-9 * change, (name, events)


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"weight_bump_doubling": True}, "network.params.weight_bump_doubling is part of weight bumping"),
        ({"weight_bump_skips_step": 1}, "network.params.weight_bump_skips_step = 1: true or false"),
        ({"weight_bump": 0.1, "weight_bump_hidden_missing": 1.0}, "weight_bump_hidden_missing = 1.0: a fraction"),
        ({"weight_bump": 0.1, "weight_bump_hidden_missing": -0.1}, "weight_bump_hidden_missing = -0.1: must be >="),
        ({"weight_bump_hidden_missing": 0.3}, "weight_bump_hidden_missing is part of weight bumping"),
        ({"weight_bump_max": 0.3}, "weight_bump_max is part of weight bumping"),
        ({"weight_bump": 0.1, "weight_bump_max": 0.3}, "weight_bump_max = 0.3 limits the doubling: it needs"),
        (
            {"weight_bump": 0.1, "weight_bump_doubling": True, "weight_bump_max": 0.05},
            "weight_bump_max = 0.05: must be >= 0.1 (weight_bump)",
        ),
        (
            {"weight_bump": 0.1, "weight_bump_doubling": True, "weight_bump_max": math.inf},
            "weight_bump_max = inf is invalid: a finite number is required",
        ),
    ],
)
def test_bad_bumping_protocol_settings_are_refused_by_name(params, needle):
    with pytest.raises(ConfigError, match=re.escape(needle)):
        config(**params)


def test_weight_bump_is_refused_with_readouts():
    with pytest.raises(ConfigError, match=r"network.params.weight_bump = 0.1 is used by output = 'spiking' only"):
        make_learner(config(output="readout", loss="max", output_neuron={}, weight_bump=0.1))
    with pytest.raises(ConfigError, match=r"network.params.weight_bump = -1.0"):
        make_learner(config(weight_bump=-1.0))


def test_weight_bump_and_window_are_refused_where_they_cannot_hold():
    """The bump is added outside the bounded optimizer step, so it cannot keep Dale's law or weight bounds; the
    response window belongs to the readouts' cross-entropy, not to the first-spike loss."""
    with pytest.raises(ConfigError, match=r"weight_bump = 0.1 cannot be combined with dale"):
        make_learner(config(weight_bump=0.1, dale=True))
    with pytest.raises(ConfigError, match=r"weight_bump = 0.1 cannot be combined with dale or w_out_min"):
        make_learner(config(weight_bump=0.1, w_out_max=5.0))
    with pytest.raises(ConfigError, match=r"window_start = 2.0 is a window of the readouts' cross-entropy"):
        make_learner(config(window_start=2.0))


def test_spike_buffers_only_grow_so_the_kernel_status_stays_small(tmp_path):
    """NEST logs every resize of its spike buffers in the kernel status, and by default shrinks them after any step
    that sends < 20 % of their size: EventProp's bursty steps then resized them almost every step, and the log made
    every GetKernelStatus (and so every SynapseCollection.get/set of the weight bumps) cost tens of ms after one
    epoch. nestgrad's kernels only grow the buffers: a block of 20 batches leaves a handful of entries, not one per
    step (NEST's default left 9,713 here)."""
    import nest

    from nestgrad.training.trainer import Trainer

    trainer = Trainer(config(20, 20, batch_size=20, n_hidden=30, weight_bump=0.0005), tmp_path, verbose=False)
    trainer.run()
    assert nest.GetKernelStatus("spike_buffer_shrink_limit") == 0.0
    assert len(trainer.network.built.nodes) > 0  # the block's kernel is still the current one
    assert len(nest.GetKernelStatus("spike_buffer_resize_log")["times"]) <= 10

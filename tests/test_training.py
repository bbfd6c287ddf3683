"""Trainer: learning works, checkpoint/resume is bit-identical, threads give the same results, outputs exist."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from nestgrad.config import ExperimentConfig, NetworkConfig, OptimizerConfig, TaskConfig, TrainingConfig
from nestgrad.training.trainer import CheckpointError, Trainer, load_checkpoint


def small_config(
    model: str = "eprop_iaf_psc_exp",
    iterations: int = 6,
    every: int = 3,
    threads: int = 1,
    optimizer: str = "gradient_descent",
    eta: float = 1e-5,
    task: str = "sine",
    algorithm: str = "step",
) -> ExperimentConfig:
    return ExperimentConfig(
        network=NetworkConfig(neuron_model=model, n_rec=30, gradient_algorithm=algorithm),
        task=TaskConfig(name=task, sequence_steps=400, batch_size=1, n_cues=3, delay_steps=100),
        optimizer=OptimizerConfig(type=optimizer, eta=eta),
        training=TrainingConfig(iterations=iterations, checkpoint_every=every, threads=threads, plot=False),
    )


def weights_of(trainer: Trainer) -> dict[str, np.ndarray]:
    return trainer.state.weights


@pytest.mark.parametrize("model", ["eprop_iaf_psc_exp", "eprop_iaf", "eprop_iaf_psc_exp_nestml"])
def test_training_halves_the_sine_loss(tmp_path, model):
    cfg = ExperimentConfig.from_toml(f"python/nestgrad/configs/sine_{model}.toml")
    cfg = dataclasses.replace(cfg, training=dataclasses.replace(cfg.training, iterations=30, plot=False))
    history = Trainer(cfg, tmp_path, verbose=False).run()
    first, last = history[0]["loss"], np.mean([h["loss"] for h in history[-3:]])
    assert last < 0.5 * first, (first, last)


def test_weights_change_and_stay_finite(tmp_path):
    trainer = Trainer(small_config(iterations=2, every=2), tmp_path, verbose=False)
    w0 = trainer.initial_state().weights
    trainer.run()
    for key in ("in_rec", "rec_rec", "rec_out"):
        assert np.all(np.isfinite(weights_of(trainer)[key]))
        assert not np.array_equal(weights_of(trainer)[key], w0[key]), key
    np.testing.assert_array_equal(np.diag(weights_of(trainer)["rec_rec"]), 0.0)
    np.testing.assert_array_equal(weights_of(trainer)["feedback"], w0["feedback"])  # not plastic


@pytest.mark.parametrize(
    "optimizer, eta, algorithm", [("gradient_descent", 1e-5, "step"), ("adam", 1e-6, "step"), ("adam", 1e-6, "event")]
)
def test_resume_is_bit_identical(tmp_path, optimizer, eta, algorithm):
    def cfg(iterations: int) -> ExperimentConfig:
        return small_config(iterations=iterations, every=3, optimizer=optimizer, eta=eta, algorithm=algorithm)

    full = Trainer(cfg(6), tmp_path / "full", verbose=False)
    full.run()

    part = Trainer(cfg(3), tmp_path / "part", verbose=False)
    part.run()
    if optimizer == "adam":
        assert np.abs(part.state.optimizer_state["m_in_rec"]).max() > 0  # Adam state saved and restored
        # nestgrad's event synapses also keep Adam's bias-correction powers; NEST's eprop_synapse (the readouts' and
        # the step algorithm's) does not
        powers = {f"{b}_{p}" for b in ("b1", "b2") for p in ("in_rec", "rec_rec")} if algorithm == "event" else set()
        moments = {f"{m}_{p}" for m in ("m", "v") for p in ("in_rec", "rec_rec", "rec_out")}
        assert set(part.state.optimizer_state) == moments | powers
        if powers:
            assert part.state.optimizer_state["b2_in_rec"].min() < 0.9  # more than 100 Adam steps taken
    resumed = Trainer(cfg(6), tmp_path / "part", verbose=False)
    resumed.run(resume=True)

    for key, w in weights_of(full).items():
        np.testing.assert_array_equal(weights_of(resumed)[key], w, err_msg=key)
    assert [h["loss"] for h in resumed.state.history] == [h["loss"] for h in full.state.history]


def test_checkpoint_from_other_configuration_is_refused(tmp_path):
    Trainer(small_config(iterations=2, every=2), tmp_path, verbose=False).run()
    other = dataclasses.replace(small_config(iterations=4, every=2), optimizer=OptimizerConfig(eta=2e-5))
    with pytest.raises(CheckpointError, match="optimizer.eta"):
        Trainer(other, tmp_path, verbose=False).run(resume=True)


def test_existing_checkpoint_is_not_overwritten(tmp_path):
    Trainer(small_config(iterations=2, every=2), tmp_path, verbose=False).run()
    saved = (tmp_path / "checkpoint.npz").read_bytes()
    with pytest.raises(CheckpointError, match="exists"):
        Trainer(small_config(iterations=2, every=2), tmp_path, verbose=False).run()
    assert (tmp_path / "checkpoint.npz").read_bytes() == saved


def test_checkpoint_contents(tmp_path):
    cfg = small_config(iterations=2, every=2)
    trainer = Trainer(cfg, tmp_path, verbose=False)
    trainer.run()
    state = load_checkpoint(tmp_path / "checkpoint.npz", cfg)
    assert state.iteration == 2 and len(state.history) == 2
    for key, w in trainer.state.weights.items():
        np.testing.assert_array_equal(state.weights[key], w)
    assert not list(tmp_path.glob("*.tmp")), "atomic write leaves no temporary file"


def test_two_threads_reproduce_themselves_and_match_one_thread(tmp_path):
    """Same number of virtual processes -> bit-identical; 1 vs 2 virtual processes -> summation order only."""
    runs = {}
    for name, threads in (("t2a", 2), ("t2b", 2), ("t1", 1)):
        tr = Trainer(small_config(iterations=3, every=3, threads=threads), tmp_path / name, verbose=False)
        tr.run()
        runs[name] = tr
    for key in ("in_rec", "rec_rec", "rec_out"):
        np.testing.assert_array_equal(weights_of(runs["t2a"])[key], weights_of(runs["t2b"])[key])
        # different numbers of virtual processes sum synaptic input in another order: rounding-level differences
        np.testing.assert_allclose(weights_of(runs["t1"])[key], weights_of(runs["t2a"])[key], rtol=1e-9, atol=1e-12)


def test_evidence_task_reports_accuracy_and_writes_plots(tmp_path):
    cfg = small_config(task="evidence", iterations=2, every=2)
    cfg = dataclasses.replace(cfg, training=dataclasses.replace(cfg.training, plot=True))
    history = Trainer(cfg, tmp_path, verbose=False).run()
    assert all(0.0 <= h["accuracy"] <= 1.0 for h in history)
    for name in ("loss.png", "raster.png", "readout.png", "metrics.csv", "config.json", "checkpoint.npz"):
        assert (tmp_path / name).stat().st_size > 0, name
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0]
    assert header == "iteration,loss,accuracy,rate_hz"


class _EvidenceTwice:
    """Two tasks in one run for the Trainer's per-task scores: the evidence task answered on readouts 0-1 by even
    trials and on readouts 2-3 by odd ones (a stand-in for v1_multi, which needs thousands of neurons)."""

    def __init__(self, inner):
        self.inner, self.n_in, self.n_out, self.trial_steps = inner, inner.n_in, 4, inner.trial_steps
        self.kind, self.config, self.seed = inner.kind, inner.config, inner.seed

    def batch(self, iteration: int):
        from nestgrad.tasks import TaskReadouts

        b = self.inner.batch(iteration)
        of_trial = np.arange(b.n_trials) % 2
        target = np.zeros((b.steps, 4))
        for k, j in enumerate(of_trial):
            rows = slice(k * b.trial_steps, (k + 1) * b.trial_steps)
            target[rows, 2 * j : 2 * j + 2] = b.target[rows]
        tasks = TaskReadouts(("first", "second"), ((0, 2), (2, 4)), of_trial)
        return dataclasses.replace(b, target=target, labels=b.labels + 2 * of_trial, task_readouts=tasks)


def test_several_tasks_are_scored_each_on_its_own_readouts(tmp_path, monkeypatch, capsys):
    from nestgrad import cli
    from nestgrad.networks import registry
    from nestgrad.networks.eprop_classic import EpropNetwork
    from nestgrad.training import trainer as trainer_module

    def make(config):
        _, task = registry.make_learner(config)
        net = EpropNetwork(config.network, config.optimizer, task.n_in, 4, config.task.resolution)
        net.sign_reference = net.initial_weights(config.network.seed, dense=True)
        return net, _EvidenceTwice(task)

    monkeypatch.setattr(trainer_module, "make_learner", make)
    cfg = small_config(iterations=2, every=2, task="evidence", optimizer="adam", eta=1e-3)
    cfg = dataclasses.replace(cfg, task=dataclasses.replace(cfg.task, batch_size=3))
    trainer = Trainer(cfg, tmp_path, verbose=False)
    history = trainer.run()
    assert (tmp_path / "metrics.csv").read_text().splitlines()[0] == (
        "iteration,loss,accuracy,accuracy_first,accuracy_second,rate_hz"
    )
    # per iteration: 2 trials of the first task, 1 of the second; accuracy counts every trial once
    for h in history:
        assert h["accuracy"] == pytest.approx((2 * h["accuracy_first"] + h["accuracy_second"]) / 3)
    result = trainer.evaluate(n_batches=3)
    per_task = result["accuracy_per_task"]
    assert per_task["first"]["trials"] == 6 and per_task["second"]["trials"] == 3
    per_batch = result["per_batch"]
    assert per_task["first"]["accuracy"] == pytest.approx(np.mean([b["accuracy_first"] for b in per_batch]))
    assert per_task["second"]["accuracy"] == pytest.approx(np.mean([b["accuracy_second"] for b in per_batch]))
    assert result["accuracy"] == pytest.approx(
        (6 * per_task["first"]["accuracy"] + 3 * per_task["second"]["accuracy"]) / 9
    )
    # the command line prints each task's score
    monkeypatch.setattr(cli.ExperimentConfig, "from_toml", staticmethod(lambda path: cfg))
    assert cli.main(["evaluate", "unused.toml", "--out", str(tmp_path), "--batches", "3"]) == 0
    printed = capsys.readouterr().out
    assert f"first: accuracy {per_task['first']['accuracy']:.3f} on 6 trials" in printed
    assert f"second: accuracy {per_task['second']['accuracy']:.3f} on 3 trials" in printed


def test_recorded_target_is_aligned_with_task_data(tmp_path):
    """The readout's recorded target equals the task's target step by step: loss and data are aligned."""
    trainer = Trainer(small_config(iterations=1, every=1), tmp_path, verbose=False)
    trainer.run()
    batch, rec = trainer.last
    np.testing.assert_array_equal(rec.target, batch.target * batch.learning_window[:, None])


def test_evaluate_tests_new_trials_with_learning_off(tmp_path):
    import nest

    trainer = Trainer(
        small_config(iterations=2, every=2, task="evidence", optimizer="adam", eta=1e-3), tmp_path, verbose=False
    )
    trainer.run()
    trained = {k: v.copy() for k, v in trainer.state.weights.items()}
    result = trainer.evaluate(n_batches=3)
    # the kernel of the evaluation is still there: its weights are the trained ones, unchanged by 3 batches
    after = trainer.network.read_weights(nest)
    for key in ("in_rec", "rec_rec", "rec_out"):
        np.testing.assert_array_equal(after[key], trained[key], err_msg=key)
    assert result["batches"] == 3 and result["trials"] == 3 and result["iteration"] == 2
    assert len(result["per_batch"]) == 3 and 0.0 <= result["accuracy"] <= 1.0
    assert result["loss"] == pytest.approx(np.mean([b["loss"] for b in result["per_batch"]]))
    assert (tmp_path / "evaluation.json").exists()
    # a new Trainer evaluates the checkpoint: same numbers
    again = Trainer(
        small_config(iterations=2, every=2, task="evidence", optimizer="adam", eta=1e-3), tmp_path, verbose=False
    ).evaluate(n_batches=3)
    assert again == result
    # the baseline: the untrained network on the same trials
    base = trainer.evaluate(n_batches=3, initial=True)
    assert base["iteration"] == 0 and base["loss"] != result["loss"]
    assert (tmp_path / "evaluation_initial.json").exists() and trainer.state.iteration == 2
    with pytest.raises(ValueError, match="first_batch = 1 overlaps the training batches"):
        trainer.evaluate(first_batch=1)
    with pytest.raises(ValueError, match="n_batches = 0"):
        trainer.evaluate(n_batches=0)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        Trainer(small_config(), tmp_path / "empty", verbose=False).evaluate()


def test_diverged_training_stops_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    """Non-finite weights at the end of a block raise an error that names the projection and the iteration, and
    the checkpoint of the previous block stays as it was."""
    from nestgrad.training.trainer import TrainingDivergedError

    trainer = Trainer(small_config(iterations=4, every=2), tmp_path, verbose=False)
    real = trainer.network.read_weights
    calls = []

    def read_weights(nest):
        w = real(nest)
        calls.append(1)
        if len(calls) == 2:  # the second block "diverges"
            w["rec_rec"] = w["rec_rec"].copy()
            w["rec_rec"][0, 1] = np.nan
        return w

    monkeypatch.setattr(trainer.network, "read_weights", read_weights)
    with pytest.raises(TrainingDivergedError, match=r"by iteration 4: non-finite weights in rec_rec \(1 of 900\)"):
        trainer.run()
    assert load_checkpoint(tmp_path / "checkpoint.npz", trainer.config).iteration == 2


def test_dales_law_holds_across_checkpoint_blocks(tmp_path):
    """A sign-constrained weight that reaches 0 keeps its sign's bounds when the next block rebuilds the network
    (the signs come from the initial weights, not from the weights being built)."""
    cfg = small_config(iterations=4, every=1, optimizer="adam", eta=0.05)
    cfg = dataclasses.replace(cfg, optimizer=dataclasses.replace(cfg.optimizer, sign_constrained=True))
    # eta = 0.05 drives weights to 0 on purpose; its loss explodes (~1e4 x the target's scale): no divergence check
    cfg = dataclasses.replace(cfg, training=dataclasses.replace(cfg.training, divergence_factor=float("inf")))
    trainer = Trainer(cfg, tmp_path, verbose=False)
    w0 = trainer.initial_state().weights
    trainer.run()
    w = trainer.state.weights
    reached_zero = 0
    for key in ("in_rec", "rec_rec"):
        assert np.all(w[key][w0[key] > 0] >= 0) and np.all(w[key][w0[key] < 0] <= 0), key
        reached_zero += int(np.sum((w[key] == 0) & (w0[key] != 0)))
    assert reached_zero > 0  # the case this test is about occurred


def test_learning_rate_decay_reaches_the_eprop_synapses(tmp_path, monkeypatch):
    """optimizer.eta_decay / eta_decay_every with an e-prop network: the Trainer ends a kernel at each step of the
    decay and builds the next one with the decayed eta (NEST's eprop synapses read it at build); the weights then
    differ from the run without decay from the step on, and not before it."""
    from nestgrad.networks.eprop_classic import EpropNetwork

    etas: list[float] = []
    build = EpropNetwork.build

    def recording_build(self, nest, *args, **kwargs):
        etas.append(self.optimizer.eta)
        return build(self, nest, *args, **kwargs)

    monkeypatch.setattr(EpropNetwork, "build", recording_build)
    cfg = small_config(iterations=4, every=4, eta=1e-4)
    decayed = dataclasses.replace(cfg, optimizer=dataclasses.replace(cfg.optimizer, eta_decay=0.5, eta_decay_every=2))
    two = dataclasses.replace(decayed.training, iterations=2, checkpoint_every=2)
    short = dataclasses.replace(decayed, training=two)
    a = Trainer(decayed, tmp_path / "decay", verbose=False)
    a.run()
    assert etas == [1e-4, 5e-5]  # one kernel per step of the decay inside the block of 4
    b = Trainer(cfg, tmp_path / "plain", verbose=False)
    b.run()
    c = Trainer(short, tmp_path / "short", verbose=False)
    c.run()
    d = Trainer(dataclasses.replace(cfg, training=short.training), tmp_path / "short_plain", verbose=False)
    d.run()
    for name in ("in_rec", "rec_rec"):
        assert np.array_equal(c.state.weights[name], d.state.weights[name]), name  # before the step: the same
    assert not np.array_equal(a.state.weights["rec_rec"], b.state.weights["rec_rec"])


def _replay_in_blocks(cfg: ExperimentConfig, with_powers: tuple[str, ...]) -> tuple[dict, dict]:
    """The reference engine (NEST 3.10's e-prop in NumPy, nestgrad.reference.online) replaying the Trainer with one
    kernel per iteration: each block starts from rest with the weights and Adam's state of the previous block's end;
    only the projections ``with_powers`` keep Adam's bias-correction powers from block to block, the others restart
    them at beta^0 = 1. Returns the final weights and optimizer state ([post, pre] matrices)."""
    from nestgrad.comparison.nest_runs import spec_from_config
    from nestgrad.reference.online import run_online

    spec = spec_from_config(cfg, cfg.training.iterations)
    T = spec.iteration_steps
    weights, state = spec.weights, {}
    for k in range(spec.iterations):
        block = slice(k * T, (k + 1) * T)
        part = dataclasses.replace(
            spec, weights=weights, input_spikes=spec.input_spikes[block], target=spec.target[block],
            window=spec.window[block],
        )  # fmt: skip
        ref = run_online(part, optimizer_state=state)
        weights = ref.weights
        state = {key: v for key, v in ref.optimizer_state.items() if key[:2] in ("m_", "v_") or
                 key.split("_", 1)[1] in with_powers}  # fmt: skip
    return weights, state


@pytest.mark.parametrize(
    "algorithm, with_powers", [("event", ("in_rec", "rec_rec")), ("step", ())], ids=["event", "step"]
)
def test_adam_bias_correction_continues_across_kernels(tmp_path, algorithm, with_powers):
    """Adam through the Trainer with a new NEST kernel for every iteration (checkpoint_every = 1) equals the
    reference engine's Adam carried over the same blocks, to 1e-9 of the weight change (max over synapses): with
    nestgrad's event synapses the bias correction beta^t continues over all steps so far (the powers go into the
    checkpoint and into each new kernel); NEST's eprop_synapse (the readout projection always, every projection of
    the step algorithm with eprop_iaf_psc_exp) keeps no powers and restarts them in every kernel. A run in one
    kernel is no reference here: every block starts from rest, so checkpoint_every changes e-prop's trajectory even
    with gradient descent. The replay with every power restarting (what the Trainer did before the powers were kept)
    is far from the event synapses' run, so the test tells the two apart."""
    cfg = small_config(iterations=3, every=1, optimizer="adam", eta=1e-6, algorithm=algorithm)
    trainer = Trainer(cfg, tmp_path, verbose=False)
    w0 = trainer.initial_state().weights
    trainer.run()
    w_ref, state_ref = _replay_in_blocks(cfg, with_powers)
    w_restart, _ = _replay_in_blocks(cfg, ())
    for name in ("in_rec", "rec_rec", "rec_out"):
        change = np.abs(w_ref[name] - w0[name]).max()
        err = np.abs(trainer.state.weights[name] - w_ref[name]).max()
        assert change > 0 and err <= 1e-9 * change, (name, err / change)
        if name in with_powers:  # restarting the powers makes a difference far above the tolerance
            assert np.abs(w_restart[name] - w_ref[name]).max() > 1e-3 * change, name
    assert set(trainer.state.optimizer_state) == set(state_ref)
    for key, value in state_ref.items():
        got = trainer.state.optimizer_state[key]
        if key[:2] in ("b1", "b2"):  # beta^t by the same products: equal when the step counts are
            np.testing.assert_array_equal(got, value, err_msg=key)
        else:
            np.testing.assert_allclose(got, value, rtol=1e-7, atol=1e-9 * np.abs(value).max(), err_msg=key)


def test_checkpoint_without_adam_powers_resumes_with_them_restarted(tmp_path):
    """A checkpoint written before the bias-correction powers were kept (only Adam's moments) still resumes: the
    powers then start at 1 (t = 0), exactly as if the checkpoint held powers of 1; with the saved powers the
    resumed run differs (the powers reach the synapses)."""
    import shutil

    cfg = small_config(iterations=2, every=2, optimizer="adam", eta=1e-6, algorithm="event")
    longer = small_config(iterations=4, every=2, optimizer="adam", eta=1e-6, algorithm="event")
    Trainer(cfg, tmp_path / "saved", verbose=False).run()
    for variant in ("old", "ones"):
        shutil.copytree(tmp_path / "saved", tmp_path / variant)
        path = tmp_path / variant / "checkpoint.npz"
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
        powers = [k for k in arrays if k.startswith(("opt_b1_", "opt_b2_"))]
        assert sorted(powers) == ["opt_b1_in_rec", "opt_b1_rec_rec", "opt_b2_in_rec", "opt_b2_rec_rec"]
        for key in powers:
            if variant == "old":
                del arrays[key]
            else:
                arrays[key] = np.ones_like(arrays[key])
        np.savez(path, **arrays)
    runs = {}
    for variant in ("saved", "old", "ones"):
        runs[variant] = Trainer(longer, tmp_path / variant, verbose=False)
        runs[variant].run(resume=True)
    for name in ("in_rec", "rec_rec", "rec_out"):
        np.testing.assert_array_equal(runs["old"].state.weights[name], runs["ones"].state.weights[name])
    assert not np.array_equal(runs["saved"].state.weights["in_rec"], runs["old"].state.weights["in_rec"])
    # the resumed run saves the powers again, counted from the resume on
    assert runs["old"].state.optimizer_state["b1_in_rec"].max() < 1.0

"""The temporal EventProp task (issue 20, item 8): evidence accumulation with exact spike times
(tasks/evidence_spikes.py) trained by the ``eventprop`` architecture with a recurrent adaptive hidden layer and the
cross-entropy over the recall window.

Checked: the trial protocol (who fires when, the label, seeding, held-out evaluation trials); the validation of
``[task.params]`` naming the field; and training through the Trainer: after 3 iterations of gradient descent every
weight equals the reference engine's gradient descent on the same batches with the same windowed loss to 1e-9 of
its change (as tests/test_eventprop_training.py does for the digits)."""

from __future__ import annotations

import numpy as np
import pytest

from nestgrad.config import EvidenceSpikesConfig, ExperimentConfig
from nestgrad.errors import ConfigError
from nestgrad.reference.eventprop import ReadoutCrossEntropy, evaluate
from nestgrad.tasks import EVALUATION_FIRST_BATCH
from nestgrad.tasks.evidence_spikes import EvidenceSpikes
from nestgrad.training.trainer import Trainer

TINY_TASK = {"n_cues": 3, "group": 3, "cue_ms": 10.0, "cue_spacing_ms": 5.0, "delay_ms": 10.0, "recall_ms": 10.0,
             "cue_rate": 200.0, "background_rate": 20.0}  # fmt: skip


def tiny(iterations: int = 3, every: int = 3, task: dict | None = None, **params) -> ExperimentConfig:
    net_params = {"n_hidden": 8, "recurrent": True, "w_in_mean": 1.0, "w_in_std": 1.0, "w_rec_std": 0.5,
                  "w_out_mean": 0.0, "w_out_std": 0.5,
                  "hidden": {"adapt_beta": 0.3, "adapt_tau": 50.0, "t_ref": 1.0}} | params  # fmt: skip
    return ExperimentConfig.from_dict(
        {
            "network": {
                "architecture": "eventprop",
                "neuron_model": "eventprop_iaf_psc_exp_ps",
                "seed": 5,
                "params": net_params,
            },  # fmt: skip
            "task": {"name": "evidence_spikes", "resolution": 1.0, "batch_size": 3, "params": TINY_TASK | (task or {})},
            "optimizer": {"type": "gradient_descent", "eta": 0.05},
            "training": {"iterations": iterations, "checkpoint_every": every, "threads": 1, "plot": False},
        }
    )


def test_trial_protocol():
    """Cue groups fire only during their cues, on the side the cue was drawn for; the recall group only in the
    recall window; the background all trial long; the label is the side with more cue periods."""
    c = EvidenceSpikesConfig(n_cues=5, cue_rate=400.0, background_rate=50.0)
    task = EvidenceSpikes(c, batch_size=40, seed=7)
    assert (task.n_in, task.n_out, task.duration, task.recall_start) == (40, 2, 625.0, 525.0)
    trials = task.trials(0)
    labels = np.array([t.label for t in trials])
    assert 0 < labels.sum() < 40  # both classes occur
    g = c.group
    for trial, label in zip(trials, labels, strict=True):
        spikes = trial.inputs["in"]
        assert len(spikes) == 4 * g and trial.label == label
        periods = {0: set(), 1: set()}
        for side in (0, 1):
            for t in np.concatenate(spikes[side * g : (side + 1) * g]):
                i, within = divmod(float(t), c.cue_period)
                assert within < c.cue_ms and i < c.n_cues, f"cue spike at {t} ms outside a cue"
                periods[side].add(int(i))
        assert not periods[0] & periods[1], "a cue period fired on both sides"
        # at 400 Hz x 10 neurons x 50 ms (200 expected spikes) every cue shows up
        assert len(periods[0]) + len(periods[1]) == c.n_cues
        assert label == int(len(periods[1]) > len(periods[0]))
        recall = np.concatenate(spikes[2 * g : 3 * g])
        assert recall.size > 0 and recall.min() >= c.recall_start and recall.max() < c.duration
        background = np.concatenate(spikes[3 * g :])
        assert background.min() >= 0.0 and background.max() < c.duration
        assert all(np.all(np.diff(s) >= 0) for s in spikes)


def test_poisson_counts_have_the_set_rates():
    """Background count per neuron over many trials: mean rate x T within 5 standard errors."""
    c = EvidenceSpikesConfig(background_rate=30.0)
    task = EvidenceSpikes(c, batch_size=200, seed=1)
    counts = np.array([len(s) for t in task.trials(0) for s in t.inputs["in"][3 * c.group :]])
    expected = 30.0 * c.duration / 1000.0
    assert abs(counts.mean() - expected) <= 5 * np.sqrt(expected / counts.size)
    assert counts.var() == pytest.approx(expected, rel=0.2)  # Poisson: variance = mean


def test_batches_are_seeded_and_evaluation_trials_are_held_out():
    c = EvidenceSpikesConfig()
    a, b = EvidenceSpikes(c, 4, seed=3), EvidenceSpikes(c, 4, seed=3)
    for it in (0, 5, EVALUATION_FIRST_BATCH):
        for ta, tb in zip(a.trials(it), b.trials(it), strict=True):
            assert all(np.array_equal(x, y) for x, y in zip(ta.inputs["in"], tb.inputs["in"], strict=True))
    assert not np.array_equal(a.trials(0)[0].inputs["in"][30], a.trials(1)[0].inputs["in"][30])
    other_seed = EvidenceSpikes(c, 4, seed=4)
    ev_a, ev_b = a.trials(EVALUATION_FIRST_BATCH), other_seed.trials(EVALUATION_FIRST_BATCH)
    # evaluation trials depend on test_seed only (the same held-out set for every training seed)
    assert all(np.array_equal(x, y) for x, y in zip(ev_a[0].inputs["in"], ev_b[0].inputs["in"], strict=True))


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"n_cues": 4}, "task.params.n_cues = 4"),
        ({"n_cues": 2.0}, "task.params.n_cues = 2.0"),
        ({"group": 0}, "task.params.group = 0"),
        ({"cue_ms": 0.0}, "task.params.cue_ms = 0.0"),
        ({"delay_ms": -1.0}, "task.params.delay_ms = -1.0"),
        ({"cue_rate": 2000.0}, "task.params.cue_rate = 2000.0"),
        ({"background_rate": float("nan")}, "task.params.background_rate = nan"),
        ({"cue_side_probability": 0.3}, "task.params.cue_side_probability = 0.3"),
        ({"colour": 1}, "task.params: unknown key(s) ['colour']"),
    ],
)
def test_bad_task_params_are_refused_by_name(change, needle):
    with pytest.raises(ConfigError) as err:
        tiny(task=change)
    assert needle in str(err.value)


def test_window_start_beyond_the_trial_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"network.params.window_start = 70.0 ms: need < the trial's 65.0 ms"):
        Trainer(tiny(window_start=70.0), tmp_path, verbose=False)
    with pytest.raises(ConfigError, match=r"network.params.window_start = -1.0"):
        tiny(window_start=-1.0)


def test_trainer_weights_equal_reference_gradient_descent_with_the_recall_window(tmp_path):
    """3 iterations of gradient descent through the Trainer (recurrent ALIF hidden layer, loss over the recall
    window [55, 65] ms): each iteration's loss and the final weights equal the reference engine's."""
    trainer = Trainer(tiny(), tmp_path, verbose=False)
    net = trainer.network
    assert net.window_start == 55.0 and net.trial_duration == 65.0
    assert "over [55, 65] ms" in net.describe()
    loss = net.loss()
    assert isinstance(loss, ReadoutCrossEntropy) and loss.window_start == 55.0
    w0 = {k: v.copy() for k, v in trainer.initial_state().weights.items()}
    assert set(w0) == {"in_hid", "hid_hid", "hid_out"}
    history = trainer.run()
    w = w0
    spikes = 0
    for k in range(3):
        batch = trainer.task.batch(k)
        res = evaluate(net.network(w, net.trial_duration), batch.trials, loss)
        spikes += sum(len(r.spike_t) for r in res.records)
        assert res.loss == pytest.approx(history[k]["loss"], rel=1e-9)
        w = {name: w[name] - 0.05 * res.grad_weights[name] for name in w}
    assert spikes >= 30, f"only {spikes} hidden spikes in 9 trials: the test would say little"
    for name, expected in w.items():
        got = trainer.state.weights[name]
        change = np.abs(expected - w0[name]).max()
        assert change > 0, name
        assert np.abs(got - expected).max() <= 1e-9 * change, name


def test_whole_trial_loss_can_be_chosen(tmp_path):
    """network.params.window_start = 0 trains on the whole trial (the loss a feedforward readout can solve by
    integrating the cues): a different loss from the recall window's on the same weights and trials."""
    trainer = Trainer(tiny(1, 1, window_start=0.0), tmp_path, verbose=False)
    assert trainer.network.window_start == 0.0
    history = trainer.run()
    net = trainer.network
    w0 = trainer.initial_state().weights
    trials = trainer.task.batch(0).trials
    whole = evaluate(net.network(w0, net.trial_duration), trials, ReadoutCrossEntropy("out", "sum"))
    window = evaluate(net.network(w0, net.trial_duration), trials, ReadoutCrossEntropy("out", "sum", None, 55.0))
    assert whole.loss == pytest.approx(history[0]["loss"], rel=1e-9)
    assert whole.loss != pytest.approx(window.loss, rel=1e-6)


def test_evaluation_keeps_the_weights_and_reads_held_out_trials(tmp_path):
    trainer = Trainer(tiny(1, 1), tmp_path, verbose=False)
    trainer.run()
    before = {k: v.copy() for k, v in trainer.state.weights.items()}
    result = trainer.evaluate(n_batches=2)
    assert result["trials"] == 6 and 0.0 <= result["accuracy"] <= 1.0
    for name, w in before.items():
        assert np.array_equal(w, trainer.state.weights[name])

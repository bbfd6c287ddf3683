"""Per-trial gradient clipping of NEST's spiking EventProp neurons (``max_trial_gradient`` of
``eventprop_iaf_psc_exp_ps``; Göltz et al.'s ``max_dw_norm``): a neuron whose largest incoming weight gradient of one
trial exceeds the limit drops that trial's gradients of all its incoming weights. Checked against the reference
engine's twin (``reference.eventprop.optimizer.batch_gradient``) at the 1e-9 relative tolerance of the other
EventProp training tests (RTOL), with limits chosen so that some, not all, (trial, neuron) pairs are dropped."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_eventprop_nest_gradients import OPTIMIZERS, assert_training_equals_reference
from test_eventprop_nest_spike_losses import spiking_net
from test_eventprop_reference import make_trials
from test_yinyang_ttfs import config

from nestgrad.errors import ConfigError
from nestgrad.nest_engine.eventprop import build, run_training
from nestgrad.reference.eventprop import FirstSpikeLoss, compile_network, evaluate
from nestgrad.reference.eventprop.optimizer import batch_gradient, drop_large_trial_gradients, train


def per_trial_maxima(cnet, trials, losses) -> np.ndarray:
    """Per trial and spiking neuron: the largest |dL/dw| of the trial over the neuron's incoming edges."""
    spiking = np.array([k == "lif" for k in cnet.kind])
    out = []
    for trial in trials:
        res = evaluate(cnet, [trial], losses[0], regularisers=losses[1:])
        g = np.zeros(len(cnet.w))
        for k, sl in cnet.proj_slices.items():
            g[sl] = res.grad_weights[k]
        largest = np.zeros(cnet.n)
        np.maximum.at(largest, cnet.tgt, np.abs(g))
        out.append(largest[spiking])
    return np.array(out)


def test_drop_large_trial_gradients_zeroes_every_edge_into_a_neuron_over_the_limit():
    """The NumPy twin's rule on a hand-made gradient: the edges into a spiking neuron whose largest |g| exceeds the
    limit become 0 (all of them, whatever their own size); the other neurons' edges and readouts' edges stay."""
    net = spiking_net("ff", 1)
    cnet = compile_network(net)
    rng = np.random.default_rng(3)
    g = rng.normal(0.0, 1.0, len(cnet.w))
    j = int(cnet.tgt[0])  # a hidden neuron
    g[cnet.tgt == j] = 0.1
    g[np.flatnonzero(cnet.tgt == j)[-1]] = -7.0  # one large gradient into j
    limit = 5.0
    got = drop_large_trial_gradients(cnet, g, limit)
    largest = np.zeros(cnet.n)
    np.maximum.at(largest, cnet.tgt, np.abs(g))
    dropped = largest[cnet.tgt] > limit
    assert dropped[cnet.tgt == j].all()
    assert 0 < dropped.sum() < len(g)
    np.testing.assert_array_equal(got[dropped], 0.0)
    np.testing.assert_array_equal(got[~dropped], g[~dropped])
    np.testing.assert_array_equal(drop_large_trial_gradients(cnet, g, math.inf), g)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
def test_clipped_training_in_nest_equals_the_reference(opt_name: str, threads: int) -> None:
    """4 batches of 2 trials with the first-spike loss on a recurrent spiking network, the limit at the median of
    the first weights' per-(trial, neuron) maxima: NEST's weights equal the reference's clipped training to 1e-9
    relative, both copies of every edge agree bit for bit, and the clipped result differs from the unclipped one
    (by far more than the tolerance), so that the clipping was exercised."""
    loss = FirstSpikeLoss("out")
    net = spiking_net("recurrent", 2)
    trials = make_trials(2, n_trials=8)
    cnet = compile_network(net)
    maxima = per_trial_maxima(cnet, trials[:2], (loss,))
    limit = float(np.median(maxima[maxima > 0]))
    n_dropped = int((maxima > limit).sum())
    assert 0 < n_dropped < maxima.size, (n_dropped, maxima.size)
    opt = dict(OPTIMIZERS[opt_name], batch_size=2)
    want = train(net, trials, loss, dict(opt, max_trial_gradient=limit)).weights
    plain = train(net, trials, loss, opt).weights
    assert max(np.max(np.abs(want[k] - plain[k])) for k in want) > 1e-4
    got = run_training(net, trials, loss, dict(opt, max_trial_gradient=limit), threads=threads)
    assert_training_equals_reference(net, want, got, f"{opt_name} threads {threads} limit {limit:.3g}")


def test_batch_gradient_without_a_limit_is_the_references_batch_mean():
    loss = FirstSpikeLoss("out")
    cnet = compile_network(spiking_net("ff", 1))
    trials = make_trials(1, n_trials=3)
    res = evaluate(cnet, trials, loss)
    g = batch_gradient(cnet, trials, loss, math.inf)
    for k, sl in cnet.proj_slices.items():
        np.testing.assert_array_equal(g[sl], res.grad_weights[k])
    # a limit above every per-trial maximum keeps every trial: the mean of the trials' gradients
    big = batch_gradient(cnet, trials, loss, 1e300)
    np.testing.assert_allclose(big, g, rtol=1e-12, atol=1e-15 * np.abs(g).max())


def test_yinyang_trainer_with_max_trial_gradient_equals_the_reference(tmp_path):
    """network.params.max_trial_gradient through the Trainer (Yin-Yang, bias spike, spiking outputs, 3 iterations of
    gradient descent): every weight equals the reference's clipped gradient descent to 1e-9 of its change, and the
    limit dropped some (trial, neuron) pairs of the first batch."""
    from nestgrad.training.trainer import Trainer

    probe = Trainer(config(3, 3, n_hidden=10), tmp_path / "probe", verbose=False)
    w0 = {k: v.copy() for k, v in probe.initial_state().weights.items()}
    learner = probe.network
    cnet0 = compile_network(learner.network(w0, learner.trial_duration))
    maxima = per_trial_maxima(cnet0, learner.trials(probe.task.batch(0)), (learner.loss(),))
    limit = float(np.quantile(maxima[maxima > 0], 0.75))
    assert 0 < int((maxima > limit).sum()) < maxima.size

    trainer = Trainer(config(3, 3, n_hidden=10, max_trial_gradient=limit), tmp_path / "run", verbose=False)
    trainer.run()
    w = w0
    for k in range(3):
        cnet = compile_network(learner.network(w, learner.trial_duration))
        g = batch_gradient(cnet, learner.trials(trainer.task.batch(k)), learner.loss(), limit)
        w = {name: w[name] - 0.05 * g[sl] for name, sl in cnet.proj_slices.items()}
    for name, expected in w.items():
        change = np.abs(expected - w0[name]).max()
        assert change > 0, name
        assert np.abs(trainer.state.weights[name] - expected).max() <= 1e-9 * change, name


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, True, "30"])
def test_bad_max_trial_gradient_is_refused_by_name(bad):
    net = spiking_net("ff", 1)
    opt = dict(OPTIMIZERS["gradient_descent"], batch_size=1, max_trial_gradient=bad)
    with pytest.raises(ConfigError, match=r"optimizer max_trial_gradient = .*need a number > 0"):
        build(net, make_trials(1), loss=FirstSpikeLoss("out"), optimizer=opt)
    if not isinstance(bad, bool | str):
        with pytest.raises(ConfigError, match=r"network.params.max_trial_gradient = "):
            config(max_trial_gradient=bad)


def test_nest_neuron_refuses_a_bad_limit_by_name():
    import nest

    from nestgrad.nest_engine import fresh_kernel

    fresh_kernel(0.1, 1, 1)
    n = nest.Create("eventprop_iaf_psc_exp_ps")
    assert n.get("max_trial_gradient") == math.inf
    with pytest.raises(Exception, match=r"max_trial_gradient = -2.0+ /pA must be > 0"):
        n.set(max_trial_gradient=-2.0)
    assert n.get("max_trial_gradient") == math.inf
    n.set(max_trial_gradient=30.0)
    assert n.get("max_trial_gradient") == 30.0

"""Learning rates per projection for EventProp (issue 22: per-projection learning rates; frozen projections such as
Chen et al.'s fixed pool read-out).

``learning_rates`` = projection -> eta replaces the optimizer's eta for that projection (0 freezes it). The NumPy
twin is ``reference.eventprop.optimizer.edge_learning_rates`` + ``NumpyOptimizer``; NEST keeps the rate as a common
property of copies of both EventProp synapse models (``nest_engine.eventprop.bounded_models``), like the bounds.
The rule is that of tests/test_eventprop_nest_gradients.py: NEST's weights equal the reference's to 1e-9 relative
per synapse, and a frozen projection keeps its initial weights bit for bit, on both copies of every edge.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_eventprop_dale import LOSS, base_net, tight_bounds
from test_eventprop_nest_gradients import OPTIMIZERS, RTOL
from test_eventprop_reference import make_trials

from nestgrad.errors import ConfigError
from nestgrad.nest_engine.eventprop import build, run_training
from nestgrad.reference.eventprop import compile_network
from nestgrad.reference.eventprop.optimizer import edge_learning_rates, train


def test_reference_rates_freeze_and_scale_one_gradient_descent_step() -> None:
    """One GD step: a frozen projection keeps its weights bit for bit, a projection at 3 x eta moves 3 x as far as
    with the optimizer's eta (the gradient is the same: it is taken before the step), the others as without rates."""
    net = base_net()
    trials = make_trials(2, n_trials=2)
    opt = dict(OPTIMIZERS["gradient_descent"], batch_size=2, Wmin=-math.inf, Wmax=math.inf)
    plain = train(net, trials, LOSS, opt)
    rated = train(net, trials, LOSS, opt, learning_rates={"in_hid": 0.0, "hid_out": 3 * opt["eta"]})
    w0 = {p.name: np.asarray(p.weights, float) for p in net.projections}
    np.testing.assert_array_equal(rated.weights["in_hid"], w0["in_hid"])
    np.testing.assert_array_equal(rated.weights["hid_hid"], plain.weights["hid_hid"])
    moved, moved_3 = plain.weights["hid_out"] - w0["hid_out"], rated.weights["hid_out"] - w0["hid_out"]
    assert np.abs(moved).max() > 1e-3
    np.testing.assert_allclose(moved_3, 3 * moved, rtol=1e-12, atol=1e-15 * np.abs(moved).max())


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
def test_eventprop_nest_training_with_learning_rates_equals_reference(opt_name: str, threads: int) -> None:
    """3 batches of 2 trials, recurrent ALIF, bounds on every projection (each its initial range) and rates of their
    own on two: the input projection frozen, the output at 4 x eta; the recurrent one keeps the optimizer's eta (and
    its bounds copy). NEST == reference per synapse, the frozen weights unchanged on both copies."""
    net = base_net()
    eta = {"gradient_descent": 0.2, "adam": 0.02}[opt_name]
    opt = dict(OPTIMIZERS[opt_name], batch_size=2, eta=eta)
    rates = {"in_hid": 0.0, "hid_out": 4 * eta}
    trials = make_trials(2, n_trials=6)
    want = train(net, trials, LOSS, opt, bounds=tight_bounds(net), learning_rates=rates)
    got = run_training(net, trials, LOSS, opt, threads=threads, bounds=tight_bounds(net), learning_rates=rates)
    for p in net.projections:
        w0, w, g = np.asarray(p.weights, float), want.weights[p.name], got.weights[p.name]
        if p.name == "in_hid":
            np.testing.assert_array_equal(g, w0)
            np.testing.assert_array_equal(w, w0)
            continue
        assert np.abs(w - w0).max() > 1e-3, f"{p.name}: the weights hardly moved, the test would say little"
        err = np.abs(g - w) / np.maximum(np.abs(w), 1e-3 * np.abs(w).max())
        print(f"{opt_name} threads {threads} {p.name}: max rel err {err.max():.2e}")
        assert err.max() <= RTOL, p.name
    for name, rev in got.reverse_weights.items():  # reverse copies take the same steps, bit for bit
        has = ~np.isnan(rev)
        np.testing.assert_array_equal(rev[has], got.weights[name][has])
    # and the rates matter: without them the output projection ends elsewhere
    plain = train(net, trials, LOSS, opt, bounds=tight_bounds(net))
    assert np.abs(plain.weights["hid_out"] - want.weights["hid_out"]).max() > 1e-3


def test_learning_rates_use_model_copies_with_their_eta() -> None:
    net = base_net()
    opt = dict(OPTIMIZERS["adam"], batch_size=2)
    built = build(net, make_trials(2, n_trials=2), loss=LOSS, optimizer=opt, learning_rates={"hid_out": 0.0})
    nest = built.nest
    sizes = {g.model: len(g.edges) for g in built.groups}
    cnet = built.cnet
    assert sizes["eventprop_synapse__hid_out"] == len(cnet.w[cnet.proj_slices["hid_out"]])
    for model in ("eventprop_synapse__hid_out", "eventprop_reverse_synapse__hid_out"):
        assert nest.GetDefaults(model)["optimizer"]["eta"] == 0.0, model
    assert nest.GetDefaults("eventprop_synapse")["optimizer"]["eta"] == opt["eta"]


def test_learning_rates_refuse_bad_input() -> None:
    net = base_net()
    cnet = compile_network(net)
    opt = dict(OPTIMIZERS["adam"], batch_size=2)
    with pytest.raises(ConfigError, match=r"learning_rates: no projection named 'nope'; have \['hid_hid'"):
        edge_learning_rates(cnet, opt, {"nope": 0.1})
    for bad in (-0.1, math.nan, math.inf, True, "0.1"):
        with pytest.raises(ConfigError, match=r"learning_rates\['hid_out'\] = .*: need a finite number >= 0"):
            edge_learning_rates(cnet, opt, {"hid_out": bad})
    with pytest.raises(ConfigError, match=r"need an optimizer"):
        build(net, make_trials(2, n_trials=2), loss=LOSS, learning_rates={"hid_out": 0.0})
    eta = edge_learning_rates(cnet, opt, {"hid_out": 0.5})
    assert np.all(eta[cnet.proj_slices["hid_out"]] == 0.5) and np.all(eta[cnet.proj_slices["in_hid"]] == opt["eta"])


# -- the eventprop architecture: network.params.learning_rates --------------------------------------------------------
def test_eventprop_architecture_learning_rates_agree_with_the_reference(tmp_path) -> None:
    """``nestgrad compare`` on an eventprop configuration with the input projection frozen and the readout at
    2 x eta: the learner the Trainer uses against the reference gradients + the NumPy optimizer with the same rates,
    <= 1e-9 per synapse; the frozen projection does not move."""
    from test_eventprop_dale import tiny_config

    from nestgrad.comparison.eventprop_compare import compare_eventprop

    config = tiny_config(learning_rates={"in_hid": 0.0, "hid_out": 0.1})
    result = compare_eventprop(config, iterations=3, out_dir=tmp_path)
    for name, r in result["projections"].items():
        print(name, r["max_abs_update"], r["max_rel_err"])
        assert (r["max_abs_update"] == 0.0) == (name == "in_hid"), name
        assert r["max_rel_err"] <= RTOL, name
    assert result["loss_max_rel_err"] <= 1e-9


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        (
            {"learning_rates": {"in": 0.1}},
            r"network\.params\.learning_rates: unknown projection 'in'; known: \['in_hid'",
        ),
        ({"learning_rates": {"hid_out": -1.0}}, r"network\.params\.learning_rates\.hid_out = -1\.0: must be >= 0"),
        ({"learning_rates": {"hid_out": "fast"}}, r"network\.params\.learning_rates\.hid_out = 'fast': a finite"),
        ({"recurrent": False, "learning_rates": {"hid_hid": 0.1}}, r"learning_rates\.hid_hid: the network has no recu"),
        ({"learning_rates": {"bias_out": 0.1}}, r"learning_rates\.bias_out: the network has no bias input"),
        ({"learning_rates": 0.1}, r"network\.params\.learning_rates = 0\.1: a table of projection -> eta"),
    ],  # fmt: skip
)
def test_eventprop_architecture_learning_rates_are_checked_by_name(params, needle) -> None:
    from test_eventprop_dale import tiny_config

    with pytest.raises(ConfigError, match=needle):
        tiny_config(**params)


def test_weight_bump_refuses_frozen_projections() -> None:
    from test_yinyang_ttfs import config

    with pytest.raises(
        ConfigError, match=r"weight_bump = 0\.0005 cannot be combined with frozen projections \['in_hid'"
    ):
        config(weight_bump=0.0005, learning_rates={"in_hid": 0.0})
    assert config(weight_bump=0.0005, learning_rates={"in_hid": 0.01}) is not None


# -- the eventprop architecture: network.params.delays ----------------------------------------------------------------
def test_eventprop_architecture_delays_per_projection_agree_with_the_reference(tmp_path) -> None:
    """network.params.delays: the bias spike reaches the outputs two delays after it reaches the hidden layer (as
    hidden spikes answer inputs), the inputs one half-delay sooner; the network carries these delays and NEST's
    training equals the reference's per synapse to 1e-9."""
    from test_eventprop_dale import tiny_config

    from nestgrad.comparison.eventprop_compare import compare_eventprop
    from nestgrad.networks.registry import make_learner

    config = tiny_config(bias_time=2.0, delays={"bias_out": 2.0, "in_hid": 0.5})
    learner, _ = make_learner(config)
    net = learner.network(learner.initial_weights(3), learner.trial_duration)
    delays = {p.name: set(np.unique(p.delays)) for p in net.projections}
    assert delays == {"in_hid": {0.5}, "bias_hid": {1.0}, "hid_hid": {1.0}, "hid_out": {1.0}, "bias_out": {2.0}}
    result = compare_eventprop(config, iterations=3, out_dir=tmp_path)
    for name, r in result["projections"].items():
        assert r["max_abs_update"] > 0 and r["max_rel_err"] <= RTOL, name
    assert result["loss_max_rel_err"] <= 1e-9


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"delays": {"out": 1.0}}, r"network\.params\.delays: unknown projection 'out'; known: \['in_hid'"),
        ({"delays": {"hid_out": 0.0}}, r"network\.params\.delays\.hid_out = 0\.0: must be > 0"),
        ({"delays": {"bias_out": 1.0}}, r"network\.params\.delays\.bias_out: the network has no bias input"),
        (
            {"delays": {"hid_out": 0.7}},
            r"network\.params\.delays\.hid_out = 0\.7 ms: EventProp in NEST needs a positive",
        ),
    ],  # fmt: skip
)
def test_eventprop_architecture_delays_are_checked_by_name(params, needle) -> None:
    from test_eventprop_dale import tiny_config

    from nestgrad.networks.registry import make_learner

    with pytest.raises(ConfigError, match=needle):
        make_learner(tiny_config(**params))

"""Weight bounds per projection and Dale's law for EventProp in NEST (issue 20, item 4).

NEST keeps both as common properties of copies of ``eventprop_synapse`` and ``eventprop_reverse_synapse`` (one per
projection and sign of source, ``nest_engine.eventprop.bounded_models``); the NumPy twin is
``reference.eventprop.optimizer``. The rule is the one of tests/test_eventprop_nest_gradients.py: the weights NEST
learns equal the reference engine's gradients + the NumPy optimizer to 1e-9 relative per synapse, 1 and 2 threads,
GD and Adam, and the reverse copy of every edge equals its forward connection bit for bit. Every training run must
clip some steps (counted by the reference), or the test would not test the bounds.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from test_eventprop_nest_forward import on_grid
from test_eventprop_nest_gradients import OPTIMIZERS, assert_training_equals_reference
from test_eventprop_reference import make_net, make_trials

from nestgrad.errors import ConfigError
from nestgrad.nest_engine.eventprop import build, run_training
from nestgrad.reference.eventprop import Network, ReadoutCrossEntropy, compile_network
from nestgrad.reference.eventprop.optimizer import edge_bounds, train

LOSS = ReadoutCrossEntropy("out", mode="sum")
N_HID = 6
HID_SIGNS = np.array([1, 1, 1, 1, -1, -1])  # Dale's law: the last two hidden neurons are inhibitory
SIGNS = {"in": 1, "hid": HID_SIGNS}


def base_net() -> Network:
    return on_grid(make_net("recurrent", 2, n_hid=N_HID, t_ref=0.7, adapt_beta=0.2, adapt_tau=20.0))


def dale_net() -> Network:
    """The network with every weight given its source's sign (|w| kept)."""
    net = base_net()
    cnet = compile_network(net)
    sign = np.concatenate([np.ones(3), HID_SIGNS, np.zeros(3)])
    projs = tuple(
        dataclasses.replace(p, weights=sign[cnet.src[cnet.proj_slices[p.name]]] * np.abs(p.weights))
        for p in net.projections
    )
    return dataclasses.replace(net, projections=projs)


def tight_bounds(net: Network) -> dict[str, tuple[float, float]]:
    """Per projection, the range of its initial weights: the edges at either end that move outwards are clipped."""
    return {p.name: (float(np.min(p.weights)), float(np.max(p.weights))) for p in net.projections}


def check(net: Network, opt: dict, threads: int, bounds=None, signs=None) -> None:
    trials = make_trials(2, n_trials=6)
    want = train(net, trials, LOSS, opt, bounds=bounds, signs=signs)
    got = run_training(net, trials, LOSS, opt, threads=threads, bounds=bounds, signs=signs)
    cnet = compile_network(net)
    lo, hi = edge_bounds(cnet, opt, bounds, signs)
    print(f"clipped (edge, step) pairs per projection: {want.clipped}")
    assert all(n > 0 for n in want.clipped.values()), "a projection never reached a bound: the test would say little"
    assert_training_equals_reference(net, want.weights, got, f"{opt['type']} threads {threads}")
    on_bound = 0
    for name, sl in cnet.proj_slices.items():
        g = got.weights[name]
        assert np.all((g >= lo[sl]) & (g <= hi[sl])), f"{name}: a NEST weight left its bounds"
        on_bound += int(np.sum((g == lo[sl]) | (g == hi[sl])))
    assert on_bound > 0, "no NEST weight ends on a bound"


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
def test_eventprop_nest_training_with_bounds_equals_reference(opt_name: str, threads: int) -> None:
    """Bounds per projection (each the range of its initial weights), 3 batches of 2 trials, recurrent ALIF."""
    net = base_net()
    eta = {"gradient_descent": 0.2, "adam": 0.02}[opt_name]
    check(net, dict(OPTIMIZERS[opt_name], batch_size=2, eta=eta), threads, bounds=tight_bounds(net))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
def test_eventprop_nest_training_with_dale_equals_reference(opt_name: str, threads: int) -> None:
    """Dale's law (inputs and 4 hidden neurons excitatory, 2 inhibitory), with a learning rate large enough that
    some weights are pushed across 0 and held there; the optimizer's own bounds stay on for unsigned edges."""
    net = dale_net()
    eta = {"gradient_descent": 0.5, "adam": 0.05}[opt_name]
    check(net, dict(OPTIMIZERS[opt_name], batch_size=2, eta=eta), threads, signs=SIGNS)


def test_eventprop_dale_and_bounds_use_model_copies() -> None:
    """Edges with the optimizer's bounds keep the base models; the others are connected with copies named after
    their projection and sign, forward and reverse, with the bounds as common properties; the copies keep the size
    of a connection (no per-synapse memory)."""
    net = dale_net()
    opt = dict(OPTIMIZERS["gradient_descent"], batch_size=2)
    bounds = {"hid_out": (-0.2, 0.2)}
    built = build(net, make_trials(2, n_trials=2), loss=LOSS, optimizer=opt, bounds=bounds, signs=SIGNS)
    nest = built.nest
    cnet = built.cnet
    names = {g.model: len(g.edges) for g in built.groups}
    n_inh_rec = int(np.sum(HID_SIGNS[cnet.src[cnet.proj_slices["hid_hid"]] - 3] < 0))
    assert names["eventprop_synapse__in_hid_exc"] == len(cnet.w[cnet.proj_slices["in_hid"]])
    assert names["eventprop_synapse__hid_hid_inh"] == n_inh_rec
    assert names["eventprop_synapse__hid_out_exc"] + names["eventprop_synapse__hid_out_inh"] == 3 * N_HID
    assert names["eventprop_synapse"] == 0
    for model, want in (
        ("eventprop_synapse__hid_out_exc", (0.0, 0.2)),
        ("eventprop_reverse_synapse__hid_out_exc", (0.0, 0.2)),
        ("eventprop_synapse__hid_out_inh", (-0.2, 0.0)),
        ("eventprop_synapse__hid_hid_inh", (-5.0, 0.0)),
        ("eventprop_reverse_synapse__hid_hid_exc", (0.0, 5.0)),
    ):
        o = nest.GetDefaults(model)["optimizer"]
        assert (o["Wmin"], o["Wmax"]) == want, model
        assert o["eta"] == opt["eta"] and o["batch_size"] == 2, model
    base = np.atleast_1d(nest.GetConnections(synapse_model="eventprop_synapse").get("sizeof"))[0]
    for g in built.groups:
        fwd = nest.GetConnections(synapse_model=g.model)
        y_exchange = 3 * 2 if g.model == "eventprop_synapse" else 0  # readout -> readout, the base model
        assert len(fwd) == len(g.edges) + y_exchange, g.model
        if len(fwd):
            assert np.all(np.atleast_1d(fwd.get("sizeof")) == base), g.model


def test_eventprop_bounds_refuse_bad_input() -> None:
    net = dale_net()
    cnet = compile_network(net)
    opt = dict(OPTIMIZERS["adam"], batch_size=2)
    w_max = float(np.max(net.projection("in_hid").weights))
    with pytest.raises(ConfigError, match=r"projection 'in_hid', edge \d+: initial weight .* outside its bounds"):
        edge_bounds(cnet, opt, {"in_hid": (0.0, w_max / 2)})
    with pytest.raises(ConfigError, match=r"projection 'hid_hid', edge \d+: initial weight .* outside its bounds"):
        edge_bounds(compile_network(base_net()), opt, signs=SIGNS)  # unsigned initial weights under Dale's law
    with pytest.raises(ConfigError, match=r"projection 'hid_out', edge \d+: the bounds \[0, -0.1\] pA and Dale's law"):
        edge_bounds(cnet, opt, {"hid_out": (-1.0, -0.1)}, signs=SIGNS)
    with pytest.raises(ConfigError, match=r"bounds: no projection named 'nope'"):
        edge_bounds(cnet, opt, {"nope": (0.0, 1.0)})
    with pytest.raises(ConfigError, match=r"bounds\['hid_out'\] = \(1.0, -1.0\): need Wmin <= Wmax"):
        edge_bounds(cnet, opt, {"hid_out": (1.0, -1.0)})
    with pytest.raises(ConfigError, match=r"signs\['hid'\]: values \[-1, 2\], allowed"):
        edge_bounds(cnet, opt, signs={"hid": [2, 2, 2, 2, -1, -1]})
    with pytest.raises(ConfigError, match=r"need an optimizer"):
        build(net, make_trials(2, n_trials=2), loss=LOSS, signs=SIGNS)
    with pytest.raises(ConfigError, match=r"initial weight .* outside its bounds"):
        run_training(base_net(), make_trials(2, n_trials=2), LOSS, opt, signs=SIGNS)
    lo, hi = edge_bounds(cnet, {"Wmin": -math.inf, "Wmax": 3.0}, {"in_hid": (-1.0, 2.0)}, SIGNS)
    sl = cnet.proj_slices["hid_hid"]
    assert np.all(lo[cnet.proj_slices["in_hid"]] == 0.0) and np.all(hi[cnet.proj_slices["in_hid"]] == 2.0)
    inh = HID_SIGNS[cnet.src[sl] - 3] < 0
    assert np.all(hi[sl][inh] == 0.0) and np.all(lo[sl][inh] == -math.inf) and np.all(hi[sl][~inh] == 3.0)


def tiny_config(**params):
    from nestgrad.config import ExperimentConfig

    return ExperimentConfig.from_dict(
        {
            "network": {
                "architecture": "eventprop",
                "neuron_model": "eventprop_iaf_psc_exp_ps",
                "seed": 3,
                "params": {"n_hidden": 10, "recurrent": True, "w_in_mean": 0.5, "w_in_std": 0.3, "w_rec_std": 0.1}
                | params,
            },
            "task": {"name": "digits_latency", "resolution": 0.5, "batch_size": 3, "params": {"side": 8}},
            "optimizer": {"type": "adam", "eta": 0.05},
            "training": {"iterations": 3, "checkpoint_every": 3, "threads": 1, "plot": False},
        }
    )


@pytest.mark.parametrize(
    ("params", "optimizer", "needle"),
    [
        ({"inhibitory_fraction": 0.5}, {}, "network.params.inhibitory_fraction = 0.5 is used with dale = true only"),
        ({"dale": True, "inhibitory_fraction": 1.5}, {}, "network.params.inhibitory_fraction = 1.5: must be in [0, 1]"),
        ({"dale": "yes"}, {}, "network.params.dale = 'yes': true or false"),
        ({"w_in_min": 1.0, "w_in_max": 1.0}, {}, "network.params.w_in_min = 1.0, w_in_max = 1.0: need w_in_min <"),
        ({"recurrent": False, "w_rec_max": 1.0}, {}, "network.params.w_rec_min/w_rec_max bound the recurrent"),
        ({"dale": True, "w_out_max": -0.1}, {}, "network.params.w_out_min = None, w_out_max = -0.1: with dale"),
        ({"w_out_min": float("nan")}, {}, "network.params.w_out_min = nan is invalid: a finite number"),
        ({"w_out_min": -0.01}, {}, "outside network.params.w_out_min/w_out_max = [-0.01, inf]"),
        ({}, {"sign_constrained": True}, "optimizer.sign_constrained = true: the eventprop architecture keeps Dale"),
        ({}, {"Wmin": -1.0}, "optimizer.Wmin/Wmax = (-1.0, 100.0): the eventprop architecture bounds its weights"),
    ],
)
def test_eventprop_config_refuses_bad_bounds_and_dale(tmp_path, params, optimizer, needle) -> None:
    from nestgrad.training.trainer import Trainer

    d = tiny_config().to_dict()
    d["network"]["params"] |= params
    d["optimizer"] |= optimizer
    with pytest.raises(ConfigError) as err:
        from nestgrad.config import ExperimentConfig

        Trainer(ExperimentConfig.from_dict(d), tmp_path, verbose=False).run()
    assert needle in str(err.value)


def test_eventprop_architecture_with_dale_and_bounds_agrees_with_the_reference(tmp_path) -> None:
    """``nestgrad compare`` on an eventprop configuration with Dale's law (30 % inhibitory hidden neurons) and
    bounds on the readout weights: the learner the Trainer uses (copies of the synapse models) against the reference
    gradients + the NumPy optimizer with the same bounds, <= 1e-9 per projection, with steps clipped; the initial
    weights carry their source's sign."""
    from nestgrad.comparison.eventprop_compare import compare_eventprop
    from nestgrad.networks.registry import make_learner

    config = tiny_config(
        dale=True, inhibitory_fraction=0.3, w_out_min=-0.5, w_out_max=0.5, w_out_mean=0.1, w_out_std=0.1
    )
    learner, _ = make_learner(config)
    w0 = learner.initial_weights(config.network.seed)
    hid_sign = learner.signs()["hid"]
    assert list(hid_sign) == [1] * 7 + [-1] * 3
    assert np.all(w0["in_hid"] >= 0) and np.all(w0["hid_out"] * np.repeat(hid_sign, 10) >= 0)
    result = compare_eventprop(config, iterations=3, out_dir=tmp_path)
    clipped = {name: r["clipped_steps"] for name, r in result["projections"].items()}
    print(result["projections"])
    assert sum(clipped.values()) > 0, f"no step reached a bound: {clipped}"
    for name, r in result["projections"].items():
        assert r["max_abs_update"] > 0 and r["max_rel_err"] <= 1e-9, (name, r)
    assert result["loss_max_rel_err"] <= 1e-9

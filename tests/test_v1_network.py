"""nestgrad.networks.v1: the Billeh V1 column builder (layout, connectivity, readout pools) and its NEST network.

Numbers checked against the published tables in nestgrad.networks.v1_data (exact), and structural properties of the
drawn network: class proportions (largest remainder: within one neuron of n x published fraction), depths inside
each layer's range, Dale's law (every source's weights share its class's sign), receptor ports by (source, target)
E/I type, no autapses, in-degree kept at reduced scale (central neurons within 25 % of the full model's expectation).
"""

from __future__ import annotations

import dataclasses
import math
import pathlib

import numpy as np
import pytest
from connections import connections_among

from nestgrad.config import OptimizerConfig
from nestgrad.networks import v1_data as D
from nestgrad.networks.v1 import V1Config, V1Network, class_counts

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_published_tables_are_consistent():
    assert D.N_FULL == 51978 and len(D.CLASSES) == 17
    assert D.SYN_WEIGHT_PA.shape == (17, 17)
    signs = np.sign(D.SYN_WEIGHT_PA)  # [target, source]: a source's weights share its E/I sign
    for s, name in enumerate(D.CLASSES):
        col = signs[:, s][signs[:, s] != 0]
        assert np.all(col == (1 if D.EXCITATORY[s] else -1)), name
    a = D.connection_scale()
    assert np.all((a > 0) == (D.SYN_WEIGHT_PA != 0).T)  # probabilities exactly where Billeh has weights
    assert D.delay_ms("e4", "e23") == 2.3 and D.delay_ms("i23Pvalb", "e5") == 0.9 and D.delay_ms("i1Htr3a", "e4") == 3.8
    for name, fits in D.CLASS_FITS.items():
        assert all(f in D.GLIF_FITS for f, _ in fits), name


@pytest.mark.parametrize("n", [100, 600, 5000, D.N_FULL])
def test_class_counts_follow_published_proportions(n):
    counts = class_counts(n)
    assert counts.sum() == n and np.all(counts >= 1)
    exact = D.CORE_COUNTS * n / D.N_FULL
    assert np.all(np.abs(counts - exact) <= 1.0)
    if n == D.N_FULL:
        np.testing.assert_array_equal(counts, D.CORE_COUNTS)


@pytest.fixture(scope="module")
def net() -> V1Network:
    return V1Network(V1Config(n_neurons=1500, seed=3), OptimizerConfig(), n_out=2, resolution=1.0)


def test_layout(net):
    lay = net.layout
    assert lay.cls.size == 1500
    assert math.isclose(lay.radius, 400 * math.sqrt(1500 / D.N_FULL))
    assert np.all(np.hypot(lay.x, lay.z) <= lay.radius)
    for k, name in enumerate(D.CLASSES):
        lo, hi = D.DEPTH_RANGE_UM[D.LAYER[k]]
        d = lay.depth[lay.cls == k]
        assert np.all((d >= lo) & (d <= hi)), name
        assert set(np.unique(lay.fit[lay.cls == k])) <= {f for f, _ in D.CLASS_FITS[name]}


def test_recurrent_connectivity_follows_the_rules(net):
    lay = net.layout
    src, tgt, w = lay.rec_src, lay.rec_tgt, lay.rec_w
    assert np.all(src != tgt)
    assert np.all(np.diff(src) >= 0)  # canonical order
    excit = D.EXCITATORY[lay.cls]
    assert np.all(w[excit[src]] >= 0) and np.all(w[~excit[src]] <= 0)
    kind = np.where(excit[src], "e", "i").astype(object) + np.where(excit[tgt], "e", "i").astype(object)
    expected = np.array([D.RECEPTOR[(k[0], k[1])] for k in kind])
    np.testing.assert_array_equal(lay.rec_receptor, expected)
    # no connections where Billeh's table has none
    a = D.connection_scale()
    assert np.all(a[lay.cls[src], lay.cls[tgt]] > 0)
    # weights: syn_weight x nsyns (3..7) x direction factor (<= 1)
    ratio = w / D.SYN_WEIGHT_PA[lay.cls[tgt], lay.cls[src]]
    assert np.all((ratio > 0) & (ratio <= 7.0 + 1e-12))


def test_excitatory_port_per_neuron_follows_the_target_type(net):
    """Excitatory input arrives on port e->e (1) of excitatory neurons and e->i (3) of inhibitory ones."""
    ports = net.excitatory_port_per_neuron()
    expected = np.where(D.EXCITATORY[net.layout.cls], 1, 3)
    np.testing.assert_array_equal(ports, expected)
    lgn_tgt_excit = D.EXCITATORY[net.layout.cls[net.layout.lgn_tgt]]  # LGN input is excitatory: same ports
    np.testing.assert_array_equal(net.layout.lgn_receptor, np.where(lgn_tgt_excit, 1, 3))


def test_in_degree_is_kept_at_reduced_scale():
    """Expected full-scale in-degree of a central neuron: sum over sources of density x A_new x pi sigma^2 (the
    orientation factor averages to 1). The reduced column's central neurons (r < radius / 3) come within 25 %."""
    small = V1Network(V1Config(n_neurons=3000, seed=2), OptimizerConfig(), n_out=2, resolution=1.0)
    unscaled = V1Network(V1Config(n_neurons=3000, seed=2, keep_in_degree=False), OptimizerConfig(), 2, 1.0)
    lay = small.layout
    a = D.connection_scale()
    central = np.flatnonzero(np.hypot(lay.x, lay.z) < lay.radius / 3)
    for t_name in ("e23", "e4", "e5", "e6"):
        t = D.CLASSES.index(t_name)
        expected = 0.0
        for s, s_name in enumerate(D.CLASSES):
            if a[s, t] <= 0:
                continue
            sigma = D.SIGMA_UM[(D.ei(s_name), "e")]
            a_new = min(1.0, a[s, t] / ((sigma / D.R0_UM) ** 2 * (1 - math.exp(-((D.R0_UM / sigma) ** 2)))))
            density = D.CORE_COUNTS[s] / (math.pi * D.CORE_RADIUS_UM**2)
            expected += density * a_new * math.pi * sigma**2 * (1 - math.exp(-((D.CORE_RADIUS_UM / sigma) ** 2)))
        sel = central[lay.cls[central] == t]
        got = np.bincount(lay.rec_tgt, minlength=lay.cls.size)[sel].mean()
        got_unscaled = np.bincount(unscaled.layout.rec_tgt, minlength=lay.cls.size)[sel].mean()
        assert abs(got / expected - 1) < 0.25, (t_name, got, expected)
        assert got_unscaled < 0.85 * got, t_name  # without the scaling the small column loses inputs


def test_readout_pools_are_l5_excitatory_and_disjoint(net):
    e5 = D.CLASSES.index("e5")
    members = np.concatenate(net.pools)
    assert members.size == 2 * 30 and np.unique(members).size == members.size
    assert np.all(net.layout.cls[members] == e5)


def test_invalid_configs_name_the_key():
    with pytest.raises(ValueError, match="n_neurons = 60000"):
        V1Config(n_neurons=60000)
    with pytest.raises(ValueError, match="feedback = 'all'"):
        V1Config(feedback="all")
    with pytest.raises(ValueError, match="unknown key.*n_rec"):
        V1Config.from_dict({"n_rec": 5})
    with pytest.raises(ValueError, match="pools of 30 L5 excitatory neurons"):
        V1Network(V1Config(n_neurons=400), OptimizerConfig(), n_out=18, resolution=1.0)
    with pytest.raises(ValueError, match="resolution = 0.1"):
        V1Network(V1Config(n_neurons=400), OptimizerConfig(), n_out=2, resolution=0.1)
    with pytest.raises(ValueError, match="plastic_targets = 'pools': 'pools' needs feedback = 'pools'"):
        V1Config(plastic_targets="pools")
    with pytest.raises(ValueError, match="plastic_targets = 'some'"):
        V1Config(plastic_targets="some", feedback="pools")


# --- in NEST ----------------------------------------------------------------------------------------------------------
def test_nest_network_equals_the_layout(nest_kernel):
    """Every drawn synapse exists in NEST with its weight, receptor port and delay (one step when plastic), and the
    weights read back in canonical order are the ones written."""
    nest = nest_kernel
    nest.resolution = 1.0
    net = V1Network(
        V1Config(n_neurons=600, seed=4), OptimizerConfig(Wmin=-1e4, Wmax=1e4, sign_constrained=True), 2, 1.0
    )
    w0 = net.initial_weights(1)
    net.build(nest, w0, record_neurons=10)
    back = net.read_weights(nest)
    for key in ("lgn_rec", "rec_rec", "rec_out"):
        np.testing.assert_array_equal(back[key], w0[key], err_msg=key)
    lay = net.layout
    conns = connections_among(nest, net.neurons, net.neurons, ["receptor", "delay", "synapse_model"])
    assert len(conns["source"]) == lay.rec_src.size
    got = dict(zip(zip(conns["source"], conns["target"], strict=True), conns["receptor"], strict=True))
    ids = net.built.ids["v1"]
    pairs = zip(ids[lay.rec_src].tolist(), ids[lay.rec_tgt].tolist(), strict=True)
    expected = dict(zip(pairs, lay.rec_receptor.tolist(), strict=True))
    assert got == expected
    assert set(np.asarray(conns["delay"]).tolist()) == {1.0}
    models = set(conns["synapse_model"].tolist())
    assert models == {"eprop_vector_synapse_nonneg", "eprop_vector_synapse_neg"}  # Dale's law
    # the spike recorder sees the first readout-pool neurons (by node id)
    recorded = np.sort(np.asarray(nest.GetConnections(target=net.built.devices.spike_recorder).get("source")))
    np.testing.assert_array_equal(recorded, np.unique(ids[net.out_src])[:10])


def test_only_the_pools_learn_with_plastic_targets_pools(nest_kernel):
    """plastic_targets = "pools": e-prop synapses (one-step delay, Dale's copies) onto the pool neurons only, static
    synapses with Billeh's delays onto the others; weights read back in canonical order."""
    nest = nest_kernel
    nest.resolution = 1.0
    cfg = V1Config(n_neurons=600, seed=4, feedback="pools", plastic_targets="pools")
    net = V1Network(cfg, OptimizerConfig(Wmin=-1e4, Wmax=1e4, sign_constrained=True), 2, 1.0)
    w0 = net.initial_weights(1)
    net.build(nest, w0, record_neurons=10)
    back = net.read_weights(nest)
    for key in ("lgn_rec", "rec_rec", "rec_out"):
        np.testing.assert_array_equal(back[key], w0[key], err_msg=key)
    lay, ids = net.layout, net.built.ids["v1"]
    in_pool = np.zeros(lay.cls.size, bool)
    in_pool[np.concatenate(net.pools)] = True
    d = connections_among(nest, net.neurons, net.neurons, ["delay", "synapse_model"])
    to_pool = np.isin(np.asarray(d["target"]), ids[in_pool])
    models = np.asarray(d["synapse_model"])
    assert set(models[to_pool]) == {"eprop_vector_synapse_nonneg", "eprop_vector_synapse_neg"}
    assert set(models[~to_pool]) == {"static_synapse"}
    assert set(np.asarray(d["delay"])[to_pool].tolist()) == {1.0}
    assert len(set(np.asarray(d["delay"])[~to_pool].tolist())) > 1  # Billeh's delays
    assert to_pool.sum() == np.isin(lay.rec_tgt, np.flatnonzero(in_pool)).sum()
    masks = net.plastic_masks()
    assert np.array_equal(masks["lgn_rec"], in_pool[lay.lgn_tgt]) and masks["rec_out"].all()


def test_static_column_fires_at_low_rates(nest_kernel):
    """The calibrated column (weight_scale, inhibitory_scale) under spontaneous LGN input: no class silent on
    average, none in the runaway state (> 40 Hz); excitatory classes below 10 Hz (measured 0.2-6 Hz)."""
    from nestgrad.tasks import TrialBatch

    nest = nest_kernel
    nest.resolution = 1.0
    net = V1Network(V1Config(n_neurons=1500, seed=2), OptimizerConfig(), 2, 1.0)
    net.build(nest, net.initial_weights(1), record_neurons=-1, plastic=False)
    T = 1000
    rates = net.lgn.rates(np.zeros((1, 120, 240)), np.zeros(T, int), 1.0)
    spikes = net.lgn.spikes(rates, np.random.default_rng(0), 1.0)
    net.load_segment(nest, [TrialBatch(spikes, np.zeros((T, 2)), np.zeros(T), T)])
    nest.Simulate(T + net.lead_in_ms())
    senders = np.asarray(net.built.devices.spike_recorder.get("events")["senders"])
    counts = np.bincount(np.searchsorted(net.built.ids["v1"], senders), minlength=net.built.ids["v1"].size) / (
        T / 1000.0
    )
    per_class = np.array([counts[net.layout.cls == k].mean() for k in range(len(D.CLASSES))])
    assert per_class.mean() > 0.5 and per_class.max() < 40.0, per_class
    assert per_class[D.EXCITATORY].max() < 10.0, per_class


def small_v1_config(task: str, n_neurons: int, trials: int, optimizer_steps: int, iterations: int, **network: object):
    """The shipped configuration of ``task`` at a test's size (and other ``network.v1`` values): a checkpoint per
    iteration, no plots."""
    from nestgrad.config import ExperimentConfig

    cfg = ExperimentConfig.from_toml(ROOT / "python" / "nestgrad" / "configs" / f"{task}.toml")
    return dataclasses.replace(
        cfg,
        network=dataclasses.replace(cfg.network, v1=cfg.network.v1 | {"n_neurons": n_neurons} | network),
        task=dataclasses.replace(cfg.task, batch_size=trials),
        optimizer=dataclasses.replace(cfg.optimizer, batch_size=optimizer_steps),
        training=dataclasses.replace(cfg.training, iterations=iterations, checkpoint_every=1, plot=False),
    )


def test_trainer_runs_a_v1_task_and_keeps_dales_law(tmp_path):

    from nestgrad.training.trainer import Trainer

    # learning signals to every neuron and every synapse plastic (the shipped run: pools only), so that many
    # weights of both signs move in two iterations
    cfg = small_v1_config(
        "v1_orientation", 600, trials=2, optimizer_steps=200, iterations=2, feedback="random", plastic_targets="all"
    )
    trainer = Trainer(cfg, tmp_path, verbose=False)
    w0 = trainer.initial_state().weights
    history = trainer.run()
    assert len(history) == 2 and all(np.isfinite(h["loss"]) and 0 <= h["accuracy"] <= 1 for h in history)
    w = trainer.state.weights
    for key in ("lgn_rec", "rec_rec"):
        assert np.abs(w[key] - w0[key]).max() > 0, key
        assert np.all(w[key][w0[key] >= 0] >= 0) and np.all(w[key][w0[key] < 0] <= 0), key
    # some inhibitory weights reached their bound 0 in the first block and stayed on their side in the second
    assert np.any(w["rec_rec"][w0["rec_rec"] < 0] == 0)
    assert (tmp_path / "checkpoint.npz").exists()
    # evaluation on new trials with learning off (also the readouts, which have a learning rate of their own)
    import nest

    trainer.network.config = dataclasses.replace(trainer.network.config, readout_eta=0.01)
    result = trainer.evaluate(n_batches=1)
    assert result["trials"] == 2 and 0 <= result["accuracy"] <= 1
    after = trainer.network.read_weights(nest)
    for key in ("lgn_rec", "rec_rec", "rec_out"):
        np.testing.assert_array_equal(after[key], w[key], err_msg=key)
    assert trainer.network.config.readout_eta == 0.01  # restored


def test_v1_event_synapses_learn_what_vector_synapses_learn(tmp_path):
    """gradient_algorithm = "event": eprop_event_synapse into the GLIF3 neurons (running products of their
    time-varying eligibility maps) gives the weights eprop_vector_synapse gives, step by step, to 1e-9 relative (of
    the largest change), with Dale's law, random feedback to every neuron and Billeh's four receptor ports."""
    from nestgrad.training.trainer import Trainer

    weights = {}
    for algorithm in ("step", "event"):
        cfg = small_v1_config(
            "v1_orientation", 600, trials=2, optimizer_steps=200, iterations=2, feedback="random", plastic_targets="all"
        )
        cfg = dataclasses.replace(cfg, network=dataclasses.replace(cfg.network, gradient_algorithm=algorithm))
        trainer = Trainer(cfg, tmp_path / algorithm, verbose=False)
        w0 = trainer.initial_state().weights
        trainer.run()
        weights[algorithm] = trainer.state.weights
        # the algorithm registry's choice into GLIF3 (its eprop_synapse_model default for "step")
        expected = {"step": "eprop_vector_synapse", "event": "eprop_event_synapse"}[algorithm]
        assert trainer.network.plastic_model == expected
    for key in ("lgn_rec", "rec_rec", "rec_out"):
        change = np.abs(weights["step"][key] - w0[key]).max()
        assert change > 0, key
        err = np.abs(weights["event"][key] - weights["step"][key]).max() / change
        assert err <= 1e-9, (key, err)


@pytest.mark.parametrize(
    "task, n_neurons",
    [
        ("v1_digits", 2200),
        ("v1_image_change", 600),
        ("v1_grating_change", 600),
        ("v1_evidence", 600),
        ("v1_multi", 3800),
    ],
)
def test_every_v1_task_trains_through_the_trainer(task, n_neurons, tmp_path):
    """Each of Chen et al.'s tasks (and all five together, 18 readout pools) through its shipped configuration:
    one iteration of one trial at reduced scale; finite loss, accuracy defined, weights changed."""

    from nestgrad.training.trainer import Trainer

    cfg = small_v1_config(task, n_neurons=n_neurons, trials=1, optimizer_steps=100, iterations=1)
    assert cfg.task.name == task
    trainer = Trainer(cfg, tmp_path, verbose=False)
    w0 = trainer.initial_state().weights
    history = trainer.run()
    assert np.isfinite(history[0]["loss"]) and 0 <= history[0]["accuracy"] <= 1
    assert np.abs(trainer.state.weights["lgn_rec"] - w0["lgn_rec"]).max() > 0


def test_v1_configuration_errors_name_the_key():
    from nestgrad.config import ConfigError, ExperimentConfig

    base = {"network": {"architecture": "v1"}, "task": {"name": "v1_orientation"}}
    with pytest.raises(ConfigError, match="network.v1: unknown key"):
        ExperimentConfig.from_dict(base | {"network": {"architecture": "v1", "v1": {"neurons": 5}}})
    with pytest.raises(ConfigError, match="v1_orientation.*'v1'"):
        ExperimentConfig.from_dict({"task": {"name": "v1_orientation"}})
    with pytest.raises(ConfigError, match="task.v1"):
        ExperimentConfig.from_dict(base | {"task": {"name": "v1_orientation", "v1": {"stimulus_ms": -1.0}}})


def test_v1_column_round_trips_through_sonata(nest_kernel, tmp_path):
    """A nestgrad-built V1 column (plastic, one-step delays) exported to SONATA and imported with e-prop synapses
    (eprop_vector_synapse, the GLIF3 neuron's): same neurons and parameters, same synapses with the same weights,
    receptor ports and delays."""
    from nestgrad import sonata

    nest = nest_kernel
    nest.resolution = 1.0
    net = V1Network(V1Config(n_neurons=600, seed=4, background_rate=0.0), OptimizerConfig(Wmin=-1e4, Wmax=1e4), 2, 1.0)
    net.build(nest, net.initial_weights(1), record_neurons=0)
    keys = ["source", "target", "weight", "receptor", "delay"]
    before = nest.GetConnections(target=net.neurons, synapse_model="eprop_vector_synapse").get(keys)
    params = ["C_m", "g", "E_L", "V_th", "t_ref", "asc_amps", "asc_decay", "tau_syn"]
    neurons_before = net.neurons.get(params)
    config = sonata.export_sonata(tmp_path / "v1", nest, {"v1": net.neurons, "lgn": net.lgn_nodes})
    imported = sonata.SonataNetwork.from_config(config)
    assert set(imported.edges) == {"lgn_to_v1", "v1_to_v1"}

    nest.ResetKernel()
    import nestgrad

    nestgrad.install()
    nest.resolution = 1.0
    nest.SetDefaults("eprop_vector_synapse", {"optimizer": {"Wmin": -1e4, "Wmax": 1e4}})
    built = sonata.build_in_nest(
        imported, nest, plastic=["lgn_to_v1", "v1_to_v1"], plastic_synapse="eprop_vector_synapse", parrots=True
    )
    v1 = built.populations["v1"]
    assert len(v1) == 600 and set(v1.get("model")) == {"eprop_glif3_psc"}
    after = nest.GetConnections(target=v1, synapse_model="eprop_vector_synapse").get(keys)
    assert len(after["weight"]) == len(before["weight"]) == net.layout.rec_src.size + net.layout.lgn_src.size

    # node ids differ between the kernels: compare the value multisets
    for k in ("weight", "receptor", "delay"):
        np.testing.assert_array_equal(np.sort(np.asarray(after[k])), np.sort(np.asarray(before[k])), err_msg=k)

    def rows(d):  # one parameter tuple per neuron, sorted (the importer orders neurons by node type)
        return sorted(zip(*[[tuple(np.atleast_1d(v).tolist()) for v in d[p]] for p in params], strict=True))

    assert rows(v1.get(params)) == rows(neurons_before)

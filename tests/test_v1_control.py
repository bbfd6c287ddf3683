"""nestgrad.networks.v1_control: the V1 column's random LIF control (``network.v1.structure = "random_lif"``).

Checked exactly against the column it is drawn from: the same neurons, E/I identities, LGN synapses, pools and
background; every source keeps its out-degree, weights and delays while its targets are redrawn (no autapses, no
repeated pairs, ports by the new target's E/I type); one LIF parameter set per E/I group (the group's mean, no
after-spike currents). That the wiring lost the column's structure is checked statistically (the column's
class-pair connection counts differ from the control's by far more than the binomial noise of random targets). The
control trains through the Trainer (shipped configuration at a test's size), and the experiment script's criterion
counting is checked on a made-up history.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import pathlib

import numpy as np
import pytest

from nestgrad.config import OptimizerConfig
from nestgrad.config.v1 import V1_STRUCTURES
from nestgrad.errors import ConfigError
from nestgrad.networks import v1_data as D
from nestgrad.networks.v1 import V1Config, V1Network
from nestgrad.networks.v1_control import LIF_KEYS, lif_params, random_recurrent

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def networks() -> tuple[V1Network, V1Network, V1Network]:
    def make(structure: str) -> V1Network:
        return V1Network(V1Config(n_neurons=1500, seed=3, structure=structure), OptimizerConfig(), 2, 1.0)

    return make("billeh"), make("random_lif"), make("random_wiring")


def test_control_keeps_sizes_sources_weights_lgn_and_pools(networks):
    column, control, _ = networks
    a, b = column.layout, control.layout
    np.testing.assert_array_equal(a.cls, b.cls)
    for key in ("lgn_src", "lgn_tgt", "lgn_w", "lgn_receptor"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key), err_msg=key)
    np.testing.assert_array_equal(a.rec_src, b.rec_src)  # canonical order: per source, so out-degrees are equal
    for s in np.unique(a.rec_src)[::37]:
        for key in ("rec_w", "rec_delay"):
            np.testing.assert_array_equal(
                np.sort(getattr(a, key)[a.rec_src == s]), np.sort(getattr(b, key)[b.rec_src == s]), err_msg=key
            )
    for p, q in zip(column.pools, control.pools, strict=True):
        np.testing.assert_array_equal(p, q)
    assert control.describe().startswith("control of the Billeh V1 column: 1500 LIF neurons")


def test_control_wiring_is_random_without_autapses_or_repeats(networks):
    column, control, _ = networks
    a, b = column.layout, control.layout
    assert np.all(b.rec_src != b.rec_tgt)
    n = b.cls.size
    pair_ids = b.rec_src * n + b.rec_tgt
    assert np.unique(pair_ids).size == pair_ids.size
    assert np.all(np.diff(pair_ids) > 0)  # canonical order: by source, then target
    excitatory = D.EXCITATORY[b.cls]
    expected_port = np.where(
        excitatory[b.rec_src], np.where(excitatory[b.rec_tgt], 1, 3), np.where(excitatory[b.rec_tgt], 2, 4)
    )
    np.testing.assert_array_equal(b.rec_receptor, expected_port)
    # connections per (source class, target class): the control's follow the target classes' sizes (uniform
    # targets); the column's do not: their deviation from that expectation is many binomial standard deviations
    k = len(D.CLASSES)
    size = np.bincount(b.cls, minlength=k) / n
    out_per_class = np.bincount(b.cls[b.rec_src], minlength=k)
    expected = out_per_class[:, None] * size[None, :]
    sd = np.sqrt(expected * (1 - size[None, :])) + 1.0

    def z(lay):
        counts = np.zeros((k, k))
        np.add.at(counts, (lay.cls[lay.rec_src], lay.cls[lay.rec_tgt]), 1)
        return np.abs(counts - expected) / sd

    assert z(b).max() < 6.0  # random targets (289 class pairs)
    assert np.median(z(a)) > 10.0  # the column's laminar, class-specific wiring (12.6 at this seed)


def test_control_neurons_are_one_lif_per_ei_group(networks):
    column, control, _ = networks
    excitatory = D.EXCITATORY[control.layout.cls]
    for group in (excitatory, ~excitatory):
        members = np.flatnonzero(group)
        for key in LIF_KEYS:
            values = {control.neuron_params[j][key] for j in members}
            assert len(values) == 1, key
            mean = np.mean([column.neuron_params[j][key] for j in members])
            assert values.pop() == pytest.approx(mean, rel=1e-12), key
        for j in members[:: max(1, members.size // 20)]:
            p = control.neuron_params[j]
            assert p["asc_amps"] == [0.0, 0.0] and p["V_reset"] == p["E_L"] == p["V_m"]
            assert p["tau_syn"] == column.neuron_params[j]["tau_syn"]
    # the background gives each neuron background_drive times its own (LIF) rheobase
    rheobase = np.array([p["g"] * (p["V_th"] - p["E_L"]) for p in control.neuron_params])
    ratio = control.background_weights() / rheobase
    np.testing.assert_allclose(ratio[excitatory], ratio[excitatory][0], rtol=1e-12)


def test_random_recurrent_refuses_more_synapses_than_targets():
    cls = np.array([D.CLASSES.index("e4")] * 3)
    with pytest.raises(ValueError, match="3 synapses"):  # 3 targets wanted among the 2 other neurons
        random_recurrent(np.random.default_rng(0), cls, np.zeros(3, np.int64), np.ones(3), np.ones(3))


def test_lif_params_with_one_group_only_leave_the_input_unchanged():
    params = [{"C_m": c, "g": 1.0, "E_L": -70.0, "V_th": -50.0, "t_ref": 2.0, "asc_amps": [-1.0, -2.0]} for c in (1, 3)]
    out = lif_params(params, np.array([False, False]))  # two inhibitory neurons, no excitatory group
    assert [p["C_m"] for p in out] == [2.0, 2.0] and out[0]["asc_amps"] == [0.0, 0.0]
    assert params[0]["C_m"] == 1 and params[0]["asc_amps"] == [-1.0, -2.0]


def test_unknown_structure_is_refused_by_name():
    with pytest.raises(ConfigError, match=r"network\.v1\.structure = 'random'"):
        V1Config(structure="random")


def test_control_trains_through_the_trainer(tmp_path):
    from nestgrad.config import ExperimentConfig
    from nestgrad.training.trainer import Trainer

    cfg = ExperimentConfig.from_toml(ROOT / "python/nestgrad/configs/v1_orientation_control.toml")
    cfg = dataclasses.replace(
        cfg,
        network=dataclasses.replace(cfg.network, v1=cfg.network.v1 | {"n_neurons": 1000, "pool_size": 10}),
        task=dataclasses.replace(cfg.task, batch_size=2),
        optimizer=dataclasses.replace(cfg.optimizer, batch_size=400),
        training=dataclasses.replace(cfg.training, iterations=2, checkpoint_every=1, plot=False),
    )
    trainer = Trainer(cfg, tmp_path, verbose=False)
    assert trainer.network.config.structure == "random_lif"
    w0 = trainer.initial_state().weights
    history = trainer.run()
    assert len(history) == 2 and all(np.isfinite(h["loss"]) for h in history)
    w = trainer.state.weights
    assert np.abs(w["lgn_rec"] - w0["lgn_rec"]).max() > 0  # the pools' inputs learn
    assert np.all(w["rec_rec"][w0["rec_rec"] >= 0] >= 0) and np.all(w["rec_rec"][w0["rec_rec"] < 0] <= 0)


def load_script():
    spec = importlib.util.spec_from_file_location("v1_control_script", ROOT / "scaling_runs/v1_control.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_examples_to_criterion_counts_trials():
    script = load_script()
    history = [0.5, 0.5, 1.0, 1.0, 0.5, 1.0, 1.0]
    # running means over 2 iterations: 0.5, 0.75, 1.0, 0.75, 0.75, 1.0 -> first >= 0.9 after iteration 4
    assert script.examples_to_criterion(history, window=2, criterion=0.9, batch_size=8) == 32
    assert script.examples_to_criterion(history, window=2, criterion=1.01, batch_size=8) is None
    assert script.examples_to_criterion(history[:1], window=2, criterion=0.5, batch_size=8) is None


def test_summary_and_figure_from_run_files(tmp_path):
    script = load_script()
    runs = {
        ("billeh", 1): [0.5, 1.0, 1.0, 1.0],
        ("billeh", 2): [0.5, 0.5, 1.0, 1.0],
        ("random_lif", 1): [0.5, 0.5, 0.5, 0.5],
    }
    for (structure, seed), acc in runs.items():
        folder = tmp_path / f"{structure}_seed{seed}"
        folder.mkdir()
        run = {"training_accuracy": acc, "test_accuracy": acc[-1], "initial_test_accuracy": 0.5}
        (folder / "run.json").write_text(json.dumps(run))
    summary = script.summarise(tmp_path, window=2, batch_size=4, criteria=[0.75, 1.0])
    column, control = summary["per_structure"]["billeh"], summary["per_structure"]["random_lif"]
    assert column["examples_to_criterion"] == {"0.75": {"1": 8, "2": 12}, "1.0": {"1": 12, "2": 16}}
    assert control["examples_to_criterion"]["0.75"] == {"1": None}
    assert column["test_accuracy_mean"] == 1.0 and column["test_accuracy_sd"] == 0.0
    assert column["seeds"] == ["1", "2"] and control["initial_test_accuracy_mean"] == 0.5
    script.figure(tmp_path, window=2, criterion=0.75, batch_size=4, task="v1_orientation")
    assert (tmp_path / "v1_control.png").stat().st_size > 10_000


def test_random_wiring_keeps_the_column_neurons_and_takes_the_control_wiring(networks):
    column, control, rewired = networks
    assert rewired.neuron_params == column.neuron_params
    np.testing.assert_array_equal(rewired.background_weights(), column.background_weights())
    for key in ("rec_src", "rec_tgt", "rec_w", "rec_receptor", "rec_delay", "lgn_tgt", "lgn_w"):
        np.testing.assert_array_equal(getattr(rewired.layout, key), getattr(control.layout, key), err_msg=key)
    assert "GLIF3 (the column's) neurons" in rewired.describe()


def test_column_lif_keeps_the_column_wiring_and_takes_the_control_neurons(networks):
    """The fourth cell of the 2 x 2 comparison: the column's wiring (and everything else) with the control's LIF
    neurons, so that wiring and neurons are varied one at a time."""
    column, control, _ = networks
    lif = V1Network(V1Config(n_neurons=1500, seed=3, structure="column_lif"), OptimizerConfig(), 2, 1.0)
    assert lif.neuron_params == control.neuron_params
    np.testing.assert_array_equal(lif.background_weights(), control.background_weights())
    for key in ("rec_src", "rec_tgt", "rec_w", "rec_receptor", "rec_delay", "lgn_tgt", "lgn_w", "fit"):
        np.testing.assert_array_equal(getattr(lif.layout, key), getattr(column.layout, key), err_msg=key)
    assert "Billeh V1 core column, 1500 LIF neurons (one set per E/I group" in lif.describe()
    assert (lif.config.random_wiring, lif.config.lif_neurons) == (False, True)
    # (random wiring, LIF neurons, one GLIF3 fit per group, after-spike currents) of every structure
    expected = {
        "billeh": (False, False, False, True),
        "random_wiring": (True, False, False, True),
        "random_lif": (True, True, False, False),
        "column_lif": (False, True, False, False),
        "random_one_fit": (True, False, True, True),
        "random_one_fit_no_asc": (True, False, True, False),
    }
    assert set(expected) == set(V1_STRUCTURES)
    for s, factors in expected.items():
        c = V1Config(structure=s)
        assert (c.random_wiring, c.lif_neurons, c.one_fit_per_group, c.after_spike_currents) == factors, s


def test_random_one_fit_gives_each_group_its_most_common_fit(networks):
    column, control, _ = networks
    one = V1Network(V1Config(n_neurons=1500, seed=3, structure="random_one_fit"), OptimizerConfig(), 2, 1.0)
    excitatory = D.EXCITATORY[column.layout.cls]
    for group in (excitatory, ~excitatory):
        ids, counts = np.unique(column.layout.fit[group], return_counts=True)
        assert len(ids) > 1  # the column has several fits per group: the control has one
        expected = D.GLIF_FITS[int(ids[np.argmax(counts)])]
        for j in np.flatnonzero(group):
            p = one.neuron_params[j]
            assert all(p[key] == expected[key] for key in ("C_m", "g", "E_L", "V_th", "t_ref", "asc_amps"))
            assert p["V_reset"] == expected["E_L"]
    for key in ("rec_src", "rec_tgt", "rec_w", "rec_receptor", "rec_delay"):  # the random wiring of the controls
        np.testing.assert_array_equal(getattr(one.layout, key), getattr(control.layout, key), err_msg=key)
    np.testing.assert_array_equal(one.layout.fit, column.layout.fit)  # the layout keeps the classes' fits
    assert "GLIF3 (one fit per E/I group) neurons" in one.describe()


def test_random_one_fit_no_asc_differs_from_random_one_fit_in_the_after_spike_currents_only():
    c = dict(n_neurons=1500, seed=3)
    one = V1Network(V1Config(**c, structure="random_one_fit"), OptimizerConfig(), 2, 1.0)
    no_asc = V1Network(V1Config(**c, structure="random_one_fit_no_asc"), OptimizerConfig(), 2, 1.0)
    assert any(np.any(np.asarray(p["asc_amps"]) != 0) for p in one.neuron_params)  # the fits have some to lose
    assert len(no_asc.neuron_params) == len(one.neuron_params)
    for p, q in zip(one.neuron_params, no_asc.neuron_params, strict=True):
        assert q["asc_amps"] == [0.0, 0.0]
        assert {k: v for k, v in q.items() if k != "asc_amps"} == {k: v for k, v in p.items() if k != "asc_amps"}
    np.testing.assert_array_equal(no_asc.background_weights(), one.background_weights())
    for key in ("rec_src", "rec_tgt", "rec_w", "rec_receptor", "rec_delay", "lgn_tgt", "lgn_w"):
        np.testing.assert_array_equal(getattr(no_asc.layout, key), getattr(one.layout, key), err_msg=key)
    assert [list(p) for p in no_asc.pools] == [list(p) for p in one.pools]
    assert "GLIF3 (one fit per E/I group, after-spike currents off) neurons" in no_asc.describe()


@pytest.mark.parametrize(
    "argv",
    [
        ["--name", "low_drive"],  # the default list has several configs: their runs would share folders
        ["--configs", "python/nestgrad/configs/v1_orientation_control.toml", "--name", "../escape"],
    ],
)
def test_script_refuses_a_name_for_several_configs_or_outside_its_folder(argv, tmp_path, capsys):
    script = load_script()
    with pytest.raises(SystemExit):
        script.main([*argv, "--out", str(tmp_path)])
    assert f"--name {argv[argv.index('--name') + 1]!r}" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # refused before anything is built or written


def test_script_scores_the_five_tasks_at_once_each_on_its_own_readouts(tmp_path, capsys):
    """v1_multi.toml at a test's size (1,500 neurons, 18 pools of 10): run.json holds each task's accuracy on its own
    readouts, in training and on new trials (one trial of each task per batch)."""
    text = (ROOT / "python/nestgrad/configs/v1_multi.toml").read_text()
    for old, new in (
        ("n_neurons = 5000", "n_neurons = 1500\npool_size = 10"),
        ("batch_size = 8", "batch_size = 5"),
        ("batch_size = 4800", "batch_size = 3000"),
        ("threads = 2", "threads = 1"),
    ):
        assert old in text, old
        text = text.replace(old, new, 1)
    config = tmp_path / "v1_multi_small.toml"
    config.write_text(text)
    script = load_script()
    argv = ["--configs", str(config), "--name", "multi", "--seeds", "1", "--iterations", "1", "--eval-batches", "1"]
    assert script.main([*argv, "--window", "1", "--out", str(tmp_path / "out")]) == 0
    run = json.loads((tmp_path / "out/multi_seed1/run.json").read_text())
    tasks = ["v1_orientation", "v1_digits", "v1_image_change", "v1_grating_change", "v1_evidence"]
    assert list(run["training_accuracy_per_task"]) == tasks
    for key in ("test_accuracy", "initial_test_accuracy"):
        per_task = run[f"{key}_per_task"]
        assert list(per_task) == tasks and all(p["trials"] == 1 for p in per_task.values())
        # one trial per task: the overall accuracy is the mean of the five (each 0 or 1)
        assert all(p["accuracy"] in (0.0, 1.0) for p in per_task.values())
        assert run[key] == pytest.approx(np.mean([p["accuracy"] for p in per_task.values()]))
    training = [run["training_accuracy_per_task"][t][0] for t in tasks]
    assert run["training_accuracy"][0] == pytest.approx(np.mean(training))
    assert "  v1_evidence: new trials" in capsys.readouterr().out

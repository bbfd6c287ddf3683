"""Configuration validation and the ``nestgrad`` command: bad input is refused before anything runs."""

from __future__ import annotations

import math
import pathlib
import subprocess
import sys

import pytest

from nestgrad import cli
from nestgrad.config import ConfigError, ExperimentConfig, NetworkConfig, OptimizerConfig, TaskConfig

CONFIGS = sorted((pathlib.Path(__file__).parents[1] / "python" / "nestgrad" / "configs").glob("*.toml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_configs_are_valid(path):
    cfg = ExperimentConfig.from_toml(path)
    assert cfg.training.iterations >= 1


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"netwrk": {}}, "unknown section(s) ['netwrk']"),
        ({"network": {"n_recc": 5}}, "network.n_recc"),
        ({"network": {"n_rec": 0}}, "network.n_rec = 0"),
        ({"network": {"n_rec": 2.5}}, "network.n_rec = 2.5"),
        ({"network": {"neuron_params": {"tau_m": math.nan}}}, "network.neuron_params.tau_m"),
        ({"task": {"name": "xor"}}, "task.name = 'xor'"),
        ({"task": {"resolution": -1.0}}, "task.resolution"),
        ({"task": {"name": "evidence", "n_cues": 4}}, "task.n_cues = 4"),
        ({"task": {"input_rate": 5000.0}}, "task.input_rate"),
        ({"optimizer": {"type": "sgd"}}, "optimizer.type = 'sgd'"),
        ({"optimizer": {"eta": math.nan}}, "optimizer.eta"),
        ({"optimizer": {"Wmin": 1.0, "Wmax": -1.0}}, "optimizer.Wmin/Wmax"),
        ({"optimizer": {"eta_decay": 0.0}}, "optimizer.eta_decay = 0.0"),
        ({"optimizer": {"eta_decay": 1.5}}, "optimizer.eta_decay = 1.5"),
        ({"optimizer": {"eta_decay": math.nan}}, "optimizer.eta_decay = nan"),
        ({"optimizer": {"eta_decay_every": -1}}, "optimizer.eta_decay_every = -1"),
        ({"optimizer": {"eta_decay_every": 2.5}}, "optimizer.eta_decay_every = 2.5"),
        ({"training": {"iterations": 0}}, "training.iterations = 0"),
        ({"training": {"threads": "two"}}, "training.threads = 'two'"),
    ],
)
def test_bad_configuration_names_the_key(data, fragment):
    with pytest.raises(ConfigError) as err:
        ExperimentConfig.from_dict(data)
    assert fragment in str(err.value)


def test_toml_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[network\n")
    with pytest.raises(ConfigError, match="bad.toml"):
        ExperimentConfig.from_toml(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        ExperimentConfig.from_toml(tmp_path / "missing.toml")


def test_unknown_neuron_model_and_parameter_rejected_before_simulation(tmp_path):
    from nestgrad.training.trainer import Trainer

    cfg = ExperimentConfig(network=NetworkConfig(neuron_model="eprop_iaf_psc_typo"))
    with pytest.raises(ValueError, match="eprop_iaf_psc_typo"):
        Trainer(cfg, tmp_path / "a", verbose=False).run()
    cfg = ExperimentConfig(network=NetworkConfig(neuron_params={"tau_mem": 20.0}))
    with pytest.raises(ValueError, match="tau_mem"):
        Trainer(cfg, tmp_path / "b", verbose=False).run()
    with pytest.raises(ConfigError, match="C_m"):  # refused by the configuration already
        ExperimentConfig(network=NetworkConfig(neuron_params={"C_m": -1.0}))
    assert not (tmp_path / "a" / "checkpoint.npz").exists()


def test_task_size_mismatch_is_refused(tmp_path):
    from nestgrad.training.trainer import Trainer

    cfg = ExperimentConfig(network=NetworkConfig(n_in=7), task=TaskConfig(name="sine"))
    with pytest.raises(ValueError, match="n_in = 100"):
        Trainer(cfg, tmp_path, verbose=False)


def test_optimizer_dict_for_nest():
    assert OptimizerConfig(type="gradient_descent").nest_dict()["type"] == "gradient_descent"
    assert OptimizerConfig(type="adam", beta_1=0.8).nest_dict()["beta_1"] == 0.8


def test_cli_rejects_unknown_key_with_message(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[training]\niterations = 2\nchekpoint_every = 1\n")
    assert cli.main(["train", str(cfg), "--out", str(tmp_path / "out")]) == 2
    assert "training.chekpoint_every" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cli_train_and_resume(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        "[network]\nn_rec = 20\n[task]\nsequence_steps = 200\n"
        "[training]\niterations = 2\ncheckpoint_every = 1\nplot = false\n"
    )
    out = tmp_path / "out"
    assert cli.main(["train", str(cfg), "--out", str(out)]) == 0
    assert "iteration    2/2" in capsys.readouterr().out
    assert cli.main(["train", str(cfg), "--out", str(out)]) == 2  # would overwrite
    assert "exists" in capsys.readouterr().err
    assert cli.main(["train", str(cfg), "--out", str(out), "--resume", "--iterations", "3"]) == 0
    assert "iteration    3/3" in capsys.readouterr().out
    assert cli.main(["train", str(cfg), "--out", str(out), "--overwrite"]) == 0  # explicit: start again
    assert "iteration    1/2" in capsys.readouterr().out
    assert cli.main(["evaluate", str(cfg), "--out", str(out), "--batches", "2"]) == 0
    printed = capsys.readouterr().out
    assert "evaluation of iteration 2 on 2 new trials (learning off): loss" in printed
    assert (out / "evaluation.json").exists()
    assert cli.main(["evaluate", str(cfg), "--out", str(out), "--batches", "2", "--initial"]) == 0
    assert "evaluation of iteration 0 on 2 new trials" in capsys.readouterr().out
    assert (out / "evaluation_initial.json").exists()
    assert cli.main(["evaluate", str(cfg), "--out", str(tmp_path / "nothing")]) == 2
    assert "no checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("args", [["--help"], ["train", "--help"], ["evaluate", "--help"], ["models", "--help"]])
def test_help_for_every_subcommand(args):
    result = subprocess.run([sys.executable, "-m", "nestgrad", *args], capture_output=True, text=True)
    assert result.returncode == 0
    assert "usage: nestgrad" in result.stdout


def test_models_command_lists_module_models():
    result = subprocess.run([sys.executable, "-m", "nestgrad", "models"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "eprop_iaf_psc_exp" in result.stdout and "glif3_psc_nestml" in result.stdout


@pytest.mark.parametrize(
    ("name", "bad", "message"),
    [
        ("DigitsLatencyConfig", {"side": 28.0}, "digits_latency.side = 28.0: need an integer"),
        ("DigitsLatencyConfig", {"t_max": "18"}, "digits_latency.t_max = '18': need a number"),
        ("EvidenceSpikesConfig", {"n_cues": True}, "task.params.n_cues = True: need an integer"),
        ("EvidenceSpikesConfig", {"cue_rate": 2000.0}, "task.params.cue_rate = 2000.0 Hz: need <= 1000 Hz"),
        ("YinYangTaskConfig", {"t_early": -0.1}, "task.params.t_early = -0.1: must be >= 0.0"),
        ("YinYangTaskConfig", {"t_late": 0.5}, "task.params.t_late = 0.5 ms: need > t_early = 0.75 ms"),
    ],
)
def test_eventprop_task_tables_share_from_dict_validate_to_dict(name: str, bad: dict, message: str) -> None:
    """The eventprop tasks' [task.params] tables: to_dict -> from_dict gives the same table back, unknown keys and
    bad values are refused with the same messages for all three (whole message compared)."""
    import nestgrad.config as config

    cls = getattr(config, name)
    default = cls()
    table = default.to_dict()
    assert isinstance(table, dict) and table == {k: getattr(default, k) for k in table}
    again = cls.from_dict(table)
    assert type(again) is cls and again == default
    with pytest.raises(ConfigError) as err:
        cls.from_dict(dict(table, colour=1))
    assert str(err.value) == f"task.params: unknown key(s) ['colour']; known: {sorted(table)}"
    with pytest.raises(ConfigError) as err:
        cls.from_dict(dict(table, **bad))
    assert str(err.value) == message

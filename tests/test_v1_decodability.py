"""scaling_runs/v1_decodability.py: what a linear readout finds in the untrained V1 column's window activity.

The decoder is checked on made-up counts (a signal carried by a few of thousands of neurons is found, pure noise
stays at chance, ten classes), the windows against each task's timing, the spike counting against the batch's own
LGN spikes and NEST's recorder in a small column, and the command line's refusals (nothing written).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import pathlib
import types

import numpy as np
import pytest

from nestgrad.config import ExperimentConfig
from nestgrad.config.v1 import V1TaskConfig

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "python/nestgrad/configs"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("v1_decodability_script", ROOT / "scaling_runs/v1_decodability.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_decoder_finds_a_sparse_signal_and_not_noise(script):
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 80)
    noise = rng.poisson(2.0, (160, 1000)).astype(float)
    mean, _ = script.decode(noise, y, folds=4, seed=1)
    assert 0.35 <= mean <= 0.65  # chance 0.5; 160 trials: +-0.04 standard error
    signal = noise.copy()
    signal[:, :10] += 2.0 * y[:, None]  # 10 of 1,000 neurons fire 2 more spikes for class 1
    mean, _ = script.decode(signal, y, folds=4, seed=1)
    assert mean >= 0.9
    y10 = np.repeat(np.arange(10), 16)
    ten = rng.poisson(2.0, (160, 1000)).astype(float)
    ten[np.arange(160), y10] += 6.0  # class k: neuron k fires more
    assert script.decode(ten, y10, folds=4, seed=1)[0] >= 0.8
    silent = np.zeros((160, 50))
    assert script.decode(silent, y, folds=4, seed=1) == (0.5, 0.0)  # no neuron varies: the majority class


def _task(name: str, **timing: float):
    from nestgrad.tasks.v1 import make_v1_task

    # the windows need the task's timing only, not its LGN
    return make_v1_task(name, V1TaskConfig(**timing), 1, types.SimpleNamespace(n_units=1), 1.0, 1)


def test_windows_follow_each_task_timing(script):
    assert script.task_windows(_task("v1_digits", post_delay_ms=50.0)) == {
        "response": (150, 200),
        "pre_response": (100, 150),
        "stimulus": (50, 150),
    }
    change = script.task_windows(_task("v1_image_change"))
    assert change["stimulus"] == (350, 450) and change["response"] == (500, 550)  # B: after A (50-150) and 200 ms
    assert change["first_stimulus"] == (50, 150)
    evidence = script.task_windows(_task("v1_evidence"))
    assert evidence["stimulus"] == (0, 300) and evidence["pre_response"] == (500, 550)  # 5 cues of 60 ms
    slow = script.task_windows(_task("v1_grating_change", time_scale=2.0))  # every duration doubled
    assert slow == {"response": (1000, 1100), "pre_response": (950, 1000), "stimulus": (700, 900),
                    "first_stimulus": (100, 300)}  # fmt: skip


def test_configs_scale_to_a_size(script):
    label, config = script.load_config(str(CONFIGS / "v1_orientation_chen.toml"), 1000)
    assert label == "v1_orientation_chen"
    assert config.network.v1["n_neurons"] == 1000 and config.network.v1["pool_size"] == 15
    shipped = ExperimentConfig.from_toml(CONFIGS / "v1_orientation_chen.toml")
    assert dataclasses.replace(config.network, v1=shipped.network.v1) == shipped.network  # only the size differs
    assert script.load_config(str(CONFIGS / "v1_orientation_chen.toml"), None)[1] == shipped
    label, config = script.load_config(str(CONFIGS / "v1_digits.toml"), None, ["lgn_weight_scale=0.6"])
    assert label == "v1_digits,lgn_weight_scale=0.6" and config.network.v1["lgn_weight_scale"] == 0.6


def test_spike_counts_match_the_batches_and_the_recorder(script):
    from nestgrad.networks.registry import make_learner

    _, config = script.load_config(str(CONFIGS / "v1_orientation.toml"), 600)
    config = dataclasses.replace(config, task=dataclasses.replace(config.task, batch_size=3))
    net, task = make_learner(config)
    data = script.spike_counts(config, net, task, n_batches=2, chunk=1, threads=1)
    assert data["windows"] == {"response": (50, 150), "pre_response": (0, 50), "stimulus": (50, 150)}
    batches = [task.batch(2_000_000 + i) for i in range(2)]
    np.testing.assert_array_equal(data["labels"], np.concatenate([b.labels for b in batches]))
    for key, (a, b) in data["windows"].items():
        lgn = np.concatenate([x.input_spikes.reshape(3, x.trial_steps, -1)[:, a:b].sum(axis=1) for x in batches])
        np.testing.assert_array_equal(data["lgn"][key], lgn)
        assert data["v1"][key].shape == (6, net.layout.cls.size)
    assert data["v1"]["stimulus"].sum() > 0  # the column answers the grating
    np.testing.assert_array_equal(data["v1"]["stimulus"], data["v1"]["response"])  # the same window, 50-150 ms


def test_command_line_refuses_before_writing(script, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(SystemExit):
        script.main(["--configs", str(CONFIGS / "v1_digits.toml"), "--trials", "12", "--out", str(out)])
    with pytest.raises(SystemExit):
        script.main(["--configs", str(CONFIGS / "v1_orientation_eventprop.toml"), "--out", str(out)])
    with pytest.raises(SystemExit):
        script.main(["--configs", str(CONFIGS / "v1_multi.toml"), "--out", str(out)])
    for bad in ("bogus=1", "lgn_weight_scale=abc", "lgn_weight_scale", "lgn_weight_scale=-1"):
        with pytest.raises(SystemExit):
            script.main(["--configs", str(CONFIGS / "v1_digits.toml"), "--v1", bad, "--out", str(out)])
    assert not out.exists()

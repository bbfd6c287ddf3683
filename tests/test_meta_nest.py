"""The outer loop with real inner runs: tiny nestgrad trainings in NEST (the wiring of nestgrad.meta.inner.train),
and the check with NEST, before generation 1, that the search space builds."""

from __future__ import annotations

import json
import os
import pathlib

import numpy as np
import pytest

from nestgrad.config import ExperimentConfig
from nestgrad.errors import ModelError
from nestgrad.meta import MetaConfig, MetaRun, MetaTest

ROOT = pathlib.Path(__file__).resolve().parent.parent

META = """
[meta]
inner_iterations = 3
generations = 1
population = 2
tasks_per_candidate = 1
[meta.family]
name = "sine"
periods_ms = [40.0, 100.0]
[meta.space]
"optimizer.eta" = {log_uniform = [1e-6, 1e-4]}
"network.neuron_params.tau_m" = {uniform = [5.0, 30.0]}
[meta.executor]
workers = 2
[meta.test]
tasks = 1
criterion = 0.9
[network]
n_rec = 10
[task]
name = "sine"
sequence_steps = 100
"""


@pytest.fixture(autouse=True)
def _importable(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT / "python"), os.environ.get("PYTHONPATH", "")]))


def test_real_inner_runs_train_in_nest_and_are_scored(tmp_path):
    cfg = tmp_path / "meta.toml"
    cfg.write_text(META)
    config = MetaConfig.from_toml(cfg)
    state = MetaRun(config, tmp_path / "out", verbose=False).run()
    assert len(state.evaluations) == 2
    for key, ev in state.evaluations.items():
        run = tmp_path / "out" / "runs" / key
        # the inner run is an ordinary nestgrad training: its configuration, metrics and checkpoint
        saved = ExperimentConfig.from_dict(json.loads((run / "config.json").read_text()))
        assert saved.optimizer.eta == pytest.approx(ev["settings"]["optimizer.eta"])
        assert saved.network.neuron_params["tau_m"] == pytest.approx(ev["settings"]["network.neuron_params.tau_m"])
        assert saved.task.sine_periods and all(40.0 <= p <= 100.0 for p in saved.task.sine_periods)
        assert saved.training.iterations == 3 and (run / "checkpoint.npz").exists()
        metrics = (run / "metrics.csv").read_text().splitlines()
        assert len(metrics) == 4
        assert ev["losses"] == pytest.approx([float(line.split(",")[1]) for line in metrics[1:]])
        # the score: the last loss over the loss of a silent readout on the same trials
        assert len(ev["silent"]) == 3 and min(ev["silent"]) > 0
        assert ev["score"] == pytest.approx(ev["losses"][-1] / ev["silent"][-1])
        assert np.isfinite(ev["score"]) and not ev["diverged"] and ev["seconds"] > 0
        assert "inner.log" in {p.name for p in run.iterdir()}
    report = MetaTest(config, tmp_path / "out", verbose=False).run()
    assert report["default"]["tasks"] == report["learned"]["tasks"] == 1
    assert (tmp_path / "out" / "meta_test.md").exists()


def test_a_parameter_nest_does_not_know_is_refused_before_generation_1(tmp_path):
    cfg = tmp_path / "meta.toml"
    cfg.write_text(META.replace('"network.neuron_params.tau_m"', '"network.neuron_params.tau_mm"'))
    with pytest.raises(ModelError) as err:
        MetaRun(MetaConfig.from_toml(cfg), tmp_path / "out", verbose=False).run()
    assert "the search space does not build" in str(err.value) and "tau_mm" in str(err.value)
    assert not list((tmp_path / "out").glob("runs/g*"))  # no inner run started


def test_evidence_family_inner_runs_train_in_nest(tmp_path):
    cfg = tmp_path / "meta.toml"
    cfg.write_text(
        META.replace('name = "sine"\nperiods_ms = [40.0, 100.0]', 'name = "evidence"\ncue_rate = [30.0, 50.0]')
        .replace(
            'name = "sine"\nsequence_steps = 100',
            'name = "evidence"\nn_cues = 3\ncue_steps = 20\n'
            "cue_spacing_steps = 10\ndelay_steps = 20\nrecall_steps = 20\nbatch_size = 2",
        )
        .replace("inner_iterations = 3", "inner_iterations = 2")
    )
    config = MetaConfig.from_toml(cfg)
    state = MetaRun(config, tmp_path / "out", verbose=False).run()
    for key, ev in state.evaluations.items():
        saved = json.loads((tmp_path / "out" / "runs" / key / "config.json").read_text())
        assert saved["task"]["name"] == "evidence" and 30.0 <= saved["task"]["cue_rate"] <= 50.0
        assert len(ev["losses"]) == 2 and len(ev["accuracy"]) == 2 and min(ev["silent"]) > 0
        # a silent readout's loss on the one-hot target: 0.5 x recall steps per trial
        assert ev["silent"] == pytest.approx([0.5 * 20] * 2)

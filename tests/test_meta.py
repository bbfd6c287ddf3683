"""Learning to learn (nestgrad.meta): search space, task families, the meta configuration, the outer loop with a fake
inner run (tests/meta_fake.py: deterministic, no NEST), kill and resume, the meta-test, and one real tiny inner run."""

from __future__ import annotations

import json
import math
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from nestgrad.config import ExperimentConfig, TaskConfig
from nestgrad.errors import CheckpointError, ConfigError, ModelError
from nestgrad.meta import MetaConfig, MetaRun, MetaTest, SearchSpace
from nestgrad.meta.family import TEST_STREAM, TRAIN_STREAM, EvidenceFamily, SineFamily, make_family, task_rng
from nestgrad.meta.metatest import iterations_to, summarise
from nestgrad.meta.outer import run_score
from nestgrad.meta.space import set_keys
from nestgrad.tasks import EvidenceAccumulationTask, SineWaveTask

ROOT = pathlib.Path(__file__).resolve().parent.parent
TESTS = pathlib.Path(__file__).resolve().parent
PY = sys.executable

META = """
[meta]
base = "sine_eprop_iaf_psc_exp.toml"
inner = "meta_fake:run"
inner_iterations = 10
generations = {generations}
population = 4
tasks_per_candidate = 2
[meta.family]
name = "sine"
[meta.space]
"optimizer.eta" = {{log_uniform = [1e-6, 1e-2]}}
"network.weight_scale" = {{log_uniform = [0.1, 10.0]}}
[meta.executor]
kind = "{kind}"
workers = 2
poll_s = 0.05
[meta.test]
tasks = 4
criterion = 0.3
[network]
n_rec = 30
"""


@pytest.fixture(autouse=True)
def _fake_importable(monkeypatch):
    """Worker processes (spawned, or started by submitit) import tests/meta_fake.py by name."""
    monkeypatch.syspath_prepend(str(TESTS))
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(ROOT / "python"), str(TESTS), os.environ.get("PYTHONPATH", "")])
    )


def write(tmp_path: pathlib.Path, text: str, name: str = "meta.toml") -> pathlib.Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def meta_config(tmp_path, generations=3, kind="local", **replace) -> MetaConfig:
    text = META.format(generations=generations, kind=kind)
    for old, new in replace.items():
        text = text.replace(old, new)
    return MetaConfig.from_toml(write(tmp_path, text))


BASE = json.loads(json.dumps(ExperimentConfig().to_dict()))


# -- search space ---------------------------------------------------------------------------------------------------
def test_space_maps_the_unit_cube_to_values_of_every_kind():
    space = SearchSpace.from_table(
        {
            "optimizer.eta": {"log_uniform": [1e-6, 1e-2]},
            "network.weight_scale": {"uniform": [0.5, 2.5], "start": 2.0},
            "task.batch_size": {"int_uniform": [1, 4]},
            "network.neuron_params.surrogate_gradient_function": {"choice": ["piecewise_linear", "exponential"]},
        },
        BASE,
        {},
    )
    assert space.keys[0] == "optimizer.eta"
    v0, v1 = space.values([0, 0, 0, 0]), space.values([1, 1, 1, 1])
    assert v0["optimizer.eta"] == pytest.approx(1e-6) and v1["optimizer.eta"] == pytest.approx(1e-2)
    assert space.values([0.5, 0.5, 0.5, 0.5])["optimizer.eta"] == pytest.approx(1e-4)  # log scale: the middle
    assert (v0["network.weight_scale"], v1["network.weight_scale"]) == (0.5, 2.5)
    assert [space.values([0, 0, u, 0])["task.batch_size"] for u in (0.0, 0.26, 0.51, 0.76, 1.0)] == [1, 2, 3, 4, 4]
    assert space.values([0, 0, 0, 0.49])["network.neuron_params.surrogate_gradient_function"] == "piecewise_linear"
    assert space.values([0, 0, 0, 0.51])["network.neuron_params.surrogate_gradient_function"] == "exponential"
    # the start: the base configuration's value (eta 1e-5), an explicit start, the middle (batch size), first choice
    start = space.values(space.start())
    assert start["optimizer.eta"] == pytest.approx(1e-5)
    assert start["network.weight_scale"] == pytest.approx(2.0)
    assert start["task.batch_size"] == 1  # the base's batch_size = 1 lies in the range
    assert start["network.neuron_params.surrogate_gradient_function"] == "piecewise_linear"
    # values outside the cube are clipped; every value makes a valid configuration
    assert space.values([-3, 7, 0, 0])["optimizer.eta"] == pytest.approx(1e-6)
    ExperimentConfig.from_dict(set_keys(BASE, space.values([0.3, 0.9, 0.7, 0.6])))


@pytest.mark.parametrize(
    "table, message",
    [
        ({"optimizer.etaa": {"uniform": [0, 1]}}, "'optimizer.etaa': [optimizer] has no key 'etaa'"),
        ({"optimiser.eta": {"uniform": [0, 1]}}, "key 'optimiser.eta' names no configuration value"),
        ({"eta": {"uniform": [0, 1]}}, "key 'eta' names no configuration value"),
        ({"optimizer.eta": {"log_uniform": [0.0, 1e-3]}}, 'meta.space."optimizer.eta": log_uniform'),
        ({"optimizer.eta": {"uniform": [1e-3, 1e-4]}}, "low < high"),
        ({"optimizer.eta": {"normal": [0, 1]}}, "exactly one of uniform, log_uniform, int_uniform, choice"),
        ({"optimizer.eta": 1e-4}, 'meta.space."optimizer.eta" = 0.0001: a table'),
        ({"optimizer.eta": {"uniform": [1e-6, 1e-3], "start": 1.0}}, "start = 1.0 lies outside the range"),
        ({"optimizer.eta": {"uniform": [-1e-3, 1e-3]}}, 'meta.space."optimizer.eta" = -0.001 makes an invalid'),
        ({"network.neuron_params.tau_m": {"uniform": [-5.0, 5.0]}}, "network.neuron_params.tau_m = -5.0"),
        ({"network.neuron_params": {"uniform": [1, 2]}}, "a table; name one of its entries"),
        ({"optimizer.eta.x": {"uniform": [1, 2]}}, "optimizer.eta is not a table"),
        ({"network.n_rec": {"uniform": [10, 50]}}, "network.n_rec = 10.0 is invalid: an integer"),
        ({"network.recurrent": {"uniform": [0, 1]}}, "use choice = [true, false]"),
        ({"network.neuron_model": {"uniform": [0, 1]}}, "not a number; use choice"),
        ({"task.batch_size": {"int_uniform": [1.5, 4]}}, "two integers are required"),
        ({"optimizer.type": {"choice": ["adam"]}}, "at least two different values"),
        ({"optimizer.type": {"choice": ["adam", "sgd"]}}, "optimizer.type = 'sgd' is invalid"),
        ({"network.seed": {"int_uniform": [1, 9]}}, "the outer loop sets this key itself (drawn per task)"),
        ({}, "a table with at least one key"),
    ],
)
def test_space_errors_name_the_key(table, message):
    with pytest.raises(ConfigError) as err:
        SearchSpace.from_table(table, BASE, {"network.seed": "drawn per task"})
    assert message in str(err.value)


# -- task families --------------------------------------------------------------------------------------------------
def test_sine_family_is_seeded_in_range_and_makes_its_tasks():
    fam = make_family({"name": "sine", "n_components": 3, "periods_ms": [100, 400], "amplitudes": [1, 2]})
    a = fam.sample(task_rng(1, TRAIN_STREAM, 0, 0))
    assert a == fam.sample(task_rng(1, TRAIN_STREAM, 0, 0))  # seeded
    assert a != fam.sample(task_rng(1, TRAIN_STREAM, 0, 1)) != fam.sample(task_rng(1, TEST_STREAM, 0))
    assert len(a["task.sine_periods"]) == 3 and all(100 <= p <= 400 for p in a["task.sine_periods"])
    assert all(1 <= x <= 2 for x in a["task.sine_amplitudes"])
    assert all(0 <= x < 2 * math.pi for x in a["task.sine_phases"])
    # the task made from the sample is that sum of sines, shifted to start at 0 and scaled to a peak of 1
    cfg = ExperimentConfig.from_dict(set_keys(BASE, a)).task
    task = SineWaveTask(cfg, a["network.seed"])
    t = np.arange(cfg.sequence_steps) * cfg.resolution
    s = sum(
        amp * np.sin(2 * np.pi * t / p + ph)
        for p, amp, ph in zip(cfg.sine_periods, cfg.sine_amplitudes, cfg.sine_phases, strict=True)
    )
    s = s - s[0]
    np.testing.assert_allclose(task.batch(0).target[:, 0], s / np.abs(s).max(), atol=1e-12)
    # the default task is unchanged: its amplitudes and phases are drawn from the seed as before
    d = SineWaveTask(TaskConfig(), 5)
    assert d.batch(0).target.shape == (1000, 1) and abs(d.batch(0).target).max() == pytest.approx(1.0)


def test_evidence_family_varies_the_cue_statistics():
    fam = EvidenceFamily(cue_rate=(30, 30.0), background_rate=(0, 5), cue_side_probability=(1.0, 1.0))
    a = fam.sample(task_rng(3, TRAIN_STREAM, 1, 0))
    assert a["task.cue_rate"] == 30 and 0 <= a["task.background_rate"] <= 5 and a["task.cue_side_probability"] == 1
    cfg = ExperimentConfig.from_dict(set_keys(set_keys(BASE, {"task.name": "evidence", "task.batch_size": 8}), a))
    task = EvidenceAccumulationTask(cfg.task, 1)
    b = task.batch(0)
    # p = 1: every cue of a trial on one side, so the label is the side of its first cue
    cue = task.config.cue_steps
    first_left = b.input_spikes.reshape(8, task.trial_steps, 40)[:, :cue, :10].sum((1, 2))
    first_right = b.input_spikes.reshape(8, task.trial_steps, 40)[:, :cue, 10:20].sum((1, 2))
    assert np.all((first_right > first_left) == (b.labels == 1))


@pytest.mark.parametrize(
    "table, message",
    [
        ({"name": "spiral"}, "meta.family.name = 'spiral'"),
        ({"name": "sine", "periods_ms": [0, 100]}, "meta.family.periods_ms = [0, 100]"),
        ({"name": "sine", "n_components": 0}, "meta.family.n_components = 0"),
        ({"name": "sine", "cue_rate": [1, 2]}, "unknown key(s) cue_rate for family 'sine'"),
        ({"name": "evidence", "cue_side_probability": [0.4, 0.9]}, "meta.family.cue_side_probability"),
        ({"name": "evidence", "cue_side_probability": [0.6, 1.2]}, "probabilities in [0.5, 1]"),
        ({}, "[meta.family] needs name"),
    ],
)
def test_family_errors_name_the_key(table, message):
    with pytest.raises(ConfigError) as err:
        make_family(table)
    assert message in str(err.value)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"sine_periods": []}, "task.sine_periods = [] is invalid: at least one period"),
        ({"sine_periods": [100, -1]}, "every one > 0 ms"),
        ({"sine_amplitudes": [1.0]}, "task.sine_amplitudes = [1.0] is invalid: empty (drawn from network.seed) or one"),
        ({"sine_phases": [float("nan")] * 4}, "task.sine_phases"),
        ({"cue_side_probability": 0.3}, "task.cue_side_probability = 0.3 is invalid: a probability in [0.5, 1]"),
    ],
)
def test_task_config_checks_the_family_fields(values, message):
    with pytest.raises(ConfigError) as err:
        TaskConfig(**values)
    assert message in str(err.value)


# -- the meta configuration -----------------------------------------------------------------------------------------
def test_meta_config_lays_inline_sections_over_the_base_and_sets_the_budget(tmp_path):
    c = meta_config(tmp_path)
    assert c.base["network"]["n_rec"] == 30  # inline [network] over the shipped base file
    assert c.base["optimizer"]["eta"] == 1e-5  # from the base file
    assert c.base["training"]["iterations"] == c.base["training"]["checkpoint_every"] == 10
    assert c.base["training"]["plot"] is False
    assert isinstance(c.family, SineFamily) and c.space.keys == ("optimizer.eta", "network.weight_scale")
    ExperimentConfig.from_dict(c.task_config(c.family.sample(task_rng(1, TRAIN_STREAM, 0, 0)), {}))


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("[meta]\n", "[metaa]\n", "unknown section(s) ['metaa']"),
        ('name = "sine"', 'name = "evidence"', "meta.family.name = 'evidence' needs task.name = 'evidence'"),
        ('kind = "local"', 'kind = "cloud"', "meta.executor.kind = 'cloud'"),
        ("workers = 2", "workers = 0", "meta.executor.workers = 0"),
        ('"meta_fake:run"', '"meta_fake:nothing"', "meta.inner = 'meta_fake:nothing' cannot be imported"),
        ('"meta_fake:run"', '"meta_fake"', "meta.inner = 'meta_fake': 'module:function' is required"),
        ("population = 4", "population = 1", "meta.population = 1"),
        ("inner_iterations = 10", "inner_iterations = 10\nscore_window = 11", "meta.score_window = 11"),
        ("inner_iterations = 10", "inner_iterations = 10\nsigma = 1", "unknown key(s) meta.sigma"),
        ("sine_eprop_iaf_psc_exp.toml", "nothing.toml", "meta.base = 'nothing.toml' is neither"),
        ("n_rec = 30", "n_rec = -3", "network.n_rec = -3 is invalid"),
        ("criterion = 0.3", "criterion = 0", "meta.test.criterion = 0"),
        ('"network.weight_scale"', '"task.sine_phases"', "drawn per task by the 'sine' family"),
        ('"network.weight_scale"', '"training.iterations"', "(meta.inner_iterations)"),
    ],
)
def test_meta_config_errors_name_the_key(tmp_path, old, new, message):
    text = META.format(generations=2, kind="local")
    assert old in text
    with pytest.raises(ConfigError) as err:
        MetaConfig.from_toml(write(tmp_path, text.replace(old, new, 1)))
    assert message in str(err.value)


def test_a_training_configuration_is_not_a_meta_configuration():
    with pytest.raises(ConfigError, match=r"a \[meta\] table is required \(docs/meta_learning.md\)"):
        MetaConfig.from_toml(ROOT / "python/nestgrad/configs/sine_eprop_iaf_psc_exp.toml")


# -- scores ---------------------------------------------------------------------------------------------------------
def test_run_score_and_iterations_to_criterion():
    r = {"losses": [8.0, 4.0, 2.0, 1.0], "silent": [10.0] * 4, "diverged": False}
    assert run_score(r, 1, 4, 2.0) == pytest.approx(0.1)
    assert run_score(r, 2, 4, 2.0) == pytest.approx(0.15)
    assert run_score({**r, "diverged": True}, 1, 4, 2.0) == 2.0
    assert run_score({**r, "losses": [8.0, 4.0]}, 1, 4, 2.0) == 2.0  # stopped early
    assert run_score({**r, "losses": [8.0, 4.0, 2.0, float("nan")]}, 1, 4, 2.0) == 2.0
    assert iterations_to([0.8, 0.4, 0.2, 0.1], 0.3) == 3 and iterations_to([0.8, 0.4], 0.3) is None
    s = summarise([[0.8, 0.2], [0.9, 0.5], [0.1, 0.1]], [1.0, 2.0, 3.0], 0.3, 2)
    assert s["reached"] == 2 and s["iterations_median"] == 2.0 and s["per_task_iterations"] == [2, None, 1]
    assert s["iterations_mean"] == pytest.approx((2 + 3 + 1) / 3)  # not reached: budget + 1
    assert s["seconds_mean"] == 2.0


# -- the outer loop with the fake inner run -------------------------------------------------------------------------
def test_outer_loop_finds_the_fake_optimum_and_writes_its_outputs(tmp_path, capsys):
    config = meta_config(tmp_path, generations=5)
    state = MetaRun(config, tmp_path / "out").run()
    out = tmp_path / "out"
    for name in ("meta_state.json", "meta_progress.csv", "meta_progress.png", "meta_best.json"):
        assert (out / name).stat().st_size > 0
    assert len(state.evaluations) == 5 * 4 * 2 and len(state.generations) == 5
    rows = (out / "meta_progress.csv").read_text().splitlines()
    assert rows[0].startswith("generation,best,median,worst,spread") and len(rows) == 6
    first, last = state.generations[0], state.generations[-1]
    assert last["best_so_far"] < first["best"]  # CMA-ES improved on generation 1
    best = json.loads((out / "meta_best.json").read_text())
    # the fake's optimum is eta = 1e-4: the best found is closer to it than the start (1e-5)
    assert abs(math.log10(best["settings"]["optimizer.eta"]) + 4) < 1.0
    assert best["config"]["optimizer"]["eta"] == best["settings"]["optimizer.eta"]
    assert best["evaluations"] == 40
    printed = capsys.readouterr().out
    assert "meta: generation 1/5: best" in printed and "spread" in printed and "meta: done: best score" in printed
    # every inner run ran once, in its own folder
    calls = sorted((out / "runs").glob("*/calls.txt"))
    assert len(calls) == 40 and all(len(p.read_text().split()) == 1 for p in calls)


def test_existing_state_is_kept_and_another_search_is_not_resumed(tmp_path):
    config = meta_config(tmp_path, generations=1)
    MetaRun(config, tmp_path / "out", verbose=False).run()
    with pytest.raises(CheckpointError, match="meta_state.json exists: resume it"):
        MetaRun(config, tmp_path / "out", verbose=False).run()
    other = meta_config(tmp_path, generations=1, **{"[1e-6, 1e-2]": "[1e-7, 1e-2]"})
    with pytest.raises(CheckpointError, match=r"another search \(differs in: space\)"):
        MetaRun(other, tmp_path / "out", verbose=False).run(resume=True)
    with pytest.raises(CheckpointError, match="no outer-loop state"):
        MetaRun(config, tmp_path / "empty", verbose=False).run(resume=True)
    # more generations continue the same search
    more = meta_config(tmp_path, generations=2)
    state = MetaRun(more, tmp_path / "out", verbose=False).run(resume=True)
    assert len(state.generations) == 2 and len(state.evaluations) == 16


def test_a_failing_inner_run_stops_the_loop_with_its_error(tmp_path):
    config = meta_config(tmp_path, generations=1, **{"meta_fake:run": "meta_fake:fail"})
    with pytest.raises(ModelError) as err:
        MetaRun(config, tmp_path / "out", verbose=False).run()
    assert "inner run g000_c0" in str(err.value) and "optimizer.eta = " in str(err.value)
    assert "no parameter 'tau_mm'" in str(err.value)
    assert (tmp_path / "out" / "meta_state.json").exists()  # saved before stopping
    crash = meta_config(tmp_path, generations=1, **{"meta_fake:run": "meta_fake:crash"})
    with pytest.raises(RuntimeError, match="KeyError"):
        MetaRun(crash, tmp_path / "out2", verbose=False).run()


def _evaluations(folder: pathlib.Path) -> dict[str, tuple]:
    state = json.loads((folder / "meta_state.json").read_text())
    return {k: (tuple(v["x"]), v["score"], tuple(v["losses"])) for k, v in state["evaluations"].items()}


def test_killed_outer_loop_resumes_without_losing_or_repeating_an_evaluation(tmp_path):
    """SIGKILL in the middle of a generation, --resume: the evaluations equal an uninterrupted run's, and no finished
    evaluation ran twice."""
    cfg = write(tmp_path, META.format(generations=3, kind="local"))
    env = {**os.environ, "FAKE_SLEEP_S": "0.15"}
    cmd = [PY, "-m", "nestgrad", "meta", str(cfg)]
    subprocess.run([*cmd, "--out", str(tmp_path / "whole")], env=env, check=True, capture_output=True, timeout=300)

    out = tmp_path / "killed"
    proc = subprocess.Popen([*cmd, "--out", str(out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    per_generation = 4 * 2
    finished: set[str] = set()
    deadline = time.time() + 120
    while time.time() < deadline:  # wait for a state in the middle of generation 2
        try:
            state = json.loads((out / "meta_state.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            time.sleep(0.02)
            continue
        n = len(state["evaluations"])
        if n > per_generation and n % per_generation:
            finished = set(state["evaluations"])
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert finished, "the outer loop never reached the middle of generation 2"
    killed = json.loads((out / "meta_state.json").read_text())
    assert set(killed["evaluations"]) >= finished and len(killed["evaluations"]) < 3 * per_generation
    time.sleep(0.5)  # the workers die with their parent (PR_SET_PDEATHSIG); their folders' files are closed
    (out / ".meta_state.json.abcd1234.tmp").write_text("{")  # as a kill in the middle of a write leaves it

    done = subprocess.run([*cmd, "--out", str(out), "--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert _evaluations(out) == _evaluations(tmp_path / "whole")
    for key in killed["evaluations"]:  # finished before the kill: never run again
        assert (out / "runs" / key / "calls.txt").read_text().split() == [key]
    assert not list(out.glob(".meta_state.json.*.tmp"))  # removed by the resumed run
    whole = json.loads((tmp_path / "whole" / "meta_state.json").read_text())
    resumed = json.loads((out / "meta_state.json").read_text())
    assert whole["best"] == resumed["best"]
    assert [g["best"] for g in whole["generations"]] == [g["best"] for g in resumed["generations"]]


def _descendants(pid: int) -> set[int]:
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        for child in pathlib.Path(f"/proc/{p}/task/{p}/children").read_text().split():
            out.add(int(child))
            todo.append(int(child))
    return out


def test_killing_the_outer_loop_ends_its_inner_runs(tmp_path):
    """Inner runs do not outlive a killed outer loop (they would hold their folders' locks when it resumes)."""
    cfg = write(tmp_path, META.format(generations=1, kind="local"))
    env = {**os.environ, "FAKE_SLEEP_S": "60"}
    proc = subprocess.Popen([PY, "-m", "nestgrad", "meta", str(cfg), "--out", str(tmp_path / "o")], env=env)
    deadline = time.time() + 60
    while time.time() < deadline and len(list((tmp_path / "o" / "runs").glob("*/calls.txt"))) < 2:
        time.sleep(0.05)
    workers = _descendants(proc.pid)
    assert len(workers) >= 2
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.time() + 10
    while time.time() < deadline and any(pathlib.Path(f"/proc/{p}").exists() for p in workers):
        time.sleep(0.1)
    alive = [p for p in workers if pathlib.Path(f"/proc/{p}").exists()]
    for p in alive:  # clean up before failing
        os.kill(p, signal.SIGKILL)
    assert not alive


def test_meta_test_compares_learned_and_default_settings(tmp_path):
    config = meta_config(tmp_path, generations=4)
    MetaRun(config, tmp_path / "out", verbose=False).run()
    report = MetaTest(config, tmp_path / "out", verbose=False).run()
    out = tmp_path / "out"
    for name in ("meta_test.json", "meta_test.md", "meta_test.png", "meta_test_state.json"):
        assert (out / name).stat().st_size > 0
    assert report["tasks"] == 4 and report["budget"] == 10
    # the fake: eta 1e-5 (default) learns with rate 0.5 e^-1 per iteration, the learned eta much faster
    assert report["learned"]["iterations_median"] < report["default"]["iterations_median"]
    assert report["speedup_median"] == pytest.approx(
        report["default"]["iterations_median"] / report["learned"]["iterations_median"]
    )
    assert report["default_settings"] == {"optimizer.eta": 1e-5, "network.weight_scale": 1.0}
    table = (out / "meta_test.md").read_text()
    assert "| default |" in table and "| learned |" in table and "Speed-up" in table
    # the test tasks come from the test stream: none equals a meta-training task
    state = json.loads((out / "meta_state.json").read_text())
    train = {json.dumps(config.family.sample(task_rng(1, TRAIN_STREAM, g, t))) for g in range(4) for t in range(2)}
    test = {json.dumps(config.family.sample(task_rng(1, TEST_STREAM, i))) for i in range(4)}
    assert len(test) == 4 and not train & test
    test_runs = sorted((out / "test_runs").iterdir())
    assert len(test_runs) == 8
    assert len(state["evaluations"]) == 32
    # a second meta-test reuses the saved results (nothing is run again)
    MetaTest(config, out, verbose=False).run()
    assert all((p / "calls.txt").read_text().split() == [p.name] for p in test_runs)
    with pytest.raises(CheckpointError, match="no meta-training"):
        MetaTest(config, tmp_path / "nothing").run()


def test_cli_meta_and_meta_test_print_one_line_errors(tmp_path):
    bad = write(tmp_path, META.format(generations=2, kind="local").replace("1e-6, 1e-2", "0, 1e-2"))
    r = subprocess.run([PY, "-m", "nestgrad", "meta", str(bad)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and 'meta.space."optimizer.eta": log_uniform' in r.stderr and "Traceback" not in r.stderr
    good = write(tmp_path, META.format(generations=2, kind="local"), "good.toml")
    r = subprocess.run(
        [PY, "-m", "nestgrad", "meta-test", str(good), "--out", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "no meta-training" in r.stderr
    r = subprocess.run(
        [PY, "-m", "nestgrad", "meta-test", str(good), "--iterations", "0"], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 2 and "--iterations = 0: an integer >= 1" in r.stderr


@pytest.mark.parametrize("name", ["meta_sine.toml", "meta_evidence.toml"])
def test_shipped_meta_configurations_load(name):
    c = MetaConfig.from_toml(ROOT / "python" / "nestgrad" / "configs" / "meta" / name)
    assert c.family.name == c.base["task"]["name"] and len(c.space) >= 3
    start = c.task_config(c.family.sample(task_rng(c.seed, TRAIN_STREAM, 0, 0)), c.space.values(c.space.start()))
    assert ExperimentConfig.from_dict(start).training.iterations == c.inner_iterations

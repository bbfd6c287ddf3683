"""The SLURM path of the outer loop (submitit): the same meta configuration runs through submitit's LocalExecutor
(``kind = "submitit_local"``) with the same results as the local process pool, and ``kind = "slurm"`` writes the
sbatch script its options ask for (a fake ``srun``/``sbatch`` on PATH stand in for SLURM, which this machine lacks)."""

from __future__ import annotations

import json
import os
import pathlib
import stat

import pytest

from nestgrad.errors import ConfigError
from nestgrad.meta import ExecutorConfig, MetaConfig, MetaRun
from nestgrad.meta.executors import SubmititPool, make_pool, submitit_parameters
from nestgrad.meta.inner import InnerJob

ROOT = pathlib.Path(__file__).resolve().parent.parent
TESTS = pathlib.Path(__file__).resolve().parent

META = """
[meta]
base = "sine_eprop_iaf_psc_exp.toml"
inner = "meta_fake:run"
inner_iterations = 5
generations = 1
population = 3
tasks_per_candidate = 1
[meta.family]
name = "sine"
[meta.space]
"optimizer.eta" = {log_uniform = [1e-6, 1e-2]}
[meta.executor]
KIND
workers = 2
poll_s = 0.05
"""


@pytest.fixture(autouse=True)
def _fake_importable(monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(ROOT / "python"), str(TESTS), os.environ.get("PYTHONPATH", "")])
    )


def _states(folder: pathlib.Path) -> dict:
    s = json.loads((folder / "meta_state.json").read_text())
    return {k: (v["x"], v["score"]) for k, v in s["evaluations"].items()}


def test_submitit_local_executor_gives_the_local_pools_results(tmp_path):
    results = {}
    for kind in ("local", "submitit_local"):
        (tmp_path / kind).mkdir()
        cfg = tmp_path / kind / "meta.toml"
        cfg.write_text(META.replace("KIND", f'kind = "{kind}"'))
        MetaRun(MetaConfig.from_toml(cfg), tmp_path / kind / "out", verbose=False).run()
        results[kind] = _states(tmp_path / kind / "out")
    assert len(results["local"]) == 3
    assert results["submitit_local"] == results["local"]
    # submitit kept its job files (pickled job, logs) in the output folder's jobs/
    assert list((tmp_path / "submitit_local" / "out" / "jobs").rglob("*_submitted.pkl"))


def test_submitit_parameters_map_the_executor_options():
    cfg = ExecutorConfig.from_table(
        {
            "kind": "slurm",
            "workers": 8,
            "partition": "batch",
            "account": "proj42",
            "timeout_min": 30,
            "mem_gb": 6.0,
            "setup": ["module load nest", "source venv/bin/activate"],
            "additional": {"qos": "normal"},
        }
    )
    p = submitit_parameters(cfg, threads=4)
    assert p["cpus_per_task"] == 4  # 0: the inner configuration's training.threads
    assert p["timeout_min"] == 30 and p["mem_gb"] == 6.0 and p["slurm_array_parallelism"] == 8
    assert p["slurm_partition"] == "batch" and p["slurm_account"] == "proj42"
    assert p["slurm_setup"] == ["module load nest", "source venv/bin/activate"]
    assert p["slurm_additional_parameters"] == {"qos": "normal"}
    assert submitit_parameters(ExecutorConfig(cpus_per_task=2), threads=4)["cpus_per_task"] == 2


def _fake_slurm(tmp_path: pathlib.Path, monkeypatch) -> pathlib.Path:
    """``srun`` and ``sbatch`` scripts on PATH; sbatch keeps a copy of what it was given and answers with a job id."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    submitted = tmp_path / "submitted"
    submitted.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\ncp "$1" {submitted}/job_$$.sh\necho "Submitted batch job 4242"\n')
    for f in bin_dir.iterdir():
        f.chmod(f.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return submitted


def test_slurm_kind_submits_a_job_array_with_the_configured_options(tmp_path, monkeypatch):
    submitted = _fake_slurm(tmp_path, monkeypatch)
    cfg = ExecutorConfig.from_table(
        {
            "kind": "slurm",
            "workers": 3,
            "partition": "batch",
            "timeout_min": 45,
            "mem_gb": 2.0,
            "setup": ["module load nest"],
            "additional": {"qos": "normal"},
        }
    )
    pool = make_pool("meta_fake:run", cfg, threads=2, folder=tmp_path / "jobs")
    assert isinstance(pool, SubmititPool) and pool.cluster == "slurm"
    jobs = [InnerJob(f"g000_c{c:02d}_t00", {}, str(tmp_path / f"run{c}")) for c in range(4)]
    handles = pool.submit(jobs)
    assert len(handles) == 4 and {h.job_id.split("_")[0] for h in handles} == {"4242"}
    scripts = list(submitted.iterdir())
    assert len(scripts) == 1  # one sbatch call: a job array
    text = scripts[0].read_text()
    for line in (
        "#SBATCH --partition=batch",
        "#SBATCH --time=45",
        "#SBATCH --cpus-per-task=2",
        "#SBATCH --mem=2GB",
        "#SBATCH --array=0-3%3",
        "#SBATCH --qos=normal",
        "#SBATCH --job-name=nestgrad-meta",
        "module load nest",
    ):
        assert line in text, (line, text)
    assert "submitit.core._submit" in text


def test_slurm_kind_without_slurm_and_bad_executor_options_are_config_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ConfigError, match=r"meta.executor \(kind = 'slurm'\): submitit refused: .*srun"):
        make_pool("meta_fake:run", ExecutorConfig(kind="slurm"), 1, tmp_path / "jobs")
    with pytest.raises(ConfigError, match="meta.executor.kind = 'pbs'"):
        ExecutorConfig.from_table({"kind": "pbs"})
    with pytest.raises(ConfigError, match="meta.executor.setup"):
        ExecutorConfig.from_table({"setup": "module load nest"})

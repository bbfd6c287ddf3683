"""The pure parts of scaling_runs/dvs_connectivity.py (docs/deep_rewiring.md): per-case configurations, the summary
(mean and sd over seeds, speed ratio), the Markdown table, the JSON and the figure from run records, the resume skip
and the measured child process. No NEST training."""

from __future__ import annotations

import importlib.util
import json
import math
import pathlib
import sys
import tomllib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scaling_runs" / "dvs_connectivity.py"


@pytest.fixture(scope="module")
def dc():
    spec = importlib.util.spec_from_file_location("dvs_connectivity", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["dvs_connectivity"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("dvs_connectivity", None)


def _base() -> dict:
    return tomllib.loads((REPO / "python/nestgrad/configs/dvs_glyphs_eprop.toml").read_text())


def test_case_configs_round_trip_through_toml_and_load(dc):
    from nestgrad.config import ExperimentConfig
    from nestgrad.rewiring import RewiringConfig

    base = _base()
    deep_r = dc.DeepR(alpha=0.5, temperature=1e-6)
    for case in dc.CASES:
        cfg = dc.case_config(base, case, 3, 7, 5, deep_r)
        assert tomllib.loads(dc.to_toml(cfg)) == cfg  # the written file says exactly this
        loaded = ExperimentConfig.from_dict(cfg)
        assert loaded.network.seed == 3
        assert loaded.training.iterations == 7 and loaded.training.checkpoint_every == 5
        assert loaded.optimizer.sign_constrained is True
        assert loaded.network.neuron_params == {"adapt_tau": 200.0}  # the rest of the shipped config is kept
        rw = RewiringConfig.from_dict(dict(loaded.network.rewiring or {}))  # the network's own reading of it
        assert (rw.in_fraction, rw.rec_fraction, rw.enabled) == (case.in_fraction, case.rec_fraction, case.rewiring)
        if case.rewiring:
            assert (rw.every, rw.alpha, rw.temperature) == (5, 0.5, 1e-6)
    assert base["training"]["iterations"] == 60  # the base dictionary is not changed
    assert "rewiring" not in dc.case_config(base, dc.CASE_BY_NAME["dense"], 1, 1, 1, deep_r)["network"]


def _record(case, seed: int, acc: float, cpu: float, rss: int) -> dict:
    return {
        "case": case.name,
        "seed": seed,
        "in_fraction": case.in_fraction,
        "rec_fraction": case.rec_fraction,
        "rewiring": case.rewiring,
        "test_accuracy": acc,
        "test_trials": 960,
        "test_accuracy_se": math.sqrt(acc * (1 - acc) / 960),
        "synapses": {"in_rec": 51200 if case.name == "dense" else 2560, "rec_rec": 9900, "rec_out": 600},
        "wall_s_per_iteration": 2 * cpu,
        "cpu_s_per_iteration": cpu,
        "simulate_s_per_iteration_median": cpu / 2,
        "train_peak_rss_bytes": rss,
    }


def test_summary_table_json_and_figure_from_records(dc, tmp_path):
    dense, fixed = dc.CASE_BY_NAME["dense"], dc.CASE_BY_NAME["rec10_fixed"]
    records = [
        _record(dense, 1, 0.70, 6.0, 500_000_000),
        _record(dense, 2, 0.80, 4.0, 520_000_000),
        _record(fixed, 1, 0.60, 2.0, 400_000_000),
    ]
    for r in records:
        folder = tmp_path / r["case"] / f"seed{r['seed']}"
        folder.mkdir(parents=True)
        (folder / "result.json").write_text(json.dumps(r))
    (tmp_path / "timing.json").write_text(
        json.dumps(
            {
                "cases": {
                    "dense": {"best_s_per_iteration": 3.0, "best_simulate_s": 2.0},
                    "rec10_fixed": {"best_s_per_iteration": 1.5, "best_simulate_s": 0.25},
                }
            }
        )
    )
    out_json, figure = tmp_path / "results" / "s.json", tmp_path / "fig" / "acc.png"
    summary = dc.write_summary(tmp_path, out_json, figure)

    d = summary["cases"]["dense"]
    assert d["seeds"] == [1, 2]
    assert d["test_accuracy"]["mean"] == pytest.approx(0.75)
    assert d["test_accuracy"]["sd"] == pytest.approx(math.sqrt(0.005))  # sample sd (n - 1)
    assert d["cpu_s_per_iteration"]["mean"] == pytest.approx(5.0)
    f = summary["cases"]["rec10_fixed"]
    assert math.isnan(f["test_accuracy"]["sd"])  # one seed: no sd
    assert f["speedup_cpu_vs_dense"] == pytest.approx(2.5)
    assert f["speedup_timing_vs_dense"] == pytest.approx(2.0)
    assert f["speedup_simulate_vs_dense"] == pytest.approx(8.0)
    assert set(summary["cases"]) == {"dense", "rec10_fixed"}  # cases without records are left out

    table = (tmp_path / "dvs_connectivity.md").read_text().splitlines()
    assert len(table) == 4
    assert table[2] == (
        "| dense | 51,200 + 9,900 | 2 | 75.0 ± 7.1 | 5.00 ± 1.41 | 1.0x | 10.00 ± 2.83 | 2.50 ± 0.71 | 3.00 | 2.00 "
        "| 1.0x / 1.0x | 510 ± 14 |"
    )
    assert table[3] == (
        "| 10 % rec, 5 % in, fixed | 2,560 + 9,900 | 1 | 60.0 | 2.00 | 2.5x | 4.00 | 1.00 | 1.50 | 0.25 "
        "| 2.0x / 8.0x | 400 |"
    )
    assert json.loads(out_json.read_text()) == json.loads((tmp_path / "dvs_connectivity.json").read_text())
    assert json.loads(out_json.read_text())["runs"] == records
    assert figure.stat().st_size > 10_000


def test_finished_runs_are_skipped(dc, tmp_path, monkeypatch):
    done = dc.run_dir(tmp_path, dc.CASE_BY_NAME["dense"], 1)
    done.mkdir(parents=True)
    (done / "result.json").write_text(json.dumps(_record(dc.CASE_BY_NAME["dense"], 1, 0.7, 5.0, 1)))
    (dc.run_dir(tmp_path, dc.CASE_BY_NAME["rec1_fixed"], 1)).mkdir(parents=True)  # started, never finished
    calls = []

    def fake(out, base, case, seed, iterations, every, batches, deep_r):
        calls.append((case.name, seed, iterations, every, batches))
        rec = _record(case, seed, 0.5, 1.0, 1)
        (dc.run_dir(out, case, seed) / "result.json").parent.mkdir(parents=True, exist_ok=True)
        (dc.run_dir(out, case, seed) / "result.json").write_text(json.dumps(rec))
        return rec

    monkeypatch.setattr(dc, "train_and_evaluate", fake)
    argv = ["--out", str(tmp_path), "--seeds", "1", "2", "--cases", "dense", "rec1_fixed", "--batches", "3"]
    assert dc.main(argv) == 0
    assert calls == [("rec1_fixed", 1, 60, 5, 3), ("dense", 2, 60, 5, 3), ("rec1_fixed", 2, 60, 5, 3)]
    calls.clear()
    assert dc.main(argv) == 0  # everything finished: nothing runs again
    assert calls == []
    assert [r["seed"] for r in dc.load_records(tmp_path) if r["case"] == "dense"] == [1, 2]


def test_bad_option_is_refused(dc, tmp_path, capsys):
    with pytest.raises(SystemExit):
        dc.main(["--out", str(tmp_path), "--batches", "0"])
    assert "--batches = 0" in capsys.readouterr().err


def test_measured_child_reports_its_own_peak_memory(dc, tmp_path):
    code = "import numpy as np; a = np.ones(40_000_000); print(a.sum())"  # 320 MB in this child
    m = dc.run_measured([sys.executable, "-c", code], tmp_path / "child.log")
    assert m["maxrss_bytes"] > 320e6
    assert m["cpu_s"] > 0 and m["wall_s"] >= m["cpu_s"] * 0.5
    small = dc.run_measured([sys.executable, "-c", "pass"], tmp_path / "small.log")
    assert small["maxrss_bytes"] < 200e6  # not the maximum over all children so far
    with pytest.raises(RuntimeError, match="exit code 3"):
        dc.run_measured([sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "fail.log")


def test_timing_mode_interleaves_cases_and_keeps_the_best(dc, tmp_path, monkeypatch):
    order = []
    cpu = iter(range(100, 0, -1))  # later runs are faster: the best is the last repeat of each case

    def fake(cmd, log):
        cfg = tomllib.loads(pathlib.Path(cmd[4]).read_text())
        order.append((log.parent.name, cfg["training"]["iterations"], cfg["network"]["seed"]))
        return {"wall_s": 1.0, "cpu_s": float(next(cpu)), "maxrss_bytes": 1}

    monkeypatch.setattr(dc, "run_measured", fake)
    monkeypatch.setattr(dc, "simulate_seconds", lambda path: [3.0, 1.0, 2.0, 9.0, 0.5])  # median 2.0
    result = dc.timing_runs(tmp_path, _base(), 4, 2, 2, dc.DeepR())
    names = [c.name for c in dc.CASES]
    assert [o[0] for o in order] == [f"{n}_r0" for n in names] + [f"{n}_r1" for n in names]
    assert {o[1:] for o in order} == {(4, 1)}
    for i, n in enumerate(names):
        reps = result["cases"][n]["repeats"]
        assert [r["cpu_s_per_iteration"] for r in reps] == [(100 - i) / 4, (95 - i) / 4]
        assert result["cases"][n]["best_s_per_iteration"] == (95 - i) / 4
        assert result["cases"][n]["best_simulate_s"] == 2.0
    assert json.loads((tmp_path / "timing.json").read_text()) == result

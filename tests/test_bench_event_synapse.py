"""The event-driven e-prop benchmark (scaling_runs/bench_event_synapse.py) runs end to end on a tiny network: every
variant is timed, the table and the JSON agree, repeats keep the fastest run, and bad options fail early."""

from __future__ import annotations

import importlib.util
import json
import math
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
BENCH = REPO / "scaling_runs" / "bench_event_synapse.py"


def _run(*options: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCH), *options], capture_output=True, text=True, cwd=REPO)


def test_tiny_benchmark_with_repeats(tmp_path):
    out = tmp_path / "bench.json"
    proc = _run(
        "--dense",
        "20",
        "--scan",
        "20@20",
        "--sparse",
        "",
        "--iterations",
        "1",
        "--repeats",
        "2",
        "--eta",
        "0",
        "--json",
        str(out),
        "--plot",
        str(tmp_path / "scan.png"),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "best of 2 runs, variants interleaved" in proc.stdout
    assert (tmp_path / "scan.png").stat().st_size > 10_000  # the scan case, drawn
    rows = json.loads(out.read_text())
    assert [r["config"]["label"] for r in rows] == ["dense 20", "dense 20 in20Hz nocut"]
    for row in rows:
        res = row["results"]
        assert set(res) == {"static", "event", "step"}
        for variant in res.values():
            assert variant["synapses"] == res["event"]["synapses"] > 0
            assert math.isfinite(variant["time_per_iteration_s"])
        # the plain case reports a time per iteration; the scan case a difference of two runs (may be noisy but finite)
        assert row["config"]["label"] in proc.stdout
    for row in rows:
        # eta = 0: the weights stay, so every variant fires as the static twin
        rates = {name: variant["rate_hz"] for name, variant in row["results"].items()}
        assert rates["event"] == rates["step"] == rates["static"], rates
    for variant in rows[0]["results"].values():
        assert len(variant["runs_s"]) == 2
        assert variant["time_per_iteration_s"] == min(variant["runs_s"]) > 0.0


def test_repeats_below_one_is_refused():
    proc = _run("--dense", "20", "--scan", "", "--sparse", "", "--repeats", "0")
    assert proc.returncode != 0
    assert "--repeats must be at least 1 (got 0)" in proc.stderr


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_event_synapse", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(config: dict, static: float, event: float, step: float | None, torch: float | None) -> dict:
    results = {"static": {"time_per_iteration_s": static}, "event": {"time_per_iteration_s": event}}
    if step is not None:
        results["step"] = {"time_per_iteration_s": step}
    return {"config": config, "results": results, "torch_s": torch}


def test_target_report_reads_the_targets_from_the_rows():
    report = _bench_module().target_report
    scan = {"n_rec": 2000, "close": True}
    rows = [
        _row({"n_rec": 100, "label": "dense 100"}, 0.01, 0.05, 0.2, 0.2),  # not a target case: not reported
        _row({"n_rec": 1000, "label": "dense 1000"}, 0.4, 1.0, 9.0, 1.25),
        _row(scan | {"input_rate": 2.0}, 0.1, 0.4, 28.0, 4.0),
        _row(scan | {"input_rate": 50.0}, 1.4, 2.5, 100.0, 4.5),
        _row(scan | {"input_rate": 10.0}, 0.2, 1.25, 50.0, 5.0),
    ]
    assert report(rows) == [
        "dense 1000: event/static 2.50 (at most 3: met)",
        "dense 1000: PyTorch/event 1.25 (above 1: met)",
        "scan 2000 neurons, inputs 50 / 10 / 2 Hz: step/event 40.0 -> 40.0 -> 70.0 (higher at the lowest rate than at "
        "the highest)",
        "scan 2000 neurons, inputs 50 / 10 / 2 Hz: PyTorch/event 1.8 -> 4.0 -> 10.0 (higher at the lowest rate than at "
        "the highest)",
    ]
    # missed targets say so; a scan without PyTorch or NEST's rule reports what it has
    rows = [
        _row({"n_rec": 1000, "label": "dense 1000"}, 0.3, 1.2, 9.0, 1.0),
        _row(scan | {"input_rate": 50.0}, 1.4, 2.0, 80.0, None),
        _row(scan | {"input_rate": 2.0}, 0.1, 1.0, 30.0, None),
    ]
    assert report(rows) == [
        "dense 1000: event/static 4.00 (at most 3: NOT met)",
        "dense 1000: PyTorch/event 0.83 (above 1: NOT met)",
        "scan 2000 neurons, inputs 50 / 2 Hz: step/event 40.0 -> 30.0 (NOT growing as the rate falls)",
    ]


def test_replot_draws_saved_scans_and_prints_their_targets(tmp_path):
    scan = {"close": True}
    rows = [
        _row(scan | {"n_rec": 1000, "input_rate": 50.0}, 0.4, 0.8, 29.0, 1.1),
        _row(scan | {"n_rec": 1000, "input_rate": 2.0}, 0.04, 0.17, 5.9, 1.1),
        _row(scan | {"n_rec": 2000, "input_rate": 50.0}, 1.2, 2.0, 99.0, None),
        _row(scan | {"n_rec": 2000, "input_rate": 2.0}, 0.07, 0.33, 25.0, None),
    ]
    saved = tmp_path / "scan.json"
    saved.write_text(json.dumps(rows))
    figure = tmp_path / "scan.png"
    proc = _run("--replot", str(saved), "--plot", str(figure))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "scan 2000 neurons, inputs 50 / 2 Hz: step/event 49.5 -> 75.8" in proc.stdout
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 10_000
    proc = _run("--replot", str(saved))
    assert proc.returncode != 0 and "--replot needs --plot FILE" in proc.stderr

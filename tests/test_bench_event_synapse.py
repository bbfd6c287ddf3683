"""The event-driven e-prop benchmark (scaling_runs/bench_event_synapse.py) runs end to end on a tiny network: every
variant is timed, the table and the JSON agree, repeats keep the fastest run, and bad options fail early."""

from __future__ import annotations

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
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "best of 2 runs, variants interleaved" in proc.stdout
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

"""scaling_runs/ab_same_time.py: two builds run the same benchmark at the same time, each pinned to its own core,
and the ratios after / before of every number of their RESULT lines are reported per pair and as medians.

The "builds" here are two directories with a module ``fake_build`` that says which one it is; the benchmark prints
its RESULT with that number, the core it ran on and a nested dictionary."""

from __future__ import annotations

import json
import os
import pathlib
import re
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scaling_runs"))

import ab_same_time  # noqa: E402

BENCH = """
import json, os, sys
import fake_build
cores = sorted(os.sched_getaffinity(0))
print("noise before the result")
print("RESULT " + json.dumps({"work_s": fake_build.WORK, "phase_s": {"a": 2 * fake_build.WORK}, "core": cores[0],
                              "label": "text is ignored", "flag": True, "zero": 0.0, "args": sys.argv[1:]}))
"""

needs_two_cores = pytest.mark.skipif(
    len(os.sched_getaffinity(0)) < 2, reason="the tool pins the two builds to two cores; this process has one"
)


def _builds(tmp_path: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path, pathlib.Path]:
    trees = []
    for name, work in (("before", 4.0), ("after", 3.0)):
        tree = tmp_path / name
        tree.mkdir()
        (tree / "fake_build.py").write_text(f"WORK = {work}\n")
        trees.append(tree)
    bench = tmp_path / "bench.py"
    bench.write_text(BENCH)
    return trees[0], trees[1], bench


@needs_two_cores
def test_pairs_run_pinned_and_ratios_are_after_over_before(tmp_path: pathlib.Path) -> None:
    before, after, bench = _builds(tmp_path)
    out_json = tmp_path / "ab.json"
    out = ab_same_time.main(
        ["--before", str(before), "--after", str(after), "--pairs", "2", "--json", str(out_json), "--",
         str(bench), "--case", "x"]
    )  # fmt: skip
    assert len(out["runs"]) == 2
    cores = sorted(os.sched_getaffinity(0))[:2]
    # each build imported its own module; the cores swap between the pairs; the benchmark's arguments passed through
    for k, pair in enumerate(out["runs"]):
        assert pair["before"]["work_s"] == 4.0 and pair["after"]["work_s"] == 3.0
        assert pair["before"]["args"] == ["--case", "x"]
        expected = (cores[0], cores[1]) if k % 2 == 0 else (cores[1], cores[0])
        assert (pair["before"]["core"], pair["after"]["core"]) == expected
    for ratio in out["ratios"]:
        assert ratio["work_s"] == pytest.approx(0.75, rel=1e-15)
        assert ratio["phase_s.a"] == pytest.approx(0.75, rel=1e-15)
        assert "label" not in ratio and "flag" not in ratio and "zero" not in ratio  # no ratio of text or of 0
    assert out["median_ratio"]["work_s"] == pytest.approx(0.75, rel=1e-15)
    assert json.loads(out_json.read_text())["median_ratio"] == out["median_ratio"]


@needs_two_cores
def test_a_failing_build_is_reported_with_its_error(tmp_path: pathlib.Path) -> None:
    before, after, bench = _builds(tmp_path)
    (after / "fake_build.py").write_text("raise ImportError('module of the second build is broken')\n")
    with pytest.raises(RuntimeError, match="(?s)after .* failed .*module of the second build is broken"):
        ab_same_time.main(["--before", str(before), "--after", str(after), "--pairs", "1", "--", str(bench)])


@needs_two_cores
def test_a_benchmark_without_one_result_line_is_refused(tmp_path: pathlib.Path) -> None:
    before, after, _ = _builds(tmp_path)
    bench = tmp_path / "silent.py"
    bench.write_text("print('no result here')\n")
    with pytest.raises(RuntimeError, match="expected one 'RESULT \\{json\\}' line, got 0"):
        ab_same_time.main(["--before", str(before), "--after", str(after), "--pairs", "1", "--", str(bench)])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--before", "{b}", "--after", "{a}"], "no benchmark given"),
        (["--before", "{b}", "--after", "{a}", "--pairs", "0", "--", "x.py"], "--pairs must be >= 1, got 0"),
        (["--before", "{b}/missing", "--after", "{a}", "--", "x.py"], "--before .*missing.* is not a directory"),
    ],
)
def test_bad_arguments_are_refused_by_name(
    argv: list[str], message: str, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before, after, _ = _builds(tmp_path)
    argv = [a.format(b=before, a=after) for a in argv]
    with pytest.raises(SystemExit):
        ab_same_time.main(argv)
    assert re.search(message, capsys.readouterr().err)

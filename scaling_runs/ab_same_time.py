"""Compare two builds of nestgrad on a noisy shared machine: run the same benchmark with each, at the same time.

Run one after the other, the same module's time on this 2-core machine varied by up to 1.7x from run to run (the
neighbours' load on the shared caches and memory changes by the minute), more than most changes that are worth
measuring. Run at the same time, one per core, both builds see the same outside load, and the ratio of their times
varies less, though not little: for a change of about 10 % the ratios of six pairs spanned 0.6-1.1
(docs/v1_model.md, 2026-12-08). Take several pairs and their median. Each pair swaps the cores.

    python scaling_runs/ab_same_time.py --before /tmp/ab/before/python --after python --pairs 4 \\
        --json scaling_runs/results/x.json -- scaling_runs/bench_v1.py --case 5000,1,eventprop --bio-ms 200

``--before``/``--after`` are the directories put first on PYTHONPATH (a copy of ``python/`` with its built module
in ``nestgrad/lib``). The benchmark must print one line ``RESULT {json}``; the ratios after / before of its numbers
(and of those in its nested dictionaries, e.g. ``phase_s``) are printed per pair and as the median over the pairs.
Needs two cores (``os.sched_getaffinity``).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys


def numbers(result: dict, prefix: str = "") -> dict[str, float]:
    """The result's numbers, nested dictionaries flattened to ``outer.inner``."""
    out: dict[str, float] = {}
    for key, value in result.items():
        if isinstance(value, dict):
            out |= numbers(value, f"{prefix}{key}.")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[f"{prefix}{key}"] = float(value)
    return out


def parse_result(stdout: str, label: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    if len(lines) != 1:
        raise RuntimeError(f"{label}: expected one 'RESULT {{json}}' line, got {len(lines)}; output:\n{stdout[-2000:]}")
    return json.loads(lines[0][len("RESULT ") :])


def run_pair(trees: dict[str, str], cores: dict[str, int], command: list[str]) -> dict[str, dict]:
    """Both builds at the same time, each pinned to its core; their RESULT dictionaries."""
    procs = {}
    for name, tree in trees.items():
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([tree, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
        cmd = ["taskset", "-c", str(cores[name]), sys.executable, *command]
        procs[name] = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outs = {name: p.communicate() for name, p in procs.items()}
    for name, p in procs.items():
        if p.returncode != 0:
            raise RuntimeError(f"{name} ({trees[name]}) failed with exit code {p.returncode}:\n{outs[name][1][-3000:]}")
    return {name: parse_result(outs[name][0], name) for name in trees}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="PYTHONPATH directory of the first build")
    parser.add_argument("--after", required=True, help="PYTHONPATH directory of the second build")
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--json", type=pathlib.Path, help="write the runs and ratios here")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the benchmark script and its arguments")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no benchmark given: append -- script.py [its arguments]")
    if args.pairs < 1:
        parser.error(f"--pairs must be >= 1, got {args.pairs}")
    for name in ("before", "after"):
        if not pathlib.Path(getattr(args, name)).is_dir():
            parser.error(f"--{name} {getattr(args, name)!r} is not a directory")
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        parser.error(f"needs two cores to run both builds at the same time; this process may use {cores}")
    trees = {"before": args.before, "after": args.after}
    runs, ratios = [], []
    for k in range(args.pairs):
        order = (cores[0], cores[1]) if k % 2 == 0 else (cores[1], cores[0])
        pair = run_pair(trees, dict(zip(trees, order, strict=True)), command)
        nb, na = numbers(pair["before"]), numbers(pair["after"])
        ratio = {key: na[key] / nb[key] for key in nb if key in na and nb[key] != 0.0}
        runs.append(pair)
        ratios.append(ratio)
        shown = {key: round(value, 3) for key, value in ratio.items() if key.endswith("_s") or "phase_s." in key}
        print(f"pair {k + 1}/{args.pairs} (cores before/after {order}): after / before {shown}", flush=True)
    median = {key: statistics.median(r[key] for r in ratios) for key in ratios[0] if all(key in r for r in ratios)}
    print("median after / before:", {key: round(v, 3) for key, v in median.items()})
    out = {"command": command, "before": args.before, "after": args.after, "runs": runs, "ratios": ratios,
           "median_ratio": median}  # fmt: skip
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()

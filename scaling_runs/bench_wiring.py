"""Build time and peak memory of networks built through the one wiring function (nestgrad.nest_engine.wiring) against
a baseline checkout of nestgrad (e.g. the commit before the spec, whose builders called nest.Connect themselves),
side by side in one run: every case runs in a fresh process, the two trees alternate, and the fastest run of each
is kept.

    git worktree add /tmp/nestgrad-baseline 7206856      # the builders before the spec
    ln -s $PWD/python/nestgrad/lib /tmp/nestgrad-baseline/python/nestgrad/lib
    python scaling_runs/bench_wiring.py --baseline /tmp/nestgrad-baseline --v1 5000,51978 --classic 1000
    python scaling_runs/bench_wiring.py --baseline /tmp/mc-baseline --v1 '' --classic '' --microcircuit 0.1,1 \
        --threads 4

The static Potjans-Diesmann microcircuit (``--microcircuit``: n_scaling = k_scaling per case, resolution 0.1 ms,
Poisson background) is built with ``Microcircuit(config).build(nest)`` in both trees: the baseline's drew it with
NEST's ``fixed_total_number`` rule and ``nest.random`` weights and delays; the spec's draws it with NumPy, chunk by
chunk, and connects it through the wiring function. The full circuit (~3e8 synapses) needs at least 3 threads (NEST
allows 2^27 connections per thread and synapse model) and about 14 GB (measured peak, both trees).

Measured per case: seconds of ``net.build`` (NEST nodes and connections, after the NumPy layout, which both trees
share) and the peak resident memory during the build (the process's high-water mark reset right before the build,
/proc/self/clear_refs), with the number of connections NEST made (which must be equal).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys

from process_memory import reset_peak, status_kb

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent


def run_case(case: dict) -> dict:
    """One build in this process (the tree on sys.path decides which builder)."""
    import time

    import nest

    from nestgrad.config import OptimizerConfig

    nest.set_verbosity("M_ERROR")
    optimizer = OptimizerConfig(type="adam", eta=0.01, Wmin=-1e4, Wmax=1e4, sign_constrained=case["kind"] == "v1")
    resolution = 1.0
    if case["kind"] == "microcircuit":
        from nestgrad.config import MicrocircuitConfig
        from nestgrad.networks.potjans_diesmann import Microcircuit

        mc = Microcircuit(MicrocircuitConfig(n_scaling=case["n"], k_scaling=case["n"]))
        resolution = 0.1
    elif case["kind"] == "v1":
        try:  # the configuration moved in the spec commit
            from nestgrad.config import V1Config
        except ImportError:
            from nestgrad.networks.v1 import V1Config
        from nestgrad.networks.v1 import V1Network

        net = V1Network(V1Config(n_neurons=case["n"]), optimizer, n_out=2, resolution=1.0)
        weights = net.initial_weights(1)
    else:
        from nestgrad.config import NetworkConfig
        from nestgrad.networks.eprop_classic import EpropNetwork, initial_weights

        net = EpropNetwork(NetworkConfig(n_rec=case["n"]), optimizer, 100, 1, 1.0)
        weights = initial_weights(100, case["n"], 1, 1)
    import nestgrad

    nest.ResetKernel()
    nestgrad.install()
    nest.set(resolution=resolution, local_num_threads=case["threads"], print_time=False, rng_seed=55)
    reset_peak()
    rss0 = status_kb("VmRSS")
    t0 = time.perf_counter()
    if case["kind"] == "microcircuit":
        mc.build(nest)
    else:
        net.build(nest, weights, record_neurons=0)
    seconds = time.perf_counter() - t0
    return {
        "build_s": seconds,
        "build_peak_mb": (status_kb("VmHWM") - rss0) / 1024.0,
        "peak_mb": status_kb("VmHWM") / 1024.0,
        "connections": int(nest.num_connections),
    }


def _run(tree: pathlib.Path, case: dict) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree / "python"))
    proc = subprocess.run(
        [sys.executable, str(HERE / "bench_wiring.py"), "--case", json.dumps(case)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"case {case} with {tree} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", required=False, help="a checkout of nestgrad to compare with")
    parser.add_argument("--v1", default="5000", help="V1 column sizes (comma-separated; '' for none)")
    parser.add_argument("--classic", default="1000", help="classic network sizes (comma-separated; '' for none)")
    parser.add_argument(
        "--microcircuit", default="", help="microcircuit scales (n_scaling = k_scaling; comma-separated; '' for none)"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", help="write the rows to this file")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(json.loads(args.case))))
        return
    if not args.baseline:
        parser.error("--baseline CHECKOUT is required (see the docstring)")
    if args.repeats < 1:
        parser.error(f"--repeats {args.repeats}: at least 1")
    trees = {"baseline": pathlib.Path(args.baseline).resolve(), "spec": REPO}
    cases = [{"kind": "v1", "n": int(n), "threads": args.threads} for n in args.v1.split(",") if n]
    cases += [{"kind": "classic", "n": int(n), "threads": args.threads} for n in args.classic.split(",") if n]
    scales = [float(x) for x in args.microcircuit.split(",") if x]
    cases += [{"kind": "microcircuit", "n": x, "threads": args.threads} for x in scales]
    rows = []
    print(f"{'network':>16s} {'tree':>9s} {'build s':>9s} {'peak MB':>9s} {'build MB':>9s} {'connections':>12s}")
    for case in cases:
        runs: dict[str, list[dict]] = {name: [] for name in trees}
        for _ in range(args.repeats):
            for name, tree in trees.items():  # alternate, so that slow phases of a shared machine hit both
                runs[name].append(_run(tree, case))
        best = {name: min(r, key=lambda x: x["build_s"]) for name, r in runs.items()}
        for name, r in best.items():
            if args.json:  # each finished case at once: a later case may run out of memory
                pathlib.Path(args.json).write_text(json.dumps(rows + [{"case": case, "best": best}], indent=2))
            print(f"{case['kind'] + ' ' + str(case['n']):>16s} {name:>9s} {r['build_s']:9.2f} {r['peak_mb']:9.0f} "
                  f"{r['build_peak_mb']:9.0f} {r['connections']:12d}")  # fmt: skip
        if best["spec"]["connections"] != best["baseline"]["connections"]:
            counts = (best["spec"]["connections"], best["baseline"]["connections"])
            print(f"  different numbers of connections: {counts[0]} (spec) vs {counts[1]} (baseline)")
        ratio_t = best["spec"]["build_s"] / best["baseline"]["build_s"]
        ratio_m = best["spec"]["peak_mb"] / best["baseline"]["peak_mb"]
        print(f"  spec/baseline: build time {ratio_t:.2f}x, peak memory {ratio_m:.2f}x (target <= 1.1x)")
        rows.append({"case": case, "runs": runs, "best": best, "time_ratio": ratio_t, "peak_ratio": ratio_m})
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()

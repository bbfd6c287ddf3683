"""Reading the values of many NEST connections: PyNEST's ``SynapseCollection.get`` against
:func:`nestgrad.nest_engine.connections.read` (slices of ``CHUNK`` connections turned into NumPy arrays one by one),
side by side in one run. Every case runs in a fresh process, the modes alternate, and the fastest of the repeats is
kept; the peak is the growth of the process's resident high-water mark over the read (reset right before it,
/proc/self/clear_refs).

    python scaling_runs/bench_connection_reads.py --sizes 100000,1000000,3000000 --repeats 2

Modes, all reading ``source``, ``target``, ``weight`` and ``delay`` of every connection into NumPy arrays:

* ``pynest``: one ``conns.get(keys)`` (PyNEST builds every connection's full status dictionary first);
* ``per_key``: one ``conns.get(key)`` per key (what the EventProp read back did before);
* ``chunked``: ``connections.read(conns, keys)``.

The network: ``iaf_psc_alpha`` neurons with ``fixed_indegree`` 500 (static synapses: the read does not depend on the
synapse model's parameters beyond the size of its status dictionary).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

from process_memory import reset_peak, status_kb

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
KEYS = ["source", "target", "weight", "delay"]
MODES = ("pynest", "per_key", "chunked")
IN_DEGREE = 500


def run_case(n_connections: int, mode: str) -> dict:
    """One read of ``n_connections`` connections in this process."""
    import nest
    import numpy as np

    from nestgrad.nest_engine import connections

    nest.set_verbosity("M_ERROR")
    nodes = nest.Create("iaf_psc_alpha", max(n_connections // IN_DEGREE, 1))
    nest.Connect(nodes, nodes, {"rule": "fixed_indegree", "indegree": IN_DEGREE}, {"weight": nest.random.normal(0, 1)})
    conns = nest.GetConnections()
    reset_peak()
    rss0 = status_kb("VmRSS")
    t0 = time.perf_counter()
    if mode == "pynest":
        values = {k: np.asarray(v) for k, v in conns.get(KEYS).items()}
    elif mode == "per_key":
        values = {k: np.asarray(conns.get(k)) for k in KEYS}
    else:
        values = connections.read(conns, KEYS)
    seconds = time.perf_counter() - t0
    peak = status_kb("VmHWM") - rss0
    n = len(conns)
    assert all(v.shape == (n,) for v in values.values())
    checksum = float(values["weight"].sum())
    return {"mode": mode, "connections": n, "read_s": seconds, "us_per_connection": seconds / n * 1e6,
            "peak_growth_mb": peak / 1024, "bytes_per_connection": peak * 1024 / n, "weight_sum": checksum}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000", help="connections per case, comma-separated")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default="out/bench_connection_reads")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # n,mode: run one case and print JSON
    args = parser.parse_args()
    if args.case:
        n, mode = args.case.split(",")
        print(json.dumps(run_case(int(n), mode)))
        return
    env = {**os.environ, "PYTHONPATH": str(REPO / "python")}
    modes = args.modes.split(",")
    results = []
    for n in (int(s) for s in args.sizes.split(",") if s):
        runs: dict[str, list[dict]] = {mode: [] for mode in modes}
        for r in range(args.repeats):
            for mode in modes:
                cmd = [sys.executable, __file__, "--case", f"{n},{mode}"]
                proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
                if proc.returncode != 0:
                    res = {"mode": mode, "connections": n, "error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
                else:
                    res = json.loads(proc.stdout.strip().splitlines()[-1])
                print(f"{n:>10,} {mode:8s} repeat {r}: {res}", flush=True)
                runs[mode].append(res)
        ok = {mode: [x for x in got if "error" not in x] for mode, got in runs.items()}
        best = {mode: min(ok[mode], key=lambda x: x["read_s"]) if ok[mode] else runs[mode][-1] for mode in modes}
        sums = {round(b["weight_sum"], 6) for b in best.values() if "weight_sum" in b}
        if len(sums) > 1:
            raise SystemExit(f"the modes read different weights at {n} connections: {sums}")
        results += list(best.values())
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_connection_reads.json").write_text(json.dumps({"command": sys.argv, "results": results}, indent=1))
    print(f"{'connections':>12} {'mode':8} {'read (s)':>9} {'us/conn':>8} {'peak MB':>8} {'B/conn':>7}")
    for res in results:
        if "error" in res:
            print(f"{res['connections']:>12,} {res['mode']:8} failed: {res['error']}")
            continue
        print(f"{res['connections']:>12,} {res['mode']:8} {res['read_s']:9.2f} {res['us_per_connection']:8.2f} "
              f"{res['peak_growth_mb']:8.0f} {res['bytes_per_connection']:7.0f}")  # fmt: skip


if __name__ == "__main__":
    main()

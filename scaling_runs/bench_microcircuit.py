"""Microcircuit benchmarks, measured side by side in one run:

1. plasticity overhead: the e-prop microcircuit (plastic thalamic input and readouts, thalamic task driving it)
   vs its static twin (same network and input, static synapses) -- time per biological second;
2. real-time factor (wall-clock seconds per biological second) of the published static model at --scale;
3. weak-scaling efficiency from 1 to 2 MPI ranks (scale 0.5 x --scale per rank; needs `make mpi`);
4. with --full: the full-scale model (77,169 neurons, ~3e8 synapses) on 4 virtual processes (NEST allows at most
   2^27 connections per thread and synapse model, so fewer do not fit); prints its build time, real-time factor and
   peak memory.

    python scaling_runs/bench_microcircuit.py [--scale 0.1] [--t-sim 1000] [--full]
"""

from __future__ import annotations

import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from run_scaling import MPI_PYTHON, run_job  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=0.1)
    ap.add_argument("--t-sim", type=float, default=1000.0)
    ap.add_argument("--full", action="store_true")
    args = ap.parse_args()
    s, t = args.scale, args.t_sim

    eprop = run_job(s, 1, 1, t, extra=("--eprop",))
    twin = run_job(s, 1, 1, t, extra=("--eprop", "--static-twin"))
    static = run_job(s, 1, 1, t)
    print(f"scale {s} ({static['neurons']} neurons, {static['synapses']:.3g} synapses), 1 core, {t:.0f} ms:")
    print(f"  e-prop microcircuit      {eprop['s_per_bio_s']:8.2f} s per biological s")
    print(f"  static twin              {twin['s_per_bio_s']:8.2f} s per biological s")
    print(f"  plasticity overhead (e-prop / static twin) = {eprop['s_per_bio_s'] / twin['s_per_bio_s']:.2f}")
    print(
        f"  published static model: real-time factor {static['real_time_factor']:.2f}, "
        f"build {static['build_s']:.1f} s, {max(static['max_rss_mb_per_rank']):.0f} MB"
    )
    if MPI_PYTHON.exists():
        one = run_job(s * 0.5, 1, 1, t, s * 0.5)
        two = run_job(s, 2, 1, t, s)
        print(
            f"  weak scaling 1 -> 2 ranks (scale {s * 0.5} per rank): {one['s_per_bio_s']:.2f} -> "
            f"{two['s_per_bio_s']:.2f} s per biological s, efficiency {one['s_per_bio_s'] / two['s_per_bio_s']:.2f}"
        )
    else:
        print("  weak scaling: skipped, run `make mpi` for NEST with MPI")
    if args.full:
        full = run_job(1.0, 1, 4, min(t, 100.0))
        print(
            f"  full scale, 4 threads on 2 cores: build {full['build_s']:.0f} s, real-time factor "
            f"{full['real_time_factor']:.1f}, peak memory {max(full['max_rss_mb_per_rank']) / 1024:.1f} GB"
        )


if __name__ == "__main__":
    main()

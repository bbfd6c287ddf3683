"""Time per training iteration of nestgrad's NESTML e-prop neurons vs their C++ twins built into NEST.

Sine-wave task, the classic e-prop network (nestgrad.networks.eprop_classic), same sizes, weights, task and
optimizer for every model; the cases are measured alternately in one run so that load changes on a shared machine
hit all of them alike. The NESTML after-spike-current model has no NEST twin: it is timed against NEST's
eprop_iaf_psc_delta_adapt, whose eligibility vector has the same two components.

    python scaling_runs/bench_nestml_eprop.py [--n-rec 100,400] [--iterations 3] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics

from bench_iteration_time import time_iterations

PAIRS = {  # NESTML model: NEST's built-in model timed beside it
    "eprop_iaf_psc_delta_nestml": "eprop_iaf_psc_delta",
    "eprop_iaf_psc_delta_adapt_nestml": "eprop_iaf_psc_delta_adapt",
    "eprop_iaf_psc_delta_asc_nestml": "eprop_iaf_psc_delta_adapt",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-rec", default="100,400", help="comma-separated recurrent layer sizes")
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    sizes = [int(n) for n in args.n_rec.split(",") if n]
    models = sorted(set(PAIRS) | set(PAIRS.values()))

    rows = []
    for n_rec in sizes:
        samples: dict[str, list[float]] = {m: [] for m in models}
        for rep in range(args.repeats):
            for m in models:  # alternate the models within each repeat
                samples[m].append(time_iterations(m, n_rec, args.iterations, args.threads, static=False))
            print(f"n_rec {n_rec}: repeat {rep + 1}/{args.repeats} done", flush=True)
        med = {m: statistics.median(v) for m, v in samples.items()}
        for nestml, builtin in PAIRS.items():
            rows.append((n_rec, nestml, builtin, med[nestml], med[builtin]))

    print(
        f"\nsine task, dense recurrent layer, 1000 steps per iteration, {args.threads} thread(s); "
        f"median of {args.repeats} repeats x {args.iterations} iterations (seconds per iteration)"
    )
    print(f"{'n_rec':>6}  {'NESTML model':34s} {'s/iter':>8}  {'NEST built-in':28s} {'s/iter':>8}  ratio")
    for n_rec, nestml, builtin, t_nestml, t_builtin in rows:
        print(
            f"{n_rec:6d}  {nestml:34s} {t_nestml:8.3f}  {builtin:28s} {t_builtin:8.3f}  "
            f"{t_nestml / t_builtin:5.2f}  (target <= 1.2)"
        )


if __name__ == "__main__":
    main()

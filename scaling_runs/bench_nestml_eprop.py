"""Time per training iteration of nestgrad's NESTML e-prop neurons vs their C++ twins.

Sine-wave task, the classic e-prop network (nestgrad.networks.eprop_classic), same sizes, weights, task and
optimizer for every model; each NESTML model is timed right beside its C++ model, and the ratio of each such pair
is kept, so that load changes on a shared machine hit both halves of a ratio alike. Twins: NEST's
eprop_iaf_psc_delta(_adapt), nestgrad's C++ eprop_iaf_psc_exp. Models without
a twin are timed against the nearest C++ model: the after-spike-current model against eprop_iaf_psc_delta_adapt
(two eligibility states too), the adaptive psc_exp model (three states, eprop_vector_synapse) against NEST's
eprop_iaf_adapt.

    python scaling_runs/bench_nestml_eprop.py [--n-rec 100,400] [--iterations 3] [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics

from bench_iteration_time import time_iterations

PAIRS = {  # NESTML model: the C++ model timed beside it (its twin, else the nearest model)
    "eprop_iaf_psc_delta_nestml": "eprop_iaf_psc_delta",
    "eprop_iaf_psc_delta_adapt_nestml": "eprop_iaf_psc_delta_adapt",
    "eprop_iaf_psc_delta_asc_nestml": "eprop_iaf_psc_delta_adapt",
    "eprop_iaf_psc_exp_nestml": "eprop_iaf_psc_exp",
    "eprop_iaf_psc_exp_exc_inh_nestml": "eprop_iaf_psc_exp",
    "eprop_iaf_psc_exp_adapt_nestml": "eprop_iaf_adapt",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-rec", default="100,400", help="comma-separated recurrent layer sizes")
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    sizes = [int(n) for n in args.n_rec.split(",") if n]

    rows = []
    for n_rec in sizes:
        times: dict[str, list[float]] = {m: [] for m in set(PAIRS) | set(PAIRS.values())}
        ratios: dict[str, list[float]] = {m: [] for m in PAIRS}
        for rep in range(args.repeats):
            # each NESTML model right beside its C++ model: a load change hits both halves of a ratio alike
            for nestml, cpp in PAIRS.items():
                t_nestml = time_iterations(nestml, n_rec, args.iterations, args.threads, static=False)
                t_cpp = time_iterations(cpp, n_rec, args.iterations, args.threads, static=False)
                times[nestml].append(t_nestml)
                times[cpp].append(t_cpp)
                ratios[nestml].append(t_nestml / t_cpp)
            print(f"n_rec {n_rec}: repeat {rep + 1}/{args.repeats} done", flush=True)
        for nestml, cpp in PAIRS.items():
            rows.append(
                (n_rec, nestml, cpp, statistics.median(times[nestml]), statistics.median(times[cpp]), ratios[nestml])
            )

    print(
        f"\nsine task, dense recurrent layer, 1000 steps per iteration, {args.threads} thread(s); "
        f"{args.repeats} repeats x {args.iterations} iterations; seconds per iteration (medians) and the median of "
        "the ratios of back-to-back pairs (min-max)"
    )
    print(f"{'n_rec':>6}  {'NESTML model':34s} {'s/iter':>8}  {'C++ model':28s} {'s/iter':>8}  ratio")
    for n_rec, nestml, cpp, t_nestml, t_cpp, r in rows:
        print(
            f"{n_rec:6d}  {nestml:34s} {t_nestml:8.3f}  {cpp:28s} {t_cpp:8.3f}  "
            f"{statistics.median(r):5.2f} ({min(r):.2f}-{max(r):.2f})  (target <= 1.2)"
        )


if __name__ == "__main__":
    main()

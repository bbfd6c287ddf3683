"""Time per training iteration of the sine-wave task: NEST's built-in eprop_iaf vs nestgrad's eprop_iaf_psc_exp.

Both networks are built the same way (nestgrad.networks.eprop_classic, same sizes, same task, same optimizer)
and measured alternately in one run, so that the ratio is not skewed by load changes on a shared machine.
Also times the static twin (same network, static synapses instead of e-prop) to show the plasticity overhead.

    python scaling_runs/bench_iteration_time.py [--n-rec 100] [--iterations 5] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics

from iteration_timing import time_iterations as time_block

from nestgrad.config import NetworkConfig, OptimizerConfig, TaskConfig
from nestgrad.nest_engine import fresh_kernel
from nestgrad.networks.eprop_classic import EpropNetwork, initial_weights
from nestgrad.tasks import make_task


def time_iterations(
    model: str, n_rec: int, iterations: int, threads: int, static: bool, algorithm: str = "step"
) -> float:
    """Median wall-clock seconds of one iteration (after one warm-up iteration)."""
    nest = fresh_kernel(1.0, threads)
    task = make_task(TaskConfig(name="sine"), seed=1)
    net = EpropNetwork(
        NetworkConfig(neuron_model=model, n_rec=n_rec, gradient_algorithm=algorithm),
        OptimizerConfig(),
        task.n_in,
        task.n_out,
        1.0,
    )
    net.build(nest, initial_weights(task.n_in, n_rec, task.n_out, 1), record_neurons=0, plastic=not static)
    batches = [task.batch(k) for k in range(iterations + 1)]
    return statistics.median(time_block(nest, net, batches))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-rec", type=int, default=100)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    cases = {
        "eprop_iaf (NEST)": ("eprop_iaf", False, "step"),
        "eprop_iaf_psc_exp (nestgrad)": ("eprop_iaf_psc_exp", False, "step"),
        "eprop_iaf_psc_exp, event-driven": ("eprop_iaf_psc_exp", False, "event"),
        "static twin (iaf_psc_exp)": ("eprop_iaf_psc_exp", True, "step"),
    }
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for rep in range(args.repeats):
        for name, (model, static, algorithm) in cases.items():  # alternate: load changes hit every case alike
            samples[name].append(time_iterations(model, args.n_rec, args.iterations, args.threads, static, algorithm))
        print(f"repeat {rep + 1}/{args.repeats} done", flush=True)

    print(
        f"\nsine task, {args.n_rec} recurrent neurons (dense), 100 inputs, 1000 steps per iteration, "
        f"{args.threads} thread(s); median of {args.repeats} repeats x {args.iterations} iterations"
    )
    med = {name: statistics.median(v) for name, v in samples.items()}
    for name, value in med.items():
        print(f"  {name:34s} {value * 1000:9.1f} ms per iteration")
    ours, static, event_t = (
        med["eprop_iaf_psc_exp (nestgrad)"],
        med["static twin (iaf_psc_exp)"],
        med["eprop_iaf_psc_exp, event-driven"],
    )
    print(f"  ratio eprop_iaf_psc_exp / eprop_iaf            = {ours / med['eprop_iaf (NEST)']:.3f}  (target <= 1.2)")
    print(f"  ratio eprop_iaf_psc_exp / static twin          = {ours / static:.1f}  (plasticity overhead, steps)")
    print(f"  ratio event-driven / static twin               = {event_t / static:.1f}  (plasticity overhead, event)")
    print(f"  speed-up event-driven vs step-by-step          = {ours / event_t:.1f}")


if __name__ == "__main__":
    main()

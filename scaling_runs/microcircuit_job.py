"""One microcircuit run: build, simulate, report timings and memory (JSON on rank 0). Used by run_scaling.py and the
SLURM templates; runs serially, with threads, or under mpirun.

    [mpirun -np R] python scaling_runs/microcircuit_job.py --scale 0.1 --threads 2 --t-sim 1000 [--eprop]
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=0.1, help="neuron scaling (n_scaling)")
    ap.add_argument("--k-scale", type=float, help="in-degree scaling (default: same as --scale)")
    ap.add_argument("--threads", type=int, default=1, help="threads per rank")
    ap.add_argument("--t-sim", type=float, default=1000.0, help="ms of biological time to simulate")
    ap.add_argument("--t-presim", type=float, default=100.0, help="ms simulated before timing")
    ap.add_argument(
        "--eprop",
        action="store_true",
        help="the e-prop variant (plastic thalamic input and readouts), driven by the thalamic task",
    )
    ap.add_argument(
        "--static-twin",
        action="store_true",
        help="with --eprop: the same network and input with "
        "static synapses instead of e-prop synapses (the baseline of the plasticity overhead)",
    )
    ap.add_argument("--seed", type=int, default=55)
    args = ap.parse_args()

    from nestgrad.config import MicrocircuitConfig
    from nestgrad.nest_engine import fresh_kernel
    from nestgrad.networks.potjans_diesmann import Microcircuit
    from nestgrad.parallel import communicator

    nest = fresh_kernel(0.1, args.threads, args.seed)
    comm = communicator(nest)
    k_scale = args.k_scale if args.k_scale is not None else args.scale
    cfg = MicrocircuitConfig(n_scaling=args.scale, k_scaling=k_scale)
    t0 = time.perf_counter()
    if args.eprop:
        from nestgrad.config import EpropMicrocircuitConfig, OptimizerConfig, TaskConfig
        from nestgrad.networks.pd_eprop import EpropMicrocircuit
        from nestgrad.tasks import make_task

        mcfg = EpropMicrocircuitConfig(n_scaling=args.scale, k_scaling=k_scale)
        net = EpropMicrocircuit(mcfg, OptimizerConfig(eta=1e-5), n_out=2, resolution=0.1)
        net.comm = comm
        net.build(nest, net.initial_weights(1), record_neurons=0, plastic=not args.static_twin)
        task = make_task(
            TaskConfig(
                name="thalamic", resolution=0.1, cue_steps=500, delay_steps=200, recall_steps=300, cue_rate=120.0
            ),
            seed=1,
            n_in=mcfg.n_thalamus,
        )
        n_trials = int(np.ceil((args.t_presim + args.t_sim) / (task.trial_steps * 0.1))) + 1
        net.load_segment(nest, [task.batch(k) for k in range(n_trials)])
        mc = net.circuit
    else:
        mc = Microcircuit(cfg)
        mc.build(nest)
    comm.barrier()
    t_build = time.perf_counter() - t0
    nest.Simulate(args.t_presim)
    comm.barrier()
    t1 = time.perf_counter()
    nest.Simulate(args.t_sim)
    comm.barrier()
    t_sim = time.perf_counter() - t1
    rates = mc.rates(args.t_presim, args.t_presim + args.t_sim, comm)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    rss_all = comm.concat(np.array([rss_mb]))
    if comm.is_root:
        print(
            json.dumps(
                {
                    "model": ("microcircuit_static_twin" if args.static_twin else "microcircuit_eprop")
                    if args.eprop
                    else "microcircuit",
                    "scale": args.scale,
                    "k_scale": k_scale,
                    "ranks": comm.size,
                    "threads": args.threads,
                    "virtual_processes": comm.size * args.threads,
                    "neurons": int(mc.n.sum()),
                    "synapses": mc.n_synapses,
                    "t_sim_ms": args.t_sim,
                    "build_s": t_build,
                    "simulate_s": t_sim,
                    "s_per_bio_s": t_sim / (args.t_sim / 1000.0),
                    "real_time_factor": t_sim / (args.t_sim / 1000.0),
                    "max_rss_mb_per_rank": rss_all.tolist(),
                    "rates_hz": np.round(rates, 3).tolist(),
                }
            )
        )


if __name__ == "__main__":
    main()

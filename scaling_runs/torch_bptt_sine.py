"""The sine-wave network of bench_event_synapse.py trained by BPTT in PyTorch, for timing on the same CPU.

Same sizes and dynamics as the NEST network (100 frozen Poisson inputs from nestgrad's sine task, dense recurrent
LIF neurons with exponential synaptic currents, one leaky readout, 1,000 steps of 1 ms, a piecewise-linear surrogate
gradient, mean squared error), written the way a PyTorch user would: a loop over time steps, autograd through it,
one optimizer step per iteration. It measures time per training iteration (forward + backward + update); its
gradients are not compared with NEST's (the reference engine does that, in NumPy).

PyTorch is an optional, benchmark-only dependency (`pip install torch`).

    python scaling_runs/torch_bptt_sine.py --n-rec 1000 --threads 2 --iterations 3
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-rec", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--input-rate", type=float, default=50.0, help="Poisson input rate in Hz (the task's inputs)")
    parser.add_argument(
        "--dtype", choices=["float32", "float64"], default="float32", help="float32: PyTorch's default (faster)"
    )
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line")
    args = parser.parse_args()

    import torch

    from nestgrad.config import TaskConfig
    from nestgrad.networks.eprop_classic import initial_weights
    from nestgrad.tasks import make_task

    torch.set_num_threads(args.threads)
    task = make_task(TaskConfig(name="sine", input_rate=args.input_rate), seed=1)
    batch = task.batch(0)
    n_in, n_out, steps = task.n_in, task.n_out, batch.steps
    w = initial_weights(n_in, args.n_rec, n_out, 1)

    # the NEST model's parameters (nestgrad.networks.eprop_classic defaults for eprop_iaf_psc_exp)
    dt, tau_m, tau_syn, c_m, v_th, tau_out = 1.0, 30.0, 5.0, 5.0, 0.03, 30.0
    p22, p11 = math.exp(-dt / tau_m), math.exp(-dt / tau_syn)
    p21 = tau_syn * tau_m / (c_m * (tau_m - tau_syn)) * (p22 - p11)
    kappa = math.exp(-dt / tau_out)
    height, width = 10.0, 1.0 / 33.3

    class Spike(torch.autograd.Function):
        @staticmethod
        def forward(ctx, v):  # noqa: ANN001, ANN205
            ctx.save_for_backward(v)
            return (v >= v_th).to(v.dtype)

        @staticmethod
        def backward(ctx, grad):  # noqa: ANN001, ANN205
            (v,) = ctx.saved_tensors
            return grad * height * torch.clamp(1.0 - torch.abs(v - v_th) / width, min=0.0)

    dtype = getattr(torch, args.dtype)
    x = torch.tensor(batch.input_spikes, dtype=dtype)
    target = torch.tensor(batch.target, dtype=dtype)
    w_in = torch.tensor(w["in_rec"].T, dtype=dtype, requires_grad=True)
    w_rec = torch.tensor(w["rec_rec"].T * (1 - np.eye(args.n_rec)), dtype=dtype, requires_grad=True)
    w_out = torch.tensor(w["rec_out"].T, dtype=dtype, requires_grad=True)
    optimizer = torch.optim.Adam([w_in, w_rec, w_out], lr=1e-3)
    diag = torch.tensor(1 - np.eye(args.n_rec), dtype=dtype)

    def iteration() -> float:
        optimizer.zero_grad()
        v = torch.zeros(args.n_rec, dtype=dtype)
        i_syn = torch.zeros(args.n_rec, dtype=dtype)
        z = torch.zeros(args.n_rec, dtype=dtype)
        y = torch.zeros(n_out, dtype=dtype)
        input_current = x @ w_in  # all steps at once: the inputs do not depend on the state
        ys = []
        w_rec_eff = w_rec * diag
        for t in range(steps):
            v = p22 * v + p21 * i_syn
            i_syn = p11 * i_syn + input_current[t] + z @ w_rec_eff
            z = Spike.apply(v)
            v = v * (1.0 - z)  # reset to 0 (V_reset = E_L = 0)
            y = kappa * y + z @ w_out
            ys.append(y)
        loss = 0.5 * ((torch.stack(ys) - target) ** 2).sum()
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    iteration()  # warm-up
    times = []
    for _ in range(args.iterations):
        t0 = time.perf_counter()
        iteration()
        times.append(time.perf_counter() - t0)
    result = {
        "time_per_iteration_s": statistics.median(times),
        "n_rec": args.n_rec,
        "input_rate_hz": args.input_rate,
        "threads": args.threads,
        "dtype": args.dtype,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"PyTorch BPTT, {args.n_rec} recurrent neurons, {steps} steps, {args.threads} thread(s), {args.dtype}: "
            f"{result['time_per_iteration_s']:.3f} s per iteration (median of {args.iterations})"
        )


if __name__ == "__main__":
    main()

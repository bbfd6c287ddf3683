"""Where EventProp's time goes in NEST (issue 20, item 9: the profile behind the benchmark's ratio to PyTorch).

One batch of latency-coded digits (``--trials`` training images, the benchmark network of
``torch_bptt_digits.DigitsNetwork`` with ``--hidden`` neurons and its initial weights), measured side by side in one
process on the same CPU:

* ``nest_static``: NEST's own precise models with the same spikes and weights and no learning: the inputs as
  ``spike_generator`` (precise times) -> ``parrot_neuron_ps``, hidden ``iaf_psc_exp_ps``, readouts
  ``iaf_psc_exp_ps`` with an unreachable threshold, ``static_synapse``; the floor NEST itself sets for delivering
  these spikes;
* ``eventprop_forward``: nestgrad's EventProp models, forward pass only (no loss: no backward stretch);
* ``eventprop_gradient``: forward and backward pass (``run_gradients``), what one training batch costs;
* ``bptt_dt1`` / ``bptt_dt0.1``: the PyTorch BPTT of the benchmark, forward + backward + Adam of one batch at time
  steps of 1 and 0.1 ms (PyTorch optional: skipped when missing).

Counts per trial (from the reference engine's forward record of the same weights, exact): input spikes, hidden
spikes, and the synaptic deliveries each pass makes (forward: input spikes x n_hidden + hidden spikes x n_out;
backward: inputs and hidden neurons replay each spike as two messages to their forward synapses, hidden neurons
also to their reverse connections, readouts send their loss terms), so that the time per delivery can be read off.
Each measurement is the best of ``--repeats``; ``Simulate`` only (building excluded).

    python scaling_runs/profile_eventprop.py --hidden 100 --trials 32 --threads 1
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time
from typing import Any

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))


def _best(fn: Any, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        best = min(best, fn())
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=100)
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dt", type=float, default=1.0, help="NEST resolution (ms)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=pathlib.Path)
    args = parser.parse_args()

    from torch_bptt_digits import DigitsNetwork, initial_weights

    from nestgrad.config import OptimizerConfig
    from nestgrad.config.eventprop import EventpropConfig
    from nestgrad.nest_engine import eventprop as engine
    from nestgrad.nest_engine import fresh_kernel
    from nestgrad.networks.eventprop import EventpropLearner
    from nestgrad.reference.eventprop import compile_network, simulate
    from nestgrad.tasks.digits_latency import DigitsLatency

    data = DigitsLatency()
    net = DigitsNetwork(n_hidden=args.hidden)
    w0 = initial_weights(net, data.n_in, data.n_out, args.seed)
    config = EventpropConfig(
        n_hidden=args.hidden, delay=net.delay,
        hidden={k: getattr(net, k) for k in ("C_m", "tau_m", "tau_syn", "E_L", "V_th", "V_reset", "t_ref")},
        readout={"C_m": net.readout_C_m, "tau_m": net.readout_tau_m, "tau_syn": net.readout_tau_syn, "E_L": net.E_L},
    )  # fmt: skip
    learner = EventpropLearner(config, OptimizerConfig(type="adam", eta=5e-3), data.n_in, data.n_out, args.dt)
    learner.trial_duration = data.duration
    weights = {"in_hid": w0["in_hid"].ravel(), "hid_out": w0["hid_out"].ravel()}
    trials = data.trials("train", range(args.trials))
    network = learner.network(weights, data.duration)
    loss = learner.loss()
    out: dict[str, Any] = {"hidden": args.hidden, "trials": args.trials, "threads": args.threads, "dt_ms": args.dt}

    # exact counts from the reference's forward pass
    cnet = compile_network(network)
    n_in_spikes = sum(sum(len(ts) for ts in t.inputs["in"]) for t in trials) / len(trials)
    hid = set(cnet.global_ids("hid"))
    n_hid_spikes = np.mean([sum(1 for j in rec_neurons(simulate(cnet, t)) if j in hid) for t in trials[:8]])
    fwd = n_in_spikes * args.hidden + n_hid_spikes * data.n_out
    bwd = 2 * n_in_spikes * args.hidden + 2 * n_hid_spikes * (2 * data.n_out)
    out["per_trial"] = {"input_spikes": n_in_spikes, "hidden_spikes": float(n_hid_spikes),
                        "forward_deliveries": fwd, "backward_deliveries": bwd}  # fmt: skip

    def eventprop(with_loss: bool) -> float:
        built = engine.build(network, trials, resolution=args.dt, threads=args.threads,
                             loss=loss if with_loss else None)  # fmt: skip
        t0 = time.perf_counter()
        built.nest.Simulate(built.layout.sim_time)
        return time.perf_counter() - t0

    def nest_static() -> float:
        nest = fresh_kernel(args.dt, args.threads, args.seed)
        period = data.duration + 2 * net.delay + 2 * args.dt
        times, labels = data.arrays("train", range(args.trials))
        gens = nest.Create("spike_generator", data.n_in, {"precise_times": True})
        for j in range(data.n_in):
            ts = [args.dt + k * period + t for k, t in enumerate(times[:, j]) if np.isfinite(t)]
            gens[j].spike_times = np.round(np.array(ts), 6).tolist()
        parrots = nest.Create("parrot_neuron_ps", data.n_in)
        nest.Connect(gens, parrots, "one_to_one")
        lif = {
            "C_m": net.C_m,
            "tau_m": net.tau_m,
            "tau_syn_ex": net.tau_syn,
            "tau_syn_in": net.tau_syn,
            "E_L": net.E_L,
            "V_th": net.V_th,
            "V_reset": net.V_reset,
            "t_ref": max(net.t_ref, args.dt / 10),
        }
        hidden = nest.Create("iaf_psc_exp_ps", args.hidden, lif | {"V_m": net.E_L})
        readouts = nest.Create("iaf_psc_exp_ps", data.n_out, lif | {"V_th": 1e9, "V_m": net.E_L})
        for pre, post, w in ((parrots, hidden, w0["in_hid"]), (hidden, readouts, w0["hid_out"])):
            s, t = np.nonzero(np.ones(w.shape, bool))
            syn = {"synapse_model": "static_synapse", "weight": w[s, t], "delay": np.full(len(s), net.delay)}
            nest.Connect(np.asarray(pre.tolist())[s], np.asarray(post.tolist())[t], "one_to_one", syn)
        t0 = time.perf_counter()
        nest.Simulate(args.trials * period + args.dt)
        return time.perf_counter() - t0

    for name, fn in (("nest_static", nest_static), ("eventprop_forward", lambda: eventprop(False)),
                     ("eventprop_gradient", lambda: eventprop(True))):  # fmt: skip
        out[name + "_s"] = _best(fn, args.repeats)
    try:
        from torch_bptt_digits import TorchBPTT

        for dt in (1.0, 0.1):
            raster = data.raster("train", dt, range(args.trials))
            labels = data.arrays("train", range(args.trials))[1]

            def bptt(dt: float = dt, raster: np.ndarray = raster, labels: np.ndarray = labels) -> float:
                model = TorchBPTT(net, w0, dt, threads=args.threads, seed=args.seed)
                t0 = time.perf_counter()
                model.train_epoch(raster, labels, args.trials)
                return time.perf_counter() - t0

            out[f"bptt_dt{dt:g}_s"] = _best(bptt, args.repeats)
    except ImportError:
        out["bptt"] = "PyTorch not installed (requirements-bench.txt)"
    per = out["per_trial"]
    out["eventprop_forward_ns_per_delivery"] = (
        1e9 * out["eventprop_forward_s"] / (args.trials * per["forward_deliveries"])
    )
    out["eventprop_backward_ns_per_delivery"] = 1e9 * (out["eventprop_gradient_s"] - out["eventprop_forward_s"]) / (
        args.trials * per["backward_deliveries"])  # fmt: skip
    out["nest_static_ns_per_delivery"] = 1e9 * out["nest_static_s"] / (args.trials * per["forward_deliveries"])
    for key, value in out.items():
        print(f"{key:38s} {value}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


def rec_neurons(rec: Any) -> list[int]:
    """The neuron of every spike of a forward record."""
    return [int(n) for n, sids in enumerate(rec.spikes_of) for _ in sids]


if __name__ == "__main__":
    main()

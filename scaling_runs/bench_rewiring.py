"""What one deep-rewiring step costs, against one batch's simulation, side by side in one run (docs/deep_rewiring.md).

Per case (n recurrent eprop_iaf_psc_exp neurons, a fraction p of the recurrent pairs and of 100 inputs' pairs
connected with ``eprop_event_synapse``, 2 readouts with e-prop synapses and learning signals, Poisson input) it
measures, in one process and one kernel:

* ``build_s``: building the network (nodes and connections): what a rebuild after a rewiring step costs;
* ``batch_s``: simulating one batch (``--steps`` time steps of 1 ms);
* ``read_s``: reading the rewired projections' sources, targets and weights back (``GetConnections``; any
  between-batches rewiring needs them, gathered over ranks under MPI);
* ``decide_s``: the NumPy rule (:func:`nestgrad.rewiring.rewire_step`) with ``--removed`` of the connections forced
  across zero;
* ``inplace_s``: applying the decision in the running kernel through NEST's connection API (``nest.Disconnect`` of
  the removed synapses, ``nest.Connect`` of the new ones), then ``batch2_s``: one more batch after it.

    nice -n 10 python scaling_runs/bench_rewiring.py --sizes 2000,10000 --fractions 0.01,0.1 --repeats 1

Every case runs in a fresh process; ``--repeats`` keeps the fastest of each quantity.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
N_IN, N_OUT = 100, 2


def run_case(n: int, p: float, steps: int, removed: float, threads: int, seed: int = 1) -> dict:
    import numpy as np

    from nestgrad.nest_engine import fresh_kernel
    from nestgrad.networks.eprop_classic import default_neuron_params
    from nestgrad.rewiring import initial_keys, rewire_step, rng_for

    nest = fresh_kernel(1.0, threads, seed)
    out: dict = {"n": n, "fraction": p, "steps": steps, "threads": threads}
    opt = {"type": "gradient_descent", "eta": 1e-4, "Wmin": -100.0, "Wmax": 100.0, "batch_size": 1}
    rng = np.random.default_rng(seed)
    keys = {
        "in": initial_keys(seed, 0, p, n, N_IN, True),
        "rec": initial_keys(seed, 1, p, n, n, False),
    }
    t0 = time.perf_counter()
    nest.SetDefaults("eprop_event_synapse", {"optimizer": opt})
    nest.SetDefaults("eprop_synapse", {"optimizer": opt})
    gen = nest.Create("poisson_generator", N_IN, {"rate": 20.0})
    inp = nest.Create("parrot_neuron", N_IN)
    rec = nest.Create("eprop_iaf_psc_exp", n, default_neuron_params("eprop_iaf_psc_exp"))
    out_nodes = nest.Create("eprop_readout", N_OUT)
    nest.Connect(gen, inp, "one_to_one", {"synapse_model": "static_synapse", "delay": 1.0})
    weights = {}
    for name, pre, n_pre in (("in", inp, N_IN), ("rec", rec, n)):
        k = keys[name]
        w = rng.standard_normal(k.size) * 0.03 / np.sqrt(p * n_pre)
        weights[name] = w
        src = np.asarray(pre.tolist())[k % n_pre]
        tgt = np.asarray(rec.tolist())[k // n_pre]
        syn = {"synapse_model": "eprop_event_synapse", "weight": w, "delay": np.ones(k.size)}
        nest.Connect(src, tgt, "one_to_one", syn)
    nest.Connect(rec, out_nodes, "all_to_all", {"synapse_model": "eprop_synapse", "weight": 0.001, "delay": 1.0})
    nest.Connect(out_nodes, rec, "all_to_all", {"synapse_model": "eprop_learning_signal_connection", "weight": 0.01})
    out["build_s"] = time.perf_counter() - t0
    out["synapses"] = int(sum(k.size for k in keys.values()))
    sr = nest.Create("spike_recorder")
    nest.Connect(rec, sr)

    t0 = time.perf_counter()
    nest.Simulate(float(steps))
    out["batch_s"] = time.perf_counter() - t0
    out["spikes_per_neuron"] = sr.n_events / n

    # read the recurrent projection's edges and weights (the larger one: it dominates the step)
    t0 = time.perf_counter()
    conns = nest.GetConnections(rec, rec, synapse_model="eprop_event_synapse")
    d = conns.get(["source", "target", "weight"])
    src, tgt, w = (np.asarray(d[k]) for k in ("source", "target", "weight"))
    out["read_s"] = time.perf_counter() - t0

    first = rec.tolist()[0]
    key = (tgt - first) * n + (src - first)
    order = np.argsort(key)
    key, w = key[order], w[order]
    sign = np.where(w >= 0, 1.0, -1.0)
    forced = rng.random(key.size) < removed  # these cross zero
    w_forced = np.where(forced, -0.5 * w, w)
    t0 = time.perf_counter()
    res = rewire_step(key, w_forced, sign, rng_for(seed, 1, 1), n, n, autapses=False, new_weight=1e-6)
    out["decide_s"] = time.perf_counter() - t0
    out["removed"] = int(res.removed.size)

    t0 = time.perf_counter()
    try:
        gone = np.isin(key, res.removed)
        rm_src, rm_tgt = (key[gone] % n + first).tolist(), (key[gone] // n + first).tolist()
        rm = nest.GetConnections(nest.NodeCollection(sorted(set(rm_src))), rec, synapse_model="eprop_event_synapse")
        rm_d = rm.get(["source", "target"])
        wanted = set(zip(rm_src, rm_tgt, strict=True))
        pick = [i for i, st in enumerate(zip(rm_d["source"], rm_d["target"], strict=True)) if st in wanted]
        for i in pick:  # a SynapseCollection is indexed by one integer at a time
            nest.Disconnect(rm[i])
        add_src = res.added % n + first
        add_tgt = res.added // n + first
        nest.Connect(add_src, add_tgt, "one_to_one",
                     {"synapse_model": "eprop_event_synapse", "weight": np.full(res.added.size, 1e-6),
                      "delay": np.ones(res.added.size)})  # fmt: skip
        out["inplace_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        nest.Simulate(float(steps))
        out["batch2_s"] = time.perf_counter() - t0
        out["synapses_after"] = nest.GetKernelStatus("num_connections")
    except Exception as err:  # noqa: BLE001  (the result records what NEST refused)
        out["inplace_error"] = f"{type(err).__name__}: {err}"[:300]
    return out


def run_trainer_case(n: int, p: float, steps: int, threads: int, seed: int = 1) -> dict:
    """The path training takes (the Trainer's calls on the classic network with network.rewiring): one batch of the
    sine task, then the gathered weights and Adam moments read back as [post, pre] matrices, the rewiring step on
    them (EpropNetwork.rewire) and the rebuild of the network in a fresh kernel with the new connectivity."""
    import resource

    from nestgrad.config import ExperimentConfig
    from nestgrad.nest_engine import fresh_kernel
    from nestgrad.networks.registry import make_learner

    cfg = ExperimentConfig.from_dict(
        {
            "network": {
                "n_rec": n,
                "gradient_algorithm": "event",
                "rewiring": {"in_fraction": p, "rec_fraction": p, "enabled": True},
            },
            "task": {"name": "sine", "sequence_steps": steps},
            "optimizer": {"type": "adam", "eta": 1e-3, "sign_constrained": True},
        }  # fmt: skip
    )
    net, task = make_learner(cfg)
    out: dict = {"path": "trainer", "n": n, "fraction": p, "steps": steps, "threads": threads}
    t0 = time.perf_counter()
    weights = net.initial_weights(seed)
    out["initial_s"] = time.perf_counter() - t0
    nest = fresh_kernel(1.0, threads, seed)
    t0 = time.perf_counter()
    net.build(nest, weights, 0)
    out["build_s"] = time.perf_counter() - t0
    out["synapses"] = int(weights["mask_in_rec"].sum() + weights["mask_rec_rec"].sum())
    for _, _, seconds in net.simulate(nest, [task.batch(0)], 1.0):
        out["batch_s"] = seconds
    t0 = time.perf_counter()
    w1 = net.read_weights(nest)
    opt = net.read_optimizer_state(nest)
    out["read_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    w2, opt2, stats = net.rewire(w1, opt, 1)
    out["decide_s"] = time.perf_counter() - t0
    out["removed"] = sum(r for r, _ in stats.values())
    t0 = time.perf_counter()
    nest = fresh_kernel(1.0, threads, seed)
    net.build(nest, w2, 0)
    net.write_optimizer_state(nest, opt2)
    out["rebuild_s"] = time.perf_counter() - t0
    out["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="2000,10000")
    ap.add_argument("--fractions", default="0.01,0.1")
    ap.add_argument("--steps", type=int, default=1000, help="time steps (1 ms) of one batch")
    ap.add_argument("--removed", type=float, default=0.01, help="fraction of connections forced across zero")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(HERE / "results" / "bench_rewiring.json"))
    ap.add_argument("--path", choices=("api", "trainer", "both"), default="both",
                    help="api: raw NEST build / Disconnect / Connect; trainer: the Trainer's rebuild path")  # fmt: skip
    ap.add_argument("--case", default=None, help=argparse.SUPPRESS)  # internal: one case in this process
    args = ap.parse_args()
    if args.case:
        kind, n, p = args.case.split(":")
        if kind == "api":
            print(json.dumps(run_case(int(n), float(p), args.steps, args.removed, args.threads)))
        else:
            print(json.dumps(run_trainer_case(int(n), float(p), args.steps, args.threads)))
        return
    rows = []
    kinds = ("api", "trainer") if args.path == "both" else (args.path,)
    cases = [(k, int(n), float(p)) for n in args.sizes.split(",") for p in args.fractions.split(",") for k in kinds]
    for kind, n, p in cases:
        best: dict = {}
        for _ in range(args.repeats):
            cmd = [sys.executable, __file__, "--case", f"{kind}:{n}:{p}", "--steps", str(args.steps),
                   "--removed", str(args.removed), "--threads", str(args.threads)]  # fmt: skip
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:  # recorded, and the other cases still run
                why = (res.stderr.strip().splitlines() or [f"exit status {res.returncode}"])[-1]
                r = {"path": kind, "n": n, "fraction": p, "error": why[:300]}
            else:
                r = json.loads(res.stdout.strip().splitlines()[-1])
            for k, v in r.items():
                if k.endswith("_s") and k in best:
                    best[k] = min(best[k], v)
                elif k not in best:
                    best[k] = v
        rows.append(best)
        print(json.dumps(best), flush=True)
        pathlib.Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")  # after every case


if __name__ == "__main__":
    main()

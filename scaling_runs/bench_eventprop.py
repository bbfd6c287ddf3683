"""EventProp benchmark (issue 20, item 9): latency-coded digits, one hidden layer of 100 / 200 / 400, side by side.

Every column trains the same network (``torch_bptt_digits.DigitsNetwork``: 784 latency-coded inputs ->
``hidden`` LIF neurons with exponential currents -> 10 leaky readouts; docs/eventprop.md's equations) from the same
initial weights on the same split of :mod:`nestgrad.tasks.digits_latency`, with Adam and minibatches of 32, and
reports test accuracy after the same number of epochs, seconds per training epoch, and the worker's peak memory:

* ``pytorch_bptt``: BPTT with a surrogate gradient (``torch_bptt_digits.py``; time step ``--dt``);
* ``eprop_nest``: nestgrad's classic e-prop network in NEST (``EpropNetwork``, ``eprop_iaf_psc_exp`` without
  recurrent connections, the same neuron parameters and surrogate, firing regularisation off, random feedback
  weights; NEST grid ``--dt``; by default nestgrad's fastest kernel, ``gradient_algorithm = "event"``), trained
  continually on the training trials back to back, each followed by ``--eprop-gap`` ms of silence (NEST's e-prop
  does not reset the network between trials; without the gap a trial's readout mixes in the previous trial), NEST's
  Adam with ``batch_size`` = the steps of 32 trials. Its readouts are NEST's ``eprop_readout`` (no synaptic current;
  initial readout weights times 1 - kappa, nestgrad's classic-network scale) and its loss is e-prop's mean squared
  error to the one-hot target over the trial; the decision is the readout with the largest mean over the trial, as
  for the others. Its time per epoch includes the gaps;
* ``eventprop_nest``: EventProp in NEST through nestgrad's ``eventprop`` learner (``run_eventprop_nest``); when the
  installed module lacks the models the row says so, never a number;
* ``reference``: the pure-Python EventProp reference engine (exact, event by event) on a subset: ``--reference-train``
  training trials (one epoch over them, the same Adam), accuracy on the first ``--reference-test`` test trials, and
  its measured seconds per trial (forward + backward); the full-epoch time is that times the training-set size and
  is labelled as extrapolated. One thread only (pure Python).

Each (method, hidden, threads) runs in a fresh worker process (this script with ``--worker``), so that the peak
resident set size it reports (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) is that run's alone; it includes the
interpreter and the imported libraries (``rss_before_mib`` is the peak before the data and the network were made).
Time per epoch is wall time of the training epoch only (not building, data preparation or the test pass).

    python scaling_runs/bench_eventprop.py                                  # 100/200/400, 1 and 2 threads, 1 epoch
    python scaling_runs/bench_eventprop.py --hidden 100 --epochs 1 --json out.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import subprocess
import sys
import time
from dataclasses import asdict
from typing import Any

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
METHODS = ("pytorch_bptt", "eprop_nest", "eventprop_nest", "reference")
EVENTPROP_MODELS = ("eventprop_iaf_psc_exp_ps",)
NOT_BUILT = "not available (models not built)"


# -- e-prop in NEST ---------------------------------------------------------------------------------------------------
def run_eprop_nest(
    hidden: int,
    epochs: int,
    threads: int,
    dt: float,
    batch_size: int,
    lr: float,
    seed: int,
    surrogate_slope: float,
    gap: float,
    algorithm: str = "event",
) -> dict[str, Any]:
    from torch_bptt_digits import DigitsNetwork, initial_weights, peak_rss_mib

    from nestgrad.config import NetworkConfig, OptimizerConfig
    from nestgrad.nest_engine import fresh_kernel
    from nestgrad.networks import eprop_classic
    from nestgrad.networks.eprop_classic import EpropNetwork
    from nestgrad.tasks import accuracy
    from nestgrad.tasks.digits_latency import DigitsLatency

    rss_start = peak_rss_mib()
    data = DigitsLatency()
    net = DigitsNetwork(n_hidden=hidden)
    w0 = initial_weights(net, data.n_in, data.n_out, seed)
    steps = data.steps(dt) + int(round(gap / dt))  # NEST steps per trial, its silent gap included
    kappa = math.exp(-dt / net.readout_tau_m)
    neuron_params = {
        "C_m": net.C_m, "tau_m": net.tau_m, "tau_syn_ex": net.tau_syn, "tau_syn_in": net.tau_syn, "E_L": net.E_L,
        "V_m": net.E_L, "V_th": net.V_th, "V_reset": net.V_reset, "t_ref": net.t_ref, "c_reg": 0.0,
        # the BPTT's surrogate: gamma (1 + |v - theta| / w)^-2 with gamma = 1, w = 1 / slope
        "surrogate_gradient_function": "fast_sigmoid_derivative", "surrogate_gradient_height": 1.0,
        "surrogate_gradient_width": 1.0 / surrogate_slope,
        # the eligibility traces are filtered like the readouts' voltage
        "kappa": kappa, "kappa_reg": kappa,
    }  # fmt: skip
    config = NetworkConfig(
        neuron_model="eprop_iaf_psc_exp", n_rec=hidden, recurrent=False, neuron_params=neuron_params,
        readout_params={"tau_m": net.readout_tau_m}, seed=seed, gradient_algorithm=algorithm,
    )  # fmt: skip
    optimizer = OptimizerConfig(type="adam", eta=lr, batch_size=steps * batch_size, Wmin=-100.0, Wmax=100.0)
    learner = EpropNetwork(config, optimizer, data.n_in, data.n_out, dt)
    feedback = eprop_classic.initial_weights(data.n_in, hidden, data.n_out, seed, recurrent=False)["feedback"]
    weights = {
        "in_rec": w0["in_hid"].T.copy(),
        "rec_rec": np.zeros((hidden, hidden)),
        # eprop_readout adds w to V_m per spike (no synaptic current); its weights are scaled by 1 - kappa as in
        # nestgrad's classic network (eprop_classic.WEIGHT_SCALE). Scaling them instead to the other columns' voltage
        # integral per spike (tau_syn tau_m (1 - kappa) / (C_m dt) = 0.24) left e-prop at chance in a trial run
        "rec_out": w0["hid_out"].T * (1 - kappa),
        "feedback": feedback,
    }
    rng = np.random.default_rng([seed, 0xB9])

    # all epochs in one kernel (state, weights and Adam's moments carry on), one Run per epoch
    batches = [data.trial_batch("train", dt, rng.permutation(data.size("train")), gap) for _ in range(epochs)]
    nest = fresh_kernel(dt, threads, seed)
    learner.validate(nest)
    learner.build(nest, weights, record_neurons=hidden)
    learner.load_segment(nest, batches)
    t = learner.lead_in_ms()
    epoch_s, history = [], []
    nest.Prepare()
    try:
        nest.Run(t)
        for batch in batches:
            t0 = time.perf_counter()
            nest.Run(batch.steps * dt)
            epoch_s.append(time.perf_counter() - t0)
            rec = learner.collect(nest, t, batch.steps)
            t += batch.steps * dt
            history.append(
                {
                    "train_accuracy": accuracy(rec.readout, batch),
                    "hidden_spikes_per_trial": rec.spike_steps.size / batch.labels.size,
                }
            )
    finally:
        nest.Cleanup()
    weights = learner.read_weights(nest)
    # test: the trained weights, learning off, a fresh kernel
    test = data.trial_batch("test", dt, gap=gap)
    nest = fresh_kernel(dt, threads, seed)
    learner.build(nest, weights, record_neurons=0, learning=False)
    learner.load_segment(nest, [test])
    t = learner.lead_in_ms()
    nest.Prepare()
    try:
        nest.Run(t)
        nest.Run(test.steps * dt)
        rec = learner.collect(nest, t, test.steps)
    finally:
        nest.Cleanup()
    return {
        "test_accuracy": accuracy(rec.readout, test),
        "seconds_per_epoch": float(np.mean(epoch_s)),
        "epoch_seconds": epoch_s,
        "history": history,
        "peak_rss_mib": peak_rss_mib(),
        "rss_before_mib": rss_start,
        "dt_ms": dt,
        "gap_ms": gap,
        "gradient_algorithm": algorithm,
        "network": asdict(net),
    }


# -- EventProp in NEST ------------------------------------------------------------------------------------------------
def eventprop_nest_missing(nest: Any) -> list[str]:
    """The EventProp models this benchmark needs that the installed module lacks."""
    return [m for m in EVENTPROP_MODELS if m not in nest.node_models]


def run_eventprop_nest(
    hidden: int, epochs: int, threads: int, dt: float, batch_size: int, lr: float, seed: int
) -> dict[str, Any]:
    """EventProp in NEST through nestgrad's ``eventprop`` learner (networks/eventprop.py, the one the Trainer uses):
    the benchmark network and initial weights, NEST's grid ``dt`` (spike times stay exact, off-grid), Adam with
    minibatches of ``batch_size`` trials applied inside the synapses. Each epoch is one kernel: every trial's forward
    pass and its backward pass in mirrored time, batch after batch, in ``Simulate`` calls of one batch each; the
    time per epoch is the sum of those calls (building the network is reported apart). The learner needs batches of
    one size: an epoch uses the largest multiple of ``batch_size`` trials (1,408 of 1,438 for 32), the rest of the
    permutation is left out. Test: all test trials in one batch, learning off."""
    from torch_bptt_digits import DigitsNetwork, initial_weights, peak_rss_mib

    from nestgrad.config import OptimizerConfig
    from nestgrad.config.eventprop import EventpropConfig
    from nestgrad.nest_engine import fresh_kernel
    from nestgrad.networks.eventprop import EventpropLearner, TrialSet
    from nestgrad.tasks.digits_latency import DigitsLatency

    nest = fresh_kernel(dt, threads, seed)
    missing = eventprop_nest_missing(nest)
    if missing:
        return {"status": NOT_BUILT, "missing_models": missing}
    rss_start = peak_rss_mib()
    data = DigitsLatency()
    net = DigitsNetwork(n_hidden=hidden)
    w0 = initial_weights(net, data.n_in, data.n_out, seed)
    config = EventpropConfig(
        n_hidden=hidden, loss="sum", delay=net.delay,
        hidden={k: getattr(net, k) for k in ("C_m", "tau_m", "tau_syn", "E_L", "V_th", "V_reset", "t_ref")},
        readout={"C_m": net.readout_C_m, "tau_m": net.readout_tau_m, "tau_syn": net.readout_tau_syn, "E_L": net.E_L},
    )  # fmt: skip
    learner = EventpropLearner(config, OptimizerConfig(type="adam", eta=lr), data.n_in, data.n_out, dt)
    learner.trial_duration = data.duration
    weights = {"in_hid": w0["in_hid"].ravel(), "hid_out": w0["hid_out"].ravel()}  # [pre, post]: source-major
    rng = np.random.default_rng([seed, 0xB9])

    def trial_sets(split: str, order: np.ndarray, size: int) -> list[TrialSet]:
        out = []
        for k in range(len(order) // size):
            trials = data.trials(split, order[k * size : (k + 1) * size])
            out.append(TrialSet(trials, np.array([t.label for t in trials], np.int64)))
        return out

    epoch_s, build_s, history = [], [], []
    state: dict[str, np.ndarray] = {}
    for _ in range(epochs):
        batches = trial_sets("train", rng.permutation(data.size("train")), batch_size)
        nest = fresh_kernel(dt, threads, seed)
        learner.build(nest, weights, record_neurons=hidden)
        if state:
            learner.write_optimizer_state(nest, state)
        t0 = time.perf_counter()
        sim, correct, spikes = 0.0, 0, 0
        for batch, rec, seconds in learner.simulate(nest, batches, dt):
            sim += seconds
            correct += int(np.sum(np.argmax(rec.y, axis=1) == batch.labels))
            spikes += rec.hidden_spikes
        total = time.perf_counter() - t0
        n = sum(b.n_trials for b in batches)
        epoch_s.append(sim)
        build_s.append(total - sim)
        history.append({"train_accuracy": correct / n, "hidden_spikes_per_trial": spikes / n})
        weights = learner.read_weights(nest)
        state = learner.read_optimizer_state(nest)
    test = trial_sets("test", np.arange(data.size("test")), data.size("test"))
    nest = fresh_kernel(dt, threads, seed)
    learner.build(nest, weights, record_neurons=hidden, learning=False)
    (batch, rec, _), *_ = list(learner.simulate(nest, test, dt))
    return {
        "test_accuracy": float(np.mean(np.argmax(rec.y, axis=1) == batch.labels)),
        "seconds_per_epoch": float(np.mean(epoch_s)),
        "epoch_seconds": epoch_s,
        "build_and_read_seconds": build_s,
        "history": history,
        "peak_rss_mib": peak_rss_mib(),
        "rss_before_mib": rss_start,
        "dt_ms": dt,
        "trials_per_epoch": len(batches) * batch_size,
        "network": asdict(net),
    }


# -- the reference engine ---------------------------------------------------------------------------------------------
def reference_network(net: Any, weights: dict[str, np.ndarray], n_in: int, n_out: int, duration: float) -> Any:
    """The benchmark network for :mod:`nestgrad.reference.eventprop` (dense edge lists, pre-major)."""
    from nestgrad.reference.eventprop import Network, Population, Projection

    def dense(name: str, pre: str, post: str, w: np.ndarray) -> Projection:
        s, t = np.nonzero(np.ones(w.shape, bool))
        return Projection(name, pre, post, s, t, w[s, t], net.delay)

    pops = (
        Population("in", n_in, "input"),
        Population("hid", net.n_hidden, "lif", net.lif_params()),
        Population("out", n_out, "li", net.li_params()),
    )
    return Network(
        pops,
        (dense("in_hid", "in", "hid", weights["in_hid"]), dense("hid_out", "hid", "out", weights["hid_out"])),
        duration,
    )


class NumpyAdam:
    """Adam (Kingma & Ba), the update of torch.optim.Adam with its defaults (betas 0.9, 0.999, eps 1e-8)."""

    def __init__(self, lr: float, beta_1: float = 0.9, beta_2: float = 0.999, eps: float = 1e-8):
        self.lr, self.b1, self.b2, self.eps = lr, beta_1, beta_2, eps
        self.m: dict[str, np.ndarray] = {}
        self.v: dict[str, np.ndarray] = {}
        self.t = 0

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        self.t += 1
        for k, g in grads.items():
            m = self.m.setdefault(k, np.zeros_like(g))
            v = self.v.setdefault(k, np.zeros_like(g))
            m *= self.b1
            m += (1 - self.b1) * g
            v *= self.b2
            v += (1 - self.b2) * g * g
            m_hat = m / (1 - self.b1**self.t)
            v_hat = v / (1 - self.b2**self.t)
            params[k] -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


def run_reference(
    hidden: int, n_train: int, n_test: int, batch_size: int, lr: float, seed: int, readout: str = "sum"
) -> dict[str, Any]:
    from torch_bptt_digits import DigitsNetwork, initial_weights, peak_rss_mib

    from nestgrad.reference.eventprop import ReadoutCrossEntropy, compile_network, evaluate
    from nestgrad.tasks.digits_latency import DigitsLatency

    rss_start = peak_rss_mib()
    data = DigitsLatency()
    if not 1 <= n_train <= data.size("train") or not 1 <= n_test <= data.size("test"):
        raise SystemExit(
            f"--reference-train {n_train} / --reference-test {n_test}: need 1..{data.size('train')} / "
            f"1..{data.size('test')}"
        )
    net = DigitsNetwork(n_hidden=hidden)
    w = initial_weights(net, data.n_in, data.n_out, seed)
    shape = {k: v.shape for k, v in w.items()}
    loss = ReadoutCrossEntropy("out", readout)
    adam = NumpyAdam(lr)
    rng = np.random.default_rng([seed, 0xB9])
    order = rng.permutation(data.size("train"))[:n_train]
    trial_s, spikes = [], 0
    t_epoch = time.perf_counter()
    for start in range(0, n_train, batch_size):
        trials = data.trials("train", order[start : start + batch_size])
        cnet = compile_network(reference_network(net, w, data.n_in, data.n_out, data.duration))
        t0 = time.perf_counter()
        res = evaluate(cnet, trials, loss)
        trial_s.append((time.perf_counter() - t0) / len(trials))
        spikes += sum(len(r.spike_t) for r in res.records)
        adam.step(w, {k: res.grad_weights[k].reshape(shape[k]) for k in w})
    epoch_subset_s = time.perf_counter() - t_epoch
    cnet = compile_network(reference_network(net, w, data.n_in, data.n_out, data.duration))
    test = data.trials("test", range(n_test))
    res = evaluate(cnet, test, loss, gradient=False)
    correct = sum(int(np.argmax(y) == tr.label) for y, tr in zip(res.outputs, test, strict=True))
    per_trial = float(np.mean(trial_s))
    return {
        "test_accuracy": correct / n_test,
        "train_trials": n_train,
        "test_trials": n_test,
        "seconds_per_trial": per_trial,
        "seconds_subset_epoch": epoch_subset_s,
        "seconds_per_epoch_extrapolated": per_trial * data.size("train"),
        "spikes_per_trial": spikes / n_train,
        "peak_rss_mib": peak_rss_mib(),
        "rss_before_mib": rss_start,
        "readout": readout,
        "network": asdict(net),
    }


# -- driver -----------------------------------------------------------------------------------------------------------
def worker(args: argparse.Namespace) -> dict[str, Any]:
    method, hidden, threads = args.worker, args.hidden[0], args.threads[0]
    base = {"method": method, "hidden": hidden, "threads": threads, "epochs": args.epochs}
    if method == "pytorch_bptt":
        from torch_bptt_digits import run

        res = run(hidden, args.epochs, threads, args.dt, args.batch_size, args.lr, args.surrogate_slope, "sum",
                  args.seed)  # fmt: skip
    elif method == "eprop_nest":
        res = run_eprop_nest(
            hidden,
            args.epochs,
            threads,
            args.dt,
            args.batch_size,
            args.lr,
            args.seed,
            args.surrogate_slope,
            args.eprop_gap,
            args.eprop_algorithm,
        )
    elif method == "eventprop_nest":
        res = run_eventprop_nest(hidden, args.epochs, threads, args.dt, args.batch_size, args.lr, args.seed)
    else:
        res = run_reference(hidden, args.reference_train, args.reference_test, args.batch_size, args.lr, args.seed)
        res["epochs"] = 1
    return base | {"status": "ok"} | res


def spawn(args: argparse.Namespace, method: str, hidden: int, threads: int) -> dict[str, Any]:
    cmd = [sys.executable, str(pathlib.Path(__file__).resolve()), "--worker", method, "--hidden", str(hidden),
           "--threads", str(threads), "--epochs", str(args.epochs), "--dt", str(args.dt), "--batch-size",
           str(args.batch_size), "--lr", str(args.lr), "--surrogate-slope", str(args.surrogate_slope), "--seed",
           str(args.seed), "--reference-train", str(args.reference_train), "--reference-test",
           str(args.reference_test), "--eprop-gap", str(args.eprop_gap),
           "--eprop-algorithm", args.eprop_algorithm]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"method": method, "hidden": hidden, "threads": threads, "status": "failed: " + " | ".join(tail)}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _cell(r: dict[str, Any] | None) -> tuple[str, str, str]:
    if r is None:
        return ("-", "-", "-")
    if r.get("status") != "ok":
        return (r.get("status", "?"), "", "")
    acc = f"{100 * r['test_accuracy']:.1f} %"
    if r["method"] == "reference":
        acc += f" ({r['train_trials']} train / {r['test_trials']} test trials)"
        sec = f"{r['seconds_per_trial']:.2f} s/trial; {r['seconds_per_epoch_extrapolated']:.0f} s/epoch (extrapolated)"
    else:
        sec = f"{r['seconds_per_epoch']:.2f}"
    return (acc, sec, f"{r['peak_rss_mib']:.0f}")


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| hidden | method | threads | test accuracy | s per epoch | peak RSS (MiB) |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        acc, sec, mem = _cell(r)
        lines.append(f"| {r['hidden']} | {r['method']} | {r['threads']} | {acc} | {sec} | {mem} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, nargs="+", default=[100, 200, 400])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--epochs", type=int, default=1, help="training epochs of every column (not the reference)")
    parser.add_argument("--dt", type=float, default=1.0, help="time step of the BPTT and NEST's resolution (ms)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-3, help="Adam's learning rate (every column)")
    parser.add_argument("--surrogate-slope", type=float, default=10.0, help="BPTT's fast sigmoid slope (1/mV)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--eprop-gap", type=float, default=40.0, help="e-prop in NEST: silent ms after each trial (not reset)"
    )
    parser.add_argument(
        "--eprop-algorithm",
        choices=["event", "step"],
        default="event",
        help="e-prop in NEST: nestgrad's eprop_event_synapse (event, the fastest) or NEST's eprop_synapse (step)",
    )
    parser.add_argument("--reference-train", type=int, default=32, help="reference engine: training trials")
    parser.add_argument("--reference-test", type=int, default=32, help="reference engine: test trials")
    parser.add_argument("--json", type=pathlib.Path, help="write all results to this file")
    parser.add_argument("--worker", choices=METHODS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    for name in ("epochs", "batch_size", "reference_train", "reference_test"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} = {getattr(args, name)}: need >= 1")
    if any(h < 1 for h in args.hidden) or any(t < 1 for t in args.threads):
        parser.error("--hidden and --threads need integers >= 1")
    if not (math.isfinite(args.eprop_gap) and args.eprop_gap >= 0):
        parser.error(f"--eprop-gap = {args.eprop_gap} ms: need a finite number >= 0")
    if not (math.isfinite(args.dt) and args.dt > 0 and math.isfinite(args.lr) and args.lr > 0):
        parser.error(f"--dt = {args.dt} ms and --lr = {args.lr}: need finite numbers > 0")
    if args.worker:
        print(json.dumps(worker(args)))
        return
    results = []
    for hidden in args.hidden:
        for method in args.methods:
            # the reference engine is pure Python: one thread
            for threads in args.threads if method != "reference" else args.threads[:1]:
                r = spawn(args, method, hidden, threads)
                results.append(r)
                acc, sec, mem = _cell(r)
                print(f"hidden {hidden:4d}  {method:15s} {threads} thread(s): {acc}  {sec}  {mem}", flush=True)
    print()
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps({"arguments": vars(args), "results": results}, indent=2, default=str))


if __name__ == "__main__":
    main()

"""Build time, memory per synapse, and simulation and e-prop training time per biological second of the Billeh V1
column (nestgrad.networks.v1) at several sizes and thread counts, printed as a table and plotted.

Each case runs in a fresh process (so that peak memory is its own):

* layout: drawing the column with NumPy (positions, connectivity, LGN edges);
* build: nest.Create + nest.Connect of the plastic network (eprop_vector_synapse, Dale's law copies);
* memory: resident-set growth over the build, per synapse (recurrent + LGN + readout), and the process's peak;
* simulation: the static column (no plasticity, Billeh's delays) driven by the LGN with a grating task, seconds of
  wall-clock time per biological second;
* training: the same with e-prop (orientation task, Adam, Dale's law), seconds per biological second, with
  eprop_vector_synapse (step by step, gradient_algorithm "step") and with eprop_event_synapse (running products of
  the GLIF3 eligibility maps, gradient_algorithm "event");
* EventProp (a second fresh process, ``--algorithms ...,eventprop``): one batch of the same trials trained with
  V1EventpropLearner (forward and backward pass, Adam inside NEST's synapses; 0.1-ms grid), NEST's build from the
  batch's trials timed apart, Simulate split into forward / loss exchange / backward / flush, the read back of weights
  and Adam's state, connections (forward synapses and their reverse copies) and peak memory.

Every case counts the V1 spikes per biological second. ``--column eventprop`` (default) runs the static and e-prop
cases on the EventProp configuration's column (no Poisson background, which EventProp refuses; stronger LGN), so that
all cases see the same column and the same 200-ms trials; ``--column default`` gives them V1Config's column.

    python scaling_runs/bench_v1.py [--sizes 5000,20000,51978] [--threads 1,2] [--bio-ms 500]
        [--algorithms eprop,eventprop] [--column eventprop|default] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from process_memory import status_mb

# the task of every case: the orientation task through the LGN, trials of 200 ms that end with the response window
# (150-200 ms), so that an EventProp trial (which ends there) and a static or e-prop trial are the same 200 ms
TASK = {"orientation_difference_deg": 20.0, "post_delay_ms": 50.0}
TRIAL_MS = 200.0
EVENTPROP_CONFIG = pathlib.Path(__file__).resolve().parents[1] / "python/nestgrad/configs/v1_orientation_eventprop.toml"


def column_config(n: int, column: str) -> Any:
    """The column's settings: ``default`` (V1Config's: Poisson background 1000 Hz, weak LGN) or ``eventprop`` (the
    shipped EventProp configuration's ``[network.v1]``: no background, LGN x 3; pools of 30 from 5,000 neurons on, as
    its comment says for the issue's runs). EventProp always runs the latter (it refuses a background)."""
    from nestgrad.config import V1Config

    if column == "default":
        return V1Config(n_neurons=n)
    settings = dict(tomllib.loads(EVENTPROP_CONFIG.read_text())["network"]["v1"])
    settings |= {"n_neurons": n, "pool_size": 30 if n >= 5000 else settings["pool_size"]}
    return V1Config(**settings)


def _task(net: Any, bio_ms: float) -> Any:
    from nestgrad.config import V1TaskConfig
    from nestgrad.tasks.v1 import make_v1_task

    return make_v1_task("v1_orientation", V1TaskConfig(**TASK), 1, net.lgn, 1.0, max(1, round(bio_ms / TRIAL_MS)))


def run_case(n: int, threads: int, bio_ms: float, column: str = "default") -> dict:
    """One size and thread count, static column and e-prop, in this process."""
    import nest

    from nestgrad.config import OptimizerConfig
    from nestgrad.nest_engine import fresh_kernel
    from nestgrad.networks.v1 import V1Network

    nest.set_verbosity("M_ERROR")
    optimizer = OptimizerConfig(type="adam", eta=0.01, batch_size=1000, Wmin=-1e4, Wmax=1e4, sign_constrained=True)
    t0 = time.perf_counter()
    net = V1Network(column_config(n, column), optimizer, n_out=2, resolution=1.0)
    t_layout = time.perf_counter() - t0
    batch = _task(net, bio_ms).batch(0)
    weights = net.initial_weights(1)
    n_syn = net.layout.rec_src.size + net.layout.lgn_src.size + net.out_src.size
    out: dict = {"n": n, "threads": threads, "synapses": int(n_syn), "lgn_synapses": int(net.layout.lgn_src.size),
                 "layout_s": t_layout, "column": column, "bio_s": batch.steps / 1000.0}  # fmt: skip
    for key, plastic, synapse in (
        ("sim", False, None),
        ("train", True, "eprop_vector_synapse"),
        ("event", True, "eprop_event_synapse"),
    ):
        fresh_kernel(1.0, threads)
        if synapse:
            net.plastic_model = synapse  # gradient_algorithm "step" or "event"
        rss0 = status_mb("VmRSS")
        t0 = time.perf_counter()
        net.build(nest, weights, record_neurons=0, plastic=plastic)
        t_build = time.perf_counter() - t0
        rss1 = status_mb("VmRSS")
        recorder = nest.Create("spike_recorder")  # V1 spikes: the cost scales with them
        nest.Connect(net.neurons, recorder)
        net.load_segment(nest, [batch])
        nest.Simulate(net.lead_in_ms())
        before = int(recorder.n_events)
        t0 = time.perf_counter()
        nest.Simulate(float(batch.steps))
        per_bio_s = (time.perf_counter() - t0) / out["bio_s"]
        out[f"{key}_build_s"] = t_build
        out[f"{key}_bytes_per_synapse"] = (rss1 - rss0) * 2**20 / n_syn
        out[f"{key}_s_per_bio_s"] = per_bio_s
        out[f"{key}_spikes_per_bio_s"] = (int(recorder.n_events) - before) / out["bio_s"]
        # every connection NEST holds (devices too), the recorder's left out
        out[f"{key}_connections"] = int(nest.num_connections) - len(nest.GetConnections(target=recorder))
    out["peak_mb"] = status_mb("VmHWM")
    return out


@dataclass
class PhaseTimer:
    """Stands in for ``nest`` in ``EventpropNestLearner.simulate``: every ``Simulate`` is cut at the boundaries of
    the trial periods' phases (docs/eventprop_nest_design.md; EventpropSchedule in cpp_module/eventprop/
    eventprop_node.h: forward in steps [0, n_T), loss exchange and c messages up to n_B = n_T + 2 D + 4, backward in
    [n_B, n_B + n_T), then the flush and the margin) and the wall-clock time of each phase summed. Cutting a
    ``Simulate`` does not change what NEST computes; it adds one Simulate call's overhead (~ms) per cut."""

    nest: Any
    layout: Callable[[], Any]  # the built network's TrialLayout (known once the learner has built NEST)
    seconds: dict[str, float] = field(default_factory=dict)
    now: float = 0.0  # ms simulated so far in this kernel
    first_call: float = math.nan  # perf_counter() at the first Simulate (the end of the build)
    rss_at_first_call: float = math.nan

    def __getattr__(self, name: str) -> Any:
        return getattr(self.nest, name)

    def _cuts(self) -> list[tuple[float, str]]:
        lay = self.layout()
        h, n_t = lay.resolution, math.ceil(lay.T / lay.resolution - 1e-9)
        d = round(lay.delay_bound / h)
        n_b = n_t + 2 * d + 4
        cuts = [(lay.origin, "prepare")]  # the first step before trial 0: NEST's connection set-up, once
        for k in range(lay.n_trials):
            start = lay.origin + k * lay.period
            cuts += [(start + n_t * h, "forward"), (start + n_b * h, "exchange"),
                     (start + (n_b + n_t) * h, "backward"), (start + lay.period, "flush")]  # fmt: skip
        # the period after the last trial, in which the synapses apply the batch's step (once per block of batches)
        return cuts + [(lay.origin + (lay.n_trials + 1) * lay.period, "apply")]

    def Simulate(self, ms: float) -> None:  # noqa: N802 (NEST's name)
        if math.isnan(self.first_call):
            self.first_call, self.rss_at_first_call = time.perf_counter(), status_mb("VmRSS")
        h = self.layout().resolution
        end = self.now + ms
        for cut, phase in self._cuts():
            if cut <= self.now + h / 2:
                continue
            stop = min(cut, end)
            t0 = time.perf_counter()
            self.nest.Simulate(round((stop - self.now) / h) * h)
            self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - t0
            self.now = stop
            if stop >= end - h / 2:
                return


def run_eventprop_case(n: int, threads: int, bio_ms: float) -> dict:
    """EventProp training of one batch of the same trials (forward + backward pass, Adam inside NEST's synapses),
    in this process: NEST is built from the batch's trials (a fresh kernel per block of trials, as the Trainer does),
    so the build is timed apart from the simulation, which is split into its phases."""
    import nest

    from nestgrad.config import OptimizerConfig
    from nestgrad.nest_engine import fresh_kernel
    from nestgrad.networks.v1 import V1Network
    from nestgrad.networks.v1_eventprop import make_v1_eventprop_learner

    nest.set_verbosity("M_ERROR")
    # the shipped EventProp configuration's optimizer (one Adam step per batch)
    optimizer = OptimizerConfig(type="adam", eta=0.05, batch_size=1, Wmin=-1e4, Wmax=1e4, sign_constrained=True)
    t0 = time.perf_counter()
    net = V1Network(column_config(n, "eventprop"), optimizer, n_out=2, resolution=1.0)
    t_layout = time.perf_counter() - t0
    task = _task(net, bio_ms)
    batch = task.batch(0)
    learner = make_v1_eventprop_learner(net, task, 1.0)
    fresh_kernel(1.0, threads)  # the learner builds with the kernel's thread count
    learner.build(nest, learner.initial_weights(1), record_neurons=0)
    timer = PhaseTimer(nest, lambda: learner.built.layout)
    rss0 = status_mb("VmRSS")
    t0 = time.perf_counter()
    runs = learner.simulate(timer, [batch], 1.0)
    _, record, _ = next(runs)
    t_batch, peak_batch = time.perf_counter(), status_mb("VmHWM")
    for _ in runs:  # the period that applies Adam's step, then weights and Adam's state read back
        pass
    t_end = time.perf_counter()
    built = learner.built
    bio_s = batch.n_trials * learner.trial_duration / 1000.0
    simulate_s = sum(timer.seconds.values()) - timer.seconds.get("apply", 0.0)
    cnet = built.cnet
    out = {
        "n": n, "threads": threads, "layout_s": t_layout, "bio_s": bio_s, "trials": batch.n_trials,
        "resolution_ms": built.layout.resolution, "period_ms": built.layout.period,
        "build_s": timer.first_call - t0,
        "simulate_s": simulate_s,  # the batch's trial periods (the step's period is phase_s["apply"])
        "s_per_bio_s": simulate_s / bio_s,
        "phase_s": dict(timer.seconds),
        # reading the outputs and spike counts per batch, the raster, and the weights and Adam's state at the end
        "readback_s": (t_end - t0) - (timer.first_call - t0) - simulate_s - timer.seconds.get("apply", 0.0),
        "total_s": t_end - t0,
        "forward_edges": int(len(cnet.src)),
        "reverse_edges": int(np.isin(np.asarray(cnet.kind)[cnet.src], ("lif", "glif3")).sum()),
        "connections": int(nest.GetKernelStatus("num_connections")),
        "spikes_per_bio_s": record.hidden_spikes / bio_s,
        "bytes_per_connection": (timer.rss_at_first_call - rss0) * 2**20 / int(nest.GetKernelStatus("num_connections")),
        "peak_mb": status_mb("VmHWM"),
        "peak_mb_before_readback": peak_batch,  # (the read back holds every connection's values in Python)
        "batch_s": t_batch - t0,
    }  # fmt: skip
    return out


def _run_in_process(n: int, threads: int, kind: str, args: argparse.Namespace) -> dict:
    print(f"V1 column {n} neurons, {threads} thread(s), {kind} ...", flush=True)
    command = [sys.executable, __file__, "--case", f"{n},{threads},{kind}", "--bio-ms", str(args.bio_ms),
               "--column", args.column]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        print(proc.stdout[-2000:], proc.stderr[-2000:], file=sys.stderr)
        raise SystemExit(f"case {n} neurons, {threads} threads, {kind} failed")
    return json.loads(lines[-1][len("RESULT ") :])


def print_tables(rows: list[dict]) -> None:
    header = (
        f"{'neurons':>8} {'thr':>3} {'synapses':>11} {'layout s':>9} {'build s':>8} {'B/syn':>6} "
        f"{'sim s/bio-s':>11} {'train s/bio-s':>13} {'train/sim':>9} {'event s/bio-s':>13} {'event/sim':>9} "
        f"{'B/syn ev':>8} {'peak MB':>8} {'spikes/bio-s':>12}"
    )
    print(
        "\nBilleh V1 column, orientation task through the LGN, 1 ms steps; training: eprop_vector_synapse (step by "
        "step) and eprop_event_synapse (gradient_algorithm 'event'), Adam"
    )
    print(header)
    for r in (r for r in rows if "sim_s_per_bio_s" in r):
        print(
            f"{r['n']:>8} {r['threads']:>3} {r['synapses']:>11} {r['layout_s']:>9.1f} {r['train_build_s']:>8.1f} "
            f"{r['train_bytes_per_synapse']:>6.0f} {r['sim_s_per_bio_s']:>11.2f} {r['train_s_per_bio_s']:>13.2f} "
            f"{r['train_s_per_bio_s'] / r['sim_s_per_bio_s']:>9.1f} {r['event_s_per_bio_s']:>13.2f} "
            f"{r['event_s_per_bio_s'] / r['sim_s_per_bio_s']:>9.1f} {r['event_bytes_per_synapse']:>8.0f} "
            f"{r['peak_mb']:>8.0f} {r['sim_spikes_per_bio_s']:>12.0f}"
        )
    eventprop = [r for r in rows if "phase_s" in r]
    if not eventprop:
        return
    static = {(r["n"], r["threads"]): r for r in rows if "sim_s_per_bio_s" in r}
    print(
        "\nEventProp in NEST (eventprop_glif3_psc_ps, grid 0.1 ms, no background), one batch: build = a fresh kernel "
        "from the batch's trials; s/bio-s = Simulate (forward + backward + Adam); /sim: over the static column"
    )
    print(
        f"{'neurons':>8} {'thr':>3} {'connections':>11} {'build s':>8} {'s/bio-s':>8} {'/sim':>6} {'forward':>8} "
        f"{'backward':>8} {'other':>6} {'readback s':>10} {'B/conn':>6} {'peak MB':>8} {'spikes/bio-s':>12}"
    )
    for r in eventprop:
        ph = r["phase_s"]
        sim = static.get((r["n"], r["threads"]))
        ratio = f"{r['s_per_bio_s'] / sim['sim_s_per_bio_s']:>6.1f}" if sim else f"{'':>6}"
        other = r["simulate_s"] - ph.get("forward", 0.0) - ph.get("backward", 0.0)
        print(
            f"{r['n']:>8} {r['threads']:>3} {r['connections']:>11} {r['build_s']:>8.1f} {r['s_per_bio_s']:>8.2f} "
            f"{ratio} {ph.get('forward', 0.0) / r['bio_s']:>8.2f} {ph.get('backward', 0.0) / r['bio_s']:>8.2f} "
            f"{other / r['bio_s']:>6.2f} {r['readback_s']:>10.1f} {r['bytes_per_connection']:>6.0f} "
            f"{r['peak_mb']:>8.0f} {r['spikes_per_bio_s']:>12.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="5000,20000,51978")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--bio-ms", type=float, default=500.0, help="biological time simulated per measurement")
    parser.add_argument("--algorithms", default="eprop,eventprop", help="eprop (static + e-prop), eventprop")
    column_help = "static and e-prop column: V1Config's defaults or the EventProp configuration's"
    parser.add_argument("--column", choices=("default", "eventprop"), default="eventprop", help=column_help)
    parser.add_argument("--out", default="out/bench_v1")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # n,threads,kind: run one case and print JSON
    args = parser.parse_args()
    if args.case:
        n, threads, kind = args.case.split(",")
        if kind == "eventprop":
            result = run_eventprop_case(int(n), int(threads), args.bio_ms)
        else:
            result = run_case(int(n), int(threads), args.bio_ms, args.column)
        print("RESULT " + json.dumps(result), flush=True)
        return

    kinds = [k for k in args.algorithms.split(",") if k]
    unknown = set(kinds) - {"eprop", "eventprop"}
    if unknown:
        raise SystemExit(f"--algorithms: unknown {sorted(unknown)} (eprop, eventprop)")
    rows = []
    for n in [int(v) for v in args.sizes.split(",") if v]:
        for threads in [int(v) for v in args.threads.split(",") if v]:
            rows += [_run_in_process(n, threads, kind, args) for kind in kinds]
    print_tables(rows)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_v1.json").write_text(json.dumps(rows, indent=2))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for threads in sorted({r["threads"] for r in rows}):
        sel = [r for r in rows if r["threads"] == threads and "sim_s_per_bio_s" in r]
        ep = [r for r in rows if r["threads"] == threads and "phase_s" in r]
        if ep:
            axes[1].plot([r["n"] for r in ep], [r["s_per_bio_s"] for r in ep], "^-", label=f"EventProp, {threads} thr")
        n = [r["n"] for r in sel]
        axes[0].plot(n, [r["train_build_s"] for r in sel], "o-", label=f"{threads} thread(s)")
        axes[1].plot(n, [r["sim_s_per_bio_s"] for r in sel], "o--", label=f"static, {threads} thr")
        axes[1].plot(n, [r["train_s_per_bio_s"] for r in sel], "o-", label=f"e-prop step, {threads} thr")
        axes[1].plot(n, [r["event_s_per_bio_s"] for r in sel], "s-", label=f"e-prop event, {threads} thr")
        axes[2].plot(n, [r["train_bytes_per_synapse"] for r in sel], "o-", label=f"{threads} thread(s)")
    for ax, title in zip(axes, ("build time (s)", "wall-clock s per biological s", "bytes per synapse"), strict=True):
        ax.set_xlabel("neurons")
        ax.set_title(title)
        ax.set_xscale("log")
        ax.legend()
    axes[1].set_yscale("log")
    fig.tight_layout()
    fig.savefig(out / "bench_v1.png", dpi=110)
    print(f"written: {out / 'bench_v1.json'}, {out / 'bench_v1.png'}")


if __name__ == "__main__":
    main()

"""Event-driven e-prop (issue #7): time per training iteration and memory of nestgrad's ``eprop_event_synapse`` vs
NEST's ``eprop_synapse`` vs the static twin, on the same network, side by side in one run.

Network: the classic e-prop network on the sine-wave task (100 Poisson inputs, recurrent ``eprop_iaf_psc_exp``
neurons, one readout, 1,000 steps of 1 ms per iteration, gradient descent), dense at 100, 400 and 1,000 recurrent
neurons (inputs at 50 Hz), and sparse (in-degree 100) at 10,000 neurons at two activity levels (input rate and input
weights set so that the recurrent neurons fire at about 4 and 18 Hz). All of these use the builder's cutoff
(eprop_isi_trace_cutoff = 100 ms, as NEST's examples); an activity scan (``--scan``; by default 1,000 and 2,000 dense
neurons with inputs at 50 and 2 Hz) runs without cutoff (NEST's default), where eprop_synapse's cost is O(synapses x
steps) whatever the activity. Without a cutoff a window is computed only at the presynaptic neuron's next spike, and a
neuron that never fired opens none, so in the scan every neuron fires once in the warm-up (spread over 200 ms) and
once after the last iteration (closing every window), and the time of k iterations plus that pulse minus the time of
the warm-up plus the pulse alone, per iteration, is reported: the whole work of the iterations' windows, as in a long
run, for every variant.
The three variants differ only in the synapses into the recurrent neurons:

* ``event``: nestgrad's eprop_event_synapse (running sums, O(1) per spike);
* ``step``:  NEST's eprop_synapse (loop over every step of each inter-spike window);
* ``static``: static_synapse everywhere (no learning): the cost of the simulation alone.

Each case runs in its own process (clean memory figures): time per iteration is the median over ``--iterations``
iterations after one warm-up iteration; memory per synapse is the growth of the resident set from creating the
connections, divided by their number; the history is the further growth during the simulation.

With ``--torch`` it also times ``torch_bptt_sine.py`` (a PyTorch BPTT of the same dense network, with the same input
rate, on the same CPU; PyTorch is an optional, benchmark-only dependency) for the dense networks and the scan.

    python scaling_runs/bench_event_synapse.py --torch               # everything (about 45 minutes)
    python scaling_runs/bench_event_synapse.py --dense 100,400 --sparse ""        # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

from process_memory import status_kb

HERE = pathlib.Path(__file__).resolve().parent


# -- worker: one case in this process -------------------------------------------------------------------------------
def run_case(case: dict) -> dict:
    import nest
    import numpy as np
    from iteration_timing import time_iterations

    from nestgrad.config import NetworkConfig, OptimizerConfig, TaskConfig
    from nestgrad.nest_engine import fresh_kernel
    from nestgrad.networks.eprop_classic import EpropNetwork, initial_weights
    from nestgrad.tasks import make_task

    n_rec, indegree, variant = case["n_rec"], case.get("indegree"), case["variant"]
    fresh_kernel(1.0, case["threads"])
    task = make_task(TaskConfig(name="sine", input_rate=case.get("input_rate", 50.0)), seed=1)
    neuron_params = {"eprop_isi_trace_cutoff": case["cutoff"]} if "cutoff" in case else {}
    net = EpropNetwork(
        NetworkConfig(
            neuron_model=case.get("neuron", "eprop_iaf_psc_exp"),
            n_rec=n_rec,
            gradient_algorithm="event" if variant == "event" else "step",
            neuron_params=neuron_params,
        ),
        OptimizerConfig(**({"eta": case["eta"]} if "eta" in case else {})),
        task.n_in,
        task.n_out,
        1.0,
    )
    w = initial_weights(task.n_in, n_rec, task.n_out, 1)
    w["in_rec"] *= case.get("in_scale", 1.0)
    w["rec_rec"] *= case.get("rec_scale", 1.0)
    masks = None
    if indegree:
        rng = np.random.default_rng(7)
        mask = np.zeros((n_rec, n_rec), bool)
        for j in range(n_rec):
            pre = rng.choice(n_rec - 1, size=indegree, replace=False)
            mask[j, pre + (pre >= j)] = True  # no autapses
        masks = {"in_rec": np.ones((n_rec, task.n_in), bool), "rec_rec": mask, "rec_out": np.ones((1, n_rec), bool)}
        w["rec_rec"] *= np.sqrt(n_rec / indegree)  # same input variance as the dense network
    rss0 = status_kb("VmRSS") * 1024
    t0 = time.perf_counter()
    net.build(nest, w, record_neurons=n_rec, plastic=variant != "static", masks=masks)
    build_s = time.perf_counter() - t0
    n_syn = nest.num_connections
    rss_built = status_kb("VmRSS") * 1024

    iterations = case["iterations"]
    batches = [task.batch(k) for k in range(iterations + 1)]
    timing = _time_with_closed_windows if case.get("close") else time_iterations
    times = timing(nest, net, batches)
    rss_end = status_kb("VmRSS") * 1024
    # the rate of the timed iterations (not the pulses of _time_with_closed_windows)
    spike_times = np.asarray(net.built.devices.spike_recorder.get("events", "times"))
    t_begin = net.lead_in_ms() + batches[0].steps
    sim_ms = max(iterations, 1) * batches[0].steps
    spikes = np.count_nonzero((spike_times > t_begin) & (spike_times <= t_begin + sim_ms))
    return {
        "time_per_iteration_s": statistics.median(times),
        "build_s": build_s,
        "synapses": int(n_syn),
        "bytes_per_synapse": (rss_built - rss0) / max(n_syn, 1),
        "history_bytes_per_neuron": (rss_end - rss_built) / n_rec,
        "rate_hz": spikes / n_rec / (sim_ms / 1000.0),
    }


def _time_with_closed_windows(nest, net, batches) -> list[float]:
    """Seconds from the start of the warm-up iteration to the end of the last iteration, plus a pulse that makes every
    input and recurrent neuron spike right after it, so that every open window is computed.

    Without a cutoff, a synapse's window is computed only at its presynaptic neuron's next spike, so at low rates a
    plain timing leaves most of the work for later, and a neuron that has not fired yet opens no window at all (both
    make NEST's rule look cheaper as activity falls than it is in a long training run). The driver runs each case
    with k iterations and with none after the warm-up; the difference of the two totals, divided by k, is the whole
    work of k iterations' windows, for every variant alike.
    """
    import numpy as np

    nodes = net._nodes
    lead, steps = net.lead_in_ms(), batches[0].steps
    t_close = lead + sum(b.steps for b in batches) + 1.0
    # a parrot neuron repeats any spike; a recurrent neuron gets 1.5x the current step that lifts it from rest to
    # threshold in one step, and no second spike after its refractory period
    q = nodes["rec"][0].get(["V_th", "E_L", "C_m", "tau_m", "tau_syn_ex"])
    h, tau_m, tau_s = 1.0, q["tau_m"], q["tau_syn_ex"]
    p21 = tau_s * tau_m / (q["C_m"] * (tau_m - tau_s)) * (np.exp(-h / tau_m) - np.exp(-h / tau_s))
    kick = 1.5 * (q["V_th"] - q["E_L"]) / p21
    for group, weight in (("in", 1.0), ("rec", kick)):
        # Every neuron spikes once in the warm-up, 600-400 ms before its end (spread out; the short burst they set
        # off in the recurrent network has died away before the timed iterations begin), which opens a window on
        # all its synapses as in a long training run, where every neuron that fires at all has fired before; and all
        # spike at the end, which closes every window.
        n = len(nodes[group])
        t_open = lead + steps - 600.0 + np.floor(np.arange(n) * 199.0 / n)
        pulses = nest.Create("spike_generator", n)
        pulses.set([{"spike_times": [float(t), t_close]} for t in t_open])
        nest.Connect(pulses, nodes[group], "one_to_one", {"synapse_model": "static_synapse", "weight": weight})
    net.load_segment(nest, batches)
    nest.Prepare()
    t0 = time.perf_counter()
    nest.Run(net.lead_in_ms() + batches[0].steps)  # warm-up iteration
    for b in batches[1:]:
        nest.Run(float(b.steps))
    nest.Run(10.0)  # the closing pulse
    total = time.perf_counter() - t0
    nest.Cleanup()
    return [total]


# -- driver ---------------------------------------------------------------------------------------------------------
def _run_config(cfg: dict, args: argparse.Namespace) -> tuple[dict, float | None]:
    """All variants of one network, each run args.repeats times in turn (static, event, step, PyTorch, static, ...)
    so that a slow phase of a shared machine falls on every variant alike; the fastest run of each is kept (as
    timeit does: the least disturbed one). Scan cases (close) subtract the fastest run without timed iterations."""
    variants = [v for v in ("static", "event", "step") if v != "step" or cfg["n_rec"] <= args.no_step_above]
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    base_s: dict[str, list[float]] = {v: [] for v in variants}
    torch_runs: list[float] = []
    for _ in range(args.repeats):
        for variant in variants:
            case = cfg | {"variant": variant, "threads": args.threads, "iterations": args.iterations}
            case["neuron"] = args.neuron
            if args.eta is not None:
                case["eta"] = args.eta
            runs[variant].append(spawn(case))
            if cfg.get("close"):
                base_s[variant].append(spawn(case | {"iterations": 0})["time_per_iteration_s"])
        if args.torch and "indegree" not in cfg:
            # dense networks and the activity scan (PyTorch's dense BPTT costs the same at any rate)
            t = spawn_torch(cfg["n_rec"], args.threads, args.iterations, cfg.get("input_rate", 50.0))
            if t is not None:
                torch_runs.append(t)
    res = {}
    for variant in variants:
        best = min(runs[variant], key=lambda r: r["time_per_iteration_s"])
        # every run's time as the worker reported it (scan cases: totals of the runs with and without iterations)
        best = best | {"runs_s": [r["time_per_iteration_s"] for r in runs[variant]]}
        if cfg.get("close"):
            # the warm-up and the closing pulse alone, subtracted: k iterations' windows, per iteration
            total = best["time_per_iteration_s"] - min(base_s[variant])
            best = best | {"time_per_iteration_s": total / args.iterations, "base_runs_s": base_s[variant]}
        res[variant] = best
    return res, (min(torch_runs) if torch_runs else None)


def _seconds(row: dict, variant: str) -> float | None:
    """Seconds per iteration of one variant of a result row (None if the run did not time it)."""
    if variant == "torch":
        return row["torch_s"]
    res = row["results"].get(variant)
    return res["time_per_iteration_s"] if res else None


def _scan_groups(rows: list[dict]) -> dict[int, list[dict]]:
    """Activity-scan rows by network size, from the highest input rate to the lowest."""
    scans: dict[int, list[dict]] = {}
    for row in rows:
        if row["config"].get("close"):
            scans.setdefault(row["config"]["n_rec"], []).append(row)
    return {n: sorted(g, key=lambda r: -r["config"]["input_rate"]) for n, g in sorted(scans.items())}


RATIOS = (("step/event", "step"), ("PyTorch/event", "torch"))


def _scan_seconds(group: list[dict], variant: str) -> list[float] | None:
    """Seconds per iteration of one variant along a scan (None if any run of the scan did not time it)."""
    values = [_seconds(r, variant) for r in group]
    return None if None in values else values


def _scan_ratios(group: list[dict], variant: str) -> list[float] | None:
    """Time of one variant over the event kernel's along a scan (None if the variant was not timed)."""
    values = _scan_seconds(group, variant)
    return None if values is None else [v / _seconds(r, "event") for v, r in zip(values, group, strict=True)]


def target_report(rows: list[dict]) -> list[str]:
    """The issue's targets as this run measured them (only the cases it ran): event/static and PyTorch/event at 1,000
    dense neurons with the builder's cutoff, and per network size of the activity scan the ratios from the highest
    input rate to the lowest."""
    lines = []
    for row in rows:
        cfg = row["config"]
        if cfg["n_rec"] != 1000 or cfg.get("close") or "indegree" in cfg:
            continue
        event = _seconds(row, "event")
        ratio = event / _seconds(row, "static")
        lines.append(f"{cfg['label']}: event/static {ratio:.2f} (at most 3: {'met' if ratio <= 3.0 else 'NOT met'})")
        if row["torch_s"]:
            ratio = row["torch_s"] / event
            lines.append(f"{cfg['label']}: PyTorch/event {ratio:.2f} (above 1: {'met' if ratio > 1.0 else 'NOT met'})")
    for n_rec, group in _scan_groups(rows).items():
        if len(group) < 2:
            continue
        rates = " / ".join(f"{r['config']['input_rate']:g}" for r in group)
        for name, variant in RATIOS:
            ratios = _scan_ratios(group, variant)
            if ratios is None:
                continue
            grows = ratios[-1] > ratios[0]
            lines.append(
                f"scan {n_rec} neurons, inputs {rates} Hz: {name} "
                + " -> ".join(f"{x:.1f}" for x in ratios)
                + (" (higher at the lowest rate than at the highest)" if grows else " (NOT growing as the rate falls)")
            )
    return lines


def plot_scan(rows: list[dict], path: str) -> None:
    """The activity scan as a figure: seconds per iteration of every variant (left) and the event kernel's advantage
    (right) against the input rate, one marker per network size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    scans = _scan_groups(rows)
    if not scans:
        raise SystemExit("no activity-scan rows to plot (run with --scan)")
    fig, (ax_t, ax_r) = plt.subplots(1, 2, figsize=(14, 4.4))
    names = {"static": "static twin", "event": "eprop_event_synapse", "step": "eprop_synapse", "torch": "PyTorch BPTT"}
    colors = {"static": "0.55", "event": "C0", "step": "C3", "torch": "C2"}
    for k, (n_rec, group) in enumerate(scans.items()):
        marker, line = "osd^"[k % 4], ("-", "--", ":", "-.")[k % 4]
        rates = [r["config"]["input_rate"] for r in group]
        for variant, name in names.items():
            values = _scan_seconds(group, variant)
            if values is not None:
                ax_t.plot(rates, values, line, marker=marker, color=colors[variant], label=f"{name}, {n_rec}")
        for name, variant in RATIOS:
            ratios = _scan_ratios(group, variant)
            if ratios is not None:
                ax_r.plot(rates, ratios, line, marker=marker, color=colors[variant], label=f"{name}, {n_rec}")
    ax_t.set(xscale="log", yscale="log", xlabel="input rate (Hz)", ylabel="s per training iteration")
    ax_t.set_title("time per iteration (no cutoff, 1 thread)")
    ax_r.set(xscale="log", yscale="log", xlabel="input rate (Hz)", ylabel="time ratio (other / event)")
    ax_r.set_title("advantage of the event kernel")
    all_rates = sorted({r["config"]["input_rate"] for group in scans.values() for r in group})
    for ax in (ax_t, ax_r):
        ax.set_xticks(all_rates)
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(
            fontsize=7,
            title="variant, recurrent neurons",
            title_fontsize=7,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
        )
    ax_r.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax_r.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax_r.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def spawn(case: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(case)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"case {case} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def spawn_torch(n_rec: int, threads: int, iterations: int, input_rate: float = 50.0) -> float | None:
    proc = subprocess.run(
        [
            sys.executable,
            str(HERE / "torch_bptt_sine.py"),
            "--n-rec",
            str(n_rec),
            "--input-rate",
            str(input_rate),
            "--threads",
            str(threads),
            "--iterations",
            str(iterations),
            "--json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        print(f"  (PyTorch BPTT not run: {proc.stderr.strip().splitlines()[-1] if proc.stderr else 'failed'})")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])["time_per_iteration_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--dense",
        default="100,400,1000",
        help="dense networks: size or size@input_rate_Hz (default input rate 50 Hz), comma-separated",
    )
    parser.add_argument(
        "--scan",
        default="1000@50,1000@2,2000@50,2000@2",
        help="activity scan without cutoff (NEST's default, windows run to the next spike), amortised over every "
        "window of the timed iterations (all neurons are made to spike before and after them): size@input_rate_Hz",
    )
    parser.add_argument("--sparse-n", type=int, default=10000)
    parser.add_argument("--sparse-indegree", type=int, default=100)
    parser.add_argument(
        "--sparse",
        default="10:1.5,20:2.0",
        help="sparse runs as input_rate_Hz:input_weight_factor, comma-separated (10:1.5 gives ~4 Hz, 20:2.0 ~18 Hz)",
    )
    parser.add_argument(
        "--neuron",
        default="eprop_iaf_psc_exp",
        help="recurrent neuron model (e.g. eprop_iaf_psc_exp_adapt_nestml: running products; 'step' then uses the "
        "neuron's eprop_synapse_model)",
    )
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="run every case this many times, the variants interleaved, and report the fastest (for shared machines)",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--eta",
        type=float,
        help="learning rate of the e-prop runs (default: OptimizerConfig's); 0 keeps the weights, so the network fires "
        "as its static twin and event/static is the cost of the learning rule alone on the same spikes",
    )
    parser.add_argument("--no-step-above", type=int, default=10**9, help="skip eprop_synapse above this many neurons")
    parser.add_argument("--torch", action="store_true", help="also time the PyTorch BPTT of the dense networks")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--plot", help="also draw the activity scan to this image file (e.g. scan.png)")
    parser.add_argument(
        "--replot",
        nargs="+",
        metavar="JSON",
        help="run nothing: read the rows of earlier runs (--json files), print their targets and draw --plot",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_case(json.loads(args.worker))))
        return
    if args.replot:
        if not args.plot:
            parser.error("--replot needs --plot FILE")
        rows = [row for f in args.replot for row in json.loads(pathlib.Path(f).read_text())]
        for line in target_report(rows):
            print(line)
        plot_scan(rows, args.plot)
        return

    configs = []
    for item in filter(None, args.dense.split(",")):
        n, _, rate = item.partition("@")
        cfg = {"n_rec": int(n), "label": f"dense {int(n)}" + (f" in{rate}Hz" if rate else "")}
        if rate:
            cfg["input_rate"] = float(rate)
        configs.append(cfg)
    for item in filter(None, args.scan.split(",")):
        n, _, rate = item.partition("@")
        configs.append(
            {
                "n_rec": int(n),
                "input_rate": float(rate),
                "cutoff": 1e9,
                "close": True,
                "label": f"dense {n} in{rate}Hz nocut",
            }
        )
    for item in filter(None, args.sparse.split(",")):
        rate, scale = (float(x) for x in item.split(":"))
        configs.append(
            {
                "n_rec": args.sparse_n,
                "indegree": args.sparse_indegree,
                "in_scale": scale,
                "input_rate": rate,
                "label": f"sparse in{rate:g}Hz",
            }
        )
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1 (got {args.repeats})")
    rows = []
    print(
        f"sine task, {args.neuron}, 1000 steps/iteration, {args.threads} thread(s), median of "
        f"{args.iterations} iterations; each case in a fresh process"
        + (f"; best of {args.repeats} runs, variants interleaved" if args.repeats > 1 else ""),
        flush=True,
    )
    print(
        "columns: recurrent rate (e-prop run), seconds per iteration, ratios, bytes per synapse from the resident set"
    )
    header = (
        f"{'network':24s} {'synapses':>10s} {'rate Hz':>8s} {'static s':>9s} {'event s':>9s} {'step s':>9s} "
        f"{'event/static':>12s} {'step/event':>10s} {'B/syn ev':>9s} {'B/syn step':>10s} {'B/syn st':>9s}"
        + (f" {'torch s':>8s} {'torch/event':>11s}" if args.torch else "")
    )
    print(header)
    for cfg in configs:
        res, torch_s = _run_config(cfg, args)
        ev, st = res["event"], res["static"]
        step = res.get("step")
        line = (
            f"{cfg['label']:24s} {ev['synapses']:10d} {ev['rate_hz']:8.1f} {st['time_per_iteration_s']:9.3f} "
            f"{ev['time_per_iteration_s']:9.3f} {step['time_per_iteration_s'] if step else float('nan'):9.3f} "
            f"{ev['time_per_iteration_s'] / st['time_per_iteration_s']:12.2f} "
            f"{(step['time_per_iteration_s'] / ev['time_per_iteration_s']) if step else float('nan'):10.1f} "
            f"{ev['bytes_per_synapse']:9.0f} {step['bytes_per_synapse'] if step else float('nan'):10.0f} "
            f"{st['bytes_per_synapse']:9.0f}"
        )
        if args.torch:
            line += f" {torch_s if torch_s else float('nan'):8.3f}"
            line += f" {(torch_s / ev['time_per_iteration_s']) if torch_s else float('nan'):11.2f}"
        print(line, flush=True)
        rows.append({"config": cfg, "results": res, "torch_s": torch_s})
    print(
        "\nTargets (issue #7): event/static <= 3 at 1,000 dense neurons; event faster than the PyTorch BPTT at 1,000; "
        "an advantage (step/event, torch/event in the scan) growing as the rate falls."
    )
    for line in target_report(rows):
        print("  " + line)
    print(
        "History growth per neuron during the run (bytes): "
        + ", ".join(
            f"{r['config']['label']}: event {r['results']['event']['history_bytes_per_neuron']:.0f}"
            + (f", step {r['results']['step']['history_bytes_per_neuron']:.0f}" if "step" in r["results"] else "")
            for r in rows
        )
    )
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(rows, indent=1))
    if args.plot and _scan_groups(rows):
        plot_scan(rows, args.plot)
    os.sys.stdout.flush()


if __name__ == "__main__":
    main()

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
  the GLIF3 eligibility maps, gradient_algorithm "event").

    python scaling_runs/bench_v1.py [--sizes 5000,20000,51978] [--threads 1,2] [--bio-ms 500] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import time


def _status_mb(field: str) -> float:
    """A memory field of /proc/self/status (VmRSS: resident now, VmHWM: peak resident) in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def run_case(n: int, threads: int, bio_ms: float) -> dict:
    """One size and thread count, in this process."""
    import nest

    from nestgrad.config import OptimizerConfig, V1Config, V1TaskConfig
    from nestgrad.nest_engine import fresh_kernel
    from nestgrad.networks.v1 import V1Network
    from nestgrad.tasks.v1 import make_v1_task

    nest.set_verbosity("M_ERROR")
    optimizer = OptimizerConfig(type="adam", eta=0.01, batch_size=1000, Wmin=-1e4, Wmax=1e4, sign_constrained=True)
    t0 = time.perf_counter()
    net = V1Network(V1Config(n_neurons=n), optimizer, n_out=2, resolution=1.0)
    t_layout = time.perf_counter() - t0
    task_config = V1TaskConfig(orientation_difference_deg=20.0, post_delay_ms=100.0)  # 250 ms trials
    task = make_v1_task("v1_orientation", task_config, 1, net.lgn, 1.0, max(1, int(round(bio_ms / 250.0))))
    batch = task.batch(0)
    weights = net.initial_weights(1)
    n_syn = net.layout.rec_src.size + net.layout.lgn_src.size + net.out_src.size
    out: dict = {"n": n, "threads": threads, "synapses": int(n_syn), "layout_s": t_layout}
    for key, plastic, synapse in (
        ("sim", False, None),
        ("train", True, "eprop_vector_synapse"),
        ("event", True, "eprop_event_synapse"),
    ):
        fresh_kernel(1.0, threads)
        if synapse:
            net.plastic_model = synapse  # gradient_algorithm "step" or "event"
        rss0 = _status_mb("VmRSS")
        t0 = time.perf_counter()
        net.build(nest, weights, record_neurons=0, plastic=plastic)
        t_build = time.perf_counter() - t0
        rss1 = _status_mb("VmRSS")
        net.load_segment(nest, [batch])
        nest.Simulate(net.lead_in_ms())
        t0 = time.perf_counter()
        nest.Simulate(float(batch.steps))
        per_bio_s = (time.perf_counter() - t0) / (batch.steps / 1000.0)
        out[f"{key}_build_s"] = t_build
        out[f"{key}_bytes_per_synapse"] = (rss1 - rss0) * 2**20 / n_syn
        out[f"{key}_s_per_bio_s"] = per_bio_s
    out["peak_mb"] = _status_mb("VmHWM")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="5000,20000,51978")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--bio-ms", type=float, default=500.0, help="biological time simulated per measurement")
    parser.add_argument("--out", default="out/bench_v1")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # n,threads: run one case and print JSON
    args = parser.parse_args()
    if args.case:
        n, threads = (int(v) for v in args.case.split(","))
        print("RESULT " + json.dumps(run_case(n, threads, args.bio_ms)), flush=True)
        return

    rows = []
    for n in [int(v) for v in args.sizes.split(",") if v]:
        for threads in [int(v) for v in args.threads.split(",") if v]:
            print(f"V1 column {n} neurons, {threads} thread(s) ...", flush=True)
            proc = subprocess.run(
                [sys.executable, __file__, "--case", f"{n},{threads}", "--bio-ms", str(args.bio_ms)],
                capture_output=True,
                text=True,
            )
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode != 0 or not lines:
                print(proc.stdout[-2000:], proc.stderr[-2000:], file=sys.stderr)
                raise SystemExit(f"case {n} neurons, {threads} threads failed")
            rows.append(json.loads(lines[-1][len("RESULT ") :]))

    header = (
        f"{'neurons':>8} {'thr':>3} {'synapses':>11} {'layout s':>9} {'build s':>8} {'B/syn':>6} "
        f"{'sim s/bio-s':>11} {'train s/bio-s':>13} {'train/sim':>9} {'event s/bio-s':>13} {'event/sim':>9} "
        f"{'B/syn ev':>8} {'peak MB':>8}"
    )
    print(
        "\nBilleh V1 column, orientation task through the LGN, 1 ms steps; training: eprop_vector_synapse (step by "
        "step) and eprop_event_synapse (gradient_algorithm 'event'), Adam"
    )
    print(header)
    for r in rows:
        print(
            f"{r['n']:>8} {r['threads']:>3} {r['synapses']:>11} {r['layout_s']:>9.1f} {r['train_build_s']:>8.1f} "
            f"{r['train_bytes_per_synapse']:>6.0f} {r['sim_s_per_bio_s']:>11.2f} {r['train_s_per_bio_s']:>13.2f} "
            f"{r['train_s_per_bio_s'] / r['sim_s_per_bio_s']:>9.1f} {r['event_s_per_bio_s']:>13.2f} "
            f"{r['event_s_per_bio_s'] / r['sim_s_per_bio_s']:>9.1f} {r['event_bytes_per_synapse']:>8.0f} "
            f"{r['peak_mb']:>8.0f}"
        )
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_v1.json").write_text(json.dumps(rows, indent=2))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for threads in sorted({r["threads"] for r in rows}):
        sel = [r for r in rows if r["threads"] == threads]
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

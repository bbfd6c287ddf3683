"""Local scaling harness: runs the same job matrix as the SLURM templates on this machine (ranks x threads, at most
the cores there are) and writes a CSV and plots.

    python scaling_runs/run_scaling.py [--scales 0.05 0.1] [--configs 1x1 1x2 2x1] [--t-sim 1000] [--out DIR]
    python scaling_runs/run_scaling.py --weak           # weak scaling: scale grows with the number of ranks

Each job is ``microcircuit_job.py`` (static microcircuit) in a fresh process; with R > 1 ranks it runs under
mpirun from the MPI environment (.venv-mpi, `make mpi`). Columns: build, simulate and time per biological second,
memory per rank. The plasticity overhead of e-prop training is measured by scaling_runs/bench_plasticity.py.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import pathlib
import subprocess
import sys

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
JOB = REPO / "scaling_runs" / "microcircuit_job.py"
MPI_PYTHON = REPO / ".venv-mpi" / "bin" / "python"


def mpirun_prefix(ranks: int) -> list[str]:
    return ["mpirun", "-np", str(ranks), "--oversubscribe", "--bind-to", "none", "--allow-run-as-root"]


def run_job(
    scale: float, ranks: int, threads: int, t_sim: float, k_scale: float | None = None, extra: tuple[str, ...] = ()
) -> dict:
    """Run microcircuit_job.py in a fresh process (under mpirun for ranks > 1) and return its JSON report."""
    args = [str(JOB), "--scale", str(scale), "--threads", str(threads), "--t-sim", str(t_sim), *extra]
    if k_scale is not None:
        args += ["--k-scale", str(k_scale)]
    if ranks > 1:
        if not MPI_PYTHON.exists():
            raise SystemExit(f"{ranks} ranks need NEST with MPI: run `make mpi` first ({MPI_PYTHON} is missing)")
        cmd = mpirun_prefix(ranks) + [str(MPI_PYTHON), *args]
    else:
        cmd = [sys.executable, *args]
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        raise SystemExit(f"job failed: {' '.join(cmd)}\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return json.loads(lines[-1])


def plot(rows: list[dict], path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"s={r['scale']}\n{r['ranks']}x{r['threads']}" for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    build = np.array([r["build_s"] for r in rows])
    update = np.array([r.get("weight_update_s_per_bio_s", 0.0) for r in rows])
    simulate = np.array([r["s_per_bio_s"] for r in rows]) - update
    axes[0].bar(labels, build, label="build")
    axes[0].bar(labels, simulate, bottom=build, label="simulate (per biological second)")
    if update.any():
        axes[0].bar(labels, update, bottom=build + simulate, label="weight updates (per biological second)")
    axes[0].set_ylabel("wall-clock s")
    axes[0].legend(fontsize=8)
    axes[0].set_title("time (ranks x threads)")
    axes[1].bar(labels, [max(r["max_rss_mb_per_rank"]) for r in rows], color="#e04b40")
    axes[1].set_ylabel("peak memory per rank (MB)")
    axes[1].set_title("memory")
    for ax in axes:
        ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scales", type=float, nargs="+", default=[0.05, 0.1])
    ap.add_argument("--configs", nargs="+", default=["1x1", "1x2", "2x1"], help="RANKSxTHREADS")
    ap.add_argument("--t-sim", type=float, default=1000.0)
    ap.add_argument("--weak", action="store_true", help="weak scaling: scale per rank fixed (first of --scales)")
    ap.add_argument(
        "--eprop",
        action="store_true",
        help="the e-prop microcircuit; each job also runs its static "
        "twin, and the difference is reported as the weight-update phase",
    )
    ap.add_argument("--out", default="out/scaling")
    args = ap.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    configs = [tuple(int(x) for x in c.split("x")) for c in args.configs]
    if args.weak:
        base = args.scales[0]
        jobs = [(base * r, r, t, base * r) for r, t in configs]
    else:
        jobs = [(s, r, t, None) for s in args.scales for r, t in configs]
    for scale, ranks, threads, k in jobs:
        if args.eprop:
            row = run_job(scale, ranks, threads, args.t_sim, k, extra=("--eprop",))
            twin = run_job(scale, ranks, threads, args.t_sim, k, extra=("--eprop", "--static-twin"))
            row["static_twin_s_per_bio_s"] = twin["s_per_bio_s"]
            row["weight_update_s_per_bio_s"] = row["s_per_bio_s"] - twin["s_per_bio_s"]
        else:
            row = run_job(scale, ranks, threads, args.t_sim, k)
        rows.append(row)
        print(
            f"scale {scale:<6} {ranks} rank(s) x {threads} thread(s): build {row['build_s']:.1f} s, "
            f"{row['s_per_bio_s']:.2f} s per biological s, {max(row['max_rss_mb_per_rank']):.0f} MB per rank",
            flush=True,
        )
    name = ("weak" if args.weak else "strong") + ("_eprop" if args.eprop else "")
    with open(out / f"{name}_scaling.csv", "w", newline="") as f:
        keys = [
            "model",
            "scale",
            "k_scale",
            "ranks",
            "threads",
            "virtual_processes",
            "neurons",
            "synapses",
            "build_s",
            "simulate_s",
            "s_per_bio_s",
            "static_twin_s_per_bio_s",
            "weight_update_s_per_bio_s",
            "max_rss_mb_per_rank",
        ]
        w = csv.DictWriter(f, keys, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r | {"max_rss_mb_per_rank": max(r["max_rss_mb_per_rank"])})
    plot(rows, out / f"{name}_scaling.png")
    if args.weak and len(rows) >= 2:
        eff = rows[0]["s_per_bio_s"] / rows[-1]["s_per_bio_s"]
        print(f"weak-scaling efficiency from {rows[0]['ranks']} to {rows[-1]['ranks']} rank(s): {eff:.2f}")
    print(f"written: {out / f'{name}_scaling.csv'}, {out / f'{name}_scaling.png'}")


if __name__ == "__main__":
    main()

"""CPU cost of the DVS-style task's input (docs/dvs_glyphs.md): seconds per batch of ``DvsGlyphsTask.batch`` (the
events of 12 trials and their raster) and of making the task (loading and upsampling the glyphs).

CPU time (``time.process_time``: all threads of this process), the median over ``--batches`` training batches, so
that other jobs on a shared machine inflate it as little as possible. It measures the ``nestgrad`` it imports, so the
same script measures an older checkout through ``PYTHONPATH=<old checkout>/python``:

    python scaling_runs/dvs_input_cost.py --batches 20 --json out/dvs_input_cost.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import statistics
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
CONFIG = HERE.parent / "python/nestgrad/configs/dvs_glyphs_eprop.toml"


def _task_seconds(pool: int) -> float:
    """CPU seconds of making the task in a fresh interpreter (imports included: what a training process pays)."""
    code = (
        "import time; t = time.process_time()\n"
        "from nestgrad.tasks.dvs_glyphs import DvsGlyphs, DvsGlyphsConfig\n"
        f"DvsGlyphs(DvsGlyphsConfig(pool={pool})); print(time.process_time() - t)\n"
    )
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def measure(batches: int) -> dict[str, dict[str, float]]:
    from nestgrad.config import ExperimentConfig
    from nestgrad.tasks import make_task

    config = ExperimentConfig.from_toml(CONFIG)
    out = {}
    for pool in (2, 1):
        task_config = dataclasses.replace(config.task, params={**config.task.params, "pool": pool})
        task = make_task(task_config, config.network.seed)
        seconds = []
        for k in range(batches):
            t = time.process_time()
            task.batch(k)
            seconds.append(time.process_time() - t)
        out[f"pool{pool}"] = {
            "batch_size": task_config.batch_size,
            "cpu_s_per_batch_median": statistics.median(seconds),
            "cpu_s_per_batch_min": min(seconds),
            "cpu_s_make_task_with_imports": _task_seconds(pool),
        }
        print(f"pool {pool}: {out[f'pool{pool}']}", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--json", default=None, help="write the numbers here")
    args = ap.parse_args(argv)
    if args.batches < 1:
        ap.error(f"--batches = {args.batches}: a positive integer is required")
    result = measure(args.batches)
    if args.json:
        path = pathlib.Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""How well snnTorch reproduces an EventProp network trained in NEST, as a function of its time step (docs/nir.md,
"Measured": the numbers behind the table and the recurrent rows).

Trains the network of tests/test_nir_eventprop.py (8 x 8 latency-coded digits, 64 -> 30 -> 10, 45 iterations of
Adam) through the Trainer, computes NEST's readout values on the 359 test images, exports the run with `nestgrad
export-nir --dt` for every step and runs the graph in snnTorch with the test's code (snnTorch's own NIR node import,
readouts as snnTorch Synaptic neurons without threshold). Feedforward: one trained network, every step. Recurrent
(`--recurrent`): a recurrent projection's delay must equal the graph's step (nirtorch closes a loop in one step), so
every step trains its own network with delay = resolution = that step. Recurrent with `--delay D`: one network,
trained with recurrent delay D = resolution, run at every step dt = D / n (n an integer) with the graph's r for dt and
each recurrent Linear's output held n - 1 more steps in snnTorch (the test's LoopDelay), so that the loop takes D as
in NEST; `--loop-offsets -1,0,1` also runs loops one step shorter and longer (a check of the loop's mapping).

    python scaling_runs/nir_eventprop_agreement.py --dts 0.5,0.2,0.1,0.05,0.02,0.01
    python scaling_runs/nir_eventprop_agreement.py --recurrent --dts 0.1,0.05
    python scaling_runs/nir_eventprop_agreement.py --recurrent --delay 0.1 --dts 0.1,0.05,0.025,0.0125
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import test_nir_eventprop as helpers  # noqa: E402  (the test's snnTorch runner, so both measure the same way)

from nestgrad.cli import main as cli  # noqa: E402
from nestgrad.config import ExperimentConfig  # noqa: E402
from nestgrad.nest_engine import fresh_kernel  # noqa: E402
from nestgrad.networks.eventprop import TrialSet  # noqa: E402
from nestgrad.networks.registry import make_learner  # noqa: E402
from nestgrad.training.checkpoint import load_checkpoint  # noqa: E402
from nestgrad.training.trainer import Trainer  # noqa: E402


def config_for(recurrent: bool, step_ms: float | None, seed: int = 1) -> ExperimentConfig:
    d = helpers._digits_config().to_dict()
    d["network"]["seed"] = seed
    if recurrent:
        d["network"]["params"] |= {"recurrent": True, "delay": step_ms}
        d["task"]["resolution"] = step_ms
    return ExperimentConfig.from_dict(d)


def train_and_score(config: ExperimentConfig, out: pathlib.Path) -> tuple[np.ndarray, np.ndarray, object]:
    t0 = time.perf_counter()
    Trainer(config, out, verbose=False).run()
    print(f"  trained in {time.perf_counter() - t0:.1f} s", flush=True)
    state = load_checkpoint(out / "checkpoint.npz", config)
    learner, task = make_learner(config)
    trials = task.data.trials("test", range(task.data.size("test")))
    labels = np.array([t.label for t in trials])
    nest = fresh_kernel(config.task.resolution)
    learner.build(nest, state.weights, 0, learning=False)
    ((_, rec, _),) = list(learner.simulate(nest, [TrialSet(trials, labels)], config.task.resolution))
    return rec.y, labels, task.data


def compare(
    run: pathlib.Path,
    y_nest: np.ndarray,
    labels: np.ndarray,
    data: object,
    dt_ms: float,
    graph_dt_ms: float | None = None,
    loop_steps: int = 1,
) -> dict:
    """snnTorch against NEST at the step dt_ms; the graph is exported for graph_dt_ms (default dt_ms) and, if that
    differs, rewritten for dt_ms (r = tau_mem / dt), its loop taking ``loop_steps`` steps."""
    import nir

    graph_dt_ms = dt_ms if graph_dt_ms is None else graph_dt_ms
    path = run / f"graph_{graph_dt_ms:g}.nir"
    if not path.exists() and cli(["export-nir", str(run), str(path), "--dt", repr(graph_dt_ms * 1e-3)]) != 0:
        raise SystemExit(f"export at dt = {graph_dt_ms} ms failed")
    times, _ = data.arrays("test")
    graph = helpers.restepped(nir.read(path), dt_ms * 1e-3) if graph_dt_ms != dt_ms else nir.read(path)
    y_snn = helpers.snntorch_readout(graph, times, dt_ms * 1e-3, loop_steps=loop_steps)
    dy = np.abs(y_snn - y_nest)
    return {
        "dt_ms": dt_ms,
        "loop_steps": loop_steps,
        "same_label": float(np.mean(y_snn.argmax(1) == y_nest.argmax(1))),
        "n_differ": int(np.sum(y_snn.argmax(1) != y_nest.argmax(1))),
        "accuracy_nest": float(np.mean(y_nest.argmax(1) == labels)),
        "accuracy_snntorch": float(np.mean(y_snn.argmax(1) == labels)),
        "mean_abs_dy_mV": float(dy.mean()),
        "max_abs_dy_mV": float(dy.max()),
        "y_span_mV": float(np.ptp(y_nest)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dts", default="0.5,0.2,0.1,0.05,0.02,0.01", help="time steps (ms), comma-separated")
    parser.add_argument("--recurrent", action="store_true", help="recurrent hidden layer, delay = step")
    parser.add_argument("--delay", type=float, help="with --recurrent: one network of this recurrent delay (ms)")
    parser.add_argument("--loop-offsets", default="0", help="with --delay: loops this many steps longer, e.g. -1,0,1")
    parser.add_argument("--seed", type=int, default=1, help="network.seed (initial weights)")
    parser.add_argument("--json", type=pathlib.Path, help="write the rows to this file")
    args = parser.parse_args()
    dts = [float(x) for x in args.dts.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.recurrent and args.delay is not None:
            steps = {dt_ms: round(args.delay / dt_ms) for dt_ms in dts}
            if any(abs(n * dt_ms - args.delay) > 1e-9 * args.delay for dt_ms, n in steps.items()):
                raise SystemExit(f"--dts {args.dts}: every step must divide --delay {args.delay} ms")
            run = pathlib.Path(tmp) / "run"
            y, labels, data = train_and_score(config_for(True, args.delay, args.seed), run)
            for dt_ms in dts:
                for offset in (int(x) for x in args.loop_offsets.split(",")):
                    loop = steps[dt_ms] + offset
                    if loop < 1:
                        continue
                    row = compare(run, y, labels, data, dt_ms, args.delay, loop)
                    rows.append(row | {"recurrent": True, "delay_ms": args.delay, "seed": args.seed})
                    print(rows[-1], flush=True)
        elif args.recurrent:
            for k, dt_ms in enumerate(dts):
                run = pathlib.Path(tmp) / f"run{k}"
                y, labels, data = train_and_score(config_for(True, dt_ms, args.seed), run)
                rows.append(compare(run, y, labels, data, dt_ms) | {"recurrent": True, "delay_ms": dt_ms,
                                                                     "seed": args.seed})  # fmt: skip
                print(rows[-1], flush=True)
        else:
            run = pathlib.Path(tmp) / "run"
            y, labels, data = train_and_score(config_for(False, None, args.seed), run)
            for dt_ms in dts:
                rows.append(compare(run, y, labels, data, dt_ms) | {"recurrent": False, "seed": args.seed})
                print(rows[-1], flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()

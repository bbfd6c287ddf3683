"""How well snnTorch reproduces an EventProp network trained in NEST, as a function of its time step (docs/nir.md,
"Measured": the numbers behind the table and the recurrent rows).

Trains the network of tests/test_nir_eventprop.py (8 x 8 latency-coded digits, 64 -> 30 -> 10, 45 iterations of
Adam) through the Trainer, computes NEST's readout values on the 359 test images, exports the run with `nestgrad
export-nir --dt` for every step and runs the graph in snnTorch with the test's code (snnTorch's own NIR node import,
readouts as snnTorch Synaptic neurons without threshold). Feedforward: one trained network, every step. Recurrent
(`--recurrent`): a recurrent projection's delay must equal the graph's step, so every step trains its own network
with delay = resolution = that step.

    python scaling_runs/nir_eventprop_agreement.py --dts 0.5,0.2,0.1,0.05,0.02,0.01
    python scaling_runs/nir_eventprop_agreement.py --recurrent --dts 0.1,0.05
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


def config_for(recurrent: bool, step_ms: float | None) -> ExperimentConfig:
    d = helpers._digits_config().to_dict()
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


def compare(run: pathlib.Path, y_nest: np.ndarray, labels: np.ndarray, data: object, dt_ms: float) -> dict:
    import nir

    path = run / f"graph_{dt_ms:g}.nir"
    if cli(["export-nir", str(run), str(path), "--dt", repr(dt_ms * 1e-3)]) != 0:
        raise SystemExit(f"export at dt = {dt_ms} ms failed")
    times, _ = data.arrays("test")
    y_snn = helpers.snntorch_readout(nir.read(path), times, dt_ms * 1e-3)
    dy = np.abs(y_snn - y_nest)
    return {
        "dt_ms": dt_ms,
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
    parser.add_argument("--json", type=pathlib.Path, help="write the rows to this file")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.recurrent:
            for k, dt_ms in enumerate(float(x) for x in args.dts.split(",")):
                run = pathlib.Path(tmp) / f"run{k}"
                y, labels, data = train_and_score(config_for(True, dt_ms), run)
                rows.append(compare(run, y, labels, data, dt_ms) | {"recurrent": True})
                print(rows[-1], flush=True)
        else:
            run = pathlib.Path(tmp) / "run"
            y, labels, data = train_and_score(config_for(False, None), run)
            for dt_ms in (float(x) for x in args.dts.split(",")):
                rows.append(compare(run, y, labels, data, dt_ms) | {"recurrent": False})
                print(rows[-1], flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""A deterministic fake inner run for the outer loop's tests (no NEST; milliseconds per run).

The normalised loss falls as exp(-rate * k) with a rate that peaks at eta = 1e-4 and weight_scale = 1, varied a
little per task (its seed), so CMA-ES has an optimum to find. Every call appends its key to ``calls.txt`` in its
output folder, so tests can count how often an evaluation ran. ``FAKE_SLEEP_S`` slows each run down (seconds).
"""

from __future__ import annotations

import math
import os
import pathlib
import time
from typing import Any

from nestgrad.errors import ModelError


def rate(config: dict[str, Any]) -> float:
    eta = config["optimizer"]["eta"]
    ws = config["network"]["weight_scale"]
    seed = config["network"]["seed"]
    wobble = 1.0 + 0.1 * ((seed % 7) - 3) / 3.0  # task-to-task variation, deterministic
    return 0.5 * wobble * math.exp(-((math.log10(eta) + 4.0) ** 2) - (math.log(ws)) ** 2)


def run(job: Any) -> dict[str, Any]:
    folder = pathlib.Path(job.out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "calls.txt", "a") as f:
        f.write(job.key + "\n")
    time.sleep(float(os.environ.get("FAKE_SLEEP_S", "0")))
    k = job.config["training"]["iterations"]
    r = rate(job.config)
    silent = 50.0
    return {"losses": [silent * math.exp(-r * (i + 1)) for i in range(k)], "silent": [silent] * k, "diverged": False}


def fail(job: Any) -> dict[str, Any]:
    raise ModelError("network.neuron_params: NEST's eprop_iaf_psc_exp has no parameter 'tau_mm'")


def crash(job: Any) -> dict[str, Any]:
    return {}["missing"]  # a bug: KeyError

"""One inner run: a nestgrad training of one candidate's settings on one task, in the process it is given.

The outer loop calls an inner-run function (``meta.inner``, default :func:`train`) with an :class:`InnerJob` and
expects a dictionary with ``losses`` (the training loss of every inner iteration), ``silent`` (the loss a silent
readout, output 0, would have on the same trials: the scale the losses are normalised by) and ``diverged``. Each
call runs in a fresh process (NEST's kernel is one per process), so a function may build NEST freely.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from nestgrad.config import ExperimentConfig
from nestgrad.errors import TrainingDivergedError


@dataclass(frozen=True)
class InnerJob:
    """What an inner run gets: ``key`` names the evaluation (e.g. ``g003_c02_t01``), ``config`` is the full
    ExperimentConfig as a dictionary, ``out_dir`` the run's own output folder."""

    key: str
    config: dict[str, Any]
    out_dir: str


def silent_losses(task: Any, iterations: int) -> list[float]:
    """The loss of a silent readout (output 0) on the trials of iterations 1 ... ``iterations`` of ``task``."""
    from nestgrad.tasks import mse_loss

    out = []
    for k in range(iterations):
        b = task.batch(k)
        out.append(mse_loss(np.zeros_like(b.target), b.target, b.learning_window, b.trial_steps))
    return out


def train(job: InnerJob) -> dict[str, Any]:
    """Train ``job.config`` with the Trainer in ``job.out_dir`` (replacing an earlier attempt of the same job). A
    diverged training is a result (``diverged`` true, the losses up to the divergence), not an error."""
    from nestgrad.training.trainer import Trainer

    config = ExperimentConfig.from_dict(job.config, source=f"inner run {job.key}")
    trainer = Trainer(config, pathlib.Path(job.out_dir), verbose=False)
    silent = silent_losses(trainer.task, config.training.iterations)
    message = ""
    try:
        history = trainer.run(overwrite=True)
        diverged = False
    except TrainingDivergedError as err:
        history = trainer.state.history if trainer.state is not None else []
        diverged, message = True, str(err)
    result: dict[str, Any] = {
        "losses": [float(h["loss"]) for h in history],
        "silent": silent,
        "diverged": diverged,
        "message": message,
    }
    if history and "accuracy" in history[0]:
        result["accuracy"] = [float(h["accuracy"]) for h in history]
    return result


def validate(configs: list[dict[str, Any]], out_dir: str) -> None:
    """Check with NEST that every configuration builds (model names, parameter names): a fresh kernel each, no
    simulation. Raises the first error (a NestgradError naming the value)."""
    from nestgrad.training.trainer import Trainer

    for i, c in enumerate(configs):
        config = ExperimentConfig.from_dict(c, source="meta search space")
        Trainer(config, pathlib.Path(out_dir) / f"validate_{i}", verbose=False).validate()

"""The Trainer: runs e-prop training of a network in NEST, iteration by iteration, with metrics, checkpoints,
resume, progress output and plots.

Semantics. Weights change inside NEST, by NEST's ``eprop_synapse`` and its optimizer, while the network runs (NEST
3.10's event-driven e-prop). An iteration is one batch of trials simulated back to back. Iterations are grouped
into blocks of ``training.checkpoint_every``; each block runs in a fresh NEST kernel that starts from rest with the
weights (and Adam moments) of the previous block, and ends with a checkpoint. Because a block depends only on what
the checkpoint holds, resuming from a checkpoint reproduces an uninterrupted run bit for bit.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nestgrad.callbacks import Callback, ProgressPrinter
from nestgrad.config import ExperimentConfig
from nestgrad.errors import CheckpointError, ConfigError, TrainingDivergedError
from nestgrad.nest_engine import fresh_kernel
from nestgrad.nest_engine.devices import Recordings
from nestgrad.networks.base import Learner
from nestgrad.networks.registry import make_learner
from nestgrad.parallel import SerialCommunicator, communicator
from nestgrad.tasks import Task, TrialBatch, accuracy, mse_loss

CHECKPOINT_NAME = "checkpoint.npz"


@dataclass
class TrainingState:
    """Everything a block of iterations starts from."""

    iteration: int  # iterations completed
    weights: dict[str, np.ndarray]
    optimizer_state: dict[str, np.ndarray] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    virtual_processes: int = 1  # of the run that wrote the state (ranks x threads)


def save_checkpoint(path: pathlib.Path, config: ExperimentConfig, state: TrainingState) -> None:
    """Write atomically: a crash while writing leaves the previous checkpoint intact."""
    arrays = {f"w_{k}": v for k, v in state.weights.items()} | {f"opt_{k}": v for k, v in state.optimizer_state.items()}
    meta = {
        "iteration": state.iteration,
        "config": config.to_dict(),
        "history": state.history,
        "format": 1,
        "virtual_processes": state.virtual_processes,
    }
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, meta=np.array(json.dumps(meta)), **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: pathlib.Path, config: ExperimentConfig) -> TrainingState:
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        with np.load(path) as data:
            meta = json.loads(str(data["meta"]))
            weights = {k[2:]: data[k] for k in data.files if k.startswith("w_")}
            opt = {k[4:]: data[k] for k in data.files if k.startswith("opt_")}
    except (OSError, ValueError, KeyError) as err:
        raise CheckpointError(f"checkpoint {path} cannot be read: {err}") from None
    saved = ExperimentConfig.from_dict(meta["config"], source=f"{path} (saved configuration)")
    # everything but the number of iterations, threads and plotting must match, or it would not be the same run;
    # threads (and MPI ranks) may change: the results depend on the number of virtual processes only
    relevant = dataclasses.replace(
        config,
        training=dataclasses.replace(
            config.training,
            iterations=saved.training.iterations,
            plot=saved.training.plot,
            threads=saved.training.threads,
        ),
    )
    if relevant != saved:
        diffs = _config_diff(saved.to_dict(), relevant.to_dict())
        raise CheckpointError(f"checkpoint {path} was written with a different configuration: {', '.join(diffs)}")
    return TrainingState(meta["iteration"], weights, opt, meta["history"], meta.get("virtual_processes", 1))


def _config_diff(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict) and key not in ("neuron_params", "readout_params"):
            out += _config_diff(va, vb, f"{prefix}{key}.")
        elif va != vb:
            out.append(f"{prefix}{key} (checkpoint {va!r}, now {vb!r})")
    return out


# task batch indices of evaluation batches: far beyond any training iteration, so never trained on
EVALUATION_FIRST_BATCH = 1_000_000


class Trainer:
    """Train the classic e-prop network on a task.

    >>> trainer = Trainer(ExperimentConfig(), out_dir="out/run1")
    >>> history = trainer.run()              # or trainer.run(resume=True) to continue from out/run1/checkpoint.npz
    """

    def __init__(
        self,
        config: ExperimentConfig,
        out_dir: str | os.PathLike[str],
        callbacks: list[Callback] | None = None,
        verbose: bool = True,
    ):
        self.config = config
        self.out_dir = pathlib.Path(out_dir)
        self.callbacks = list(callbacks or [])
        if verbose:
            self.callbacks.insert(0, ProgressPrinter())
        # the architecture's factory (nestgrad.networks.registry) makes the learner and its task
        self.network: Learner
        self.task: Task
        self.network, self.task = make_learner(config)
        self.n_in, self.n_out = self.network.n_in, self.network.n_out
        self.iteration = 0
        self.comm: SerialCommunicator = SerialCommunicator()
        self.state: TrainingState | None = None
        self.last: tuple[TrialBatch, Recordings] | None = None

    @property
    def checkpoint_path(self) -> pathlib.Path:
        return self.out_dir / CHECKPOINT_NAME

    def initial_state(self) -> TrainingState:
        return TrainingState(0, self.network.initial_weights(self.config.network.seed))

    def validate(self) -> None:
        """All checks that need NEST, done in a fresh kernel before any simulation."""
        nest = self._fresh_kernel()
        self.network.validate(nest)
        nest.ResetKernel()

    def run(self, resume: bool = False, overwrite: bool = False) -> list[dict[str, Any]]:
        """Train until ``training.iterations``; returns the metrics of every iteration.

        ``resume`` continues from the checkpoint in ``out_dir``; without it, an existing checkpoint is an error
        unless ``overwrite`` is given.
        """
        self.validate()
        if resume:
            self.state = load_checkpoint(self.checkpoint_path, self.config)
        else:
            if self.checkpoint_path.exists() and not overwrite:
                raise CheckpointError(
                    f"{self.checkpoint_path} exists: resume it (--resume), replace it (--overwrite) or choose "
                    "another output folder; nothing was overwritten"
                )
            self.state = self.initial_state()
        vp = self.comm.size * self.config.training.threads
        if resume and self.comm.is_root and self.state.virtual_processes != vp:
            print(
                f"nestgrad: note: the checkpoint was written with {self.state.virtual_processes} virtual "
                f"process(es), this run has {vp}: results differ at rounding level from a run that keeps "
                f"{self.state.virtual_processes} (NEST sums inputs in another order)",
                flush=True,
            )
        self.comm.barrier()  # every rank has checked the folder before rank 0 writes to it
        if self.comm.is_root:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "config.json").write_text(json.dumps(self.config.to_dict(), indent=2))
        self.iteration = self.state.iteration
        self._notify("on_train_begin")
        total = self.config.training.iterations
        while self.iteration < total:
            n = min(
                self.config.training.checkpoint_every - self.iteration % self.config.training.checkpoint_every,
                total - self.iteration,
            )
            self._run_block(n)
            if self.comm.is_root:  # all ranks hold the same gathered state; one writes it
                save_checkpoint(self.checkpoint_path, self.config, self.state)
            self.comm.barrier()
            self._notify("on_checkpoint", str(self.checkpoint_path))
        if self.comm.is_root:
            self._write_outputs()
        self._notify("on_train_end")
        return self.state.history

    def evaluate(
        self, n_batches: int = 10, first_batch: int = EVALUATION_FIRST_BATCH, initial: bool = False
    ) -> dict[str, Any]:
        """Loss and accuracy of the trained weights on ``n_batches`` batches that training never draws (task batch
        indices ``first_batch``, ``first_batch + 1``, ...), with learning switched off: the network is built with
        every learning rate 0, so weights stay as they are. Uses the weights of this
        Trainer's last run, else the checkpoint in ``out_dir``; ``initial`` evaluates the untrained network instead
        (the baseline). Writes ``evaluation.json`` (``evaluation_initial.json``) to ``out_dir`` (rank 0)."""
        if not isinstance(n_batches, int) or isinstance(n_batches, bool) or n_batches < 1:
            raise ConfigError(f"evaluate: n_batches = {n_batches!r}; a positive integer is required")
        if not isinstance(first_batch, int) or first_batch < self.config.training.iterations:
            raise ConfigError(
                f"evaluate: first_batch = {first_batch!r} overlaps the training batches "
                f"(0 ... {self.config.training.iterations - 1})"
            )
        if initial:
            state = self.initial_state()
        else:
            if self.state is None:
                self.state = load_checkpoint(self.checkpoint_path, self.config)
            state = self.state
        self.validate()
        nest = self._fresh_kernel()
        # learning off: every learner builds its plastic synapses with learning rate 0
        self.network.build(nest, state.weights, self.config.training.record_neurons, learning=False)
        batches = [self.task.batch(first_batch + k) for k in range(n_batches)]
        per_batch = []
        for batch, rec, _ in self._simulate(nest, batches):
            m = self._metrics(batch, rec, 0.0)
            per_batch.append({k: v for k, v in m.items() if k in ("loss", "accuracy", "rate_hz")})
        n_trials = sum(b.steps // b.trial_steps for b in batches)
        result: dict[str, Any] = {
            "iteration": state.iteration,
            "batches": n_batches,
            "first_batch": first_batch,
            "trials": n_trials,
            "loss": float(np.mean([m["loss"] for m in per_batch])),
        }
        if per_batch and "accuracy" in per_batch[0]:
            result["accuracy"] = float(np.mean([m["accuracy"] for m in per_batch]))
        result["per_batch"] = per_batch
        if self.comm.is_root:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            name = "evaluation_initial.json" if initial else "evaluation.json"
            (self.out_dir / name).write_text(json.dumps(result, indent=2))
        return result

    def _notify(self, hook: str, *args: Any) -> None:
        """Call a hook of every callback, on rank 0 only (callbacks print and write files)."""
        if self.comm.is_root:
            for cb in self.callbacks:
                getattr(cb, hook)(self, *args)

    # -- one block of iterations in a fresh kernel ------------------------------------------------------------------
    def _fresh_kernel(self) -> Any:
        t = self.config.training
        nest = fresh_kernel(self.config.task.resolution, t.threads, t.rng_seed)
        self.comm = communicator(nest)
        self.network.comm = self.comm
        return nest

    def _run_block(self, n: int) -> None:
        assert self.state is not None
        nest = self._fresh_kernel()
        net = self.network
        net.build(nest, self.state.weights, self.config.training.record_neurons)
        if self.state.optimizer_state:
            net.write_optimizer_state(nest, self.state.optimizer_state)
        batches = [self.task.batch(self.iteration + k) for k in range(n)]
        for batch, rec, seconds in self._simulate(nest, batches):
            self.iteration += 1
            metrics = self._metrics(batch, rec, seconds)
            self.state.history.append(metrics)
            self.last = (batch, rec)
            self._notify("on_iteration_end", metrics)
        weights = net.read_weights(nest)
        bad = {k: (int(np.sum(~np.isfinite(v))), np.size(v)) for k, v in weights.items() if not np.all(np.isfinite(v))}
        if bad:
            where = ", ".join(f"{k} ({n} of {size})" for k, (n, size) in bad.items())
            raise TrainingDivergedError(
                f"training diverged by iteration {self.iteration}: non-finite weights in {where}. Nothing of "
                f"iterations {self.state.iteration + 1}-{self.iteration} was saved (checkpoint: iteration "
                f"{self.state.iteration}). Lower the learning rate, or the surrogate gradient's height: with "
                "after-spike currents (eprop_glif3_psc) a high surrogate makes the eligibility traces grow "
                "without bound (docs/models/eprop_glif3_psc.md, 'Stability of the eligibility traces')"
            )
        self.state.weights = weights
        self.state.optimizer_state = net.read_optimizer_state(nest)
        self.state.iteration = self.iteration
        self.state.virtual_processes = self.comm.size * self.config.training.threads

    def _simulate(self, nest: Any, batches: list[TrialBatch]) -> Iterator[tuple[TrialBatch, Recordings, float]]:
        """Run the built network through ``batches`` one after another; yields each batch, its recordings and the
        seconds its simulation took, and cleans the kernel up after the last."""
        net = self.network
        net.load_segment(nest, batches)
        t = net.lead_in_ms()
        nest.Prepare()
        nest.Run(t)
        for batch in batches:
            t0 = time.perf_counter()
            duration = batch.steps * self.config.task.resolution
            nest.Run(duration)
            rec = net.collect(nest, t, batch.steps)
            t += duration
            yield batch, rec, time.perf_counter() - t0
        nest.Cleanup()

    def _metrics(self, batch: TrialBatch, rec: Recordings, seconds: float) -> dict[str, Any]:
        m: dict[str, Any] = {
            "iteration": self.iteration,
            "loss": mse_loss(rec.readout, batch.target, batch.learning_window, batch.trial_steps),
        }
        if batch.labels is not None:
            m["accuracy"] = accuracy(rec.readout, batch)
        n_rec_recorded = self.network.n_recorded
        duration_s = batch.steps * self.config.task.resolution / 1000.0
        m["rate_hz"] = rec.spike_steps.size / max(n_rec_recorded, 1) / duration_s
        m["seconds"] = seconds
        return m

    def _write_outputs(self) -> None:
        assert self.state is not None
        hist = self.state.history
        keys = ["iteration", "loss"] + (["accuracy"] if hist and "accuracy" in hist[0] else []) + ["rate_hz"]
        lines = [",".join(keys)] + [",".join(repr(h[k]) for k in keys) for h in hist]
        (self.out_dir / "metrics.csv").write_text("\n".join(lines) + "\n")
        if not self.config.training.plot:
            return
        from nestgrad import plotting

        plotting.plot_learning_curve(hist, self.out_dir / "loss.png")
        if self.last is not None:
            batch, rec = self.last
            res = self.config.task.resolution
            label = f"iteration {self.iteration}"
            plotting.plot_raster(
                rec.spike_steps,
                rec.spike_senders,
                batch.steps,
                res,
                self.out_dir / "raster.png",
                f"Recurrent spikes, {label}",
            )
            plotting.plot_readout(
                rec.readout,
                batch.target,
                batch.learning_window,
                res,
                self.out_dir / "readout.png",
                f"Readout vs target, {label}",
            )

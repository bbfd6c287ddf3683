"""The Trainer: trains a learner in NEST, iteration by iteration, with metrics, checkpoints, resume, progress output
and plots, whatever its algorithm (e-prop, EventProp): the learner runs its batches and scores them
(:class:`nestgrad.networks.base.Learner`), the Trainer owns the loop, the checkpoints and the output folder.

Semantics. Weights change inside NEST, by the learner's synapses and their optimizer, while the network runs (e-prop:
NEST 3.10's event-driven updates). An iteration is one batch of trials. Iterations are grouped
into blocks of ``training.checkpoint_every``; each block runs in a fresh NEST kernel that starts from rest with the
weights (and Adam moments) of the previous block, and ends with a checkpoint. Because a block depends only on what
the checkpoint holds, resuming from a checkpoint reproduces an uninterrupted run bit for bit.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from nestgrad import resources
from nestgrad.config import ExperimentConfig
from nestgrad.errors import (
    CheckpointError,
    ConfigError,
    ModelError,
    NestgradError,
    TrainingDivergedError,
)
from nestgrad.nest_engine import fresh_kernel
from nestgrad.networks.base import Learner
from nestgrad.networks.registry import make_learner
from nestgrad.parallel import SerialCommunicator, communicator
from nestgrad.run_folder import FolderLock, atomic_write, clear_run, output_error
from nestgrad.tasks import EVALUATION_FIRST_BATCH, Task, TrialBatch
from nestgrad.training.callbacks import Callback, ProgressPrinter
from nestgrad.training.checkpoint import (  # noqa: F401 (CHECKPOINT_NAME and save_checkpoint: re-exported)
    CHECKPOINT_NAME,
    TrainingState,
    load_checkpoint,
    save_checkpoint,
)


def evaluation_file(initial: bool = False, final_weights: bool = False) -> str:
    """The file an evaluation writes: of the untrained network, of the last weights of a run that averaged them,
    else of the trained network."""
    if initial:
        return "evaluation_initial.json"
    return "evaluation_final_weights.json" if final_weights else "evaluation.json"


class Trainer:
    """Train the network of a configuration on its task: the architecture's factory
    (:mod:`nestgrad.networks.registry`) makes the learner and the task; the Trainer knows only the learner contract
    (:class:`nestgrad.networks.base.Learner`).

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
        # task data of one simulated segment at most (bytes): longer blocks run in several fresh kernels
        self.segment_bytes = resources.SEGMENT_BYTES
        # the architecture's factory (nestgrad.networks.registry) makes the learner and its task
        self.network: Learner
        self.task: Task
        self.network, self.task = make_learner(config)
        self.n_in, self.n_out = self.network.n_in, self.network.n_out
        self.iteration = 0
        self.comm: SerialCommunicator = SerialCommunicator()
        self.state: TrainingState | None = None
        self.last: tuple[Any, Any] | None = None  # the last batch and what it recorded (plots)
        self.saved_iteration = 0  # iteration of the checkpoint on disk (0: none)
        self._lock = FolderLock(self.out_dir)

    @property
    def checkpoint_path(self) -> pathlib.Path:
        return self.out_dir / CHECKPOINT_NAME

    def initial_state(self) -> TrainingState:
        return TrainingState(0, self.network.initial_weights(self.config.network.seed))

    def validate(self) -> None:
        """All checks that need NEST, done in a fresh kernel before any simulation."""
        nest = self._fresh_kernel()
        try:
            self.network.validate(nest)
        except ValueError as err:
            if isinstance(err, NestgradError):
                raise
            raise ModelError(str(err)) from None  # the builders' checks of models and parameter names
        nest.ResetKernel()

    def run(self, resume: bool = False, overwrite: bool = False) -> list[dict[str, Any]]:
        """Train until ``training.iterations``; returns the metrics of every iteration.

        ``resume`` continues from the checkpoint in ``out_dir``; without it, an existing checkpoint is an error
        unless ``overwrite`` is given. The folder is locked for the run (a second writer is refused); files are
        replaced atomically; under MPI a failure of rank 0's writes raises the same error on every rank.
        """
        self.validate()
        if resume and not self.checkpoint_path.exists():
            raise CheckpointError(f"no checkpoint at {self.checkpoint_path} to resume")
        self._on_root(self._lock.acquire)
        try:
            return self._run_locked(resume, overwrite)
        finally:
            if self.comm.is_root:
                self._lock.release()

    def _run_locked(self, resume: bool, overwrite: bool) -> list[dict[str, Any]]:
        if resume:
            self.state = load_checkpoint(self.checkpoint_path, self.config, self._weight_shapes())
            self.saved_iteration = self.state.iteration
        else:
            if self.checkpoint_path.exists() and not overwrite:
                raise CheckpointError(
                    f"{self.checkpoint_path} exists: resume it (--resume), replace it (--overwrite) or choose "
                    "another output folder; nothing was overwritten"
                )
            self.state = self.initial_state()
            self.saved_iteration = 0
        vp = self.comm.size * self.config.training.threads
        if resume and self.comm.is_root and self.state.virtual_processes != vp:
            print(
                f"nestgrad: note: the checkpoint was written with {self.state.virtual_processes} virtual "
                f"process(es), this run has {vp}: results differ at rounding level from a run that keeps "
                f"{self.state.virtual_processes} (NEST sums inputs in another order)",
                flush=True,
            )

        def start() -> None:
            if overwrite and not resume:
                clear_run(self.out_dir)  # the old checkpoint goes first: never an old checkpoint beside a new config
            atomic_write(self.out_dir / "config.json", json.dumps(self.config.to_dict(), indent=2))

        self._on_root(start)
        self.iteration = self.state.iteration
        self._notify("on_train_begin")
        total = self.config.training.iterations
        while self.iteration < total:
            n = min(
                self.config.training.checkpoint_every - self.iteration % self.config.training.checkpoint_every,
                total - self.iteration,
            )
            self._run_block(n)
            if self.config.training.average_weights_last:
                old = (self.state.averaged_after, self.state.averaged_count)
                if self.state.update_average(total - self.config.training.average_weights_last) and self.comm.is_root:
                    print(
                        f"nestgrad: note: the checkpoint averaged the weights of {old[1]} checkpoint(s) after "
                        f"iteration {old[0]}; with training.iterations = {total} the window starts after iteration "
                        f"{self.state.averaged_after}: that mean is dropped and averaging starts again there",
                        flush=True,
                    )
            self._on_root(self._save)  # all ranks hold the same gathered state; one writes it
            self.saved_iteration = self.state.iteration
            self._notify("on_checkpoint", str(self.checkpoint_path))
        self._on_root(self._write_outputs)
        self._notify("on_train_end")
        return self.state.history

    def _save(self) -> None:
        """The checkpoint, then the metrics that match it (both atomic)."""
        assert self.state is not None
        save_checkpoint(self.checkpoint_path, self.config, self.state)
        self._write_metrics()

    def _weight_shapes(self) -> dict[str, tuple[int, ...]]:
        return {k: np.shape(v) for k, v in self.initial_state().weights.items()}

    def _on_root(self, action: Callable[[], Any]) -> None:
        """Run a file operation on rank 0 and tell every rank how it went: a failure raises the same error on every
        rank, so that no rank waits for one that has given up (an MPI job ends with the message instead of
        hanging). Disk errors become :class:`~nestgrad.errors.OutputError`."""
        outcome: tuple[str, str] | None = None
        failure: BaseException | None = None
        if self.comm.is_root:
            try:
                action()
            except NestgradError as err:
                failure, outcome = err, (type(err).__name__, str(err))
            except OSError as err:
                failure = output_error(pathlib.Path(err.filename or self.out_dir), err)
                outcome = ("OutputError", str(failure))
            except Exception as err:  # a bug: rank 0 keeps its traceback, the others learn that rank 0 failed
                failure, outcome = err, ("bug", f"{type(err).__name__}: {err}")
        outcome = self.comm.bcast(outcome)
        if outcome is None:
            return
        kind, message = outcome
        if failure is not None:  # rank 0 raises what it caught (an OSError as the OutputError made of it)
            err: BaseException = failure
        elif kind == "bug":
            err = RuntimeError(f"rank 0 failed: {message}")
        else:  # the other ranks raise the same class with the same message
            from nestgrad import errors

            try:
                err = getattr(errors, kind, NestgradError)(message)
            except TypeError:  # a class with another constructor (SonataError)
                err = NestgradError(message)
        err.all_ranks = True  # type: ignore[attr-defined]  # every rank raises it: the CLI may exit normally
        raise err from None

    def evaluate(
        self,
        n_batches: int = 10,
        first_batch: int = EVALUATION_FIRST_BATCH,
        initial: bool = False,
        final_weights: bool = False,
    ) -> dict[str, Any]:
        """Loss and accuracy of the trained weights on ``n_batches`` batches that training never draws (task batch
        indices ``first_batch``, ``first_batch + 1``, ...), with learning switched off: the network is built with
        every learning rate 0, so weights stay as they are. Uses the weights of this
        Trainer's last run, else the checkpoint in ``out_dir``: their mean if training averaged them
        (``training.average_weights_last``) unless ``final_weights``; ``initial`` evaluates the untrained network
        instead (the baseline). Writes ``evaluation.json`` (``evaluation_initial.json``,
        ``evaluation_final_weights.json``) to ``out_dir`` (rank 0). Several tasks at once (batches with
        :class:`~nestgrad.tasks.TaskReadouts`, e.g. ``v1_multi``) add ``accuracy_per_task``: per task its accuracy
        on its own readouts over all its trials, and the number of those trials.

        Batches are made one at a time and simulated in segments of at most ``segment_bytes`` of task data, so
        that any number of batches fits in memory."""
        if not isinstance(n_batches, int) or isinstance(n_batches, bool) or n_batches < 1:
            raise ConfigError(f"evaluate: n_batches = {n_batches!r}; a positive integer is required")
        if (
            not isinstance(first_batch, int)
            or isinstance(first_batch, bool)
            or first_batch < self.config.training.iterations
        ):
            raise ConfigError(
                f"evaluate: first_batch = {first_batch!r} overlaps the training batches "
                f"(0 ... {self.config.training.iterations - 1})"
            )
        if initial:
            state = self.initial_state()
        else:
            if self.state is None:
                self.state = load_checkpoint(self.checkpoint_path, self.config, self._weight_shapes())
            state = self.state
        self.validate()
        # the folder is locked before the simulation, so that a run writing into it refuses us now, not at the end
        lock = FolderLock(self.out_dir) if not self._lock.held else None
        if lock is not None:
            self._on_root(lock.acquire)
        try:
            weights = state.weights if initial or final_weights else state.trained_weights
            result = self._evaluate(state, weights, n_batches, first_batch)
            result["weights"] = "initial weights" if initial else state.describe_weights(last=final_weights)
            name = evaluation_file(initial, final_weights and state.averaged_count > 0)
            self._on_root(lambda: atomic_write(self.out_dir / name, json.dumps(result, indent=2)))
        finally:
            if lock is not None and self.comm.is_root:
                lock.release()
        return result

    def _evaluate(
        self, state: TrainingState, weights: dict[str, np.ndarray], n_batches: int, first_batch: int
    ) -> dict[str, Any]:
        per_batch = []
        n_trials = 0
        task_trials: list[dict[str, int]] = []  # several tasks at once: each batch's trials per task
        for segment in self._segments(first_batch, n_batches):
            nest = self._fresh_kernel()
            self._build_frozen(nest, weights)
            for batch, rec, _ in self.network.simulate(nest, segment, self.config.task.resolution):
                m = self._metrics(batch, rec, 0.0)
                per_batch.append({k: v for k, v in m.items() if k not in ("iteration", "seconds")})
                n_trials += batch.n_trials
                tasks = getattr(batch, "task_readouts", None)  # EventProp's trial sets have none
                if tasks is not None:
                    task_trials.append(tasks.trials_per_task())
        result: dict[str, Any] = {
            "iteration": state.iteration,
            "batches": n_batches,
            "first_batch": first_batch,
            "trials": n_trials,
            "loss": float(np.mean([m["loss"] for m in per_batch])),
        }
        if per_batch and "accuracy" in per_batch[0]:
            result["accuracy"] = float(np.mean([m["accuracy"] for m in per_batch]))
        if task_trials:  # per task over all its trials (batches hold different numbers of each task's trials)
            result["accuracy_per_task"] = {}
            for name in task_trials[0]:
                trials = sum(c[name] for c in task_trials)
                # each batch's count of right trials, an integer that its fraction times its trials gives back exactly
                right = sum(
                    round(m[f"accuracy_{name}"] * c[name])
                    for m, c in zip(per_batch, task_trials, strict=True)
                    if c[name]
                )
                result["accuracy_per_task"][name] = {"accuracy": right / trials if trials else None, "trials": trials}
            for m in per_batch:  # a task without trials in a batch: null, not NaN (evaluation.json stays strict JSON)
                m.update({k: None for k, v in m.items() if isinstance(v, float) and np.isnan(v)})
        result["per_batch"] = per_batch
        return result

    def _build_frozen(self, nest: Any, weights: dict[str, np.ndarray]) -> None:
        """Build the network with learning off: every learner builds its plastic synapses with learning rate 0."""
        self.network.build(nest, weights, self.config.training.record_neurons, learning=False)

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

    def _segments(self, first: int, count: int, split_every: tuple[int, ...] = ()) -> Iterator[list[TrialBatch]]:
        """The task batches ``first`` ... ``first + count - 1``, made one at a time and grouped into segments of at
        most ``segment_bytes`` of data (at least one batch each): one segment is simulated in one kernel, so memory
        stays bounded however long a block or an evaluation is. ``split_every``: a segment also ends after every
        batch whose count (1-based) is a multiple of one of these (the learner's rewiring steps, the learning-rate
        decay's steps)."""
        segment: list[TrialBatch] = []
        size = 0
        for k in range(first, first + count):
            batch = self.task.batch(k)
            nbytes = batch.nbytes
            if segment and size + nbytes > self.segment_bytes:
                yield segment
                segment, size = [], 0
            segment.append(batch)
            size += nbytes
            if any((k + 1) % every == 0 for every in split_every):
                yield segment
                segment, size = [], 0
        if segment:
            yield segment

    def _run_block(self, n: int) -> None:
        """Iterations ``self.iteration + 1`` ... ``+ n``: one kernel per segment (one for every block whose data fit
        in ``segment_bytes``, i.e. every normal size), each starting from the weights the previous one ended with."""
        assert self.state is not None
        # a learner that rewires its connections (network.rewiring) does so between segments, on gathered weights
        every = getattr(self.network, "rewire_every", None)
        opt = self.config.optimizer
        splits = tuple(k for k in (every, opt.eta_decay_every if opt.decays else 0) if k)
        for segment in self._segments(self.iteration, n, splits):
            self._run_segment(segment)
            if every and self.iteration % every == 0:
                rewire = self.network.rewire  # type: ignore[attr-defined]
                self.state.weights, self.state.optimizer_state, _ = rewire(
                    self.state.weights, self.state.optimizer_state, self.iteration
                )
        self.state.virtual_processes = self.comm.size * self.config.training.threads

    def _run_segment(self, batches: list[TrialBatch]) -> None:
        assert self.state is not None
        nest = self._fresh_kernel()
        net = self.network
        if self.config.optimizer.decays:  # every learner reads its optimizer settings when it builds
            net.optimizer = self.config.optimizer.at_iteration(self.iteration)  # type: ignore[attr-defined]
        net.build(nest, self.state.weights, self.config.training.record_neurons)
        if self.state.optimizer_state:
            net.write_optimizer_state(nest, self.state.optimizer_state)
        steps = self.network.simulate(nest, batches, self.config.task.resolution)
        for batch, rec, seconds in steps:
            self.iteration += 1
            metrics = self._metrics(batch, rec, seconds)
            self.state.history.append(metrics)
            self.last = (batch, rec)
            self._notify("on_iteration_end", metrics)
            problem = self._loss_problem(metrics["loss"], batch)
            if problem:
                steps.close()  # cleans the kernel up
                # every rank computed the same loss from the gathered recordings: all raise this error
                raise self._diverged(f"training diverged at iteration {self.iteration}: {problem}. Stopped at once")
        weights = net.read_weights(nest)
        bad = {k: (int(np.sum(~np.isfinite(v))), np.size(v)) for k, v in weights.items() if not np.all(np.isfinite(v))}
        if bad:
            where = ", ".join(f"{k} ({n} of {size})" for k, (n, size) in bad.items())
            raise self._diverged(
                f"training diverged by iteration {self.iteration}: non-finite weights in {where}",
                "; or the surrogate gradient's height: with after-spike currents (eprop_glif3_psc) a high surrogate "
                "makes the eligibility traces grow without bound (docs/models/eprop_glif3_psc.md, 'Stability of "
                "the eligibility traces')",
            )
        self.state.weights = weights
        self.state.optimizer_state = net.read_optimizer_state(nest)
        self.state.iteration = self.iteration

    def _loss_problem(self, loss: float, batch: TrialBatch) -> str:
        """Why ``loss`` means divergence ('' if it does not): it is not finite, or it "explodes": it exceeds
        ``training.divergence_factor`` times the loss a silent readout (output 0) would have on the same batch, i.e.
        the scale of the target itself (a readout that has learnt anything stays far below it)."""
        if not math.isfinite(loss):
            return f"the loss is {loss}"
        factor = self.config.training.divergence_factor
        scale = self.network.divergence_scale(batch)
        if math.isfinite(factor) and scale > 0 and loss > factor * scale:
            return (
                f"the loss {loss:.6g} exceeds training.divergence_factor = {factor:g} times the loss of a silent "
                f"readout on the same trials ({scale:.6g})"
            )
        return ""

    def _diverged(self, what: str, hint: str = "") -> TrainingDivergedError:
        first_unsaved = self.saved_iteration + 1
        if self.saved_iteration > 0:
            kept = f"checkpoint: iteration {self.saved_iteration}, kept as it was"
        else:
            kept = "no checkpoint was written"
        unsaved = (
            f"iteration {self.iteration}"
            if first_unsaved == self.iteration
            else (f"iterations {first_unsaved}-{self.iteration}")
        )
        err = TrainingDivergedError(
            f"{what}. Nothing of {unsaved} was saved ({kept}). Lower the learning rate (optimizer.eta){hint}"
        )
        err.all_ranks = True  # type: ignore[attr-defined]  # computed from gathered data: identical on every rank
        return err

    def _metrics(self, batch: Any, recorded: Any, seconds: float) -> dict[str, Any]:
        return {"iteration": self.iteration} | self.network.metrics(batch, recorded) | {"seconds": seconds}

    def _write_metrics(self) -> None:
        assert self.state is not None
        hist = self.state.history
        keys = ["iteration", "loss"] + (["accuracy"] if hist and "accuracy" in hist[0] else [])
        # a learner's own metrics (e.g. the first-spike learner's t_label_ms) before the rate
        keys += [k for k in (hist[0] if hist else {}) if k not in (*keys, "rate_hz", "seconds")] + ["rate_hz"]
        lines = [",".join(keys)] + [",".join(repr(h[k]) for k in keys) for h in hist]
        atomic_write(self.out_dir / "metrics.csv", "\n".join(lines) + "\n")

    def _write_outputs(self) -> None:
        assert self.state is not None
        hist = self.state.history
        self._write_metrics()
        if not self.config.training.plot:
            return
        from nestgrad import plotting

        plotting.plot_learning_curve(hist, self.out_dir / "loss.png")
        if self.last is not None:
            batch, rec = self.last
            self.network.plot(self.out_dir, batch, rec, f"iteration {self.iteration}")

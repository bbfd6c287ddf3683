"""Faults and bad input (issue 19, items 2-8): the output folder's lock, atomic files, --overwrite, full or read-only
disks, corrupt checkpoints, values that used to pass validation, sizes, and divergence.

Every test uses a tiny network (15 neurons, 60-step trials) and finishes in about a second.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import math
import os
import pathlib
import subprocess
import sys
import threading
import time
import zipfile

import numpy as np
import pytest

from nestgrad import cli, run_folder
from nestgrad.config import ExperimentConfig, NetworkConfig, OptimizerConfig, TaskConfig, TrainingConfig
from nestgrad.errors import (
    CheckpointError,
    ConfigError,
    NestgradError,
    OutputError,
    ResourceError,
    SpecError,
    TrainingDivergedError,
)
from nestgrad.training.checkpoint import TrainingState, load_checkpoint, save_checkpoint
from nestgrad.training.trainer import Trainer

REPO = pathlib.Path(__file__).resolve().parents[1]


def tiny(iterations: int = 4, every: int = 2, eta: float = 1e-5, **training) -> ExperimentConfig:
    return ExperimentConfig(
        network=NetworkConfig(n_rec=15),
        task=TaskConfig(sequence_steps=60),
        optimizer=OptimizerConfig(eta=eta),
        training=TrainingConfig(iterations=iterations, checkpoint_every=every, plot=False, **training),
    )


TOML = """
[network]
n_rec = 15
[task]
sequence_steps = 60
[optimizer]
eta = {eta}
[training]
iterations = {iterations}
checkpoint_every = 2
plot = false
"""


def write_toml(path: pathlib.Path, iterations: int = 4, eta: float = 1e-5) -> pathlib.Path:
    path.write_text(TOML.format(iterations=iterations, eta=eta))
    return path


# -- item 2: one writer per folder, unique temporary files -----------------------------------------------------------
HOLD_LOCK = """
import sys, time
from nestgrad.run_folder import FolderLock
FolderLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
"""


def _hold_lock(folder: pathlib.Path, seconds: float) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO / "python"))
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(folder), str(seconds)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_second_writer_is_refused_naming_the_holder(tmp_path, capsys):
    holder = _hold_lock(tmp_path / "run", 60)
    try:
        with pytest.raises(OutputError, match=rf"in use by another run: process {holder.pid} on host \S+, running"):
            Trainer(tiny(), tmp_path / "run", verbose=False).run()
        assert not (tmp_path / "run" / "config.json").exists()  # the second run wrote nothing
        evaluation = Trainer(tiny(), tmp_path / "run", verbose=False)
        evaluation._evaluate = lambda *a: pytest.fail("simulated although the folder is locked")
        with pytest.raises(OutputError, match="in use by another run"):
            evaluation.evaluate(n_batches=1, initial=True)
        # the command line: one line, exit code 2
        assert cli.main(["train", str(write_toml(tmp_path / "c.toml")), "--out", str(tmp_path / "run")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("nestgrad train: the output folder") and str(holder.pid) in err
        assert len(err.strip().splitlines()) == 1
    finally:
        holder.kill()
        holder.wait()


def test_lock_of_a_dead_run_does_not_block(tmp_path):
    holder = _hold_lock(tmp_path / "run", 60)
    holder.kill()  # SIGKILL: no clean-up; the lock file stays, the kernel drops the lock
    holder.wait()
    assert (tmp_path / "run" / run_folder.LOCK_NAME).exists()
    history = Trainer(tiny(iterations=2), tmp_path / "run", verbose=False).run()
    assert len(history) == 2


def test_concurrent_writers_and_a_reader_never_see_a_partial_checkpoint(tmp_path):
    """Two writers of one path (the fixed temporary name of old made them truncate each other's file) and a reader:
    every read sees a whole checkpoint."""
    cfg = tiny()
    path = tmp_path / "checkpoint.npz"
    rng = np.random.default_rng(1)
    states = [TrainingState(0, {"w": rng.standard_normal((60, 60))}, {}, [], 1) for _ in range(2)]
    save_checkpoint(path, cfg, states[0])
    errors: list[BaseException] = []
    stop = threading.Event()

    def write(state: TrainingState) -> None:
        try:
            for _ in range(40):
                save_checkpoint(path, cfg, state)
        except BaseException as err:  # noqa: BLE001 (reported by the test)
            errors.append(err)

    def read() -> None:
        while not stop.is_set():
            try:
                state = load_checkpoint(path, cfg)
                assert state.weights["w"].shape == (60, 60)
            except BaseException as err:  # noqa: BLE001
                errors.append(err)
                return

    threads = [threading.Thread(target=write, args=(s,)) for s in states] + [threading.Thread(target=read)]
    for t in threads:
        t.start()
    for t in threads[:2]:
        t.join()
    stop.set()
    threads[2].join()
    assert not errors, errors[:3]
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_symlinked_temporary_files_are_never_followed(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    # the names a writer might use for its temporary files (the old fixed one, and guesses of the new pattern)
    for name in ("checkpoint.npz.tmp", ".checkpoint.npz.tmp", "config.json.tmp", "metrics.csv.tmp"):
        (out / name).symlink_to(victim)
    (out / run_folder.LOCK_NAME).symlink_to(tmp_path / "lock_victim")
    with pytest.raises(OutputError, match="lock file"):  # a planted lock symlink is refused, not followed
        Trainer(tiny(iterations=2), out, verbose=False).run()
    assert not (tmp_path / "lock_victim").exists()
    (out / run_folder.LOCK_NAME).unlink()
    Trainer(tiny(iterations=2), out, verbose=False).run()
    assert victim.read_text() == "precious"
    assert load_checkpoint(out / "checkpoint.npz", tiny(iterations=2)).iteration == 2


# -- item 3: --overwrite keeps the folder consistent -------------------------------------------------------------------
def test_overwrite_then_failure_leaves_no_old_checkpoint_and_names_the_right_iteration(tmp_path, monkeypatch):
    out = tmp_path / "run"
    Trainer(tiny(iterations=4), out, verbose=False).run()
    assert (out / "metrics.csv").exists()
    removed: list[tuple[str, bool]] = []
    real_unlink = pathlib.Path.unlink

    def unlink(self: pathlib.Path, missing_ok: bool = False) -> None:
        if self.parent == out and not self.name.startswith("."):
            removed.append((self.name, (out / "checkpoint.npz").exists()))
        real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(pathlib.Path, "unlink", unlink)
    new = tiny(iterations=4, eta=1000.0)  # diverges in its first iteration
    with pytest.raises(TrainingDivergedError) as err:
        Trainer(new, out, verbose=False).run(overwrite=True)
    assert "at iteration 1:" in str(err.value) and "no checkpoint was written" in str(err.value)
    # the old run is gone, checkpoint first: no moment with the old checkpoint beside other files removed
    assert removed[0] == ("checkpoint.npz", True)
    assert all(not checkpoint_present for _, checkpoint_present in removed[1:])
    assert not (out / "checkpoint.npz").exists() and not (out / "metrics.csv").exists()
    assert json.loads((out / "config.json").read_text())["optimizer"]["eta"] == 1000.0


def test_overwrite_replaces_every_output_of_the_old_run(tmp_path):
    out = tmp_path / "run"
    Trainer(tiny(iterations=4), out, verbose=False).run()
    Trainer(tiny(iterations=4), out, verbose=False).evaluate(n_batches=1)
    assert (out / "evaluation.json").exists()
    Trainer(tiny(iterations=2), out, verbose=False).run(overwrite=True)
    assert not (out / "evaluation.json").exists()  # it evaluated the old weights
    assert len((out / "metrics.csv").read_text().splitlines()) == 3
    assert load_checkpoint(out / "checkpoint.npz", tiny(iterations=2)).iteration == 2


# -- item 4: a full or read-only disk ----------------------------------------------------------------------------------
def _fail_checkpoint_writes(monkeypatch, after: int, err: int = errno.ENOSPC) -> None:
    """Make the (after + 1)-th and later writes of a checkpoint fail as a full disk does."""
    real = run_folder._write_fd
    count = {"n": 0}

    def write(fd: int, data: bytes) -> None:
        if "checkpoint.npz" in os.readlink(f"/proc/self/fd/{fd}"):
            count["n"] += 1
            if count["n"] > after:
                os.write(fd, data[: len(data) // 2])  # part of it made it to disk, then the disk was full
                raise OSError(err, os.strerror(err))
        real(fd, data)

    monkeypatch.setattr(run_folder, "_write_fd", write)


def test_full_disk_gives_one_message_and_keeps_the_last_checkpoint(tmp_path, monkeypatch, capsys):
    cfg_file = write_toml(tmp_path / "c.toml", iterations=6)
    out = tmp_path / "run"
    _fail_checkpoint_writes(monkeypatch, after=1)
    assert cli.main(["train", str(cfg_file), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "checkpoint.npz: the disk is full" in err and "the previous checkpoint.npz is unchanged" in err
    state = load_checkpoint(out / "checkpoint.npz", ExperimentConfig.from_toml(cfg_file))
    assert state.iteration == 2  # the first block's checkpoint, whole
    assert len((out / "metrics.csv").read_text().splitlines()) == 3  # metrics match the checkpoint
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.undo()
    assert cli.main(["train", str(cfg_file), "--out", str(out), "--resume"]) == 0  # nothing lost: it resumes


def test_read_only_output_is_refused_before_training(tmp_path, monkeypatch, capsys):
    real_open = os.open

    def read_only(path, flags, *args, **kwargs):  # what a read-only mount answers
        if str(path).startswith(str(tmp_path / "ro")) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kwargs)

    (tmp_path / "ro").mkdir()
    monkeypatch.setattr(os, "open", read_only)
    assert cli.main(["train", str(write_toml(tmp_path / "c.toml")), "--out", str(tmp_path / "ro")]) == 2
    err = capsys.readouterr()
    assert "the file system is read-only" in err.err and "iteration" not in err.out
    monkeypatch.undo()
    with pytest.raises(OutputError, match="cannot create the output folder"):
        Trainer(tiny(), tmp_path / "c.toml" / "sub", verbose=False).run()  # a file where a folder must be


# -- item 5: corrupt and hand-edited checkpoints -----------------------------------------------------------------
def _rewrite(path: pathlib.Path, meta_change=None, arrays_change=None) -> None:
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays.pop("meta")))
    if meta_change:
        meta_change(meta)
    if arrays_change:
        arrays_change(arrays)
    with open(path, "wb") as f:
        np.savez(f, meta=np.array(json.dumps(meta)), **arrays)


def _set(key, value):
    return lambda m: m.__setitem__(key, value)


def _nan_in(name):
    def change(a):
        a[name] = a[name].copy()
        a[name].flat[0] = np.nan

    return change


CORRUPTIONS = {
    "truncated": (None, "cannot be read"),
    "garbage": (None, "cannot be read"),
    "empty": (None, "cannot be read"),
    "no meta.iteration": (lambda m: m.pop("iteration"), "'meta.iteration': missing"),
    "mistyped iteration": (_set("iteration", "2"), "'meta.iteration': '2'"),
    "negative iteration": (_set("iteration", -2), "'meta.iteration': -2"),
    "iteration vs history": (_set("iteration", 3), "'meta.iteration': 3 disagrees"),
    "format": (_set("format", 2), "'meta.format'"),
    "history not a list": (_set("history", {}), "'meta.history'"),
    "history loss": (lambda m: m["history"][0].__setitem__("loss", "x"), r"'meta.history\[0\].loss'"),
    "config": (_set("config", {"network": {"n_rec": -1}}), "'meta.config'"),
    "virtual processes": (_set("virtual_processes", 0), "'meta.virtual_processes'"),
}
ARRAY_CORRUPTIONS = {
    "wrong shape": (lambda a: a.__setitem__("w_rec_rec", np.zeros((3, 3))), "'w_rec_rec': shape"),
    "missing projection": (lambda a: a.pop("w_in_rec"), "'w_in_rec': missing"),
    "non-finite weight": (_nan_in("w_rec_out"), "'w_rec_out': 1 of 15 values are NaN"),
    "strings": (lambda a: a.__setitem__("w_rec_out", np.array(["a"])), "'w_rec_out': numbers are required"),
    "unknown array": (lambda a: a.__setitem__("x", np.zeros(2)), "'x': unknown"),
    # Adam's bias-correction powers beta^t: in (0, 1], b1 and b2 together
    "power out of range": (
        lambda a: a.update(opt_b1_rec_out=np.zeros((1, 15)), opt_b2_rec_out=np.ones((1, 15))),
        r"'opt_b1_rec_out': values span \[0, 0\]: .*must lie in \(0, 1\]",
    ),
    "power without its pair": (
        lambda a: a.__setitem__("opt_b2_rec_out", np.full((1, 15), 0.5)),
        "'opt_b1_rec_out': missing: Adam's bias-correction powers come in pairs",
    ),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS) + list(ARRAY_CORRUPTIONS))
def test_corrupt_checkpoint_names_file_and_field(tmp_path, case, capsys):
    cfg_file = write_toml(tmp_path / "c.toml", iterations=2)
    out = tmp_path / "run"
    assert cli.main(["train", str(cfg_file), "--out", str(out)]) == 0
    path = out / "checkpoint.npz"
    if case == "truncated":
        path.write_bytes(path.read_bytes()[:500])
    elif case == "garbage":
        path.write_bytes(b"PK\x03\x04" + os.urandom(300))
    elif case == "empty":
        path.write_bytes(b"")
    elif case in CORRUPTIONS:
        _rewrite(path, meta_change=CORRUPTIONS[case][0])
    else:
        _rewrite(path, arrays_change=ARRAY_CORRUPTIONS[case][0])
    fragment = (CORRUPTIONS | ARRAY_CORRUPTIONS)[case][1]
    capsys.readouterr()
    # resuming (with more iterations) and evaluating both refuse it with one line naming the file and the field
    for argv in (["train", "--resume", "--iterations", "4"], ["evaluate", "--batches", "1"]):
        assert cli.main([argv[0], str(cfg_file), "--out", str(out), *argv[1:]]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(path) in err, err
        assert __import__("re").search(fragment, err), (fragment, err)
    assert not (out / "metrics.csv").read_text().count("\n") > 3  # no rows were added


@pytest.mark.parametrize("algorithm", ["step", "event"])
def test_checkpoint_of_the_same_run_still_loads(tmp_path, algorithm):
    """The checks accept what nestgrad writes (format 1), with Adam's moments and, for nestgrad's event synapses, its
    bias-correction powers (NEST's eprop_synapse, of the readouts and of the step algorithm here, has none)."""
    cfg = dataclasses.replace(tiny(iterations=2), optimizer=OptimizerConfig(type="adam", eta=1e-6))
    cfg = dataclasses.replace(cfg, network=dataclasses.replace(cfg.network, gradient_algorithm=algorithm))
    trainer = Trainer(cfg, tmp_path, verbose=False)
    trainer.run()
    state = load_checkpoint(tmp_path / "checkpoint.npz", cfg, trainer._weight_shapes())
    powers = {f"{b}_{p}" for b in ("b1", "b2") for p in ("in_rec", "rec_rec")} if algorithm == "event" else set()
    assert state.iteration == 2 and set(state.optimizer_state) == powers | {
        f"{m}_{p}" for m in "mv" for p in ("in_rec", "rec_rec", "rec_out")
    }


def _spec_file(tmp_path: pathlib.Path) -> pathlib.Path:
    from nestgrad.comparison.nest_runs import spec_from_config

    spec = spec_from_config(tiny(iterations=1), 1)
    return spec.save(tmp_path / "net.npz")


def _edit_spec(path: pathlib.Path, change) -> pathlib.Path:
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    doc = json.loads(str(arrays["spec_json"]))
    change(doc, arrays)
    arrays["spec_json"] = np.array(json.dumps(doc))
    np.savez(path, **arrays)
    return path


SPEC_EDITS = {
    "tau_m inf": (lambda d, a: d["rec_params"].__setitem__("tau_m", math.inf), "'rec_params.tau_m' = inf"),
    "C_m negative": (lambda d, a: d["readout_params"].__setitem__("C_m", -1.0), "'readout_params.C_m' = -1.0"),
    "params list": (lambda d, a: d.__setitem__("rec_params", [1]), "'rec_params' must be a table"),
    "steps string": (lambda d, a: d.__setitem__("iteration_steps", "60"), "'iteration_steps' = '60'"),
    "resolution": (lambda d, a: d.__setitem__("resolution", 0), "'resolution' = 0"),
    "eta inf": (lambda d, a: d["optimizer"].__setitem__("eta", math.inf), "'optimizer.eta' = inf"),
    "no mask": (lambda d, a: a.pop("mask_rec_rec"), "'mask_rec_rec' is missing"),
    "1-D target": (lambda d, a: a.__setitem__("target", a["target"][:, 0]), "'target' has 1 dimensions"),
    "string spikes": (lambda d, a: a.__setitem__("input_spikes", np.array([["x"]])), "'input_spikes' must hold"),
    "spec_json list": (lambda d, a: d.clear(), "format None"),
}


@pytest.mark.parametrize("case", list(SPEC_EDITS))
def test_bad_exchange_file_names_file_and_field(tmp_path, case, capsys):
    from nestgrad.reference.spec import NetworkSpec

    change, fragment = SPEC_EDITS[case]
    path = _edit_spec(_spec_file(tmp_path), change)
    with pytest.raises(SpecError) as err:
        NetworkSpec.load(path)
    assert str(path) in str(err.value) and fragment in str(err.value), str(err.value)
    if case == "tau_m inf":  # the command prints one line and exits 2 instead of NaN tables with exit 0
        assert cli.main(["compare", "--network", str(path), "--out", str(tmp_path / "cmp")]) == 2
        assert "tau_m" in capsys.readouterr().err
        assert not (tmp_path / "cmp").exists()


# -- item 6: values that passed validation and then crashed or misled -------------------------------------------------
@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"training": {"threads": 100000}}, "training.threads = 100000"),
        ({"training": {"rng_seed": 2**32}}, "training.rng_seed = 4294967296"),
        ({"training": {"rng_seed": True}}, "training.rng_seed = True"),
        ({"training": {"divergence_factor": 0.5}}, "training.divergence_factor"),
        ({"training": {"plot": 1}}, "training.plot = 1"),
        ({"training": {"record_neurons": True}}, "training.record_neurons = True"),
        ({"task": {"resolution": 0.0001}}, "task.resolution = 0.0001"),
        ({"task": {"resolution": 0.1234}}, "whole multiple of NEST's tic"),
        ({"task": {"resolution": 1e-300}}, "task.resolution"),
        ({"task": {"batch_size": True}}, "task.batch_size = True"),
        ({"optimizer": {"batch_size": True}}, "optimizer.batch_size = True"),
        ({"optimizer": {"sign_constrained": "yes"}}, "optimizer.sign_constrained"),
        ({"network": {"seed": True}}, "network.seed = True"),
        ({"network": {"seed": 2**70}}, "network.seed"),
        ({"network": {"neuron_params": {"tau_m": math.inf}}}, "network.neuron_params.tau_m = inf"),
        ({"network": {"neuron_params": {"tau_m": -5.0}}}, "network.neuron_params.tau_m = -5.0"),
        ({"network": {"neuron_params": {"C_m": 0.0}}}, "network.neuron_params.C_m = 0.0"),
        ({"network": {"neuron_params": {"t_ref": -1.0}}}, "network.neuron_params.t_ref = -1.0"),
        ({"network": {"readout_params": {"tau_m": math.inf}}}, "network.readout_params.tau_m"),
        ({"network": {"neuron_params": {"E_L": -math.inf}}}, "network.neuron_params.E_L"),
        (
            {"network": {"architecture": "microcircuit", "microcircuit": {"eprop_params": {"tau_m": -1.0}}}},
            "network.microcircuit.eprop_params.tau_m",
        ),
        (
            {"network": {"architecture": "v1", "v1": {"weight_scale": math.nan}}, "task": {"name": "v1_orientation"}},
            "network.v1.weight_scale",
        ),
    ],
)
def test_values_that_used_to_pass_are_refused_naming_the_key(data, fragment):
    with pytest.raises(ConfigError) as err:
        ExperimentConfig.from_dict(data)
    assert fragment in str(err.value), str(err.value)


def test_infinite_defaults_of_nest_stay_allowed():
    cfg = ExperimentConfig.from_dict({"network": {"neuron_params": {"eprop_isi_trace_cutoff": math.inf}}})
    assert cfg.network.neuron_params["eprop_isi_trace_cutoff"] == math.inf


def test_threads_beyond_the_machine_are_refused_before_building(tmp_path):
    too_many = 4 * (os.cpu_count() or 1) + 1
    with pytest.raises(ConfigError, match=rf"training.threads = {too_many} is more than 4 x the"):
        Trainer(tiny(threads=too_many), tmp_path, verbose=False)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["compare", "--task", "sine", "--threads", "0"], "--threads = 0"),
        (["compare", "--task", "sine", "--threads", "100000"], "--threads = 100000"),
        (["compare", "--task", "sine", "--iterations", "0"], "--iterations = 0"),
        (["compare", "--task", "sine", "--n-rec", "0"], "--n-rec = 0"),
        (["evaluate", "CONFIG", "--batches", "0"], "--batches = 0"),
        (["train", "CONFIG", "--iterations", "0"], "--iterations = 0"),
        (["train", "FOLDER"], "is not a file"),
    ],
)
def test_command_line_values_are_checked(tmp_path, argv, fragment, capsys):
    argv = [
        str(write_toml(tmp_path / "c.toml")) if a == "CONFIG" else str(tmp_path) if a == "FOLDER" else a for a in argv
    ]
    assert cli.main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1, err


# -- item 7: sizes -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_rec", [20000, 10**9])
def test_huge_networks_are_refused_with_an_estimate_before_allocating(tmp_path, n_rec):
    cfg = ExperimentConfig(network=NetworkConfig(n_rec=n_rec), training=TrainingConfig(plot=False))
    t0 = time.perf_counter()
    with pytest.raises(ResourceError, match=r"needs about [\d.e+]+ [GM]B per process .* more than the .* available"):
        Trainer(cfg, tmp_path, verbose=False)
    assert time.perf_counter() - t0 < 10  # nothing was allocated (20000^2 float64 alone would be 3.2 GB)


class _CountingTask:
    """Wraps a task and counts the batches made."""

    def __init__(self, task):
        self.task, self.made = task, 0

    def __getattr__(self, name):
        return getattr(self.task, name)

    def batch(self, k):
        self.made += 1
        return self.task.batch(k)


class _Stop(Exception):
    pass


def test_batches_are_made_lazily_in_bounded_segments(tmp_path):
    """A block of 10^6 iterations (checkpoint_every = 10^6) makes its batches segment by segment: when the first
    iteration ends, one segment's worth exists, not the block's."""
    from nestgrad.training.callbacks import Callback

    cfg = tiny(iterations=10**6, every=10**6)
    seen: list[int] = []

    class StopAfter(Callback):
        def on_iteration_end(self, trainer, metrics):
            seen.append(trainer.task.made)
            if metrics["iteration"] == 5:
                raise _Stop

    trainer = Trainer(cfg, tmp_path, callbacks=[StopAfter()], verbose=False)
    trainer.task = _CountingTask(trainer.task)
    one = trainer.task.batch(0)
    trainer.task.made = 0
    trainer.segment_bytes = 2 * (one.input_spikes.nbytes + one.target.nbytes + one.learning_window.nbytes)
    with pytest.raises(_Stop):
        trainer.run()
    assert seen == [3, 3, 5, 5, 7]  # two batches per segment, plus the next one that did not fit


def test_segmented_blocks_resume_bit_identically(tmp_path):
    """Segment boundaries depend on the block alone, so a run with small segments resumes bit for bit."""

    def trainer(folder: str, iterations: int) -> Trainer:
        tr = Trainer(tiny(iterations=iterations, every=4), tmp_path / folder, verbose=False)
        b = tr.task.batch(0)
        tr.segment_bytes = 3 * (b.input_spikes.nbytes + b.target.nbytes + b.learning_window.nbytes)
        return tr

    full = trainer("full", 8)
    full.run()
    trainer("part", 4).run()
    resumed = trainer("part", 8)
    resumed.run(resume=True)
    assert [h["loss"] for h in resumed.state.history] == [h["loss"] for h in full.state.history]
    for key, w in full.state.weights.items():
        np.testing.assert_array_equal(resumed.state.weights[key], w, err_msg=key)


def test_normal_sizes_run_in_one_segment_per_block_as_before(tmp_path):
    """The default segment bound leaves every shipped configuration's blocks in one kernel (results as before the
    bound existed), and a small bound changes nothing while the block fits."""
    from nestgrad import resources

    for path in sorted((REPO / "python" / "nestgrad" / "configs").glob("*.toml")):
        cfg = ExperimentConfig.from_toml(path)
        tr = Trainer(cfg, tmp_path / path.stem, verbose=False)
        b = tr.task.batch(0)
        block = b.nbytes * cfg.training.checkpoint_every  # every batch says what its data hold (TrialBatch, TrialSet)
        assert block <= resources.SEGMENT_BYTES, (path.name, block)
    runs = []
    for budget in (resources.SEGMENT_BYTES, None):
        tr = Trainer(tiny(iterations=4, every=4), tmp_path / f"b{budget}", verbose=False)
        b = tr.task.batch(0)
        tr.segment_bytes = budget or 4 * b.nbytes
        runs.append(tr.run())
    assert [h["loss"] for h in runs[0]] == [h["loss"] for h in runs[1]]


def test_evaluation_streams_its_batches(tmp_path):
    out = tmp_path / "run"
    Trainer(tiny(iterations=2), out, verbose=False).run()
    whole = Trainer(tiny(iterations=2), out, verbose=False).evaluate(n_batches=4)
    tr = Trainer(tiny(iterations=2), out, verbose=False)
    tr.task = _CountingTask(tr.task)
    b = tr.task.batch(0)
    tr.segment_bytes = 2 * (b.input_spikes.nbytes + b.target.nbytes + b.learning_window.nbytes)
    tr.task.made = 0
    split = tr.evaluate(n_batches=4)
    assert tr.task.made == 4 and split["trials"] == whole["trials"] == 4
    # the first segment is the same simulation as the first two batches of the unsplit one
    assert split["per_batch"][:2] == whole["per_batch"][:2]


# -- item 8: divergence from the loss ----------------------------------------------------------------------------------
def test_exploding_loss_stops_at_once_with_exit_code_2(tmp_path, capsys):
    cfg_file = write_toml(tmp_path / "c.toml", iterations=4, eta=1000.0)
    assert cli.main(["train", str(cfg_file), "--out", str(tmp_path / "run")]) == 2
    captured = capsys.readouterr()
    assert "training diverged at iteration 1: the loss" in captured.err
    assert "training.divergence_factor = 1000 times the loss of a silent readout" in captured.err
    assert "iteration    2/4" not in captured.out  # stopped at once
    assert not (tmp_path / "run" / "checkpoint.npz").exists()
    # with the check off (inf), the same run ends "successfully" with a huge loss: what the check prevents
    cfg = dataclasses.replace(
        ExperimentConfig.from_toml(cfg_file),
        training=dataclasses.replace(ExperimentConfig.from_toml(cfg_file).training, divergence_factor=math.inf),
    )
    history = Trainer(cfg, tmp_path / "off", verbose=False).run()
    assert history[-1]["loss"] > 1e4


def test_nan_loss_stops_in_the_middle_of_a_block_and_keeps_the_checkpoint(tmp_path, monkeypatch):
    import nestgrad.networks.base as learner_module  # e-prop learners score their batches there

    trainer = Trainer(tiny(iterations=6, every=3), tmp_path, verbose=False)
    real = learner_module.mse_loss
    calls = {"n": 0}

    def loss(readout, target, window, trial_steps):
        if readout is not None and np.any(readout):  # the network's loss, not the silent readout's
            calls["n"] += 1
            if calls["n"] == 5:
                return float("nan")
        return real(readout, target, window, trial_steps)

    monkeypatch.setattr(learner_module, "mse_loss", loss)
    with pytest.raises(TrainingDivergedError) as err:
        trainer.run()
    message = str(err.value)
    assert "diverged at iteration 5: the loss is nan. Stopped at once" in message
    assert "Nothing of iterations 4-5 was saved (checkpoint: iteration 3, kept as it was)" in message
    assert len(trainer.state.history) == 5  # iteration 6 never ran
    state = load_checkpoint(tmp_path / "checkpoint.npz", trainer.config)
    assert state.iteration == 3 and len((tmp_path / "metrics.csv").read_text().splitlines()) == 4


def test_every_user_error_class_is_a_nestgrad_error():
    for klass in (CheckpointError, ConfigError, OutputError, ResourceError, SpecError, TrainingDivergedError):
        assert issubclass(klass, NestgradError)


def test_zip_errors_are_not_leaked(tmp_path):
    """A zip whose member is damaged (CRC) is a CheckpointError, not zipfile.BadZipFile."""
    cfg = tiny(iterations=2)
    Trainer(cfg, tmp_path, verbose=False).run()
    path = tmp_path / "checkpoint.npz"
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("w_rec_rec.npy")
    raw = bytearray(path.read_bytes())
    raw[info.header_offset + 100] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=str(path)):
        load_checkpoint(path, cfg)

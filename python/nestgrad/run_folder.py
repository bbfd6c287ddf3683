"""The output folder of a run: one writer at a time, atomic files, a consistent folder at every moment.

* **Lock.** A run that writes into a folder holds an exclusive ``flock`` on ``<folder>/.nestgrad.lock`` for as long as
  it runs; a second writer is refused with an :class:`~nestgrad.errors.OutputError` that names the holder (pid, host,
  start time, written into the lock file). The kernel releases the lock when its process ends, however it ends
  (SIGKILL included), so a dead run never blocks the folder. On Linux NFS mounts ``flock`` is carried out with
  NFS byte-range locks, which also work across nodes.
* **Atomic files.** :func:`atomic_write` writes to a fresh temporary file in the same folder (a unique name created
  with ``O_EXCL``, so it never follows a symlink planted under that name), flushes it to disk, and renames it over
  the target: a reader sees the old file or the new one, never a partial one.
* **Disk errors.** A full or read-only disk raises :class:`~nestgrad.errors.OutputError` naming the file and the
  cause; the temporary file is removed and the previous version of the file is left as it was.
* **Overwrite.** :func:`clear_run` removes an earlier run's outputs checkpoint first, so that at no moment does the
  folder hold a resumable checkpoint beside another run's configuration.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import os
import pathlib
import socket
import tempfile
from dataclasses import dataclass

from nestgrad.errors import OutputError

LOCK_NAME = ".nestgrad.lock"
CHECKPOINT = "checkpoint.npz"
# what a run writes, in the order an overwrite removes it: the checkpoint (what makes a folder resumable) first,
# the configuration last, so that every moment's folder is one run's (possibly partial) output
RUN_FILES = (
    CHECKPOINT,
    "metrics.csv",
    "evaluation.json",
    "evaluation_initial.json",
    "loss.png",
    "raster.png",
    "readout.png",
    "config.json",
)
TMP_SUFFIX = ".tmp"


def _describe(err: OSError) -> str:
    if err.errno == errno.ENOSPC:
        return "the disk is full"
    if err.errno == errno.EDQUOT:
        return "the disk quota is exceeded"
    if err.errno == errno.EROFS:
        return "the file system is read-only"
    if err.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return err.strerror or str(err)


def output_error(path: pathlib.Path, err: OSError, kept: str = "") -> OutputError:
    """An OutputError for a failed write of ``path``; ``kept`` says what was left as it was."""
    tail = f"; {kept}" if kept else ""
    return OutputError(f"cannot write {path}: {_describe(err)} ({err.__class__.__name__}: {err}){tail}")


def _fsync_dir(folder: pathlib.Path) -> None:
    """Make a rename durable (best effort: some file systems cannot open folders)."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_fd(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` and flush it to disk (its own function so that tests can make it fail)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
    os.fsync(fd)


def atomic_write(path: pathlib.Path, data: bytes | str) -> None:
    """Replace ``path`` by ``data`` atomically (unique temporary file, fsync, rename).

    Raises :class:`~nestgrad.errors.OutputError` if the disk refuses; then ``path`` is unchanged and no temporary
    file is left behind.
    """
    path = pathlib.Path(path)
    payload = data.encode() if isinstance(data, str) else data
    kept = f"the previous {path.name} is unchanged" if path.exists() else f"{path.name} was not written"
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    except OSError as err:
        raise output_error(path, err, kept) from None
    try:
        try:
            _write_fd(fd, payload)
        finally:
            os.close(fd)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; outputs are ordinary files
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise output_error(path, err, kept) from None
    _fsync_dir(path.parent)


def remove_stale_temporaries(folder: pathlib.Path) -> None:
    """Remove temporary files that a killed run left (only call with the folder's lock held: nobody else writes)."""
    for name in RUN_FILES:
        for tmp in folder.glob(f".{name}.*{TMP_SUFFIX}"):
            with contextlib.suppress(OSError):
                tmp.unlink()  # a symlink is removed, never followed


def clear_run(folder: pathlib.Path) -> None:
    """Remove an earlier run's outputs for ``--overwrite``, checkpoint first (see the module's docstring)."""
    for name in RUN_FILES:
        path = folder / name
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as err:
            raise OutputError(
                f"--overwrite: cannot remove {path}: {_describe(err)} ({err}); nothing of the new run was written"
            ) from None
    _fsync_dir(folder)


@dataclass
class Holder:
    """Who holds a folder's lock (as it wrote itself into the lock file)."""

    pid: int | None
    host: str
    started: str

    def describe(self) -> str:
        if self.pid is None:
            return "another process (it did not say which)"
        return f"process {self.pid} on host {self.host}, running since {self.started}"


def _read_holder(fd: int) -> Holder:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        info = json.loads(os.read(fd, 4096).decode() or "{}")
        return Holder(int(info["pid"]), str(info["host"]), str(info["started"]))
    except (OSError, ValueError, KeyError, TypeError):
        return Holder(None, "", "")


class FolderLock:
    """An exclusive lock on an output folder for the lifetime of a run (a context manager)."""

    def __init__(self, folder: str | os.PathLike[str]):
        self.folder = pathlib.Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> FolderLock:
        """Create the folder if needed and lock it; OutputError if that fails or another run holds it."""
        if self._fd is not None:
            return self
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise OutputError(f"cannot create the output folder {self.folder}: {_describe(err)} ({err})") from None
        if not self.folder.is_dir():
            raise OutputError(f"the output folder {self.folder} is not a folder")
        try:
            # O_NOFOLLOW: a symlink planted as the lock file is refused instead of followed
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as err:
            raise OutputError(
                f"cannot write into the output folder {self.folder} (lock file {self.path}): {_describe(err)} ({err})"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = _read_holder(fd)
            os.close(fd)
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise OutputError(
                    f"the output folder {self.folder} is in use by another run: {holder.describe()} (lock file "
                    f"{self.path}); wait for it to end or choose another output folder"
                ) from None
            raise OutputError(f"cannot lock the output folder {self.folder}: {_describe(err)} ({err})") from None
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        }
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
        except OSError as err:
            os.close(fd)
            raise output_error(self.path, err, "nothing was written") from None
        self._fd = fd
        remove_stale_temporaries(self.folder)
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

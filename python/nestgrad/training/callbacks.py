"""Training callbacks: small objects whose hooks the Trainer calls. Subclass :class:`Callback` and override the
hooks you need; every hook does nothing by default."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nestgrad.training.trainer import Trainer


class Callback:
    def on_train_begin(self, trainer: Trainer) -> None: ...

    def on_iteration_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None: ...

    def on_checkpoint(self, trainer: Trainer, path: str) -> None: ...

    def on_train_end(self, trainer: Trainer) -> None: ...


class ProgressPrinter(Callback):
    """One line per iteration (iteration, loss, accuracy, rate, time, ETA) and a progress bar on terminals."""

    def __init__(self, stream: Any = None):
        self.stream = stream or sys.stdout
        self._bar: Any = None

    def on_train_begin(self, trainer: Trainer) -> None:
        self._t0 = time.perf_counter()
        self._first = trainer.iteration
        total = trainer.config.training.iterations
        cfg = trainer.config
        print(
            f"nestgrad: training {trainer.network.describe()} on '{cfg.task.name}' for iterations "
            f"{trainer.iteration + 1}..{total}, output in {trainer.out_dir}",
            file=self.stream,
            flush=True,
        )
        if sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=trainer.iteration, unit="it", leave=False)

    def on_iteration_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        done = metrics["iteration"] - self._first
        elapsed = time.perf_counter() - self._t0
        eta = elapsed / done * (trainer.config.training.iterations - metrics["iteration"])
        acc = f"  accuracy {metrics['accuracy']:.2f}" if "accuracy" in metrics else ""
        line = (
            f"iteration {metrics['iteration']:4d}/{trainer.config.training.iterations}  "
            f"loss {metrics['loss']:.5g}{acc}  rate {metrics['rate_hz']:.1f} Hz  "
            f"[{elapsed:.1f} s, ETA {eta:.0f} s]"
        )
        if self._bar is not None:
            self._bar.update(1)
            self._bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def on_checkpoint(self, trainer: Trainer, path: str) -> None:
        msg = f"checkpoint written: {path}"
        if self._bar is not None:
            self._bar.write(msg, file=self.stream)
        else:
            print(msg, file=self.stream, flush=True)

    def on_train_end(self, trainer: Trainer) -> None:
        if self._bar is not None:
            self._bar.close()

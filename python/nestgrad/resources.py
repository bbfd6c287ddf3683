"""Memory estimates: refuse a run that cannot fit before anything large is allocated.

The estimate (:func:`estimate_training_memory`) counts what grows with the network and the data:

* NEST's nodes and synapses, at :data:`BYTES_PER_SYNAPSE` and :data:`BYTES_PER_NEURON` (measured with NEST 3.10:
  200-250 bytes per ``eprop_synapse`` including the optimizer, a few kB per e-prop neuron with its histories),
  divided among MPI ranks;
* the weights nestgrad holds as NumPy arrays on every rank (initial, current and read-back copies, Adam's moments):
  :data:`WEIGHT_COPIES` x 8 bytes per weight;
* one segment of task data (:data:`SEGMENT_BYTES` at most, see ``Trainer``) and NEST's copy of it in the generators
  and recorders.

It is a lower bound of the right order of magnitude, meant to refuse runs that could never fit (``n_rec = 20000``
needs about 80 GB for its 4e8 recurrent synapses) rather than to predict the peak to the megabyte.
"""

from __future__ import annotations

import os
import pathlib
from dataclasses import dataclass
from typing import Any

from nestgrad.errors import ResourceError

BYTES_PER_SYNAPSE = 200  # NEST 3.10 eprop_synapse with its optimizer (measured: 200-250 B)
BYTES_PER_NEURON = 4000  # an e-prop neuron with its update and spike histories (order of magnitude)
WEIGHT_COPIES = 4  # dense float64 copies of each weight nestgrad keeps on every rank
# the task data of one simulated segment: a training block (or evaluation) longer than this is simulated in several
# fresh kernels; 2 GiB keeps every shipped configuration in one segment per block (v1_orientation: 0.75 GB)
SEGMENT_BYTES = 2 * 1024**3
# full-scale Potjans-Diesmann microcircuit (for the coarse estimate of the scaled one)
_PD_NEURONS = 77_169
_PD_SYNAPSES = 299_881_000
_V1_IN_DEGREE = 600  # recurrent + LGN synapses per V1 neuron, order of magnitude at the centre's in-degree


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a run needs on each rank, and what they are made of."""

    neurons: int
    synapses: int
    nest_bytes: float  # per rank
    array_bytes: float  # per rank (NumPy weights and data)

    @property
    def total(self) -> float:
        return self.nest_bytes + self.array_bytes

    def describe(self) -> str:
        return (
            f"about {_gb(self.total)} per process ({self.neurons:.3g} neurons and {self.synapses:.3g} synapses in "
            f"NEST: {_gb(self.nest_bytes)}; weights and data in NumPy: {_gb(self.array_bytes)})"
        )


def _gb(x: float) -> str:
    return f"{x / 1e9:.3g} GB" if x >= 1e8 else f"{x / 1e6:.3g} MB"


def available_memory() -> tuple[float, float]:
    """(available, total) bytes of memory for this process: /proc/meminfo's MemAvailable and MemTotal, lowered to
    the cgroup's memory limit if one is set (containers, batch jobs)."""
    total = float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    available = total
    try:
        for line in pathlib.Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = float(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = pathlib.Path(limit_file).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and float(text) < total:
            total = float(text)
            available = min(available, total)
    return available, total


def estimate(neurons: float, synapses: float, dense_weights: float, data_bytes: float, ranks: int) -> MemoryEstimate:
    """Memory per rank of a network of ``neurons`` and ``synapses`` whose weights nestgrad holds as
    ``dense_weights`` float64 values, with ``data_bytes`` of task data per segment."""
    ranks = max(int(ranks), 1)
    nest = (neurons * BYTES_PER_NEURON + synapses * BYTES_PER_SYNAPSE) / ranks
    arrays = dense_weights * 8.0 * WEIGHT_COPIES + 2.0 * data_bytes  # the batches, and NEST's copy in the generators
    return MemoryEstimate(int(neurons), int(synapses), nest, arrays)


def classic_size(n_in: int, n_rec: int, n_out: int, recurrent: bool) -> tuple[int, int, int]:
    """(neurons, synapses, dense weights) of the classic e-prop network (generators, parrots, recurrent neurons,
    readouts; all-to-all projections and feedback)."""
    neurons = 2 * n_in + n_rec + 2 * n_out + 1
    rec = n_rec * (n_rec - 1) if recurrent else 0
    synapses = n_in + n_in * n_rec + rec + 2 * n_rec * n_out + 2 * n_out
    dense = n_in * n_rec + n_rec * n_rec + 2 * n_rec * n_out
    return neurons, synapses, dense


def microcircuit_size(n_scaling: float, k_scaling: float) -> tuple[int, int, int]:
    """Coarse (neurons, synapses, dense weights) of the scaled Potjans-Diesmann microcircuit."""
    neurons = int(_PD_NEURONS * n_scaling)
    synapses = int(_PD_SYNAPSES * n_scaling * k_scaling)
    return neurons, synapses, int(synapses * 0.01)  # only the thalamic and readout weights are held by nestgrad


def v1_size(n_neurons: int) -> tuple[int, int, int]:
    """Coarse (neurons, synapses, dense weights) of the V1 column: nestgrad holds every weight as a vector."""
    synapses = n_neurons * _V1_IN_DEGREE
    return n_neurons, synapses, synapses


def check_memory(what: str, est: MemoryEstimate) -> None:
    """Raise :class:`~nestgrad.errors.ResourceError` if ``est`` exceeds the memory available now."""
    available, total = available_memory()
    if est.total > available:
        raise ResourceError(
            f"{what} needs {est.describe()}, more than the {_gb(available)} available (of {_gb(total)}) on this "
            "machine; make the network smaller, or spread it over MPI processes on several nodes"
        )


# NEST threads beyond this many per CPU only add overhead; far beyond it NEST runs out of memory or crashes
THREADS_PER_CPU = 4


def cpu_count() -> int:
    return os.cpu_count() or 1


def check_threads(threads: int, key: str = "training.threads") -> None:
    """Refuse more NEST threads than :data:`THREADS_PER_CPU` x the machine's CPUs (ConfigError naming ``key``)."""
    from nestgrad.errors import ConfigError

    limit = THREADS_PER_CPU * cpu_count()
    if threads > limit:
        raise ConfigError(
            f"{key} = {threads} is more than {THREADS_PER_CPU} x the {cpu_count()} CPUs of this machine ({limit}): "
            "NEST allocates per-thread buffers (100000 threads crash it) and gains nothing from threads beyond the "
            f"CPUs; use at most {limit}"
        )


def mpi_ranks() -> int:
    """Number of MPI processes NEST runs in (1 without MPI)."""
    import nest

    return int(nest.num_processes if hasattr(nest, "num_processes") else nest.NumProcesses())


@dataclass(frozen=True)
class NetworkSize:
    """What a run's memory grows with (each architecture estimates it from its configuration alone,
    :attr:`nestgrad.networks.registry.Architecture.size`)."""

    neurons: int
    synapses: int
    dense_weights: int  # float64 weights nestgrad holds per rank
    batch_bytes: float  # task data of one batch (0: counted elsewhere)


def training_estimate(config: Any, size: NetworkSize, ranks: int = 1) -> MemoryEstimate:
    """The memory estimate of a training run of ``config`` (an ExperimentConfig) of ``size``."""
    data = max(size.batch_bytes, min(size.batch_bytes * config.training.checkpoint_every, SEGMENT_BYTES))
    return estimate(size.neurons, size.synapses, size.dense_weights, data, ranks)


def check_training(config: Any, size: NetworkSize) -> None:
    """Threads and memory of a training run, checked before anything is built (ConfigError, ResourceError)."""
    check_threads(config.training.threads)
    check_memory("this run", training_estimate(config, size, mpi_ranks()))

"""Inputs, targets, learning windows and recorders of a network trained in NEST, for every nestgrad network.

Timing (all e-prop connections have a delay of one step, as NEST 3.10 requires): the input spikes of data step
``j`` are emitted by spike generators at ``(j + OFFSET_GEN_STEPS) dt`` and relayed by parrot neurons; targets and
the learning window reach the readouts through ``step_rate_generator``s at ``(j + OFFSET_GEN_STEPS + DELAY_STEPS)
dt``; the readout's membrane potential for data step ``j`` is recorded at ``(j + 3) dt``. Iterations start
:func:`lead_in_ms` after the kernel's time 0, so that each iteration's samples fall into its own ``Run`` call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from nestgrad.nest_engine import STATIC_SYNAPSE

# Steps between an input spike time and the recurrent layer (generator offset + input delay), as in NEST's examples.
OFFSET_GEN_STEPS = 1
DELAY_STEPS = 1
TARGET_RECEPTOR = 2  # eprop_readout's receptor for the target signal
WINDOW_RECEPTOR = 1  # ... and for the learning window


def lead_in_ms(resolution: float) -> float:
    """Simulated time before the first iteration begins: the readout's response to data step ``j`` is recorded at
    ``(OFFSET_GEN_STEPS + DELAY_STEPS + 1 + j)`` steps, so starting one step after the generators' offset and delay
    puts all of an iteration's samples inside its own ``Run`` call."""
    return (OFFSET_GEN_STEPS + DELAY_STEPS + 1) * resolution


@dataclass
class Recordings:
    """What one iteration recorded, aligned to the iteration's time steps."""

    readout: np.ndarray  # (steps, n_out), readout membrane potential y
    target: np.ndarray  # (steps, n_out), target as the readout received it (times the learning window)
    spike_steps: np.ndarray  # time step (from the iteration start) of each recorded spike
    spike_senders: np.ndarray  # index of the recorded neuron (0-based, in the order of the recorded ids)


@dataclass
class DataDevices:
    """The generators that feed a network its data and the recorders the Trainer reads."""

    gen_in: Any  # spike_generator per input neuron
    inputs: Any  # parrot_neuron per input neuron (the sources of the input projections)
    gen_target: Any  # step_rate_generator per readout
    gen_window: Any  # one step_rate_generator
    multimeter: Any  # V_m and target_signal of the readouts
    spike_recorder: Any
    readout_ids: np.ndarray  # global ids of the readouts, in readout order
    recorded_ids: np.ndarray  # sorted global ids of the neurons whose spikes are recorded


def create_input_nodes(nest: Any, n_in: int) -> tuple[Any, Any]:
    """A ``spike_generator`` and a ``parrot_neuron`` per input (the parrots are the input projections' sources)."""
    return nest.Create("spike_generator", n_in), nest.Create("parrot_neuron", n_in)


def create_target_nodes(nest: Any, n_out: int) -> tuple[Any, Any]:
    """A ``step_rate_generator`` of the target per readout and one of the learning window."""
    return nest.Create("step_rate_generator", n_out), nest.Create("step_rate_generator")


def connect_inputs(nest: Any, gen_in: Any, inputs: Any, step: float) -> None:
    nest.Connect(gen_in, inputs, "one_to_one", {"synapse_model": STATIC_SYNAPSE, "delay": step})


def connect_data_devices(
    nest: Any,
    gen_in: Any,
    inputs: Any,
    gen_target: Any,
    gen_window: Any,
    readouts: Any,
    recorded_ids: np.ndarray,
    step: float,
) -> DataDevices:
    """Targets and learning window into the readouts (``eprop_readout`` nodes), a multimeter on the readouts and a
    spike recorder on the neurons ``recorded_ids``; returns every device for :func:`set_generators` and
    :func:`collect`."""
    rate = {"synapse_model": "rate_connection_delayed", "delay": step}
    nest.Connect(gen_target, readouts, "one_to_one", rate | {"receptor_type": TARGET_RECEPTOR})
    nest.Connect(gen_window, readouts, "all_to_all", rate | {"receptor_type": WINDOW_RECEPTOR})
    mm = nest.Create("multimeter", {"interval": step, "record_from": ["V_m", "target_signal"]})
    nest.Connect(mm, readouts)
    sr = nest.Create("spike_recorder")
    recorded = np.sort(np.asarray(recorded_ids, dtype=np.int64))
    if recorded.size:
        nest.Connect(nest.NodeCollection(recorded.tolist()), sr)
    return DataDevices(gen_in, inputs, gen_target, gen_window, mm, sr, np.asarray(readouts.tolist()), recorded)


def set_generators(devices: DataDevices, batches: list[Any], step: float) -> None:
    """Input spikes, targets and learning window of consecutive iterations (``TrialBatch``es), from the kernel's
    time 0: data step j is emitted by the spike generators at (j + 1) steps and reaches the readouts' rate inputs at
    (j + 2) steps."""
    spikes = np.concatenate([b.input_spikes for b in batches])
    target = np.concatenate([b.target for b in batches])
    window = np.concatenate([b.learning_window for b in batches])
    steps, senders = np.nonzero(spikes)
    times = (steps + OFFSET_GEN_STEPS) * step
    order = np.argsort(senders, kind="stable")
    per_sender = np.split(times[order], np.searchsorted(senders[order], np.arange(1, spikes.shape[1])))
    devices.gen_in.set([{"spike_times": np.round(t, 10)} for t in per_sender])
    amp_times = (np.arange(spikes.shape[0]) + OFFSET_GEN_STEPS + DELAY_STEPS) * step
    devices.gen_target.set(
        [{"amplitude_times": amp_times, "amplitude_values": target[:, k]} for k in range(target.shape[1])]
    )
    change = np.flatnonzero(np.diff(np.concatenate([[np.nan], window])) != 0)
    devices.gen_window.set({"amplitude_times": amp_times[change], "amplitude_values": window[change]})


def collect(devices: DataDevices, t_start_ms: float, steps: int, step: float, comm: Any) -> Recordings:
    """Readout membrane potentials and targets [steps, n_out] from the readouts' multimeter, and the spikes of the
    recorded neurons (sender = index into the sorted recorded ids) of the iteration that began at ``t_start_ms``,
    gathered over MPI ranks. Recorders cannot be cleared inside NEST's Prepare/Run context, so they keep a block's
    events and each iteration selects its own by time."""
    ev = {
        k: comm.concat(np.asarray(v))
        for k, v in devices.multimeter.get("events").items()
        if k in ("times", "senders", "V_m", "target_signal")
    }
    out_ids = devices.readout_ids
    k = np.rint((ev["times"] - t_start_ms) / step).astype(np.int64)
    col = np.searchsorted(out_ids, ev["senders"])
    keep = (k >= 0) & (k < steps)
    readout = np.zeros((steps, out_ids.size))
    target = np.zeros((steps, out_ids.size))
    readout[k[keep], col[keep]] = ev["V_m"][keep]
    target[k[keep], col[keep]] = ev["target_signal"][keep]
    spikes = {
        k2: comm.concat(np.asarray(v))
        for k2, v in devices.spike_recorder.get("events").items()
        if k2 in ("times", "senders")
    }
    s_steps = np.rint((spikes["times"] - t_start_ms) / step).astype(np.int64)
    s_keep = (s_steps >= 0) & (s_steps < steps)
    senders = np.searchsorted(devices.recorded_ids, spikes["senders"][s_keep])
    return Recordings(readout, target, s_steps[s_keep], senders)

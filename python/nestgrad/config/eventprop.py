"""The tables ``[network.params]`` and ``[task.params]`` of the architecture ``eventprop``: a network trained by
EventProp inside NEST (inputs -> hidden ``eventprop_iaf_psc_exp_ps`` -> leaky ``eventprop_readout_ps`` readouts,
docs/eventprop.md), and of its task ``digits_latency`` (tasks/digits_latency.py).

Defaults are those of mlGeNN's EventProp latency-MNIST example as the benchmark uses them
(``scaling_runs/torch_bptt_digits.py``, ``DigitsNetwork``): tau_m 20 ms with C_m = tau_m (mlGeNN's neurons integrate
tau_m dV/dt = -V + I), tau_syn 5 ms, threshold 1 mV, 1 ms delays, cross-entropy on the readouts' mean voltage.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Self

import numpy as np

from nestgrad.config.tables import check_number_table, finite_number, from_table
from nestgrad.errors import ConfigError

EVENTPROP_LOSSES = ("sum", "max", "sum_exp")  # cross-entropy on the readouts' mean, maximum or weighted mean voltage
EVENTPROP_OUTPUTS = (
    "readout",
    "spiking",
)  # leaky readouts (cross-entropy on voltages) or spiking outputs (first spike)
FIRST_SPIKE_LOSSES = ("first_spike",)  # Göltz et al. 2021: cross-entropy on -t_first / (xi tau_s) + regulariser
# Göltz, Kriener et al. 2021 (their published yin_yang.yaml and mnist.yaml): the defaults of xi, alpha, beta
FIRST_SPIKE_DEFAULTS: dict[str, float] = {"xi": 0.2, "alpha": 0.005, "beta": 1.0}
HIDDEN_DEFAULTS: dict[str, float] = {
    "C_m": 20.0,  # pF
    "tau_m": 20.0,  # ms
    "tau_syn": 5.0,  # ms
    "E_L": 0.0,  # mV
    "V_th": 1.0,  # mV
    "V_reset": 0.0,  # mV
    "t_ref": 0.0,  # ms
    "I_e": 0.0,  # pA
    "adapt_tau": 100.0,  # ms
    "adapt_beta": 0.0,  # mV: 0 = no threshold adaptation
}
READOUT_EVENTPROP_DEFAULTS: dict[str, float] = {"C_m": 20.0, "tau_m": 20.0, "tau_syn": 5.0, "E_L": 0.0, "I_e": 0.0}
# spiking outputs (output = "spiking"): eventprop_iaf_psc_exp_ps, the hidden neurons' parameters and defaults
OUTPUT_NEURON_DEFAULTS: dict[str, float] = dict(HIDDEN_DEFAULTS)


# the eventprop architecture's projections (learning_rates' keys)
PROJECTIONS = ("in_hid", "hid_hid", "hid_out", "bias_hid", "bias_out")


@dataclass(frozen=True)
class EventpropConfig:
    n_hidden: int = 100
    recurrent: bool = False  # hidden -> hidden connections (no autapses)
    hidden: dict[str, float] = field(default_factory=dict)  # overrides of HIDDEN_DEFAULTS (NEST names, units)
    readout: dict[str, float] = field(default_factory=dict)  # overrides of READOUT_EVENTPROP_DEFAULTS
    # cross-entropy on the readouts' mean ("sum"), maximum ("max") or exp(-t / tau_w)-weighted mean ("sum_exp",
    # Nowotny et al.'s loss shaping) voltage over the trial
    loss: str = "sum"
    tau_w: float | None = None  # ms, the weighting of "sum_exp" (None: the trial duration)
    # ms, start of the response window [window_start, T] over which the loss takes y (None: the task's, i.e. the
    # recall period of evidence_spikes and the whole trial of digits_latency; 0: the whole trial)
    window_start: float | None = None
    delay: float = 1.0  # ms, every connection (a multiple of the resolution)
    # ms per projection (in_hid, hid_hid, hid_out, bias_hid, bias_out) instead of delay, e.g. bias_out = 2 * delay:
    # the output layer's bias spike then arrives at bias_time in the output layer's frame, as in a network without
    # delays (its hidden spikes arrive two delays after the inputs they answer)
    delays: dict[str, float] = field(default_factory=dict)
    # initial weights (pA), normal(mean, std) per projection
    w_in_mean: float = 0.02
    w_in_std: float = 0.045
    w_rec_mean: float = 0.0
    w_rec_std: float = 0.02
    w_out_mean: float = 0.2
    w_out_std: float = 0.37
    # weight bounds (pA) per projection, kept at every optimizer step (None: unbounded on that side)
    w_in_min: float | None = None
    w_in_max: float | None = None
    w_rec_min: float | None = None
    w_rec_max: float | None = None
    w_out_min: float | None = None
    w_out_max: float | None = None
    # Dale's law: every neuron's outgoing weights keep one sign through training; the inputs and the first hidden
    # neurons are excitatory (>= 0), the last round(inhibitory_fraction * n_hidden) hidden neurons inhibitory (<= 0)
    dale: bool = False
    inhibitory_fraction: float | None = None  # in [0, 1]; None: 0.2 (with dale = true only)
    # "readout": leaky readouts, loss sum/max/sum_exp; "spiking": eventprop_iaf_psc_exp_ps outputs (parameters:
    # output_neuron, overrides of OUTPUT_NEURON_DEFAULTS) trained by loss = "first_spike"; prediction = earliest spike
    output: str = "readout"
    output_neuron: dict[str, float] = field(default_factory=dict)
    # loss = "first_spike" (Göltz et al. 2021): L = -log softmax(-t / (xi tau_s))_label + alpha (exp(t_label / (beta
    # tau_s)) - 1); None: FIRST_SPIKE_DEFAULTS, and tau_s = the output neurons' tau_syn (ms)
    xi: float | None = None
    alpha: float | None = None
    beta: float | None = None
    tau_s: float | None = None
    # ms, trial-local: one extra input neuron ("bias") that spikes once at this time in every trial and projects to
    # the hidden and the output layer (Göltz et al.'s bias spike; weights drawn like in_hid's and hid_out's); None: none
    bias_time: float | None = None
    # eta per projection (in_hid, hid_hid, hid_out, bias_hid, bias_out) that does not take the optimizer's, at
    # iteration 0 (the optimizer's decay scales them alike); 0 freezes a projection
    learning_rates: dict[str, float] = field(default_factory=dict)
    # pA, output = "spiking": after every training batch in which an output neuron missed a spike in some trial, every
    # weight into that neuron grows by weight_bump (Göltz et al.'s "weight bumping", which keeps outputs from falling
    # silent for good: a silent output gets no gradient); 0: off
    weight_bump: float = 0.0
    # Göltz et al.'s full bumping protocol (all need weight_bump > 0): double the bump when the same layer was bumped
    # after the previous batch too; a bumped batch takes no optimizer step; and bump the hidden neurons that missed a
    # spike in some trial when more than this fraction of the batch's (trial, hidden neuron) pairs had no spike (the
    # outputs are then not bumped; theirs: 0.3); None: hidden neurons are never bumped
    weight_bump_doubling: bool = False
    weight_bump_skips_step: bool = False
    weight_bump_hidden_missing: float | None = None
    # pA, with weight_bump_doubling: the doubling stops at this bump (None: no limit). Late in training, when most
    # batches bump an output, doubled bumps grow larger than the optimizer's steps (docs/first_spike_time.md)
    weight_bump_max: float | None = None
    # 1/pA, per-trial gradient clipping (Göltz et al.'s max_dw_norm): a spiking neuron whose largest incoming weight
    # gradient of one trial exceeds this drops that trial's gradients of all its incoming weights (near a grazing
    # threshold crossing dt/dw diverges); None: off. Göltz et al.'s 0.2 on a per-sample gradient of a batch-mean loss
    # with batches of 150 is 30 on one trial's gradient.
    max_trial_gradient: float | None = None

    def __post_init__(self) -> None:
        p = "network.params"
        if isinstance(self.n_hidden, bool) or not isinstance(self.n_hidden, int) or not 1 <= self.n_hidden <= 100_000:
            raise ConfigError(f"{p}.n_hidden = {self.n_hidden!r}: an integer in 1..100000 is required")
        if not isinstance(self.recurrent, bool):
            raise ConfigError(f"{p}.recurrent = {self.recurrent!r}: true or false")
        if self.output not in EVENTPROP_OUTPUTS:
            raise ConfigError(f"{p}.output = {self.output!r}: one of {', '.join(EVENTPROP_OUTPUTS)}")
        spiking = self.output == "spiking"
        allowed = FIRST_SPIKE_LOSSES if spiking else EVENTPROP_LOSSES
        if self.loss not in allowed:
            if self.loss in EVENTPROP_LOSSES + FIRST_SPIKE_LOSSES:
                raise ConfigError(
                    f"{p}.loss = {self.loss!r} does not fit output = {self.output!r}: with output = {self.output!r} "
                    f"the loss is one of {', '.join(allowed)}"
                )
            raise ConfigError(f"{p}.loss = {self.loss!r}: one of {', '.join(EVENTPROP_LOSSES + FIRST_SPIKE_LOSSES)}")
        for key in ("xi", "alpha", "beta", "tau_s"):
            value = getattr(self, key)
            if value is None:
                continue
            finite_number(f"{p}.{key}", value, 0.0, lo_open=key != "alpha")
            if not spiking:
                raise ConfigError(f"{p}.{key} = {value!r} is used by loss = 'first_spike' only (loss = {self.loss!r})")
        if self.bias_time is not None:
            finite_number(f"{p}.bias_time", self.bias_time, 0.0)
        finite_number(f"{p}.weight_bump", self.weight_bump, 0.0)
        if self.weight_bump and not spiking:
            raise ConfigError(f"{p}.weight_bump = {self.weight_bump!r} is used by output = 'spiking' only")
        if self.weight_bump and (self.dale or self.w_out_min is not None or self.w_out_max is not None):
            # the bump is added outside the optimizer, so it would not respect the bounds or the signs
            raise ConfigError(
                f"{p}.weight_bump = {self.weight_bump!r} cannot be combined with dale or w_out_min/w_out_max "
                "(the bump is added outside the synapses' bounded optimizer step)"
            )
        self._check_projection_table(p, "learning_rates", "eta", lo_open=False, note="0 freezes the projection")
        self._check_projection_table(p, "delays", "delay in ms", lo_open=True)
        frozen = sorted(k for k, v in self.learning_rates.items() if v == 0)
        if self.weight_bump and frozen:
            raise ConfigError(
                f"{p}.weight_bump = {self.weight_bump!r} cannot be combined with frozen projections {frozen} "
                "(the bump raises weights outside the optimizer)"
            )
        if self.max_trial_gradient is not None:
            finite_number(f"{p}.max_trial_gradient", self.max_trial_gradient, 0.0, lo_open=True)
        for key in ("weight_bump_doubling", "weight_bump_skips_step"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"{p}.{key} = {getattr(self, key)!r}: true or false")
        if self.weight_bump_hidden_missing is not None:
            f = finite_number(f"{p}.weight_bump_hidden_missing", self.weight_bump_hidden_missing, 0.0)
            if not f < 1.0:
                raise ConfigError(f"{p}.weight_bump_hidden_missing = {f!r}: a fraction in [0, 1) is required")
        extras = [k for k in ("weight_bump_doubling", "weight_bump_skips_step") if getattr(self, k)]
        extras += ["weight_bump_hidden_missing"] if self.weight_bump_hidden_missing is not None else []
        extras += ["weight_bump_max"] if self.weight_bump_max is not None else []
        if extras and not self.weight_bump:
            raise ConfigError(f"{p}.{extras[0]} is part of weight bumping: it needs {p}.weight_bump > 0")
        if self.weight_bump_max is not None:
            cap = finite_number(
                f"{p}.weight_bump_max", self.weight_bump_max, float(self.weight_bump), note="weight_bump"
            )
            if not self.weight_bump_doubling:
                raise ConfigError(f"{p}.weight_bump_max = {cap!r} limits the doubling: it needs weight_bump_doubling")
        if spiking and self.readout:
            raise ConfigError(f"{p}.readout is the leaky readouts' table; output = 'spiking' uses {p}.output_neuron")
        if not spiking and self.output_neuron:
            raise ConfigError(f"{p}.output_neuron is used by output = 'spiking' only (output = {self.output!r})")
        finite_number(f"{p}.delay", self.delay, 0.0, lo_open=True)
        if self.tau_w is not None:
            finite_number(f"{p}.tau_w", self.tau_w, 0.0, lo_open=True)
            if self.loss != "sum_exp":
                raise ConfigError(f"{p}.tau_w = {self.tau_w!r} is used by loss = 'sum_exp' only (loss = {self.loss!r})")
        if self.window_start is not None:
            finite_number(f"{p}.window_start", self.window_start, 0.0)
            if spiking:
                raise ConfigError(
                    f"{p}.window_start = {self.window_start!r} is a window of the readouts' cross-entropy; "
                    "output = 'spiking' (first-spike loss) has none"
                )
        for key in ("w_in_mean", "w_rec_mean", "w_out_mean"):
            finite_number(f"{p}.{key}", getattr(self, key))
        for key in ("w_in_std", "w_rec_std", "w_out_std"):
            finite_number(f"{p}.{key}", getattr(self, key), 0.0)
        if not isinstance(self.dale, bool):
            raise ConfigError(f"{p}.dale = {self.dale!r}: true or false")
        for short in ("in", "rec", "out"):
            lo, hi = getattr(self, f"w_{short}_min"), getattr(self, f"w_{short}_max")
            for key, value in ((f"w_{short}_min", lo), (f"w_{short}_max", hi)):
                if value is not None:
                    finite_number(f"{p}.{key}", value)
            if lo is not None and hi is not None and not lo < hi:
                raise ConfigError(
                    f"{p}.w_{short}_min = {lo!r}, w_{short}_max = {hi!r}: need w_{short}_min < w_{short}_max"
                )
            if short == "rec" and not self.recurrent and (lo is not None or hi is not None):
                raise ConfigError(f"{p}.w_rec_min/w_rec_max bound the recurrent weights: set recurrent = true")
            # the inputs are excitatory; hidden neurons of both signs project to hid_hid and hid_out
            if self.dale and ((short != "in" and lo is not None and lo > 0.0) or (hi is not None and hi < 0.0)):
                raise ConfigError(
                    f"{p}.w_{short}_min = {lo!r}, w_{short}_max = {hi!r}: with dale = true the bounds must include 0 "
                    "(excitatory weights are >= 0, inhibitory ones <= 0)"
                )
        if self.inhibitory_fraction is not None:
            f = finite_number(f"{p}.inhibitory_fraction", self.inhibitory_fraction, 0.0)
            if f > 1.0:
                raise ConfigError(f"{p}.inhibitory_fraction = {f!r}: must be in [0, 1]")
            if not self.dale:
                raise ConfigError(f"{p}.inhibitory_fraction = {f!r} is used with dale = true only")
        for table, defaults in (
            ("hidden", HIDDEN_DEFAULTS),
            ("readout", READOUT_EVENTPROP_DEFAULTS),
            ("output_neuron", OUTPUT_NEURON_DEFAULTS),
        ):
            values = getattr(self, table)
            if not isinstance(values, Mapping):
                raise ConfigError(f"{p}.{table} = {values!r}: a table of parameters is required")
            unknown = sorted(set(values) - set(defaults))
            if unknown:
                raise ConfigError(f"{p}.{table}: unknown parameter(s) {unknown}; known: {sorted(defaults)}")
            for key, value in values.items():
                positive = key in ("C_m", "tau_m", "tau_syn", "adapt_tau")
                lo = 0.0 if positive or key in ("t_ref", "adapt_beta") else -math.inf
                finite_number(f"{p}.{table}.{key}", value, lo, lo_open=positive)
        h = self.hidden_params()
        if not h["V_th"] > h["V_reset"]:
            raise ConfigError(f"{p}.hidden: V_th = {h['V_th']} mV must exceed V_reset = {h['V_reset']} mV")
        o = self.output_neuron_params()
        if not o["V_th"] > o["V_reset"]:
            raise ConfigError(f"{p}.output_neuron: V_th = {o['V_th']} mV must exceed V_reset = {o['V_reset']} mV")

    def n_inhibitory(self) -> int:
        """Inhibitory hidden neurons under Dale's law (the last ones); 0 without it."""
        if not self.dale:
            return 0
        f = 0.2 if self.inhibitory_fraction is None else float(self.inhibitory_fraction)
        return int(round(f * self.n_hidden))

    def _check_projection_table(self, p: str, key: str, what: str, lo_open: bool, note: str = "") -> None:
        """A table of projection -> number (>= 0, or > 0 with ``lo_open``) for projections this network has."""
        table = getattr(self, key)
        check_number_table(f"{p}.{key}", table, PROJECTIONS, item="projection", what=what, lo=0.0, lo_open=lo_open,
                           note=note)  # fmt: skip
        if (name := "hid_hid") in table and not self.recurrent:
            raise ConfigError(f"{p}.{key}.{name}: the network has no recurrent projection (recurrent = false)")
        for name in ("bias_hid", "bias_out"):
            if name in table and self.bias_time is None:
                raise ConfigError(f"{p}.{key}.{name}: the network has no bias input (bias_time is not set)")

    def weight_bounds(self) -> dict[str, tuple[float, float]]:
        """(Wmin, Wmax) in pA per projection that has a bound (``in_hid``, ``hid_hid``, ``hid_out``)."""
        out = {}
        for name, short in (("in_hid", "in"), ("hid_hid", "rec"), ("hid_out", "out")):
            lo, hi = getattr(self, f"w_{short}_min"), getattr(self, f"w_{short}_max")
            if lo is not None or hi is not None:
                out[name] = (-math.inf if lo is None else float(lo), math.inf if hi is None else float(hi))
        return out

    def hidden_params(self) -> dict[str, float]:
        return HIDDEN_DEFAULTS | {k: float(v) for k, v in self.hidden.items()}

    def readout_params(self) -> dict[str, float]:
        return READOUT_EVENTPROP_DEFAULTS | {k: float(v) for k, v in self.readout.items()}

    def output_neuron_params(self) -> dict[str, float]:
        """The spiking output neurons' parameters (output = "spiking")."""
        return OUTPUT_NEURON_DEFAULTS | {k: float(v) for k, v in self.output_neuron.items()}

    def first_spike_constants(self) -> dict[str, float]:
        """xi, alpha, beta and tau_s (ms) of loss = "first_spike", defaults filled in."""
        out = {k: float(v if getattr(self, k) is None else getattr(self, k)) for k, v in FIRST_SPIKE_DEFAULTS.items()}
        out["tau_s"] = float(self.output_neuron_params()["tau_syn"] if self.tau_s is None else self.tau_s)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EventpropConfig:
        return from_table(cls, d, "network.params")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


SOURCE_SIDE = 8  # scikit-learn's digits are 8 x 8


def _integer(where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{where} = {value!r}: need an integer")
    return int(value)


class TaskParams:
    """The shape shared by the frozen dataclasses of the eventprop tasks' ``[task.params]`` tables: built from the
    table (unknown keys refused), then validated; written back as a plain dict. A subclass implements ``validate``."""

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first bad field."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]  # every subclass is a dataclass

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        """``[task.params]`` of the task, validated."""
        cfg = from_table(cls, d, "task.params")  # type: ignore[type-var]
        cfg.validate()
        return cfg


@dataclass(frozen=True)
class DigitsLatencyConfig(TaskParams):
    """How the digits become spikes. Times in ms; intensities in [0, 1]."""

    side: int = 28  # upsampled image side (px); inputs = side**2
    t_min: float = 2.0  # ms: spike time of the brightest pixel (intensity 1)
    t_max: float = 18.0  # ms: the time intensity 0 would map to (never emitted: below threshold)
    duration: float = 20.0  # ms: trial length T
    threshold: float = 1.0 / 255.0  # a pixel spikes iff its intensity is > threshold
    test_fraction: float = 0.2  # per class
    split_seed: int = 0xD161

    @property
    def n_in(self) -> int:
        return self.side * self.side

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first bad field."""
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type in ("int", int):
                _integer(f"digits_latency.{f.name}", value)
            elif isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
                raise ConfigError(f"digits_latency.{f.name} = {value!r}: need a number")
            elif not math.isfinite(float(value)):
                raise ConfigError(f"digits_latency.{f.name} = {value!r}: need a finite number")
        if self.side < SOURCE_SIDE:
            raise ConfigError(f"digits_latency.side = {self.side}: need >= {SOURCE_SIDE} (the source images' side)")
        if self.t_min < 0:
            raise ConfigError(f"digits_latency.t_min = {self.t_min} ms: need >= 0")
        if not self.t_max > self.t_min:
            raise ConfigError(f"digits_latency.t_max = {self.t_max} ms: need > t_min = {self.t_min} ms")
        if not self.duration >= self.t_max:
            raise ConfigError(
                f"digits_latency.duration = {self.duration} ms: need >= t_max = {self.t_max} ms (every spike "
                "inside the trial)"
            )
        if not 0.0 <= self.threshold < 1.0:
            raise ConfigError(f"digits_latency.threshold = {self.threshold}: need 0 <= threshold < 1")
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"digits_latency.test_fraction = {self.test_fraction}: need 0 < test_fraction < 1")
        if self.split_seed < 0:
            raise ConfigError(f"digits_latency.split_seed = {self.split_seed}: need >= 0")


@dataclass(frozen=True)
class EvidenceSpikesConfig(TaskParams):
    """``[task.params]`` of the task ``evidence_spikes`` (tasks/evidence_spikes.py): evidence accumulation as
    nestgrad's ``evidence`` task poses it (Bellec et al. 2020, Fig. 3), with exact Poisson spike times.

    Times in ms, rates in Hz. Four input groups of ``group`` neurons: left cues, right cues, recall cue, background.
    """

    n_cues: int = 5  # odd, so that one side wins
    group: int = 10  # neurons per input group
    cue_ms: float = 50.0  # each cue lasts this long
    cue_spacing_ms: float = 25.0  # silence (background only) after each cue
    delay_ms: float = 150.0  # between the end of the last cue period and the recall cue
    recall_ms: float = 100.0  # the recall cue; the loss is taken over this window
    cue_rate: float = 40.0  # Hz: rate of a cue group while its cue is on, and of the recall group during recall
    background_rate: float = 10.0  # Hz: the background group, all trial long
    cue_side_probability: float = 0.8  # each trial's cues fall on its majority side with this probability
    test_seed: int = 0xE71D  # the held-out (evaluation) trials' random stream, disjoint from training's

    @property
    def n_in(self) -> int:
        return 4 * self.group

    @property
    def n_out(self) -> int:
        return 2

    @property
    def cue_period(self) -> float:
        return self.cue_ms + self.cue_spacing_ms

    @property
    def recall_start(self) -> float:
        return self.n_cues * self.cue_period + self.delay_ms

    @property
    def duration(self) -> float:
        return self.recall_start + self.recall_ms

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first bad field (``task.params.<field>``)."""
        p = "task.params"
        for key in ("n_cues", "group", "test_seed"):
            _integer(f"{p}.{key}", getattr(self, key))
        if self.n_cues < 1 or self.n_cues % 2 == 0:
            raise ConfigError(f"{p}.n_cues = {self.n_cues}: need an odd number >= 1 (so that one side wins)")
        if not 1 <= self.group <= 10_000:
            raise ConfigError(f"{p}.group = {self.group}: need 1..10000 neurons per input group")
        if self.test_seed < 0:
            raise ConfigError(f"{p}.test_seed = {self.test_seed}: need >= 0")
        finite_number(f"{p}.cue_ms", self.cue_ms, 0.0, lo_open=True)
        finite_number(f"{p}.recall_ms", self.recall_ms, 0.0, lo_open=True)
        for key in ("cue_spacing_ms", "delay_ms", "cue_rate", "background_rate"):
            finite_number(f"{p}.{key}", getattr(self, key), 0.0)
        for key in ("cue_rate", "background_rate"):
            if getattr(self, key) > 1000.0:
                raise ConfigError(f"{p}.{key} = {getattr(self, key)} Hz: need <= 1000 Hz")
        q = finite_number(f"{p}.cue_side_probability", self.cue_side_probability)
        if not 0.5 <= q <= 1.0:
            raise ConfigError(f"{p}.cue_side_probability = {q}: need a probability in [0.5, 1]")
        if self.duration > 60_000.0:
            raise ConfigError(f"{p}: a trial of {self.duration} ms (> 60 s): shorten cue_ms, delay_ms or recall_ms")


@dataclass(frozen=True)
class YinYangTaskConfig(TaskParams):
    """``[task.params]`` of the task ``yinyang`` (tasks/yinyang.py): the Yin-Yang points as spike times, Göltz et
    al.'s coding. Each input value u in [0, 1] of (x, y, 1 - x, 1 - y) fires once at t_early + u (t_late - t_early)
    (ms). Defaults: their 0.15 tau_s and 2 tau_s for tau_s = 5 ms, and a trial of 4 tau_s (their sim_time). The bias
    spike is the network's (network.params.bias_time; theirs is 0.9 tau_s = 4.5 ms). ``jitter``: standard deviation
    of Gaussian noise added to the training points' input spike times, new in every iteration (as Göltz et al.'s
    training_noise, which their Yin-Yang set-up leaves off; a negative time is mirrored at 0); test and validation
    points stay clean."""

    t_early: float = 0.75  # ms
    t_late: float = 10.0  # ms
    duration: float = 20.0  # ms, trial length T
    jitter: float = 0.0  # ms, training inputs only

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first bad field (``task.params.<field>``)."""
        where = "task.params"
        for f in fields(self):
            finite_number(f"{where}.{f.name}", getattr(self, f.name), 0.0)
        if not self.t_late > self.t_early:
            raise ConfigError(f"{where}.t_late = {self.t_late} ms: need > t_early = {self.t_early} ms")
        if not self.duration > self.t_late:
            raise ConfigError(
                f"{where}.duration = {self.duration} ms: need > t_late = {self.t_late} ms (every input spike inside "
                "the trial)"
            )
        if not self.jitter <= 0.25 * (self.duration - self.t_late):
            raise ConfigError(
                f"{where}.jitter = {self.jitter} ms: need <= (duration - t_late) / 4 = "
                f"{0.25 * (self.duration - self.t_late):g} ms, so that jittered input spikes stay inside the trial "
                "(a spike past it is moved to the trial's end)"
            )

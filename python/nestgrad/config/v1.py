"""Configuration of the Billeh et al. (2020) V1 column (``[network.v1]``) and of Chen et al.'s visual tasks
(``[task.v1]``): frozen dataclasses, validated on construction. The network is built by
:mod:`nestgrad.networks.v1`, the tasks by :mod:`nestgrad.tasks.v1`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nestgrad.config.tables import check_number_table, from_table
from nestgrad.errors import ConfigError

V1_CORE_NEURONS = 51_978  # neurons of Billeh et al.'s 400-um core (nestgrad.networks.v1_data.N_FULL)
FIELD_SHAPE: tuple[int, int] = (120, 240)  # visual field in px: rows (elevation), columns (azimuth); 1 px = 1 deg
# network.v1.structure -> (wiring, neurons, after-spike currents) (nestgrad.networks.v1_control). Wiring: "column"
# (Billeh's laminar, cell-class connection rules) or "random" (targets redrawn uniformly); neurons: "glif3" (the
# column's fits per class), "one_fit" (GLIF3, every neuron on its E/I group's most common fit) or "lif" (one LIF set
# per E/I group); after-spike currents: the fits' own (True) or switched off (False; always off for "lif").
# "billeh" is the data-based column, "random_lif" its control of Chen et al.'s kind.
V1_STRUCTURE_FACTORS: dict[str, tuple[str, str, bool]] = {
    "billeh": ("column", "glif3", True),
    "random_wiring": ("random", "glif3", True),
    "random_lif": ("random", "lif", False),
    "column_lif": ("column", "lif", False),
    "random_one_fit": ("random", "one_fit", True),
    "random_one_fit_no_asc": ("random", "one_fit", False),
}
V1_STRUCTURES = tuple(V1_STRUCTURE_FACTORS)
V1_TASK_NAMES = ("v1_orientation", "v1_digits", "v1_image_change", "v1_grating_change", "v1_evidence", "v1_multi")

V1_EPROP_PARAMS: dict[str, Any] = {
    "surrogate_gradient_function": "piecewise_linear",
    # 0.025 per mV: with the after-spike currents a higher surrogate lets eligibility traces grow without bound
    # (0.3 overflowed after ~190 s of training; EpropGlif3Psc.eligibility_growth <= 0.997 for all fits here)
    "surrogate_gradient_height": 0.025,
    "surrogate_gradient_width": 5.0,  # mV
    "kappa": 0.97,
    "kappa_reg": 0.97,
    "c_reg": 0.0,
    "f_target": 5.0,
    "eprop_isi_trace_cutoff": 100.0,
    # eprop_event_synapse only (speed, not the updates): the column fires at tens of Hz, so most windows are shorter
    # than a 32-step segment of the running products; 8-step segments sum fewer steps one by one (20 % faster at
    # 2,000 neurons, docs/event_driven_eprop.md)
    "event_segment_steps": 8,
}


@dataclass(frozen=True)
class V1Config:
    n_neurons: int = 5000  # core neurons, <= 51,978
    seed: int = 1
    # the column ("billeh") or a control of the same size (neurons, synapses, weights, LGN input) without its wiring,
    # its neuron classes or both: V1_STRUCTURE_FACTORS above
    structure: str = "billeh"
    keep_in_degree: bool = True  # scale probabilities so that a central neuron keeps its full-scale in-degree
    n_lgn: int = 0  # LGN units; 0: Billeh's LGN density over the column's visual field plus a margin
    lgn_per_subfield: int = 8  # LGN units drawn per ON or OFF subfield of a cell
    # Billeh's weights with the connection probabilities available here make the column explode (rates > 100 Hz);
    # these factors keep it in an asynchronous low-rate state also under full-contrast gratings (calibrated at
    # 1,000-5,000 neurons; docs/v1_model.md)
    weight_scale: float = 0.15  # multiplies the recurrent weights
    inhibitory_scale: float = 2.0  # multiplies the inhibitory recurrent weights once more
    lgn_weight_scale: float = 0.2  # multiplies the LGN weights (Billeh's N_syn x syn_weight per LGN unit)
    background_rate: float = 1000.0  # Hz, Poisson background per neuron (Chen et al.: 10 sources x 100 Hz)
    background_drive: float = 0.7  # mean background current as a fraction of each neuron's rheobase g (V_th - E_L)
    plastic_recurrent: bool = True  # V1 -> V1 synapses learn too (else only LGN -> V1 and readouts)
    pool_size: int = 30
    readout_weight: float = 0.02  # initial weight of pool neuron -> readout
    # learning rate of the readout weights (0: the optimizer's eta). Adam's steps are about eta in weight units, and
    # readout weights (~0.02) are two orders of magnitude smaller than the column's (pA)
    readout_eta: float = 0.0
    feedback: str = "random"  # "random": learning signals to every neuron; "pools": only to the readout pools
    feedback_weight: float = 1.0
    # whose incoming column synapses are e-prop synapses: "all" neurons' or only the readout "pools'" (needs
    # feedback = "pools": the other neurons then get no learning signal, so their synapses stay static)
    plastic_targets: str = "all"
    eprop_params: dict[str, Any] = field(default_factory=dict)
    # [network.v1.eventprop]: how the column runs with network.gradient_algorithm = "eventprop"
    # (V1EventpropConfig; nestgrad.networks.v1_eventprop)
    eventprop: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        def need(ok: bool, key: str, value: Any, what: str) -> None:
            if not ok:
                raise ConfigError(f"network.v1.{key} = {value!r}: {what}")

        need(
            isinstance(self.n_neurons, int) and 100 <= self.n_neurons <= V1_CORE_NEURONS,
            "n_neurons",
            self.n_neurons,
            f"an integer in [100, {V1_CORE_NEURONS}] is required",
        )
        need(isinstance(self.n_lgn, int) and self.n_lgn >= 0, "n_lgn", self.n_lgn, "an integer >= 0")
        need(
            isinstance(self.lgn_per_subfield, int) and self.lgn_per_subfield >= 1,
            "lgn_per_subfield",
            self.lgn_per_subfield,
            "an integer >= 1",
        )
        for key in (
            "weight_scale",
            "inhibitory_scale",
            "lgn_weight_scale",
            "readout_weight",
            "feedback_weight",
            "readout_eta",
        ):
            v = getattr(self, key)
            need(isinstance(v, int | float) and math.isfinite(v) and v >= 0, key, v, "a finite number >= 0")
        need(
            math.isfinite(self.background_rate) and self.background_rate >= 0,
            "background_rate",
            self.background_rate,
            "a rate >= 0 Hz",
        )
        need(
            math.isfinite(self.background_drive) and self.background_drive >= 0,
            "background_drive",
            self.background_drive,
            "a fraction >= 0",
        )
        need(isinstance(self.pool_size, int) and self.pool_size >= 1, "pool_size", self.pool_size, "an integer >= 1")
        need(self.structure in V1_STRUCTURES, "structure", self.structure, f"one of {V1_STRUCTURES}")
        need(self.feedback in ("random", "pools"), "feedback", self.feedback, "'random' or 'pools'")
        need(self.plastic_targets in ("all", "pools"), "plastic_targets", self.plastic_targets, "'all' or 'pools'")
        need(
            self.plastic_targets == "all" or self.feedback == "pools",
            "plastic_targets",
            self.plastic_targets,
            "'pools' needs feedback = 'pools' (with random feedback every neuron's synapses learn)",
        )
        unknown = sorted(set(self.eprop_params) - set(V1_EPROP_PARAMS))
        need(not unknown, "eprop_params", unknown, f"unknown key(s); known: {sorted(V1_EPROP_PARAMS)}")
        need(isinstance(self.eventprop, Mapping), "eventprop", self.eventprop, "a table ([network.v1.eventprop])")
        self.eventprop_config()  # refuses unknown keys and bad values now, not when the column is first run

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> V1Config:
        return from_table(cls, d, "network.v1")

    @property
    def random_wiring(self) -> bool:
        """The recurrent targets are redrawn uniformly at random (the column's wiring is dropped)."""
        return V1_STRUCTURE_FACTORS[self.structure][0] == "random"

    @property
    def lif_neurons(self) -> bool:
        """One LIF parameter set per E/I group instead of the column's GLIF3 fits per class."""
        return V1_STRUCTURE_FACTORS[self.structure][1] == "lif"

    @property
    def one_fit_per_group(self) -> bool:
        """GLIF3 neurons, but every neuron of an E/I group has its group's most common fit (no cell classes)."""
        return V1_STRUCTURE_FACTORS[self.structure][1] == "one_fit"

    @property
    def after_spike_currents(self) -> bool:
        """The neurons keep their fits' after-spike currents (the LIF neurons and "random_one_fit_no_asc" have none)."""
        return V1_STRUCTURE_FACTORS[self.structure][2]

    def eventprop_config(self) -> V1EventpropConfig:
        return V1EventpropConfig.from_dict(self.eventprop)


V1_EVENTPROP_READOUTS = ("li", "threshold")
V1_WEIGHT_ARRAYS = ("lgn_rec", "rec_rec", "rec_out")  # the column's plastic weight arrays (checkpoint keys)
V1_EVENTPROP_LOSSES = ("sum", "max", "sum_exp")


@dataclass(frozen=True)
class V1EventpropConfig:
    """``[network.v1.eventprop]``: the column with EventProp (``network.gradient_algorithm = "eventprop"``,
    :mod:`nestgrad.networks.v1_eventprop`). Times in ms, capacitance in pF."""

    # "li": each readout pool feeds one leaky readout (the e-prop column's readout, with a synaptic current), scored
    # by the cross-entropy of the readouts in the response window. "threshold" (binary tasks, Chen et al.'s single
    # pool against a threshold): only the pool of class 1 feeds a readout, and p(class 1) = sigmoid(y - threshold),
    # scored by the binary cross-entropy (a second, input-free readout held at y = threshold by a constant current
    # makes it the same softmax). Chen et al.'s pool spike counts need a loss on spike counts in a window, which the
    # EventProp engines do not have: the leaky readout's mean voltage is their filtered count
    readout: str = "li"
    threshold: float | None = None  # mV: readout = "threshold" only, y at which p(class 1) = 1/2
    loss: str = "sum"  # the readouts' value in the window: mean ("sum"), maximum ("max"), weighted mean ("sum_exp")
    tau_w: float | None = None  # "sum_exp" only: weighting time constant (None: the trial duration)
    # NEST's time grid for the EventProp models (spike times are exact; delays must lie on it): Billeh's delays
    # (0.9-3.8 ms, LGN 1.7 ms) are multiples of 0.1 ms; a coarser grid rounds them (at 1 ms: the e-prop column's)
    resolution: float = 0.1
    readout_C_m: float = 1.0  # as the e-prop readout
    readout_tau_m: float = 30.0  # as the e-prop readout
    readout_tau_syn: float = 5.0  # the leaky readout's exponential current (the e-prop readout has none)
    # eta of the column's weight arrays that do not take the optimizer's ("lgn_rec", "rec_rec", "rec_out"), at
    # iteration 0 (the optimizer's decay scales them alike); 0 freezes an array, e.g. rec_out = 0: Chen et al.'s
    # fixed pool read-out. network.v1.readout_eta > 0 is the same as rec_out = readout_eta
    learning_rates: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        def need(ok: bool, key: str, requirement: str) -> None:
            if not ok:
                raise ConfigError(f"network.v1.eventprop.{key} = {getattr(self, key)!r} is invalid: {requirement}")

        def positive(key: str) -> None:
            v = getattr(self, key)
            ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v > 0
            need(ok, key, "a finite number > 0 is required")

        need(
            self.readout in V1_EVENTPROP_READOUTS,
            "readout",
            f"one of {V1_EVENTPROP_READOUTS} (Chen et al.'s pool spike counts need a loss on spike counts in a "
            "window, which the EventProp engines do not have)",
        )
        if self.readout == "threshold":
            t = self.threshold
            ok = isinstance(t, int | float) and not isinstance(t, bool) and math.isfinite(t)
            need(ok, "threshold", "readout = 'threshold' needs a finite threshold (mV: the readout's y at p = 1/2)")
            need(self.loss != "sum_exp", "loss", "readout = 'threshold' takes loss = 'sum' or 'max'")
        else:
            need(self.threshold is None, "threshold", "it is used with readout = 'threshold' only")
        need(self.loss in V1_EVENTPROP_LOSSES, "loss", f"one of {V1_EVENTPROP_LOSSES}")
        for key in ("resolution", "readout_C_m", "readout_tau_m", "readout_tau_syn"):
            positive(key)
        if self.tau_w is not None:
            positive("tau_w")
        check_number_table(
            "network.v1.eventprop.learning_rates", self.learning_rates, V1_WEIGHT_ARRAYS, item="weight array",
            what="eta", lo=0.0, note="0 freezes the array",
        )  # fmt: skip

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> V1EventpropConfig:
        return from_table(cls, d, "network.v1.eventprop")


@dataclass(frozen=True)
class V1TaskConfig:
    """Stimuli and timing of the V1 tasks (Chen et al.'s defaults). Durations are in ms and multiplied by
    ``time_scale``; each is rounded to whole time steps."""

    time_scale: float = 1.0
    # orientation and digits: gray, stimulus, gray; response window from the trial start
    pre_delay_ms: float = 50.0
    stimulus_ms: float = 100.0  # also each presentation of the change tasks
    post_delay_ms: float = 450.0
    response_start_ms: float = 150.0
    response_ms: float = 50.0  # response window length (all tasks but evidence)
    # change tasks: pre_delay, A (stimulus_ms), gray (change_gap_ms), B (stimulus_ms), gray (change_post_ms)
    change_gap_ms: float = 200.0
    change_post_ms: float = 150.0
    change_response_delay_ms: float = 150.0  # response window start after B's onset
    p_reappear: float = 0.5  # probability that B = A (no change)
    # stimuli
    contrast: float = 1.0
    spatial_frequency: float = 0.05  # cycles/deg
    orientation_center_deg: float = 45.0
    orientation_difference_deg: float = 2.0  # orientations 45 +- (0.1 ... 2) deg; e.g. 20 for a coarse variant
    orientation_step_deg: float = 0.1
    # the orientation task's grating phase: "random" (uniform per trial, Chen et al.) or a fixed phase in degrees
    # (then single LGN units' rates differ between the classes; with random phases only their correlations do)
    orientation_phase_deg: float | str = "random"
    grating_change_min_deg: float = 120.0
    grating_change_max_deg: float = 150.0
    grating_change_random_phase: bool = True  # a new random phase for B (else A's): the change must be in orientation
    n_images: int = 8
    image_seed: int = 0  # the image set depends only on this (same images for training and test tasks)
    digits_split: str = "train"  # "train" (80 %), "test" (20 %) or "all" of scikit-learn's 1,797 digits
    # evidence accumulation
    n_cues: int = 5
    cue_ms: float = 50.0
    cue_gap_ms: float = 10.0
    evidence_pause_ms: float = 250.0
    recall_ms: float = 50.0  # recall cue = response window
    cue_width_deg: float = 120.0  # 120: the whole half of the field
    # v1_multi: which task each trial comes from
    multi_order: str = "cycle"  # "cycle" (trial k of the run: task k mod 5) or "random"

    def __post_init__(self) -> None:
        def need(ok: bool, key: str, requirement: str) -> None:
            if not ok:
                raise ConfigError(f"task.v1.{key} = {getattr(self, key)!r} is invalid: {requirement}")

        def number(key: str) -> float:
            v = getattr(self, key)
            need(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v), key, "a finite number")
            return float(v)

        for key in ("time_scale", "stimulus_ms", "response_ms", "cue_ms", "recall_ms", "spatial_frequency"):
            need(number(key) > 0, key, "> 0 is required")
        for key in ("pre_delay_ms", "post_delay_ms", "response_start_ms", "change_gap_ms", "change_post_ms"):
            need(number(key) >= 0, key, ">= 0 is required")
        for key in ("change_response_delay_ms", "cue_gap_ms", "evidence_pause_ms"):
            need(number(key) >= 0, key, ">= 0 is required")
        need(0 < number("contrast") <= 1, "contrast", "a contrast in (0, 1] is required")
        number("orientation_center_deg")
        need(0 < number("orientation_difference_deg") <= 90, "orientation_difference_deg", "in (0, 90] deg")
        need(
            0 < number("orientation_step_deg") <= self.orientation_difference_deg,
            "orientation_step_deg",
            "> 0 and <= orientation_difference_deg",
        )
        phase = self.orientation_phase_deg
        need(
            phase == "random"
            or (isinstance(phase, int | float) and not isinstance(phase, bool) and math.isfinite(phase)),
            "orientation_phase_deg",
            "'random' or a phase in degrees",
        )
        number("grating_change_min_deg")
        need(
            number("grating_change_max_deg") - self.grating_change_min_deg >= self.orientation_step_deg,
            "grating_change_max_deg",
            "at least orientation_step_deg above grating_change_min_deg (two orientations are needed)",
        )
        need(isinstance(self.grating_change_random_phase, bool), "grating_change_random_phase", "true or false")
        need(0 <= number("p_reappear") <= 1, "p_reappear", "a probability in [0, 1] is required")
        for key, lo in (("n_images", 2), ("image_seed", 0), ("n_cues", 1)):
            v = getattr(self, key)
            need(isinstance(v, int) and not isinstance(v, bool) and v >= lo, key, f"an integer >= {lo} is required")
        need(self.n_cues % 2 == 1, "n_cues", "an odd number (so that one side wins)")
        need(0 < number("cue_width_deg") <= FIELD_SHAPE[1] / 2, "cue_width_deg", "in (0, 120] deg")
        need(self.digits_split in ("train", "test", "all"), "digits_split", "'train', 'test' or 'all'")
        need(self.multi_order in ("cycle", "random"), "multi_order", "'cycle' or 'random'")
        need(
            self.response_start_ms + self.response_ms <= self.pre_delay_ms + self.stimulus_ms + self.post_delay_ms,
            "response_start_ms",
            "the response window must end within the trial (pre_delay_ms + stimulus_ms + post_delay_ms)",
        )
        need(
            self.change_response_delay_ms + self.response_ms <= self.stimulus_ms + self.change_post_ms,
            "change_response_delay_ms",
            "the response window must end within the trial (after B: stimulus_ms + change_post_ms)",
        )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> V1TaskConfig:
        return from_table(cls, d, "task.v1")

    def steps(self, key: str, resolution: float) -> int:
        """Duration ``key`` (a ``*_ms`` field) in time steps of ``resolution`` ms, after ``time_scale``."""
        return int(round(getattr(self, key) * self.time_scale / resolution))

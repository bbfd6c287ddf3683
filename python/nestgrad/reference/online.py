"""E-prop exactly as NEST 3.10 computes it, with the weights changing online (event-driven updates).

Replays the classic e-prop network step by step with NEST's order of events. Time index ``t`` is NEST's update
step. A spike emitted in step ``t`` is stamped ``t + 1`` and, with the one-step delay of e-prop connections,
enters its targets in step ``t + 1``. Data step ``j`` reaches the recurrent layer and the readouts in step
``j + 2`` (generator offset and input delay), which is where the readouts compare with ``target[j]``.

Per synapse ``i -> j`` NEST computes, when a presynaptic spike stamped ``s2`` passes it, the gradient over the
postsynaptic e-prop history entries ``[s1 - 1, min(s1 - 1 + cutoff, s2 - 1))`` (``s1`` the previous spike), hands
it to the optimizer and transmits ``s2`` with the new weight. The history entry ``e`` of a recurrent neuron holds
the surrogate gradient and firing-rate regularisation of step ``e`` and the learning signal
``L[e] = sum_k B_jk err_k[e + 1]``. Here the same sums are built densely: the traces of entry ``e`` are advanced in
step ``e + 1`` (after that step's spikes updated the weights, as NEST's next window would see them), their
gradient increments are added in step ``e + 2`` when ``L[e]`` exists, and a spike stamped ``t`` applies what has
accumulated for its synapses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nestgrad.errors import SpecError
from nestgrad.reference.neurons import RECURRENT_MODELS, EpropReadout
from nestgrad.reference.optimizers import OptimizerState
from nestgrad.reference.spec import NetworkSpec

LEAD_STEPS = 3  # update steps simulated before data step 0 begins (nestgrad.networks.eprop_classic.lead_in_ms)
INPUT_TO_REC_STEPS = 2  # data step j enters the recurrent layer in update step j + 2
LEARNING_SIGNAL_SHIFT = 1  # L[e] is the readout error of step e + 1


@dataclass
class OnlineResult:
    weights: dict[str, np.ndarray]
    gradients: dict[str, np.ndarray]  # sum of every e-prop gradient computed (applied windows and open ones)
    readout: np.ndarray  # [data steps, n_out], readout membrane potential y per data step
    rec_spikes: np.ndarray  # bool [data steps, n_rec], recurrent spikes emitted in the step of data step j
    losses: np.ndarray  # per iteration, as nestgrad.tasks.mse_loss
    history: dict[str, np.ndarray]  # per history entry: psi, fr (regularisation), L; spikes entering (in, rec)
    # Adam's state at the end per projection, [post, pre] as the weights: m_<p>, v_<p> and the bias-correction
    # powers b1_<p>, b2_<p> (beta^t); empty for gradient descent
    optimizer_state: dict[str, np.ndarray] = field(default_factory=dict)


def _excitatory(rec_model: Any, p: _Projection) -> np.ndarray:
    """Which synapses feed the excitatory input: by the weight's current sign (NEST's and nestgrad's C++ models), or
    by its sign when the connection was made (models with two receptor ports, chosen at connection time)."""
    return p.excitatory0 if rec_model.receptor_fixed_at_connection else p.w >= 0.0


class _Projection:
    """Weights, traces, gradient bookkeeping and optimizer of one e-prop projection."""

    def __init__(self, w: np.ndarray, mask: np.ndarray, optimizer: dict, cutoff_steps: int):
        self.w = np.array(w, dtype=float) * mask
        self.excitatory0 = self.w >= 0.0  # the receptor port of models that fix it at connection time
        self.mask = mask.astype(bool)
        self.G = np.zeros_like(self.w)  # gradient of the open window of each synapse
        self.opt = OptimizerState(self.w.shape, optimizer, self.w)
        self.cutoff = cutoff_steps
        n_pre = self.w.shape[1]
        self.last_stamp = np.full(n_pre, np.iinfo(np.int64).min // 2, dtype=np.int64)
        self.has_spiked = np.zeros(n_pre, dtype=bool)
        self.pending: dict[int, np.ndarray] = {}  # entry -> gradient increments waiting for the learning signal
        self.total = np.zeros_like(self.w)  # every gradient handed to the optimizer, plus open windows at the end

    def deliver(self, spiking: np.ndarray, t: int) -> None:
        """Spikes stamped t pass their synapses: optimizer call with the closed window (not for a first spike)."""
        pre = np.flatnonzero(spiking & self.has_spiked)
        if pre.size:
            rows, cols = np.nonzero(self.mask[:, pre])
            cols = pre[cols]
            self.opt.apply(self.w, rows, cols, self.G[rows, cols], t - 1)
            self.total[:, pre] += self.G[:, pre]
            self.G[:, pre] = 0.0
        self.has_spiked |= spiking

    def note_stamps(self, spiking: np.ndarray, t: int) -> None:
        self.last_stamp[spiking] = t

    def active(self, entry: int) -> np.ndarray:
        """Whether history entry ``entry`` lies inside the gradient window of each presynaptic neuron's last
        spike (the last spike stamped <= entry + 1)."""
        return entry < self.last_stamp - 1 + self.cutoff


def run_online(
    spec: NetworkSpec, deliver_final_spikes: bool = False, optimizer_state: dict[str, np.ndarray] | None = None
) -> OnlineResult:
    """Simulate ``spec`` with NEST's e-prop semantics and return final weights, readouts and losses.

    Spikes emitted in the last simulated step are not delivered (NEST delivers them only when the next
    ``Simulate`` call begins); ``deliver_final_spikes=True`` delivers them as such a call would.

    ``OnlineResult.gradients`` sums every gradient the synapses computed, including the windows still open at
    the end (with the learning signals that exist by then); with a learning rate of zero this is the e-prop
    gradient of the whole run at fixed weights, the quantity compared with BPTT.

    ``optimizer_state`` (keys as :attr:`OnlineResult.optimizer_state`, any subset) is Adam's state the synapses start
    from, as the Trainer writes a checkpoint's state into a new kernel: a run continuing in blocks is replayed block
    by block (powers not given start at beta^0 = 1, as NEST's eprop_synapse restarts them in every kernel).
    """
    spec.validate()
    dt = spec.resolution
    rec_model = RECURRENT_MODELS[spec.rec_model](spec.rec_params, dt)
    out_model = EpropReadout(spec.readout_params, dt)
    n_data = spec.input_spikes.shape[0]
    n_steps = LEAD_STEPS + n_data

    proj = {
        "in_rec": _Projection(spec.weights["in_rec"], spec.masks["in_rec"], spec.optimizer, rec_model.cutoff_steps),
        "rec_rec": _Projection(spec.weights["rec_rec"], spec.masks["rec_rec"], spec.optimizer, rec_model.cutoff_steps),
        "rec_out": _Projection(spec.weights["rec_out"], spec.masks["rec_out"], spec.optimizer, out_model.cutoff_steps),
    }
    attributes = {"m": "m", "v": "v", "b1": "b1p", "b2": "b2p"}
    for key, value in (optimizer_state or {}).items():
        moment, _, name = key.partition("_")
        opt = proj[name].opt if name in proj else None
        if moment not in attributes or opt is None or opt.type != "adam" or np.shape(value) != opt.m.shape:
            raise SpecError(
                f"optimizer_state[{key!r}]: expected m_, v_, b1_ or b2_ of {', '.join(proj)} with Adam, shaped as "
                "the projection's weights"
            )
        setattr(opt, attributes[moment], np.array(value, dtype=float))
    B = np.asarray(spec.weights["feedback"], dtype=float)
    n_rec, n_in, n_out = spec.n_rec, spec.n_in, spec.n_out

    rec = rec_model.init_state(n_rec)
    out = out_model.init_state(n_out)
    tr = {"in_rec": rec_model.init_traces((n_rec, n_in)), "rec_rec": rec_model.init_traces((n_rec, n_rec))}
    e_bar = {k: np.zeros((n_rec, n)) for k, n in (("in_rec", n_in), ("rec_rec", n_rec))}
    e_bar_reg = {k: np.zeros_like(v) for k, v in e_bar.items()}
    z_bar_out = np.zeros(n_rec)
    f_av = np.zeros(n_rec)

    psi_hist: dict[int, np.ndarray] = {}
    fr_hist: dict[int, np.ndarray] = {}
    err_hist: dict[int, np.ndarray] = {}
    stamps_in: dict[int, np.ndarray] = {}
    stamps_rec: dict[int, np.ndarray] = {}
    entered_rec: dict[int, np.ndarray] = {}  # kept for the returned history
    readout = np.zeros((n_data, n_out))
    rec_spikes = np.zeros((n_data, n_rec), dtype=bool)
    no_in = np.zeros(n_in, dtype=bool)
    no_rec = np.zeros(n_rec, dtype=bool)

    def input_stamped(t: int) -> np.ndarray:
        j = t - INPUT_TO_REC_STEPS
        return spec.input_spikes[j] if 0 <= j < n_data else no_in

    no_err = np.zeros(n_out)
    for t in range(n_steps + 2):  # two steps past the end close the last history entries
        # 1. gradient increments of entry t - 2: its learning signal (readout error of step t - 1) has arrived
        e = t - 2
        if e >= 0:
            L = B @ err_hist.get(e + LEARNING_SIGNAL_SHIFT, no_err)
            for key in ("in_rec", "rec_rec"):
                ebar_act, reg_incr = proj[key].pending.pop(e)
                proj[key].G += L[:, None] * ebar_act + reg_incr
            proj["rec_out"].G += proj["rec_out"].pending.pop(e)

        # 2. spikes stamped t pass their synapses (optimizer), then are transmitted with the new weights
        s_in = input_stamped(t)
        s_rec = stamps_rec.get(t, no_rec)
        stamps_in[t] = s_in
        if t < n_steps or (t == n_steps and deliver_final_spikes):
            proj["in_rec"].deliver(s_in, t)
            proj["rec_rec"].deliver(s_rec, t)
            proj["rec_out"].deliver(s_rec, t)
            for key, s in (("in_rec", s_in), ("rec_rec", s_rec), ("rec_out", s_rec)):
                proj[key].note_stamps(s, t)

        # 3. traces of history entry t - 1 (presynaptic spikes stamped t - 1 enter; windows as of stamps <= t)
        e = t - 1
        if 0 <= e < n_steps:
            for key, stamps in (("in_rec", stamps_in), ("rec_rec", stamps_rec)):
                p = proj[key]
                z_pre = stamps.get(e, no_in if key == "in_rec" else no_rec).astype(float)
                excitatory = _excitatory(rec_model, p) if rec_model.per_synapse_traces else None
                window = {"active": p.active(e)} if rec_model.trace_depends_on_window else {}
                e_trace = rec_model.trace_step(tr[key], z_pre, psi_hist[e], excitatory, **window)
                e_masked = e_trace * p.active(e)[None, :] * p.mask
                rec_model.after_masked_e(tr[key], e_masked)
                e_bar[key] = rec_model.kappa * e_bar[key] + e_masked
                e_bar_reg[key] = rec_model.kappa_reg * e_bar_reg[key] + (1.0 - rec_model.kappa_reg) * e_masked
                act = p.active(e)[None, :] * p.mask
                p.pending[e] = (e_bar[key] * act, fr_hist[e][:, None] * e_bar_reg[key] * act)
            p = proj["rec_out"]
            z_bar_out = out_model.P_v * z_bar_out + stamps_rec.get(e, no_rec)
            p.pending[e] = err_hist[e][:, None] * z_bar_out[None, :] * p.active(e)[None, :] * p.mask
            stamps_in.pop(e - 1, None)
            stamps_rec.pop(e - 1, None)

        if t >= n_steps:
            continue
        # 4. neuron updates of step t
        w_in, w_rec, w_out = proj["in_rec"].w, proj["rec_rec"].w, proj["rec_out"].w
        x_in = w_in[:, s_in]
        x_rec = w_rec[:, s_rec]
        ex_in = _excitatory(rec_model, proj["in_rec"])[:, s_in]
        ex_rec = _excitatory(rec_model, proj["rec_rec"])[:, s_rec]
        z_ex = np.where(ex_in, x_in, 0.0).sum(1) + np.where(ex_rec, x_rec, 0.0).sum(1)
        z_inh = np.where(ex_in, 0.0, x_in).sum(1) + np.where(ex_rec, 0.0, x_rec).sum(1)
        psi, z = rec_model.step(rec, z_ex, z_inh)
        f_av = rec_model.kappa_reg * f_av + (1.0 - rec_model.kappa_reg) * z / dt
        fr_hist[t] = rec_model.c_reg * (f_av - rec_model.f_target_per_ms * dt)
        psi_hist[t] = psi
        stamps_rec[t + 1] = z > 0
        entered_rec[t + 1] = z > 0

        j = t - INPUT_TO_REC_STEPS
        in_data = 0 <= j < n_data
        target = spec.target[j] if in_data else np.zeros(n_out)
        window = spec.window[j] if in_data else 0.0
        y, err = out_model.step(out, w_out[:, s_rec].sum(1), target, window)
        err_hist[t] = err
        if in_data:
            readout[j] = y
            rec_spikes[j] = z > 0

    losses = np.array(
        [
            0.5
            * np.sum(
                spec.window[k * spec.iteration_steps : (k + 1) * spec.iteration_steps, None]
                * (readout - spec.target)[k * spec.iteration_steps : (k + 1) * spec.iteration_steps] ** 2
            )
            for k in range(spec.iterations)
        ]
    )
    entries = range(n_steps)
    history = {
        "psi": np.array([psi_hist[e] for e in entries]),
        "fr": np.array([fr_hist[e] for e in entries]),
        "L": np.array([B @ err_hist.get(e + LEARNING_SIGNAL_SHIFT, no_err) for e in entries]),
        "E": np.array([err_hist[e] for e in entries]),
        "in": np.array([input_stamped(e) for e in entries]),
        "rec": np.array([entered_rec.get(e, no_rec) for e in entries]),
    }
    weights = {k: p.w.copy() for k, p in proj.items()} | {"feedback": B.copy()}
    gradients = {k: p.total + p.G for k, p in proj.items()}
    state = {}
    if all(p.opt.type == "adam" for p in proj.values()):
        for moment, attribute in (("m", "m"), ("v", "v"), ("b1", "b1p"), ("b2", "b2p")):
            state |= {f"{moment}_{k}": getattr(p.opt, attribute).copy() for k, p in proj.items()}
    return OnlineResult(weights, gradients, readout, rec_spikes, losses, history, state)

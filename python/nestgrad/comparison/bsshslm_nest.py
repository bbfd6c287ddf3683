"""The NEST side of the reference engine for NEST's original-formulation e-prop models (``*_bsshslm_2020``).

:func:`make_bsshslm_spec` makes a :class:`~nestgrad.reference.spec.NetworkSpec` of the classic e-prop network for
the sine-wave (regression, mean squared error) or evidence-accumulation (classification, cross-entropy) task with
parameters after NEST's bsshslm example scripts; :func:`run_nest_bsshslm` builds such a spec in NEST and simulates
it; :func:`compare_bsshslm` runs it in NEST and in :func:`~nestgrad.reference.online_bsshslm.run_online_bsshslm` and
measures how far apart the two are.

Wiring (every delay one time step, as the bsshslm models require)::

    spike_generator --static--> parrot_neuron --eprop_synapse_bsshslm_2020--> eprop_iaf(_adapt)_bsshslm_2020
    eprop_iaf(_adapt)_bsshslm_2020 --eprop_synapse_bsshslm_2020--> eprop_iaf(_adapt)_bsshslm_2020 (masks)
    (with meta["bsshslm"]["rec_groups"] the recurrent population is one group of nodes per entry, created in order,
    as NEST's classification test mixes eprop_iaf_bsshslm_2020 and eprop_iaf_adapt_bsshslm_2020)
    eprop_iaf(_adapt)_bsshslm_2020 --eprop_synapse_bsshslm_2020--> eprop_readout_bsshslm_2020
    eprop_readout_bsshslm_2020 --eprop_learning_signal_connection_bsshslm_2020--> recurrent neurons
    step_rate_generator --rate_connection_delayed (receptor 2, target_signal)--> eprop_readout_bsshslm_2020
    eprop_readout_bsshslm_2020 --rate_connection_delayed (receptor 1, readout_signal), no autapses-->
        the other readouts (only with meta["bsshslm"]["readout_normalization"]: the softmax of cross_entropy)

Timing (checked by recording ``target_signal``, see tests/test_reference_bsshslm.py): the input spikes of data step
``j`` are given to the spike generators at ``(j + 1) dt`` (NEST's ``offset_gen``), reach the recurrent neurons in
update step ``j + 2`` and their effect on the readout signal appears in step ``j + 4``, where the readout compares
it with ``target[j]``. The target's step_rate_generator changes its amplitude to ``target[j]`` at ``(j + 4) dt``
(as in NEST's examples): it emits the value in update step ``j + 3`` and the readout receives it in step ``j + 4``.
The multimeter stamps the values of update step ``t`` with the time ``(t + 1) dt``; the values of the last simulated
step are not recorded, hence ``extra_steps`` = 5 by default (4 steps of delay plus NEST's "extension_sim").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from nestgrad.errors import ConfigError
from nestgrad.nest_engine import fresh_kernel
from nestgrad.reference.online_bsshslm import (
    ADAPTIVE_MODEL,
    BSSHSLM_MODELS,
    READOUT_MODEL,
    SIGNAL_STEP_OFFSET,
    bsshslm_losses,
    run_online_bsshslm,
    validate_bsshslm,
)
from nestgrad.reference.spec import PROJECTIONS, NetworkSpec

SYNAPSE_MODEL = "eprop_synapse_bsshslm_2020"
FEEDBACK_MODEL = "eprop_learning_signal_connection_bsshslm_2020"
OFFSET_GEN_STEPS = 1  # input spikes of data step j are given to the spike generators at (j + 1) dt
TARGET_GEN_STEPS = SIGNAL_STEP_OFFSET  # amplitude change at (j + 4) dt: emitted in step j + 3, received in j + 4

REC_PARAM_KEYS = (
    "C_m",
    "c_reg",
    "E_L",
    "f_target",
    "I_e",
    "regular_spike_arrival",
    "surrogate_gradient_function",
    "surrogate_gradient_height",
    "surrogate_gradient_width",
    "t_ref",
    "tau_m",
    "V_m",
    "V_min",
    "V_th",
    "adapt_beta",
    "adapt_tau",
    "adaptation",
)
READOUT_PARAM_KEYS = ("C_m", "E_L", "I_e", "regular_spike_arrival", "tau_m", "V_m", "V_min")

# Parameters after NEST 3.10's bsshslm example scripts (eprop_supervised_regression_sine-waves_bsshslm_2020.py and
# eprop_supervised_classification_evidence-accumulation_bsshslm_2020.py).
_SINE_REC = {
    "C_m": 1.0,
    "c_reg": 300.0,
    "E_L": 0.0,
    "f_target": 10.0,
    "I_e": 0.0,
    "regular_spike_arrival": False,
    "surrogate_gradient_function": "piecewise_linear",
    "surrogate_gradient_height": 0.3 / 0.03,
    "surrogate_gradient_width": 1.0 * 0.03,
    "t_ref": 0.0,
    "tau_m": 30.0,
    "V_m": 0.0,
    "V_th": 0.03,
}
_EVIDENCE_REC = {
    "C_m": 1.0,
    "c_reg": 300.0,
    "E_L": 0.0,
    "f_target": 10.0,
    "I_e": 0.0,
    "regular_spike_arrival": True,
    "surrogate_gradient_function": "piecewise_linear",
    "surrogate_gradient_height": 0.3 / 0.6,
    "surrogate_gradient_width": 1.0 * 0.6,
    "t_ref": 5.0,
    "tau_m": 20.0,
    "V_m": 0.0,
    "V_th": 0.6,
}
_READOUT = {
    "sine": {"C_m": 1.0, "E_L": 0.0, "I_e": 0.0, "regular_spike_arrival": False, "tau_m": 30.0, "V_m": 0.0},
    "evidence": {"C_m": 1.0, "E_L": 0.0, "I_e": 0.0, "regular_spike_arrival": False, "tau_m": 20.0, "V_m": 0.0},
}
_ADAPT_TAU = 2000.0


def _adapt_params(tau_m: float, dt: float) -> dict[str, float]:
    """The examples' adaptation: beta = 1.7 (1 - exp(-dt / tau_a)) / (1 - exp(-dt / tau_m))."""
    beta = 1.7 * (1.0 - np.exp(-dt / _ADAPT_TAU)) / (1.0 - np.exp(-dt / tau_m))
    return {"adapt_tau": _ADAPT_TAU, "adapt_beta": float(beta), "adaptation": 0.0}


def _full_params(nest: Any, model: str, overrides: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    defaults = nest.GetDefaults(model)
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise ConfigError(f"unknown parameter(s) {unknown} for model {model!r}")
    params = {k: defaults[k] for k in keys if k in defaults}
    if "f_target" in params:
        params["f_target"] = params["f_target"] * 1000.0  # reported in spikes/ms, set (and stored in specs) in Hz
    for k, v in params.items():
        if isinstance(v, np.generic):
            params[k] = v.item()
    return params | dict(overrides)


def make_bsshslm_spec(
    task: str = "sine",
    rec_model: str = "eprop_iaf_bsshslm_2020",
    n_rec: int | None = None,
    iterations: int = 5,
    optimizer: str = "gradient_descent",
    eta: float | None = None,
    seed: int = 1,
    task_params: dict[str, Any] | None = None,
    rec_params: dict[str, Any] | None = None,
    readout_params: dict[str, Any] | None = None,
    bsshslm: dict[str, Any] | None = None,
    optimizer_params: dict[str, Any] | None = None,
    rec_groups: list[tuple[str, int]] | None = None,
    flush_event_send_interval: float | None = None,
    input_flush_event_send_interval: float | None = None,
) -> NetworkSpec:
    """A bsshslm network for ``task`` ("sine" or "evidence"): one trial per update interval, ``batch_size`` trials
    (``task_params``, default 1) per iteration and optimizer step.

    Data come from :func:`nestgrad.tasks.make_task`, initial weights from
    :func:`nestgrad.networks.eprop_classic.initial_weights` (scaled to the examples' 1/sqrt(fan-in) Gaussians),
    the models' parameters from NEST's bsshslm examples (overridden by ``rec_params``/``readout_params``), the
    kernel and synapse settings of ``meta["bsshslm"]`` from the task (update interval = trial, learning window =
    the task's window, MSE/no averaging for sine, cross-entropy with softmax normalisation and averaged gradients for
    evidence), overridden by ``bsshslm``.

    ``rec_groups`` (e.g. ``[("eprop_iaf_bsshslm_2020", 15), ("eprop_iaf_adapt_bsshslm_2020", 15)]``) makes the
    recurrent population of several models (``meta["bsshslm"]["rec_groups"]``; ``rec_model`` is then unused and
    ``n_rec``, default 30, must be the groups' total or left out); ``rec_params`` apply to every group.
    ``flush_event_send_interval`` (ms) is given to every recurrent neuron, ``input_flush_event_send_interval`` (ms)
    to the input parrots (NEST's flush events; both >= the update interval).
    """
    from nestgrad.config import TaskConfig
    from nestgrad.networks.eprop_classic import WEIGHT_SCALE, initial_weights
    from nestgrad.tasks import make_task

    if task not in ("sine", "evidence"):
        raise ConfigError(f"task = {task!r}: expected 'sine' or 'evidence'")
    if rec_groups is None:
        if rec_model not in BSSHSLM_MODELS:
            raise ConfigError(f"rec_model = {rec_model!r}: expected one of {', '.join(BSSHSLM_MODELS)}")
        rec_groups = [(rec_model, 30 if n_rec is None else n_rec)]
    for model, size in rec_groups:
        if model not in BSSHSLM_MODELS:
            raise ConfigError(f"rec_groups: model {model!r}: expected one of {', '.join(BSSHSLM_MODELS)}")
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ConfigError(f"rec_groups: {model} x {size!r}: the size must be an integer >= 1")
    total = sum(size for _, size in rec_groups)
    if n_rec is not None and n_rec != total:
        raise ConfigError(f"n_rec = {n_rec} differs from the {total} neurons of rec_groups")
    n_rec = total
    defaults_task = (
        {"sequence_steps": 300}
        if task == "sine"
        else {"n_cues": 3, "cue_steps": 60, "cue_spacing_steps": 50, "delay_steps": 100, "recall_steps": 80}
    )
    cfg = TaskConfig(name=task, **(defaults_task | dict(task_params or {})))
    data = make_task(cfg, seed)
    batches = [data.batch(k) for k in range(iterations)]
    T = batches[0].trial_steps  # one update interval per trial; an iteration holds task_params["batch_size"] trials
    dt = cfg.resolution
    window = batches[0].learning_window[:T]
    lw = int(np.count_nonzero(window))
    if lw == 0 or not np.all(window[T - lw :] == 1.0):
        raise ConfigError("the task's learning window must be the last steps of each trial for the bsshslm models")

    nest = fresh_kernel(resolution=dt)
    groups = []
    for model, size in rec_groups:
        rec = dict(_SINE_REC if task == "sine" else _EVIDENCE_REC)
        if model == ADAPTIVE_MODEL:
            rec |= _adapt_params(rec["tau_m"], dt)
        if flush_event_send_interval is not None:
            rec["flush_event_send_interval"] = float(flush_event_send_interval)
        rec |= dict(rec_params or {})
        groups.append({"model": model, "n": size, "params": _full_params(nest, model, rec, REC_PARAM_KEYS)})
    out_full = _full_params(nest, READOUT_MODEL, _READOUT[task] | dict(readout_params or {}), READOUT_PARAM_KEYS)
    opt_defaults = nest.GetDefaults(SYNAPSE_MODEL)["optimizer"]
    nest.ResetKernel()

    n_in, n_out = data.n_in, data.n_out
    w = initial_weights(n_in, n_rec, n_out, seed, True, 1.0 / WEIGHT_SCALE, groups[0]["model"])
    masks = {
        "in_rec": np.ones((n_rec, n_in), bool),
        "rec_rec": ~np.eye(n_rec, dtype=bool),
        "rec_out": np.ones((n_out, n_rec), bool),
    }
    if eta is None:
        eta = {"sine": 1e-4, "evidence": 1e-3}[task] * (10.0 if optimizer == "adam" else 1.0)
    opt = {
        "type": optimizer,
        "eta": float(eta),
        "batch_size": cfg.batch_size,  # in update intervals: one optimizer step per iteration, as NEST's examples
        "Wmin": float(opt_defaults["Wmin"]),
        "Wmax": float(opt_defaults["Wmax"]),
    }
    if optimizer == "adam":
        opt |= {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8}
    opt |= dict(optimizer_params or {})
    meta_b = {
        "eprop_update_interval": T * dt,
        "eprop_learning_window": lw * dt,
        "eprop_reset_neurons_on_update": True,
        "loss": "mean_squared_error" if task == "sine" else "cross_entropy",
        "average_gradient": task == "evidence",
        "readout_normalization": task == "evidence",
        "tau_m_readout": out_full["tau_m"],
        "extra_steps": SIGNAL_STEP_OFFSET + 1,
    }
    if len(groups) > 1:
        meta_b["rec_groups"] = groups
    if input_flush_event_send_interval is not None:
        meta_b["input_flush_event_send_interval"] = float(input_flush_event_send_interval)
    meta_b |= dict(bsshslm or {})
    spec = NetworkSpec(
        resolution=dt,
        rec_model=groups[0]["model"],
        rec_params={} if len(groups) > 1 else groups[0]["params"],
        readout_params=out_full,
        weights=w,
        masks=masks,
        optimizer=opt,
        input_spikes=np.concatenate([b.input_spikes for b in batches]),
        target=np.concatenate([b.target for b in batches]),
        window=np.concatenate([b.learning_window for b in batches]),
        iteration_steps=batches[0].steps,
        meta={"task": task, "trial_steps": T, "seed": seed, "bsshslm": meta_b},
    )
    validate_bsshslm(spec)
    return spec


@dataclass
class BsshslmNestRun:
    weights: dict[str, np.ndarray]  # final weights [post, pre]
    readout: np.ndarray  # [data steps, n_out]: readout_signal compared with target[j] (update step j + 4)
    target_signal: np.ndarray  # [data steps, n_out]: the target as the readout received it (zero outside window)
    error_signal: np.ndarray  # [data steps, n_out]
    losses: np.ndarray  # per iteration, bsshslm_losses


def _ids(nodes: Any) -> np.ndarray:
    return np.asarray(nodes.tolist(), dtype=np.int64)


def run_nest_bsshslm(spec: NetworkSpec, threads: int = 1) -> BsshslmNestRun:
    """Build ``spec`` in NEST with the bsshslm models, simulate all its steps in one ``Simulate`` call (data plus
    ``meta["bsshslm"]["extra_steps"]``) and return the final weights and the readouts' signals per data step."""
    s = validate_bsshslm(spec)
    dt = spec.resolution
    nest = fresh_kernel(threads=threads, resolution=dt)
    nest.set(
        eprop_update_interval=s.update_interval * dt,
        eprop_learning_window=s.learning_window * dt,
        eprop_reset_neurons_on_update=s.reset,
    )
    n_in, n_out = spec.n_in, spec.n_out
    gen_in = nest.Create("spike_generator", n_in)
    parrots = {} if s.input_flush_steps is None else {"flush_event_send_interval": _input_flush_ms(spec)}
    nodes = {"in": nest.Create("parrot_neuron", n_in, parrots)}
    rec = [nest.Create(g.model, g.n, dict(g.params)) for g in s.groups]  # in index order: consecutive node ids
    nodes["rec"] = sum(rec[1:], rec[0])
    nodes["out"] = nest.Create(READOUT_MODEL, n_out, dict(spec.readout_params) | {"loss": s.loss})
    gen_target = nest.Create("step_rate_generator", n_out)

    opt = dict(spec.optimizer)
    default_w = min(max(0.0, float(opt.get("Wmin", -100.0))), float(opt.get("Wmax", 100.0)))
    nest.SetDefaults(SYNAPSE_MODEL, {"weight": default_w})
    nest.SetDefaults(SYNAPSE_MODEL, {"optimizer": opt, "average_gradient": s.average_gradient})
    nest.Connect(gen_in, nodes["in"], "one_to_one", {"synapse_model": "static_synapse", "delay": dt})
    for name, (pre, post) in {"in_rec": ("in", "rec"), "rec_rec": ("rec", "rec"), "rec_out": ("rec", "out")}.items():
        post_idx, pre_idx = np.nonzero(spec.masks[name])
        if post_idx.size == 0:
            continue
        nest.Connect(
            _ids(nodes[pre])[pre_idx],
            _ids(nodes[post])[post_idx],
            "one_to_one",
            {
                "synapse_model": SYNAPSE_MODEL,
                "weight": np.asarray(spec.weights[name], float)[post_idx, pre_idx],
                "delay": np.full(post_idx.size, dt),
                "tau_m_readout": np.full(post_idx.size, s.tau_m_readout),
            },
        )
    nest.Connect(
        nodes["out"],
        nodes["rec"],
        "all_to_all",
        {"synapse_model": FEEDBACK_MODEL, "delay": dt, "weight": np.asarray(spec.weights["feedback"], float)},
    )
    rate = {"synapse_model": "rate_connection_delayed", "delay": dt}
    nest.Connect(gen_target, nodes["out"], "one_to_one", rate | {"receptor_type": 2})
    if s.readout_normalization and n_out > 1:
        nest.Connect(
            nodes["out"],
            nodes["out"],
            {"rule": "all_to_all", "allow_autapses": False},
            rate | {"receptor_type": 1, "weight": 1.0},
        )
    mm = nest.Create("multimeter", {"interval": dt, "record_from": ["readout_signal", "target_signal", "error_signal"]})
    nest.Connect(mm, nodes["out"])

    # data
    steps, senders = np.nonzero(spec.input_spikes)
    times = (steps + OFFSET_GEN_STEPS) * dt
    gen_in.set([{"spike_times": np.round(times[senders == i], 10)} for i in range(n_in)])
    n_data = spec.input_spikes.shape[0]
    amp_times = np.round((np.arange(n_data) + TARGET_GEN_STEPS) * dt, 10)
    gen_target.set(
        [{"amplitude_times": amp_times, "amplitude_values": np.asarray(spec.target[:, k], float)} for k in range(n_out)]
    )

    nest.Simulate((n_data + s.extra_steps) * dt)

    ev = mm.get("events")
    t_step = np.rint(np.asarray(ev["times"]) / dt).astype(np.int64) - 1  # recorded at (t + 1) dt for step t
    j = t_step - SIGNAL_STEP_OFFSET
    col = np.searchsorted(_ids(nodes["out"]), np.asarray(ev["senders"]))
    keep = (j >= 0) & (j < n_data)
    sig = {}
    for key in ("readout_signal", "target_signal", "error_signal"):
        a = np.zeros((n_data, n_out))
        a[j[keep], col[keep]] = np.asarray(ev[key])[keep]
        sig[key] = a

    weights = {"feedback": np.array(spec.weights["feedback"], float, copy=True)}
    for name, (pre, post) in {"in_rec": ("in", "rec"), "rec_rec": ("rec", "rec"), "rec_out": ("rec", "out")}.items():
        mat = np.zeros(spec.weights[name].shape)
        conns = nest.GetConnections(nodes[pre], nodes[post], synapse_model=SYNAPSE_MODEL)
        if len(conns):
            d = conns.get(["source", "target", "weight"])
            rows = np.searchsorted(_ids(nodes[post]), np.asarray(d["target"]))
            cols = np.searchsorted(_ids(nodes[pre]), np.asarray(d["source"]))
            mat[rows, cols] = d["weight"]
        weights[name] = mat
    nest.ResetKernel()
    losses = bsshslm_losses(sig["readout_signal"], sig["target_signal"], spec, s)
    return BsshslmNestRun(weights, sig["readout_signal"], sig["target_signal"], sig["error_signal"], losses)


def _input_flush_ms(spec: NetworkSpec) -> float:
    return float(spec.meta["bsshslm"]["input_flush_event_send_interval"])


def describe_recurrent(spec: NetworkSpec) -> str:
    """The recurrent models of a bsshslm spec: one name, or the groups (``a x10 + b x10``)."""
    groups = validate_bsshslm(spec).groups
    if len(groups) == 1:
        return groups[0].model
    return " + ".join(f"{g.model} x{g.n}" for g in groups)


def _mean_rel_err(dn: np.ndarray, dr: np.ndarray, scale: float) -> float:
    """Mean of |dW_nest - dW_ref| / |dW_ref| over synapses with |dW_ref| >= 1e-6 max |dW_ref| (as compare.py)."""
    if scale <= 0:
        return float("nan")
    keep = np.abs(dr) >= 1e-6 * scale
    return float(np.mean(np.abs(dn[keep] - dr[keep]) / np.abs(dr[keep])))


def compare_bsshslm(spec: NetworkSpec, threads: int = 1) -> dict[str, Any]:
    """NEST vs :func:`run_online_bsshslm`: per projection the largest update and ``max_rel_err`` (max |dW_nest -
    dW_ref| / max |dW_ref| over existing synapses), losses per iteration and their largest relative difference."""
    nest_run = run_nest_bsshslm(spec, threads=threads)
    ref = run_online_bsshslm(spec)
    out: dict[str, Any] = {"model": describe_recurrent(spec), "task": spec.meta.get("task"), "projections": {}}
    for p in PROJECTIONS:
        dn = (nest_run.weights[p] - spec.weights[p])[spec.masks[p]]
        dr = (ref.weights[p] - spec.weights[p])[spec.masks[p]]
        scale = float(np.abs(dr).max()) if dr.size else 0.0
        out["projections"][p] = {
            "n_synapses": int(dr.size),
            "max_abs_update": scale,
            "max_abs_update_nest": float(np.abs(dn).max()) if dn.size else 0.0,
            "max_rel_err": float(np.abs(dn - dr).max() / scale) if scale > 0 else float("nan"),
            "mean_rel_err": _mean_rel_err(dn, dr, scale),
        }
    ln, lr = nest_run.losses, ref.losses
    out["loss_nest"] = ln.tolist()
    out["loss_reference"] = lr.tolist()
    out["loss_max_rel_err"] = float(np.max(np.abs(ln - lr) / np.maximum(np.abs(lr), 1e-300)))
    out["readout_max_abs_err"] = float(np.abs(nest_run.readout - ref.readout).max())
    out["target_signal_max_abs_err"] = float(np.abs(nest_run.target_signal - ref.target_signal).max())
    return out

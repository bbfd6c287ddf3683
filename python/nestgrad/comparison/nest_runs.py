"""The NEST side of the exchange format: make a NetworkSpec from a nestgrad configuration (with the models' full
parameters as NEST reports them) and run a NetworkSpec in NEST."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from nestgrad.config import ExperimentConfig, GradientAlgorithm, NetworkConfig, OptimizerConfig
from nestgrad.errors import ModelError
from nestgrad.nest_engine import fresh_kernel
from nestgrad.networks.eprop_classic import EPROP_PARAMETER_KEYS, EpropNetwork, initial_weights
from nestgrad.reference.spec import NetworkSpec
from nestgrad.tasks import TrialBatch, make_task

# Parameters the reference engine reads; taken from NEST's defaults unless the configuration sets them.
REFERENCE_PARAM_KEYS = (
    "C_m",
    "E_L",
    "I_e",
    "V_m",
    "V_th",
    "V_min",
    "V_reset",
    "t_ref",
    "tau_m",
    "tau_syn_ex",
    "tau_syn_in",
    "tau_syn",
    "adapt_beta",
    "adapt_tau",
    "asc_amp",
    "asc_tau",
    "with_refr_input",
) + EPROP_PARAMETER_KEYS
READOUT_PARAM_KEYS = ("C_m", "E_L", "I_e", "V_m", "V_min", "tau_m", "eprop_isi_trace_cutoff")
# NEST's built-in e-prop neurons convert f_target from Hz to spikes/ms on set but report the converted value on get.
_F_TARGET_REPORTED_PER_MS = ("eprop_iaf", "eprop_iaf_adapt", "eprop_iaf_psc_delta", "eprop_iaf_psc_delta_adapt")


def full_parameters(nest: Any, model: str, overrides: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    defaults = nest.GetDefaults(model)
    params = {k: defaults[k] for k in keys if k in defaults}
    if "f_target" in params and model in _F_TARGET_REPORTED_PER_MS:
        params["f_target"] = params["f_target"] * 1000.0
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise ModelError(f"unknown parameter(s) {unknown} for model {model!r}")
    return params | dict(overrides)


def spec_from_config(config: ExperimentConfig, iterations: int) -> NetworkSpec:
    """The network and the first ``iterations`` iterations of data that ``Trainer(config)`` would train."""
    task = make_task(config.task, config.network.seed)
    net_cfg = config.network
    n_in, n_out = net_cfg.n_in or task.n_in, net_cfg.n_out or task.n_out
    nest = fresh_kernel(resolution=config.task.resolution)
    net = EpropNetwork(net_cfg, config.optimizer, n_in, n_out, config.task.resolution)
    net.validate(nest)
    rec_params = full_parameters(nest, net_cfg.neuron_model, net.neuron_params, REFERENCE_PARAM_KEYS)
    readout_params = full_parameters(nest, "eprop_readout", net.readout_params, READOUT_PARAM_KEYS)
    nest.ResetKernel()
    weights = initial_weights(
        n_in, net_cfg.n_rec, n_out, net_cfg.seed, net_cfg.recurrent, net_cfg.weight_scale, net_cfg.neuron_model
    )
    masks = {
        "in_rec": np.ones((net_cfg.n_rec, n_in), bool),
        "rec_rec": ~np.eye(net_cfg.n_rec, dtype=bool) & net_cfg.recurrent,
        "rec_out": np.ones((n_out, net_cfg.n_rec), bool),
    }
    batches = [task.batch(k) for k in range(iterations)]
    return NetworkSpec(
        resolution=config.task.resolution,
        rec_model=net_cfg.neuron_model,
        rec_params=rec_params,
        readout_params=readout_params,
        weights=weights,
        masks=masks,
        optimizer=config.optimizer.nest_dict()
        | ({"sign_constrained": True} if config.optimizer.sign_constrained else {}),
        input_spikes=np.concatenate([b.input_spikes for b in batches]),
        target=np.concatenate([b.target for b in batches]),
        window=np.concatenate([b.learning_window for b in batches]),
        iteration_steps=batches[0].steps,
        meta={"task": config.task.name, "trial_steps": batches[0].trial_steps, "config": config.to_dict()},
        gradient_algorithm=net_cfg.gradient_algorithm,
    )


@dataclass
class NestRun:
    weights: dict[str, np.ndarray]
    readout: np.ndarray  # [data steps, n_out]
    # eprop_event_synapse with running products: windows that passed their cutoff computed from summaries
    event_window_summaries_used: int = 0
    # eprop_event_synapse with running sums: window parts read from the second level (blocks of 32 segments)
    event_block_sums_used: int = 0


def run_nest(spec: NetworkSpec, threads: int = 1) -> NestRun:
    """Build ``spec`` in NEST, simulate all its iterations in one kernel, return final weights and readouts."""
    spec.validate()
    nest = fresh_kernel(threads=threads, resolution=spec.resolution)
    opt = OptimizerConfig(**spec.optimizer)
    net_cfg = NetworkConfig(
        neuron_model=spec.rec_model,
        n_rec=spec.n_rec,
        neuron_params=spec.rec_params,
        readout_params=spec.readout_params,
        recurrent=bool(spec.masks["rec_rec"].any()),
        gradient_algorithm=spec.gradient_algorithm,
    )
    net = EpropNetwork(net_cfg, opt, spec.n_in, spec.n_out, spec.resolution)
    net.validate(nest)
    net.build(nest, spec.weights, record_neurons=0, masks=spec.masks)
    T = spec.iteration_steps
    batches = [
        TrialBatch(
            spec.input_spikes[k * T : (k + 1) * T],
            spec.target[k * T : (k + 1) * T],
            spec.window[k * T : (k + 1) * T],
            T,
        )
        for k in range(spec.iterations)
    ]
    net.load_segment(nest, batches)
    t = net.lead_in_ms()
    nest.Simulate(t)
    readout = []
    for b in batches:
        nest.Simulate(b.steps * spec.resolution)
        readout.append(net.collect(nest, t, b.steps).readout)
        t += b.steps * spec.resolution
    weights = net.read_weights(nest)
    used = {}
    if spec.gradient_algorithm == GradientAlgorithm.EVENT:
        status = net._nodes["rec"][0].get()
        for key in ("event_window_summaries_used", "event_block_sums_used"):
            if key in status:
                used[key] = int(np.sum(net._nodes["rec"].get(key)))
    nest.ResetKernel()
    return NestRun(weights, np.concatenate(readout), **used)

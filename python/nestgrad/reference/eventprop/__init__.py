"""EventProp reference engine (pure NumPy): exact event-driven simulation of current-based LIF networks and the
exact gradient of a loss by the adjoint method (Wunderlich & Pehle 2021), checked against finite differences.

Typical use::

    from nestgrad.reference.eventprop import Network, Population, Projection, Trial, ReadoutCrossEntropy, evaluate
    result = evaluate(net, trials, ReadoutCrossEntropy("out", mode="max"))
    result.loss, result.grad_weights["hid_out"], result.grad_delays["hid_out"]

See docs/eventprop.md for the model, the adjoint and how it is checked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from nestgrad.errors import ConfigError
from nestgrad.reference.eventprop.adjoint import Gradients, backward, readout_adjoint
from nestgrad.reference.eventprop.glif3_engine import Glif3Record, backward_glif3, check_supported, simulate_glif3
from nestgrad.reference.eventprop.losses import (
    FirstSpikeLoss,
    LossTerms,
    ReadoutCrossEntropy,
    ReadoutMSE,
    SpikeCountRegulariser,
)
from nestgrad.reference.eventprop.network import (
    CompiledNetwork,
    Network,
    Population,
    Projection,
    Trial,
    compile_network,
)
from nestgrad.reference.eventprop.simulate import ForwardRecord, simulate

Loss = Callable[[CompiledNetwork, ForwardRecord, Trial], LossTerms]


@dataclass
class Result:
    loss: float  # mean (or sum, see ``reduction``) over trials
    grad_weights: dict[str, np.ndarray]  # per projection, edge order (1/pA)
    grad_delays: dict[str, np.ndarray]  # per projection (1/ms)
    records: list[ForwardRecord]
    outputs: list[np.ndarray]  # per trial: readout values (or first-spike times) of the main loss
    # with time_constants=True: per population, per constant ("tau_m", "tau_syn", and "adapt_tau" for lif), one
    # value per neuron (1/ms), mean over trials
    grad_params: dict[str, dict[str, np.ndarray]] | None = None


def _check(trials: Sequence[Trial]) -> None:
    if len(trials) == 0:
        raise ConfigError("need at least one trial")


def evaluate(
    net: Network | CompiledNetwork,
    trials: Sequence[Trial],
    loss: Loss,
    regularisers: Sequence[Loss] = (),
    gradient: bool = True,
    time_constants: bool = False,
    reduction: str = "mean",
) -> Result:
    """Loss over ``trials`` and, with ``gradient``, its exact gradient w.r.t. every weight and delay (and, with
    ``time_constants``, every neuron's tau_m, tau_syn and adapt_tau). ``reduction``: "mean" (default) or "sum"
    over the trials, for the loss and the gradients alike."""
    cnet = net if isinstance(net, CompiledNetwork) else compile_network(net)
    _check(trials)
    if reduction not in ("mean", "sum"):
        raise ConfigError(f"reduction {reduction!r}: allowed 'mean', 'sum'")
    total = 0.0
    gw = np.zeros(len(cnet.w))
    gd = np.zeros(len(cnet.w))
    gt = np.zeros((3, cnet.n))
    records, outputs = [], []
    glif3 = "glif3" in cnet.kind  # networks of input, glif3 and li populations: the GLIF3 engine
    if glif3:
        check_supported(cnet, time_constants)
    for trial in trials:
        rec = simulate_glif3(cnet, trial) if glif3 else simulate(cnet, trial)
        terms = loss(cnet, rec, trial)
        outputs.append(terms.outputs)
        for reg in regularisers:
            terms.merge(reg(cnet, rec, trial))
        total += terms.value
        if gradient:
            if glif3:
                grads = backward_glif3(cnet, rec, terms)
            else:
                grads = backward(cnet, rec, terms, time_constants=time_constants)
            gw += grads.weights
            gd += grads.delays
            if time_constants:
                gt += np.array([grads.tau_m, grads.tau_syn, grads.adapt_tau])
        records.append(rec)
    b = len(trials) if reduction == "mean" else 1
    grad_params = None
    if gradient and time_constants:
        grad_params = {}
        for pop in cnet.net.populations:
            if pop.kind == "input":
                continue
            ids = np.asarray(cnet.global_ids(pop.name))
            names = ("tau_m", "tau_syn", "adapt_tau") if pop.kind == "lif" else ("tau_m", "tau_syn")
            grad_params[pop.name] = {k: gt[i, ids] / b for i, k in enumerate(names)}
    return Result(
        loss=total / b,
        grad_weights={k: gw[s] / b for k, s in cnet.proj_slices.items()},
        grad_delays={k: gd[s] / b for k, s in cnet.proj_slices.items()},
        records=records,
        outputs=outputs,
        grad_params=grad_params,
    )


__all__ = [
    "CompiledNetwork",
    "FirstSpikeLoss",
    "ForwardRecord",
    "Glif3Record",
    "Gradients",
    "Network",
    "Population",
    "Projection",
    "ReadoutCrossEntropy",
    "ReadoutMSE",
    "Result",
    "SpikeCountRegulariser",
    "Trial",
    "backward",
    "backward_glif3",
    "compile_network",
    "evaluate",
    "readout_adjoint",
    "simulate",
    "simulate_glif3",
]

"""The optimizer of nestgrad's EventProp synapses in NumPy, with their weight bounds: the twin against which the
weights that NEST learns are checked (``tests/test_eventprop_dale.py``, ``nestgrad compare``).

Rule (cpp_module/synapse_support/eprop_inline_optimizer.h, once per batch): the batch's mean gradient g is applied
by gradient descent (w -= eta g) or by Adam (bias correction folded into the step size,
alpha = eta sqrt(1 - beta_2^t) / (1 - beta_1^t)), and the weight is clipped to its edge's [Wmin, Wmax].

Bounds per edge (:func:`edge_bounds`): the optimizer's ``Wmin``/``Wmax`` (default unbounded), replaced by the
bounds of the edge's projection where given, and narrowed by Dale's law where the edge's source neuron has a sign:
an excitatory source (+1) keeps its outgoing weights >= 0 (Wmin = max(Wmin, 0)), an inhibitory one (-1) <= 0
(Wmax = min(Wmax, 0)). NEST applies the same bounds through copies of the synapse models, one per distinct pair
(``nest_engine.eventprop.build``).

Learning rates per projection (:func:`edge_learning_rates`): ``learning_rates`` = projection -> eta replaces the
optimizer's eta for that projection's edges (0 freezes them: a fixed readout, fixed inputs); NEST applies them
through the same model copies.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nestgrad.errors import ConfigError
from nestgrad.reference.eventprop.network import CompiledNetwork, Network, Trial, compile_network

EXCITATORY = 1  # Dale's law: the neuron's outgoing weights stay >= 0
INHIBITORY = -1  # ... stay <= 0
UNSIGNED = 0  # no sign constraint

Bounds = Mapping[str, tuple[float, float]]
Signs = Mapping[str, Any]
LearningRates = Mapping[str, float]


def neuron_signs(cnet: CompiledNetwork, signs: Signs | None) -> np.ndarray:
    """Per global neuron: +1 (excitatory), -1 (inhibitory) or 0, from ``signs`` = population name -> a sign or one
    sign per neuron (populations not named: 0). :class:`ConfigError` naming the population otherwise."""
    out = np.zeros(cnet.n, np.int8)
    for pop, value in (signs or {}).items():
        if pop not in cnet.offsets:
            raise ConfigError(f"signs: no population named {pop!r}; have {sorted(cnet.offsets)}")
        ids = cnet.global_ids(pop)
        arr = np.asarray(value)
        if arr.ndim == 0:
            arr = np.full(len(ids), arr)
        if arr.shape != (len(ids),):
            raise ConfigError(f"signs[{pop!r}]: shape {arr.shape}, need () or ({len(ids)},)")
        if not np.all(np.isin(arr, (EXCITATORY, INHIBITORY, UNSIGNED))):
            raise ConfigError(f"signs[{pop!r}]: values {sorted(set(arr.tolist()))}, allowed +1, -1 and 0")
        out[ids.start : ids.stop] = arr
    return out


def edge_bounds(
    cnet: CompiledNetwork,
    optimizer: Mapping[str, Any] | None = None,
    bounds: Bounds | None = None,
    signs: Signs | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(Wmin, Wmax) of every edge (edge order, pA): see the module docstring. Raises :class:`ConfigError` naming
    the projection for an unknown projection, bounds that are not numbers with Wmin <= Wmax, an empty interval
    (e.g. bounds below 0 for an excitatory source) or an initial weight outside its edge's bounds."""
    opt = optimizer or {}
    lo = np.full(len(cnet.w), float(opt.get("Wmin", -math.inf)))
    hi = np.full(len(cnet.w), float(opt.get("Wmax", math.inf)))
    for name, pair in (bounds or {}).items():
        if name not in cnet.proj_slices:
            raise ConfigError(f"bounds: no projection named {name!r}; have {sorted(cnet.proj_slices)}")
        try:
            b_lo, b_hi = (float(x) for x in pair)
        except (TypeError, ValueError):
            raise ConfigError(f"bounds[{name!r}] = {pair!r}: need (Wmin, Wmax) in pA") from None
        if math.isnan(b_lo) or math.isnan(b_hi) or not b_lo <= b_hi:
            raise ConfigError(f"bounds[{name!r}] = ({b_lo}, {b_hi}): need Wmin <= Wmax (pA)")
        lo[cnet.proj_slices[name]] = b_lo
        hi[cnet.proj_slices[name]] = b_hi
    sign = neuron_signs(cnet, signs)[cnet.src] if len(cnet.src) else np.zeros(0, np.int8)
    lo = np.where(sign == EXCITATORY, np.maximum(lo, 0.0), lo)
    hi = np.where(sign == INHIBITORY, np.minimum(hi, 0.0), hi)
    for name, sl in cnet.proj_slices.items():
        w, a, b = cnet.w[sl], lo[sl], hi[sl]
        empty = np.flatnonzero(a > b)
        if empty.size:
            k = int(empty[0])
            raise ConfigError(
                f"projection {name!r}, edge {k}: the bounds [{a[k]:g}, {b[k]:g}] pA and Dale's law (source sign "
                f"{int(sign[sl][k]):+d}) leave no weight"
            )
        out = np.flatnonzero((w < a) | (w > b))
        if out.size:
            k = int(out[0])
            raise ConfigError(
                f"projection {name!r}, edge {k}: initial weight {w[k]:.6g} pA outside its bounds [{a[k]:g}, {b[k]:g}] "
                f"pA ({out.size} edges outside; Dale's law: an excitatory source's weights are >= 0, an inhibitory "
                "one's <= 0)"
            )
    return lo, hi


def edge_learning_rates(
    cnet: CompiledNetwork, optimizer: Mapping[str, Any] | None = None, learning_rates: LearningRates | None = None
) -> np.ndarray:
    """eta of every edge (edge order): the optimizer's, replaced by ``learning_rates[projection]`` where given.
    Raises :class:`ConfigError` naming the projection for an unknown projection or a rate that is not a finite
    number >= 0 (0 freezes the projection)."""
    eta = np.full(len(cnet.w), float((optimizer or {}).get("eta", 0.0)))
    for name, rate in (learning_rates or {}).items():
        if name not in cnet.proj_slices:
            raise ConfigError(f"learning_rates: no projection named {name!r}; have {sorted(cnet.proj_slices)}")
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not (math.isfinite(rate) and rate >= 0):
            raise ConfigError(f"learning_rates[{name!r}] = {rate!r}: need a finite number >= 0 (0: frozen)")
        eta[cnet.proj_slices[name]] = float(rate)
    return eta


@dataclass
class NumpyOptimizer:
    """Per-edge optimizer state over the global edge order of a network: one :meth:`step` per batch."""

    settings: Mapping[str, Any]  # type, eta; for Adam beta_1, beta_2, epsilon
    lo: np.ndarray  # per edge Wmin (pA)
    hi: np.ndarray  # per edge Wmax (pA)
    eta: np.ndarray | None = None  # per edge learning rate (edge_learning_rates); None: the settings' eta
    m: np.ndarray = field(init=False)
    v: np.ndarray = field(init=False)
    beta_1_power: float = 1.0
    beta_2_power: float = 1.0

    def __post_init__(self) -> None:
        if self.settings.get("type", "gradient_descent") not in ("gradient_descent", "adam"):
            raise ConfigError(f"optimizer type {self.settings.get('type')!r}: allowed gradient_descent, adam")
        self.m = np.zeros(len(self.lo))
        self.v = np.zeros(len(self.lo))

    def step(self, w: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The weights after one step with the batch's mean gradient ``g`` (1/pA), and which edges the bounds
        clipped (bool per edge)."""
        s = self.settings
        eta = float(s["eta"]) if self.eta is None else self.eta
        if s.get("type", "gradient_descent") == "adam":
            b1, b2 = float(s["beta_1"]), float(s["beta_2"])
            self.beta_1_power *= b1
            self.beta_2_power *= b2
            # per edge as in the synapse: alpha = eta * sqrt(1 - beta_2^t) / (1 - beta_1^t), in this order
            alpha = eta * math.sqrt(1.0 - self.beta_2_power) / (1.0 - self.beta_1_power)
            self.m = b1 * self.m + (1.0 - b1) * g
            self.v = b2 * self.v + (1.0 - b2) * g * g
            new = w - alpha * self.m / (np.sqrt(self.v) + float(s["epsilon"]))
        else:
            new = w - eta * g
        clipped = (new < self.lo) | (new > self.hi)
        return np.clip(new, self.lo, self.hi), clipped


def drop_large_trial_gradients(cnet: CompiledNetwork, g: np.ndarray, limit: float) -> np.ndarray:
    """One trial's weight gradient per edge (edge order, 1/pA) after the per-trial clipping of NEST's spiking
    EventProp neurons (``max_trial_gradient`` of ``eventprop_iaf_psc_exp_ps``; Göltz et al.'s ``max_dw_norm``):
    every edge into a ``lif`` neuron whose incoming edges' largest |g| exceeds ``limit`` gets 0 (readouts never
    drop). ``limit`` = inf: ``g`` unchanged."""
    if limit == math.inf:
        return g
    largest = np.zeros(cnet.n)
    np.maximum.at(largest, cnet.tgt, np.abs(g))
    spiking = np.array([k == "lif" for k in cnet.kind], bool)
    return np.where((spiking & (largest > limit))[cnet.tgt], 0.0, g)


def batch_loss_and_gradient(
    cnet: CompiledNetwork, trials: Sequence[Trial], loss: Any, max_trial_gradient: float
) -> tuple[float, np.ndarray]:
    """The mean loss of ``trials`` and their mean weight gradient (edge order, 1/pA) as NEST's EventProp synapses
    form it: with ``max_trial_gradient`` < inf each trial's gradient separately through
    :func:`drop_large_trial_gradients`, then the sum over the trials divided by their number; with inf the
    reference's mean over the batch. ``loss``: one loss, or a tuple (loss, regulariser, ...) as
    ``nest_engine.eventprop.run_training`` takes it."""
    from nestgrad.reference.eventprop import evaluate

    losses = tuple(loss) if isinstance(loss, tuple | list) else (loss,)

    def flat(res: Any) -> np.ndarray:
        g = np.zeros(len(cnet.w))
        for k, sl in cnet.proj_slices.items():
            g[sl] = res.grad_weights[k]
        return g

    if max_trial_gradient == math.inf:
        res = evaluate(cnet, trials, losses[0], regularisers=losses[1:])
        return float(res.loss), flat(res)
    # summed in trial order from 0, as evaluate sums a batch's loss: the same number as one call on all trials
    total_loss, total = 0.0, np.zeros(len(cnet.w))
    for trial in trials:
        res = evaluate(cnet, [trial], losses[0], regularisers=losses[1:])
        total_loss += res.loss
        total += drop_large_trial_gradients(cnet, flat(res), max_trial_gradient)
    return float(total_loss) / len(trials), total / len(trials)


def batch_gradient(cnet: CompiledNetwork, trials: Sequence[Trial], loss: Any, max_trial_gradient: float) -> np.ndarray:
    """The mean weight gradient of :func:`batch_loss_and_gradient`."""
    return batch_loss_and_gradient(cnet, trials, loss, max_trial_gradient)[1]


@dataclass
class ReferenceTraining:
    """Weights after training per projection (edge order), per projection how many (edge, step) pairs the bounds
    clipped, and the loss of every batch at the weights its gradient was taken at (before its step)."""

    weights: dict[str, np.ndarray]
    clipped: dict[str, int]
    optimizer: NumpyOptimizer
    losses: list[float]


def train(
    net: Network | CompiledNetwork,
    trials: Sequence[Trial],
    loss: Any,
    optimizer: Mapping[str, Any],
    *,
    bounds: Bounds | None = None,
    signs: Signs | None = None,
    learning_rates: LearningRates | None = None,
) -> ReferenceTraining:
    """Train on ``trials`` in order, one step per ``optimizer["batch_size"]`` trials (a whole number of batches),
    with the reference engine's gradients (:func:`~nestgrad.reference.eventprop.evaluate`, mean over the batch) and
    :class:`NumpyOptimizer`: what ``nest_engine.eventprop.run_training`` computes inside NEST (with
    ``optimizer["max_trial_gradient"]``: per-trial clipping, :func:`batch_loss_and_gradient`; ``learning_rates``:
    per projection, :func:`edge_learning_rates`). ``nestgrad compare`` checks NEST's training against it."""
    cnet = net if isinstance(net, CompiledNetwork) else compile_network(net)
    lo, hi = edge_bounds(cnet, optimizer, bounds, signs)
    limit = float(optimizer.get("max_trial_gradient", math.inf))
    eta = edge_learning_rates(cnet, optimizer, learning_rates) if learning_rates else None
    opt = NumpyOptimizer(optimizer, lo, hi, eta)
    w = cnet.w.astype(float).copy()
    clipped = np.zeros(len(w), np.int64)
    losses = []
    bs = int(optimizer.get("batch_size", 1))
    if bs < 1 or len(trials) % bs:
        raise ConfigError(f"{len(trials)} trials: need a whole number of batches of batch_size = {bs}")
    for start in range(0, len(trials), bs):
        current = compile_network(cnet.net.with_weights({k: w[sl] for k, sl in cnet.proj_slices.items()}))
        batch_loss, g = batch_loss_and_gradient(current, trials[start : start + bs], loss, limit)
        losses.append(batch_loss)
        w, hit = opt.step(w, g)
        clipped += hit
    return ReferenceTraining(
        {k: w[sl].copy() for k, sl in cnet.proj_slices.items()},
        {k: int(clipped[sl].sum()) for k, sl in cnet.proj_slices.items()},
        opt,
        losses,
    )

"""Evidence accumulation with exact spike times (issue 20, item 8: a temporal task for a recurrent hidden layer).

The task of nestgrad's ``evidence`` (the classic e-prop networks, :class:`nestgrad.tasks.EvidenceAccumulationTask`;
Bellec et al. 2020, Nat. Commun. 11:3625, Fig. 3, after Morcos & Harvey 2016, reduced), posed in EventProp's trial
format: each trial is a list of exact spike times per input neuron (continuous time, not a grid) and a label.

Protocol (times in ms, ``[task.params]`` = :class:`~nestgrad.config.eventprop.EvidenceSpikesConfig`):

* **Inputs**: four groups of ``group`` neurons (40 by default): left cues (neurons 0..g-1), right cues (g..2g-1),
  recall cue (2g..3g-1), background (3g..4g-1).
* **Cues**: ``n_cues`` (odd) cue periods of ``cue_ms + cue_spacing_ms``; in period i the group of cue i's side fires
  at ``cue_rate`` during [i P, i P + cue_ms). Each trial first draws its majority side's probability: the cues fall
  on the left with probability p or 1 - p (each half of the trials, p = ``cue_side_probability``), then each cue's
  side independently, as the ``evidence`` task does (close and clear majorities both occur).
* **Delay** of ``delay_ms`` after the last cue period, then the **recall** cue: the recall group fires at
  ``cue_rate`` during [recall_start, T), T = recall_start + ``recall_ms``.
* **Background**: the background group fires at ``background_rate`` all trial long.
* **Label**: the side with more cues (0 left, 1 right). The loss and the decision use the two readouts over the
  recall window only (the architecture sets ``ReadoutCrossEntropy(..., window_start=recall_start)``): the network
  must carry the count across the delay.

Spikes are homogeneous Poisson processes in continuous time: per neuron and interval [a, b) a Poisson count with
mean rate (b - a) / 1000, placed uniformly in [a, b) (float64, then sorted).

Where it differs from ``evidence``: times are continuous (``evidence`` draws Bernoulli spikes per grid step);
the trial is shorter by default (5 cues of 50 ms with 25 ms gaps, 150 ms delay, 100 ms recall: T = 625 ms; ``evidence``
uses 7 x (100 + 50) ms, 600 ms delay, 150 ms recall: 1,800 ms) so that a few minutes of training on two cores show
learning; every length is a parameter, and the ``evidence`` defaults reproduce its timing. The target is a class
(cross-entropy on the readouts' mean voltage in the window) instead of ``evidence``'s one-hot voltage target (MSE).

Batches: training batch i draws its trials from ``numpy.random.default_rng([seed, 0xE7A1, i])`` (new trials every
iteration); evaluation batches (indices from ``EVALUATION_FIRST_BATCH`` on) from ``[test_seed, 0x7E57, i]``, a
stream that training never draws from: held-out trials, the same for every run with the same ``test_seed``.
"""

from __future__ import annotations

import numpy as np

from nestgrad.config.eventprop import EvidenceSpikesConfig
from nestgrad.reference.eventprop import Trial
from nestgrad.tasks import EVALUATION_FIRST_BATCH


def poisson_times(rng: np.random.Generator, rate_hz: float, start: float, stop: float) -> np.ndarray:
    """Sorted spike times (ms) of a homogeneous Poisson process of ``rate_hz`` on [start, stop)."""
    n = int(rng.poisson(rate_hz * (stop - start) / 1000.0)) if rate_hz > 0.0 and stop > start else 0
    return np.sort(rng.uniform(start, stop, n))


class EvidenceSpikes:
    """The trials of the evidence-accumulation task (module docstring): ``trials(i)`` gives batch i's
    ``batch_size`` trials (the ``eventprop`` architecture wraps them in
    :class:`nestgrad.networks.eventprop.EvidenceTask`)."""

    def __init__(self, config: EvidenceSpikesConfig, batch_size: int, seed: int):
        config.validate()
        self.config, self.batch_size, self.seed = config, batch_size, seed
        self.n_in, self.n_out = config.n_in, config.n_out
        self.duration = config.duration
        self.recall_start = config.recall_start

    def trial(self, rng: np.random.Generator) -> Trial:
        """One trial: spike times of the ``n_in`` inputs (population ``"in"``) and the label."""
        c = self.config
        g, T = c.group, c.duration
        p = c.cue_side_probability
        p_left = rng.choice([1.0 - p, p])
        sides = (rng.random(c.n_cues) >= p_left).astype(int)  # 0 = left, 1 = right (as the evidence task)
        label = int(sides.sum() > c.n_cues // 2)
        intervals: list[list[tuple[float, float, float]]] = [[] for _ in range(4)]  # per group: (start, stop, rate)
        for i, side in enumerate(sides):
            start = i * c.cue_period
            intervals[int(side)].append((start, start + c.cue_ms, c.cue_rate))
        intervals[2].append((c.recall_start, T, c.cue_rate))
        intervals[3].append((0.0, T, c.background_rate))
        spikes: list[np.ndarray] = []
        for grp in range(4):
            for _ in range(g):
                parts = [poisson_times(rng, rate, a, min(b, T)) for a, b, rate in intervals[grp]]
                spikes.append(np.sort(np.concatenate(parts)) if parts else np.zeros(0))
        return Trial({"in": spikes}, label=label)

    def trials(self, iteration: int) -> list[Trial]:
        """Batch ``iteration``'s trials: training batches new ones each iteration, evaluation batches (from
        ``EVALUATION_FIRST_BATCH`` on) held-out ones (module docstring)."""
        if iteration >= EVALUATION_FIRST_BATCH:
            rng = np.random.default_rng([self.config.test_seed, 0x7E57, iteration - EVALUATION_FIRST_BATCH])
        else:
            rng = np.random.default_rng([self.seed, 0xE7A1, iteration])
        return [self.trial(rng) for _ in range(self.batch_size)]

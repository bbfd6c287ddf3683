"""Göltz et al.'s Yin-Yang recipe in an independent closed-form trainer: what the recipe gives, apart from NEST.

The network of ``configs/yinyang_ttfs.toml`` (4 inputs + bias -> 120 -> 3, tau_m == tau_s, one spike per neuron) in
Göltz et al.'s units (tau_s = 1, threshold 1, a weight w makes the current jump by w): each first spike time comes
from the closed form t* = b/a - W0(-(theta / a) exp(b / a)) over the causal set (Göltz, Kriener et al. 2021, Methods;
scipy's Lambert W), its derivatives by implicit differentiation of v(t*) = theta, chained by hand through the two
layers. Training follows their published Yin-Yang set-up as read in fastAndDeep (experiment_configs/yin_yang.yaml,
src/training.py): Adam (eta 0.005, PyTorch's defaults), x 0.95 every 20 epochs, batches of 150, loss xi = 0.2,
alpha = 0.005, beta = 1, per-point gradient clipping (max_dw_norm = 0.2 on the gradient of the batch mean), their
weight bumping (hidden layer when > 30 % of its spikes are missing, else any output that missed a spike; 0.0005,
doubled while the same layer is bumped batch after batch) and, by default, no optimizer step on a bumped batch.

What differs from NEST's training of the same configuration, as options: NEST's 1-ms delays (``--out-delay``,
``--bias-out``), the trial's end (``--t-max-out``), batch size; ``--step-on-bump`` takes the optimizer step on a
bumped batch too, with the gradient of the batch's forward pass before the bump (the bump is added on top) and a
missing output counted at ``--missing-t`` (no gradient through it), as nestgrad's ``weight_bump_skips_step = false``
does with t = T. ``--no-doubling`` and ``--bump-max`` change the bumps (nestgrad: ``weight_bump_doubling``);
``--eta`` and ``--decay`` the learning-rate schedule; ``--average-epochs N`` also scores the mean of the weights at
the ends of the last N epochs. Each run reports validation and test accuracy and the bump values of its last 10
epochs. The data are nestgrad's Yin-Yang splits (5,000 training, 1,000 validation and
1,000 test points).

    python scaling_runs/yinyang_ttfs_closed_form.py --seeds 1 2 3 4 5 --out runs/yy_closed_form
    python scaling_runs/yinyang_ttfs_closed_form.py --seeds 1 2 3 4 5 --step-on-bump --out runs/yy_cf_step

About 1 s per epoch on one core (5 min per seed of 300 epochs). Results: docs/first_spike_time.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys
import time

import numpy as np
from scipy.special import lambertw

from nestgrad.tasks import yinyang

N_HIDDEN, N_OUT = 120, 3


def first_spike_times(t_in: np.ndarray, w: np.ndarray, theta: float = 1.0, t_max: float = np.inf) -> np.ndarray:
    """First spike times [B, n_out] of neurons with tau_m = tau_s = 1 from input spike times ``t_in`` [B, n_in] (inf:
    no spike) through weights ``w`` [n_in, n_out]; inf where the voltage never reaches ``theta`` (or later than
    ``t_max``). The earliest crossing over the prefixes of the sorted inputs whose solution lies between the
    prefix's last input and the next one."""
    order = np.argsort(t_in, axis=1)
    ts = np.take_along_axis(t_in, order, axis=1)
    present = np.isfinite(ts)
    ts0 = np.where(present, ts, 0.0)
    ws = w[order] * present[:, :, None]
    e = np.exp(ts0)[:, :, None]
    with np.errstate(all="ignore"):  # prefixes with a <= 0 or no crossing give nan/inf: masked below
        a = np.cumsum(ws * e, axis=1)
        b = np.cumsum(ws * ts0[:, :, None] * e, axis=1)
        z = -theta / a * np.exp(b / a)
        ok = (a > 0) & np.isfinite(z) & (z >= -1.0 / np.e) & present[:, :, None]
        t = b / a - lambertw(np.where(ok, z, -0.1), 0).real
        nxt = np.concatenate([ts[:, 1:], np.full((ts.shape[0], 1), np.inf)], axis=1)
        ok &= (t >= ts[:, :, None]) & (t <= nxt[:, :, None])
    first = np.where(ok, t, np.inf).min(axis=1)
    return np.where(first <= t_max, first, np.inf)


def spike_time_derivatives(t_in: np.ndarray, w: np.ndarray, t_out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """d t_out / d w and d t_out / d t_in, both [B, n_in, n_out], from v(t*) = theta: with s = t* - t_i over the
    causal inputs, dv/dt = sum_i w_i e^-s (1 - s), d t*/d w_i = -s e^-s / (dv/dt), d t*/d t_i = w_i e^-s (1 - s) /
    (dv/dt); 0 for missing output spikes."""
    with np.errstate(invalid="ignore"):
        s = t_out[:, None, :] - t_in[:, :, None]
        causal = np.isfinite(s) & (s > 0)
    s0 = np.where(causal, s, 0.0)
    k = np.where(causal, np.exp(-s0), 0.0)
    slope = np.sum(w[None] * k * (1.0 - s0), axis=1)
    good = np.isfinite(t_out) & (slope > 0)
    inv = np.where(good, 1.0 / np.where(good, slope, 1.0), 0.0)[:, None, :]
    return -s0 * k * inv, w[None] * k * (1.0 - s0) * inv


def first_spike_loss(
    t_out: np.ndarray, labels: np.ndarray, xi: float = 0.2, alpha: float = 0.005, beta: float = 1.0
) -> tuple[float, np.ndarray]:
    """Göltz et al.'s loss, mean over the batch: cross-entropy of softmax(-t / xi) plus alpha (exp(t_label / beta) -
    1); returns it and its gradient w.r.t. ``t_out`` (finite times required)."""
    logits = -t_out / xi
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    rows = np.arange(len(labels))
    t_label = t_out[rows, labels]
    loss = -np.log(p[rows, labels]) + alpha * (np.exp(t_label / beta) - 1.0)
    grad = -p / xi
    grad[rows, labels] += 1.0 / xi + alpha / beta * np.exp(t_label / beta)
    return float(loss.mean()), grad / len(labels)


@dataclasses.dataclass
class Adam:
    """PyTorch's Adam (beta 0.9 / 0.999, eps 1e-8, bias-corrected) over a list of arrays, updated in place."""

    shapes: list[tuple[int, ...]]
    eta: float
    beta_1: float = 0.9
    beta_2: float = 0.999
    eps: float = 1e-8
    steps: int = 0

    def __post_init__(self) -> None:
        self.m = [np.zeros(s) for s in self.shapes]
        self.v = [np.zeros(s) for s in self.shapes]

    def step(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        self.steps += 1
        c1, c2 = 1.0 - self.beta_1**self.steps, 1.0 - self.beta_2**self.steps
        for p, g, m, v in zip(params, grads, self.m, self.v, strict=True):
            m *= self.beta_1
            m += (1.0 - self.beta_1) * g
            v *= self.beta_2
            v += (1.0 - self.beta_2) * g * g
            p -= (self.eta / c1) * m / (np.sqrt(v) / np.sqrt(c2) + self.eps)


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Göltz et al.'s Yin-Yang set-up (defaults) and the options that model what differs in NEST."""

    epochs: int = 300
    batch: int = 150
    eta: float = 0.005
    decay: float = 0.95
    decay_every_epochs: int = 20
    t_early: float = 0.15
    t_late: float = 2.0
    bias_hidden: float = 0.9
    bias_out: float = 0.9
    out_delay: float = 0.0  # extra arrival delay of hidden spikes at the outputs (NEST: 2 x 1 ms = 0.4 tau_s)
    t_max_out: float = np.inf  # output spikes after this are lost (NEST: the trial's end)
    w_hidden: tuple[float, float] = (1.5, 0.8)
    w_out: tuple[float, float] = (0.5, 0.8)
    max_dw_norm: float = 0.2
    bump: float = 0.0005
    bump_doubling: bool = True  # nestgrad's weight_bump_doubling
    bump_max: float = np.inf  # doubling stops here
    average_epochs: int = 0  # > 0: also score the mean of the weights at the ends of the last this many epochs
    hidden_missing: float = 0.3
    step_on_bump: bool = False
    missing_t: float = 4.0  # a missing output's time in the loss when a bumped batch takes its step


@dataclasses.dataclass
class Network:
    w_hidden: np.ndarray  # [4 + 1, 120]
    w_out: np.ndarray  # [120 + 1, 3]
    recipe: Recipe

    def inputs(self, values: np.ndarray) -> np.ndarray:
        r = self.recipe
        t = r.t_early + values * (r.t_late - r.t_early)
        return np.concatenate([t, np.full((len(t), 1), r.bias_hidden)], axis=1)

    def forward(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(hidden-layer inputs, hidden spikes, output-layer inputs, output spikes)."""
        r = self.recipe
        x = self.inputs(values)
        h = first_spike_times(x, self.w_hidden)
        hx = np.concatenate([h + r.out_delay, np.full((len(h), 1), r.bias_out)], axis=1)
        return x, h, hx, first_spike_times(hx, self.w_out, t_max=r.t_max_out)

    def predict(self, values: np.ndarray) -> np.ndarray:
        return np.argmin(self.forward(values)[3], axis=1)

    def accuracy(self, data: yinyang.YinYangData) -> float:
        return float(np.mean(self.predict(data.inputs) == data.labels))

    def gradients(
        self,
        values: np.ndarray,
        labels: np.ndarray,
        missing_t: float,
        passes: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
    ) -> tuple[float, np.ndarray, np.ndarray]:
        """Batch-mean loss and its weight gradients, clipped per point and neuron as Göltz et al.'s ``max_dw_norm``
        (a point's gradient into a neuron is dropped when its largest entry exceeds it; the error sent back to the
        hidden layer is not clipped, as theirs). ``passes``: :meth:`forward` of ``values`` at the current weights,
        if already computed."""
        x, h, hx, o = self.forward(values) if passes is None else passes
        missing = ~np.isfinite(o)
        loss, g_out = first_spike_loss(np.where(missing, missing_t, o), labels)
        g_out[missing] = 0.0  # no spike, no gradient through its time
        dw, dt = spike_time_derivatives(hx, self.w_out, o)
        gw_out = self._clip(dw * g_out[:, None, :])
        g_hidden = np.sum(dt * g_out[:, None, :], axis=2)[:, :N_HIDDEN]
        dw_h, _ = spike_time_derivatives(x, self.w_hidden, h)
        gw_hidden = self._clip(dw_h * g_hidden[:, None, :])
        return loss, gw_hidden.sum(axis=0), gw_out.sum(axis=0)

    def _clip(self, g: np.ndarray) -> np.ndarray:
        big = np.abs(g).max(axis=1) > self.recipe.max_dw_norm  # [B, n_out]
        return np.where(big[:, None, :], 0.0, g)


def train(recipe: Recipe, seed: int, log: bool = True) -> dict:
    """One run; returns test and training accuracy, the counts of steps and bumps, and a short history."""
    rng = np.random.default_rng(seed)
    train_set, test_set, val_set = yinyang.split("train"), yinyang.split("test"), yinyang.split("validation")
    net = Network(
        rng.normal(*recipe.w_hidden, (4 + 1, N_HIDDEN)), rng.normal(*recipe.w_out, (N_HIDDEN + 1, N_OUT)), recipe
    )
    adam = Adam([net.w_hidden.shape, net.w_out.shape], recipe.eta)
    bump_value, last_bumped = recipe.bump, None
    steps = bumps = 0
    late_bumps: list[float] = []  # bump values over the last 10 epochs: the late weight changes they make
    averaged = [np.zeros_like(net.w_hidden), np.zeros_like(net.w_out)]
    history = []
    t0 = time.perf_counter()
    for epoch in range(recipe.epochs):
        adam.eta = recipe.eta * recipe.decay ** (epoch // recipe.decay_every_epochs)
        order = rng.permutation(len(train_set))
        correct = 0
        for start in range(0, len(order), recipe.batch):
            idx = order[start : start + recipe.batch]
            values, labels = train_set.inputs[idx], train_set.labels[idx]
            passes = net.forward(values)
            h, o = passes[1], passes[3]
            correct += int(np.sum(np.argmin(o, axis=1) == labels))
            layer = None
            if np.mean(~np.isfinite(h)) > recipe.hidden_missing:
                layer, w, silent = "hidden", net.w_hidden, ~np.isfinite(h).all(axis=0)
            elif not np.isfinite(o).all():
                layer, w, silent = "out", net.w_out, ~np.isfinite(o).all(axis=0)
            stepping = layer is None or recipe.step_on_bump
            if stepping:
                # the gradient of the batch's own forward pass at the weights before any bump, as nestgrad's
                # weight_bump_skips_step = false: the bump is added on top of the step
                _, g_hidden, g_out = net.gradients(values, labels, recipe.missing_t, passes)
            if layer is not None:
                doubled = recipe.bump_doubling and layer == last_bumped
                bump_value = min(2 * bump_value, recipe.bump_max) if doubled else recipe.bump
                w[:, silent] += bump_value
                bumps += 1
                if epoch >= recipe.epochs - 10:
                    late_bumps.append(bump_value)
            last_bumped = layer
            if not stepping:
                continue
            adam.step([net.w_hidden, net.w_out], [g_hidden, g_out])
            steps += 1
        if epoch >= recipe.epochs - recipe.average_epochs:
            averaged[0] += net.w_hidden / recipe.average_epochs
            averaged[1] += net.w_out / recipe.average_epochs
        if (epoch + 1) % 10 == 0 or epoch + 1 == recipe.epochs:
            test_acc, val_acc = net.accuracy(test_set), net.accuracy(val_set)
            history.append(
                {
                    "epoch": epoch + 1,
                    "train_batch_accuracy": correct / len(order),
                    "validation_accuracy": val_acc,
                    "test_accuracy": test_acc,
                }
            )
            if log:
                print(
                    f"seed {seed} epoch {epoch + 1:4d}  training batches {correct / len(order):.4f}  "
                    f"validation {val_acc:.4f}  test {test_acc:.4f}  steps {steps}  bumps {bumps}  "
                    f"[{time.perf_counter() - t0:.0f} s]",
                    flush=True,
                )
    mean_net = Network(averaged[0], averaged[1], recipe) if recipe.average_epochs else None
    return {
        "seed": seed,
        "averaged_weights_test_accuracy": mean_net.accuracy(test_set) if mean_net else None,
        "averaged_weights_validation_accuracy": mean_net.accuracy(val_set) if mean_net else None,
        # the last epoch is always scored: its history entry holds the final network's accuracies
        "test_accuracy": history[-1]["test_accuracy"],
        "validation_accuracy": history[-1]["validation_accuracy"],
        "train_accuracy": net.accuracy(train_set),
        "optimizer_steps": steps,
        "bumped_batches": bumps,
        "bump_value_quantiles_last_10_epochs": {
            q: float(np.quantile(late_bumps, float(q))) if late_bumps else 0.0 for q in ("0.5", "0.9", "1.0")
        },
        "seconds": time.perf_counter() - t0,
        "history": history,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    ap.add_argument("--epochs", type=int, default=Recipe.epochs)
    ap.add_argument("--batch", type=int, default=Recipe.batch)
    ap.add_argument("--eta", type=float, default=Recipe.eta, help="Adam's initial learning rate")
    ap.add_argument("--decay", type=float, default=Recipe.decay, help="learning-rate factor every 20 epochs")
    ap.add_argument("--bias-out", type=float, default=Recipe.bias_out, help="output layer's bias spike (tau_s)")
    ap.add_argument("--out-delay", type=float, default=0.0, help="hidden -> output arrival delay (tau_s)")
    ap.add_argument("--t-max-out", type=float, default=np.inf, help="output spikes later than this are lost")
    ap.add_argument("--step-on-bump", action="store_true", help="a bumped batch takes its optimizer step too")
    ap.add_argument("--no-doubling", action="store_true", help="every bump is the same (no doubling)")
    ap.add_argument("--bump-max", type=float, default=np.inf, help="largest bump (doubling stops there)")
    ap.add_argument("--average-epochs", type=int, default=0, help="also score the mean weights of the last N epochs")
    ap.add_argument("--missing-t", type=float, default=Recipe.missing_t, help="a missing output's time in the loss")
    ap.add_argument("--out", default="out/yinyang_ttfs_closed_form")
    args = ap.parse_args(argv)
    recipe = Recipe(
        epochs=args.epochs,
        batch=args.batch,
        eta=args.eta,
        decay=args.decay,
        bias_out=args.bias_out,
        out_delay=args.out_delay,
        t_max_out=args.t_max_out,
        step_on_bump=args.step_on_bump,
        missing_t=args.missing_t,
        bump_doubling=not args.no_doubling,
        bump_max=args.bump_max,
        average_epochs=args.average_epochs,
    )
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        run = train(recipe, seed)
        (out / f"seed{seed}.json").write_text(json.dumps(run, indent=1))
        averaged = run["averaged_weights_test_accuracy"]
        tail = "" if averaged is None else f" (mean weights of the last {args.average_epochs} epochs: {averaged:.4f})"
        print(f"seed {seed}: test accuracy {run['test_accuracy']:.4f}{tail}", flush=True)
    runs = [json.loads(p.read_text()) for p in sorted(out.glob("seed*.json"))]
    acc = np.array([r["test_accuracy"] for r in runs])
    val = np.array([r.get("validation_accuracy", np.nan) for r in runs])
    summary = {
        "recipe": {k: (v if np.isfinite(v) else "inf") if isinstance(v, float) else v for k, v in vars(recipe).items()},
        "seeds": [r["seed"] for r in runs],
        "test_accuracy": acc.tolist(),
        "mean": float(acc.mean()),
        "sd": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
        "validation_accuracy": val.tolist(),
        "validation_mean": float(val.mean()),
        "averaged_weights_test_accuracy": [r.get("averaged_weights_test_accuracy") for r in runs],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(
        f"{len(acc)} seeds: test accuracy {100 * summary['mean']:.1f} +- {100 * summary['sd']:.1f} %, "
        f"validation {100 * summary['validation_mean']:.1f} %"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

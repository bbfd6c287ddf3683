"""The latency-coded digits network trained by BPTT with surrogate gradients in PyTorch (issue 20, item 9's baseline).

Network (the one the EventProp benchmark trains in every column, ``DigitsNetwork``): 784 latency-coded inputs
(:mod:`nestgrad.tasks.digits_latency`) -> ``n_hidden`` LIF neurons with an exponential synaptic current -> 10 leaky
readouts with the same current, no threshold. The equations and parameter names are those of docs/eventprop.md
(NEST's ``iaf_psc_exp_ps`` convention, v = V_m - E_L)::

    dv/dt = -v / tau_m + I / C_m         spike when v reaches V_th - E_L; v = V_reset - E_L (t_ref = 0)
    dI/dt = -I / tau_syn                 I += w (pA) when a spike arrives

Parameters follow mlGeNN's EventProp latency-MNIST example (LIF v_thresh = 1, tau_mem = 20 ms, Exponential(5 ms)
synapses, LeakyIntegrate(tau_mem = 20 ms) readouts, 20 ms trials, DT = 1 ms, batch 32): its neurons integrate
tau_m dV/dt = -V + I, i.e. C_m = tau_m (numerically, pF = ms) in our units. The loss is the cross-entropy of the
softmax of the readouts' mean voltage over the trial, y_k = (1/T) int_0^T v_k dt (the reference engine's
``ReadoutCrossEntropy(pop, "sum")``, mlGeNN's ``avg_var``), or with ``--readout max`` of their maximum.

Time stepping (dt = ``--dt`` ms, default 1 ms as in mlGeNN's example): exact integration of the linear dynamics over
a step, as NEST does: v <- P22 v + P21 I, then I <- P11 I + (weights of the spikes of this step), then threshold
and reset; so a spike reaches its targets' v one step later (a transmission delay of one step). Input spikes fall
into the step floor(t / dt). The spike's derivative is replaced by SuperSpike's fast sigmoid
1 / (1 + slope |v - theta|)^2 (``--surrogate-slope``, 1/mV); the reset is differentiated through. Adam (``--lr``),
minibatches of ``--batch-size`` trials, one update per minibatch, the training set shuffled each epoch (seeded).

PyTorch is a benchmark-only dependency (requirements-bench.txt: ``torch==2.13.0``, CPU wheel).

    python scaling_runs/torch_bptt_digits.py --hidden 100 --epochs 1 --threads 1
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np


@dataclass(frozen=True)
class DigitsNetwork:
    """The benchmark network (NEST names and units: pF, ms, mV, pA); every column trains this one."""

    n_hidden: int = 100
    C_m: float = 20.0  # pF (= tau_m: mlGeNN's tau_m dV/dt = -V + I)
    tau_m: float = 20.0  # ms
    tau_syn: float = 5.0  # ms
    E_L: float = 0.0  # mV
    V_th: float = 1.0  # mV
    V_reset: float = 0.0  # mV
    t_ref: float = 0.0  # ms
    readout_C_m: float = 20.0  # pF
    readout_tau_m: float = 20.0  # ms
    readout_tau_syn: float = 5.0  # ms
    # initial weights (pA), normal; mlGeNN's example draws N(0.078, 0.045) for ~150 lit MNIST pixels, our digits
    # light ~550 of 784, so the input mean is scaled down by ~150/550 (keeps the hidden layer's drive comparable)
    w_in_mean: float = 0.02
    w_in_std: float = 0.045
    w_out_mean: float = 0.2
    w_out_std: float = 0.37
    delay: float = 1.0  # ms: transmission delay of every connection (one time step in the BPTT)

    def lif_params(self) -> dict[str, float]:
        """The hidden population's parameters for the EventProp reference engine (``lif``)."""
        keys = ("C_m", "tau_m", "tau_syn", "E_L", "V_th", "V_reset", "t_ref")
        return {k: getattr(self, k) for k in keys}

    def li_params(self) -> dict[str, float]:
        """The readouts' parameters for the EventProp reference engine (``li``)."""
        return {"C_m": self.readout_C_m, "tau_m": self.readout_tau_m, "tau_syn": self.readout_tau_syn, "E_L": self.E_L}


def initial_weights(net: DigitsNetwork, n_in: int, n_out: int, seed: int) -> dict[str, np.ndarray]:
    """Dense initial weights as matrices [pre, post] (pA): ``in_hid`` [n_in, n_hidden], ``hid_out``
    [n_hidden, n_out]; the same for every column of the benchmark."""
    rng = np.random.default_rng([seed, 0xD1])
    return {
        "in_hid": rng.normal(net.w_in_mean, net.w_in_std, (n_in, net.n_hidden)),
        "hid_out": rng.normal(net.w_out_mean, net.w_out_std, (net.n_hidden, n_out)),
    }


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (MiB; Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class TorchBPTT:
    """The network in PyTorch: ``train_epoch`` (BPTT, Adam) and ``accuracy``."""

    def __init__(
        self,
        net: DigitsNetwork,
        weights: dict[str, np.ndarray],
        dt: float,
        lr: float = 5e-3,
        surrogate_slope: float = 10.0,
        readout: str = "sum",
        threads: int = 1,
        seed: int = 1,
        dtype: str = "float32",
    ):
        import torch

        from nestgrad.errors import ConfigError

        if readout not in ("sum", "max"):
            raise ConfigError(f"readout {readout!r}: allowed 'sum', 'max'")
        if not (math.isfinite(dt) and dt > 0):
            raise ConfigError(f"dt = {dt!r} ms: need > 0")
        torch.set_num_threads(threads)
        self.torch, self.net, self.dt, self.readout = torch, net, dt, readout
        self.rng = np.random.default_rng([seed, 0xB9])

        def propagators(tau_m: float, tau_s: float, c_m: float) -> tuple[float, float, float]:
            p22, p11 = math.exp(-dt / tau_m), math.exp(-dt / tau_s)
            equal = tau_m == tau_s  # the limit of the kernel for tau_m -> tau_s
            p21 = dt * p22 / c_m if equal else tau_s * tau_m / (c_m * (tau_m - tau_s)) * (p22 - p11)
            return p22, p21, p11

        self.hid = propagators(net.tau_m, net.tau_syn, net.C_m)
        self.out = propagators(net.readout_tau_m, net.readout_tau_syn, net.readout_C_m)
        theta = net.V_th - net.E_L
        v_reset = net.V_reset - net.E_L

        class Spike(torch.autograd.Function):
            @staticmethod
            def forward(ctx, v):  # noqa: ANN001, ANN205
                ctx.save_for_backward(v)
                return (v >= theta).to(v.dtype)

            @staticmethod
            def backward(ctx, grad):  # noqa: ANN001, ANN205
                (v,) = ctx.saved_tensors
                return grad / (1.0 + surrogate_slope * torch.abs(v - theta)) ** 2

        self.spike = Spike.apply
        self.v_reset = v_reset
        self.dtype = getattr(torch, dtype)  # float32: PyTorch's default (faster); float64 for checks
        self.w_in = torch.tensor(weights["in_hid"], dtype=self.dtype, requires_grad=True)
        self.w_out = torch.tensor(weights["hid_out"], dtype=self.dtype, requires_grad=True)
        self.optimizer = torch.optim.Adam([self.w_in, self.w_out], lr=lr)

    def forward(self, x: Any) -> tuple[Any, Any]:
        """x: float [batch, steps, n_in] input spikes -> (readout values y [batch, n_out], hidden spike count)."""
        torch = self.torch
        b, steps, _ = x.shape
        h, n_out = self.w_in.shape[1], self.w_out.shape[1]
        p22, p21, p11 = self.hid
        q22, q21, q11 = self.out
        in_cur = x @ self.w_in  # [b, steps, h]: the inputs do not depend on the state
        kw = {"dtype": self.w_in.dtype}
        v = torch.zeros(b, h, **kw)
        i = torch.zeros(b, h, **kw)
        vo = torch.zeros(b, n_out, **kw)
        io = torch.zeros(b, n_out, **kw)
        acc = torch.zeros(b, n_out, **kw)
        best = torch.full((b, n_out), -math.inf, **kw)
        n_spikes = torch.zeros((), **kw)
        for t in range(steps):
            v = p22 * v + p21 * i
            i = p11 * i + in_cur[:, t]
            z = self.spike(v)
            v = v * (1.0 - z) + self.v_reset * z
            vo = q22 * vo + q21 * io
            io = q11 * io + z @ self.w_out
            if self.readout == "sum":
                acc = acc + vo
            else:
                best = torch.maximum(best, vo)
            n_spikes = n_spikes + z.detach().sum()
        y = acc / steps if self.readout == "sum" else best
        return y, n_spikes

    def train_epoch(self, raster: np.ndarray, labels: np.ndarray, batch_size: int) -> dict[str, float]:
        """One pass over the training set in shuffled minibatches; returns mean loss, training accuracy, hidden
        spikes per trial."""
        torch = self.torch
        order = self.rng.permutation(len(labels))
        losses, correct, spikes = [], 0, 0.0
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            x = torch.from_numpy(raster[idx]).to(self.dtype)
            target = torch.from_numpy(labels[idx])
            self.optimizer.zero_grad()
            y, n = self.forward(x)
            loss = torch.nn.functional.cross_entropy(y, target)
            loss.backward()
            self.optimizer.step()
            losses.append(float(loss.detach()) * len(idx))
            correct += int((y.detach().argmax(1) == target).sum())
            spikes += float(n)
        return {
            "train_loss": sum(losses) / len(labels),
            "train_accuracy": correct / len(labels),
            "hidden_spikes_per_trial": spikes / len(labels),
        }

    def accuracy(self, raster: np.ndarray, labels: np.ndarray, batch_size: int = 256) -> float:
        torch = self.torch
        correct = 0
        with torch.no_grad():
            for start in range(0, len(labels), batch_size):
                x = torch.from_numpy(raster[start : start + batch_size]).to(self.dtype)
                y, _ = self.forward(x)
                correct += int((y.argmax(1) == torch.from_numpy(labels[start : start + batch_size])).sum())
        return correct / len(labels)


def run(
    hidden: int,
    epochs: int,
    threads: int,
    dt: float = 1.0,
    batch_size: int = 32,
    lr: float = 5e-3,
    surrogate_slope: float = 10.0,
    readout: str = "sum",
    seed: int = 1,
    net: DigitsNetwork | None = None,
) -> dict[str, Any]:
    """Train for ``epochs`` and return accuracy after the last, seconds per epoch (training only) and peak RSS."""
    from nestgrad.errors import ConfigError
    from nestgrad.tasks.digits_latency import DigitsLatency

    for name, value, low in (("hidden", hidden, 1), ("epochs", epochs, 1), ("threads", threads, 1),
                             ("batch_size", batch_size, 1)):  # fmt: skip
        if not isinstance(value, int) or value < low:
            raise ConfigError(f"{name} = {value!r}: need an integer >= {low}")
    rss_start = peak_rss_mib()
    data = DigitsLatency()
    net = replace(net or DigitsNetwork(), n_hidden=hidden)
    model = TorchBPTT(
        net, initial_weights(net, data.n_in, data.n_out, seed), dt, lr, surrogate_slope, readout, threads, seed
    )
    train_x, train_y = data.raster("train", dt), data.arrays("train")[1]
    test_x, test_y = data.raster("test", dt), data.arrays("test")[1]
    epoch_s, history = [], []
    for _ in range(epochs):
        t0 = time.perf_counter()
        stats = model.train_epoch(train_x, train_y, batch_size)
        epoch_s.append(time.perf_counter() - t0)
        history.append(stats)
    return {
        "method": "pytorch_bptt",
        "hidden": hidden,
        "epochs": epochs,
        "threads": threads,
        "dt_ms": dt,
        "batch_size": batch_size,
        "lr": lr,
        "readout": readout,
        "surrogate_slope": surrogate_slope,
        "test_accuracy": model.accuracy(test_x, test_y),
        "seconds_per_epoch": float(np.mean(epoch_s)),
        "epoch_seconds": epoch_s,
        "history": history,
        "peak_rss_mib": peak_rss_mib(),
        "rss_before_mib": rss_start,
        "network": asdict(net),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dt", type=float, default=1.0, help="time step (ms)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-3, help="Adam's learning rate (the benchmark's)")
    parser.add_argument("--surrogate-slope", type=float, default=10.0, help="fast sigmoid slope (1/mV)")
    parser.add_argument("--readout", choices=["sum", "max"], default="sum")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line")
    args = parser.parse_args()
    res = run(args.hidden, args.epochs, args.threads, args.dt, args.batch_size, args.lr, args.surrogate_slope,
              args.readout, args.seed)  # fmt: skip
    if args.json:
        print(json.dumps(res))
    else:
        print(
            f"PyTorch BPTT, hidden {res['hidden']}, dt {res['dt_ms']} ms, {res['threads']} thread(s): test accuracy "
            f"{res['test_accuracy']:.4f} after {res['epochs']} epoch(s), {res['seconds_per_epoch']:.2f} s per epoch, "
            f"peak RSS {res['peak_rss_mib']:.0f} MiB; per epoch: "
            + ", ".join(f"loss {h['train_loss']:.3f} acc {h['train_accuracy']:.3f}" for h in res["history"])
        )


if __name__ == "__main__":
    main()

"""NEST 3.10's weight optimizers (models/weight_optimizer.cpp), per synapse, vectorised.

NEST calls the optimizer of a synapse when a presynaptic spike passes it, with ``idx`` = the time step before the
spike's stamp. Gradients are summed until the optimization step ``1 + idx // batch_size`` advances; then the mean
is applied (Adam runs one update per elapsed optimization step, the first with the gradient, the others with zero)
and the weight is clipped to [Wmin, Wmax].
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nestgrad.errors import SpecError


class OptimizerState:
    """The optimizer of every synapse of one projection. ``cfg`` is NEST's optimizer dictionary as the exchange
    file stores it (``type``, ``eta``, ``batch_size``, ``Wmin``, ``Wmax``; for Adam also ``beta_1``, ``beta_2``,
    ``epsilon``): every value comes from the file, none from defaults of this engine, so that NEST and the reference
    cannot disagree about a setting nobody wrote down."""

    def __init__(
        self,
        shape: tuple[int, ...],
        cfg: dict[str, Any],
        w0: np.ndarray | None = None,
        nonneg: np.ndarray | None = None,
    ):
        """``nonneg`` (bool per synapse, Dale's law of :class:`nestgrad.spec.Projection`) bounds each synapse to its
        sign as NEST's sign-bounded model copies do; otherwise ``cfg["sign_constrained"]`` takes the signs of
        ``w0``."""
        self.cfg = cfg
        self.type = _setting(cfg, "type")
        if self.type not in ("gradient_descent", "adam"):
            raise SpecError(f"optimizer type {self.type!r} is not supported (gradient_descent, adam)")
        if cfg.get("optimize_each_step", False):
            raise SpecError("optimize_each_step = True is not supported by the reference engine")
        self.eta = float(_setting(cfg, "eta"))
        self.batch = int(_setting(cfg, "batch_size"))
        self.Wmin, self.Wmax = float(_setting(cfg, "Wmin")), float(_setting(cfg, "Wmax"))
        if nonneg is not None:
            nonneg = np.asarray(nonneg, bool)
            self.Wmin = np.where(nonneg, max(self.Wmin, 0.0), self.Wmin)
            self.Wmax = np.where(nonneg, self.Wmax, min(self.Wmax, 0.0))
        elif cfg.get("sign_constrained", False):
            # Dale's law: per-synapse bounds by the sign of the initial weight w0 (nestgrad's builders connect the two
            # signs with copies of the synapse model whose bounds are these)
            if w0 is None:
                raise SpecError("sign_constrained optimizer needs the initial weights")
            nonneg = np.asarray(w0) >= 0.0
            self.Wmin = np.where(nonneg, max(self.Wmin, 0.0), self.Wmin)
            self.Wmax = np.where(nonneg, self.Wmax, min(self.Wmax, 0.0))
        self.cumulative = np.zeros(shape)
        self.step = np.ones(shape, dtype=np.int64)
        if self.type == "adam":
            self.b1, self.b2 = float(_setting(cfg, "beta_1")), float(_setting(cfg, "beta_2"))
            self.eps = float(_setting(cfg, "epsilon"))
            self.m = np.zeros(shape)
            self.v = np.zeros(shape)
            self.b1p = np.ones(shape)
            self.b2p = np.ones(shape)

    def apply(
        self, w: np.ndarray, idx_rows: np.ndarray, idx_cols: np.ndarray, gradient: np.ndarray, t_idx: int
    ) -> None:
        """Optimizer call for the synapses (idx_rows, idx_cols) of ``w`` (modified in place)."""
        self.apply_at(w, (idx_rows, idx_cols), gradient, t_idx)

    def apply_at(self, w: np.ndarray, index: tuple[np.ndarray, ...], gradient: np.ndarray, t_idx: int) -> None:
        """Optimizer call for the synapses ``w[index]`` (``index``: one integer array per axis of ``w``, no synapse
        twice), ``w`` modified in place."""
        sel = tuple(index)
        self.cumulative[sel] += gradient
        current = 1 + t_idx // self.batch
        due = self.step[sel] < current
        if not np.any(due):
            return
        sel = tuple(i[due] for i in sel)
        cum = self.cumulative[sel] / self.batch
        wv = w[sel]
        if self.type == "gradient_descent":
            wv = wv - self.eta * cum
        else:
            n = current - self.step[sel]  # optimization steps to run: the first with the gradient, then zeros
            m, v, b1p, b2p = self.m[sel], self.v[sel], self.b1p[sel], self.b2p[sel]
            for k in range(int(n.max())):
                run = k < n
                b1p = np.where(run, b1p * self.b1, b1p)
                b2p = np.where(run, b2p * self.b2, b2p)
                alpha = self.eta * np.sqrt(1.0 - b2p) / (1.0 - b1p)
                g = cum if k == 0 else 0.0
                m_new = self.b1 * m + (1.0 - self.b1) * g
                v_new = self.b2 * v + (1.0 - self.b2) * g * g
                m = np.where(run, m_new, m)
                v = np.where(run, v_new, v)
                wv = np.where(run, wv - alpha * m / (np.sqrt(v) + self.eps), wv)
            self.m[sel], self.v[sel], self.b1p[sel], self.b2p[sel] = m, v, b1p, b2p
        lo = self.Wmin[sel] if np.ndim(self.Wmin) else self.Wmin
        hi = self.Wmax[sel] if np.ndim(self.Wmax) else self.Wmax
        w[sel] = np.clip(wv, lo, hi)
        self.cumulative[sel] = 0.0
        self.step[sel] = current


def _setting(cfg: dict[str, Any], key: str) -> Any:
    if key not in cfg:
        raise SpecError(f"optimizer.{key} is missing (the exchange file must give every optimizer setting)")
    return cfg[key]

"""Exponential polynomials f(u) = sum_r p_r(u) exp(-r u): exact integrals, derivatives and isolated real roots.

Between two events every quantity of a current-based LIF neuron (voltage, current, threshold adaptation) and of its
adjoint is such a function of the time u since the last event (polynomial factors of degree > 0 appear only when
two time constants are equal, e.g. tau_m == tau_syn). The reference engine uses this class where a closed form is
needed but a hand-written formula would be one more thing to get wrong: integral losses of readouts, the
readouts' adjoint under a loss forcing, maxima of readout voltages, and the isolation of threshold crossings of
adaptive neurons. Rates are in 1/ms, u in ms.

Rates that agree to 1e-12 (relative) are merged into one term, so that e.g. (1/tau_m + 1/tau_s) - 1/tau_s lands on
the exact key 1/tau_m. Rates that differ by more but are close (|tau_m - tau_s| / tau below ~1e-6) lose precision
in integrals (cancellation); use exactly equal time constants instead.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

_RATE_RTOL = 1e-12
_ZERO_RATE = 1e-13


class ExpPoly:
    """A finite sum of terms p(u) * exp(-rate * u); ``terms`` maps rate to ascending polynomial coefficients
    (plain lists of floats: these objects are small and short-lived, and NumPy's per-call cost would dominate)."""

    __slots__ = ("terms",)

    def __init__(self, terms: dict[float, list[float]] | None = None):
        self.terms: dict[float, list[float]] = {}
        if terms:
            for rate, coeffs in terms.items():
                self.add_term(rate, coeffs)

    # construction -------------------------------------------------------------------------------------------------
    @classmethod
    def const(cls, c: float) -> ExpPoly:
        out = cls()
        out.terms[0.0] = [float(c)]
        return out

    @classmethod
    def exp(cls, rate: float, c: float = 1.0, power: int = 0) -> ExpPoly:
        """c * u**power * exp(-rate u)."""
        out = cls()
        out.add_term(rate, [0.0] * power + [float(c)])
        return out

    def _key(self, rate: float) -> float:
        if abs(rate) <= _ZERO_RATE:
            return 0.0
        if rate in self.terms:
            return rate
        for key in self.terms:
            if abs(key - rate) <= _RATE_RTOL * max(1.0, abs(key), abs(rate)):
                return key
        return float(rate)

    def add_term(self, rate: float, coeffs) -> None:
        key = self._key(rate)
        old = self.terms.get(key)
        if old is None:
            self.terms[key] = [float(c) for c in coeffs]
        else:
            if len(coeffs) > len(old):
                old.extend([0.0] * (len(coeffs) - len(old)))
            for k, c in enumerate(coeffs):
                old[k] += c

    def items(self) -> Iterator[tuple[float, list[float]]]:
        return iter(self.terms.items())

    # algebra -------------------------------------------------------------------------------------------------------
    def copy(self) -> ExpPoly:
        out = ExpPoly()
        out.terms = {r: list(p) for r, p in self.items()}
        return out

    def __add__(self, other: ExpPoly | float) -> ExpPoly:
        out = self.copy()
        if not isinstance(other, ExpPoly):
            out.add_term(0.0, [float(other)])
            return out
        for rate, coeffs in other.items():
            out.add_term(rate, coeffs)
        return out

    __radd__ = __add__

    def scale(self, c: float) -> ExpPoly:
        out = ExpPoly()
        out.terms = {r: [c * x for x in p] for r, p in self.items()}
        return out

    def __neg__(self) -> ExpPoly:
        return self.scale(-1.0)

    def __sub__(self, other: ExpPoly | float) -> ExpPoly:
        if not isinstance(other, ExpPoly):
            return self + (-float(other))
        return self + (-other)

    def __mul__(self, other: ExpPoly | float) -> ExpPoly:
        if not isinstance(other, ExpPoly):
            return self.scale(float(other))
        out = ExpPoly()
        for r1, p1 in self.items():
            for r2, p2 in other.items():
                prod = [0.0] * (len(p1) + len(p2) - 1)
                for i, a in enumerate(p1):
                    for j, b in enumerate(p2):
                        prod[i + j] += a * b
                out.add_term(r1 + r2, prod)
        return out

    __rmul__ = __mul__

    def times_exp(self, k: float) -> ExpPoly:
        """self * exp(k u) (every rate decreases by k)."""
        out = ExpPoly()
        for r, p in self.items():
            out.add_term(r - k, p)
        return out

    # calculus ------------------------------------------------------------------------------------------------------
    def deriv(self) -> ExpPoly:
        out = ExpPoly()
        for r, p in self.items():
            q = [-r * c for c in p]
            for k in range(1, len(p)):
                q[k - 1] += k * p[k]
            out.add_term(r, q)
        return out

    def antideriv(self) -> ExpPoly:
        """F with F' = self (integration constant 0 in the representation)."""
        out = ExpPoly()
        for r, p in self.items():
            if r == 0.0:
                out.add_term(0.0, [0.0] + [c / (k + 1) for k, c in enumerate(p)])
                continue
            # q' - r q = p  =>  q = -sum_j p^(j) / r^(j+1)
            q = [0.0] * len(p)
            d = list(p)
            rj = r
            while d:
                for k, c in enumerate(d):
                    q[k] -= c / rj
                d = [k * d[k] for k in range(1, len(d))]
                rj *= r
            out.add_term(r, q)
        return out

    def integral(self, a: float, b: float) -> float:
        """Definite integral over [a, b]."""
        F = self.antideriv()
        return F(b) - F(a)

    def __call__(self, u: float) -> float:
        total = 0.0
        for r, p in self.items():
            poly = 0.0
            for c in reversed(p):
                poly = poly * u + c
            total += poly * math.exp(-r * u)
        return total

    def is_zero(self) -> bool:
        return all(c == 0.0 for _, p in self.items() for c in p)

    def _trimmed(self) -> ExpPoly:
        out = ExpPoly()
        for r, p in self.items():
            nz = [k for k, c in enumerate(p) if c != 0.0]
            if nz:
                out.terms[r] = p[: nz[-1] + 1]
        return out

    # roots ---------------------------------------------------------------------------------------------------------
    def roots(self, lo: float, hi: float) -> list[float]:
        """All sign changes of self in (lo, hi), sorted; each located to machine precision.

        Rolle's theorem with the classical trick for exponential sums: multiplying by exp(r0 u) (r0 the smallest
        rate) does not move the roots and turns one term into a polynomial, whose derivative has lower degree; the
        roots of that derivative split [lo, hi] into monotone pieces, each of which holds at most one root.
        Tangential zeros (no sign change) are not reported.
        """
        f = self._trimmed()
        if not f.terms or hi <= lo:
            return []
        if len(f.terms) == 1:
            ((r, p),) = f.items()
            if len(p) == 1:
                return []
            cands = np.roots(p[::-1])
            pts = sorted(float(z.real) for z in cands if abs(z.imag) <= 1e-12 * max(1.0, abs(z)) and lo < z.real < hi)
            return [x for x in pts if _changes_sign(f, x, lo, hi)]
        r0 = min(f.terms)
        h = f.times_exp(r0)
        crit = h.deriv().roots(lo, hi)
        pts = [lo, *crit, hi]
        out = []
        for a, b in zip(pts[:-1], pts[1:], strict=True):
            fa, fb = f(a), f(b)
            if (fa < 0.0 <= fb) or (fa > 0.0 >= fb):
                if fb == 0.0 and b == hi:
                    continue
                out.append(bracketed_root(f, a, b))
        return out


def _changes_sign(f: ExpPoly, x: float, lo: float, hi: float) -> bool:
    eps = 1e-9 * max(1.0, abs(x))
    a, b = max(lo, x - eps), min(hi, x + eps)
    return (f(a) < 0.0) != (f(b) < 0.0)


def bracketed_root(f, a: float, b: float, df=None) -> float:
    """The root of the continuous function ``f`` in [a, b] (f(a), f(b) of opposite sign or f(b) == 0): Newton steps
    safeguarded by bisection, until the step or the bracket is at rounding level. ``df`` is f' (derived when f is an
    ExpPoly)."""
    if df is None:
        df = f.deriv()
    fa = f(a)
    neg_left = fa < 0.0
    x = 0.5 * (a + b)
    for _ in range(200):
        fx = f(x)
        if fx == 0.0:
            return x
        if (fx < 0.0) == neg_left:
            a = x
        else:
            b = x
        d = df(x)
        xn = x - fx / d if d != 0.0 and math.isfinite(d) else 0.5 * (a + b)
        if not a < xn < b:
            xn = 0.5 * (a + b)
        if abs(xn - x) <= 4.0 * math.ulp(max(abs(x), 1e-300)) or b - a <= 4.0 * math.ulp(max(abs(b), 1e-300)):
            return xn
        x = xn
    return x

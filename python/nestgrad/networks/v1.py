"""Billeh et al. (2020) mouse V1 core column of GLIF3 neurons, trained with e-prop in NEST.

The column (up to the 51,978 neurons of the 400-um core) has the 17 cell classes of Billeh et al. in their
published proportions and laminar depths, GLIF3 neurons (``eprop_glif3_psc``, NEST's ``glif_psc`` dynamics) with
Allen Cell Types fits, distance- and orientation-dependent connectivity with Billeh's rule, Billeh's weights per
class pair, four receptor ports (e->e, i->e, e->i, i->i) with their synaptic time constants, Billeh's delays, an LGN
of spatio-temporal filters (:mod:`nestgrad.networks.lgn`) whose units feed each cell through ON and OFF subfields,
and a Poisson background. Readouts are pools of L5 excitatory neurons (30 per output, Chen et al. 2022), each pool
projecting to an ``eprop_readout`` neuron.

Scale. ``n_neurons`` sets the number of core neurons; the column keeps the full model's neuron density (its radius
shrinks as sqrt(n / 51,978)). With ``keep_in_degree`` (default) connection probabilities are scaled per class pair
so that a neuron at the centre of the column has the in-degree it has in the full model (capped at probability 1);
:meth:`V1Network.describe` and ``in_degree_report()`` say how close the realised in-degrees come.

E-prop. Plastic are the LGN -> V1 synapses and (``plastic_recurrent``) the V1 -> V1 synapses, through
``eprop_vector_synapse`` with a delay of one step (NEST's e-prop synapses require it; the static network keeps
Billeh's delays), and the readout synapses (``eprop_synapse``). Learning signals reach every neuron (random
feedback, Bellec et al.'s broadcast alignment) or only the pools (``feedback = "pools"``). With pool-only feedback
the other neurons' synapses have zero gradients; ``plastic_targets = "pools"`` then makes only the pools' incoming
synapses e-prop synapses and keeps the rest static (Billeh's delays), which gives the same learning problem at
close to the static network's cost. Dale's law holds when the
optimizer's ``sign_constrained`` is set (the default configs do). Weights are kept as flat arrays in a canonical
order (sorted by source, then target), so checkpoints do not depend on how NEST distributes synapses.

Numbers, sources and fallbacks: :mod:`nestgrad.networks.v1_data` and docs/v1_model.md.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nestgrad.config import OptimizerConfig
from nestgrad.networks import v1_data as D
from nestgrad.networks.eprop_classic import (
    EPROP_SYNAPSE,
    EVENT_SYNAPSE,
    READOUT_DEFAULTS,
    VECTOR_SYNAPSE,
    Recordings,
)
from nestgrad.networks.pd_eprop import GeneratorDrivenLearner, recordings_from_devices
from nestgrad.parallel import SerialCommunicator

NEURON_MODEL = "eprop_glif3_psc"
# Chen et al.'s readout pool origins (x, z in um, at mid-L5 depth), scaled to the column's radius
POOL_ORIGINS_UM = np.array(
    [(0, 0), (100, -110), (-100, -110), (-100, 110), (100, 110), (0, 260), (180, 230), (-180, 230), (270, 95),
     (-270, 95), (270, -95), (-270, -95), (180, -230), (-180, -230), (0, -260)], dtype=float,
)  # fmt: skip
VISUAL_CENTER_DEG = (120.0, 60.0)
LGN_DENSITY_PER_DEG2 = 17400 / (240.0 * 120.0)  # Billeh's LGN: 17,400 units over a 240 x 120 deg field
LGN_MARGIN_DEG = 15.0  # beyond the column's visual field, for subfields and receptive-field sizes

EPROP_PARAMS = {
    "surrogate_gradient_function": "piecewise_linear",
    # 0.025 per mV: with the after-spike currents a higher surrogate lets eligibility traces grow without bound
    # (0.3 overflowed after ~190 s of training; EpropGlif3Psc.eligibility_growth <= 0.997 for all fits here)
    "surrogate_gradient_height": 0.025,
    "surrogate_gradient_width": 5.0,  # mV
    "kappa": 0.97,
    "kappa_reg": 0.97,
    "c_reg": 0.0,
    "f_target": 5.0,
    "eprop_isi_trace_cutoff": 100.0,
    # eprop_event_synapse only (speed, not the updates): the column fires at tens of Hz, so most windows are shorter
    # than a 32-step segment of the running products; 8-step segments sum fewer steps one by one (20 % faster at
    # 2,000 neurons, docs/event_driven_eprop.md)
    "event_segment_steps": 8,
}


@dataclass(frozen=True)
class V1Config:
    n_neurons: int = 5000  # core neurons, <= 51,978
    seed: int = 1
    keep_in_degree: bool = True  # scale probabilities so that a central neuron keeps its full-scale in-degree
    n_lgn: int = 0  # LGN units; 0: Billeh's LGN density over the column's visual field plus a margin
    lgn_per_subfield: int = 8  # LGN units drawn per ON or OFF subfield of a cell
    # Billeh's weights with the connection probabilities available here make the column explode (rates > 100 Hz);
    # these factors keep it in an asynchronous low-rate state also under full-contrast gratings (calibrated at
    # 1,000-5,000 neurons; docs/v1_model.md)
    weight_scale: float = 0.15  # multiplies the recurrent weights
    inhibitory_scale: float = 2.0  # multiplies the inhibitory recurrent weights once more
    lgn_weight_scale: float = 0.2  # multiplies the LGN weights (Billeh's N_syn x syn_weight per LGN unit)
    background_rate: float = 1000.0  # Hz, Poisson background per neuron (Chen et al.: 10 sources x 100 Hz)
    background_drive: float = 0.7  # mean background current as a fraction of each neuron's rheobase g (V_th - E_L)
    plastic_recurrent: bool = True  # V1 -> V1 synapses learn too (else only LGN -> V1 and readouts)
    pool_size: int = 30
    readout_weight: float = 0.02  # initial weight of pool neuron -> readout
    # learning rate of the readout weights (0: the optimizer's eta). Adam's steps are about eta in weight units, and
    # readout weights (~0.02) are two orders of magnitude smaller than the column's (pA)
    readout_eta: float = 0.0
    feedback: str = "random"  # "random": learning signals to every neuron; "pools": only to the readout pools
    feedback_weight: float = 1.0
    # whose incoming column synapses are e-prop synapses: "all" neurons' or only the readout "pools'" (needs
    # feedback = "pools": the other neurons then get no learning signal, so their synapses stay static)
    plastic_targets: str = "all"
    eprop_params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        def need(ok: bool, key: str, value: Any, what: str) -> None:
            if not ok:
                raise ValueError(f"network.v1.{key} = {value!r}: {what}")

        need(
            isinstance(self.n_neurons, int) and 100 <= self.n_neurons <= D.N_FULL,
            "n_neurons",
            self.n_neurons,
            f"an integer in [100, {D.N_FULL}] is required",
        )
        need(isinstance(self.n_lgn, int) and self.n_lgn >= 0, "n_lgn", self.n_lgn, "an integer >= 0")
        need(
            isinstance(self.lgn_per_subfield, int) and self.lgn_per_subfield >= 1,
            "lgn_per_subfield",
            self.lgn_per_subfield,
            "an integer >= 1",
        )
        for key in (
            "weight_scale",
            "inhibitory_scale",
            "lgn_weight_scale",
            "readout_weight",
            "feedback_weight",
            "readout_eta",
        ):
            v = getattr(self, key)
            need(isinstance(v, int | float) and math.isfinite(v) and v >= 0, key, v, "a finite number >= 0")
        need(
            math.isfinite(self.background_rate) and self.background_rate >= 0,
            "background_rate",
            self.background_rate,
            "a rate >= 0 Hz",
        )
        need(
            math.isfinite(self.background_drive) and self.background_drive >= 0,
            "background_drive",
            self.background_drive,
            "a fraction >= 0",
        )
        need(isinstance(self.pool_size, int) and self.pool_size >= 1, "pool_size", self.pool_size, "an integer >= 1")
        need(self.feedback in ("random", "pools"), "feedback", self.feedback, "'random' or 'pools'")
        need(self.plastic_targets in ("all", "pools"), "plastic_targets", self.plastic_targets, "'all' or 'pools'")
        need(
            self.plastic_targets == "all" or self.feedback == "pools",
            "plastic_targets",
            self.plastic_targets,
            "'pools' needs feedback = 'pools' (with random feedback every neuron's synapses learn)",
        )
        unknown = sorted(set(self.eprop_params) - set(EPROP_PARAMS))
        need(not unknown, "eprop_params", unknown, f"unknown key(s); known: {sorted(EPROP_PARAMS)}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> V1Config:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"network.v1: unknown key(s) {unknown}; known: {sorted(known)}")
        return cls(**d)


def class_counts(n: int) -> np.ndarray:
    """Neurons per class for a column of n neurons: published proportions, at least one each, the rest by largest
    remainder (each count within one of n x the published fraction unless the minimum of one forces more)."""
    exact = D.CORE_COUNTS * n / D.N_FULL
    counts = np.maximum(np.floor(exact).astype(np.int64), 1)
    while counts.sum() < n:
        counts[int(np.argmax(exact - counts))] += 1
    while counts.sum() > n:
        over = np.where(counts > 1, counts - exact, -np.inf)
        counts[int(np.argmax(over))] -= 1
    return counts


@dataclass
class V1Layout:
    """The column drawn with NumPy (the same for every split of virtual processes)."""

    cls: np.ndarray  # class index per neuron
    x: np.ndarray  # um, horizontal
    z: np.ndarray  # um, horizontal
    depth: np.ndarray  # um below the pia
    tuning: np.ndarray  # preferred orientation, deg in [0, 180)
    fit: np.ndarray  # Allen fit id per neuron
    radius: float
    rec_src: np.ndarray  # canonical order: by source, then target
    rec_tgt: np.ndarray
    rec_w: np.ndarray  # initial weights (pA)
    rec_receptor: np.ndarray
    rec_delay: np.ndarray  # ms (Billeh's)
    lgn_src: np.ndarray
    lgn_tgt: np.ndarray
    lgn_w: np.ndarray
    lgn_receptor: np.ndarray
    in_degree_factor: dict[tuple[str, str], float]


class V1Network(GeneratorDrivenLearner):
    """The V1 learner; same interface as :class:`~nestgrad.networks.eprop_classic.EpropNetwork` for the Trainer."""

    def __init__(
        self,
        config: V1Config,
        optimizer: OptimizerConfig,
        n_out: int,
        resolution: float,
        gradient_algorithm: str = "step",
    ):
        from nestgrad.networks.lgn import LGN

        if resolution != 1.0:
            raise ValueError(
                f"task.resolution = {resolution!r}: the V1 model runs at 1 ms (Chen et al., e-prop delays)"
            )
        self.config = config
        self.optimizer = optimizer
        self.n_out = n_out
        self.resolution = resolution
        # "event": eprop_event_synapse into the GLIF3 neurons (running products, docs/event_driven_eprop.md)
        self.plastic_model = EVENT_SYNAPSE if gradient_algorithm == "event" else VECTOR_SYNAPSE
        self.comm = SerialCommunicator()
        radius = D.CORE_RADIUS_UM * math.sqrt(config.n_neurons / D.N_FULL)
        half_x = D.DEG_PER_UM[0] * radius + LGN_MARGIN_DEG
        half_y = D.DEG_PER_UM[1] * radius + LGN_MARGIN_DEG
        n_lgn = config.n_lgn or int(round(LGN_DENSITY_PER_DEG2 * 4 * half_x * half_y))
        self.lgn = LGN.create(n_lgn, config.seed, center_deg=VISUAL_CENTER_DEG, extent_deg=(2 * half_x, 2 * half_y))
        self.n_in = self.lgn.n_units
        self.layout = self._draw(radius)
        self.pools = self._pools()
        self.neuron_params = self._neuron_params()

    @staticmethod
    def outputs_of_task(task_name: str) -> int:
        from nestgrad.v1_tasks import V1_TASKS

        return V1_TASKS[task_name].n_out

    # -- the column ----------------------------------------------------------------------------------------------
    def _draw(self, radius: float) -> V1Layout:
        c = self.config
        rng = np.random.default_rng([c.seed, 0x51])
        counts = class_counts(c.n_neurons)
        cls = np.repeat(np.arange(len(D.CLASSES)), counts)
        n = cls.size
        r = radius * np.sqrt(rng.random(n))
        phi = rng.random(n) * 2 * np.pi
        x, z = r * np.cos(phi), r * np.sin(phi)
        lo = np.array([D.DEPTH_RANGE_UM[D.LAYER[k]][0] for k in cls])
        hi = np.array([D.DEPTH_RANGE_UM[D.LAYER[k]][1] for k in cls])
        depth = lo + (hi - lo) * rng.random(n)
        tuning = rng.random(n) * 180.0
        fit = np.zeros(n, dtype=np.int64)
        for k, name in enumerate(D.CLASSES):
            ids, weights = zip(*D.CLASS_FITS[name], strict=True)
            p = np.asarray(weights, float) / sum(weights)
            fit[cls == k] = rng.choice(np.asarray(ids), size=int(np.sum(cls == k)), p=p)
        rec, factors = self._recurrent(rng, cls, x, z, tuning, radius)
        lgn = self._lgn_edges(rng, cls, x, z, tuning)
        return V1Layout(cls, x, z, depth, tuning, fit, radius, *rec, *lgn, factors)

    def _recurrent(self, rng, cls, x, z, tuning, radius):
        """Billeh's rule: p = A_new exp(-(r/sigma)^2) (times the like-to-like factor for e -> e), no autapses;
        nsyns uniform in [3, 7]; weight = syn_weight nsyns exp(-(dtheta/sigma_dir)^2)."""
        a = D.connection_scale()
        full_r = D.CORE_RADIUS_UM
        src_all, tgt_all, w_all, rec_all, dl_all = [], [], [], [], []
        factors = {}
        members = [np.flatnonzero(cls == k) for k in range(len(D.CLASSES))]
        for t, t_name in enumerate(D.CLASSES):
            T = members[t]
            for s, s_name in enumerate(D.CLASSES):
                if a[s, t] <= 0 or T.size == 0 or members[s].size == 0:
                    continue
                S = members[s]
                kind = (D.ei(s_name), D.ei(t_name))
                sigma = D.SIGMA_UM[kind]
                a_new = min(1.0, a[s, t] / ((sigma / D.R0_UM) ** 2 * (1.0 - math.exp(-((D.R0_UM / sigma) ** 2)))))
                scale = 1.0
                if self.config.keep_in_degree:
                    scale = (1.0 - math.exp(-((full_r / sigma) ** 2))) / (1.0 - math.exp(-((radius / sigma) ** 2)))
                factors[(s_name, t_name)] = scale
                chunk = max(1, int(2e7 // S.size))
                for i0 in range(0, T.size, chunk):
                    Tc = T[i0 : i0 + chunk]
                    d2 = (x[Tc, None] - x[None, S]) ** 2 + (z[Tc, None] - z[None, S]) ** 2
                    p = np.minimum(1.0, scale * a_new * np.exp(-d2 / sigma**2))
                    dtheta = np.abs(tuning[Tc, None] - tuning[None, S])
                    dtheta = np.minimum(dtheta, 180.0 - dtheta)  # in [0, 90]
                    if kind == ("e", "e"):
                        b1 = 2.0 / (1.0 + D.B_RATIO_EE[D.LAYER[t]])
                        b2 = D.B_RATIO_EE[D.LAYER[t]] * b1
                        p = np.minimum(1.0, p * (b1 + (b2 - b1) / 90.0 * dtheta))
                    if s == t:
                        p[np.arange(Tc.size), np.searchsorted(S, Tc)] = 0.0
                    ti, si = np.nonzero(rng.random(p.shape) < p)
                    nsyn = rng.integers(D.NSYN_RANGE[0], D.NSYN_RANGE[1], ti.size)
                    f = np.exp(-((dtheta[ti, si] / D.DIRECTION_SIGMA_DEG[kind]) ** 2))
                    src_all.append(S[si])
                    tgt_all.append(Tc[ti])
                    scale = self.config.weight_scale * (1.0 if kind[0] == "e" else self.config.inhibitory_scale)
                    w_all.append(D.SYN_WEIGHT_PA[t, s] * nsyn * f * scale)
                    rec_all.append(np.full(ti.size, D.RECEPTOR[kind], np.int64))
                    dl_all.append(np.full(ti.size, D.delay_ms(s_name, t_name)))
        src, tgt = np.concatenate(src_all), np.concatenate(tgt_all)
        order = np.lexsort((tgt, src))
        w, receptor, delay = (np.concatenate(v)[order] for v in (w_all, rec_all, dl_all))
        return (src[order], tgt[order], w, receptor, delay), factors

    def _lgn_edges(self, rng, cls, x, z, tuning):
        """Each cell of a class with LGN input (probability per class) draws ``lgn_per_subfield`` ON and as many OFF
        units near two subfield centres (excitatory cells: offset +-d/2 along the preferred orientation, so that
        they are orientation tuned; inhibitory cells: one untuned centre). Each drawn unit connects with Billeh's
        N_syn synapses of the class's weight (weight N_syn x syn_weight)."""
        lgn = self.lgn
        k = self.config.lgn_per_subfield
        vx = VISUAL_CENTER_DEG[0] + D.DEG_PER_UM[0] * x
        vy = VISUAL_CENTER_DEG[1] + D.DEG_PER_UM[1] * z
        on = np.flatnonzero(lgn.is_on)
        off = np.flatnonzero(~lgn.is_on)
        src_all, tgt_all, w_all, rec_all = [], [], [], []
        for j in range(cls.size):
            name = D.CLASSES[cls[j]]
            if name not in D.LGN_PROBABILITY or rng.random() >= D.LGN_PROBABILITY[name]:
                continue
            per_unit = D.LGN_NSYN[name] * D.LGN_WEIGHT_PA[name] * self.config.lgn_weight_scale
            if per_unit <= 0:
                continue
            half = D.LGN_CENTER_DISTANCE_DEG[name] / 2.0 if name.startswith("e") else 0.0
            theta = np.deg2rad(tuning[j])
            picks = []
            for sign, pool in ((1.0, on), (-1.0, off)):
                cx, cy = vx[j] + sign * half * np.cos(theta), vy[j] + sign * half * np.sin(theta)
                d2 = (lgn.x_deg[pool] - cx) ** 2 + (lgn.y_deg[pool] - cy) ** 2
                width = D.LGN_SUBFIELD_WIDTH_DEG[name] / 2.0
                p = np.exp(-d2 / (2 * width**2))
                p = p / p.sum()
                picks.append(rng.choice(pool, size=min(k, pool.size), replace=False, p=p))
            units = np.unique(np.concatenate(picks))
            src_all.append(units)
            tgt_all.append(np.full(units.size, j))
            w_all.append(np.full(units.size, per_unit))
            rec_all.append(np.full(units.size, D.RECEPTOR[("e", D.ei(name))], np.int64))
        src, tgt = np.concatenate(src_all), np.concatenate(tgt_all)
        order = np.lexsort((tgt, src))
        return src[order], tgt[order], np.concatenate(w_all)[order], np.concatenate(rec_all)[order]

    def _pools(self) -> list[np.ndarray]:
        """Readout pools: the pool_size L5 excitatory neurons nearest to each of Chen et al.'s origins (scaled)."""
        lay = self.layout
        e5 = np.flatnonzero(lay.cls == D.CLASSES.index("e5"))
        origins = POOL_ORIGINS_UM * lay.radius / D.CORE_RADIUS_UM
        taken = np.zeros(lay.cls.size, bool)
        pools = []
        for k in range(self.n_out):
            ox, oz = origins[k % len(origins)]
            free = e5[~taken[e5]]
            if free.size < self.config.pool_size:
                raise ValueError(
                    f"network.v1: {self.n_out} readout pools of {self.config.pool_size} L5 excitatory neurons need "
                    f"{self.n_out * self.config.pool_size}; the column has {e5.size} (raise n_neurons)"
                )
            d2 = (lay.x[free] - ox) ** 2 + (lay.z[free] - oz) ** 2
            pool = np.sort(free[np.argsort(d2, kind="stable")[: self.config.pool_size]])
            taken[pool] = True
            pools.append(pool)
        return pools

    def _neuron_params(self) -> list[dict[str, Any]]:
        """GLIF3 parameters per neuron (fit per class) with the background weight that gives each neuron a mean
        background current of ``background_drive`` times its rheobase."""
        lay = self.layout
        eprop = EPROP_PARAMS | self.config.eprop_params
        out = []
        for j in range(lay.cls.size):
            fit = D.GLIF_FITS[int(lay.fit[j])]
            p = dict(fit) | {
                "V_reset": fit["E_L"],
                "V_m": fit["E_L"],
                "asc_init": [0.0, 0.0],
                "asc_r": [1.0, 1.0],
                "tau_syn": list(D.TAU_SYN_MS),
            }
            out.append(p | eprop)
        return out

    def background_weights(self) -> np.ndarray:
        lay, c = self.layout, self.config
        w = np.zeros(lay.cls.size)
        if c.background_rate <= 0:
            return w
        for j in range(lay.cls.size):
            fit = D.GLIF_FITS[int(lay.fit[j])]
            rheobase = fit["g"] * (fit["V_th"] - fit["E_L"])
            tau = D.TAU_SYN_MS[D.RECEPTOR[("e", D.ei(D.CLASSES[lay.cls[j]]))] - 1]
            # an alpha current of peak w carries w e tau (pA ms) per spike
            w[j] = c.background_drive * rheobase / (c.background_rate / 1000.0 * math.e * tau)
        return w

    # -- Trainer interface ----------------------------------------------------------------------------------------
    def initial_weights(self, seed: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng([seed, 0x52])
        lay = self.layout
        n = lay.cls.size
        pool_of = np.full(n, -1)
        for k, pool in enumerate(self.pools):
            pool_of[pool] = k
        fb = np.zeros((n, self.n_out))
        if self.config.feedback == "random":
            fb = rng.normal(0.0, self.config.feedback_weight, (n, self.n_out))
        for k, pool in enumerate(self.pools):
            fb[pool, :] = 0.0
            fb[pool, k] = self.config.feedback_weight  # the pool's own error, as the readout weight's sign
        return {
            "lgn_rec": lay.lgn_w.copy(),
            "rec_rec": lay.rec_w.copy(),
            "rec_out": np.full(sum(p.size for p in self.pools), self.config.readout_weight),
            "feedback": fb,
        }

    @property
    def out_src(self) -> np.ndarray:
        return self._out_edges()[0]

    @property
    def out_tgt(self) -> np.ndarray:
        return self._out_edges()[1]

    def _out_edges(self) -> tuple[np.ndarray, np.ndarray]:
        """Pool neuron -> readout edges in canonical order (by source, then target)."""
        src = np.concatenate(self.pools)
        tgt = np.concatenate([np.full(p.size, k) for k, p in enumerate(self.pools)])
        order = np.lexsort((tgt, src))
        return src[order], tgt[order]

    def in_degree_report(self) -> dict[str, float]:
        """Mean realised recurrent in-degree per target class, and that of the full model's centre (expected)."""
        lay = self.layout
        counts = np.bincount(lay.rec_tgt, minlength=lay.cls.size)
        return {name: float(counts[lay.cls == k].mean()) for k, name in enumerate(D.CLASSES)}

    def describe(self) -> str:
        lay = self.layout
        scale = "keeps the centre's full-scale in-degree" if self.config.keep_in_degree else "unscaled probabilities"
        return (
            f"Billeh V1 core column, {lay.cls.size} GLIF3 neurons (radius {lay.radius:.0f} um; {scale}), "
            f"{lay.rec_src.size} recurrent and {lay.lgn_src.size} LGN synapses, {self.n_in} LGN units, "
            f"{self.n_out} readout pools of {self.config.pool_size}"
        )

    def validate(self, nest: Any) -> None:
        if NEURON_MODEL not in nest.node_models:
            raise ValueError(f"{NEURON_MODEL} is not loaded (nestgrad.install())")

    def build(self, nest: Any, weights: dict[str, np.ndarray], record_neurons: int, plastic: bool = True) -> None:
        lay, c, step = self.layout, self.config, self.resolution
        for key, size in (("lgn_rec", lay.lgn_src.size), ("rec_rec", lay.rec_src.size), ("rec_out", self.out_src.size)):
            w = np.asarray(weights[key])
            if w.shape != (size,) or not np.all(np.isfinite(w)):
                raise ValueError(f"weights[{key!r}]: {size} finite values expected, got shape {w.shape}")
        masks = self.plastic_masks(plastic)
        for key, mask in masks.items():
            self.optimizer.check_bounds(key, np.asarray(weights[key])[mask])
        self._built = {key: np.array(weights[key], float) for key in masks}
        self.neurons = nest.Create(NEURON_MODEL, lay.cls.size, self.neuron_params)
        ids = np.asarray(self.neurons.tolist())
        self.gen_in = nest.Create("spike_generator", self.n_in)
        self.lgn_nodes = nest.Create("parrot_neuron", self.n_in)
        self.out = nest.Create("eprop_readout", self.n_out, READOUT_DEFAULTS)
        self.gen_target = nest.Create("step_rate_generator", self.n_out)
        self.gen_window = nest.Create("step_rate_generator")
        nest.Connect(self.gen_in, self.lgn_nodes, "one_to_one", {"synapse_model": "static_synapse", "delay": step})
        self._models = {}
        lgn_ids = np.asarray(self.lgn_nodes.tolist())
        # e-prop synapses need a delay of one step; static ones keep Billeh's
        lgn_delay = np.where(masks["lgn_rec"], step, D.LGN_DELAY_MS)
        pre, post = lgn_ids[lay.lgn_src], ids[lay.lgn_tgt]
        lgn_nonneg = np.ones(lay.lgn_src.size, bool)  # LGN cells are excitatory
        self._connect(
            nest,
            "lgn_rec",
            pre,
            post,
            weights["lgn_rec"],
            lay.lgn_receptor,
            lgn_delay,
            masks["lgn_rec"],
            lgn_nonneg,
            self.plastic_model,
        )
        delays = np.where(masks["rec_rec"], step, np.maximum(np.round(lay.rec_delay), step))
        pre, post = ids[lay.rec_src], ids[lay.rec_tgt]
        # Dale's law by the source's class, not by the weight's current sign (a weight at 0 keeps its side)
        excitatory = np.array([D.ei(name) == "e" for name in D.CLASSES])[lay.cls]
        rec_nonneg = excitatory[lay.rec_src]
        self._connect(
            nest,
            "rec_rec",
            pre,
            post,
            weights["rec_rec"],
            lay.rec_receptor,
            delays,
            masks["rec_rec"],
            rec_nonneg,
            self.plastic_model,
        )
        out_ids = np.asarray(self.out.tolist())
        out_delay = np.full(self.out_src.size, step)
        pre, post = ids[self.out_src], out_ids[self.out_tgt]
        mask = masks["rec_out"]
        self._connect(nest, "rec_out", pre, post, weights["rec_out"], None, out_delay, mask, None, EPROP_SYNAPSE)
        if c.background_rate > 0:
            bg = nest.Create("poisson_generator", 1, {"rate": c.background_rate})
            receptors = np.array([D.RECEPTOR[("e", D.ei(D.CLASSES[k]))] for k in lay.cls])
            w_bg = self.background_weights()
            for r in np.unique(receptors):
                sel = receptors == r
                syn = {"weight": w_bg[sel][:, None], "delay": step, "receptor_type": int(r)}
                nest.Connect(bg, nest.NodeCollection(ids[sel].tolist()), "all_to_all", syn)
        if plastic:
            fb = np.asarray(weights["feedback"])
            post_idx, out_idx = np.nonzero(fb)
            nest.Connect(
                out_ids[out_idx],
                ids[post_idx],
                "one_to_one",
                {
                    "synapse_model": "eprop_learning_signal_connection",
                    "weight": fb[post_idx, out_idx],
                    "delay": np.full(post_idx.size, step),
                },
            )
        recorded = ids if record_neurons < 0 else np.unique(ids[self.out_src])[:record_neurons]
        self._recorded = np.asarray(recorded)
        self._connect_readout_devices(nest, self._recorded)
        self._ids, self._lgn_ids, self._out_ids = ids, lgn_ids, out_ids
        self._feedback = np.array(weights["feedback"], copy=True)

    @property
    def n_recorded(self) -> int:
        return int(getattr(self, "_recorded", np.zeros(0)).size)

    def _connect(
        self,
        nest: Any,
        key: str,
        pre: np.ndarray,
        post: np.ndarray,
        w: np.ndarray,
        receptor: np.ndarray | None,
        delay: np.ndarray,
        plastic: np.ndarray,
        nonneg: np.ndarray | None,
        plastic_model: str = VECTOR_SYNAPSE,
    ) -> None:
        """One projection; ``plastic`` marks its e-prop synapses, the others are static. With Dale's law the plastic
        ones get the sign-bounded copy of the synapse model that ``nonneg`` (the source is excitatory) chooses; None:
        not sign-constrained (the readouts: they are the task's linear readout, not synapses of the column)."""
        w = np.asarray(w, float)
        groups = [(~plastic, "static_synapse")]
        if np.any(plastic):
            eta = self.config.readout_eta if key == "rec_out" and self.config.readout_eta > 0 else None
            self._set_optimizer(nest, plastic_model, self.optimizer.Wmin, self.optimizer.Wmax, eta)
            if self.optimizer.sign_constrained and nonneg is not None:
                for sign, sel in (("nonneg", nonneg), ("neg", ~nonneg)):
                    model = f"{plastic_model}_{sign}"
                    if model not in nest.synapse_models:
                        nest.CopyModel(plastic_model, model)
                    self._set_optimizer(nest, model, *self.optimizer.signed_bounds(sign))
                    groups.append((plastic & sel, model))
            else:
                groups.append((plastic, plastic_model))
        self._models[key] = [m for _, m in groups[1:]]  # the plastic ones: static weights are those built
        for sel, model in groups:
            if not np.any(sel):
                continue
            syn = {"synapse_model": model, "weight": w[sel], "delay": delay[sel]}
            if receptor is not None:
                syn["receptor_type"] = receptor[sel]
            nest.Connect(pre[sel], post[sel], "one_to_one", syn)

    def _set_optimizer(self, nest: Any, model: str, w_min: float, w_max: float, eta: float | None = None) -> None:
        settings = self.optimizer.nest_dict() | {"Wmin": w_min, "Wmax": w_max}
        if eta is not None:
            settings["eta"] = eta
        nest.SetDefaults(model, {"weight": min(max(0.0, w_min), w_max)})
        nest.SetDefaults(model, {"optimizer": settings})

    def collect(self, nest: Any, t_start_ms: float, steps: int) -> Recordings:
        return recordings_from_devices(
            self.mm, self.sr, self._out_ids, self._recorded, t_start_ms, steps, self.resolution, self.comm
        )

    def _read_weights(self, nest: Any, key: str, pre_ids: np.ndarray, post_ids: np.ndarray, src, tgt) -> np.ndarray:
        """Weights of one projection in canonical order (sorted by source, then target): the plastic synapses' from
        NEST, the static ones' as built."""
        out = self._built[key].copy()
        keys = pre_ids[src].astype(np.int64) * (int(post_ids.max()) + 1) + post_ids[tgt]
        for model in self._models[key]:
            conns = nest.GetConnections(synapse_model=model)
            if len(conns) == 0:
                continue
            d = conns.get(["source", "target", "weight"])
            got = np.asarray(d["source"], np.int64) * (int(post_ids.max()) + 1) + np.asarray(d["target"], np.int64)
            pos = np.searchsorted(keys, got)
            ok = (pos < keys.size) & (keys[np.minimum(pos, keys.size - 1)] == got)
            out[pos[ok]] = np.asarray(d["weight"], float)[ok]
        return out

    def plastic_masks(self, plastic: bool = True) -> dict[str, np.ndarray]:
        """Which synapses of each projection (canonical order) are e-prop synapses: none without ``plastic``;
        LGN -> V1 and (``plastic_recurrent``) V1 -> V1 onto every neuron or (``plastic_targets = "pools"``) onto the
        readout pools only; the readouts always."""
        lay, c = self.layout, self.config
        target_learns = np.full(lay.cls.size, plastic)
        if c.plastic_targets == "pools":
            target_learns[:] = False
            target_learns[np.concatenate(self.pools)] = plastic
        return {
            "lgn_rec": target_learns[lay.lgn_tgt],
            "rec_rec": target_learns[lay.rec_tgt] & c.plastic_recurrent,
            "rec_out": np.full(self.out_src.size, plastic),
        }

    def read_weights(self, nest: Any) -> dict[str, np.ndarray]:
        lay = self.layout
        return {
            "lgn_rec": self._read_weights(nest, "lgn_rec", self._lgn_ids, self._ids, lay.lgn_src, lay.lgn_tgt),
            "rec_rec": self._read_weights(nest, "rec_rec", self._ids, self._ids, lay.rec_src, lay.rec_tgt),
            "rec_out": self._read_weights(nest, "rec_out", self._ids, self._out_ids, self.out_src, self.out_tgt),
            "feedback": self._feedback.copy(),
        }

    def read_optimizer_state(self, nest: Any) -> dict[str, np.ndarray]:
        return {}  # Adam moments restart at each block boundary for this network (documented)

    def write_optimizer_state(self, nest: Any, state: dict[str, np.ndarray]) -> None:
        pass

"""Billeh et al. (2020) mouse V1 core column of GLIF3 neurons, trained with e-prop in NEST.

The column (up to the 51,978 neurons of the 400-um core) has the 17 cell classes of Billeh et al. in their
published proportions and laminar depths, GLIF3 neurons (``eprop_glif3_psc``, NEST's ``glif_psc`` dynamics) with
Allen Cell Types fits, distance- and orientation-dependent connectivity with Billeh's rule, Billeh's weights per
class pair, four receptor ports (e->e, i->e, e->i, i->i) with their synaptic time constants, Billeh's delays, an LGN
of spatio-temporal filters (:mod:`nestgrad.tasks.lgn`) whose units feed each cell through ON and OFF subfields,
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

Control. ``structure = "random_lif"`` builds the column's control network instead (same neurons, E/I types,
synapse weights, LGN input and pools; random recurrent targets, one LIF parameter set per E/I group;
:mod:`nestgrad.networks.v1_control`), for Chen et al.'s comparison of the data-based column with a generic network;
``"random_wiring"`` only rewires (the column's GLIF3 neurons) and ``"column_lif"`` only replaces the neurons (the
column's wiring), to tell the two parts apart; ``"random_one_fit"`` rewires and gives every neuron its E/I group's
most common GLIF3 fit, ``"random_one_fit_no_asc"`` the same with the after-spike currents switched off.

Numbers, sources and fallbacks: :mod:`nestgrad.networks.v1_data` and docs/v1_model.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from nestgrad.config import GradientAlgorithm, OptimizerConfig
from nestgrad.config.v1 import V1_EPROP_PARAMS, V1Config
from nestgrad.errors import ConfigError, ModelError, SpecError
from nestgrad.nest_engine import EPROP_SYNAPSE
from nestgrad.networks import v1_data as D
from nestgrad.networks.algorithms import get_algorithm
from nestgrad.networks.base import READOUT_DEFAULTS, SpecLearner
from nestgrad.networks.v1_control import lif_params, one_fit_per_group, random_recurrent, without_after_spike_currents
from nestgrad.parallel import SerialCommunicator
from nestgrad.spec import NetworkSpec, Population, Projection, Role, SynapseKind

EPROP_PARAMS = V1_EPROP_PARAMS  # the column's e-prop settings (nestgrad.config.v1)

NEURON_MODEL = "eprop_glif3_psc"
# Chen et al.'s readout pool origins (x, z in um, at mid-L5 depth), scaled to the column's radius
POOL_ORIGINS_UM = np.array(
    [(0, 0), (100, -110), (-100, -110), (-100, 110), (100, 110), (0, 260), (180, 230), (-180, 230), (270, 95),
     (-270, 95), (270, -95), (-270, -95), (180, -230), (-180, -230), (0, -260)], dtype=float,
)  # fmt: skip
VISUAL_CENTER_DEG = (120.0, 60.0)
LGN_DENSITY_PER_DEG2 = 17400 / (240.0 * 120.0)  # Billeh's LGN: 17,400 units over a 240 x 120 deg field
LGN_MARGIN_DEG = 15.0  # beyond the column's visual field, for subfields and receptive-field sizes


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


class V1Network(SpecLearner):
    """The V1 learner (the :class:`~nestgrad.networks.base.Learner` contract)."""

    def __init__(
        self,
        config: V1Config,
        optimizer: OptimizerConfig,
        n_out: int,
        resolution: float,
        gradient_algorithm: GradientAlgorithm | str = GradientAlgorithm.STEP,
    ):
        from nestgrad.tasks.lgn import LGN

        if resolution != 1.0:
            raise ConfigError(
                f"task.resolution = {resolution!r}: the V1 model runs at 1 ms (Chen et al., e-prop delays)"
            )
        self.config = config
        self.optimizer = optimizer
        self.n_out = n_out
        self.resolution = resolution
        # the synapse model into the GLIF3 neurons, chosen by the algorithm when the network is first built ("step":
        # the one GLIF3 asks for, eprop_vector_synapse; "event": eprop_event_synapse, running products,
        # docs/event_driven_eprop.md); set it before build to override the choice
        self.algorithm = get_algorithm(gradient_algorithm)
        self.plastic_model: str | None = None
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
        if c.random_wiring:  # the control drawn from this column (its own stream: the column is unchanged)
            src, _, w, _, delay = rec
            rec = random_recurrent(np.random.default_rng([c.seed, 0xC0]), cls, src, w, delay)
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
                raise ConfigError(
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
        fits = one_fit_per_group(lay.fit, D.EXCITATORY[lay.cls]) if self.config.one_fit_per_group else lay.fit
        out = []
        for j in range(lay.cls.size):
            fit = D.GLIF_FITS[int(fits[j])]
            p = dict(fit) | {
                "V_reset": fit["E_L"],
                "V_m": fit["E_L"],
                "asc_init": [0.0, 0.0],
                "asc_r": [1.0, 1.0],
                "tau_syn": list(D.TAU_SYN_MS),
            }
            out.append(p | eprop)
        if self.config.lif_neurons:
            return lif_params(out, D.EXCITATORY[lay.cls])
        if not self.config.after_spike_currents:
            return without_after_spike_currents(out)
        return out

    def excitatory_port_per_neuron(self) -> np.ndarray:
        """The receptor port (1..4, :data:`v1_data.RECEPTOR`) on which each neuron receives excitatory input."""
        return np.array([D.RECEPTOR[("e", D.ei(name))] for name in D.CLASSES])[self.layout.cls]

    def background_weights(self) -> np.ndarray:
        lay, c = self.layout, self.config
        w = np.zeros(lay.cls.size)
        if c.background_rate <= 0:
            return w
        port = self.excitatory_port_per_neuron()
        for j, p in enumerate(self.neuron_params):
            rheobase = p["g"] * (p["V_th"] - p["E_L"])
            tau = D.TAU_SYN_MS[port[j] - 1]
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
        if self.config.random_wiring:
            if self.config.lif_neurons:
                cells = "LIF"
            else:
                fits = "one fit per E/I group" if self.config.one_fit_per_group else "the column's"
                cells = f"GLIF3 ({fits}{'' if self.config.after_spike_currents else ', after-spike currents off'})"
            return (
                f"control of the Billeh V1 column: {lay.cls.size} {cells} neurons ({int(D.EXCITATORY[lay.cls].sum())} "
                f"excitatory), {lay.rec_src.size} randomly wired recurrent and {lay.lgn_src.size} LGN synapses, "
                f"{self.n_in} LGN units, {self.n_out} readout pools of {self.config.pool_size}"
            )
        cells = (
            "LIF neurons (one set per E/I group, not its GLIF3 fits)" if self.config.lif_neurons else "GLIF3 neurons"
        )
        return (
            f"Billeh V1 core column, {lay.cls.size} {cells} (radius {lay.radius:.0f} um; {scale}), "
            f"{lay.rec_src.size} recurrent and {lay.lgn_src.size} LGN synapses, {self.n_in} LGN units, "
            f"{self.n_out} readout pools of {self.config.pool_size}"
        )

    def validate(self, nest: Any) -> None:
        if NEURON_MODEL not in nest.node_models:
            raise ModelError(f"{NEURON_MODEL} is not loaded (nestgrad.install())")
        self.algorithm.check(nest, NEURON_MODEL)

    def prepare(self, nest: Any) -> None:
        if self.plastic_model is None:  # the spec needs the model name; the algorithm may ask NEST's defaults
            self.plastic_model = self.algorithm.synapse_into(nest, NEURON_MODEL)

    # -- the network as a spec (built by nestgrad.nest_engine.wiring) ----------------------------------------------
    def trainable(self) -> tuple[str, ...]:
        return ("lgn_rec", "rec_rec", "rec_out")

    def network_spec(self, weights: dict[str, np.ndarray], record_neurons: int, plastic: bool = True) -> NetworkSpec:
        """The column with ``weights``: e-prop synapses (delay one step, NEST's e-prop requires it) where
        :meth:`plastic_masks` says, static ones with Billeh's delays elsewhere; Dale's law (the optimizer's
        ``sign_constrained``) by the source's class, not by the weight's current sign, so that a weight at 0 keeps
        its side. ``record_neurons < 0`` records every neuron's spikes, else the first ``record_neurons`` pool
        neurons. The plastic synapse model is the algorithm's choice, made by :meth:`build` (it needs NEST)."""
        if self.plastic_model is None:
            raise SpecError("V1Network.network_spec: plastic_model is unset; prepare(nest) chooses it")
        lay, c, step = self.layout, self.config, self.resolution
        for key, size in (("lgn_rec", lay.lgn_src.size), ("rec_rec", lay.rec_src.size), ("rec_out", self.out_src.size)):
            w = np.asarray(weights[key])
            if w.shape != (size,) or not np.all(np.isfinite(w)):
                raise SpecError(f"weights[{key!r}]: {size} finite values expected, got shape {w.shape}")
        masks = self.plastic_masks(plastic)
        for key, mask in masks.items():
            self.optimizer.check_bounds(key, np.asarray(weights[key])[mask])
        n = lay.cls.size
        spec = NetworkSpec(resolution=step, optimizer=self.optimizer.nest_dict())
        spec.add_population(Population("v1", NEURON_MODEL, n, self.neuron_params))
        spec.add_population(Population("lgn", "parrot_neuron", self.n_in, role=Role.INPUT))
        spec.add_population(Population("readout", "eprop_readout", self.n_out, dict(READOUT_DEFAULTS), Role.READOUT))
        dale = self.optimizer.sign_constrained
        excitatory = np.array([D.ei(name) == "e" for name in D.CLASSES])[lay.cls]
        spec.add_projection(
            "lgn_rec",
            Projection(
                "lgn", "v1", lay.lgn_src, lay.lgn_tgt, np.asarray(weights["lgn_rec"], float),
                np.where(masks["lgn_rec"], step, D.LGN_DELAY_MS), lay.lgn_receptor, masks["lgn_rec"],
                np.ones(lay.lgn_src.size, bool) if dale else None,  # LGN cells are excitatory
                self.plastic_model,
            ),
        )  # fmt: skip
        spec.add_projection(
            "rec_rec",
            Projection(
                "v1", "v1", lay.rec_src, lay.rec_tgt, np.asarray(weights["rec_rec"], float),
                np.where(masks["rec_rec"], step, np.maximum(np.round(lay.rec_delay), step)), lay.rec_receptor,
                masks["rec_rec"], excitatory[lay.rec_src] if dale else None, self.plastic_model,
            ),
        )  # fmt: skip
        # the readouts are the task's linear readout, not synapses of the column: no Dale's law
        spec.add_projection(
            "rec_out",
            Projection(
                "v1", "readout", self.out_src, self.out_tgt, np.asarray(weights["rec_out"], float),
                np.full(self.out_src.size, step), None, masks["rec_out"], None, EPROP_SYNAPSE,
                learning_rate=c.readout_eta if c.readout_eta > 0 else None,
            ),
        )  # fmt: skip
        if c.background_rate > 0:
            spec.add_population(Population("background", "poisson_generator", 1, {"rate": c.background_rate},
                                           Role.DEVICE))  # fmt: skip
            receptors = self.excitatory_port_per_neuron()
            targets = np.concatenate([np.flatnonzero(receptors == r) for r in np.unique(receptors)])
            spec.add_projection(
                "background",
                Projection("background", "v1", np.zeros(n, np.int64), targets, self.background_weights()[targets],
                           np.full(n, step), receptors[targets]),
            )  # fmt: skip
        if plastic:  # learning signals (none in the static twin)
            fb = np.asarray(weights["feedback"])
            post_idx, out_idx = np.nonzero(fb)
            spec.add_projection(
                "feedback",
                Projection("readout", "v1", out_idx, post_idx, fb[post_idx, out_idx], np.full(post_idx.size, step),
                           kind=SynapseKind.LEARNING_SIGNAL),
            )  # fmt: skip
        recorded = np.arange(n) if record_neurons < 0 else np.unique(self.out_src)[: max(record_neurons, 0)]
        spec.recorded = ("v1", recorded)
        return spec

    @property
    def neurons(self) -> Any:
        return self.built.nodes["v1"]

    @property
    def lgn_nodes(self) -> Any:
        return self.built.nodes["lgn"]

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

"""The cortical microcircuit of Potjans & Diesmann (2014, Cereb Cortex 24:785), scalable, in NEST.

Eight populations (L2/3, L4, L5, L6 x excitatory, inhibitory) of ``iaf_psc_exp`` neurons, 77,169 neurons and
about 3e8 synapses at full scale, with the published connection probabilities, synaptic strengths (mean PSP 0.15 mV,
10 % relative standard deviation, inhibition g = -4, L4E -> L2/3E doubled), delays (1.5 ms excitatory, 0.75 ms
inhibitory, 50 % relative standard deviation), Poisson background (8 Hz per external synapse, published
in-degrees) or an equivalent DC background, and optional thalamic input (902 neurons).

Scaling. ``n_scaling`` multiplies the population sizes, ``k_scaling`` the in-degrees. When in-degrees are scaled
down, synaptic weights are scaled by 1/sqrt(k_scaling) (keeping the input fluctuations) and the mean input that
this removes is given back as a DC current computed from the full-scale firing rates (van Albada et al. 2015,
PLoS Comput Biol 11:e1004490): the builder says so when it builds.

Building. The builder emits a :class:`~nestgrad.spec.NetworkSpec` (:meth:`Microcircuit.network_spec`) that the one
wiring function builds: the static circuit is a drawn projection (NEST's ``fixed_total_number`` rule, drawn with
NumPy from ``config.seed`` chunk by chunk while it is connected, the same for every number of threads and ranks),
weights and delays from the published truncated normal distributions, delays rounded to the resolution as NEST
rounds them; initial membrane potentials are drawn with NumPy too.

The values below are the published model's (Potjans & Diesmann 2014, Tables 5 and 6); the full-scale population
rates are those of the reference implementation distributed with NEST (its ``full_mean_rates``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from nestgrad.config.microcircuit import THALAMUS_N, MicrocircuitConfig
from nestgrad.spec import DrawnProjection, FixedTotalNumber, NetworkSpec, Population, Projection, Role, TruncatedNormal

POPULATIONS = ("L23E", "L23I", "L4E", "L4I", "L5E", "L5I", "L6E", "L6I")
N_FULL = np.array([20683, 5834, 21915, 5479, 4850, 1065, 14395, 2948])
# connection probabilities [target, source]
CONN_PROBS = np.array(
    [
        [0.1009, 0.1689, 0.0437, 0.0818, 0.0323, 0.0, 0.0076, 0.0],
        [0.1346, 0.1371, 0.0316, 0.0515, 0.0755, 0.0, 0.0042, 0.0],
        [0.0077, 0.0059, 0.0497, 0.1350, 0.0067, 0.0003, 0.0453, 0.0],
        [0.0691, 0.0029, 0.0794, 0.1597, 0.0033, 0.0, 0.1057, 0.0],
        [0.1004, 0.0622, 0.0505, 0.0057, 0.0831, 0.3726, 0.0204, 0.0],
        [0.0548, 0.0269, 0.0257, 0.0022, 0.0600, 0.3158, 0.0086, 0.0],
        [0.0156, 0.0066, 0.0211, 0.0166, 0.0572, 0.0197, 0.0396, 0.2252],
        [0.0364, 0.0010, 0.0034, 0.0005, 0.0277, 0.0080, 0.0658, 0.1443],
    ]
)
K_EXT = np.array([1600, 1500, 2100, 1900, 2000, 1900, 2900, 2100])  # external (background) in-degrees
FULL_SCALE_RATES_HZ = np.array([0.971, 2.868, 4.746, 5.396, 8.142, 9.078, 0.991, 7.523])
THALAMUS_CONN_PROBS = np.array([0.0, 0.0, 0.0983, 0.0619, 0.0, 0.0, 0.0512, 0.0196])

NEURON_PARAMS = {
    "C_m": 250.0,
    "tau_m": 10.0,
    "tau_syn_ex": 0.5,
    "tau_syn_in": 0.5,
    "t_ref": 2.0,
    "E_L": -65.0,
    "V_th": -50.0,
    "V_reset": -65.0,
}
V0_MEAN, V0_SD = -58.0, 10.0  # mV, initial membrane potentials


def psc_per_psp(C_m: float, tau_m: float, tau_syn: float) -> float:
    """PSC amplitude (pA) that evokes a PSP of 1 mV peak in iaf_psc_exp (exponential current)."""
    t_peak = math.log(tau_m / tau_syn) * tau_m * tau_syn / (tau_m - tau_syn)
    v_peak = tau_syn * tau_m / (C_m * (tau_m - tau_syn)) * (math.exp(-t_peak / tau_m) - math.exp(-t_peak / tau_syn))
    return 1.0 / v_peak


def full_indegrees() -> np.ndarray:
    """Mean in-degrees K[target, source] of the full model: the number of synapses that makes the connection
    probability right when synapses are drawn with replacement (fixed total number, multapses allowed)."""
    n_t, n_s = N_FULL[:, None].astype(float), N_FULL[None, :].astype(float)
    with np.errstate(divide="ignore"):
        total = np.log(1.0 - CONN_PROBS) / np.log(1.0 - 1.0 / (n_t * n_s))
    return total / n_t


class Microcircuit:
    """Builds the microcircuit in the current NEST kernel.

    >>> mc = Microcircuit(MicrocircuitConfig(n_scaling=0.1, k_scaling=0.1)); mc.build(nest)
    >>> nest.Simulate(1000.0); mc.rates(t_start=500.0, t_stop=1000.0)
    """

    def __init__(self, config: MicrocircuitConfig):
        self.config = config
        c = config
        self.n = np.maximum(np.round(N_FULL * c.n_scaling).astype(int), 1)
        self.k_full = full_indegrees()
        self.k = self.k_full * c.k_scaling
        self.neuron_params = NEURON_PARAMS | dict(c.neuron_params)
        p = self.neuron_params
        w_unit = psc_per_psp(p["C_m"], p["tau_m"], p["tau_syn_ex"])
        w_mean = np.full((8, 8), c.psp_mean * w_unit)
        w_mean[:, 1::2] *= c.g
        w_mean[0, 2] *= 2.0  # L4E -> L2/3E
        self.w_full = w_mean
        self.w_ext_full = c.psp_mean * w_unit
        s = 1.0 / math.sqrt(c.k_scaling)
        self.w = w_mean * s
        self.w_ext = self.w_ext_full * s
        self.dc = self._dc_compensation()
        self.pops: list[Any] = []
        self.notes: list[str] = []

    def _dc_compensation(self) -> np.ndarray:
        """DC (pA) per population: the mean input lost by scaling in-degrees, plus the background if it is DC."""
        c = self.config
        tau = self.neuron_params["tau_syn_ex"] * 1e-3  # s
        lost = (1.0 - math.sqrt(c.k_scaling)) * (self.k_full * self.w_full * FULL_SCALE_RATES_HZ[None, :]).sum(1)
        dc = lost * tau
        ext_lost = (1.0 - math.sqrt(c.k_scaling)) * K_EXT * self.w_ext_full * c.bg_rate * tau
        dc += ext_lost if c.background == "poisson" else K_EXT * self.w_ext_full * c.bg_rate * tau
        return dc

    @property
    def n_synapses(self) -> int:
        return int(np.round(self.k * self.n[:, None]).sum())

    @property
    def offsets(self) -> np.ndarray:
        """Index of each population's first neuron in the circuit population (and the total at the end)."""
        return np.concatenate([[0], np.cumsum(self.n)])

    # -- the circuit as a spec (built by nestgrad.nest_engine.wiring) ------------------------------------------------
    def add_to(self, spec: NetworkSpec, name: str = "rec") -> None:
        """Add the circuit to ``spec``: one population ``name`` of all circuit neurons (the eight populations in
        order, DC per population and initial membrane potentials drawn per neuron), the static circuit as the drawn
        projection ``<name>_rec`` (one fixed-total-number block per pair of populations, drawn chunk by chunk when
        it is built) and, with the Poisson background, one ``poisson_generator`` per population (``background``)."""
        c, res = self.config, spec.resolution
        off = self.offsets
        n_total = int(off[-1])
        rng = np.random.default_rng([c.seed, 0xD0])
        spec.add_population(
            Population(
                name,
                c.neuron_model,
                n_total,
                dict(self.neuron_params),
                per_neuron={"V_m": rng.normal(V0_MEAN, V0_SD, n_total), "I_e": np.repeat(self.dc, self.n)},
            )
        )
        blocks = []
        for t in range(8):
            for s in range(8):
                n_syn = int(np.round(self.k[t, s] * self.n[t]))
                if n_syn == 0:
                    continue
                mean_w = float(self.w[t, s])
                low, high = (0.0, np.inf) if mean_w > 0 else (-np.inf, 0.0)  # signs kept (NEST's redraw)
                d_mean = c.delay_exc if s % 2 == 0 else c.delay_inh
                blocks.append(
                    FixedTotalNumber(
                        n_syn,
                        (int(off[s]), int(off[s + 1])),
                        (int(off[t]), int(off[t + 1])),
                        TruncatedNormal(mean_w, abs(mean_w) * c.psp_rel_sd, low, high),
                        TruncatedNormal(d_mean, d_mean * c.delay_rel_sd, res),
                        (c.seed, 0xD1, t, s),
                    )
                )
        spec.add_projection(f"{name}_rec", DrawnProjection(name, name, tuple(blocks), res))
        if c.background == "poisson":
            rates = [{"rate": float(c.bg_rate * K_EXT[t] * c.k_scaling)} for t in range(8)]
            spec.add_population(Population("background", "poisson_generator", 8, rates, Role.DEVICE))
            spec.add_projection(
                "background",
                Projection("background", name, np.repeat(np.arange(8), self.n), np.arange(n_total),
                           np.full(n_total, float(self.w_ext)), np.full(n_total, float(c.delay_exc))),
            )  # fmt: skip

    def network_spec(self, resolution: float) -> NetworkSpec:
        """The circuit (:meth:`add_to`) and, with ``thalamus``, its thalamic neurons (``parrot_neuron``\\ s driven by
        an ``inhomogeneous_poisson_generator``) with their fixed-total-number projection ``th_rec``."""
        c = self.config
        spec = NetworkSpec(resolution=resolution)
        self.add_to(spec, "rec")
        if c.thalamus:
            n_th = max(int(round(THALAMUS_N * c.n_scaling)), 1)
            spec.add_population(Population("thalamus", "parrot_neuron", n_th))
            spec.add_population(Population("thalamus_generator", "inhomogeneous_poisson_generator", 1,
                                           role=Role.DEVICE))  # fmt: skip
            spec.add_projection(
                "thalamus_drive",  # NEST's default static synapse: weight 1, delay 1 ms
                Projection("thalamus_generator", "thalamus", np.zeros(n_th, np.int64), np.arange(n_th),
                           np.ones(n_th), np.full(n_th, max(1.0, resolution))),
            )  # fmt: skip
            off, blocks = self.offsets, []
            for t in range(8):
                p = THALAMUS_CONN_PROBS[t]
                if p == 0:
                    continue
                k = math.log(1 - p) / math.log(1 - 1 / (THALAMUS_N * N_FULL[t])) / N_FULL[t] * c.k_scaling
                blocks.append(
                    FixedTotalNumber(
                        int(round(k * self.n[t])),
                        (0, n_th),
                        (int(off[t]), int(off[t + 1])),
                        TruncatedNormal(float(self.w_ext), float(self.w_ext) * 0.1, 0.0, np.inf),
                        TruncatedNormal(1.5, 0.75, resolution),
                        (c.seed, 0xD2, t),
                    )
                )
            spec.add_projection("th_rec", DrawnProjection("thalamus", "rec", tuple(blocks), resolution))
        return spec

    def build(self, nest: Any) -> None:
        """Build :meth:`network_spec` with the one wiring function, and a spike recorder per population."""
        from nestgrad.nest_engine import wiring

        c = self.config
        if c.k_scaling < 1.0:
            self.notes.append(
                f"in-degrees scaled by {c.k_scaling}: weights x {1 / math.sqrt(c.k_scaling):.3f}, "
                "mean input compensated by DC from the full-scale rates"
            )
        built = wiring.build(nest, self.network_spec(nest.resolution))
        if c.thalamus:
            self.thalamus = built.nodes["thalamus"]
            self.thalamus_generator = built.nodes["thalamus_generator"]
        self.attach(nest, built.nodes["rec"])

    def attach(self, nest: Any, neurons: Any) -> None:
        """Take the built circuit population ``neurons``: its eight populations (``pops``) and a spike recorder
        each (for :meth:`rates`)."""
        off = self.offsets
        self.pops = [neurons[int(off[i]) : int(off[i + 1])] for i in range(len(POPULATIONS))]
        self.spike_recorders = []
        for pop in self.pops:
            sr = nest.Create("spike_recorder")
            nest.Connect(pop, sr)
            self.spike_recorders.append(sr)

    def rates(self, t_start: float, t_stop: float, comm: Any = None) -> np.ndarray:
        """Mean firing rate (Hz) per population between t_start and t_stop (ms), summed over MPI ranks."""
        counts = np.zeros(8)
        for i, sr in enumerate(self.spike_recorders):
            times = np.asarray(sr.get("events")["times"])
            counts[i] = np.count_nonzero((times >= t_start) & (times < t_stop))
        if comm is not None:
            counts = comm.sum(counts)
        return counts / self.n / ((t_stop - t_start) / 1000.0)

"""The classic e-prop network of Bellec et al. (2020) in NEST: spike inputs -> recurrent e-prop neurons -> leaky
readouts, with learning signals fed back from the readouts.

Works with NEST's built-in recurrent e-prop neurons and with nestgrad's own. Each model has defaults for this
network (taken for NEST's models from NEST's e-prop examples) that ``NetworkConfig.neuron_params`` overrides.

Wiring (all delays one time step, as NEST 3.10's e-prop requires)::

    spike_generator --static--> parrot_neuron --eprop_synapse--> recurrent --eprop_synapse--> eprop_readout
                                                   recurrent --eprop_synapse--> recurrent (optional)
    eprop_readout --eprop_learning_signal_connection--> recurrent
    step_rate_generator --rate_connection_delayed--> eprop_readout  (receptor 1: learning window, 2: target)

``NetworkConfig.gradient_algorithm`` (:mod:`nestgrad.networks.algorithms`) chooses the synapse model of the
connections into the recurrent neurons: with ``"event"`` nestgrad's ``eprop_event_synapse`` (same updates, O(1) work
per spike); the readout's inputs keep ``eprop_synapse``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nestgrad.config import NetworkConfig, OptimizerConfig
from nestgrad.errors import ModelError, SpecError
from nestgrad.nest_engine import EPROP_SYNAPSE
from nestgrad.networks.algorithms import get_algorithm
from nestgrad.networks.base import READOUT_DEFAULTS, SpecLearner
from nestgrad.parallel import SerialCommunicator
from nestgrad.rewiring import RewiringConfig, initial_keys, rewire_step, rng_for
from nestgrad.spec import NetworkSpec, Population, Projection, Role, SynapseKind

PROJECTIONS = ("in_rec", "rec_rec", "rec_out")
# the projections that network.rewiring makes sparse and rewires (their index seeds their generators)
REWIRED = ("in_rec", "rec_rec")
_PROJECTION_NODES = {"in_rec": ("in", "rec"), "rec_rec": ("rec", "rec"), "rec_out": ("rec", "out")}

_COMMON_REC = {
    "C_m": 1.0,  # pF
    "E_L": 0.0,  # mV
    "I_e": 0.0,  # pA
    "V_m": 0.0,  # mV
    "tau_m": 30.0,  # ms
    "t_ref": 0.0,  # ms
    "c_reg": 0.3,
    "f_target": 10.0,  # Hz
    "kappa": 0.97,
    "kappa_reg": 0.97,
    "surrogate_gradient_function": "piecewise_linear",
    "surrogate_gradient_height": 10.0,
    "surrogate_gradient_width": 1.0 / 33.3,
    "eprop_isi_trace_cutoff": 100.0,  # ms
    "V_th": 0.03,  # mV
}

_DEFAULTS: dict[str, dict[str, Any]] = {
    "eprop_iaf": dict(_COMMON_REC),
    "eprop_iaf_adapt": dict(_COMMON_REC, adapt_beta=0.0174, adapt_tau=2000.0),
    "eprop_iaf_psc_delta": dict(_COMMON_REC, V_reset=-0.5, V_th=0.5, c_reg=2.0 / 1000 / 0.03**2),
    "eprop_iaf_psc_delta_adapt": dict(
        _COMMON_REC, V_reset=-0.5, V_th=0.5, c_reg=2.0 / 1000 / 0.03**2, adapt_beta=0.0174, adapt_tau=2000.0
    ),
    # Exponential currents: C_m equal to tau_syn makes a unit weight move V by about as much as in eprop_iaf.
    "eprop_iaf_psc_exp": dict(_COMMON_REC, C_m=5.0, tau_syn_ex=5.0, tau_syn_in=5.0, V_reset=0.0),
}

# NESTML twins of NEST's models (nestml_models/): same parameters and initial weights as their built-in twins.
NESTML_TWINS = {
    "eprop_iaf_psc_delta_nestml": "eprop_iaf_psc_delta",
    "eprop_iaf_psc_delta_adapt_nestml": "eprop_iaf_psc_delta_adapt",
}
_DEFAULTS.update({twin: _DEFAULTS[builtin] for twin, builtin in NESTML_TWINS.items()})
# NESTML model without a NEST twin: psc_delta with an after-spike current; a spike lowers v by up to ~0.15 mV.
_DEFAULTS["eprop_iaf_psc_delta_asc_nestml"] = dict(_DEFAULTS["eprop_iaf_psc_delta"], asc_amp=-0.005, asc_tau=200.0)
# The tutorial's NESTML model (docs/nestml_eprop.md): eprop_iaf_psc_exp with one synaptic time constant.
_DEFAULTS["eprop_iaf_psc_exp_nestml"] = {
    k: v for k, v in _DEFAULTS["eprop_iaf_psc_exp"].items() if k not in ("tau_syn_ex", "tau_syn_in")
} | {"tau_syn": 5.0}
# Separate excitatory and inhibitory currents on two receptor ports (NESTML; weights routed by their initial sign).
_DEFAULTS["eprop_iaf_psc_exp_exc_inh_nestml"] = dict(_DEFAULTS["eprop_iaf_psc_exp"])
# Adaptive LIF with an exponential current (NESTML, three eligibility states: eprop_vector_synapse).
_DEFAULTS["eprop_iaf_psc_exp_adapt_nestml"] = dict(
    _DEFAULTS["eprop_iaf_psc_exp_nestml"], adapt_beta=0.0174, adapt_tau=2000.0
)

# GLIF3 (C++, glif_psc's dynamics): scaled to the classic network's units like eprop_iaf_psc_exp (C_m = 5 pF,
# tau_m = 30 ms, V_th 0.03 mV above E_L); alpha currents with tau_syn 5 ms; the after-spike currents pull v down by
# roughly 10 % (fast) and 5 % (slow) of the threshold after a spike.
_DEFAULTS["eprop_glif3_psc"] = {k: v for k, v in _COMMON_REC.items() if k != "tau_m"} | {
    "C_m": 5.0,
    "g": 5.0 / 30.0,
    "V_reset": 0.0,
    "t_ref": 2.0,
    "asc_init": [0.0, 0.0],
    "asc_decay": [0.01, 0.2],
    "asc_amps": [-2e-4, -2e-3],
    "asc_r": [1.0, 1.0],
    "tau_syn": [5.0, 5.0, 5.0, 5.0],
}
# Neurons with more than two receptor ports: (excitatory, inhibitory) port of the classic network.
_SIGN_PORTS: dict[str, tuple[int, int]] = {"eprop_glif3_psc": (1, 2)}

# The classic network's scale factor (NEST's examples): weights and rates are rescaled by 1 - kappa.
WEIGHT_SCALE = 1.0 - 0.97
_SCALE = WEIGHT_SCALE


# The e-prop parameters of every recurrent e-prop neuron (NEST's, and nestgrad's C++ and NESTML ones).
EPROP_PARAMETER_KEYS = (
    "c_reg",
    "f_target",
    "kappa",
    "kappa_reg",
    "surrogate_gradient_function",
    "surrogate_gradient_height",
    "surrogate_gradient_width",
    "eprop_isi_trace_cutoff",
)


def is_own_nestml_model(model: str) -> bool:
    """A user's own e-prop neuron generated from NESTML (docs/nestml_eprop.md), without defaults of ours."""
    return model not in _DEFAULTS and model.startswith("eprop_") and model.endswith("_nestml")


def supported_neuron_models() -> list[str]:
    return sorted(_DEFAULTS)


def default_neuron_params(model: str) -> dict[str, Any]:
    """The classic network's neuron parameters for ``model``. A user's own NESTML e-prop neuron gets the e-prop
    settings only; its other parameters are its NESTML defaults unless network.neuron_params sets them."""
    if is_own_nestml_model(model):
        return {k: _COMMON_REC[k] for k in EPROP_PARAMETER_KEYS}
    if model not in _DEFAULTS:
        raise ModelError(
            f"network.neuron_model = {model!r} is not supported by the e-prop network builder; "
            f"supported: {', '.join(supported_neuron_models())}, or an e-prop neuron of your own generated from "
            "NESTML (a model named eprop_*_nestml in nestml_models/, see docs/nestml_eprop.md)"
        )
    return dict(_DEFAULTS[model])


# Initial-weight factors per model, after NEST's e-prop examples: [in_rec and rec_rec, feedback]. Models whose
# input enters v directly as a jump (eprop_iaf and kin) use small weights; eprop_iaf_psc_delta(_adapt) with
# V_th = 0.5 mV needs weights of order one and larger learning signals.
_WEIGHT_FACTORS: dict[str, tuple[float, float]] = {
    "eprop_iaf": (_SCALE, _SCALE),
    "eprop_iaf_adapt": (_SCALE, _SCALE),
    "eprop_iaf_psc_exp": (_SCALE, _SCALE),
    "eprop_iaf_psc_delta": (1.0, 1.0 / _SCALE),
    "eprop_iaf_psc_delta_adapt": (1.0, 1.0 / _SCALE),
    "eprop_iaf_psc_delta_asc_nestml": (1.0, 1.0 / _SCALE),
}


def initial_weights(
    n_in: int,
    n_rec: int,
    n_out: int,
    seed: int,
    recurrent: bool = True,
    scale: float = 1.0,
    model: str = "eprop_iaf_psc_exp",
) -> dict[str, np.ndarray]:
    """Gaussian initial weights scaled by 1/sqrt(fan-in) (Bellec et al. 2020), as matrices [post, pre]."""
    rng = np.random.default_rng([seed, 0xE9])
    f_rec, f_feedback = _WEIGHT_FACTORS.get(NESTML_TWINS.get(model, model), (_SCALE, _SCALE))
    w = {
        "in_rec": rng.standard_normal((n_rec, n_in)) / np.sqrt(n_in) * f_rec * scale,
        "rec_rec": rng.standard_normal((n_rec, n_rec)) / np.sqrt(n_rec) * f_rec * scale,
        "rec_out": rng.standard_normal((n_out, n_rec)) / np.sqrt(n_rec) * _SCALE * scale,
        "feedback": rng.standard_normal((n_rec, n_out)) / np.sqrt(n_rec) * f_feedback * scale,
    }
    np.fill_diagonal(w["rec_rec"], 0.0)
    if not recurrent:
        w["rec_rec"][:] = 0.0
    return w


class EpropNetwork(SpecLearner):
    """Builds the network in the current NEST kernel and moves weights, optimizer state and data in and out."""

    def __init__(self, config: NetworkConfig, optimizer: OptimizerConfig, n_in: int, n_out: int, resolution: float):
        self.config = config
        self.optimizer = optimizer
        self.n_in = n_in
        self.n_out = n_out
        self.n_rec = config.n_rec
        self.resolution = resolution
        self.neuron_params = default_neuron_params(config.neuron_model) | dict(config.neuron_params)
        self.readout_params = READOUT_DEFAULTS | dict(config.readout_params)
        self.algorithm = get_algorithm(config.gradient_algorithm)  # the plastic synapse into the recurrent neurons
        self.comm = SerialCommunicator()  # the Trainer sets an MPI communicator under mpirun
        # initial weights whose signs choose each synapse's receptor port and sign-bounded model, so that a weight
        # that reached 0 keeps its side when a later block rebuilds the network (the Trainer sets them; None: the
        # signs of the weights being built)
        self.sign_reference: dict[str, np.ndarray] | None = None
        self._masks: dict[str, np.ndarray] | None = None
        self._plastic = True
        self.rewiring = RewiringConfig.from_dict(config.rewiring)

    def initial_weights(self, seed: int, dense: bool = False) -> dict[str, np.ndarray]:
        """The initial weights [post, pre]. With sparse connectivity (network.rewiring) only the drawn pairs keep a
        weight, scaled by 1/sqrt(fraction) so that a neuron's summed input keeps its variance, and the connectivity
        is stored beside the weights as ``mask_in_rec`` / ``mask_rec_rec`` (1: connected), so that checkpoints hold
        it. ``dense``: the weights of every pair (their signs are the fixed signs of Deep R's potential connections)."""
        c = self.config
        w = initial_weights(self.n_in, c.n_rec, self.n_out, seed, c.recurrent, c.weight_scale, c.neuron_model)
        if not self.rewiring.sparse:
            return w
        for index, name in enumerate(REWIRED):
            fraction = self.rewiring.in_fraction if name == "in_rec" else self.rewiring.rec_fraction
            n_post, n_pre = w[name].shape
            mask = np.zeros(w[name].shape, bool)
            if name == "in_rec" or c.recurrent:
                mask.flat[initial_keys(seed, index, fraction, n_post, n_pre, name != "rec_rec")] = True
            w[name] = w[name] / np.sqrt(fraction)
            if not dense:
                w[name] = np.where(mask, w[name], 0.0)
                w[f"mask_{name}"] = mask.astype(float)
        return w

    @property
    def rewire_every(self) -> int | None:
        """Batches between rewiring steps (the Trainer rebuilds the network after each); None: no rewiring."""
        return self.rewiring.every if self.rewiring.enabled else None

    def signs(self, name: str) -> np.ndarray:
        """The fixed sign (+1/-1) of every pair of a projection, [post, pre]: that of the dense initial weight."""
        if self.sign_reference is None:
            raise SpecError("rewiring needs sign_reference (the dense initial weights); make_learner sets it")
        return np.where(np.asarray(self.sign_reference[name]) >= 0.0, 1.0, -1.0)

    def rewire(
        self, weights: dict[str, np.ndarray], optimizer_state: dict[str, np.ndarray], iteration: int
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, tuple[int, int]]]:
        """One Deep R step (:func:`nestgrad.rewiring.rewire_step`) of every rewired projection after ``iteration``
        batches, on the gathered weights: returns the new weights (masks included), the optimizer state with Adam's
        moments of removed and new connections at 0 and their bias-correction powers at 1 (set in place in
        ``optimizer_state``'s arrays), and (removed, connections) per projection. Every rank computes the same
        result from the same data."""
        rw, opt = self.rewiring, self.optimizer
        w_out, o_out, stats = dict(weights), dict(optimizer_state), {}
        for index, name in enumerate(REWIRED):
            mask = np.asarray(weights[f"mask_{name}"]) > 0.5
            keys = np.flatnonzero(mask)
            if keys.size == 0:
                continue
            w = np.asarray(weights[name], float)
            if self.sign_reference is None:
                raise SpecError("rewiring needs sign_reference (the dense initial weights); make_learner sets it")
            ref = np.asarray(self.sign_reference[name])  # signs looked up at the keys only: no dense temporaries
            res = rewire_step(
                keys, w.flat[keys], np.where(ref.flat[keys] >= 0.0, 1.0, -1.0),
                rng_for(self.config.seed, iteration, index), *w.shape,
                autapses=name != "rec_rec", eta=opt.eta, alpha=rw.alpha, temperature=rw.temperature,
                batches=rw.every, new_weight=rw.new_weight, w_min=opt.Wmin, w_max=opt.Wmax,
            )  # fmt: skip
            new_w, new_mask = np.zeros_like(w), np.zeros(w.shape)
            new_w.flat[res.keys] = np.where(ref.flat[res.keys] >= 0.0, 1.0, -1.0) * res.theta
            new_mask.flat[res.keys] = 1.0
            w_out[name], w_out[f"mask_{name}"] = new_w, new_mask
            # Adam starts again for removed and new connections: moments 0, bias-correction powers beta^0 = 1
            for moment, fresh in (("m", 0.0), ("v", 0.0), ("b1", 1.0), ("b2", 1.0)):
                key = f"{moment}_{name}"
                if key in o_out:  # in place: at 10,000 neurons each matrix is 800 MB
                    arr = o_out[key] = np.asarray(o_out[key], float)
                    arr.flat[np.concatenate([res.removed, res.added])] = fresh
            stats[name] = (int(res.removed.size), int(res.keys.size))
        return w_out, o_out, stats

    def describe(self) -> str:
        return (
            f"{self.config.neuron_model} ({self.n_rec} recurrent neurons, gradient algorithm {self.algorithm.name!r})"
        )

    # -- checks before anything runs ---------------------------------------------------------------------------
    def validate(self, nest: Any) -> None:
        """Check the models and parameter names against NEST's defaults; errors name the bad key."""
        model = self.config.neuron_model
        if model not in nest.node_models:
            raise ModelError(f"network.neuron_model = {model!r} is not a NEST model (is nestgrad.install() done?)")
        if "surrogate_gradient_function" not in nest.GetDefaults(model):
            raise ModelError(
                f"network.neuron_model = {model!r} is not an e-prop neuron (it has no surrogate gradient); "
                "NESTML models become e-prop neurons when named eprop_*_nestml (docs/nestml_eprop.md)"
            )
        for label, model_name, params in (
            ("neuron_params", model, self.neuron_params),
            ("readout_params", "eprop_readout", self.readout_params),
        ):
            known = set(nest.GetDefaults(model_name))
            unknown = sorted(set(params) - known)
            if unknown:
                raise ModelError(f"network.{label}: unknown parameter(s) {unknown} for model {model_name!r}")
        self.algorithm.check(nest, model, "network.neuron_model")

    def check_weights(self, weights: dict[str, np.ndarray]) -> None:
        shapes = {
            "in_rec": (self.n_rec, self.n_in),
            "rec_rec": (self.n_rec, self.n_rec),
            "rec_out": (self.n_out, self.n_rec),
            "feedback": (self.n_rec, self.n_out),
        }
        for key, shape in shapes.items():
            if key not in weights:
                raise SpecError(f"weights: projection {key!r} is missing")
            if weights[key].shape != shape:
                raise SpecError(f"weights[{key!r}] has shape {weights[key].shape}, expected {shape} [post, pre]")
            if not np.all(np.isfinite(weights[key])):
                raise SpecError(f"weights[{key!r}] contains NaN or infinite values")

    # -- building -------------------------------------------------------------------------------------------------
    def _receptors_by_sign(self, nest: Any) -> tuple[int, int] | None:
        """(excitatory, inhibitory) receptor ports of a neuron with two spike ports (NESTML e-prop neurons such as
        eprop_iaf_psc_exp_exc_inh_nestml): weights >= 0 connect to the first, negative ones to the second."""
        if self.config.neuron_model in _SIGN_PORTS:
            return _SIGN_PORTS[self.config.neuron_model]
        ports = nest.GetDefaults(self.config.neuron_model).get("receptor_types")
        if not ports or len(ports) < 2:
            return None
        ports = dict(ports)
        if len(ports) != 2:
            raise ModelError(
                f"network.neuron_model = {self.config.neuron_model!r} has {len(ports)} spike receptor ports "
                f"({', '.join(sorted(ports))}); the e-prop network routes weights by sign to two (excitatory, "
                "inhibitory)"
            )
        exc, inh = sorted(ports.values())
        return exc, inh

    def _recurrent_synapse_model(self, nest: Any) -> str:
        """The plastic synapse into the recurrent neurons, as the gradient algorithm chooses it
        (:mod:`nestgrad.networks.algorithms`; "step": the one the neuron asks for, else NEST's eprop_synapse;
        "event": eprop_event_synapse)."""
        return self.algorithm.synapse_into(nest, self.config.neuron_model)

    def build(
        self,
        nest: Any,
        weights: dict[str, np.ndarray],
        record_neurons: int,
        plastic: bool = True,
        masks: dict[str, np.ndarray] | None = None,
        learning: bool = True,
    ) -> None:
        """Create the network in the current kernel. ``plastic=False`` builds the static twin (static synapses
        where e-prop synapses would be), the baseline for measuring the cost of plasticity; ``learning=False`` keeps
        the e-prop synapses with every learning rate 0 (the same network, weights fixed). ``masks`` ([post, pre]
        booleans per projection) select which synapses exist; default: all, without autapses."""
        self._masks = masks if masks is not None else self._weights_masks(weights)
        self._plastic = plastic
        super().build(nest, weights, record_neurons, plastic=plastic, learning=learning)

    def prepare(self, nest: Any) -> None:
        self._synapse_model = self._recurrent_synapse_model(nest)
        self._ports = self._receptors_by_sign(nest)

    def trainable(self) -> tuple[str, ...]:
        return PROJECTIONS

    def _weights_masks(self, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray] | None:
        """The sparse connectivity kept with the weights (network.rewiring: ``mask_in_rec``, ``mask_rec_rec``)."""
        if "mask_in_rec" not in weights:
            return None
        masks = {name: np.asarray(weights[f"mask_{name}"]) > 0.5 for name in REWIRED}
        return masks | {"rec_out": np.ones((self.n_out, self.n_rec), bool)}

    def edge_masks(self) -> dict[str, np.ndarray]:
        """Which synapses exist, [post, pre] per projection: the build's ``masks``, else all (no autapses)."""
        if self._masks is not None:
            return {k: np.asarray(self._masks[k], bool) for k in PROJECTIONS}
        n_in, n_rec, n_out = self.n_in, self.n_rec, self.n_out
        shapes = {"in_rec": (n_rec, n_in), "rec_rec": (n_rec, n_rec), "rec_out": (n_out, n_rec)}
        out = {k: np.ones(shape, bool) for k, shape in shapes.items()}
        np.fill_diagonal(out["rec_rec"], False)
        if not self.config.recurrent:
            out["rec_rec"][:] = False
        return out

    def network_spec(self, weights: dict[str, np.ndarray], record_neurons: int, plastic: bool = True) -> NetworkSpec:
        """The network as edge lists (post-major order, as NEST's all_to_all makes them). Neurons with two receptor
        ports get each synapse on the port its sign chooses; with Dale's law each plastic synapse keeps its sign.
        The signs are those of ``sign_reference`` (the initial weights) when set, so that a weight that reached 0
        keeps its side when a later block rebuilds the network."""
        self.check_weights(weights)
        own = self._weights_masks(weights)  # weights that carry their connectivity (also without a build: NIR export)
        masks = own if own is not None else self.edge_masks()
        if plastic:
            for name in PROJECTIONS:
                self.optimizer.check_bounds(name, weights[name][masks[name]])
        step = self.resolution
        spec = NetworkSpec(resolution=step, optimizer=self.optimizer.nest_dict())
        spec.add_population(Population("in", "parrot_neuron", self.n_in, role=Role.INPUT))
        spec.add_population(Population("rec", self.config.neuron_model, self.n_rec, dict(self.neuron_params)))
        spec.add_population(Population("out", "eprop_readout", self.n_out, dict(self.readout_params), Role.READOUT))
        models = {"in_rec": self._synapse_model, "rec_rec": self._synapse_model, "rec_out": EPROP_SYNAPSE}
        for name, (pre, post) in _PROJECTION_NODES.items():
            w = np.asarray(weights[name], float)
            post_idx, pre_idx = (i.astype(np.int32) for i in np.nonzero(masks[name]))  # half the index memory
            ref = w if self.sign_reference is None else np.asarray(self.sign_reference[name], float)
            if ref.shape != w.shape:
                raise SpecError(f"sign_reference[{name!r}] has shape {ref.shape}, the weights {w.shape}")
            nonneg = ref[post_idx, pre_idx] >= 0.0
            receptors = None
            if self._ports is not None and post == "rec":
                receptors = np.where(nonneg, self._ports[0], self._ports[1])
            spec.add_projection(
                name,
                Projection(
                    pre, post, pre_idx, post_idx, w[post_idx, pre_idx], np.full(post_idx.size, step), receptors,
                    np.full(post_idx.size, plastic), nonneg if self.optimizer.sign_constrained else None,
                    models[name],
                ),
            )  # fmt: skip
        fb = np.asarray(weights["feedback"], float)
        post_idx, out_idx = np.nonzero(np.ones(fb.shape, bool))  # all pairs, zeros included (all_to_all)
        spec.add_projection(
            "feedback",
            Projection("out", "rec", out_idx, post_idx, fb[post_idx, out_idx], np.full(post_idx.size, step),
                       kind=SynapseKind.LEARNING_SIGNAL),
        )  # fmt: skip
        spec.recorded = ("rec", np.arange(max(min(record_neurons, self.n_rec), 0)))
        return spec

    @property
    def _nodes(self) -> dict[str, Any]:
        return self.built.nodes

    # -- weights and optimizer state: [post, pre] matrices --------------------------------------------------------
    def _dense(self, name: str, values: np.ndarray, absent: float = 0.0) -> np.ndarray:
        """``values`` (edge order) as a matrix [post, pre]; pairs without a synapse hold ``absent``."""
        proj = self.built.spec.projections[name]
        shape = (self.built.spec.populations[proj.target].size, self.built.spec.populations[proj.source].size)
        out = np.full(shape, absent)
        out[proj.targets, proj.sources] = values
        return out

    def read_weights(self, nest: Any) -> dict[str, np.ndarray]:
        """Current weights as matrices [post, pre] (gathered across ranks; absent synapses 0)."""
        flat = super().read_weights(nest)
        out = {name: self._dense(name, flat[name]) for name in PROJECTIONS} | {"feedback": flat["feedback"]}
        if self.rewiring.sparse:
            out |= {f"mask_{name}": self.edge_masks()[name].astype(float) for name in REWIRED}
        return out

    def read_optimizer_state(self, nest: Any) -> dict[str, np.ndarray]:
        """Adam's per-synapse state as matrices [post, pre]: the moments (``m_<projection>``, ``v_<projection>``; 0
        where no synapse is) and, for projections of nestgrad's synapses (eprop_event_synapse of
        ``gradient_algorithm = "event"``, eprop_vector_synapse where the neuron asks for it; NEST's eprop_synapse,
        which the readout projection always uses, has none), the bias-correction powers (``b1_<projection>``,
        ``b2_<projection>``; 1 where no synapse is). Empty for plain GD and the static twin."""
        if not self._plastic:
            return {}
        out = {}
        for key, v in super().read_optimizer_state(nest).items():
            moment, name = key.split("_", 1)
            out[key] = self._dense(name, v, 1.0 if moment in ("b1", "b2") else 0.0)
        return out

    def write_optimizer_state(self, nest: Any, state: dict[str, np.ndarray]) -> None:
        flat = {}
        for name in PROJECTIONS:
            if f"m_{name}" in state:
                proj = self.built.spec.projections[name]
                for moment in ("m", "v", "b1", "b2"):
                    if f"{moment}_{name}" in state:  # no powers in checkpoints written before they were kept
                        flat[f"{moment}_{name}"] = np.asarray(state[f"{moment}_{name}"])[proj.targets, proj.sources]
        super().write_optimizer_state(nest, flat)

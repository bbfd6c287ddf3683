"""The classic e-prop network of Bellec et al. (2020) in NEST: spike inputs -> recurrent e-prop neurons -> leaky
readouts, with learning signals fed back from the readouts.

Works with NEST's built-in recurrent e-prop neurons and with nestgrad's own. Each model has defaults for this
network (taken for NEST's models from NEST's e-prop examples) that ``NetworkConfig.neuron_params`` overrides.

Wiring (all delays one time step, as NEST 3.10's e-prop requires)::

    spike_generator --static--> parrot_neuron --eprop_synapse--> recurrent --eprop_synapse--> eprop_readout
                                                   recurrent --eprop_synapse--> recurrent (optional)
    eprop_readout --eprop_learning_signal_connection--> recurrent
    step_rate_generator --rate_connection_delayed--> eprop_readout  (receptor 1: learning window, 2: target)

With ``NetworkConfig.gradient_algorithm = "event"`` the connections into the recurrent neurons use nestgrad's
``eprop_event_synapse`` (same updates, O(1) work per spike); the readout's inputs keep ``eprop_synapse``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nestgrad.config import GradientAlgorithm, NetworkConfig, OptimizerConfig, OptimizerType
from nestgrad.errors import ModelError, SpecError
from nestgrad.nest_engine import (
    EPROP_SYNAPSE,
    EVENT_SYNAPSE,
    INLINE_OPTIMIZER_SYNAPSES,
    LEARNING_SIGNAL_CONNECTION,
    STATIC_SYNAPSE,
    set_plastic_defaults,
    signed_model,
)
from nestgrad.nest_engine import devices as dev
from nestgrad.networks.base import READOUT_DEFAULTS
from nestgrad.parallel import SerialCommunicator
from nestgrad.tasks import TrialBatch

PROJECTIONS = ("in_rec", "rec_rec", "rec_out")
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


class EpropNetwork:
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
        self._nodes: dict[str, Any] = {}
        self._synapse_models: dict[str, str] = {}
        self.comm = SerialCommunicator()  # the Trainer sets an MPI communicator under mpirun
        # initial weights whose signs choose each synapse's receptor port and sign-bounded model, so that a weight
        # that reached 0 keeps its side when a later block rebuilds the network (the Trainer sets them; None: the
        # signs of the weights being built)
        self.sign_reference: dict[str, np.ndarray] | None = None
        self._recorded_count = 0

    def initial_weights(self, seed: int) -> dict[str, np.ndarray]:
        c = self.config
        return initial_weights(self.n_in, c.n_rec, self.n_out, seed, c.recurrent, c.weight_scale, c.neuron_model)

    @property
    def n_recorded(self) -> int:
        return int(self._recorded_count)

    def describe(self) -> str:
        algorithm = ", eprop_event_synapse" if self.config.gradient_algorithm == GradientAlgorithm.EVENT else ""
        return f"{self.config.neuron_model} ({self.n_rec} recurrent neurons{algorithm})"

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
        if self.config.gradient_algorithm == GradientAlgorithm.EVENT:
            if EVENT_SYNAPSE not in nest.synapse_models:
                raise ModelError("network.gradient_algorithm = 'event' needs nestgrad's module (nestgrad.install())")
            refusal = nest.GetDefaults(model).get("event_synapse_refusal")
            if refusal is None:
                refusal = (
                    "it keeps no running sums for eprop_event_synapse (nestgrad's eprop_iaf_psc_exp and the NESTML "
                    "e-prop neurons with constant eligibility coefficients do)"
                )
            if refusal:
                raise ModelError(
                    f"network.gradient_algorithm = 'event' is not supported by network.neuron_model = {model!r}: "
                    f"{refusal}"
                )

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

    def _signed(self, plastic: bool = True) -> bool:
        """Dale's law: plastic synapses of each sign use a copy of the synapse model bounded to that sign."""
        return plastic and self.optimizer.sign_constrained

    def _connect_one_to_one(
        self,
        nest: Any,
        weights: dict[str, np.ndarray],
        masks: dict[str, np.ndarray] | None,
        receptors: tuple[int, int] | None,
        signed: bool = False,
    ) -> None:
        """The plastic projections synapse by synapse: those ``masks`` selects (default: all, without autapses),
        into a neuron with two receptor ports each on the port its initial sign chooses (``receptors``), and with
        ``signed`` (Dale's law) each sign with its sign-bounded copy of the synapse model. The signs are those of
        ``sign_reference`` (the initial weights) when set."""
        n = self._nodes
        for name, (pre, post) in _PROJECTION_NODES.items():
            w = np.asarray(weights[name], float)
            if masks is not None:
                mask = masks[name]
            elif name == "rec_rec" and not self.config.recurrent:
                continue
            else:
                mask = np.ones(w.shape, bool)
                if name == "rec_rec":
                    np.fill_diagonal(mask, False)
            model = self._synapse_models[name]
            by_port = receptors is not None and post == "rec"
            if by_port or signed:
                ref = w if self.sign_reference is None else np.asarray(self.sign_reference[name], float)
                if ref.shape != w.shape:
                    raise SpecError(f"sign_reference[{name!r}] has shape {ref.shape}, the weights {w.shape}")
                groups = [
                    (mask & (ref >= 0.0), receptors[0] if by_port else None, signed_model(model, "nonneg")),
                    (mask & (ref < 0.0), receptors[1] if by_port else None, signed_model(model, "neg")),
                ]
            else:
                groups = [(mask, None, model)]
            for selected, receptor, sign_model in groups:
                post_idx, pre_idx = np.nonzero(selected)
                if post_idx.size == 0:
                    continue
                syn = {
                    "synapse_model": sign_model if signed else model,
                    "weight": w[post_idx, pre_idx],
                    "delay": np.full(post_idx.size, self.resolution),
                }
                if receptor is not None:
                    syn["receptor_type"] = receptor
                nest.Connect(
                    np.asarray(n[pre].tolist())[pre_idx], np.asarray(n[post].tolist())[post_idx], "one_to_one", syn
                )

    def _recurrent_synapse_model(self, nest: Any) -> str:
        """The plastic synapse into the recurrent neurons: eprop_event_synapse for gradient_algorithm "event", else
        the one the neuron asks for (NESTML e-prop neurons with more than two eligibility states need
        eprop_vector_synapse), else NEST's eprop_synapse."""
        if self.config.gradient_algorithm == GradientAlgorithm.EVENT:
            return EVENT_SYNAPSE
        return nest.GetDefaults(self.config.neuron_model).get("eprop_synapse_model", EPROP_SYNAPSE)

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
        self.check_weights(weights)
        if plastic:
            for name in PROJECTIONS:
                self.optimizer.check_bounds(name, weights[name] if masks is None else weights[name][masks[name]])
        into_rec = self._recurrent_synapse_model(nest)
        self._synapse_models = {
            "in_rec": into_rec if plastic else STATIC_SYNAPSE,
            "rec_rec": into_rec if plastic else STATIC_SYNAPSE,
            "rec_out": EPROP_SYNAPSE if plastic else STATIC_SYNAPSE,
        }
        step = self.resolution
        n = self._nodes
        gen_in, n["in"] = dev.create_input_nodes(nest, self.n_in)
        n["rec"] = nest.Create(self.config.neuron_model, self.n_rec, self.neuron_params)
        n["out"] = nest.Create("eprop_readout", self.n_out, self.readout_params)
        gen_target, gen_window = dev.create_target_nodes(nest, self.n_out)

        if plastic:
            for model in sorted(set(self._synapse_models.values())):
                set_plastic_defaults(
                    nest,
                    model,
                    self.optimizer.nest_dict(),
                    sign_constrained=self.optimizer.sign_constrained,
                    eta=None if learning else 0.0,
                )
        all_to_all = {"rule": "all_to_all", "allow_autapses": False}
        dev.connect_inputs(nest, gen_in, n["in"], step)
        receptors = self._receptors_by_sign(nest)
        if masks is None and receptors is None and not self._signed(plastic):
            for name in PROJECTIONS:
                if name == "rec_rec" and not self.config.recurrent:
                    continue
                pre, post = _PROJECTION_NODES[name]
                syn = {"synapse_model": self._synapse_models[name], "delay": step, "weight": weights[name]}
                nest.Connect(n[pre], n[post], all_to_all, syn)
        else:
            self._connect_one_to_one(nest, weights, masks, receptors, self._signed(plastic))
        nest.Connect(
            n["out"],
            n["rec"],
            all_to_all,
            {"synapse_model": LEARNING_SIGNAL_CONNECTION, "delay": step, "weight": weights["feedback"]},
        )
        recorded = np.asarray(n["rec"].tolist())[: max(min(record_neurons, self.n_rec), 0)]
        self.devices = dev.connect_data_devices(nest, gen_in, n["in"], gen_target, gen_window, n["out"], recorded, step)
        self._recorded_count = recorded.size
        self._feedback = np.array(weights["feedback"], copy=True)

    # -- data -----------------------------------------------------------------------------------------------------
    def load_segment(self, nest: Any, batches: list[TrialBatch]) -> None:
        """Set the spike and rate generators for consecutive iterations, starting at the kernel's time 0."""
        dev.set_generators(self.devices, batches, self.resolution)

    def lead_in_ms(self) -> float:
        return dev.lead_in_ms(self.resolution)

    def collect(self, nest: Any, t_start_ms: float, steps: int) -> dev.Recordings:
        return dev.collect(self.devices, t_start_ms, steps, self.resolution, self.comm)

    # -- weights and optimizer state ------------------------------------------------------------------------------
    def _projection(self, nest: Any, name: str) -> tuple[Any, Any, Any]:
        n = self._nodes
        pre, post = _PROJECTION_NODES[name]
        if self._signed(self._synapse_models[name] != STATIC_SYNAPSE):  # two synapse models, all in the projection
            return n[pre], n[post], nest.GetConnections(n[pre], n[post])
        return n[pre], n[post], nest.GetConnections(n[pre], n[post], synapse_model=self._synapse_models[name])

    def read_weights(self, nest: Any) -> dict[str, np.ndarray]:
        """Current weights as matrices [post, pre] (the MPI backend gathers them across ranks)."""
        out = {"feedback": self._feedback.copy()}
        for name in PROJECTIONS:
            pre, post, conns = self._projection(nest, name)
            w = np.zeros((len(post), len(pre)))
            if len(conns) == 0:
                out[name] = self.comm.sum(w)
                continue
            d = conns.get(["source", "target", "weight"])
            w[np.asarray(d["target"]) - post[0].global_id, np.asarray(d["source"]) - pre[0].global_id] = d["weight"]
            out[name] = self.comm.sum(w)  # each synapse lives on one rank
        return out

    def read_optimizer_state(self, nest: Any) -> dict[str, np.ndarray]:
        """Adam's per-synapse moments as matrices (``m_<projection>``, ``v_<projection>``); empty for plain GD."""
        if self.optimizer.type != OptimizerType.ADAM or STATIC_SYNAPSE in self._synapse_models.values():
            return {}
        state = {}
        for name in PROJECTIONS:
            pre, post, conns = self._projection(nest, name)
            if self.comm.sum(np.array([len(conns)]))[0] == 0:
                continue
            mats = {"m": np.zeros((len(post), len(pre))), "v": np.zeros((len(post), len(pre)))}
            if len(conns):  # read once per projection, both moments
                rows, cols, m, v = self._adam_moments(conns, pre, post, self._synapse_models[name])
                mats["m"][rows, cols], mats["v"][rows, cols] = m, v
            for moment, mat in mats.items():
                state[f"{moment}_{name}"] = self.comm.sum(mat)
        return state

    def write_optimizer_state(self, nest: Any, state: dict[str, np.ndarray]) -> None:
        for name in PROJECTIONS:
            if f"m_{name}" not in state:
                continue
            pre, post, conns = self._projection(nest, name)
            if len(conns) == 0:
                continue
            d = conns.get(["source", "target"])
            rows = np.asarray(d["target"]) - post[0].global_id
            cols = np.asarray(d["source"]) - pre[0].global_id
            m = state[f"m_{name}"][rows, cols]
            v = state[f"v_{name}"][rows, cols]
            if self._synapse_models[name] in INLINE_OPTIMIZER_SYNAPSES:
                # a list of dictionaries: lists per keyword are not supported under MPI
                conns.set([{"adam_m": float(a), "adam_v": float(b)} for a, b in zip(m, v, strict=True)])
            else:
                conns.set([{"optimizer": {"m": float(a), "v": float(b)}} for a, b in zip(m, v, strict=True)])

    @staticmethod
    def _adam_moments(
        conns: Any, pre: Any, post: Any, model: str
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Rows, columns and Adam moments m, v of a projection's connections of synapse ``model``."""
        if model in INLINE_OPTIMIZER_SYNAPSES:
            d = conns.get(["source", "target", "adam_m", "adam_v"])
            m, v = np.asarray(d["adam_m"], float), np.asarray(d["adam_v"], float)
        else:
            d = conns.get(["source", "target", "optimizer"])
            m = np.array([o["m"] for o in d["optimizer"]], float)
            v = np.array([o["v"] for o in d["optimizer"]], float)
        rows = np.asarray(d["target"]) - post[0].global_id
        cols = np.asarray(d["source"]) - pre[0].global_id
        return rows, cols, m, v

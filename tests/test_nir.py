"""NIR export and import (nestgrad.nir_io) checked against another tool's own NIR code: snnTorch's importer runs a
network trained in NEST, and a graph written by snnTorch's exporter runs in NEST.

Discretisation. NEST integrates the CubaLIF/LI equations exactly over each step (propagators exp(-dt/tau));
snnTorch, like NIR's reference integrators, takes one Euler step (decay 1 - dt/tau), with dt = 0.1 ms for both here
(snnTorch's importer assumes 1e-4 s). Per step the two decays differ by about (dt/tau)^2 / 2, i.e. an effective
time constant longer by dt / (2 tau): 1 % for tau = 5 ms, 0.17 % for tau = 30 ms. Timing differs too: NEST delays
every connection by one step and lets a synaptic current move v from the step after it arrives; snnTorch passes a
spike through a feedforward layer within the step (recurrent ones one step later). Both shift spikes by a few 0.1 ms
steps; labels and spike counts are robust to that, single spike times are not (hence no spike-time comparison).
"""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np
import pytest

nir = pytest.importorskip("nir")
torch = pytest.importorskip("torch")
snn = pytest.importorskip("snntorch")
nirtorch = pytest.importorskip("nirtorch")

from snntorch import export_nir as snn_export  # noqa: E402
from snntorch import import_nir as snn_import  # noqa: E402

from nestgrad import nir_io  # noqa: E402
from nestgrad.cli import main  # noqa: E402
from nestgrad.config import ExperimentConfig, NetworkConfig, OptimizerConfig, TaskConfig, TrainingConfig  # noqa: E402
from nestgrad.errors import ModelError, SpecError  # noqa: E402
from nestgrad.nest_engine import fresh_kernel, wiring  # noqa: E402
from nestgrad.networks.registry import make_learner  # noqa: E402
from nestgrad.spec import NetworkSpec, Population, Projection, Role  # noqa: E402

DT_S = 1e-4  # snnTorch's importer integrates with this step (s); the NEST networks here use 0.1 ms


# -- snnTorch side ---------------------------------------------------------------------------------------------------
class EulerLI(torch.nn.Module):
    """NIR's LI node by one Euler step per dt, as snnTorch integrates its other nodes: snnTorch 1.0's importer has no
    LI (it maps Leaky/Synaptic only), so the readout is this module."""

    def __init__(self, node: object, dt: float):
        super().__init__()
        tau, r = np.asarray(node.tau, float), np.asarray(node.r, float)
        self.register_buffer("decay", torch.tensor(1.0 - dt / tau, dtype=torch.float64))
        self.register_buffer("gain", torch.tensor(r * dt / tau, dtype=torch.float64))
        self.register_buffer("v_leak", torch.tensor(np.asarray(node.v_leak, float), dtype=torch.float64))
        self.v: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.double()
        if self.v is None or self.v.shape != x.shape:
            self.v = self.v_leak.expand_as(x).clone()
        self.v = self.v_leak + self.decay * (self.v - self.v_leak) + self.gain * x
        return self.v


def snntorch_module(graph: object) -> torch.nn.Module:
    """snnTorch's own NIR node import (``_nir_to_snntorch_module``: Linear, Synaptic for CubaLIF, Leaky for LIF, with
    its threshold rescaling for ``w_in``) executed by nirtorch, plus the LI readout above.

    ``snntorch.import_nir.import_from_nir`` itself first wraps a recurrent layer into a subgraph whose input feeds the
    recurrent weight matrix instead of the neurons (snnTorch 1.0.0, ``_create_rnn_subgraph``), so the external input
    would pass through W_rec; the flat graph with its cycle rec -> rec_rec -> rec is given to nirtorch instead, which
    feeds the recurrent weights the previous step's spikes."""
    own = lambda node: snn_import._nir_to_snntorch_module(node, init_hidden=True)  # noqa: E731
    node_map = {t: own for t in (nir.Affine, nir.Linear, nir.CubaLIF, nir.LIF)}
    node_map[nir.LI] = lambda node: EulerLI(node, DT_S)
    return nirtorch.nir_to_torch(graph, node_map)


def run_snntorch(module: torch.nn.Module, spikes: np.ndarray) -> np.ndarray:
    """Outputs [steps, batch, n_out] for input spikes [steps, batch, n_in] (0/1 per step)."""
    import snntorch.utils

    snntorch.utils.reset(module)
    state, outs = None, []
    with torch.no_grad():
        for x in torch.as_tensor(spikes, dtype=torch.float32):
            out, state = module(x, state)
            outs.append(out.double().numpy().copy())
    return np.stack(outs)


# -- (a) a classifier trained in NEST, run in snnTorch ---------------------------------------------------------------
def _evidence_config() -> ExperimentConfig:
    """The evidence task at 0.1 ms (snnTorch's step), reduced so that 20 short iterations learn it: one cue of 20 ms
    on the left or right, 10 ms delay, 15 ms recall (which side was the cue?)."""
    return ExperimentConfig(
        network=NetworkConfig(neuron_model="eprop_iaf_psc_exp", n_rec=40, seed=3, weight_scale=3.0),
        task=TaskConfig(name="evidence", resolution=0.1, batch_size=8, n_cues=1, cue_steps=200,
                        cue_spacing_steps=50, delay_steps=100, recall_steps=150, cue_rate=100.0),
        optimizer=OptimizerConfig(type="adam", eta=1e-4),
        training=TrainingConfig(iterations=20, checkpoint_every=20, plot=False, record_neurons=40),
    )  # fmt: skip


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    from nestgrad.training.trainer import Trainer

    out = tmp_path_factory.mktemp("nir_run")
    Trainer(_evidence_config(), out, verbose=False).run()
    return out


def _nest_readout(config: ExperimentConfig, weights: dict, batch: object) -> tuple[np.ndarray, int]:
    learner, _ = make_learner(config)
    nest = fresh_kernel(config.task.resolution)
    learner.build(nest, weights, config.network.n_rec, learning=False)
    learner.load_segment(nest, [batch])
    t = learner.lead_in_ms()
    nest.Simulate(t + batch.steps * config.task.resolution)
    rec = learner.collect(nest, t, batch.steps)
    return rec.readout, rec.spike_steps.size


def test_classifier_trained_in_nest_predicts_the_same_in_snntorch(trained_run: pathlib.Path, tmp_path: pathlib.Path):
    from nestgrad.tasks import make_task
    from nestgrad.training.checkpoint import load_checkpoint

    config = _evidence_config()
    state = load_checkpoint(trained_run / "checkpoint.npz", config)
    out = tmp_path / "classifier.nir"
    assert main(["export-nir", str(trained_run), str(out)]) == 0
    graph = nir.read(out)
    assert float(graph.metadata["dt"]) == DT_S

    # NEST runs trials back to back, each from the state the previous one left, and so does snnTorch: 10 chains of
    # 20 trials (one NEST kernel each, one batch entry each in snnTorch)
    chains, per_chain = 10, 20
    test_task = make_task(dataclasses.replace(config.task, batch_size=per_chain), seed=config.network.seed)
    batches = [test_task.batch(10_000 + c) for c in range(chains)]  # never drawn in training
    nest_out = [_nest_readout(config, state.weights, b) for b in batches]
    spikes = np.stack([b.input_spikes for b in batches], axis=1)  # [steps, chains, n_in]
    readout_snn = run_snntorch(snntorch_module(graph), spikes)  # [steps, chains, 2]

    steps = batches[0].trial_steps
    window = batches[0].learning_window[:steps].astype(bool)
    labels = np.concatenate([b.labels for b in batches])
    pred_nest = np.concatenate([r.reshape(per_chain, steps, -1)[:, window].sum(1).argmax(1) for r, _ in nest_out])
    pred_snn = np.concatenate(
        [readout_snn[:, c].reshape(per_chain, steps, -1)[:, window].sum(1).argmax(1) for c in range(chains)]
    )
    nest_spikes = sum(n for _, n in nest_out)
    agree = float(np.mean(pred_nest == pred_snn))
    acc_nest = float(np.mean(pred_nest == labels))
    acc_snn = float(np.mean(pred_snn == labels))
    print(f"NEST accuracy {acc_nest:.3f}, snnTorch accuracy {acc_snn:.3f}, same label {agree:.3f}, "
          f"NEST spikes {nest_spikes}")  # fmt: skip
    assert acc_nest > 0.6, "the classifier must have learned something for the comparison to mean anything"
    assert agree >= 0.99


# -- (b) a graph written by snnTorch runs in NEST --------------------------------------------------------------------
def _snntorch_network(kind: str, n_in: int, n_h: int, n_o: int) -> torch.nn.Sequential:
    """Two layers of snnTorch neurons at 0.1 ms: ``Synaptic`` (current-based, tau_syn = 2 ms, tau_mem = 10 ms),
    ``RSynaptic`` (the same, recurrently connected within each layer) or ``Leaky`` (the input enters the membrane
    directly, tau_mem = 10 ms)."""
    torch.manual_seed(0)

    def layer(n: int) -> torch.nn.Module:
        beta, thr = torch.full((n,), 0.99), torch.ones(n)
        if kind == "Synaptic":
            return snn.Synaptic(alpha=torch.full((n,), 0.95), beta=beta, threshold=thr, init_hidden=True)
        if kind == "RSynaptic":
            module = snn.RSynaptic(alpha=0.95, beta=0.99, threshold=1.0, linear_features=n, all_to_all=True,
                                   init_hidden=True)  # fmt: skip
            with torch.no_grad():
                module.recurrent.weight.normal_(0.0, 0.002)
                module.recurrent.bias.zero_()  # NIR Affine with zero bias (a bias has no NEST counterpart)
            return module
        return snn.Leaky(beta=beta, threshold=thr, init_hidden=True, reset_mechanism="zero")

    net = torch.nn.Sequential(torch.nn.Linear(n_in, n_h, bias=False), layer(n_h),
                              torch.nn.Linear(n_h, n_o, bias=False), layer(n_o))  # fmt: skip
    scale = 20.0 if kind == "Leaky" else 1.0  # the same drive without the synaptic filter's 20 steps of charge
    with torch.no_grad():
        net[0].weight.normal_(0.002 * scale, 0.003 * scale)
        net[2].weight.normal_(0.004 * scale, 0.004 * scale)
    return net


@pytest.mark.parametrize(
    ("kind", "nest_model"),
    [("Synaptic", "eprop_iaf_psc_exp"), ("RSynaptic", "eprop_iaf_psc_exp"), ("Leaky", "eprop_iaf_psc_delta")],
)
def test_graph_written_by_snntorch_gives_the_same_spike_counts_in_nest(kind: str, nest_model: str, tmp_path):
    """A graph that snnTorch's exporter wrote (CubaLIF or LIF nodes; recurrent layers with their Affine weights)
    runs in NEST: spike counts per neuron over 1 s agree within 2 % + 1 spike (recurrent layers: 2 % + 2).
    snnTorch passes a spike through its feedforward layers within the step (NEST: one step per connection, and an
    exponential current moves v from the next step), so its spikes come a few 0.1 ms earlier (up to one more spike
    per neuron in the window); its Euler steps filter slightly differently (decay 0.95 instead of exp(-0.05) =
    0.9512 per step for the 2 ms current, the same total charge), measured as up to 1.5 % more spikes at 300 Hz."""
    n_in, n_h, n_o, steps = 20, 30, 10, 10_000
    net = _snntorch_network(kind, n_in, n_h, n_o)
    graph = snn_export.export_to_nir(net, torch.zeros(1, n_in), ignore_dims=[0])
    nir.write(tmp_path / "snntorch.nir", graph)  # snnTorch's graph, through NIR's own file format
    graph = nir.read(tmp_path / "snntorch.nir")

    x = np.random.default_rng(1).random((steps, n_in)) < 0.02  # 200 Hz per input
    counts_snn: dict[int, np.ndarray] = {}

    def count(layer: int) -> object:
        def hook(module: object, args: object, out: torch.Tensor) -> None:
            counts_snn[layer] = counts_snn.get(layer, 0) + out.numpy()[0]

        return hook

    hooks = [net[i].register_forward_hook(count(i)) for i in (1, 3)]
    import snntorch.utils

    snntorch.utils.reset(net)
    with torch.no_grad():
        for t in range(steps):
            net(torch.as_tensor(x[t : t + 1], dtype=torch.float32))
    for h in hooks:
        h.remove()

    spec = nir_io.graph_to_spec(graph, dt=DT_S)  # snnTorch writes no time step: its importer assumes 1e-4 s
    layers = ("1.lif", "3.lif") if kind == "RSynaptic" else ("1", "3")  # nirtorch names a recurrent layer's nodes
    assert {k: p.model for k, p in spec.populations.items()} == {"input": "parrot_neuron", layers[0]: nest_model,
                                                                 layers[1]: nest_model}  # fmt: skip
    if kind == "RSynaptic":
        assert {"1.w_rec", "3.w_rec"} <= set(spec.projections)
    nest = fresh_kernel(spec.resolution)
    built = wiring.build(nest, spec, plastic=False)
    for k, gen in enumerate(nest.GetNodes({"model": "spike_generator"})):
        gen.set({"spike_times": np.round((np.flatnonzero(x[:, k]) + 1) * spec.resolution, 10)})
    recorders = {}
    for name in layers:
        recorders[name] = nest.Create("spike_recorder")
        nest.Connect(built.nodes[name], recorders[name])
    nest.Simulate((steps + 4) * spec.resolution)
    for name, layer in zip(layers, (1, 3), strict=True):
        senders = recorders[name].events["senders"]
        nest_counts = np.array([np.sum(senders == i) for i in built.ids[name]])
        snn_counts = np.asarray(counts_snn[layer])
        print(f"{kind} layer {name}: NEST {nest_counts.sum()} spikes, snnTorch {snn_counts.sum():.0f}, largest "
              f"difference {np.abs(nest_counts - snn_counts).max():.0f}")  # fmt: skip
        assert nest_counts.sum() > 20 * nest_counts.size  # active: > 20 Hz on average
        # a recurrent loop closes two steps after a spike in NEST (connection delay, then the current reaches v) and
        # one step after it in snnTorch (the previous step's spikes): one more spike of difference allowed there
        slack = 2 if kind == "RSynaptic" else 1
        np.testing.assert_array_less(np.abs(nest_counts - snn_counts), 0.02 * snn_counts + slack + 1e-9)


# -- (c) export -> import -> export is lossless ----------------------------------------------------------------------
def test_export_import_export_is_lossless(trained_run: pathlib.Path, tmp_path: pathlib.Path):
    first = tmp_path / "first.nir"
    assert main(["export-nir", str(trained_run / "checkpoint.npz"), str(first)]) == 0
    graph = nir_io.read_graph(first)
    spec = nir_io.graph_to_spec(graph)
    nest = fresh_kernel(spec.resolution)
    wiring.build(nest, spec)  # NEST takes the imported network as it is
    again = nir_io.spec_to_graph(spec, defaults=nest.GetDefaults)
    nir_io.write_graph(again, tmp_path / "second.nir")
    a = nir_io.graph_dict(graph)
    b = nir_io.graph_dict(nir_io.read_graph(tmp_path / "second.nir"))
    assert a == b  # bit for bit: every parameter, weight, edge and the metadata
    assert set(a["nodes"]) == {"in", "rec", "out", "in_rec", "rec_rec", "rec_out", "output"}


def _run_in_nest(spec: NetworkSpec, spikes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Readout potential [steps, n_out] and the recurrent neurons' spikes (steps, senders) for input ``spikes``."""
    from nestgrad.nest_engine import devices as dev
    from nestgrad.parallel import SerialCommunicator
    from nestgrad.tasks import TrialBatch

    spec.recorded = ("rec", np.arange(spec.populations["rec"].size))
    nest = fresh_kernel(spec.resolution)
    built = wiring.build(nest, spec, plastic=False)
    steps = spikes.shape[0]
    n_out = spec.populations["out"].size
    batch = TrialBatch(spikes, np.zeros((steps, n_out)), np.zeros(steps), steps)
    dev.set_generators(built.devices, [batch], spec.resolution)
    t0 = dev.lead_in_ms(spec.resolution)
    nest.Simulate(t0 + steps * spec.resolution)
    rec = dev.collect(built.devices, t0, steps, spec.resolution, SerialCommunicator())
    return rec.readout, rec.spike_steps, rec.spike_senders


def test_imported_network_has_the_dynamics_of_the_exported_one():
    """Units and the free choices of the mapping, in NEST: a network with a resting potential, a constant current,
    C_m != tau_syn (w_in != 1) and an absolute threshold and reset, exported and imported back (E_L and I_e become
    one v_leak, C_m comes from w_in), spikes at the same steps and its readout follows the same potential."""
    rng = np.random.default_rng(5)
    rec = {"C_m": 3.0, "E_L": -70.0, "I_e": 2.0, "tau_m": 20.0, "t_ref": 0.0, "V_th": -55.0, "V_reset": -65.0,
           "tau_syn_ex": 4.0, "tau_syn_in": 4.0}  # fmt: skip
    rest = -70.0 + 2.0 * 20.0 / 3.0
    spec = NetworkSpec(resolution=0.5)
    spec.add_population(Population("in", "parrot_neuron", 6, role=Role.INPUT))
    spec.add_population(Population("rec", "eprop_iaf_psc_exp", 8, rec | {"V_m": rest}))
    out = {"C_m": 2.0, "E_L": -1.0, "I_e": 0.5, "tau_m": 10.0, "V_m": -1.0 + 0.5 * 10.0 / 2.0}
    spec.add_population(Population("out", "eprop_readout", 2, out, Role.READOUT))
    for name, pre, post, scale in (("in_rec", "in", "rec", 150.0), ("rec_rec", "rec", "rec", 40.0),
                                   ("rec_out", "rec", "out", 1.0)):  # fmt: skip
        n_pre, n_post = spec.populations[pre].size, spec.populations[post].size
        post_idx, pre_idx = np.nonzero(~np.eye(n_post, n_pre, dtype=bool) if pre == post else np.ones((n_post, n_pre)))
        w = rng.normal(0.3, 1.0, post_idx.size) * scale
        spec.add_projection(name, Projection(pre, post, pre_idx, post_idx, w, np.full(post_idx.size, 0.5)))
    graph = nir_io.spec_to_graph(spec)
    assert float(graph.nodes["rec"].v_leak[0]) == pytest.approx(rest, rel=1e-15)
    assert float(graph.nodes["rec"].w_in[0]) == pytest.approx(4.0 / 3.0, rel=1e-15)
    imported = nir_io.graph_to_spec(graph)
    assert imported.populations["rec"].params["C_m"] == 3.0 and imported.populations["rec"].params["I_e"] == 0.0

    spikes = rng.random((2000, 6)) < 0.02
    y0, steps0, senders0 = _run_in_nest(spec, spikes)
    y1, steps1, senders1 = _run_in_nest(imported, spikes)
    assert steps0.size > 100  # the recurrent neurons fire
    np.testing.assert_array_equal(steps0, steps1)
    np.testing.assert_array_equal(senders0, senders1)
    # eprop_readout's constant current starts one step late (its input-current state starts at 0), which the original
    # network (I_e = 0.5 pA) feels and the imported one (I_e = 0, E_L moved) does not: a start-up transient decaying
    # with tau_m = 10 ms; 200 ms (20 tau_m) later the readout potentials agree to rounding
    np.testing.assert_allclose(y0[400:], y1[400:], rtol=0, atol=1e-9)


def test_import_is_trainable_with_eprop():
    """--trainable: e-prop synapses and learning signals from the LI readout; the spec builds in NEST."""
    graph = nir_io.spec_to_graph(_small_spec(), defaults=None)
    spec = nir_io.graph_to_spec(graph, trainable=True, optimizer=OptimizerConfig(eta=1e-4).nest_dict())
    assert spec.plastic_projections() == ["in_rec", "rec_out"]
    assert "feedback_rec" in spec.projections
    nest = fresh_kernel(spec.resolution)
    built = wiring.build(nest, spec)
    assert (
        len(nest.GetConnections(synapse_model="eprop_synapse"))
        == spec.projections["in_rec"].size + spec.projections["rec_out"].size
    )
    assert built.devices is not None


# -- (d) errors ------------------------------------------------------------------------------------------------------
_REC = {"C_m": 5.0, "E_L": 0.0, "I_e": 0.0, "tau_m": 30.0, "t_ref": 0.0, "V_th": 0.03, "V_reset": 0.0,
        "tau_syn_ex": 5.0, "tau_syn_in": 5.0}  # fmt: skip
_OUT = {"C_m": 1.0, "E_L": 0.0, "I_e": 0.0, "tau_m": 30.0}


def _small_spec(
    rec_model: str = "eprop_iaf_psc_exp", rec_params: dict | None = None, delay: float = 1.0
) -> NetworkSpec:
    spec = NetworkSpec(resolution=1.0)
    spec.add_population(Population("in", "parrot_neuron", 2, role=Role.INPUT))
    spec.add_population(Population("rec", rec_model, 3, dict(_REC) if rec_params is None else rec_params))
    spec.add_population(Population("out", "eprop_readout", 1, dict(_OUT), Role.READOUT))
    pre, post = np.array([0, 1, 0]), np.array([0, 1, 2])
    spec.add_projection("in_rec", Projection("in", "rec", pre, post, np.array([1.0, -2.0, 3.0]), np.full(3, delay)))
    spec.add_projection("rec_out", Projection("rec", "out", np.arange(3), np.zeros(3, int), np.ones(3), np.ones(3)))
    return spec


@pytest.mark.parametrize(
    ("change", "error", "names"),
    [
        ({"t_ref": 2.0}, ModelError, ["'rec'", "t_ref = 2.0"]),
        ({"tau_syn_in": 2.0}, ModelError, ["tau_syn_ex = 5.0", "tau_syn_in = 2.0"]),
        ({"V_min": -10.0}, ModelError, ["V_min = -10.0"]),
    ],
)
def test_export_refuses_what_nir_cannot_express(change: dict, error: type, names: list[str]):
    with pytest.raises(error) as info:
        nir_io.spec_to_graph(_small_spec(rec_params=_REC | change))
    for part in names:
        assert part in str(info.value)


@pytest.mark.parametrize(
    ("model", "what"),
    [
        ("eprop_iaf_adapt", "adaptation"),
        ("eprop_iaf_psc_delta_asc_nestml", "after-spike currents"),
        ("eprop_glif3_psc", "alpha-shaped"),
        ("aeif_cond_alpha", "conductance"),
        ("hh_psc_alpha", "alpha-shaped"),
        ("izhikevich", "no NIR node"),
    ],
)
def test_export_refuses_models_without_nir_node(model: str, what: str):
    with pytest.raises(ModelError, match=what) as info:
        nir_io.spec_to_graph(_small_spec(rec_model=model))
    assert model in str(info.value)


def test_export_refuses_other_delays():
    with pytest.raises(ModelError, match=r"projection 'in_rec': delay 2.0 ms; NIR connections are one time step"):
        nir_io.spec_to_graph(_small_spec(delay=2.0))


def _graph(**nodes: object) -> object:
    names = list(nodes)
    return nir.NIRGraph(nodes=dict(nodes), edges=list(zip(names[:-1], names[1:], strict=True)),
                        metadata={"dt": 1e-3})  # fmt: skip


def test_import_refuses_unmappable_nodes():
    one = np.ones(1)
    cases = [
        (nir.CubaLI(tau_syn=one, tau_mem=one, r=one, v_leak=0 * one), "CubaLI"),
        (nir.IF(r=one, v_threshold=one), "IF"),
        (nir.Delay(delay=one), "Delay"),
        (nir.Threshold(threshold=one), "Threshold"),
    ]
    for node, kind in cases:
        graph = _graph(input=nir.Input(input_type=np.array([1])), w=nir.Linear(weight=np.ones((1, 1))), x=node)
        with pytest.raises(ModelError, match=rf"NIR node 'x' of type {kind}"):
            nir_io.graph_to_spec(graph)
    bias = nir.Affine(weight=np.ones((1, 1)), bias=np.ones(1))
    lif = nir.LIF(tau=one, r=one, v_leak=0 * one, v_threshold=one)
    with pytest.raises(ModelError, match=r"'w' \(Affine\): a nonzero bias"):
        nir_io.graph_to_spec(_graph(input=nir.Input(input_type=np.array([1])), w=bias, x=lif))
    bad = nir.LIF(tau=-one, r=one, v_leak=0 * one, v_threshold=one)
    with pytest.raises(ModelError, match=r"NIR node 'x': tau = -1.0"):
        nir_io.graph_to_spec(_graph(input=nir.Input(input_type=np.array([1])), w=nir.Linear(weight=np.ones((1, 1))),
                                    x=bad))  # fmt: skip


def test_import_needs_a_time_step(tmp_path: pathlib.Path):
    one = np.ones(1)
    graph = _graph(input=nir.Input(input_type=np.array([1])), w=nir.Linear(weight=np.ones((1, 1))),
                   x=nir.LIF(tau=one, r=one, v_leak=0 * one, v_threshold=one))  # fmt: skip
    graph.metadata = {}
    with pytest.raises(SpecError, match="no metadata 'dt'"):
        nir_io.graph_to_spec(graph)
    assert nir_io.graph_to_spec(graph, dt=1e-3).resolution == 1.0
    with pytest.raises(SpecError, match=r"dt = -1.0 s"):
        nir_io.graph_to_spec(graph, dt=-1.0)
    with pytest.raises(SpecError, match=r"dt = 1.5e-07 s: NEST's resolution must be a whole multiple of its tic"):
        nir_io.graph_to_spec(graph, dt=1.5e-7)


def test_cli_errors_are_one_line(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture):
    bad = tmp_path / "broken.nir"
    bad.write_text("not hdf5")
    assert main(["import-nir", str(bad)]) == 2
    assert main(["import-nir", str(tmp_path / "missing.nir")]) == 2
    assert main(["export-nir", str(tmp_path), str(tmp_path / "x.nir")]) == 2  # no checkpoint in the folder
    assert main(["export-nir", str(tmp_path), str(tmp_path / "x.txt")]) == 2
    assert main(["import-nir", str(bad), "--dt", "nan"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 5
    assert lines[0].startswith(f"nestgrad import-nir: NIR file {bad} cannot be read")
    assert "does not exist" in lines[1]
    assert lines[2].startswith("nestgrad export-nir: no checkpoint at")
    assert "must end in .nir" in lines[3]
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind


def test_cli_import_builds_the_network(trained_run: pathlib.Path, tmp_path: pathlib.Path, capsys):
    graph = tmp_path / "net.nir"
    assert main(["export-nir", str(trained_run), str(graph)]) == 0
    assert main(["import-nir", str(graph), "--trainable"]) == 0
    out = capsys.readouterr().out
    assert "built in NEST at a resolution of 0.1 ms" in out
    assert "projection in_rec" in out and "(e-prop)" in out
    # an e-prop network's graph belongs to NEST's step (EventProp ones may be written for any, test_nir_eventprop.py)
    assert main(["export-nir", str(trained_run), str(tmp_path / "other.nir"), "--dt", "5e-5"]) == 2
    assert "written for NEST's time step, task.resolution = 0.1 ms" in capsys.readouterr().err

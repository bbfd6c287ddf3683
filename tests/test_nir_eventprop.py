"""NIR export and import of EventProp networks (nestgrad.nir_io.eventprop_to_graph / graph_to_eventprop), checked
with snnTorch's own NIR import: a latency-coded digits classifier trained by EventProp in NEST, exported, run by
snnTorch at two time steps, predicts the same labels.

Discretisation. NEST's EventProp models integrate exactly in continuous time (spike times off the grid). snnTorch
runs the graph in steps of dt: input spikes move to the start of their step, every decay is one Euler step
(1 - dt/tau instead of exp(-dt/tau)), a synaptic current moves the membrane within the step it arrives and a hidden
spike reaches the readout within the step it is emitted, and the readout's mean voltage becomes a sum over steps.
Each of these changes the readout values y by O(dt); a label changes only where NEST's two best readouts are that
close. snnTorch 1.0's importer assumes dt = 1e-4 s (alpha = 1 - 1e-4 / tau_syn); it only ever sees dt / tau, so a
graph written for dt runs at dt when its time constants are scaled by 1e-4 / dt (:func:`at_snntorch_step`).
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

from snntorch import import_nir as snn_import  # noqa: E402

from nestgrad import nir_io  # noqa: E402
from nestgrad.cli import main  # noqa: E402
from nestgrad.config import ExperimentConfig  # noqa: E402
from nestgrad.errors import ModelError, SpecError  # noqa: E402
from nestgrad.nest_engine import eventprop as engine  # noqa: E402
from nestgrad.nest_engine import fresh_kernel  # noqa: E402
from nestgrad.networks.eventprop import TrialSet  # noqa: E402
from nestgrad.networks.registry import make_learner  # noqa: E402
from nestgrad.reference.eventprop import Network, Population, Projection, ReadoutCrossEntropy, Trial  # noqa: E402
from nestgrad.training.checkpoint import load_checkpoint  # noqa: E402

SNNTORCH_DT = 1e-4  # s: the step snnTorch 1.0's NIR importer assumes


def _digits_config() -> ExperimentConfig:
    """8 x 8 latency-coded digits (64 inputs) -> 30 hidden -> 10 readouts, 45 iterations of 32 (one epoch)."""
    return ExperimentConfig.from_dict(
        {
            "network": {"architecture": "eventprop", "neuron_model": "eventprop_iaf_psc_exp_ps", "seed": 1,
                        "params": {"n_hidden": 30, "w_in_mean": 0.3, "w_in_std": 0.3}},
            "task": {"name": "digits_latency", "resolution": 1.0, "batch_size": 32, "params": {"side": 8}},
            "optimizer": {"type": "adam", "eta": 0.1},
            "training": {"iterations": 45, "checkpoint_every": 45, "threads": 1, "plot": False},
        }
    )  # fmt: skip


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    from nestgrad.training.trainer import Trainer

    out = tmp_path_factory.mktemp("nir_eventprop_run")
    Trainer(_digits_config(), out, verbose=False).run()
    return out


@pytest.fixture(scope="module")
def nest_test_set(trained_run: pathlib.Path) -> tuple[np.ndarray, np.ndarray, object]:
    """NEST's readout values y [n_test, 10] on the whole test split (learning off), the labels and the data."""
    config = _digits_config()
    state = load_checkpoint(trained_run / "checkpoint.npz", config)
    learner, task = make_learner(config)
    data = task.data
    trials = data.trials("test", range(data.size("test")))
    labels = np.array([t.label for t in trials])
    nest = fresh_kernel(config.task.resolution)
    learner.build(nest, state.weights, 0, learning=False)
    ((_, rec, _),) = list(learner.simulate(nest, [TrialSet(trials, labels)], config.task.resolution))
    return rec.y, labels, data


# -- snnTorch side ---------------------------------------------------------------------------------------------------
class SnntorchCubaLI(torch.nn.Module):
    """NIR's CubaLI run by snnTorch's ``Synaptic`` neuron (no threshold, no reset), its membrane as the output.
    snnTorch 1.0's importer has no CubaLI; this scales the input by w_in dt / tau_syn as its CubaLIF import does
    (there by dividing the threshold instead), so the membrane is in mV."""

    def __init__(self, node: object):
        super().__init__()
        tau_syn, tau_mem = np.asarray(node.tau_syn, float), np.asarray(node.tau_mem, float)
        self.register_buffer("scale", torch.tensor(np.asarray(node.w_in) * SNNTORCH_DT / tau_syn, dtype=torch.float32))
        self.neuron = snn.Synaptic(alpha=torch.tensor(1 - SNNTORCH_DT / tau_syn, dtype=torch.float32),
                                   beta=torch.tensor(1 - SNNTORCH_DT / tau_mem, dtype=torch.float32),
                                   threshold=float("inf"), reset_mechanism="none", init_hidden=True,
                                   output=True)  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _spikes, _current, membrane = self.neuron(x * self.scale)
        return membrane


def at_snntorch_step(graph: object, dt: float) -> object:
    """``graph`` (written for the step dt, s) with every time constant scaled by 1e-4 / dt: what snnTorch's importer
    (which assumes 1e-4 s and computes 1 - 1e-4 / tau) must see to run it at dt. r = tau / dt and w_in stay."""
    f = SNNTORCH_DT / dt
    nodes = {}
    for name, node in graph.nodes.items():
        if isinstance(node, nir.CubaLIF | nir.CubaLI):
            node = dataclasses.replace(node, tau_syn=node.tau_syn * f, tau_mem=node.tau_mem * f)
        nodes[name] = node
    return nir.NIRGraph(nodes=nodes, edges=graph.edges, metadata=graph.metadata)


def restepped(graph: object, dt: float) -> object:
    """``graph`` written for another step dt (s): r = tau_mem / dt and the metadata ``dt``, what ``eventprop_to_graph``
    writes for dt (the only parameter that depends on the step; w_in and the time constants do not). Used to run a
    recurrent graph, whose loop delay D is its own step, at dt = D / n with :class:`LoopDelay`."""
    nodes = {}
    for name, node in graph.nodes.items():
        if isinstance(node, nir.CubaLIF | nir.CubaLI):
            node = dataclasses.replace(node, r=np.asarray(node.tau_mem, float) / dt)
        nodes[name] = node
    return nir.NIRGraph(nodes=nodes, edges=graph.edges, metadata={**graph.metadata, "dt": dt})


class LoopDelay(torch.nn.Module):
    """A recurrent ``Linear`` (snnTorch's own module) whose output waits ``extra`` more steps: nirtorch closes a loop
    in one step dt, so a loop of ``extra + 1`` steps runs NEST's recurrent delay D = (extra + 1) dt."""

    def __init__(self, linear: torch.nn.Module, extra: int):
        super().__init__()
        self.linear, self.extra, self.queue = linear, extra, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.queue.append(self.linear(x))
        return self.queue.pop(0) if len(self.queue) > self.extra else torch.zeros_like(self.queue[-1])


def recurrent_linears(graph: object) -> set[str]:
    """The Linear nodes that close a loop onto one population (edges p -> linear -> p)."""
    edges = set(graph.edges)
    return {lin for (p, lin) in edges if isinstance(graph.nodes[lin], nir.Linear) and (lin, p) in edges}


def snntorch_readout(graph: object, times: np.ndarray, dt: float, loop_steps: int = 1) -> np.ndarray:
    """The readout value y [n_trials, n_out] of the ``sum`` rule (mean voltage over the trial) computed by snnTorch
    for input spike ``times`` [n_trials, n_in] (ms, inf = none). NEST's readout lags the graph's by the metadata
    ``readout_delay`` (the connections' delays), so the graph's mean is taken over [0, T - readout_delay).
    ``loop_steps``: the steps of dt a recurrent connection takes (1: nirtorch's loop as it is; n > 1 delays each
    recurrent Linear's output by n - 1 more steps, :class:`LoopDelay`)."""
    import snntorch.utils

    own = lambda node: snn_import._nir_to_snntorch_module(node, init_hidden=True)  # noqa: E731
    stepped = at_snntorch_step(graph, dt)
    loops = {id(stepped.nodes[name]) for name in recurrent_linears(stepped)} if loop_steps > 1 else set()
    if loop_steps > 1 and not loops:
        raise ValueError(f"loop_steps = {loop_steps} for a graph without a recurrent Linear")

    def linear(node: object) -> torch.nn.Module:
        return LoopDelay(own(node), loop_steps - 1) if id(node) in loops else own(node)

    module = nirtorch.nir_to_torch(stepped, {nir.Linear: linear, nir.CubaLIF: own, nir.CubaLI: SnntorchCubaLI})
    T, lag = float(graph.metadata["trial_duration"]), float(graph.metadata["readout_delay"])
    steps = int(round((T - lag) / dt))
    dt_ms = dt * 1e3
    x = np.zeros((steps, *times.shape), np.float32)
    trial, neuron = np.nonzero(np.isfinite(times))
    k = np.floor(times[trial, neuron] / dt_ms + 1e-9).astype(np.int64)  # the step that holds the spike
    keep = k < steps
    x[k[keep], trial[keep], neuron[keep]] = 1.0
    snntorch.utils.reset(module)
    total, state = 0.0, None
    with torch.no_grad():
        for xt in torch.as_tensor(x):
            v, state = module(xt, state)
            total = total + v.double().numpy()
    return total * dt / T


# -- (a) trained in NEST, run in snnTorch ----------------------------------------------------------------------------
def test_eventprop_classifier_predicts_the_same_in_snntorch(trained_run, nest_test_set, tmp_path, capsys):
    y_nest, labels, data = nest_test_set
    acc_nest = float(np.mean(y_nest.argmax(1) == labels))
    assert acc_nest > 0.6, "the classifier must have learned something for the comparison to mean anything"
    times, _ = data.arrays("test")
    deviation = {}
    for dt in (1e-4, 5e-5):
        path = tmp_path / f"digits_{dt:g}.nir"
        assert main(["export-nir", str(trained_run), str(path), "--dt", str(dt)]) == 0
        graph = nir.read(path)
        assert float(graph.metadata["dt"]) == dt and float(graph.metadata["readout_delay"]) == 0.002
        assert {type(n).__name__ for n in graph.nodes.values()} == {"Input", "Linear", "CubaLIF", "CubaLI", "Output"}
        y_snn = snntorch_readout(graph, times, dt)
        pred_nest, pred_snn = y_nest.argmax(1), y_snn.argmax(1)
        agree = float(np.mean(pred_nest == pred_snn))
        dy = np.abs(y_snn - y_nest)
        top2 = np.sort(y_nest, axis=1)[:, -2:]
        margin = top2[:, 1] - top2[:, 0]  # how far NEST's best readout is ahead of the second
        differ = pred_nest != pred_snn
        with capsys.disabled():
            print(f"\ndt {dt * 1e3:g} ms: same label {agree:.4f} ({differ.sum()} of {len(labels)} differ), accuracy "
                  f"NEST {acc_nest:.4f} snnTorch {np.mean(pred_snn == labels):.4f}; |y_snnTorch - y_NEST| mean "
                  f"{dy.mean():.4f} max {dy.max():.4f} mV (y spans {np.ptp(y_nest):.1f} mV); NEST margins of the "
                  f"differing trials {np.round(margin[differ], 4).tolist()}")  # fmt: skip
        assert agree >= 0.99
        assert dy.mean() < 0.005 * np.ptp(y_nest)
        deviation[dt] = dy.mean()
    # the deviation is discretisation: first order in dt (measured ratio 1.95 for half the step)
    assert 1.6 < deviation[1e-4] / deviation[5e-5] < 2.4


def test_recurrent_eventprop_classifier_converges_in_snntorch(tmp_path, capsys):
    """A recurrent classifier (hidden -> hidden, delay D = 0.1 ms = NEST's resolution) trained in NEST, exported for
    the step D and run by snnTorch at dt = D, D/2, D/4 with the loop taking D (n = D/dt steps: nirtorch's one step and
    n - 1 of :class:`LoopDelay`): the labels agree more as dt shrinks (measured 98.3, 99.2, 99.7 %; >= 99 % asserted
    at D/4) and y deviates in proportion to dt (ratios 1.97, 1.94), so the disagreement at dt = D is the stepping,
    not the export's loop (a loop off by a fixed time would leave a deviation that does not shrink with dt)."""
    from nestgrad.training.trainer import Trainer

    d = _digits_config().to_dict()
    d["network"]["params"] |= {"recurrent": True, "delay": 0.1}
    d["task"]["resolution"] = 0.1
    config = ExperimentConfig.from_dict(d)
    run = tmp_path / "run"
    Trainer(config, run, verbose=False).run()
    learner, task = make_learner(config)
    trials = task.data.trials("test", range(task.data.size("test")))
    labels = np.array([t.label for t in trials])
    nest = fresh_kernel(config.task.resolution)
    learner.build(nest, load_checkpoint(run / "checkpoint.npz", config).weights, 0, learning=False)
    ((_, rec, _),) = list(learner.simulate(nest, [TrialSet(trials, labels)], config.task.resolution))
    y_nest = rec.y
    assert np.mean(y_nest.argmax(1) == labels) > 0.6
    path = tmp_path / "recurrent.nir"
    assert main(["export-nir", str(run), str(path), "--dt", "1e-4"]) == 0
    graph = nir.read(path)
    assert recurrent_linears(graph) == {"hid_hid"}
    times, _ = task.data.arrays("test")

    def deviation(n: int, loop: int) -> tuple[float, float]:
        dt = 1e-4 / n
        y = snntorch_readout(restepped(graph, dt) if n > 1 else graph, times, dt, loop_steps=loop)
        return float(np.mean(y.argmax(1) == y_nest.argmax(1))), float(np.abs(y - y_nest).mean())

    agree, dy = {}, {}
    for n in (1, 2, 4):
        agree[n], dy[n] = deviation(n, n)
    with capsys.disabled():
        print(f"\nrecurrent, D = 0.1 ms: same label at dt = D, D/2, D/4: {agree}; mean |dy| {dy} mV")
    assert agree[4] >= 0.99 and agree[4] >= agree[2] >= agree[1]
    assert 1.6 < dy[1] / dy[2] < 2.4 and 1.6 < dy[2] / dy[4] < 2.4


def test_eventprop_readout_delay_is_a_time_shift():
    """The claim behind ``readout_delay``: in a feedforward EventProp network with one delay d per connection, NEST's
    readout with d = 1.5 ms is its readout with d = 0.5 ms two times 1 ms later (the same arrivals, the same
    states, to rounding)."""
    rng = np.random.default_rng(2)
    lif = {"C_m": 1.0, "tau_m": 10.0, "tau_syn": 5.0, "E_L": 0.0, "V_th": 0.5, "V_reset": 0.0, "t_ref": 0.0}
    li = {"C_m": 1.0, "tau_m": 10.0, "tau_syn": 5.0, "E_L": 0.0}

    def net(d: float) -> Network:
        s1, t1 = np.divmod(np.arange(4 * 6), 6)
        s2, t2 = np.divmod(np.arange(6 * 2), 2)
        return Network(
            (Population("in", 4, "input"), Population("hid", 6, "lif", lif), Population("out", 2, "li", li)),
            (Projection("in_hid", "in", "hid", s1, t1, rng_w1, d), Projection("hid_out", "hid", "out", s2, t2, rng_w2,
                                                                              d)),
            60.0,
        )  # fmt: skip

    rng_w1, rng_w2 = rng.normal(0.6, 0.3, 24), rng.normal(0.0, 1.0, 12)
    trial = Trial({"in": [sorted(rng.uniform(0, 30, 5)) for _ in range(4)]})
    early = engine.run_forward(net(0.5), [trial], resolution=0.5).readout_segments[0]
    late = engine.run_forward(net(1.5), [trial], resolution=0.5).readout_segments[0]
    for j in early:
        keep = early[j][0] + 2.0 < 60.0
        assert keep.sum() > 10
        # equal to rounding (spike times are kept relative to each trial's start on NEST's time axis)
        np.testing.assert_allclose(late[j][0], early[j][0][keep] + 2.0, rtol=1e-14, atol=0)
        np.testing.assert_allclose(late[j][1:], early[j][1:, keep], rtol=1e-12, atol=1e-12)


# -- (b) export -> import -> export ----------------------------------------------------------------------------------
def test_eventprop_export_import_export_is_lossless(trained_run, tmp_path, capsys):
    first = tmp_path / "first.nir"
    assert main(["export-nir", str(trained_run / "checkpoint.npz"), str(first), "--dt", "1e-4"]) == 0
    graph = nir_io.read_graph(first)
    imported = nir_io.graph_to_eventprop(graph)
    # the imported network is the trained one: same neurons, parameters, edges, weights and delays
    config = _digits_config()
    learner, _ = make_learner(config)
    trained = learner.network(load_checkpoint(trained_run / "checkpoint.npz", config).weights, 20.0)
    assert imported.network.T == trained.T and imported.dt == 1e-4
    assert imported.loss.mode == "sum" and imported.loss.population == "out"
    for a, b in zip(imported.network.populations, trained.populations, strict=True):
        assert (a.name, a.size, a.kind) == (b.name, b.size, b.kind)
        assert all(a.params[k] == b.params[k] for k in a.params), a.name
    for a, b in zip(imported.network.projections, trained.projections, strict=True):
        assert (a.name, a.source, a.target) == (b.name, b.source, b.target)
        np.testing.assert_array_equal(a.sources, np.asarray(b.sources))
        np.testing.assert_array_equal(a.targets, np.asarray(b.targets))
        np.testing.assert_array_equal(a.weights, b.weights)
        np.testing.assert_array_equal(a.delays, np.broadcast_to(b.delays, a.delays.shape))
    again = nir_io.eventprop_to_graph(imported.network, imported.dt, imported.loss)
    nir_io.write_graph(again, tmp_path / "second.nir")
    assert nir_io.graph_dict(nir_io.read_graph(tmp_path / "second.nir")) == nir_io.graph_dict(graph)

    # import-nir builds it with NEST's EventProp models
    assert main(["import-nir", str(first)]) == 0
    out = capsys.readouterr().out
    assert "EventProp network built in NEST at a resolution of 0.1 ms, trials of 20 ms" in out
    assert "eventprop_iaf_psc_exp_ps" in out and "eventprop_readout_ps" in out and "delay 1 ms" in out
    assert main(["import-nir", str(first), "--trainable"]) == 2
    assert "run_training" in capsys.readouterr().err


def _small(recurrent: bool = False, delay: float = 1.0, **hidden: float) -> Network:
    lif = {"C_m": 2.0, "tau_m": 20.0, "tau_syn": 5.0, "E_L": -1.0, "I_e": 0.5, "V_th": 1.0, "V_reset": -2.0,
           "t_ref": 0.0, "adapt_tau": 100.0, "adapt_beta": 0.0} | hidden  # fmt: skip
    li = {"C_m": 3.0, "tau_m": 10.0, "tau_syn": 2.0, "E_L": 0.0, "I_e": 0.0}
    pops = (Population("in", 3, "input"), Population("hid", 4, "lif", lif), Population("out", 2, "li", li))
    rng = np.random.default_rng(4)
    projs = [Projection("in_hid", "in", "hid", np.repeat(np.arange(3), 4), np.tile(np.arange(4), 3),
                        rng.normal(size=12), delay)]  # fmt: skip
    if recurrent:
        s, t = np.nonzero(~np.eye(4, dtype=bool))
        projs.append(Projection("hid_hid", "hid", "hid", s, t, rng.normal(size=12), delay))
    projs.append(Projection("hid_out", "hid", "out", np.repeat(np.arange(4), 2), np.tile(np.arange(2), 4),
                            rng.normal(size=8), delay))  # fmt: skip
    return Network(pops, tuple(projs), 30.0)


def test_recurrent_eventprop_graph_round_trip():
    """A recurrent network (delay = dt), resting potential, constant current, C_m != tau_syn, sum_exp readout."""
    net = _small(recurrent=True, delay=0.5)
    loss = ReadoutCrossEntropy("out", "sum_exp", tau_w=15.0)
    graph = nir_io.eventprop_to_graph(net, 5e-4, loss)
    hid, out = graph.nodes["hid"], graph.nodes["out"]
    assert isinstance(hid, nir.CubaLIF) and isinstance(out, nir.CubaLI)
    np.testing.assert_allclose(hid.v_leak, -1.0 + 0.5 * 20.0 / 2.0, rtol=1e-15)
    np.testing.assert_allclose(hid.w_in, 5.0 / 2.0, rtol=1e-15)
    np.testing.assert_allclose(out.r, 0.01 / 5e-4, rtol=1e-15)
    assert graph.metadata["readout"] == "sum_exp" and graph.metadata["tau_w"] == 0.015
    assert ("hid", "hid_hid") in graph.edges and ("hid_hid", "hid") in graph.edges
    imported = nir_io.graph_to_eventprop(graph)
    assert imported.loss.tau_w == 15.0
    again = nir_io.eventprop_to_graph(imported.network, imported.dt, imported.loss)
    assert nir_io.graph_dict(again) == nir_io.graph_dict(graph)
    # the imported network runs in NEST (E_L and I_e became one resting potential: E_L = v_leak, I_e = 0)
    assert imported.network.populations[1].params["E_L"] == 4.0 and imported.network.populations[1].params["I_e"] == 0
    fw = engine.run_forward(imported.network, [Trial({"in": [[1.0], [2.0, 3.0], []]})], resolution=0.5)
    assert len(fw.readout_segments[0]) == 2


# -- (c) what NIR cannot express -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("net", "dt", "names"),
    [
        (_small(adapt_beta=0.2), 1e-3, ["'hid'", "eventprop_iaf_psc_exp_ps", "adapt_beta = 0.2 mV"]),
        (_small(t_ref=2.0), 1e-3, ["'hid'", "t_ref = 2.0 ms", "no refractory period"]),
        (_small(recurrent=True, delay=1.0), 1e-4, ["'hid_hid'", "recurrent delay 1.0 ms", "dt = 0.1 ms"]),
    ],
)
def test_eventprop_export_refuses_what_nir_cannot_express(net: Network, dt: float, names: list[str]):
    with pytest.raises(ModelError) as info:
        nir_io.eventprop_to_graph(net, dt)
    for part in names:
        assert part in str(info.value)


def test_eventprop_export_refuses_delays_that_are_not_a_time_shift():
    net = _small()
    mixed = dataclasses.replace(net.projections[0], delays=np.r_[np.ones(6), np.full(6, 2.0)])
    with pytest.raises(ModelError, match=r"projection 'in_hid': delays 1.0 \.\.\. 2.0 ms differ between edges"):
        nir_io.eventprop_to_graph(dataclasses.replace(net, projections=(mixed, net.projections[1])), 1e-3)
    skip = Projection("in_out", "in", "out", np.arange(2), np.arange(2), np.ones(2), 1.0)  # 1 ms besides 2 ms
    with pytest.raises(ModelError, match=r"the path into 'out' (1.0|2.0) ms long, other paths (2.0|1.0) ms"):
        nir_io.eventprop_to_graph(dataclasses.replace(net, projections=(*net.projections, skip)), 1e-3)


def test_eventprop_import_refuses_nodes_without_eventprop_model():
    graph = nir_io.eventprop_to_graph(_small(), 1e-3)
    nodes = dict(graph.nodes)
    one = np.ones(2)
    nodes["out"] = nir.LI(tau=0.01 * one, r=10 * one, v_leak=0 * one)
    with pytest.raises(ModelError, match=r"NIR node 'out' of type LI: no synaptic current: graph_to_spec imports it"):
        nir_io.graph_to_eventprop(nir.NIRGraph(nodes=nodes, edges=graph.edges, metadata=graph.metadata))
    # the e-prop import names the EventProp one for a CubaLI readout
    with pytest.raises(ModelError, match=r"NIR node 'out' of type CubaLI: .*graph_to_eventprop"):
        nir_io.graph_to_spec(graph)
    meta = {k: v for k, v in graph.metadata.items() if k != "trial_duration"}
    with pytest.raises(SpecError, match="no metadata 'trial_duration'"):
        nir_io.graph_to_eventprop(nir.NIRGraph(nodes=graph.nodes, edges=graph.edges, metadata=meta))
    assert nir_io.graph_to_eventprop(nir.NIRGraph(nodes=graph.nodes, edges=graph.edges, metadata=meta), T=25.0)

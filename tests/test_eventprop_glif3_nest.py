"""EventProp GLIF3 in NEST (issue 22, item 1): ``eventprop_glif3_psc_ps`` reproduces the reference engine's GLIF3
neuron (python/nestgrad/reference/eventprop/glif3_engine.py, docs/eventprop_glif3.md).

(a) Forward pass: on small random networks of the reference tests (8 inputs on receptor ports 1 and 3, 10 GLIF3
    neurons with after-spike currents and refractoriness, recurrent connections on port 2, 3 leaky readouts), every
    trial of a batch (all in one ``Simulate``) gives the reference's spikes: the same number per neuron, times equal
    to 1e-9 ms, the per-spike derivatives the adjoint needs to 1e-9 relative; readouts the same (t, v, I) after each
    arrival. 1 and 2 threads.
(b) Backward pass: the per-synapse weight gradients (``eventprop_synapse``'s ``gradient``: lambda_x e / tau_r of the
    target's port at each arrival, the adjoint carried back over ``eventprop_reverse_synapse``) equal the reference's
    ``evaluate(...).grad_weights``, feedforward and recurrent, ``ReadoutCrossEntropy`` on the mean, the maximum and
    the exponentially weighted mean voltage (also over a response window), ``FirstSpikeLoss`` on GLIF3 outputs, with
    and without a ``SpikeCountRegulariser`` on the GLIF3 neurons;
    the rule of tests/test_eventprop_nest_gradients.py (1e-9 relative, gradients below 1e-3 of the largest held to
    1e-9 of it). Training with Adam equals the reference's, and both copies of every edge stay equal bit for bit.
(c) Bad parameters and connections are refused with messages that name them.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from test_eventprop_glif3_reference import G3, make_net
from test_eventprop_nest_forward import compare, on_grid
from test_eventprop_nest_gradients import OPTIMIZERS, max_rel_err, reference_training

from nestgrad.errors import ConfigError
from nestgrad.nest_engine.eventprop import run_gradients
from nestgrad.reference.eventprop import (
    FirstSpikeLoss,
    Network,
    Projection,
    ReadoutCrossEntropy,
    SpikeCountRegulariser,
    Trial,
    compile_network,
    evaluate,
    simulate_glif3,
)
from nestgrad.reference.eventprop.neurons.glif3 import GLIF3_DEFAULTS

TIME_TOL = 1e-9  # ms
RTOL = 1e-9
MODEL = "eventprop_glif3_psc_ps"

# hidden-layer variants (overrides of the reference tests' G3 parameters)
CASES = {
    "feedforward": ("feedforward", {}),
    "recurrent": ("recurrent", {}),
    # glif_psc's after-spike currents and refractory period
    "recurrent_glif_psc_ascs": (
        "recurrent",
        {"asc_decay": [0.003, 0.1], "asc_amps": [-9.18, -198.94], "asc_r": [1.0, 1.0], "t_ref": 3.75},
    ),
    "recurrent_t_ref_0_I_e": ("recurrent", {"t_ref": 0.0, "I_e": 30.0}),
    "recurrent_equal_time_constants": ("recurrent", {"tau_syn": [6.0, 6.0, 6.0, 6.0], "g": 10.0, "C_m": 60.0}),
    # slow currents: crossings come long after the arrival that caused them, beyond the model's 1-ms look-ahead, so
    # the forward pass finds them by extending its search step by step (searches_lazily_)
    "recurrent_slow_ports": ("recurrent", {"tau_syn": [15.0, 25.0, 15.0, 25.0]}),
}


def glif3_net(kind: str, seed: int, n_trials: int = 3, **over) -> tuple[Network, list[Trial]]:
    """The reference tests' random GLIF3 network with delays on the 0.1 ms grid, and ``n_trials`` trials with
    different inputs (3-5 spikes per input in [0, 25) ms) and labels 0, 1, 2, ..."""
    net, _ = make_net(kind, seed, "li", **over)
    rng = np.random.default_rng(100 + seed)
    n_in = net.populations[0].size
    trials = [
        Trial({"in": [np.sort(rng.uniform(0.0, 25.0, rng.integers(3, 6))) for _ in range(n_in)]}, label=k % 3)
        for k in range(n_trials)
    ]
    return on_grid(net), trials


# ---------------------------------------------------------------------------------------------------------------
# (a) forward pass


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("case", sorted(CASES))
def test_glif3_nest_forward_equals_reference(case: str, threads: int) -> None:
    kind, over = CASES[case]
    total, refr = 0, 0
    for seed in (1, 2):
        net, trials = glif3_net(kind, seed, **over)
        n_spikes, max_err, n_refr = compare(
            net, trials, threads, spiking="glif3", reference=simulate_glif3, time_tol=TIME_TOL, readout_tol=1e-9
        )
        total += n_spikes
        refr += n_refr
        print(f"{case} seed {seed} threads {threads}: {n_spikes} spikes, max spike-time error {max_err:.2e} ms")
    assert total >= 50, f"{case}: only {total} spikes, the comparison would say little"
    if over.get("t_ref", G3["t_ref"]) > 0.0:
        assert refr >= 5, f"{case}: only {refr} arrivals during refractoriness"


@pytest.mark.parametrize("threads", [1, 2])
def test_glif3_nest_many_arrivals_in_one_step_equal_reference(threads: int) -> None:
    """Every input spikes four times within one 0.1-ms step, at the same times as the others, over equal delays: a
    hidden neuron gets up to 64 arrivals in that step (beyond 32 the inbox orders them with std::stable_sort, below
    with an insertion sort), many of them at equal times, whose order must not matter. Forward pass and gradients
    equal the reference's."""
    net, _ = glif3_net("recurrent", 3)
    same_delay = {"in_hid1", "in_hid3"}  # all input edges: 1 ms, so that a burst arrives in one step
    net = dataclasses.replace(
        net,
        projections=tuple(dataclasses.replace(q, delays=1.0) if q.name in same_delay else q for q in net.projections),
    )
    burst = np.array([5.01, 5.03, 5.05, 5.07, 12.02, 12.03, 12.08, 20.05])
    into = np.zeros(net.populations[1].size, int)  # input edges per hidden neuron: x 4 arrivals in the step of 5 ms
    for q in net.projections:
        if q.name in same_delay:
            np.add.at(into, q.targets, 1)
    assert 4 * into.max() > 32, into
    trials = [Trial({"in": [burst.copy() for _ in range(8)]}, label=k % 3) for k in range(2)]
    n_spikes, max_err, _ = compare(
        net, trials, threads, spiking="glif3", reference=simulate_glif3, time_tol=TIME_TOL, readout_tol=1e-9
    )
    assert n_spikes >= 10, f"only {n_spikes} spikes"
    check_gradients(net, trials, ReadoutCrossEntropy("out", mode="sum"), threads, "bursts")


# ---------------------------------------------------------------------------------------------------------------
# (b) backward pass


def check_gradients(net: Network, trials: list[Trial], loss, threads: int, label: str) -> dict[str, np.ndarray]:
    losses = loss if isinstance(loss, tuple) else (loss,)
    ref = evaluate(net, trials, losses[0], regularisers=losses[1:])
    got = run_gradients(net, trials, loss, threads=threads)
    assert got.losses.mean() == pytest.approx(ref.loss, rel=1e-12)
    n_spikes = sum(len(r.spike_t) for r in ref.records)
    assert n_spikes >= 30, f"{label}: only {n_spikes} hidden spikes"
    errs = max_rel_err(ref.grad_weights, got.grad_weights)
    print(f"{label} threads {threads}: {n_spikes} spikes, max_rel_err {errs}")
    for name, err in errs.items():
        assert err <= RTOL, f"{label} projection {name}: max relative error {err:.3e}"
    return ref.grad_weights


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("mode", ["sum", "max", "sum_exp"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_glif3_nest_gradients_equal_reference(case: str, mode: str, threads: int) -> None:
    loss = ReadoutCrossEntropy("out", mode=mode, tau_w=15.0 if mode == "sum_exp" else None)
    kind, over = CASES[case]
    nonzero: dict[str, int] = {}
    total: dict[str, int] = {}
    for seed in (1, 2):
        net, trials = glif3_net(kind, seed, **over)
        grads = check_gradients(net, trials, loss, threads, f"{case} {mode} seed {seed}")
        for name, r in grads.items():
            nonzero[name] = nonzero.get(name, 0) + int(np.count_nonzero(r))
            total[name] = total.get(name, 0) + len(r)
    for name, n in nonzero.items():
        assert n >= total[name] // 4, f"{case}: only {n} of {total[name]} gradients of {name} nonzero"


@pytest.mark.parametrize("threads", [1, 2])
def test_glif3_nest_gradients_with_spike_count_regulariser(threads: int) -> None:
    """Cross-entropy on the maximum plus the spike-count regulariser on the GLIF3 layer (dL/dt_k of every spike
    enters B at the spike): equal to the reference's ``evaluate(..., regularisers=...)``."""
    reg = SpikeCountRegulariser(("hid",), 0.1, 1.0)
    for seed in (1, 2):
        net, trials = glif3_net("recurrent", seed)
        check_gradients(net, trials, (ReadoutCrossEntropy("out", mode="max"), reg), threads, f"regularised {seed}")
        grads = check_gradients(net, trials, (ReadoutCrossEntropy("out", mode="sum"), reg), threads, f"sum+reg {seed}")
        assert np.count_nonzero(grads["rec"]) > 0


@pytest.mark.parametrize("threads", [1, 2])
def test_glif3_nest_training_equals_reference(threads: int) -> None:
    """Adam, 3 batches of 2 trials on a recurrent GLIF3 network: NEST's weights (the step applied in the synapses)
    equal the reference gradients + the same optimizer in NumPy to 1e-9 relative; the reverse copy of every edge
    from a GLIF3 neuron has the same weight and gradient sum as its forward connection, bit for bit (its mirror of
    the target's alpha port computes the same doubles as the target)."""
    from nestgrad.nest_engine.eventprop import run_training

    loss = ReadoutCrossEntropy("out", mode="sum")
    net, trials = glif3_net("recurrent", 2, n_trials=6)
    # Adam's steps are ~eta whatever the gradient's scale: 0.5 pA moves the ~100 pA input weights and the ~0.03 pA
    # readout weights alike; bounds wide enough to hold every weight
    opt = dict(OPTIMIZERS["adam"], eta=0.5, Wmin=-1000.0, Wmax=1000.0, batch_size=2)
    want = reference_training(net, trials, loss, opt)
    got = run_training(net, trials, loss, opt, threads=threads)
    for name, w in want.items():
        w0 = np.asarray(net.projection(name).weights, float)
        assert np.max(np.abs(w - w0)) > 1e-3, f"{name}: the weights hardly moved"
        err = np.abs(got.weights[name] - w) / np.maximum(np.abs(w), 1e-3 * np.max(np.abs(w)))
        print(f"threads {threads} {name}: max rel err {np.max(err):.2e}")
        assert np.max(err) <= RTOL, name
        has_rev = ~np.isnan(got.reverse_weights[name])
        assert np.all(has_rev) == (name in ("rec", "hid_out")), name
        np.testing.assert_array_equal(got.reverse_weights[name][has_rev], got.weights[name][has_rev])
        np.testing.assert_array_equal(got.reverse_gradient_sum[name][has_rev], got.gradient_sum[name][has_rev])


@pytest.mark.parametrize("mode", ["sum", "max", "sum_exp"])
def test_glif3_nest_window_gradients_equal_reference(mode: str) -> None:
    """The cross-entropy over a response window [15, 40] ms: equal to the reference's
    ``ReadoutCrossEntropy(..., window_start=15)`` per synapse, and different from the whole-trial gradients."""
    loss = ReadoutCrossEntropy("out", mode=mode, tau_w=15.0 if mode == "sum_exp" else None, window_start=15.0)
    whole = ReadoutCrossEntropy("out", mode=mode, tau_w=15.0 if mode == "sum_exp" else None)
    net, trials = glif3_net("recurrent", 1)
    grads = check_gradients(net, trials, loss, 1, f"window {mode}")
    ref_whole = evaluate(net, trials, whole).grad_weights
    assert any(not np.allclose(ref_whole[k], g) for k, g in grads.items())


def first_spike_net(kind: str, seed: int) -> tuple[Network, list[Trial]]:
    """The reference tests' network with GLIF3 outputs (tau_syn 5 ms, hid -> out on port 1); ``recurrent_outputs``:
    recurrent hidden layer and connections between the outputs on port 1 (their forward connections deliver the
    first-spike messages of step n_T on port 1, the exchange connections on port 0)."""
    net, _ = make_net("recurrent" if kind == "recurrent_outputs" else kind, seed, "glif3")
    if kind == "recurrent_outputs":
        rng = np.random.default_rng(seed)
        src, tgt = np.array([0, 1, 2, 0]), np.array([1, 2, 0, 2])
        proj = Projection("out_out", "out", "out", src, tgt, rng.normal(0.0, 60.0, 4), 1.0, receptor=1)
        net = dataclasses.replace(net, projections=(*net.projections, proj))
    rng = np.random.default_rng(100 + seed)
    n_in = net.populations[0].size
    trials = [
        Trial({"in": [np.sort(rng.uniform(0.0, 25.0, rng.integers(3, 6))) for _ in range(n_in)]}, label=k % 3)
        for k in range(3)
    ]
    return on_grid(net), trials


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("kind", ["feedforward", "recurrent", "recurrent_outputs"])
def test_glif3_nest_first_spike_gradients_equal_reference(kind: str, threads: int) -> None:
    """FirstSpikeLoss on GLIF3 outputs (tau_s = 5 ms), alone and with the spike-count regulariser on the hidden
    layer: the outputs' first spike times and the gradients equal the reference's."""
    loss = FirstSpikeLoss("out", tau_s=5.0)
    reg = SpikeCountRegulariser(("hid",), 0.1, 1.0)
    for seed in (1, 2):
        net, trials = first_spike_net(kind, seed)
        for losses in (loss, (loss, reg)):
            check_gradients(net, trials, losses, threads, f"first-spike {kind} seed {seed}")
        ref = evaluate(net, trials, loss)
        got = run_gradients(net, trials, loss, threads=threads)
        np.testing.assert_allclose(got.outputs, ref.outputs, rtol=0, atol=TIME_TOL)


def test_glif3_nest_first_spike_loss_needs_tau_s() -> None:
    net, trials = first_spike_net("feedforward", 1)
    with pytest.raises(ConfigError, match="first-spike loss on glif3 population 'out': pass tau_s"):
        run_gradients(net, trials, FirstSpikeLoss("out"))
    from nestgrad.nest_engine import fresh_kernel

    nest = fresh_kernel(0.1, 1)
    node = nest.Create(MODEL)
    with pytest.raises(nest.NESTError, match="output_index = 0 .* needs first_spike_tau_s"):
        node.set({"output_index": 0, "labels": [0]})
    node.set({"output_index": 0, "labels": [0], "first_spike_tau_s": 5.0})


# ---------------------------------------------------------------------------------------------------------------
# (c) parameters and connections


def test_glif3_nest_defaults_are_glif_psc_defaults() -> None:
    from nestgrad.nest_engine import fresh_kernel

    nest = fresh_kernel(0.1, 1)
    st = nest.GetDefaults(MODEL)
    for key, value in GLIF3_DEFAULTS.items():
        assert st[key] == pytest.approx(value if not isinstance(value, tuple) else list(value), rel=1e-15), key
    assert st["V_m"] == st["E_L"]
    assert st["tau_m"] == pytest.approx(58.72 / 9.43, rel=1e-15)


@pytest.mark.parametrize(
    ("status", "message"),
    [
        ({"C_m": 0.0}, "C_m = 0.000000 pF must be finite and > 0"),
        ({"g": -1.0}, "g = -1.000000 nS must be finite and > 0"),
        ({"t_ref": -1.0}, "t_ref = -1.000000 ms must be finite and >= 0"),
        ({"V_reset": -50.0}, "V_reset = -50.000000 mV must be < V_th = -51.680000 mV"),
        ({"I_e": math.nan}, "I_e = nan pA must be finite"),
        ({"tau_syn": [2.0, -1.0]}, "tau_syn = [2, -1] ms: every entry must be > 0"),
        ({"asc_decay": [0.1, 0.0]}, "asc_decay = [0.1, 0] 1/ms: every entry must be > 0"),
        ({"asc_amps": [1.0, 2.0, 3.0]}, "asc_amps = [1, 2, 3] has 3 entries but asc_decay = [0.003, 0.1] has 2"),
        ({"asc_init": [0.0, math.inf]}, "asc_init = [0, inf] must be finite"),
        ({"spike_count_rho": -0.5}, "spike_count_rho = -0.500000 must be >= 0"),
        ({"trial_duration": 0.0}, "trial_duration = 0.000000 ms: must be finite and > 0"),
    ],
)
def test_glif3_nest_bad_parameters_are_refused(status: dict, message: str) -> None:
    from nestgrad.nest_engine import fresh_kernel

    nest = fresh_kernel(0.1, 1)
    node = nest.Create(MODEL)
    keys = ["C_m", "g", "t_ref", "V_reset", "tau_syn", "asc_decay", "asc_amps", "asc_init", "spike_count_rho"]
    before = {k: np.atleast_1d(v).tolist() for k, v in node.get(keys).items()}
    with pytest.raises(nest.NESTError) as err:
        node.set(status)
    assert message in str(err.value)
    assert {k: np.atleast_1d(v).tolist() for k, v in node.get(keys).items()} == before  # nothing changed


def test_glif3_nest_ports_are_checked() -> None:
    """Forward connections need a port 1..len(tau_syn); the ports cannot shrink below the connected ones; a reverse
    connection's forward_receptor must be in [0, 10^6]."""
    from nestgrad.nest_engine import fresh_kernel

    nest = fresh_kernel(0.1, 1)
    src = nest.Create("eventprop_input_ps")
    node = nest.Create(MODEL, params={"tau_syn": [2.0, 5.0, 3.0]})
    with pytest.raises(
        nest.NESTError, match="receptor_type 0 is not a receptor port; forward connections use ports 1..3"
    ):
        nest.Connect(src, node, syn_spec={"synapse_model": "eventprop_synapse", "receptor_type": 0})
    with pytest.raises(nest.NESTError, match="receptor"):
        nest.Connect(src, node, syn_spec={"synapse_model": "eventprop_synapse", "receptor_type": 4})
    nest.Connect(src, node, syn_spec={"synapse_model": "eventprop_synapse", "receptor_type": 3})
    with pytest.raises(nest.NESTError, match=r"tau_syn = \[2\]: the neuron has connections on 3 ports"):
        node.set({"tau_syn": [2.0]})
    node.set({"tau_syn": [2.0, 5.0, 3.0, 4.0]})
    other = nest.Create(MODEL)
    with pytest.raises(nest.NESTError, match=r"forward_receptor = -1 must be in \[0, 1000000\]"):
        nest.Connect(other, node, syn_spec={"synapse_model": "eventprop_reverse_synapse", "forward_receptor": -1})


# ---------------------------------------------------------------------------------------------------------------
# (d) MPI


MPI_SCRIPT = r"""
import json
import numpy as np
from test_eventprop_glif3_nest import first_spike_net, glif3_net
from nestgrad.nest_engine.eventprop import build
from nestgrad.reference.eventprop import FirstSpikeLoss, ReadoutCrossEntropy

if "{loss}" == "first_spike":
    net, trials = first_spike_net("recurrent_outputs", {seed})
    loss = FirstSpikeLoss("out", tau_s=5.0)
else:
    net, trials = glif3_net("recurrent", {seed})
    loss = ReadoutCrossEntropy("out", mode="{loss}")
built = build(net, trials, threads={threads}, loss=loss)
nest = built.nest
nest.Simulate(built.layout.sim_time)
conns = nest.GetConnections(synapse_model="eventprop_synapse")
st = {{}}
if len(conns):
    st = {{k: np.atleast_1d(v).tolist() for k, v in conns.get(["source", "target", "receptor", "gradient"]).items()}}
with open(f"{outdir}/rank_{{nest.Rank()}}.json", "w") as fh:
    json.dump(st, fh)
"""


def run_mpi(ranks: int, threads: int, seed: int, loss: str, outdir) -> dict[tuple[int, int, int], list[float]]:
    """Gradients per (source, target, receptor) of every eventprop_synapse, merged over the ranks' files."""
    import json
    import subprocess

    from test_eventprop_nest_mpi import ENV, MPI_PYTHON, REPO

    code = MPI_SCRIPT.format(seed=seed, threads=threads, outdir=str(outdir), loss=loss)
    cmd = ["mpirun", "-np", str(ranks), "--oversubscribe", "--bind-to", "none", str(MPI_PYTHON), "-c", code]
    if ranks == 1:
        cmd = [str(MPI_PYTHON), "-c", code]
    res = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"mpirun failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    out: dict[tuple[int, int, int], list[float]] = {}
    files = sorted(outdir.glob("rank_*.json"))
    assert len(files) == ranks
    for path in files:
        st = json.loads(path.read_text())
        cols = [st.get(k, []) for k in ("source", "target", "receptor", "gradient")]
        for s, t, r, g in zip(*cols, strict=True):
            out.setdefault((int(s), int(t), int(r)), []).append(float(g))
    return out


def _mpi_available() -> bool:
    import os

    from test_eventprop_nest_mpi import MPI_PYTHON

    return MPI_PYTHON.exists() and os.environ.get("NESTGRAD_SKIP_MPI") != "1"


@pytest.mark.skipif(not _mpi_available(), reason="needs NEST with MPI (make mpi) and nestgradmodule built against it")
@pytest.mark.parametrize("loss_name", ["sum", "first_spike"])
def test_glif3_nest_gradients_two_ranks(loss_name: str, tmp_path) -> None:
    """2 MPI ranks: the gradients equal the reference's to 1e-9 relative (reverse connections, accumulator pushes and
    the first-spike exchange cross ranks) and are bit-identical to 1 rank x 2 threads."""
    if loss_name == "first_spike":
        net, trials = first_spike_net("recurrent_outputs", 1)
        loss = FirstSpikeLoss("out", tau_s=5.0)
    else:
        net, trials = glif3_net("recurrent", 1)
        loss = ReadoutCrossEntropy("out", mode=loss_name)
    ref = evaluate(net, trials, loss)
    cnet = compile_network(net)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    two_ranks = run_mpi(2, 1, 1, loss_name, tmp_path / "a")
    two_threads = run_mpi(1, 2, 1, loss_name, tmp_path / "b")
    assert two_ranks.keys() == two_threads.keys()
    for key, grads in two_ranks.items():
        assert sorted(grads) == sorted(two_threads[key]), key
    ids = np.arange(1, cnet.n + 1)  # node ids in creation order (the builder creates one node per neuron)
    is_glif3 = np.array([k == "glif3" for k in cnet.kind], bool)
    got = np.array(
        [
            two_ranks[(int(ids[s]), int(ids[t]), int(cnet.port[e]) + 1 if is_glif3[t] else 0)].pop(0)
            for e, (s, t) in enumerate(zip(cnet.src, cnet.tgt, strict=True))
        ]
    ) / len(trials)
    errs = max_rel_err(ref.grad_weights, {name: got[sl] for name, sl in cnet.proj_slices.items()})
    print(f"{loss_name}, 2 ranks: max_rel_err {errs}")
    for name, err in errs.items():
        assert err <= RTOL, f"projection {name}: max relative error {err:.3e}"

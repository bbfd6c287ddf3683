"""EventProp in NEST, forward pass (issue 20, milestone 2): nestgrad's EventProp models in NEST reproduce the
reference engine's exact event-driven simulation (python/nestgrad/reference/eventprop/simulate.py).

On small random networks (feedforward, two hidden layers, recurrent, refractory, adaptive, equal time constants,
constant input current), every trial of a batch (all trials in one ``Simulate``) must give the same spikes as
``simulate()``: the same number per neuron, times equal to 1e-12 ms, and the per-spike derivatives the adjoint
needs (dg/dt before, dv/dt after, dv/dt at the release) to 1e-9 relative; readouts the same (t, v, I) after each
arrival. With 1 and 2 threads. Delays are rounded to the 0.1 ms grid (NEST's delays are whole steps).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from test_eventprop_reference import make_net, make_trials

from nestgrad.errors import ConfigError
from nestgrad.nest_engine.eventprop import run_forward
from nestgrad.reference.eventprop import Network, Population, Projection, Trial, compile_network, simulate
from nestgrad.reference.eventprop.neurons.dynamics import propagate

TIME_TOL = 1e-12  # ms
REL_TOL = 1e-9

CASES = {
    "feedforward": ("ff", {}),
    "two_layer": ("two_layer", {}),
    "recurrent": ("recurrent", {}),
    "refractory": ("recurrent", {"t_ref": 1.5}),
    "refractory_short": ("ff", {"t_ref": 0.05}),  # t_ref < h: release inside the spike's step
    "alif": ("recurrent", {"t_ref": 0.7, "adapt_beta": 0.3, "adapt_tau": 20.0}),
    "alif_equal_taus": ("ff", {"tau_syn": 10.0, "adapt_beta": 0.2, "adapt_tau": 10.0}),
    "equal_taus_bias": ("recurrent", {"tau_syn": 10.0, "I_e": 0.05}),
}


def on_grid(net: Network, h: float = 0.1) -> Network:
    """The same network with every delay rounded to the grid (at least one step)."""
    return dataclasses.replace(
        net,
        projections=tuple(
            dataclasses.replace(p, delays=np.maximum(np.round(np.asarray(p.delays, float) / h), 1) * h)
            for p in net.projections
        ),
    )


def compare(
    net: Network,
    trials: list[Trial],
    threads: int,
    *,
    spiking: str = "lif",
    reference: Callable[..., Any] = simulate,
    time_tol: float = TIME_TOL,
    readout_tol: float = 1e-12,
) -> tuple[int, float, int]:
    """Assert NEST == reference (``reference(cnet, trial)``, the engine of the ``spiking`` kind) for every trial:
    spike times to ``time_tol`` ms, their derivatives to REL_TOL, readout (t, v, I) after each arrival (v, I to
    ``readout_tol`` of their scale). Return (spikes, max spike-time error in ms, arrivals during refractoriness)."""
    cnet = compile_network(net)
    fw = run_forward(cnet, trials, threads=threads)
    n_spikes, max_err, n_refr_arrivals = 0, 0.0, 0
    for k, trial in enumerate(trials):
        rec = reference(cnet, trial)
        for j, kind in enumerate(cnet.kind):
            if kind == spiking:
                ids = rec.spikes_of[j]
                ref_t = np.array([rec.spike_t[s] for s in ids])
                got_t = fw.spike_times[k][j]
                assert got_t.shape == ref_t.shape, f"trial {k} neuron {j}: NEST {got_t} vs reference {ref_t}"
                if len(ids):
                    err = float(np.max(np.abs(got_t - ref_t)))
                    assert err <= time_tol, f"trial {k} neuron {j}: spike times differ by {err} ms"
                    max_err = max(max_err, err)
                    ref_d = np.array(
                        [
                            [rec.spike_gdot[s] for s in ids],
                            [rec.spike_vdot_plus[s] for s in ids],
                            [rec.release_vdot[s] if not math.isnan(rec.release_t[s]) else np.nan for s in ids],
                        ]
                    )
                    np.testing.assert_allclose(fw.spike_derivs[k][j], ref_d, rtol=REL_TOL, atol=1e-12)
                    for s in ids:
                        t0, t1 = rec.spike_t[s], rec.release_t[s]
                        n_refr_arrivals += sum(
                            1 for t, e in zip(rec.arr_t, rec.arr_e, strict=True) if cnet.tgt[e] == j and t0 < t < t1
                        )
                n_spikes += len(ids)
            elif kind == "li":
                ref = np.array([rec.seg_t[j][1:], rec.seg_v[j][1:], rec.seg_i[j][1:]])
                got = fw.readout_segments[k][j]
                assert got.shape == ref.shape, f"trial {k} readout {j}: {got.shape[1]} vs {ref.shape[1]} arrivals"
                np.testing.assert_allclose(got[0], ref[0], rtol=0, atol=time_tol)
                scale = max(1.0, float(np.max(np.abs(ref[1:]), initial=0.0)))
                np.testing.assert_allclose(got[1:], ref[1:], rtol=0, atol=readout_tol * scale)
    return n_spikes, max_err, n_refr_arrivals


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("case", sorted(CASES))
def test_eventprop_nest_forward_equals_reference(case: str, threads: int) -> None:
    kind, over = CASES[case]
    total = 0
    for seed in (1, 2):
        net = on_grid(make_net(kind, seed, **over))
        trials = make_trials(seed, n_trials=3)
        n_spikes, max_err, _ = compare(net, trials, threads)
        total += n_spikes
        print(f"{case} seed {seed} threads {threads}: {n_spikes} spikes, max spike-time error {max_err:.2e} ms")
    assert total >= 20, f"{case}: only {total} spikes, the comparison would say little"


def test_eventprop_nest_forward_sub_step_excursion() -> None:
    """A threshold excursion that starts and ends inside one step (h = 1 ms) is a spike, as in the reference; the
    voltage at the end of the step is below threshold again (an end-of-step test would miss it)."""
    h = 1.0
    lif = dict(C_m=1.0, tau_m=1.0, tau_syn=0.5, E_L=0.0, V_th=1.0, V_reset=0.0, t_ref=0.0)
    w = 4.0 * 1.0005  # peak of w kern(u; 1, 0.5) / C_m is w / 4: just above threshold
    net = Network(
        (Population("in", 1, "input"), Population("hid", 1, "lif", lif)),
        (Projection("in_hid", "in", "hid", np.array([0]), np.array([0]), np.array([w]), 1.0),),
        T=10.0,
    )
    trial = Trial({"in": [[2.1]]})
    cnet = compile_network(net)
    rec = simulate(cnet, trial)
    assert len(rec.spike_t) == 1
    t_spike = rec.spike_t[0]
    # the voltage without the spike at the end of NEST's step containing the crossing is below threshold
    step_end = math.ceil(t_spike / h) * h
    v_end, _, _ = propagate(0.0, w, 0.0, step_end - 3.1, cnet.params[1], False)
    assert v_end < 1.0, "the test case must return below threshold within the step"
    fw = run_forward(cnet, [trial], resolution=h)
    np.testing.assert_allclose(fw.spike_times[0][1], [t_spike], rtol=0, atol=TIME_TOL)


def test_eventprop_nest_forward_rejects_off_grid_delay() -> None:
    net = make_net("ff", 1)  # uniform random delays, not on the 0.1 ms grid
    with pytest.raises(ConfigError, match=r"projection 'in_hid': delay of edge 0 = .* multiple of the resolution"):
        run_forward(net, make_trials(1))


def test_eventprop_nest_models_refuse_bad_input() -> None:
    """Bad parameters and targets that would misread EventProp's events are refused with the value named."""
    from nestgrad.nest_engine import fresh_kernel

    nest = fresh_kernel(0.1)
    n = nest.Create("eventprop_iaf_psc_exp_ps")
    with pytest.raises(Exception, match=r"V_reset = -50.* must be < V_th"):
        n.set({"V_reset": -50.0})
    with pytest.raises(Exception, match=r"tau_syn = -1.* must be finite and > 0"):
        n.set({"tau_syn": -1.0})
    with pytest.raises(Exception, match=r"trial_period = 5.* must be >= trial_duration"):
        n.set({"trial_duration": 10.0, "trial_period": 5.0})
    n.set({"trial_duration": 10.0, "trial_period": 20.0, "backward": True, "delay_bound": 2.0})
    with pytest.raises(Exception, match=r"with backward = true, trial_period = 20.* must be at least 26.6"):
        nest.Simulate(1.0)  # the layout is checked when the run starts (it needs the resolution)
    n.set({"backward": False})
    inp = nest.Create("eventprop_input_ps", params={"trial_duration": 10.0, "trial_period": 20.0})
    with pytest.raises(Exception, match=r"spike_times\[1\] = 12.* must lie in \[0, trial_duration"):
        inp.set({"spike_times": [1.0, 12.0]})
    nest_neuron = nest.Create("iaf_psc_exp_ps")
    with pytest.raises(Exception, match="eventprop_synapse cannot connect to iaf_psc_exp_ps"):
        nest.Connect(inp, nest_neuron, syn_spec={"synapse_model": "eventprop_synapse"})
    readout = nest.Create("eventprop_readout_ps")
    with pytest.raises(Exception, match="eventprop_reverse_synapse cannot connect to eventprop_readout_ps"):
        nest.Connect(n, readout, syn_spec={"synapse_model": "eventprop_reverse_synapse"})
    with pytest.raises(Exception, match="eventprop_input_ps receives no spikes"):
        nest.Connect(n, inp, syn_spec={"synapse_model": "eventprop_synapse"})

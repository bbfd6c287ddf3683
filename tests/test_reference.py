"""The reference engine: NEST's per-synapse e-prop updates reproduced, e-prop vs BPTT, BPTT vs finite differences.

Tolerances (documented in docs/reference_engine.md):
* NEST vs reference, weight updates after 5 iterations with learning on: max_rel_err <= 1e-6 per projection
  (measured: 1e-12 or better; the difference is summation order);
* losses per iteration: <= 1e-8 relative;
* e-prop == BPTT (e-prop conventions) where theory says so: <= 1e-10 relative to the largest gradient;
* BPTT ("full", smooth mode) vs central finite differences (h = 1e-6): <= 1e-5 relative.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from gradient_check import assert_matches_finite_differences

from nestgrad.cli import _COMPARE_ETA as ETA  # the psc_delta models learn with smaller rates
from nestgrad.comparison.compare import compare
from nestgrad.comparison.nest_runs import spec_from_config
from nestgrad.config import ExperimentConfig, NetworkConfig, OptimizerConfig, TaskConfig
from nestgrad.reference.bptt import bptt_gradient, forward
from nestgrad.reference.neurons import RECURRENT_MODELS
from nestgrad.reference.online import run_online
from nestgrad.reference.spec import NetworkSpec, SpecError

MODELS = sorted(RECURRENT_MODELS)
# GLIF3's BPTT (bptt_glif3) has no smooth mode: its refractory period is part of the model. Its BPTT is checked
# against e-prop in the theory case instead (tests/test_glif3_eprop.py).
SMOOTH_MODELS = [m for m in MODELS if m != "eprop_glif3_psc"]


def small_spec(model: str, task: str, optimizer: str = "gradient_descent", iterations: int = 5) -> NetworkSpec:
    eta = ETA.get(model, 1e-5) * (0.1 if optimizer == "adam" else 1.0)
    cfg = ExperimentConfig(
        network=NetworkConfig(neuron_model=model, n_rec=30),
        task=TaskConfig(name=task, sequence_steps=300, n_cues=3, cue_steps=60, delay_steps=100, recall_steps=80),
        optimizer=OptimizerConfig(type=optimizer, eta=eta),
    )
    return spec_from_config(cfg, iterations)


@pytest.mark.parametrize("task", ["sine", "evidence"])
@pytest.mark.parametrize("model", MODELS)
def test_nest_updates_equal_reference(model, task, tmp_path):
    result = compare(small_spec(model, task), tmp_path, plots=False)
    assert result["iterations"] >= 5
    for name, r in result["projections"].items():
        assert r["max_abs_update"] > 0, f"{name}: no learning happened, the comparison would be empty"
        assert r["max_rel_err"] <= 1e-6, (name, r)
    assert result["loss_max_rel_err"] <= 1e-8
    assert len(set(result["loss_nest"])) > 1  # learning changed the loss
    saved = json.loads((tmp_path / "compare.json").read_text())
    for key in ("max_rel_err", "mean_rel_err", "cosine_bptt", "norm_ratio_bptt"):
        assert key in saved["projections"]["in_rec"]


def test_nest_updates_equal_reference_with_adam_and_two_threads(tmp_path):
    result = compare(small_spec("eprop_iaf_psc_exp", "sine", optimizer="adam"), tmp_path, threads=2, plots=True)
    for r in result["projections"].values():
        assert r["max_abs_update"] > 0 and r["max_rel_err"] <= 1e-6
    assert (tmp_path / "compare_updates.png").exists() and (tmp_path / "compare_bptt.png").exists()


def test_nest_updates_equal_reference_with_batches_bounds_and_short_cutoff(tmp_path):
    """Optimizer batches of 150 steps, weight bounds that clip, and a 10 ms gradient window."""
    cfg = ExperimentConfig(
        network=NetworkConfig(
            neuron_model="eprop_iaf_psc_exp", n_rec=30, neuron_params={"eprop_isi_trace_cutoff": 10.0}
        ),
        task=TaskConfig(name="sine", sequence_steps=300),
        optimizer=OptimizerConfig(eta=5e-3, batch_size=150, Wmin=-0.016, Wmax=0.016),
    )
    spec = spec_from_config(cfg, 5)
    spec = spec.replace(weights={k: np.clip(w, -0.015, 0.015) for k, w in spec.weights.items()})
    result = compare(spec, tmp_path, plots=False)
    for r in result["projections"].values():
        assert r["max_abs_update"] > 0 and r["max_rel_err"] <= 1e-6
    from nestgrad.reference.online import run_online as replay

    final = replay(spec).weights
    at_bound = sum(int(np.sum(np.isclose(np.abs(final[p]), 0.016))) for p in ("in_rec", "rec_rec", "rec_out"))
    assert at_bound > 0, "no weight reached the bounds: the test would not exercise clipping"


# -- e-prop vs BPTT without NEST -------------------------------------------------------------------------------------
def synthetic_spec(
    model: str,
    recurrent: bool,
    symmetric_feedback: bool = True,
    t_ref: float = 0.0,
    surrogate: str = "piecewise_linear",
    seed: int = 3,
) -> NetworkSpec:
    rng = np.random.default_rng(seed)
    n_in, n_rec, n_out, steps = 20, 15, 2, 300
    tau_out = 30.0
    params = dict(
        C_m=3.0 if model.startswith("eprop_iaf_psc_exp") else 1.0,
        E_L=0.0,
        I_e=0.0,
        V_m=0.0,
        tau_m=20.0,
        t_ref=t_ref,
        c_reg=0.3,
        f_target=10.0,
        kappa=math.exp(-1.0 / tau_out),
        kappa_reg=0.97,
        surrogate_gradient_function=surrogate,
        surrogate_gradient_height=0.3,
        surrogate_gradient_width=0.5,
        eprop_isi_trace_cutoff=math.inf,
        V_th=0.6,
        V_min=-1e300,
        V_reset=0.0,
        tau_syn_ex=3.0,
        tau_syn_in=6.0,
        tau_syn=4.0,
        adapt_beta=0.2,
        adapt_tau=200.0,
        asc_amp=-0.05,
        asc_tau=100.0,
    )
    readout = dict(C_m=1.0, E_L=0.0, I_e=0.0, V_m=0.0, tau_m=tau_out, V_min=-1e300, eprop_isi_trace_cutoff=math.inf)
    w = {
        "in_rec": rng.normal(0, 0.5, (n_rec, n_in)),
        "rec_rec": rng.normal(0, 0.3, (n_rec, n_rec)),
        "rec_out": rng.normal(0, 0.3, (n_out, n_rec)),
    }
    w["feedback"] = w["rec_out"].T.copy() if symmetric_feedback else rng.normal(0, 0.3, (n_rec, n_out))
    masks = {
        "in_rec": np.ones((n_rec, n_in), bool),
        "rec_rec": ~np.eye(n_rec, dtype=bool) & recurrent,
        "rec_out": np.ones((n_out, n_rec), bool),
    }
    x = rng.random((steps, n_in)) < 0.05
    target = np.sin(np.arange(steps)[:, None] / 20 + np.arange(n_out))
    opt = {"type": "gradient_descent", "eta": 0.0, "Wmin": -1e9, "Wmax": 1e9, "batch_size": 1}
    return NetworkSpec(1.0, model, params, readout, w, masks, opt, x, target, np.ones(steps), steps)


@pytest.mark.parametrize("model", ["eprop_iaf", "eprop_iaf_psc_delta", "eprop_iaf_psc_exp"])
def test_eprop_equals_bptt_where_theory_says_so(model):
    """No recurrent connections, no adaptation, symmetric feedback, kappa = readout decay: e-prop is exact."""
    spec = synthetic_spec(model, recurrent=False)
    eprop = run_online(spec).gradients
    bptt, fw = bptt_gradient(spec, convention="eprop")
    assert fw.z.sum() > 50  # the network spikes
    for p in ("in_rec", "rec_out"):
        scale = np.abs(bptt[p]).max()
        assert scale > 0
        assert np.abs(eprop[p] - bptt[p]).max() <= 1e-10 * scale, p
    # the "full" variant differentiates the reset, which e-prop ignores: input gradients differ, readout ones not
    full, _ = bptt_gradient(spec, convention="full")
    assert np.abs(full["rec_out"] - bptt["rec_out"]).max() <= 1e-10 * np.abs(bptt["rec_out"]).max()
    assert np.abs(full["in_rec"] - bptt["in_rec"]).max() > 1e-3 * np.abs(bptt["in_rec"]).max()


def test_eprop_differs_from_bptt_with_recurrence():
    spec = synthetic_spec("eprop_iaf", recurrent=True)
    eprop = run_online(spec).gradients
    bptt, _ = bptt_gradient(spec, convention="eprop")
    a, b = eprop["rec_rec"].ravel(), bptt["rec_rec"].ravel()
    cos = a @ b / np.linalg.norm(a) / np.linalg.norm(b)
    assert 0.0 < cos < 0.999999  # an approximation, correlated with the true gradient


@pytest.mark.parametrize(
    "surrogate", ["piecewise_linear", "exponential", "fast_sigmoid_derivative", "arctan_derivative"]
)
@pytest.mark.parametrize("model", SMOOTH_MODELS)
def test_bptt_matches_finite_differences_in_smooth_mode(model, surrogate):
    """Fourth-order central differences (h = 1e-5). The loss is ~1e3, so rounding limits a difference quotient to
    ~1e-8 absolute: components are compared relative to max(|fd|, 1e-3 * largest gradient of the projection)."""
    spec = synthetic_spec(model, recurrent=True, surrogate=surrogate)
    grads, _ = bptt_gradient(spec, convention="full", smooth=True)
    assert_matches_finite_differences(spec, grads, lambda w: forward(spec, w, smooth=True).loss)


def test_smooth_mode_requires_no_refractoriness():
    with pytest.raises(ValueError, match="t_ref"):
        forward(
            synthetic_spec("eprop_iaf", recurrent=False, t_ref=2.0),
            synthetic_spec("eprop_iaf", False).weights,
            smooth=True,
        )


# -- the exchange format ---------------------------------------------------------------------------------------------
def test_network_file_round_trip(tmp_path):
    spec = synthetic_spec("eprop_iaf_psc_exp", recurrent=True)
    loaded = NetworkSpec.load(spec.save(tmp_path / "net.npz"))
    assert loaded.rec_params == spec.rec_params and loaded.optimizer == spec.optimizer
    for k in spec.weights:
        np.testing.assert_array_equal(loaded.weights[k], spec.weights[k])
    np.testing.assert_array_equal(loaded.input_spikes, spec.input_spikes)
    np.testing.assert_array_equal(run_online(loaded).readout, run_online(spec).readout)


@pytest.mark.parametrize(
    "change, fragment",
    [
        (lambda s: s.replace(rec_model="eprop_iaf_typo"), "rec_model = 'eprop_iaf_typo'"),
        (lambda s: s.replace(weights=s.weights | {"in_rec": s.weights["in_rec"][:, :3]}), "weights['in_rec']"),
        (lambda s: s.replace(weights=s.weights | {"rec_rec": np.full_like(s.weights["rec_rec"], np.nan)}), "NaN"),
        (lambda s: s.replace(delays=dict(s.delays, in_rec=0.5)), "delays['in_rec'] = 0.5"),
        (lambda s: s.replace(target=s.target[:10]), "same number of time steps"),
        (lambda s: s.replace(iteration_steps=7), "iteration_steps = 7"),
        (lambda s: s.replace(resolution=-1.0), "resolution"),
    ],
)
def test_invalid_networks_are_rejected(change, fragment):
    spec = change(synthetic_spec("eprop_iaf", recurrent=True))
    with pytest.raises(SpecError) as err:
        run_online(spec)
    assert fragment in str(err.value)


def test_corrupt_network_file_names_the_file(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a network")
    with pytest.raises(SpecError, match="bad.npz"):
        NetworkSpec.load(bad)


def test_compare_cli_writes_json(tmp_path):
    from nestgrad import cli

    out = tmp_path / "cmp"
    assert (
        cli.main(
            [
                "compare",
                "--task",
                "sine",
                "--neuron",
                "eprop_iaf",
                "--n-rec",
                "20",
                "--iterations",
                "5",
                "--out",
                str(out),
                "--save-network",
                str(tmp_path / "net.npz"),
            ]
        )
        == 0
    )
    result = json.loads((out / "compare.json").read_text())
    assert set(result["projections"]) == {"in_rec", "rec_rec", "rec_out"}
    assert len(result["loss_nest"]) == 5 and len(result["loss_reference"]) == 5
    assert cli.main(["compare", "--network", str(tmp_path / "net.npz"), "--out", str(tmp_path / "again")]) == 0
    assert cli.main(["compare", "--task", "sine", "--network", str(tmp_path / "net.npz")]) == 2


def test_per_neuron_parameters_are_refused_not_applied_along_the_wrong_axis():
    """A per-neuron adapt_beta used to pass validation and then act along the presynaptic axis (wrong gradients when
    n_in == n_rec); the exchange format takes one value per parameter and says so."""
    spec = synthetic_spec("eprop_iaf_adapt", recurrent=True)
    per_neuron = spec.replace(rec_params=spec.rec_params | {"adapt_beta": [0.01] * spec.n_rec})
    message = r"rec_params.adapt_beta has 15 values: .*\(\[0.01, 0.01, 0.01, 0.01, ...\] given"
    with pytest.raises(SpecError, match=message):
        per_neuron.validate()
    spec.validate()  # scalars pass

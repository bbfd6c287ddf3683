"""Event-driven e-prop, NumPy prototype (issue #7): per-synapse window gradients from per-neuron running sums equal
NEST's step-by-step window sums (the reference replay, itself equal to NEST to ~1e-13) to 1e-9 relative. The NEST
synapse (eprop_event_synapse) is tested in test_event_synapse.py."""

from __future__ import annotations

import numpy as np
import pytest
from test_reference import synthetic_spec

from nestgrad.reference.event_driven import event_driven_gradient, segment_length
from nestgrad.reference.online import run_online


@pytest.mark.parametrize("cutoff", [np.inf, 25.0])
@pytest.mark.parametrize("model", ["eprop_iaf", "eprop_iaf_psc_delta", "eprop_iaf_psc_exp"])
def test_running_sums_equal_step_by_step_windows(model, cutoff):
    spec = synthetic_spec(model, recurrent=True)
    spec.rec_params["eprop_isi_trace_cutoff"] = cutoff
    spec.rec_params["t_ref"] = 2.0
    online = run_online(spec)
    h = online.history
    for proj, entries in (("in_rec", h["in"]), ("rec_rec", h["rec"])):
        fast = event_driven_gradient(
            spec.rec_params, spec.resolution, model, h, entries, spec.weights[proj], spec.masks[proj]
        )
        ref = online.gradients[proj]
        assert np.abs(ref).max() > 0
        assert np.abs(fast - ref).max() <= 1e-9 * np.abs(ref).max(), proj


def test_segment_length_keeps_weights_in_range():
    kappa, lam_fast = 0.97, np.exp(-1.0 / 3.0)
    s = segment_length((lam_fast,), (kappa,), max_range=1e3)
    assert (lam_fast / kappa) ** s >= 1e-3 > (lam_fast / kappa) ** (s + 1)


def test_adaptive_models_are_refused_by_name():
    spec = synthetic_spec("eprop_iaf_adapt", recurrent=False)
    h = run_online(spec).history
    with pytest.raises(ValueError, match="eprop_iaf_adapt"):
        event_driven_gradient(
            spec.rec_params, 1.0, "eprop_iaf_adapt", h, h["in"], spec.weights["in_rec"], spec.masks["in_rec"]
        )

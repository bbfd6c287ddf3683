"""The EventProp benchmark (scaling_runs/bench_eventprop.py) and its PyTorch BPTT baseline
(scaling_runs/torch_bptt_digits.py): the BPTT simulates the reference engine's equations (it converges to the exact
event-driven solution as the time step shrinks), its Adam is the one the reference column uses, the EventProp-in-NEST
column never shows a number it did not measure, and the command line runs end to end on a tiny network."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
BENCH = REPO / "scaling_runs" / "bench_eventprop.py"
sys.path.insert(0, str(REPO / "scaling_runs"))

import bench_eventprop as bench  # noqa: E402
import torch_bptt_digits as bptt  # noqa: E402


def _run(*options: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCH), *options], capture_output=True, text=True, cwd=REPO)


def test_bptt_converges_to_the_reference_engine():
    """Same weights and inputs: the BPTT (float64, delay = one step) and the exact reference engine (delay = dt) give
    the same hidden spike count, and the readouts' mean voltage differs by O(dt): halving dt halves the error."""
    torch = pytest.importorskip("torch")
    from nestgrad.reference.eventprop import ReadoutCrossEntropy, evaluate
    from nestgrad.tasks.digits_latency import DigitsLatency

    data = DigitsLatency()
    net = bptt.DigitsNetwork(n_hidden=20)
    w = bptt.initial_weights(net, data.n_in, data.n_out, 3)
    errors = []
    for dt in (0.04, 0.02, 0.01):
        n = replace(net, delay=dt)
        ref = evaluate(
            bench.reference_network(n, w, data.n_in, data.n_out, data.duration),
            data.trials("test", [0, 1]),
            ReadoutCrossEntropy("out", "sum"),
            gradient=False,
        )
        model = bptt.TorchBPTT(n, w, dt, dtype="float64")
        y, n_spikes = model.forward(torch.from_numpy(data.raster("test", dt, [0, 1])).double())
        assert int(n_spikes) == sum(len(r.spike_t) for r in ref.records) > 0
        errors.append(float(np.abs(y.detach().numpy() - np.array(ref.outputs)).max()))
    assert errors[1] < 0.6 * errors[0] and errors[2] < 0.6 * errors[1]
    assert errors[2] < 1e-2 * float(np.abs(np.array(ref.outputs)).max())


def test_numpy_adam_is_torch_adam():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    p0 = rng.normal(size=(3, 4))
    grads = [rng.normal(size=(3, 4)) for _ in range(5)]
    ours = {"w": p0.copy()}
    adam = bench.NumpyAdam(5e-3)
    theirs = torch.tensor(p0, requires_grad=True)
    opt = torch.optim.Adam([theirs], lr=5e-3)
    for g in grads:
        adam.step(ours, {"w": g})
        opt.zero_grad()
        theirs.grad = torch.tensor(g)
        opt.step()
    assert ours["w"] == pytest.approx(theirs.detach().numpy(), rel=1e-12, abs=1e-15)


def test_reference_network_holds_the_weights_and_parameters():
    from nestgrad.reference.eventprop import compile_network

    net = bptt.DigitsNetwork(n_hidden=3)
    w = bptt.initial_weights(net, 5, 2, 1)
    cnet = compile_network(bench.reference_network(net, w, 5, 2, 20.0))
    sl = cnet.proj_slices["in_hid"]
    dense = np.zeros((5, 3))
    dense[cnet.src[sl], cnet.tgt[sl] - cnet.offsets["hid"]] = cnet.w[sl]
    assert np.array_equal(dense, w["in_hid"])
    hid = cnet.params[cnet.offsets["hid"]]
    assert (hid.C_m, hid.tau_m, hid.tau_syn) == (net.C_m, net.tau_m, net.tau_syn)
    assert np.all(cnet.d == net.delay)


def test_eventprop_nest_column_reports_missing_models_instead_of_inventing(monkeypatch):
    """Without the models the column says so and names them: never a number."""
    monkeypatch.setattr(bench, "eventprop_nest_missing", lambda nest: ["eventprop_iaf_psc_exp_ps"])
    res = bench.run_eventprop_nest(5, 1, 1, 1.0, 32, 5e-3, 1)
    assert res == {"status": bench.NOT_BUILT, "missing_models": ["eventprop_iaf_psc_exp_ps"]}
    row = bench.table([res | {"method": "eventprop_nest", "hidden": 5, "threads": 1}])
    assert bench.NOT_BUILT in row and "%" not in row


def test_eventprop_nest_column_trains_through_the_learner():
    proc = _run("--worker", "eventprop_nest", "--hidden", "5", "--threads", "1", "--batch-size", "64")
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert 0.0 <= res["test_accuracy"] <= 1.0 and res["seconds_per_epoch"] > 0
    assert res["trials_per_epoch"] == 64 * (1438 // 64) and res["history"][0]["hidden_spikes_per_trial"] >= 0


def test_tiny_benchmark_end_to_end(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "bench.json"
    proc = _run(
        "--hidden", "4", "--threads", "1", "--methods", "pytorch_bptt", "eventprop_nest", "reference",
        "--reference-train", "2", "--reference-test", "2", "--json", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    results = json.loads(out.read_text())["results"]
    by = {r["method"]: r for r in results}
    assert set(by) == {"pytorch_bptt", "eventprop_nest", "reference"}
    assert by["pytorch_bptt"]["status"] == "ok" and 0.0 <= by["pytorch_bptt"]["test_accuracy"] <= 1.0
    assert by["pytorch_bptt"]["seconds_per_epoch"] > 0 and by["pytorch_bptt"]["peak_rss_mib"] > 0
    assert by["reference"]["status"] == "ok" and by["reference"]["train_trials"] == 2
    assert by["reference"]["seconds_per_epoch_extrapolated"] == pytest.approx(
        by["reference"]["seconds_per_trial"] * 1438
    )
    assert by["eventprop_nest"]["status"] == "ok" and by["eventprop_nest"]["seconds_per_epoch"] > 0
    assert "| 4 | pytorch_bptt | 1 |" in proc.stdout


@pytest.mark.parametrize(
    ("options", "match"),
    [
        (("--epochs", "0"), "--epochs = 0"),
        (("--dt", "0"), "--dt"),
        (("--eprop-gap", "-1"), "--eprop-gap"),
        (("--hidden", "0"), "--hidden"),
    ],
)
def test_bad_options_fail_before_running(options, match):
    proc = _run(*options)
    assert proc.returncode != 0 and match in proc.stderr


def test_bptt_refuses_bad_sizes_before_training():
    from nestgrad.errors import ConfigError

    with pytest.raises(ConfigError, match="hidden = 0"):
        bptt.run(0, 1, 1)
    with pytest.raises(ConfigError, match="batch_size = 0"):
        bptt.run(10, 1, 1, batch_size=0)

"""The exchange file of `nestgrad compare` (nestgrad.comparison.exchange): a nestgrad spec with its data; the old
dense format of the classic network stays readable and converts losslessly."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

from nestgrad.cli import main
from nestgrad.comparison import exchange
from nestgrad.comparison.nest_runs import spec_from_config
from nestgrad.config import ExperimentConfig, NetworkConfig, OptimizerConfig, TaskConfig
from nestgrad.errors import SpecError
from nestgrad.reference.spec import NetworkSpec as ClassicSpec
from nestgrad.spec import SynapseKind
from nestgrad.spec.io import load_spec, save_spec

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "python" / "nestgrad" / "configs"


@pytest.fixture(scope="module")
def old_file(tmp_path_factory) -> pathlib.Path:
    """A network file in the old format (format 1), as `nestgrad compare --save-network` wrote it before."""
    config = ExperimentConfig(
        network=NetworkConfig(neuron_model="eprop_iaf_psc_exp", n_rec=8, recurrent=True),
        task=TaskConfig(name="sine"),
        optimizer=OptimizerConfig(type="adam", eta=1e-4, sign_constrained=True, Wmin=-100.0, Wmax=100.0),
    )
    spec = spec_from_config(config, 2)
    spec.masks["rec_rec"][0, 1] = False  # a missing synapse the conversion must keep missing
    spec.weights["rec_rec"][0, 1] = 0.0
    return spec.save(tmp_path_factory.mktemp("old") / "old.npz")


def _same_classic(a: ClassicSpec, b: ClassicSpec) -> None:
    for key in ("resolution", "rec_model", "rec_params", "readout_params", "optimizer", "iteration_steps", "delays",
                "meta", "gradient_algorithm"):  # fmt: skip
        assert getattr(a, key) == getattr(b, key), key
    for key in ("input_spikes", "target", "window"):
        assert np.array_equal(getattr(a, key), getattr(b, key)), key
    assert a.weights.keys() == b.weights.keys() and a.masks.keys() == b.masks.keys()
    for k in a.weights:
        assert np.array_equal(a.weights[k], b.weights[k]), k
    for k in a.masks:
        assert np.array_equal(a.masks[k], b.masks[k]), k


def test_old_files_stay_readable_and_convert_losslessly(old_file, tmp_path):
    old = exchange.load(old_file)
    assert isinstance(old, ClassicSpec)
    new = exchange.convert_file(old_file, tmp_path / "new.npz")
    ex = exchange.load(new)
    assert isinstance(ex, exchange.Exchange) and ex.is_classic and ex.iterations == 2
    _same_classic(old, exchange.classic_view(ex))
    # the new file is a nestgrad spec: edges of the existing synapses only, e-prop flags, Dale's law signs
    spec = ex.spec
    assert spec.projections["rec_rec"].size == 8 * 8 - 8 - 1
    assert set(spec.plastic_projections()) == {"in_rec", "rec_rec", "rec_out"}
    assert spec.projections["feedback"].kind == SynapseKind.LEARNING_SIGNAL
    assert spec.projections["in_rec"].nonneg is not None
    with pytest.raises(SpecError, match="already in the exchange format"):
        exchange.convert_file(new, tmp_path / "again.npz")


def test_compare_reads_old_and_new_files_alike(old_file, tmp_path, capsys):
    new = exchange.convert_file(old_file, tmp_path / "new.npz")
    results = []
    for name, path in (("old", old_file), ("new", new)):
        assert main(["compare", "--network", str(path), "--out", str(tmp_path / name)]) == 0
        results.append(json.loads((tmp_path / name / "compare.json").read_text()))
    assert results[0]["projections"] == results[1]["projections"]
    assert results[0]["loss_nest"] == results[1]["loss_nest"]
    assert max(p["max_rel_err"] for p in results[1]["projections"].values()) <= 1e-9


def test_v1_network_saved_by_compare_replays_from_its_file(tmp_path):
    """--save-network writes the V1 spec and its data; --network FILE compares it again with the same numbers."""
    config = CONFIGS / "compare_v1_small.toml"
    saved = tmp_path / "v1.npz"
    args = ["compare", "--config", str(config), "--iterations", "1", "--save-network", str(saved)]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    ex = exchange.load(saved)
    assert isinstance(ex, exchange.Exchange) and not ex.is_classic and ex.iterations == 1
    assert main(["compare", "--network", str(saved), "--out", str(tmp_path / "b")]) == 0
    a, b = (json.loads((tmp_path / d / "compare.json").read_text()) for d in "ab")
    assert a["projections"] == b["projections"] and a["loss_nest"] == b["loss_nest"]
    assert max(p["max_rel_err"] for p in b["projections"].values()) <= 1e-9


def test_damaged_exchange_files_name_the_field(old_file, tmp_path):
    ex = exchange.load(exchange.convert_file(old_file, tmp_path / "new.npz"))
    file = load_spec(tmp_path / "new.npz")
    cases = {
        "data.window": ({k: v for k, v in file.data.items() if k != "window"}, file.meta),
        "meta.iteration_steps": (file.data, {**file.meta, "iteration_steps": 7}),
        "meta.trial_steps": (file.data, {**file.meta, "trial_steps": "x"}),
        "data.target": (file.data | {"target": file.data["target"][:, :0]}, file.meta),
    }
    for fieldname, (data, meta) in cases.items():
        path = save_spec(tmp_path / "bad.npz", ex.spec, data, meta)
        with pytest.raises(SpecError, match=fieldname.replace(".", r"\.")):
            exchange.load(path)
    np.savez(tmp_path / "foreign.npz", spec_json=np.array(json.dumps({"format": 5})))
    with pytest.raises(SpecError, match="neither a nestgrad spec file nor an old classic network file"):
        exchange.load(tmp_path / "foreign.npz")
    assert main(["compare", "--network", str(tmp_path / "foreign.npz")]) == 2


def test_parameters_are_checked_as_in_the_old_format(old_file, tmp_path):
    """A tau_m of inf used to print tables of NaN; the exchange format refuses it like the old one, in the spec's
    populations and in the classic fields."""
    ex = exchange.load(exchange.convert_file(old_file, tmp_path / "new.npz"))
    file = load_spec(tmp_path / "new.npz")
    spec = ex.spec
    spec.populations["rec"].params = {**spec.populations["rec"].params, "tau_m": float("inf")}
    path = save_spec(tmp_path / "inf.npz", spec, file.data, file.meta)
    with pytest.raises(SpecError, match=r"populations\[1\]\.params\.tau_m' = inf: a finite number is required"):
        exchange.load(path)
    spec.populations["rec"].params["tau_m"] = 10.0
    meta = json.loads(json.dumps(file.meta))
    meta["classic"]["readout_params"]["C_m"] = -1.0
    path = save_spec(tmp_path / "neg.npz", spec, file.data, meta)
    with pytest.raises(SpecError, match=r"meta\.classic\.readout_params\.C_m' = -1\.0: a time constant must be > 0"):
        exchange.load(path)

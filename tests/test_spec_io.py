"""The spec on disk (nestgrad.spec.io) and through SONATA (nestgrad.sonata.export_spec / spec_from_sonata).

Expected values are the specs written, compared field by field (spec_differences compares every population's
per-neuron parameters and every projection's edge arrays exactly)."""

from __future__ import annotations

import json
import pathlib
import zipfile

import numpy as np
import pytest

from nestgrad import sonata
from nestgrad.errors import CheckpointError, SonataError, SpecError
from nestgrad.spec import NetworkSpec, Population, Projection, Role, SynapseKind
from nestgrad.spec.io import load_spec, neuron_params, save_spec, spec_bytes, spec_differences

OPTIMIZER = {"type": "adam", "eta": 1e-3, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8, "Wmin": -100.0,
             "Wmax": 100.0, "batch_size": 1}  # fmt: skip


def full_spec() -> NetworkSpec:
    """A spec that uses every field: roles, per-neuron parameters of every kind, positions, receptors, plastic and
    static edges, Dale's law signs, a learning rate, a tsodyks2 static model with parameters, a learning-signal
    projection, spike generators and recorded neurons."""
    rng = np.random.default_rng(1)
    spec = NetworkSpec(resolution=0.1, optimizer=dict(OPTIMIZER))
    spec.add_population(Population("in", "parrot_neuron", 3, role=Role.INPUT))
    spec.add_population(
        Population(
            "gen", "spike_generator", 2, [{"precise_times": True, "spike_times": [1.5, 7.25]},
                                         {"precise_times": True, "spike_times": []}], Role.DEVICE,
        )
    )  # fmt: skip
    rec_params = [
        {"C_m": 250.0 + n, "t_ref": 2.0, "n_hist": n, "regular_spike_arrival": bool(n % 2),
         "surrogate_gradient_function": "piecewise_linear", "tau_syn": [2.0, 5.0 + n]}
        for n in range(5)
    ]  # fmt: skip
    rec_params[3]["only_here"] = 1.25  # a parameter some neurons have
    spec.add_population(Population("rec", "eprop_iaf_psc_exp", 5, rec_params, positions=rng.normal(size=(5, 3))))
    spec.add_population(Population("out", "eprop_readout", 2, {"tau_m": 20.0, "E_L": 0.0}, Role.READOUT))
    src, trg = np.array([0, 1, 2, 0, 2]), np.array([0, 1, 2, 3, 4])
    w = np.array([1.5, -2.0, 0.25, 3.0, -0.5])
    spec.add_projection(
        "in_rec", Projection("in", "rec", src, trg, w, np.full(5, 0.1), np.array([1, 2, 1, 1, 2]),
                             np.array([True, True, False, True, True]), w >= 0, "eprop_synapse", 0.5),
    )  # fmt: skip
    spec.add_projection(
        "gen_rec", Projection("gen", "rec", np.array([0, 1]), np.array([4, 0]), np.array([10.0, 20.0]),
                              np.array([1.0, 2.3]), static_synapse="tsodyks2_synapse",
                              synapse_params={"U": 0.3, "tau_rec": 400.0}),
    )  # fmt: skip
    spec.add_projection(
        "rec_out", Projection("rec", "out", np.array([0, 1, 2, 3, 4]), np.array([0, 0, 1, 1, 1]),
                              rng.normal(size=5), np.full(5, 0.1), plastic=np.ones(5, bool)),
    )  # fmt: skip
    spec.add_projection(
        "feedback", Projection("out", "rec", np.array([0, 1]), np.array([2, 3]), np.array([0.5, -0.5]),
                               np.full(2, 0.1), kind=SynapseKind.LEARNING_SIGNAL),
    )  # fmt: skip
    spec.recorded = ("rec", np.array([0, 2]))
    return spec


# ------------------------------------------------------------------------------------------------- spec files


def test_spec_file_round_trip_is_lossless(tmp_path):
    spec = full_spec()
    data = {"input_spikes": np.eye(4, 3, dtype=bool), "target": np.ones((4, 2))}
    path = save_spec(tmp_path / "net.npz", spec, data, {"task": "sine"})
    got = load_spec(path)
    assert spec_differences(spec, got.spec) == []
    assert got.meta == {"task": "sine"} and list(got.data) == ["input_spikes", "target"]
    assert got.data["input_spikes"].dtype == bool and np.array_equal(got.data["input_spikes"], data["input_spikes"])
    rec = got.spec.populations["rec"].params
    # numbers keep their kind, lists and strings stay, a parameter only some neurons have stays theirs
    assert [type(p["n_hist"]) for p in rec] == [int] * 5 and type(rec[1]["regular_spike_arrival"]) is bool
    assert rec[4]["tau_syn"] == [2.0, 9.0] and rec[0]["surrogate_gradient_function"] == "piecewise_linear"
    assert [("only_here" in p) for p in rec] == [False, False, False, True, False]
    assert got.spec.projections["gen_rec"].synapse_params == {"U": 0.3, "tau_rec": 400.0}


def test_spec_differences_sees_every_field():
    """The comparison the round-trip tests rely on is not vacuous: a change of any one field is reported."""
    edits = {
        "weight": lambda s: s.projections["in_rec"].weights.__setitem__(0, 1.5000000001),
        "delay": lambda s: s.projections["gen_rec"].delays.__setitem__(1, 2.4),
        "receptor": lambda s: s.projections["in_rec"].receptors.__setitem__(0, 2),
        "plastic flag": lambda s: s.projections["in_rec"].plastic.__setitem__(2, True),
        "sign": lambda s: s.projections["in_rec"].nonneg.__setitem__(2, False),
        "edge": lambda s: s.projections["rec_out"].targets.__setitem__(0, 1),
        "parameter": lambda s: s.populations["rec"].params[2].__setitem__("C_m", 1.0),
        "role": lambda s: setattr(s.populations["gen"], "role", Role.NEURONS),
        "learning rate": lambda s: setattr(s.projections["in_rec"], "learning_rate", 0.4),
        "static model": lambda s: setattr(s.projections["gen_rec"], "static_synapse", "static_synapse"),
        "optimizer": lambda s: s.optimizer.__setitem__("eta", 2e-3),
        "positions": lambda s: s.populations["rec"].positions.__setitem__((0, 0), 9.0),
    }
    for what, edit in edits.items():
        spec = full_spec()
        edit(spec)
        assert spec_differences(full_spec(), spec), what


def _archive_with(tmp_path: pathlib.Path, change) -> pathlib.Path:
    """A spec file whose JSON document or arrays were edited by ``change(doc, arrays)``."""
    path = save_spec(tmp_path / "net.npz", full_spec())
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    doc = json.loads(str(arrays.pop("spec_json")))
    change(doc, arrays)
    np.savez(path, spec_json=np.array(json.dumps(doc)), **arrays)
    return path


DAMAGED = {
    "version": (lambda d, a: d.update(version=2), "'version': 2 is not supported"),
    "format": (lambda d, a: d.update(format="other"), "not a nestgrad spec file"),
    "missing array": (lambda d, a: a.pop("e0_weights"), "projections[0].arrays.weights"),
    "extra array": (lambda d, a: a.update(stray=np.zeros(2)), "'stray': array not referred to"),
    "weights as text": (lambda d, a: a.update(e0_weights=np.array(["x"] * 5)), "projections[0].arrays.weights"),
    "NaN weight": (lambda d, a: a["e0_weights"].__setitem__(1, np.nan), "NaN or infinite"),
    "short array": (lambda d, a: a.update(e0_delays=np.full(4, 0.1)), "projections[0].arrays.delays"),
    "index out of range": (lambda d, a: a["e0_targets"].__setitem__(0, 5), "targets must be integers in [0, 5)"),
    "role": (lambda d, a: d["populations"][0].update(role="boss"), "populations[0].role"),
    "size": (lambda d, a: d["populations"][2].update(size="5"), "populations[2].size"),
    "per-neuron count": (lambda d, a: d["populations"][1]["per_neuron"]["spike_times"].update(json=[[1.0]]),
                         "1 values for 2 neurons"),
    "kind": (lambda d, a: d["projections"][3].update(kind="gap"), "projections[3].kind"),
    "optimizer": (lambda d, a: d.update(optimizer=[1]), "'optimizer'"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(DAMAGED))
def test_damaged_spec_files_name_the_file_and_field(tmp_path, case):
    change, message = DAMAGED[case]
    path = _archive_with(tmp_path, change)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert str(path) in str(err.value) and message in str(err.value), str(err.value)


def test_unreadable_files_raise_the_callers_error_class(tmp_path):
    good = spec_bytes(full_spec())
    cases = {"truncated.npz": good[: len(good) // 2], "text.npz": b"not an archive", "array.npy": b""}
    for name, content in cases.items():
        path = tmp_path / name
        if name.endswith(".npy"):
            np.save(path, np.zeros(3))
        else:
            path.write_bytes(content)
        with pytest.raises(SpecError, match=str(path)):
            load_spec(path)
        with pytest.raises(CheckpointError, match=str(path)):
            load_spec(path, error=CheckpointError)
    with zipfile.ZipFile(tmp_path / "foreign.npz", "w") as zf:
        zf.writestr("x.npy", b"")
    with pytest.raises(SpecError, match="cannot be read|spec_json"):
        load_spec(tmp_path / "foreign.npz")
    with pytest.raises(SpecError, match="no such file"):
        load_spec(tmp_path / "missing.npz")


def test_member_names_never_carry_user_names(tmp_path):
    """Population and projection names stay inside the JSON document; archive members are named by position."""
    spec = NetworkSpec(0.1)
    spec.add_population(Population("../../etc/a", "iaf_psc_alpha", 2))
    spec.add_projection("/abs/../x", Projection("../../etc/a", "../../etc/a", np.array([0]), np.array([1]),
                                                np.array([1.0]), np.array([1.0])))  # fmt: skip
    path = save_spec(tmp_path / "net.npz", spec)
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == sorted(f"e0_{k}.npy" for k in ("sources", "targets", "weights", "delays")) + [
            "spec_json.npy"
        ]
    assert spec_differences(spec, load_spec(path).spec) == []


# ------------------------------------------------------------------------------------------------- SONATA


def test_spec_to_sonata_to_spec_is_equal(tmp_path):
    spec = full_spec()
    config = sonata.export_spec(tmp_path / "sonata", spec)
    net = sonata.SonataNetwork.from_config(config)
    got = sonata.spec_from_sonata(net).spec
    assert spec_differences(spec, got) == []
    # what a SONATA reader without nestgrad sees: real node types, per-node columns, edge types by port and sign
    assert net.nodes["rec"].types[100]["model_template"] == "nest:eprop_iaf_psc_exp"
    assert net.nodes["in"].is_virtual and net.nodes["gen"].is_virtual
    assert net.inputs["gen"].timestamps.tolist() == [1.5, 7.25]
    assert {"C_m", "n_hist"} <= set(net.nodes["rec"].dynamics)
    assert sorted(net.edges["in_rec"].receptor_types().tolist()) == [1, 1, 1, 2, 2]
    assert net.edges["gen_rec"].type_dynamics[100] == {"U": 0.3, "tau_rec": 400.0}


def test_export_writes_given_weights_in_edge_order_or_from_matrices(tmp_path):
    spec = full_spec()
    trained = np.array([2.0, -1.0, 0.5, 4.0, -0.25])
    dense = np.zeros((2, 5))
    rec_out = spec.projections["rec_out"]
    dense[rec_out.targets, rec_out.sources] = [0.1, 0.2, 0.3, 0.4, 0.5]
    config = sonata.export_spec(tmp_path / "s", spec, {"in_rec": trained, "rec_out": dense})
    got = sonata.spec_from_sonata(sonata.SonataNetwork.from_config(config)).spec
    assert got.projections["in_rec"].weights.tolist() == trained.tolist()
    assert got.projections["rec_out"].weights.tolist() == [0.1, 0.2, 0.3, 0.4, 0.5]
    with pytest.raises(SonataError, match=r"shape \(3,\)"):
        sonata.export_spec(tmp_path / "bad", spec, {"in_rec": np.zeros(3)})


def test_what_sonata_cannot_hold_is_refused_by_name(tmp_path):
    spec = full_spec()
    spec.populations["gen"].params[0]["allow_offgrid_times"] = True
    with pytest.raises(SonataError, match="nodes/gen") as err:
        sonata.export_spec(tmp_path / "s", spec)
    assert "allow_offgrid_times" in str(err.value)
    assert not (tmp_path / "s").exists()  # refused before anything is written


SECTION_EDITS = {
    "nestgrad/version": lambda s: s.update(version=99),
    "nestgrad/resolution": lambda s: s.update(resolution=-0.1),
    "nestgrad/populations/rec": lambda s: s["populations"]["rec"].update(role="boss"),
    "nestgrad/projections/in_rec": lambda s: s["projections"]["in_rec"].update(kind="gap"),
    "nestgrad/projections/in_rec/learning_rate": lambda s: s["projections"]["in_rec"].update(learning_rate="fast"),
    "nestgrad/recorded": lambda s: s.update(recorded=["rec", [0.5]]),
}


@pytest.mark.parametrize("fieldname", list(SECTION_EDITS))
def test_damaged_nestgrad_section_names_the_field(tmp_path, fieldname):
    config = sonata.export_spec(tmp_path / "s", full_spec())
    circuit = config.parent / "config.circuit.json"
    doc = json.loads(circuit.read_text())
    SECTION_EDITS[fieldname](doc["nestgrad"])
    circuit.write_text(json.dumps(doc))
    with pytest.raises(SonataError) as err:
        sonata.spec_from_sonata(sonata.SonataNetwork.from_config(config))
    assert err.value.field == fieldname and err.value.path.endswith("config.circuit.json"), str(err.value)


def test_plain_sonata_without_optimizer_is_refused_without_nest(tmp_path):
    """e-prop edges in a file without nestgrad's section need optimizer settings (NEST's defaults when building)."""
    spec = full_spec()
    config = sonata.export_spec(tmp_path / "s", spec)
    circuit = config.parent / "config.circuit.json"
    doc = json.loads(circuit.read_text())
    del doc["nestgrad"]
    circuit.write_text(json.dumps(doc))
    net = sonata.SonataNetwork.from_config(config)
    with pytest.raises(SonataError, match="optimizer settings") as err:
        sonata.spec_from_sonata(net)
    assert err.value.path.endswith("in_rec_edge_types.csv")
    got = sonata.spec_from_sonata(net, optimizer=OPTIMIZER).spec
    # without the section the edges, weights, delays, ports, plastic flags and signs still come back
    for name in ("in_rec", "rec_out"):
        a, b = spec.projections[name], got.projections[name]
        for key in ("sources", "targets", "weights", "delays"):
            assert np.array_equal(getattr(a, key), getattr(b, key)), (name, key)
        assert np.array_equal(a.plastic_mask(), b.plastic_mask())
    assert np.array_equal(got.projections["in_rec"].nonneg, spec.projections["in_rec"].nonneg)
    assert got.projections["feedback"].kind == SynapseKind.LEARNING_SIGNAL
    assert [p["C_m"] for p in neuron_params(got.populations["rec"])] == [250.0, 251.0, 252.0, 253.0, 254.0]


# ------------------------------------------------------------------------------------------------- learners

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "python" / "nestgrad" / "configs"


def learner_spec(nest, config_name: str) -> tuple[NetworkSpec, object, dict]:
    """The spec a training run of the configuration starts from (as ``nestgrad compare`` makes it)."""
    from nestgrad.config import ExperimentConfig
    from nestgrad.networks.registry import make_learner

    config = ExperimentConfig.from_toml(CONFIGS / config_name)
    learner, _ = make_learner(config)
    learner.prepare(nest)
    weights = learner.initial_weights(config.network.seed)
    return learner.network_spec(weights, record_neurons=4, plastic=True), learner, weights


def _connections(nest) -> list[tuple]:
    c = nest.GetConnections().get(["source", "target", "weight", "delay", "receptor", "synapse_model"])
    return sorted(zip(*(c[k] for k in ("source", "target", "weight", "delay", "receptor", "synapse_model")),
                      strict=True))  # fmt: skip


@pytest.mark.parametrize("config_name", ["sine_eprop_iaf_psc_exp.toml", "compare_v1_small.toml"])
def test_learner_specs_round_trip_through_sonata_and_build_the_same(config_name, nest_kernel, tmp_path):
    """classic and V1 learners export through one function; the import is an equal spec, and building it with
    build_in_nest (the one wiring function) makes the same NEST network as building the learner's spec."""
    from nestgrad.nest_engine import fresh_kernel, wiring

    spec, learner, weights = learner_spec(nest_kernel, config_name)
    # trained weights as the learner reads them back (the classic learner: [post, pre] matrices)
    trained = {name: np.asarray(w) * 1.5 for name, w in weights.items() if name in spec.projections}
    config = sonata.export_spec(tmp_path / "sonata", spec, trained)
    net = sonata.SonataNetwork.from_config(config)
    got = sonata.spec_from_sonata(net).spec
    expected = learner.network_spec({**weights, **trained}, record_neurons=4, plastic=True)
    assert spec_differences(expected, got) == []
    assert spec.plastic_projections() and got.plastic_projections() == spec.plastic_projections()
    builds = []
    for how in ("wiring", "sonata"):
        nest = fresh_kernel(spec.resolution)
        if how == "wiring":
            wiring.build(nest, expected)
        else:
            built = sonata.build_in_nest(net, nest)
            assert built.wired is not None and spec_differences(expected, built.wired.spec) == []
        builds.append(_connections(nest))
    assert len(builds[0]) > 1000 and builds[0] == builds[1]

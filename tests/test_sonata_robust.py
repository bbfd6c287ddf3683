"""SONATA import/export under bad input and bmtk's conventions (issue 19, findings 10-17).

Every test writes a small network with h5py/csv/json directly (never with nestgrad.sonata), breaks or varies one
thing and checks what nestgrad does: the bmtk PointNet convention, or a SonataError naming file and field.
"""

from __future__ import annotations

import json
import os
import pathlib

import h5py
import numpy as np
import pytest

from nestgrad import sonata
from nestgrad.errors import SonataError

RESOLUTION = 0.1  # ms


def _h5(path: pathlib.Path, datasets: dict[str, object], attrs: dict[str, dict] | None = None) -> None:
    with h5py.File(path, "w") as fh:
        for name, data in datasets.items():
            fh[name] = data
        for name, values in (attrs or {}).items():
            for key, value in values.items():
                fh[name].attrs[key] = value


def write_tiny(root: pathlib.Path, *, lgn_spikes=((0, 5.0), (1, 12.3)), edge_type_csv=None, syn_json=None) -> None:
    """3 iaf_psc_alpha cells ("v1"), 2 virtual cells ("lgn"), edges lgn->v1 and v1->v1, an h5 spike input."""
    net, cells, syns, inputs = (root / "network", root / "components/cell_models", root / "components/syn",
                                root / "inputs")  # fmt: skip
    for d in (net, cells, syns, inputs):
        d.mkdir(parents=True, exist_ok=True)
    (cells / "iaf.json").write_text(json.dumps({"C_m": 250.0, "tau_m": 10.0, "V_th": -55.0, "E_L": -70.0}))
    (syns / "exc.json").write_text(json.dumps(syn_json if syn_json is not None else {}))
    (net / "v1_node_types.csv").write_text(
        "node_type_id model_type model_template dynamics_params\n100 point_neuron nest:iaf_psc_alpha iaf.json\n"
    )
    (net / "lgn_node_types.csv").write_text("node_type_id model_type\n200 virtual\n")
    _h5(net / "v1_nodes.h5", {"nodes/v1/node_id": np.arange(3, dtype=np.uint64),
                              "nodes/v1/node_type_id": np.full(3, 100, dtype=np.uint64),
                              "nodes/v1/node_group_id": np.zeros(3, dtype=np.uint32),
                              "nodes/v1/node_group_index": np.arange(3, dtype=np.uint64),
                              "nodes/v1/0/x": np.array([0.0, 1.0, 2.0])})  # fmt: skip
    _h5(net / "lgn_nodes.h5", {"nodes/lgn/node_id": np.arange(2, dtype=np.uint64),
                               "nodes/lgn/node_type_id": np.full(2, 200, dtype=np.uint64)})  # fmt: skip
    (net / "edge_types.csv").write_text(
        edge_type_csv
        or "edge_type_id model_template syn_weight delay dynamics_params\n"
        "1 static_synapse 2.0 1.5 exc.json\n2 static_synapse -1.0 2.0 exc.json\n"
    )
    for name, src, trg, s, t, et in (
        ("lgn_to_v1", "lgn", "v1", [0, 1, 1], [0, 1, 2], [1, 1, 1]),
        ("v1_to_v1", "v1", "v1", [0, 1, 2], [1, 2, 0], [2, 2, 2]),
    ):
        n = len(s)
        _h5(
            net / f"{name}_edges.h5",
            {f"edges/{name}/source_node_id": np.array(s, dtype=np.uint64),
             f"edges/{name}/target_node_id": np.array(t, dtype=np.uint64),
             f"edges/{name}/edge_type_id": np.array(et, dtype=np.uint32),
             f"edges/{name}/edge_group_id": np.zeros(n, dtype=np.uint32),
             f"edges/{name}/edge_group_index": np.arange(n, dtype=np.uint64),
             f"edges/{name}/0/nsyns": np.full(n, 3, dtype=np.uint32)},
            {f"edges/{name}/source_node_id": {"node_population": src},
             f"edges/{name}/target_node_id": {"node_population": trg}},
        )  # fmt: skip
    ids, times = zip(*lgn_spikes, strict=True) if lgn_spikes else ((), ())
    _h5(inputs / "lgn.h5", {"spikes/lgn/node_ids": np.array(ids, dtype=np.uint64),
                            "spikes/lgn/timestamps": np.array(times, dtype=np.float64)})  # fmt: skip
    config = {
        "manifest": {"$BASE_DIR": ".", "$NET": "$BASE_DIR/network"},
        "run": {"tstop": 50.0, "dt": RESOLUTION},
        "components": {"point_neuron_models_dir": "$BASE_DIR/components/cell_models",
                       "synaptic_models_dir": "$BASE_DIR/components/syn"},
        "networks": {
            "nodes": [{"nodes_file": f"$NET/{p}_nodes.h5", "node_types_file": f"$NET/{p}_node_types.csv"}
                      for p in ("v1", "lgn")],
            "edges": [{"edges_file": f"$NET/{e}_edges.h5", "edge_types_file": "$NET/edge_types.csv"}
                      for e in ("lgn_to_v1", "v1_to_v1")],
        },
        "inputs": {"lgn_in": {"input_type": "spikes", "module": "sonata", "input_file": "$BASE_DIR/inputs/lgn.h5",
                              "node_set": "lgn"}},
    }  # fmt: skip
    (root / "config.json").write_text(json.dumps(config, indent=1))


@pytest.fixture
def tiny(tmp_path):
    write_tiny(tmp_path)
    return tmp_path


def load(root: pathlib.Path) -> sonata.SonataNetwork:
    return sonata.SonataNetwork.from_config(root / "config.json")


def edit_config(root: pathlib.Path, change) -> None:
    cfg = json.loads((root / "config.json").read_text())
    change(cfg)
    (root / "config.json").write_text(json.dumps(cfg))


def replace_dataset(path: pathlib.Path, name: str, data=None, **create) -> None:
    with h5py.File(path, "a") as fh:
        attrs = dict(fh[name].attrs) if name in fh else {}
        if name in fh:
            del fh[name]
        if data is not None:
            fh[name] = data
        else:
            fh.create_dataset(name, **create)
        fh[name].attrs.update(attrs)  # keep node_population etc.


def connections(nest, built, net):
    """Sorted (source pop, source id, target id, weight, delay, synapse model) of every connection."""
    to_node = {}
    for pop, gids in built.gids.items():
        to_node.update(zip(gids.tolist(), [(pop, int(i)) for i in net.nodes[pop].node_ids], strict=True))
    c = nest.GetConnections(target=built.populations["v1"]).get(["source", "target", "weight", "delay",
                                                                  "synapse_model"])  # fmt: skip
    return sorted(
        (to_node[s], to_node[t][1], w, d, m)
        for s, t, w, d, m in zip(c["source"], c["target"], c["weight"], c["delay"], c["synapse_model"], strict=True)
    )


def build(nest, net, **kw):
    nest.resolution = RESOLUTION
    return sonata.build_in_nest(net, nest, **kw)


# ------------------------------------------------------------------------------------ 10: input spike placement


def test_off_grid_input_spikes_are_placed_like_bmtk_precise_times(tmp_path, nest_kernel):
    """bmtk 1.2 creates its spike_generators with precise_times=True: a spike at t is emitted at the end of the step
    that contains t. With allow_offgrid_times NEST first rounds t to the tic grid (1 us), so a spike less than half a
    tic after a grid point landed one step earlier than in bmtk."""
    nest = nest_kernel
    times = (1.0000004, 2.05, 3.0)  # < half a tic after 1.0; mid-step; on the grid
    write_tiny(tmp_path, lgn_spikes=[(0, t) for t in times])
    built = build(nest, load(tmp_path), parrots=True)
    rec = nest.Create("spike_recorder")
    nest.Connect(built.populations["lgn"][0], rec)
    # the reference: a spike_generator as bmtk creates it (precise_times=True) feeding a parrot neuron
    gen = nest.Create("spike_generator", params={"precise_times": True, "spike_times": list(times)})
    parrot, ref = nest.Create("parrot_neuron"), nest.Create("spike_recorder")
    nest.Connect(gen, parrot, syn_spec={"delay": RESOLUTION})
    nest.Connect(parrot, ref)
    nest.Simulate(10.0)
    # parrot spike = end of the generator's step + the parrot's one-step delay
    assert rec.events["times"].tolist() == pytest.approx([1.2, 2.2, 3.1], abs=1e-9)
    assert rec.events["times"].tolist() == ref.events["times"].tolist()
    assert built.generators["lgn"].get("precise_times") == (True, True)


# ------------------------------------------------------------------------------------ 11, 12: weight and delay


def test_weight_and_delay_in_edge_dynamics_json_do_not_override_the_edges(tmp_path, nest_kernel):
    """bmtk's tutorial files TsodyksFac_glif.json / TsodyksDep_glif.json carry "weight": 250; bmtk applies the JSON
    first, then sets weight = syn_weight * nsyns and the edge delay."""
    write_tiny(tmp_path, syn_json={"weight": 250.0, "delay": 7.0})
    built = build(nest_kernel, load(tmp_path))
    conns = connections(nest_kernel, built, load(tmp_path))
    assert conns == sorted(
        [
            (("lgn", 0), 0, 6.0, 1.5, "static_synapse"),
            (("lgn", 1), 1, 6.0, 1.5, "static_synapse"),
            (("lgn", 1), 2, 6.0, 1.5, "static_synapse"),
            (("v1", 0), 1, -3.0, 2.0, "static_synapse"),
            (("v1", 1), 2, -3.0, 2.0, "static_synapse"),
            (("v1", 2), 0, -3.0, 2.0, "static_synapse"),
        ]
    )


def test_edges_without_delay_get_the_json_delay_else_nests_default(tmp_path, nest_kernel):
    """NEST's 300_pointneurons example has no delays; bmtk (and NEST's own reader) leave NEST's default (1 ms)."""
    nest = nest_kernel
    write_tiny(tmp_path, edge_type_csv="edge_type_id model_template syn_weight dynamics_params\n"
                                       "1 static_synapse 2.0 exc.json\n2 static_synapse -1.0 slow.json\n")  # fmt: skip
    (tmp_path / "components/syn/slow.json").write_text('{"delay": 3.0}')
    net = load(tmp_path)
    assert np.isnan(net.edges["lgn_to_v1"].delays(default=np.nan)).all()
    assert net.edges["lgn_to_v1"].delays().tolist() == [1.0, 1.0, 1.0]  # NEST's default delay
    assert net.edges["v1_to_v1"].delays().tolist() == [3.0, 3.0, 3.0]  # from the edge type's JSON
    built = build(nest, net)
    delays = {(c[0][0], c[4]): c[3] for c in connections(nest, built, net)}
    assert delays == {("lgn", "static_synapse"): nest.GetDefaults("static_synapse")["delay"],
                      ("v1", "static_synapse"): 3.0}  # fmt: skip


# ------------------------------------------------------------------------------------ 13: export


MULTISYNAPSE = {
    "iaf_psc_exp_multisynapse": {"tau_syn": [2.0, 7.0]},
    "iaf_psc_alpha_multisynapse": {"tau_syn": [2.0, 7.0]},
    "aeif_cond_alpha_multisynapse": {"tau_syn": [2.0, 7.0], "E_rev": [0.0, -80.0]},
    "gif_psc_exp_multisynapse": {"tau_syn": [2.0, 7.0]},
}


@pytest.mark.parametrize("model", list(MULTISYNAPSE))
def test_export_of_multisynapse_models_can_be_imported(model, nest_kernel, tmp_path):
    nest = nest_kernel
    nest.resolution = RESOLUTION
    gens = nest.Create("spike_generator", 2, {"spike_times": [1.0, 4.0]})
    cells = nest.Create(model, 3, {**MULTISYNAPSE[model], "V_m": -60.0})
    nest.Connect(gens, cells, "all_to_all", {"weight": 3.0, "delay": 1.0, "receptor_type": 2})
    nest.Connect(cells, cells, "one_to_one", {"weight": 1.0, "delay": 2.0, "receptor_type": 1})
    keys = sorted(k for k, v in nest.GetDefaults(model).items() if k in ("tau_syn", "E_rev", "V_m", "C_m"))
    before = cells.get(keys)
    config = sonata.export_sonata(tmp_path / "out", nest, {"inp": gens, "cells": cells})
    dyn = json.loads((tmp_path / "out/components/cell_models/cells_100.json").read_text())
    assert not {"n_synapses", "n_receptors"} & set(dyn)  # read-only in NEST
    net = sonata.SonataNetwork.from_config(config)
    nest.ResetKernel()
    built = build(nest, net)
    after = built.populations["cells"].get(keys)
    assert {k: np.asarray(v).tolist() for k, v in before.items()} == {
        k: np.asarray(v).tolist() for k, v in after.items()
    }
    rec = nest.GetConnections(target=built.populations["cells"]).get(["receptor", "weight"])
    assert sorted(zip(rec["receptor"], rec["weight"], strict=True)) == [(1, 1.0)] * 3 + [(2, 3.0)] * 6


def test_export_of_parrots_fed_by_generators_carries_each_parrots_own_spike_times(nest_kernel, tmp_path):
    """Parrots fed one to one by spike generators (wired in shuffled order, beside other connections into the
    parrots' targets) export as virtual nodes with their own generator's spikes; a parrot without one is refused."""
    nest = nest_kernel
    times = [[1.0, 4.0], [2.0], [3.0, 5.0, 7.0]]
    gens = nest.Create("spike_generator", 3, [{"spike_times": t} for t in times])
    parrots = nest.Create("parrot_neuron", 3)
    cells = nest.Create("iaf_psc_alpha", 2)
    for g, p in ((2, 0), (0, 1), (1, 2)):  # parrot p repeats generator g
        nest.Connect(gens[g], parrots[p], syn_spec={"delay": 1.0})
    nest.Connect(parrots, cells, "all_to_all", {"weight": 2.0, "delay": 1.0})
    nest.Connect(gens, cells, "all_to_all", {"weight": 1.0, "delay": 1.0})
    config = sonata.export_sonata(tmp_path / "out", nest, {"inp": parrots, "cells": cells})
    net = sonata.SonataNetwork.from_config(config)
    spikes = net.inputs["inp"]
    got = [sorted(t.tolist()) for t in spikes.trains(range(3))]
    assert got == [times[2], times[0], times[1]]
    lonely = nest.Create("parrot_neuron", 1)
    with pytest.raises(ValueError, match="parrot neurons .* of 'alone' have no spike_generator input"):
        sonata.export_sonata(tmp_path / "out2", nest, {"alone": parrots + lonely, "cells": cells})


def test_export_is_runnable_by_bmtk_as_written(nest_kernel, tmp_path):
    """Every edge and node type of a real cell has a dynamics JSON (bmtk loads it), and the config has an output
    section inside the export folder (without one bmtk writes to, and first clears, the working directory)."""
    nest = nest_kernel
    gens = nest.Create("spike_generator", 1, {"spike_times": [1.0]})
    cells = nest.Create("iaf_psc_alpha", 2)
    nest.Connect(gens, cells, "all_to_all", {"weight": 3.0, "delay": 1.0})
    out = tmp_path / "out"
    config = json.loads(sonata.export_sonata(out, nest, {"inp": gens, "cells": cells}).read_text())
    for csv_name in ("inp_to_cells_edge_types.csv", "cells_node_types.csv"):
        rows = [line.split(" ") for line in (out / "network" / csv_name).read_text().splitlines()]
        column = rows[0].index("dynamics_params")
        assert all(r[column].endswith(".json") for r in rows[1:]), rows
    assert config["output"]["output_dir"] == "$BASE_DIR/output"
    assert config["run"]["tstop"] > 0 and config["run"]["dt"] == nest.resolution


# ------------------------------------------------------------------------------------ 14: inputs and node sets


def test_input_node_set_from_node_sets_file_is_resolved(tiny, nest_kernel):
    (tiny / "node_sets.json").write_text(json.dumps({"thalamus": {"population": "lgn"}}))

    def change(cfg):
        cfg["node_sets_file"] = "$BASE_DIR/node_sets.json"
        cfg["inputs"]["lgn_in"]["node_set"] = "thalamus"

    edit_config(tiny, change)
    net = load(tiny)
    assert net.inputs["lgn"].timestamps.tolist() == [5.0, 12.3]
    built = build(nest_kernel, net)
    assert [list(t) for t in built.generators["lgn"].get("spike_times")] == [[5.0], [12.3]]


def test_input_with_an_unmatched_spike_population_feeds_the_node_set_population(tiny):
    """bmtk feeds the nodes of the input's node set from the spike file's only population, whatever its name."""
    with h5py.File(tiny / "inputs/lgn.h5", "a") as fh:
        fh.move("spikes/lgn", "spikes/LGN_cells")
    net = load(tiny)
    assert list(net.inputs) == ["lgn"] and net.inputs["lgn"].timestamps.tolist() == [5.0, 12.3]


def test_node_sets_as_lists_and_filters_without_population(tiny):
    """A list of node set names is their union; a filter without a population selects every virtual population."""
    (tiny / "node_sets.json").write_text(json.dumps({"thalamus": {"population": "lgn"}, "all_inputs": ["thalamus"],
                                                     "virtual": {"model_type": "virtual"}}))  # fmt: skip
    for node_set in ("all_inputs", "virtual", ["thalamus"]):

        def change(cfg, node_set=node_set):
            cfg["node_sets_file"] = "$BASE_DIR/node_sets.json"
            cfg["inputs"]["lgn_in"]["node_set"] = node_set

        edit_config(tiny, change)
        net = load(tiny)
        assert list(net.inputs) == ["lgn"] and net.inputs["lgn"].timestamps.tolist() == [5.0, 12.3], node_set


def test_two_inputs_for_one_population_are_refused(tiny):
    edit_config(tiny, lambda c: c["inputs"].update(again={**c["inputs"]["lgn_in"]}))
    with pytest.raises(SonataError, match="one spike input per population") as err:
        load(tiny)
    assert err.value.field == "inputs/again/node_set"


def test_csv_spikes_with_bad_values_name_the_column(tiny):
    def use_csv(cfg):
        cfg["inputs"]["lgn_in"].update(input_file="$BASE_DIR/inputs/lgn.csv", module="csv")

    edit_config(tiny, use_csv)
    for body, field in (("nan lgn 0", "timestamps"), ("5.0 lgn x", "node_ids"), ("5.0 lgn -1", "node_ids")):
        (tiny / "inputs/lgn.csv").write_text(f"timestamps population node_ids\n1.5 lgn 1\n{body}\n")
        with pytest.raises(SonataError) as err:
            load(tiny)
        assert err.value.field == field and err.value.path.endswith("lgn.csv") and "line 3" in str(err.value)


def _two_population_spikes(root):
    with h5py.File(root / "inputs/lgn.h5", "a") as fh:
        fh["spikes/other/node_ids"] = np.array([0], dtype=np.uint64)
        fh["spikes/other/timestamps"] = np.array([3.0])


UNMATCHED_INPUTS = {
    "node set names nothing": (
        lambda r: edit_config(r, lambda c: c["inputs"]["lgn_in"].update(node_set="thalamus")),
        "config.json", "inputs/lgn_in/node_set"),
    "node set population unknown": (
        lambda r: edit_config(r, lambda c: c["inputs"]["lgn_in"].update(node_set={"population": "LGN"})),
        "config.json", "inputs/lgn_in/node_set"),
    "node set of real cells": (
        lambda r: edit_config(r, lambda c: c["inputs"]["lgn_in"].update(node_set="v1")),
        "config.json", "inputs/lgn_in/node_set"),
    "spike population matches nothing": (_two_population_spikes, "lgn.h5", "spikes/other"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(UNMATCHED_INPUTS))
def test_inputs_that_match_no_virtual_population_are_refused(tiny, case):
    edit, fname, field = UNMATCHED_INPUTS[case]
    edit(tiny)
    with pytest.raises(SonataError) as err:
        load(tiny)
    assert pathlib.Path(err.value.path).name == fname and err.value.field == field, str(err.value)


# ------------------------------------------------------------------------------------ 15: GLIF initial state

ALLEN = {"type": "GLIF", "El_reference": -0.07, "El": 0.002, "th_inf": 0.02, "R_input": 2e8, "C": 1e-10,
         "spike_cut_length": 20, "dt": 5e-5, "init_AScurrents": [0.0, 0.0], "asc_tau_array": [0.01, 0.1],
         "asc_amp_array": [-1e-11, -2e-11], "coeffs": {"th_inf": 1.0, "G": 1.0, "C": 1.0, "asc_amp_array": [1, 1]},
         "AScurrent_reset_method": {"params": {"r": [1.0, 1.0]}}}  # fmt: skip


@pytest.mark.parametrize("glif_model", ["glif_psc", "glif3_psc_nestml"])
def test_allen_glif_cells_start_at_E_L_like_bmtk(glif_model, nest_kernel):
    nest = nest_kernel
    model, params, _ = sonata.nest_model_and_params("nest:glif_lif_asc_psc", ALLEN, glif_model=glif_model)
    cell = nest.Create(model, params=params)
    v_m = cell.get("V_m") if model == "glif_psc" else cell.get("U_m") + cell.get("E_L")  # NESTML state is U_m
    assert v_m == pytest.approx(-68.0) and cell.get("E_L") == pytest.approx(-68.0)


# ------------------------------------------------------------------------------------ 16: malformed files


def _truncate(path: pathlib.Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _edit(path: pathlib.Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


NET = "network/"
HUGE_ROWS = max(10**10, os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 4)  # uint64 rows: 2x memory
MALFORMED = {
    "negative edge_group_index": (
        lambda r: replace_dataset(r / NET / "v1_to_v1_edges.h5", "edges/v1_to_v1/edge_group_index",
                                  np.array([0, 1, -1], dtype=np.int64)),
        "v1_to_v1_edges.h5", "edges/v1_to_v1/edge_group_index"),
    "float group index beyond int64": (  # found by tests/test_sonata_fuzz.py: wrapped to a negative index
        lambda r: replace_dataset(r / NET / "v1_nodes.h5", "nodes/v1/node_group_index", np.array([0.0, 1.0, 2.0**63])),
        "v1_nodes.h5", "nodes/v1/node_group_index"),
    "duplicate node_id": (
        lambda r: replace_dataset(r / NET / "v1_nodes.h5", "nodes/v1/node_id", np.array([0, 1, 1], dtype=np.uint64)),
        "v1_nodes.h5", "nodes/v1/node_id"),
    "fractional node_type_id": (
        lambda r: replace_dataset(r / NET / "v1_nodes.h5", "nodes/v1/node_type_id", np.array([100.0, 100.5, 100.0])),
        "v1_nodes.h5", "nodes/v1/node_type_id"),
    "infinite syn_weight in the edges file": (
        lambda r: replace_dataset(r / NET / "v1_to_v1_edges.h5", "edges/v1_to_v1/0/syn_weight",
                                  np.array([1.0, np.inf, 1.0])),
        "v1_to_v1_edges.h5", "edges/v1_to_v1/0/syn_weight"),
    "infinite syn_weight in the edge types": (
        lambda r: _edit(r / NET / "edge_types.csv", " -1.0 ", " -inf "), "edge_types.csv", "syn_weight"),
    "NaN spike time": (
        lambda r: replace_dataset(r / "inputs/lgn.h5", "spikes/lgn/timestamps", np.array([5.0, np.nan])),
        "lgn.h5", "spikes/lgn/timestamps"),
    "nodes file is not HDF5": (
        lambda r: (r / NET / "v1_nodes.h5").write_text("node_id,node_type_id\n0,100\n"), "v1_nodes.h5", "nodes"),
    "truncated edges file": (lambda r: _truncate(r / NET / "v1_to_v1_edges.h5"), "v1_to_v1_edges.h5", "edges"),
    "truncated spike file": (lambda r: _truncate(r / "inputs/lgn.h5"), "lgn.h5", "spikes"),
    "string node ids": (
        lambda r: replace_dataset(r / NET / "v1_nodes.h5", "nodes/v1/node_id", np.array([b"a", b"b", b"c"])),
        "v1_nodes.h5", "nodes/v1/node_id"),
    "string source ids": (
        lambda r: replace_dataset(r / NET / "v1_to_v1_edges.h5", "edges/v1_to_v1/target_node_id",
                                  np.array([b"1", b"2", b"0"])),
        "v1_to_v1_edges.h5", "edges/v1_to_v1/target_node_id"),
    "string timestamps": (
        lambda r: replace_dataset(r / "inputs/lgn.h5", "spikes/lgn/timestamps", np.array([b"5.0", b"12.3"])),
        "lgn.h5", "spikes/lgn/timestamps"),
    "string syn_weight": (
        lambda r: replace_dataset(r / NET / "v1_to_v1_edges.h5", "edges/v1_to_v1/0/syn_weight",
                                  np.array([b"1", b"2", b"3"])),
        "v1_to_v1_edges.h5", "edges/v1_to_v1/0/syn_weight"),
    "2-D node ids": (
        lambda r: replace_dataset(r / NET / "v1_nodes.h5", "nodes/v1/node_id",
                                  np.arange(3, dtype=np.uint64).reshape(3, 1)),
        "v1_nodes.h5", "nodes/v1/node_id"),
    "dataset declaring 1e10 rows": (  # (or twice this machine's memory, if that is more)
        lambda r: replace_dataset(r / NET / "v1_nodes.h5", "nodes/v1/node_type_id", shape=(HUGE_ROWS,),
                                  dtype=np.uint64, chunks=(1024,)),
        "v1_nodes.h5", "nodes/v1/node_type_id"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_files_raise_sonata_error_naming_file_and_field(tiny, case):
    edit, fname, field = MALFORMED[case]
    edit(tiny)
    with pytest.raises(SonataError) as err:
        load(tiny)
    assert pathlib.Path(err.value.path).name == fname, str(err.value)
    assert err.value.field == field, str(err.value)


# ------------------------------------------------------------------------------------ 17: paths


def test_write_refuses_population_names_that_leave_the_output_folder(tiny, tmp_path):
    net = load(tiny)
    net.nodes["../../.."] = net.nodes.pop("v1")
    out = tmp_path / "deep" / "er" / "out"
    before = sorted(p for p in tmp_path.rglob("*"))
    with pytest.raises(SonataError, match=r"\.\./\.\./\.\.") as err:
        net.write(out)
    assert err.value.field == "nodes/../../.."
    assert sorted(p for p in tmp_path.rglob("*") if out not in p.parents and p != out) == before


@pytest.mark.parametrize("name", ["../../outside.json", "/etc/outside.json", "sub/../../outside.json"])
def test_dynamics_params_outside_the_components_folder_are_refused(tiny, name):
    for where in (tiny / "components", tiny):  # where the names would lead (from components/cell_models)
        (where / "outside.json").write_text('{"C_m": 1.0}')
    if name.startswith("/"):
        name = str(tiny / "components/outside.json")
    _edit(tiny / NET / "v1_node_types.csv", " iaf.json", f" {name}")
    with pytest.raises(SonataError, match="outside the folder") as err:
        load(tiny)
    assert pathlib.Path(err.value.path).name == "v1_node_types.csv" and err.value.field == "dynamics_params"


def test_a_network_laid_out_like_nests_300_pointneurons_example_loads(tmp_path, nest_kernel):
    """NEST's own example: ${configdir} manifest, a node_sets_file that is not shipped, inputs naming a population
    with module "h5", model_type point_process, per-edge syn_weight and edges without any delay (NEST's 1 ms)."""
    write_tiny(
        tmp_path,
        edge_type_csv="edge_type_id target_query source_query dynamics_params model_template\n"
        "1 ei=='e' * exc.json static_synapse\n2 ei=='e' * exc.json static_synapse\n",
    )
    _edit(tmp_path / NET / "v1_node_types.csv", " point_neuron ", " point_process ")
    for name in ("v1_to_v1", "lgn_to_v1"):
        with h5py.File(tmp_path / NET / f"{name}_edges.h5", "a") as fh:
            fh[f"edges/{name}/0/syn_weight"] = np.array([1.0, 2.0, 3.0])

    def change(cfg):
        cfg["manifest"]["$BASE_DIR"] = "${configdir}"
        cfg["node_sets_file"] = "$BASE_DIR/node_sets.json"
        cfg["inputs"]["lgn_in"]["module"] = "h5"

    edit_config(tmp_path, change)
    net = load(tmp_path)
    built = build(nest_kernel, net)
    conns = connections(nest_kernel, built, net)
    assert len(conns) == 6 and {c[3] for c in conns} == {1.0}
    assert [list(t) for t in built.generators["lgn"].get("spike_times")] == [[5.0], [12.3]]
    # a node set name that needs the missing file: the error says so
    edit_config(tmp_path, lambda c: c["inputs"]["lgn_in"].update(node_set="thalamus"))
    with pytest.raises(SonataError, match="node_sets.json does not exist") as err:
        load(tmp_path)
    assert err.value.field == "inputs/lgn_in/node_set"


def test_inputs_of_other_types_are_refused_by_name_or_skipped_on_request(tmp_path):
    """A current clamp (or any input but spikes) used to be dropped silently: the network then ran without it."""
    write_tiny(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["inputs"]["clamp"] = {"input_type": "current_clamp", "module": "IClamp", "node_set": "v1", "amp": 0.1}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(SonataError, match=r"inputs/clamp/input_type.*'current_clamp' is not supported"):
        sonata.SonataNetwork.from_config(tmp_path / "config.json")
    net = sonata.SonataNetwork.from_config(tmp_path / "config.json", skip_unsupported_inputs=True)
    assert net.skipped_inputs == {"clamp": "current_clamp"} and "lgn" in net.inputs


# ------------------------------------------------------------------------------------ bmtk hooks are refused


def test_bmtk_python_hooks_are_refused_by_name_not_ignored(tmp_path):
    """bmtk computes weights with a weight_function and edits cells with model_processing (Python functions);
    nestgrad cannot run them, and ignoring them would build another network."""
    write_tiny(tmp_path, edge_type_csv="edge_type_id model_template syn_weight delay weight_function dynamics_params\n"
                                       "1 static_synapse 2.0 1.5 gaussian exc.json\n"
                                       "2 static_synapse -1.0 2.0 NULL exc.json\n")  # fmt: skip
    with pytest.raises(SonataError, match="'gaussian' is a bmtk Python hook") as err:
        sonata.spec_from_sonata(load(tmp_path))
    assert err.value.field == "weight_function" and err.value.path.endswith("edge_types.csv")
    write_tiny(tmp_path)
    types = tmp_path / "network/v1_node_types.csv"
    types.write_text(types.read_text().replace("dynamics_params\n", "dynamics_params model_processing\n")
                     .replace("iaf.json\n", "iaf.json aibs_perisomatic\n"))  # fmt: skip
    with pytest.raises(SonataError, match="'aibs_perisomatic' is a bmtk Python hook") as err:
        sonata.spec_from_sonata(load(tmp_path))
    assert err.value.field == "model_processing" and err.value.path.endswith("v1_node_types.csv")

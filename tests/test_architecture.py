"""The package's architecture holds: dependencies point one way (import-linter contracts in pyproject.toml), the
reference engine imports no NEST, architectures plug in through the registry, and user errors share one base."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_import_contracts_hold():
    lint = shutil.which("lint-imports") or str(pathlib.Path(sys.executable).parent / "lint-imports")
    if not pathlib.Path(lint).exists():
        pytest.fail("import-linter is a test dependency (requirements-test.txt): run `make test-deps`")
    result = subprocess.run([lint], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 4 kept, 0 broken." in result.stdout


def test_reference_engine_imports_no_nest():
    code = "import nestgrad.reference, nestgrad.reference.online, nestgrad.reference.bptt, sys; "
    code += "assert 'nest' not in sys.modules, 'nest imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_user_error_derives_from_one_base():
    from nestgrad import errors

    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, Exception)]
    assert len(classes) >= 8
    assert all(issubclass(c, errors.NestgradError) for c in classes)


def test_built_in_architectures_are_registered_with_their_tasks():
    from nestgrad.config import architectures, task_names
    from nestgrad.networks import registry

    assert set(architectures()) >= {"classic", "microcircuit", "v1"}
    for name in ("classic", "microcircuit", "v1"):
        assert registry.get(name).sections.tasks
    assert {"sine", "evidence", "thalamic", "v1_orientation", "v1_multi"} <= set(task_names())


def test_v1_task_names_of_the_configuration_are_the_v1_tasks():
    from nestgrad.config.v1 import V1_CORE_NEURONS, V1_TASK_NAMES
    from nestgrad.networks import v1_data
    from nestgrad.tasks.v1 import V1_TASKS

    assert tuple(V1_TASKS) == V1_TASK_NAMES
    assert V1_CORE_NEURONS == v1_data.N_FULL


def test_cli_reports_user_errors_in_one_line_and_bugs_with_a_traceback(tmp_path, monkeypatch, capsys):
    from nestgrad import cli

    bad = tmp_path / "bad.toml"
    bad.write_text('[network]\nneuron_model = "eprop_iaf_psc_exp"\nn_rec = -3\n')
    assert cli.main(["train", str(bad), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "network.n_rec = -3" in err

    def bug(args):
        raise KeyError("a bug, not a user error")

    monkeypatch.setattr(cli, "_cmd_models", bug)
    with pytest.raises(KeyError):
        cli.main(["models"])


def test_wiring_refuses_two_learning_rates_for_one_synapse_model(nest_kernel):
    """NEST keeps one optimizer setting per synapse model: two projections of one model with different learning
    rates would both learn at the rate set last, so the wiring function refuses them, naming both."""
    import numpy as np

    from nestgrad.errors import SpecError
    from nestgrad.nest_engine import wiring
    from nestgrad.spec import NetworkSpec, Population, Projection, Role

    optimizer = {"type": "gradient_descent", "eta": 1e-3, "batch_size": 1, "Wmin": -10.0, "Wmax": 10.0}
    spec = NetworkSpec(resolution=1.0, optimizer=optimizer | {"optimize_each_step": False})
    spec.add_population(Population("in", "parrot_neuron", 2, role=Role.INPUT))
    spec.add_population(Population("a", "eprop_iaf_psc_exp", 2))
    spec.add_population(Population("out", "eprop_readout", 1, role=Role.READOUT))
    edges = (np.array([0, 1]), np.array([0, 1]), np.array([0.1, 0.2]), np.array([1.0, 1.0]))
    spec.add_projection("fast", Projection("in", "a", *edges, plastic=np.array([True, True]), learning_rate=1e-2))
    spec.add_projection("slow", Projection("a", "out", edges[0], np.array([0, 0]), *edges[2:],
                                           plastic=np.array([True, True])))  # fmt: skip
    with pytest.raises(SpecError, match="resolution of 1.0 ms, the NEST kernel runs at 0.1 ms"):
        wiring.build(nest_kernel, spec)
    nest_kernel.resolution = 1.0
    with pytest.raises(SpecError, match="'fast' and 'slow' share the plastic synapse model 'eprop_synapse'"):
        wiring.build(nest_kernel, spec)


# the plastic synapse model each built-in gradient algorithm chose into these neurons before the algorithm registry
_STEP_SYNAPSE = {
    "eprop_iaf": "eprop_synapse",
    "eprop_iaf_adapt": "eprop_synapse",
    "eprop_iaf_psc_delta": "eprop_synapse",
    "eprop_iaf_psc_exp": "eprop_synapse",  # the microcircuit's thalamic synapses
    "eprop_iaf_psc_exp_nestml": "eprop_synapse",
    "eprop_iaf_psc_delta_adapt_nestml": "eprop_synapse",
    "eprop_iaf_psc_exp_adapt_nestml": "eprop_vector_synapse",  # three eligibility states
    "eprop_iaf_psc_exp_exc_inh_nestml": "eprop_vector_synapse",  # two receptor ports
    "eprop_glif3_psc": "eprop_vector_synapse",  # the V1 column
}


def test_built_in_gradient_algorithms_are_registered_and_choose_the_synapse_models_of_before(nest_kernel):
    from nestgrad.config import GRADIENT_ALGORITHMS, ConfigError, GradientAlgorithm, gradient_algorithms
    from nestgrad.errors import ModelError
    from nestgrad.networks.algorithms import Algorithm, get_algorithm, register_algorithm

    nest = nest_kernel
    assert set(GRADIENT_ALGORITHMS) == {"step", "event", "eventprop"} <= set(gradient_algorithms())
    step, event = get_algorithm(GradientAlgorithm.STEP), get_algorithm("event")
    for model, synapse in _STEP_SYNAPSE.items():
        assert step.synapse_into(nest, model) == synapse, model
        assert event.synapse_into(nest, model) == "eprop_event_synapse", model
        step.check(nest, model)
    for model in ("eprop_iaf_psc_exp", "eprop_glif3_psc", "eprop_iaf_psc_exp_adapt_nestml"):
        event.check(nest, model)  # nestgrad's neurons keep the running sums or products
    with pytest.raises(ModelError, match="'event' is not supported by network.neuron_model = 'eprop_iaf': .*running"):
        event.check(nest, "eprop_iaf", "network.neuron_model")
    with pytest.raises(ConfigError, match="network.gradient_algorithm = 'nope' is not registered; known: step, event"):
        get_algorithm("nope")
    with pytest.raises(ConfigError, match="'two words'"):
        register_algorithm(Algorithm("two words", step.synapse_into, step.refusal))


def test_the_networks_ask_the_algorithm_registry_and_never_branch_on_the_algorithm():
    sources = (REPO / "python" / "nestgrad" / "networks").glob("*.py")
    for path in sources:
        if path.name == "algorithms.py":
            continue
        text = path.read_text()
        for pattern in ("GradientAlgorithm.EVENT", "gradient_algorithm ==", "EVENT_SYNAPSE", "VECTOR_SYNAPSE"):
            assert pattern not in text, (path.name, pattern)

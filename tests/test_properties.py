"""Property-based tests (hypothesis) of the loaders a user feeds files to: the configuration (from_dict, from_toml),
checkpoints and exchange files (NetworkSpec.load). Whatever the input, it loads or raises a NestgradError subclass
that names the file or the key; never another exception, never a crash (issue 19, item 9).

Each test draws at most a few hundred examples and runs in seconds (no simulation: the loaders only).
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nestgrad.config import ExperimentConfig, NetworkConfig, OptimizerConfig, TaskConfig, TrainingConfig
from nestgrad.errors import CheckpointError, ConfigError, NestgradError, SpecError
from nestgrad.training.checkpoint import TrainingState, checkpoint_bytes, load_checkpoint

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SECTIONS = {
    "network": NetworkConfig,
    "task": TaskConfig,
    "optimizer": OptimizerConfig,
    "training": TrainingConfig,
}
KEYS = [(s, f.name) for s, klass in SECTIONS.items() for f in dataclasses.fields(klass)]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["sine", "evidence", "thalamic", "v1_orientation", "adam", "classic", "microcircuit", "v1"]),
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def _names_key(message: str, section: str, key: str) -> bool:
    return key in message and section in message


@FAST
@given(section_key=st.sampled_from(KEYS), value=json_values)
def test_config_with_one_bad_value_loads_or_names_the_key(section_key, value):
    section, key = section_key
    try:
        ExperimentConfig.from_dict({section: {key: value}})
    except ConfigError as err:
        assert _names_key(str(err), section, key), (section, key, value, str(err))


@FAST
@given(
    data=st.dictionaries(
        st.sampled_from([*SECTIONS, "other"]),
        st.dictionaries(st.sampled_from([k for _, k in KEYS] + ["unknown"]), json_values, max_size=5) | json_values,
        max_size=4,
    )
)
def test_any_configuration_loads_or_raises_a_config_error(data):
    try:
        cfg = ExperimentConfig.from_dict(data)
    except ConfigError as err:
        assert str(err)
    else:  # what loads survives the round trip through a checkpoint's JSON
        again = ExperimentConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
        assert again.to_dict() == cfg.to_dict() or _has_nan(cfg.to_dict())


def _has_nan(x) -> bool:
    if isinstance(x, dict):
        return any(_has_nan(v) for v in x.values())
    if isinstance(x, list):
        return any(_has_nan(v) for v in x)
    return isinstance(x, float) and math.isnan(x)


VALID_TOML = """
[network]
n_rec = 20
[task]
sequence_steps = 100
[optimizer]
eta = 1e-5
[training]
iterations = 3
"""


@FAST
@given(
    cut=st.integers(0, len(VALID_TOML)),
    insert=st.text(max_size=20) | st.binary(max_size=20).map(lambda b: b.decode("latin-1")),
    raw=st.booleans(),
    garbage=st.binary(max_size=64),
)
def test_any_toml_file_loads_or_raises_a_config_error_naming_the_file(cut, insert, raw, garbage):
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "c.toml"
        if raw:
            path.write_bytes(garbage)
        else:
            path.write_text(VALID_TOML[:cut] + insert + VALID_TOML[cut:], encoding="utf-8")
        try:
            ExperimentConfig.from_toml(path)
        except ConfigError as err:
            assert str(path) in str(err) or "configuration" in str(err), str(err)


# -- checkpoints ----------------------------------------------------------------------------------------------------
CONFIG = ExperimentConfig(network=NetworkConfig(n_rec=4, n_in=0), task=TaskConfig(sequence_steps=20))
SHAPES = {"in_rec": (4, 100), "rec_rec": (4, 4), "rec_out": (1, 4), "feedback": (4, 1)}


def _valid_state() -> TrainingState:
    rng = np.random.default_rng(0)
    weights = {k: rng.standard_normal(s) for k, s in SHAPES.items()}
    history = [{"iteration": k + 1, "loss": 1.0 / (k + 1), "rate_hz": 5.0, "seconds": 0.1} for k in range(2)]
    return TrainingState(2, weights, {}, history, 1)


VALID_CHECKPOINT = checkpoint_bytes(CONFIG, _valid_state())


def _load(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "checkpoint.npz"
        path.write_bytes(data)
        try:
            state = load_checkpoint(path, CONFIG, SHAPES)
        except CheckpointError as err:
            assert str(path) in str(err), str(err)
        else:
            assert state.iteration == len(state.history) >= 0
            for k, shape in SHAPES.items():
                assert state.weights[k].shape == shape and np.all(np.isfinite(state.weights[k]))


def test_the_valid_checkpoint_loads():
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "checkpoint.npz"
        path.write_bytes(VALID_CHECKPOINT)
        assert load_checkpoint(path, CONFIG, SHAPES).iteration == 2


@FAST
@given(
    edits=st.lists(st.tuples(st.integers(0, len(VALID_CHECKPOINT) - 1), st.integers(0, 255)), min_size=1, max_size=4),
    cut=st.none() | st.integers(0, len(VALID_CHECKPOINT)),
)
def test_damaged_checkpoint_bytes_load_or_raise_a_checkpoint_error(edits, cut):
    data = bytearray(VALID_CHECKPOINT)
    for pos, byte in edits:
        data[pos] = byte
    _load(bytes(data[:cut] if cut is not None else data))


def _load_edited_checkpoint(arrays: dict[str, np.ndarray]) -> str | None:
    """Write ``arrays`` as a checkpoint file and load it: None if it loads, else the CheckpointError's message,
    which must name the file (any other exception fails the test)."""
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "checkpoint.npz"
        path.write_bytes(buffer.getvalue())
        try:
            load_checkpoint(path, CONFIG, SHAPES)
        except CheckpointError as err:
            assert str(path) in str(err)
            return str(err)
    return None


META_KEYS = ["format", "iteration", "config", "history", "virtual_processes", "extra"]


@FAST
@given(changes=st.dictionaries(st.sampled_from(META_KEYS), json_values | st.just("DELETE"), min_size=1, max_size=3))
def test_edited_checkpoint_meta_loads_or_names_the_field(changes):
    import io

    with np.load(io.BytesIO(VALID_CHECKPOINT)) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays.pop("meta")))
    for key, value in changes.items():
        if value == "DELETE":
            meta.pop(key, None)
        else:
            meta[key] = value
    message = _load_edited_checkpoint(arrays | {"meta": np.array(json.dumps(meta))})
    assert message is None or "meta" in message or "different configuration" in message, message


arrays_strategy = st.one_of(
    st.builds(
        lambda shape, fill: np.full(shape, fill),
        st.lists(st.integers(0, 5), min_size=0, max_size=3).map(tuple),
        st.floats(allow_nan=True, allow_infinity=True) | st.integers(-5, 5) | st.booleans(),
    ),
    st.builds(lambda s: np.array([s]), st.text(max_size=5)),
)


@FAST
@given(
    changes=st.dictionaries(
        st.sampled_from(["w_in_rec", "w_rec_rec", "w_rec_out", "w_feedback", "opt_m_rec_rec", "opt_x", "other"]),
        arrays_strategy | st.just(None),
        min_size=1,
        max_size=3,
    )
)
def test_edited_checkpoint_arrays_load_or_name_the_field(changes):
    import io

    with np.load(io.BytesIO(VALID_CHECKPOINT)) as data:
        arrays = {k: data[k] for k in data.files}
    for key, value in changes.items():
        if value is None:
            arrays.pop(key, None)
        else:
            arrays[key] = value
    message = _load_edited_checkpoint(arrays)
    assert message is None or any(f"'{k}" in message for k in changes) or "meta" in message, (changes, message)


# -- exchange files (NetworkSpec.load) -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def spec_bytes() -> bytes:
    from nestgrad.comparison.nest_runs import spec_from_config

    cfg = ExperimentConfig(network=NetworkConfig(n_rec=4), task=TaskConfig(sequence_steps=20))
    with tempfile.TemporaryDirectory() as tmp:
        path = spec_from_config(cfg, 1).save(pathlib.Path(tmp) / "net.npz")
        return path.read_bytes()


SPEC_FIELDS = [
    "format",
    "resolution",
    "rec_model",
    "rec_params",
    "readout_params",
    "optimizer",
    "iteration_steps",
    "delays",
    "meta",
    "gradient_algorithm",
]
SPEC_ARRAYS = ["input_spikes", "target", "window", "w_in_rec", "w_rec_rec", "mask_rec_rec", "w_feedback"]
FIELD_WORDS = [*SPEC_FIELDS, *SPEC_ARRAYS, "weights", "masks", "spec_json", "tau", "C_m", "t_ref", "steps"]


def _load_spec(data: bytes) -> None:
    from nestgrad.reference.spec import NetworkSpec

    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "net.npz"
        path.write_bytes(data)
        try:
            NetworkSpec.load(path)
        except SpecError as err:
            assert str(path) in str(err), str(err)
            assert any(w in str(err) for w in FIELD_WORDS) or "not a nestgrad network file" in str(err), str(err)


@FAST
@given(
    doc_changes=st.dictionaries(st.sampled_from(SPEC_FIELDS), json_values | st.just("DELETE"), max_size=3),
    param_changes=st.dictionaries(
        st.sampled_from(["tau_m", "C_m", "t_ref", "V_th", "E_L", "tau_syn_ex", "new"]), json_values, max_size=3
    ),
    array_changes=st.dictionaries(st.sampled_from(SPEC_ARRAYS), arrays_strategy | st.just(None), max_size=2),
)
def test_edited_exchange_files_load_or_name_the_field(spec_bytes, doc_changes, param_changes, array_changes):
    import io

    with np.load(io.BytesIO(spec_bytes)) as data:
        arrays = {k: data[k] for k in data.files}
    doc = json.loads(str(arrays["spec_json"]))
    for key, value in doc_changes.items():
        if value == "DELETE":
            doc.pop(key, None)
        else:
            doc[key] = value
    if isinstance(doc.get("rec_params"), dict):
        doc["rec_params"].update(param_changes)
    for key, value in array_changes.items():
        if value is None:
            arrays.pop(key, None)
        else:
            arrays[key] = value
    arrays["spec_json"] = np.array(json.dumps(doc))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    _load_spec(buffer.getvalue())


@FAST
@given(edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4), cut=st.booleans())
def test_damaged_exchange_file_bytes_load_or_raise_a_spec_error(spec_bytes, edits, cut):
    data = bytearray(spec_bytes)
    for pos, byte in edits:
        data[pos % len(data)] = byte
    if cut:
        data = data[: edits[0][0] % len(data)]
    _load_spec(bytes(data))


def test_every_loader_error_is_a_nestgrad_error():
    for klass in (ConfigError, CheckpointError, SpecError):
        assert issubclass(klass, NestgradError)

"""nestgradmodule: builds, loads idempotently, registers the listed models with their documented defaults."""

from __future__ import annotations

import pathlib
import re

import pytest

import nestgrad

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_models_listed_from_build():
    names = nestgrad.model_names()
    assert "eprop_iaf_psc_exp" in names
    assert "glif3_psc_nestml" in names
    assert "eprop_event_synapse" in names
    for m in nestgrad.models():
        assert (REPO / m.source).exists(), f"{m.name}: source {m.source} missing"
        assert m.language in ("C++", "NESTML")
        assert m.kind == ("synapse" if m.name.endswith("_synapse") else "node")


def test_install_is_idempotent_and_survives_reset(nest_kernel):
    nest = nest_kernel
    assert set(nestgrad.install()) <= set(nest.node_models) | set(nest.synapse_models)
    assert nestgrad.install() == nestgrad.model_names()  # second call: no error, nothing reloaded
    nest.ResetKernel()  # unloads modules
    assert "eprop_iaf_psc_exp" not in nest.node_models
    nestgrad.install()
    assert all(m.name in (nest.synapse_models if m.kind == "synapse" else nest.node_models) for m in nestgrad.models())


def test_no_model_name_collides_with_nest(nest_kernel):
    # C++ model classes live in namespace nestgrad; model names must not shadow NEST's built-in ones either
    nest = nest_kernel
    nest.ResetKernel()  # unloads modules: NEST's own models only
    builtin = set(nest.node_models) | set(nest.synapse_models)
    for m in nestgrad.models():
        assert m.name not in builtin, m.name
        if m.language == "NESTML":
            assert m.name.endswith("_nestml"), m.name


def _documented_defaults(header: pathlib.Path) -> dict[str, str]:
    """Parameter rows of the rst tables in a model's doc block: ``name`` unit math default description."""
    rows = {}
    text = header.read_text()
    section = text[text.index("Parameters\n++++") : text.index("Recordables\n++++")]
    for line in section.splitlines():
        m = re.match(r"^``(\w+)``\s+(?:(?:pF|mV|pA|ms|Hz)\s+)?(?::math:`[^`]*`\s+)?(\S+)", line)
        if m:
            rows[m.group(1)] = m.group(2)
    return rows


def test_eprop_iaf_psc_exp_defaults_match_its_documentation(nest_kernel):
    header = REPO / "cpp_module" / "models" / "eprop_iaf_psc_exp.h"
    documented = _documented_defaults(header)
    assert len(documented) == 19, sorted(documented)  # 10 neuron + 9 e-prop parameters
    defaults = nest_kernel.GetDefaults("eprop_iaf_psc_exp")
    for name, text in documented.items():
        value = defaults[name]
        if isinstance(value, str):
            assert value == text.strip('"'), name
        elif text == "inf":
            assert value == float("inf"), name
        else:
            assert value == pytest.approx(float(text), rel=1e-3), f"{name}: documented {text}, code {value}"


def test_module_links_against_kernel_abi():
    # the build detects the ABI from the kernel's symbols; the installed module must use the same one
    import subprocess

    from nestgrad.nest_config import kernel_uses_cxx11_abi

    symbols = subprocess.run(
        ["nm", "-D", str(nestgrad.module.module_path())], capture_output=True, text=True, check=True
    ).stdout
    assert ("B5cxx11" in symbols) == kernel_uses_cxx11_abi()

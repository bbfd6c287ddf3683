"""Our nest-config replacement for the NEST wheel: correct values, and NESTML builds a module with it."""

from __future__ import annotations

import subprocess

import pytest

from nestgrad.nest_config import nest_package_dir, write_nest_config


def test_shim_prints_working_values(tmp_path):
    folder = write_nest_config(tmp_path)
    script = folder / "bin" / "nest-config"

    def query(option: str) -> str:
        return subprocess.run([str(script), option], capture_output=True, text=True, check=True).stdout.strip()

    assert query("--version") == "3.10.0"
    include = query("--includes").removeprefix("-I")
    assert (nest_package_dir() / "include" / "nest").samefile(include)
    assert (nest_package_dir() / "include" / "nest" / "eprop_archiving_node.h").exists()
    assert "_GLIBCXX_USE_CXX11_ABI=" in query("--cflags")
    assert subprocess.run([str(script), "--bogus"], capture_output=True).returncode != 0


@pytest.mark.slow
def test_nestml_builds_a_user_model_against_the_wheel(tmp_path, nest_kernel):
    """A user's own NESTML neuron, built by NESTML's builder with our shim, loads into the wheel's NEST (~25 s)."""
    pytest.importorskip("pynestml", reason="nestml is installed by `make setup`")
    from pynestml.frontend.pynestml_frontend import generate_nest_target

    model = tmp_path / "leaky_test_nestml.nestml"
    model.write_text(
        "model leaky_test_nestml:\n"
        "    state:\n        V_m mV = -70 mV\n"
        "    equations:\n        V_m' = -(V_m - E_L) / tau_m + I_e / C_m\n"
        "    parameters:\n        C_m pF = 250 pF\n        tau_m ms = 10 ms\n        E_L mV = -70 mV\n"
        "        I_e pA = 500 pA\n        V_th mV = -55 mV\n"
        "    output:\n        spike\n"
        "    update:\n        integrate_odes()\n"
        "        if V_m > V_th:\n            V_m = E_L\n            emit_spike()\n"
    )
    generate_nest_target(
        str(model),
        target_path=str(tmp_path / "target"),
        install_path=str(tmp_path / "install"),
        module_name="leakytestmodule",
        logging_level="ERROR",
        codegen_opts={"nest_path": str(write_nest_config(tmp_path / "nest_path"))},
    )
    nest = nest_kernel
    nest.Install(str(tmp_path / "install" / "leakytestmodule.so"))
    n = nest.Create("leaky_test_nestml")
    sr = nest.Create("spike_recorder")
    nest.Connect(n, sr)
    nest.Simulate(100.0)
    assert sr.n_events > 0

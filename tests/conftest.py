"""Shared fixtures. NEST is imported once per test session; every test that uses ``nest_kernel`` starts from a
fresh kernel with nestgradmodule loaded (``nest.ResetKernel()`` unloads modules, ``nestgrad.install()`` reloads)."""

from __future__ import annotations

import pytest


@pytest.fixture
def nest_kernel():
    import nest

    import nestgrad

    nest.ResetKernel()
    nest.verbosity = nest.VerbosityLevel.ERROR
    nestgrad.install()
    yield nest
    nest.ResetKernel()

"""Reading an architecture's own table (``[network.v1]``, ``[task.v1]``, ``[network.microcircuit]``, a plug-in's
``[network.params]``) into its frozen dataclass, with unknown keys refused by name."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

from nestgrad.errors import ConfigError

T = TypeVar("T")


def from_table(cls: type[T], table: Mapping[str, Any], where: str) -> T:
    """``cls(**table)`` after checking that every key is a field of ``cls``; ``where`` names the table in errors."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")
    return cls(**table)

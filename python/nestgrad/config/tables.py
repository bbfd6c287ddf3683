"""Reading an architecture's own table (``[network.v1]``, ``[task.v1]``, ``[network.microcircuit]``, a plug-in's
``[network.params]``) into its frozen dataclass, with unknown keys refused by name; and the checks of numbers that
several of these tables share (a finite number with a lower bound, a table of numbers by name)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
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


def finite_number(where: str, value: Any, lo: float = -math.inf, lo_open: bool = False, note: str = "") -> float:
    """``value`` as a float after checking that it is a finite number (a bool is not) and >= ``lo`` (> ``lo`` with
    ``lo_open``); ``where`` names it in errors, which end with ``note`` (in parentheses) where one is given."""
    bound = f"{'>' if lo_open else '>='} {lo}"
    tail = f" ({note})" if note else ""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        wanted = "a finite number" + (f" {bound}" if lo > -math.inf else "")
        raise ConfigError(f"{where} = {value!r}: {wanted} is required{tail}")
    if value < lo or (lo_open and value == lo):
        raise ConfigError(f"{where} = {value!r}: must be {bound}{tail}")
    return float(value)


def check_number_table(
    where: str,
    table: Any,
    known: Sequence[str],
    *,
    item: str,
    what: str,
    lo: float,
    lo_open: bool = False,
    note: str = "",
) -> None:
    """Check a table of name -> number, e.g. ``learning_rates = {in_hid = 0.01}``: a mapping (``where`` names it
    in errors) whose names are ``known`` (``item`` says what a name stands for, e.g. "projection") and whose values
    (``what``, e.g. "eta") are finite numbers >= ``lo`` (> ``lo`` with ``lo_open``); ``note`` ends the errors on
    values (e.g. "0 freezes it")."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where} = {table!r}: a table of {item} -> {what}")
    for name, value in table.items():
        if name not in known:
            raise ConfigError(f"{where}: unknown {item} {name!r}; known: {list(known)}")
        finite_number(f"{where}.{name}", value, lo, lo_open, note)

"""nestgrad.config.tables: the number checks shared by the architectures' tables (``finite_number``,
``check_number_table``): every refusal names the key, the bad name or value, and what is allowed."""

from __future__ import annotations

import math
import re

import pytest

from nestgrad.config.tables import check_number_table, finite_number
from nestgrad.errors import ConfigError

NAMES = ("in_hid", "hid_out")


def check(table, lo_open: bool = False) -> None:
    check_number_table("net.rates", table, NAMES, item="projection", what="eta", lo=0.0, lo_open=lo_open, note="0 frz")


@pytest.mark.parametrize(
    ("table", "lo_open", "message"),
    [
        ([0.1], False, "net.rates = [0.1]: a table of projection -> eta"),
        ({"in": 0.1}, False, "net.rates: unknown projection 'in'; known: ['in_hid', 'hid_out']"),
        ({"in_hid": math.nan}, False, "net.rates.in_hid = nan: a finite number >= 0.0 is required (0 frz)"),
        ({"in_hid": math.inf}, False, "net.rates.in_hid = inf: a finite number >= 0.0 is required (0 frz)"),
        ({"in_hid": "fast"}, False, "net.rates.in_hid = 'fast': a finite number >= 0.0 is required (0 frz)"),
        ({"in_hid": True}, False, "net.rates.in_hid = True: a finite number >= 0.0 is required (0 frz)"),
        ({"in_hid": 0.1, "hid_out": -1}, False, "net.rates.hid_out = -1: must be >= 0.0 (0 frz)"),
        ({"in_hid": 0.0}, True, "net.rates.in_hid = 0.0: must be > 0.0 (0 frz)"),
    ],
)
def test_number_table_refuses_by_name(table, lo_open, message) -> None:
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        check(table, lo_open)


def test_number_table_takes_known_names_with_numbers_at_the_closed_bound() -> None:
    check({})
    check({"in_hid": 0, "hid_out": 0.5})  # the closed lower end admits 0, ints and floats alike
    check({"hid_out": 1e-12}, lo_open=True)


def test_finite_number_returns_a_float_and_names_its_bound_only_where_there_is_one() -> None:
    assert finite_number("a", 3) == 3.0 and isinstance(finite_number("a", 3), float)
    assert finite_number("a", -2.5) == -2.5  # no lower bound by default
    with pytest.raises(ConfigError, match=r"^a = nan: a finite number is required$"):
        finite_number("a", math.nan)
    with pytest.raises(ConfigError, match=r"^a = 1: must be > 1$"):
        finite_number("a", 1, 1, lo_open=True)

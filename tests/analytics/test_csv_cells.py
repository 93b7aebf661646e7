"""Segment exports never hand a spreadsheet a formula (issue 12 §8: TAB, CR and leading blanks)."""

from __future__ import annotations

import pytest

from analytics.services import _csv_cell


@pytest.mark.parametrize(
    "value",
    ["=1+1", "+1", "-2", "@SUM(A1)", ' =HYPERLINK("x")', "  @cmd", "\t=1", "\r=1", "\tplain", "\rplain", "\n =1"],
)
def test_formula_like_cells_are_quoted(value):
    assert _csv_cell(value) == "'" + value


@pytest.mark.parametrize("value", ["plain", "a=b", "email@shop.example", " plain", "", "中文"])
def test_ordinary_cells_are_unchanged(value):
    assert _csv_cell(value) == value


def test_numbers_stay_numbers():
    assert _csv_cell(-3.5) == -3.5 and _csv_cell(0) == 0

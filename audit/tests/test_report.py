"""The CLI's text verdict: each kind with its text and ids (cut at ids_shown), dead-lettered orders apart."""

import datetime as dt

import pytest

from consistency_audit.auditor import Verdict
from consistency_audit.reconcile import KIND_TEXT, Kind
from consistency_audit.report import render

pytestmark = pytest.mark.unit


def verdict(missing: list[str], dead_lettered: list[str]) -> Verdict:
    discrepancies: dict[Kind, list[str]] = {kind: [] for kind in Kind} | {Kind.MISSING_ROW: missing}
    started = dt.datetime(2026, 12, 1, 2, 0, tzinfo=dt.UTC)
    return Verdict(discrepancies, True, "asked for", started, 1.5, 10, 5, 3, dead_lettered=dead_lettered)


def test_each_kind_is_named_with_its_ids_and_dead_lettered_orders_do_not_make_it_inconsistent() -> None:
    lines = render(verdict(["a", "b", "c"], ["x"]), ids_shown=2).splitlines()
    assert lines[1:3] == [f"  missing_row (3): {KIND_TEXT[Kind.MISSING_ROW]}", "      a, b ... (+1 more)"]
    assert lines[3].startswith("  dead-lettered (1), not a discrepancy:") and lines[4] == "      x"
    assert lines[-1] == "verdict: INCONSISTENT"

    clean = render(verdict([], ["x", "y"])).splitlines()
    assert clean[1].startswith("  dead-lettered (2)") and clean[-1] == "verdict: consistent"

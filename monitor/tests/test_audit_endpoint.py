"""GET /audit and the audit_* metrics over a verdict the test sets (no stack: the passes themselves are tested
in audit/tests and tests/e2e/test_audit.py)."""

import datetime as dt
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from consistency_audit import Auditor, Kind, Verdict
from consistency_audit.reconcile import AuditState, Tracked
from stack_monitor.audit_task import AUDIT, AuditTask, MonitorAuditSettings
from stack_monitor.config import MonitorSettings
from stack_monitor.console import counted_text
from stack_monitor.main import create_app

pytestmark = pytest.mark.unit


@pytest.fixture
async def app() -> AsyncIterator[FastAPI]:
    app = create_app(MonitorSettings(instance_id="monitor-test"), poll=False)
    async with app.router.lifespan_context(app):
        yield app


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8090")


async def test_audit_answers_503_naming_why_when_the_auditor_is_off(app: FastAPI) -> None:
    async with client(app) as http:
        answer = await http.get("/audit")
    assert answer.status_code == 503
    assert "auditor is off" in answer.json()["detail"]


async def test_audit_answers_the_last_verdict_with_capped_ids_and_metrics_count_each_kind(app: FastAPI) -> None:
    task = AuditTask(MonitorAuditSettings(db_user="reader", db_password="x" * 32, audit_ids_shown=2))
    app.state.audit = AUDIT.task = task
    async with client(app) as http:
        assert (await http.get("/audit")).json()["verdict"] == "no pass yet"
        found: dict[Kind, list[str]] = {kind: [] for kind in Kind} | {
            Kind.MISSING_ROW: ["a", "b", "c"],
            Kind.STOCK_DRIFT: ["P1"],
        }
        started = dt.datetime(2026, 11, 30, 21, 0, tzinfo=dt.UTC)
        task.last = Verdict(found, False, "incremental", started, 0.25, 10, 4, 7)
        body = (await http.get("/audit")).json()
        metrics = (await http.get("/metrics")).text

    assert body["consistent"] is False and body["verdict"] == "inconsistent"
    assert body["counts"]["missing_row"] == 3 and body["counts"]["stock_drift"] == 1
    assert body["ids"] == {"missing_row": ["a", "b"], "stock_drift": ["P1"]}
    assert (body["full"], body["duration_seconds"], body["started_at"]) == (
        False,
        0.25,
        "2026-11-30T21:00:00.000+00:00",
    )
    assert 'audit_discrepancies{kind="missing_row"} 3.0' in metrics
    assert 'audit_discrepancies{kind="overdue_pending"} 0.0' in metrics
    assert "audit_consistent 0.0" in metrics
    assert 'audit_pass_duration_seconds{mode="incremental"} 0.25' in metrics


async def test_the_answer_is_encoded_once_per_pass_and_row_counts_come_from_the_auditors_memory() -> None:
    settings = MonitorAuditSettings(db_user="reader", db_password="x" * 32)
    task = AuditTask(settings)
    assert task.row_counts() is None  # no pass yet: the console falls back to InnoDB's estimate
    ledger = AuditState(settled_by_status={"CONFIRMED": 7, "REJECTED": 2})
    ledger.orders = {"a": Tracked(status="PENDING", row="PENDING"), "b": Tracked(status="CONFIRMED")}
    task.auditor = Auditor(settings, ledger)
    try:
        nothing: dict[Kind, list[str]] = {kind: [] for kind in Kind}
        started = dt.datetime(2026, 12, 6, 10, 0, tzinfo=dt.UTC)
        task.last = Verdict(nothing, False, "incremental", started, 0.01, 0, 0, 2)
        body = task.answer_json()
        assert task.answer_json() is body  # the same pass: not encoded again
        counts = task.row_counts()
        assert counts is not None and counts.by_status == {"CONFIRMED": 7, "REJECTED": 2, "PENDING": 1}
        assert counts.as_of == started and task.row_counts() is counts  # counted once per pass

        ledger.orders["b"].row = "CONFIRMED"  # the next pass read b's row
        task.last = Verdict(nothing, False, "incremental", started + dt.timedelta(seconds=5), 0.01, 0, 1, 2)
        assert task.answer_json() != body
        again = task.row_counts()
        assert again is not None and again.by_status["CONFIRMED"] == 8
    finally:
        await task.auditor.close()


def test_the_console_says_what_its_order_count_is() -> None:
    assert "estimate" in counted_text(None)
    at = dt.datetime(2026, 12, 6, 10, 0, 5, tzinfo=dt.UTC)
    assert counted_text(at) == "rows in mydb.orders as the auditor knew them at 10:00:05 UTC (its last pass; no query)"

"""The consistency auditor inside the monitor: a pass every AUDIT_INTERVAL_SECONDS in the background (incremental,
with a full pass at start and every AUDIT_FULL_EVERY_SECONDS), `GET /audit` with the last verdict, and its figures
as Prometheus metrics. It reads with the monitor's own logins: the `monitor` Kafka principal (READ on the two
topics it reconciles) and the monitor's SELECT-only database account."""

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from pydantic import Field

from consistency_audit import Auditor, AuditSettings, Kind, Verdict
from servicekit.tasks import cancel_and_wait
from stack_monitor.config import MonitorSettings

log = logging.getLogger(__name__)


class MonitorAuditSettings(AuditSettings):
    # A full pass this often besides the incremental ones (0: only at start and when a check asks for one).
    audit_full_every_seconds: float = Field(3600.0, ge=0)


@dataclass(frozen=True)
class RowCounts:
    """Rows of mydb.orders per status as the auditor knows them after a pass: the rows it folded plus the rows of
    the orders it watches. No query: exact for the rows the sink writes (new ids, and the watched orders' rows
    read again); a row changed by hand shows once the row count and checksum catch it (AUDIT_TOTALS_EVERY_SECONDS)."""

    by_status: dict[str, int]
    as_of: dt.datetime  # the pass's start


class AuditTask:
    def __init__(self, settings: MonitorAuditSettings) -> None:
        self.settings = settings
        self.last: Verdict | None = None
        self.last_error: str | None = None
        self.last_full_at = 0.0
        self.auditor: Auditor | None = None
        self._task: asyncio.Task[None] | None = None
        self._answered: tuple[Verdict | None, str | None, bytes] | None = None
        self._counted: tuple[Verdict, RowCounts] | None = None

    @classmethod
    def for_monitor(cls, monitor: MonitorSettings) -> "AuditTask | None":
        """With the monitor's own logins; None when it has no database account (nothing to reconcile against)."""
        if not monitor.db_user:
            return None
        return cls(
            MonitorAuditSettings(
                db_host=monitor.db_host,
                db_port=monitor.db_port,
                db_hosts=monitor.db_hosts,
                db_user=monitor.db_user,
                db_password=monitor.db_password,
                kafka_bootstrap_servers=monitor.kafka_bootstrap_servers,
                kafka_username=monitor.kafka_username,
                kafka_password=monitor.kafka_password,
                kafka_admin_password=monitor.kafka_admin_password,
            )
        )

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run_forever(), name="consistency-audit")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])
            self._task = None

    async def _run_forever(self) -> None:
        auditor = self.auditor = Auditor(self.settings)
        try:
            while True:
                await self.run_once(auditor)
                await asyncio.sleep(self.settings.audit_interval_seconds)
        finally:
            self.auditor = None
            await auditor.close()

    async def run_once(self, auditor: Auditor) -> None:
        every = self.settings.audit_full_every_seconds
        full = bool(every) and time.monotonic() - self.last_full_at > every
        try:
            verdict = await auditor.run(full=full)
        except Exception as exc:  # a source is down: keep the last verdict, say why there is no newer one
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("audit pass failed", extra={"error": self.last_error})
            return
        if verdict.full:
            self.last_full_at = time.monotonic()
        self.last, self.last_error = verdict, None
        if not verdict.consistent:
            log.warning("audit: inconsistent", extra={"counts": verdict.counts()})

    def answer(self) -> dict[str, Any]:
        body: dict[str, Any] = {"last_error": self.last_error}
        if self.last is None:
            return {"consistent": None, "verdict": "no pass yet", **body}
        return {**self.last.as_json(self.settings.audit_ids_shown), **body}

    def answer_json(self) -> bytes:
        """`answer()` encoded, once per pass (the console and scrapers ask more often than passes happen)."""
        if self._answered is None or self._answered[:2] != (self.last, self.last_error):
            self._answered = (self.last, self.last_error, bytes(JSONResponse(self.answer()).body))
        return self._answered[2]

    def row_counts(self) -> RowCounts | None:
        """The rows per status the last pass knows of (counted once per pass, when first asked); None before it."""
        last, auditor = self.last, self.auditor
        if last is None or auditor is None or auditor.ledger is None:
            return None
        if self._counted is None or self._counted[0] is not last:
            self._counted = (last, RowCounts(auditor.ledger.row_counts(), last.started_at))
        return self._counted[1]


router = APIRouter()


@router.get("/audit")
async def audit(request: Request) -> Response:
    """The last verdict: consistent, counts and order ids per kind, the pass's duration and time."""
    task: AuditTask | None = request.app.state.audit
    if task is None:
        return JSONResponse({"detail": "the auditor is off: the monitor has no database account"}, status_code=503)
    return Response(task.answer_json(), media_type="application/json")


class AuditCollector(Collector):
    def __init__(self) -> None:
        self.task: AuditTask | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        found = GaugeMetricFamily(
            "audit_discrepancies", "Discrepancies the last audit pass found, by kind", labels=["kind"]
        )
        consistent = GaugeMetricFamily("audit_consistent", "1 when the last audit pass found everything consistent")
        duration = GaugeMetricFamily(
            "audit_pass_duration_seconds", "How long the last audit pass took", labels=["mode"]
        )
        finished = GaugeMetricFamily("audit_last_pass_timestamp_seconds", "When the last audit pass started (epoch s)")
        watched = GaugeMetricFamily("audit_watched_orders", "Orders the auditor still watches (not yet settled)")
        refused = GaugeMetricFamily(
            "audit_dead_lettered_orders",
            "Orders whose last record the sink dead-lettered (explained, not discrepancies)",
        )
        last = self.task.last if self.task is not None else None
        if last is not None:
            for kind in Kind:
                found.add_metric([kind.value], len(last.discrepancies.get(kind, [])))
            consistent.add_metric([], 1.0 if last.consistent else 0.0)
            duration.add_metric(["full" if last.full else "incremental"], last.duration_seconds)
            finished.add_metric([], last.started_at.timestamp())
            watched.add_metric([], last.watched)
            refused.add_metric([], len(last.dead_lettered))
        yield from (found, consistent, duration, finished, watched, refused)


# One per process; install_audit points it at the app's task.
AUDIT = AuditCollector()
REGISTRY.register(AUDIT)


def install_audit(app: FastAPI, monitor: MonitorSettings, *, run: bool) -> None:
    """`GET /audit` on `app`, and (with `run`) the background passes for the app's lifetime."""
    task = AuditTask.for_monitor(monitor) if run else None
    app.state.audit = AUDIT.task = task
    app.include_router(router)
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app_: FastAPI) -> AsyncIterator[Any]:
        async with inner(app_) as state:
            if task is not None:
                await task.start()
            try:
                yield state
            finally:
                if task is not None:
                    with contextlib.suppress(Exception):
                        await task.stop()

    app.router.lifespan_context = lifespan

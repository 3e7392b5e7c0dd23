"""The live console: GET /console/state gathers what is worth watching into one JSON document (every source asked
concurrently, each with a short timeout), and GET / serves the page that renders it every two seconds.

A source that does not answer in time, or answers with an error, becomes a section with `up: false` and the
reason; the others are shown as usual, so the page never breaks because one component is down. Consumer groups
and end offsets come from the monitor's own LagHistory (rated as the Burrow API rates them), not from Kafka again.
"""

import asyncio
import datetime as dt
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import urlencode

import httpx
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel
from sqlalchemy import column, select, table, text
from sqlalchemy.ext.asyncio import AsyncEngine

from order_contract.order import OrderStatus
from order_contract.table import ORDERS_TABLE
from order_contract.timestamps import epoch_ms
from servicekit.database import make_engine
from servicekit.discovery import ServiceInstance, instances_from_registry
from servicekit.tasks import cancel_and_wait
from stack_monitor.audit_task import AuditTask
from stack_monitor.config import MonitorSettings
from stack_monitor.history import LagHistory

T = TypeVar("T")
Registry = dict[str, list[ServiceInstance]]

PAGE = Path(__file__).parent / "static" / "console.html"
# Newest rows of mydb.orders listed with a link to their traces.
LATEST_ORDERS = 8
# Several open pages (or a page and a test) within this many seconds share one gathering.
REUSE_SECONDS = 1.0
# Long enough to read, short enough that one section cannot flood the page.
MAX_ERROR_CHARS = 240
# An order with no trace in Zipkin this long after it was taken was not sampled: it is not looked up again.
TRACE_GIVE_UP_MS = 60_000
# Orders whose trace (or its absence) is remembered.
TRACES_REMEMBERED = 512

ORDERS = table(
    ORDERS_TABLE,
    column("id"),
    column("order_id"),
    column("status"),
    column("product_id"),
    column("qty"),
    column("created_at"),
)

# The table's row count as InnoDB estimates it (no scan), until the auditor has counted.
ESTIMATED_ROWS = text(
    "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = :schema AND TABLE_NAME = 'orders'"
)

ACCEPTED_RATE = 'sum by (instance) (rate(orders_accepted_total{app="ORDER-SERVICE"}[1m]))'
ACCEPTED_TOTAL = 'sum by (instance) (orders_accepted_total{app="ORDER-SERVICE"})'


class Section(BaseModel, Generic[T]):
    """One source's part of the state: its data when it answered, else why not."""

    up: bool
    error: str | None = None
    data: T | None = None


class InstanceOut(BaseModel):
    instance_id: str
    host: str
    port: int
    status: str


class AppOut(BaseModel):
    app: str
    instances: list[InstanceOut]


class InstanceRateOut(BaseModel):
    instance: str
    per_second: float
    accepted: int


class OrderRatesOut(BaseModel):
    instances: list[InstanceRateOut]
    # orders_accepted_total summed: orders answered 201 since each order-service instance last started.
    accepted_total: int


class PartitionEndOut(BaseModel):
    partition: int
    end_offset: int


class TopicOut(BaseModel):
    topic: str
    end_offset_total: int
    partitions: list[PartitionEndOut]


class GroupPartitionOut(BaseModel):
    topic: str
    partition: int
    status: str
    lag: int


class GroupOut(BaseModel):
    group: str
    status: str
    totallag: int
    maxlag_seconds: float | None
    partitions: list[GroupPartitionOut]


class GroupsOut(BaseModel):
    last_poll_ms: int | None
    poll_error: str | None
    groups: list[GroupOut]


class TaskOut(BaseModel):
    id: int
    state: str
    worker_id: str
    error: str | None = None


class ConnectorOut(BaseModel):
    name: str
    type: str
    state: str
    worker_id: str
    tasks: list[TaskOut]


class LatestOrderOut(BaseModel):
    order_id: str
    status: str
    product_id: str
    qty: int
    created_at_ms: int
    # Its trace when Zipkin holds one (found by the order id tag), else a search: by the tag while its spans may
    # still arrive, around its time once it is known to have none (not sampled).
    trace: Literal["found", "looking", "not sampled", "off"]
    trace_id: str | None
    traces_url: str


class OrdersOut(BaseModel):
    total_rows: int | None
    by_status: dict[str, int]
    # What the figures are: the auditor's count after its last pass (no query), or, before its first pass,
    # InnoDB's estimate of the row count (by_status empty).
    counted: str
    counted_at_ms: int | None
    latest: list[LatestOrderOut]


class ProductOut(BaseModel):
    product_id: str
    product_name: str
    stock: int
    unit_price: int


class StockOut(BaseModel):
    served_by: str
    products: list[ProductOut]


class LinksOut(BaseModel):
    prometheus: str
    zipkin: str
    order_traces: str
    burrow: str


class ConsoleState(BaseModel):
    generated_at_ms: int
    links: LinksOut
    instances: Section[list[AppOut]]
    order_rates: Section[OrderRatesOut]
    topics: Section[list[TopicOut]]
    groups: Section[GroupsOut]
    connectors: Section[list[ConnectorOut]]
    orders: Section[OrdersOut]
    stock: Section[StockOut]
    # The consistency auditor's verdict, as its /audit endpoint on this monitor answers it; down ("not
    # available") while there is no such endpoint or it does not answer.
    audit: Section[dict[str, Any]]


# --- pure shaping of what each source answered ------------------------------------------------------------------


def apps_of(registry: Mapping[str, list[ServiceInstance]]) -> list[AppOut]:
    return [
        AppOut(app=app, instances=[InstanceOut.model_validate(i, from_attributes=True) for i in found])
        for app, found in sorted(registry.items())
    ]


def vector_by_instance(answer: Mapping[str, Any]) -> dict[str, float]:
    """A Prometheus instant-vector answer as {instance label: value}; a failed query raises."""
    if answer.get("status") != "success":
        raise ValueError(f"Prometheus: {answer.get('error') or 'query failed'}")
    return {str(sample["metric"].get("instance", "")): float(sample["value"][1]) for sample in answer["data"]["result"]}


def order_rates_of(rates: Mapping[str, float], accepted: Mapping[str, float]) -> OrderRatesOut:
    instances = sorted(set(rates) | set(accepted))
    return OrderRatesOut(
        instances=[
            InstanceRateOut(instance=i, per_second=round(rates.get(i, 0.0), 3), accepted=int(accepted.get(i, 0)))
            for i in instances
        ],
        accepted_total=int(sum(accepted.values())),
    )


def topics_of(history: LagHistory) -> list[TopicOut]:
    by_topic: dict[str, list[PartitionEndOut]] = {}
    for partition, end in history.end_offsets().items():
        by_topic.setdefault(partition.topic, []).append(PartitionEndOut(partition=partition.partition, end_offset=end))
    return [
        TopicOut(topic=topic, end_offset_total=sum(p.end_offset for p in partitions), partitions=partitions)
        for topic, partitions in sorted(by_topic.items())
    ]


def groups_of(history: LagHistory, now_ms: int) -> GroupsOut:
    groups = []
    for group in history.groups():
        rated = history.status(group, now_ms)
        if rated is None:
            continue
        partitions = [
            GroupPartitionOut(topic=p.topic, partition=p.partition, status=p.status.name, lag=p.current_lag)
            for p in rated.partitions
        ]
        groups.append(
            GroupOut(
                group=group,
                status=rated.status.name,
                totallag=rated.totallag,
                maxlag_seconds=rated.max_lag_seconds,
                partitions=partitions,
            )
        )
    return GroupsOut(last_poll_ms=history.last_poll_ms, poll_error=history.last_error, groups=groups)


def connectors_of(answer: Mapping[str, Any]) -> list[ConnectorOut]:
    """Connect's GET /connectors?expand=status answer."""
    connectors = []
    for name, described in sorted(answer.items()):
        status = described.get("status", {})
        connector = status.get("connector", {})
        tasks = [
            TaskOut(
                id=int(task.get("id", 0)),
                state=str(task.get("state", "UNKNOWN")),
                worker_id=str(task.get("worker_id", "")),
                error=_first_line(task.get("trace")),
            )
            for task in status.get("tasks", [])
        ]
        connectors.append(
            ConnectorOut(
                name=name,
                type=str(status.get("type", "")),
                state=str(connector.get("state", "UNKNOWN")),
                worker_id=str(connector.get("worker_id", "")),
                tasks=sorted(tasks, key=lambda task: task.id),
            )
        )
    return connectors


def _first_line(trace: object) -> str | None:
    if not isinstance(trace, str) or not trace:
        return None
    return trace.strip().splitlines()[0][:MAX_ERROR_CHARS]


def products_of(answer: list[dict[str, Any]]) -> list[ProductOut]:
    """catalog-service's GET /catalogs answer (camelCase on the wire)."""
    return [
        ProductOut(
            product_id=str(p["productId"]),
            product_name=str(p.get("productName", "")),
            stock=int(p["stock"]),
            unit_price=int(p.get("unitPrice", 0)),
        )
        for p in sorted(answer, key=lambda p: str(p["productId"]))
    ]


def counted_text(as_of: dt.datetime | None) -> str:
    """What the page says the order figures are."""
    if as_of is None:
        return "rows in mydb.orders, about (InnoDB's estimate: the auditor's first pass is still under way)"
    return f"rows in mydb.orders as the auditor knew them at {as_of:%H:%M:%S} UTC (its last pass; no query)"


def order_counts(rows: list[tuple[str, int]]) -> dict[str, int]:
    """Rows per status, every status of the order's lifecycle listed (0 when none), others after them."""
    counts = {status.value: 0 for status in OrderStatus}
    for status, count in rows:
        counts[str(status)] = counts.get(str(status), 0) + int(count)
    return counts


def trace_url(zipkin: str, trace_id: str) -> str:
    return f"{zipkin}/zipkin/traces/{trace_id}"


def trace_id_of(answer: list[list[dict[str, Any]]]) -> str | None:
    """The first trace of Zipkin's /api/v2/traces answer (a list of traces, each a list of spans)."""
    for trace in answer:
        for span in trace:
            return str(span["traceId"])
    return None


def traces_url(zipkin: str, *, order_id: str | None = None, created_at_ms: int | None = None, tag: str = "") -> str:
    """Zipkin's search page for order-service's traces: of one order by its id tag when the spans carry one,
    else around the order's time (an hour either side), else the last hour."""
    params: dict[str, str] = {"serviceName": "order-service", "limit": "10"}
    if order_id is not None and tag:
        params["annotationQuery"] = f"{tag}={order_id}"
    around_ms = created_at_ms if created_at_ms is not None else int(time.time() * 1000)
    params.update(lookback="millis", millis=str(2 * 3_600_000), endTs=str(around_ms + 3_600_000))
    return f"{zipkin}/zipkin/?{urlencode(params)}"


def audit_of(response: httpx.Response) -> dict[str, Any]:
    """The auditor's answer as it gave it; without one (no such endpoint, or the auditor off), why not."""
    if response.status_code == 404:
        raise LookupError("this monitor answers no /audit")
    if not response.is_success:
        try:
            detail = response.json().get("detail")
        except ValueError:
            detail = None
        raise LookupError(str(detail or f"/audit answered {response.status_code}"))
    verdict = response.json()
    return verdict if isinstance(verdict, dict) else {"verdict": verdict}


def describe(exc: BaseException) -> str:
    """A short reason for the page (never carries a password: none of our URLs or errors hold one)."""
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, LookupError):
        return str(exc)[:MAX_ERROR_CHARS]  # our own reasons, already worded for the page
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    return (f"{name}: {text}" if text else name)[:MAX_ERROR_CHARS]


def computed(compute: Callable[[], T]) -> Section[T]:
    """A section the monitor computes itself (from its LagHistory)."""
    try:
        return Section(up=True, data=compute())
    except Exception as exc:
        return Section(up=False, error=describe(exc))


async def section(fetch: Awaitable[T], within: float) -> Section[T]:
    try:
        async with asyncio.timeout(within):
            data = await fetch
    except TimeoutError:
        return Section(up=False, error=f"no answer within {within:g} s")
    except Exception as exc:
        return Section(up=False, error=describe(exc))
    return Section(up=True, data=data)


# --- asking the sources ------------------------------------------------------------------------------------------


class TraceFinder:
    """Which orders have a trace in Zipkin, asked once per order by its id tag and remembered: a trace found, or
    none TRACE_GIVE_UP_MS after the order was taken (not sampled). Asked in the background: the orders are shown
    at once with what is known, and a trace found meanwhile is linked at the next refresh, so a slow or absent
    Zipkin never holds the orders up."""

    def __init__(
        self, http: httpx.AsyncClient, zipkin: str, tag: str, budget_seconds: float, link_base: str | None = None
    ) -> None:
        """`zipkin`: where the monitor asks; `link_base`: where the page's links point (default: the same)."""
        self.http = http
        self.zipkin = zipkin
        self.link_base = link_base or zipkin
        self.tag = tag
        self.budget_seconds = budget_seconds
        self._known: dict[str, str | None] = {}
        self._asking: dict[str, asyncio.Task[None]] = {}

    def find(self, orders: Mapping[str, int]) -> dict[str, str]:
        """{order id: trace id} of `orders` (order id: taken at, epoch ms) known to have a trace; starts asking
        Zipkin about those not known yet."""
        if self.tag:
            for order_id, created_ms in orders.items():
                if order_id not in self._known and order_id not in self._asking:
                    task = asyncio.create_task(self._ask(order_id, created_ms), name=f"trace-of-{order_id}")
                    self._asking[order_id] = task
                    task.add_done_callback(functools.partial(self._asked, order_id))
        return {o: trace_id for o in orders if (trace_id := self._known.get(o)) is not None}

    async def settled(self) -> None:
        """Until the lookups started so far have ended (each is bounded by the budget)."""
        while self._asking:
            await asyncio.wait(list(self._asking.values()))

    async def close(self) -> None:
        await cancel_and_wait(list(self._asking.values()))

    def _asked(self, order_id: str, _: "asyncio.Task[None]") -> None:
        self._asking.pop(order_id, None)

    async def _ask(self, order_id: str, created_ms: int) -> None:
        trace_id = await self._lookup(order_id)
        if trace_id is not None or int(time.time() * 1000) - created_ms > TRACE_GIVE_UP_MS:
            self._remember(order_id, trace_id)

    def link(self, order_id: str, created_ms: int, traced: Mapping[str, str]) -> dict[str, Any]:
        """The order's trace fields of LatestOrderOut."""
        if order_id in traced:
            found = traced[order_id]
            return {"trace": "found", "trace_id": found, "traces_url": trace_url(self.link_base, found)}
        if not self.tag or order_id in self._known:
            state = "off" if not self.tag else "not sampled"
            around = traces_url(self.link_base, created_at_ms=created_ms)
            return {"trace": state, "trace_id": None, "traces_url": around}
        by_tag = traces_url(self.link_base, order_id=order_id, created_at_ms=created_ms, tag=self.tag)
        return {"trace": "looking", "trace_id": None, "traces_url": by_tag}

    async def _lookup(self, order_id: str) -> str | None:
        params = {"serviceName": "order-service", "annotationQuery": f"{self.tag}={order_id}", "limit": "1"}
        try:
            async with asyncio.timeout(self.budget_seconds):
                response = await self.http.get(f"{self.zipkin}/api/v2/traces", params=params)
            response.raise_for_status()
            return trace_id_of(response.json())
        except (TimeoutError, httpx.HTTPError, ValueError, KeyError):
            return None  # not known yet: asked again next time

    def _remember(self, order_id: str, trace_id: str | None) -> None:
        if len(self._known) >= TRACES_REMEMBERED:
            del self._known[next(iter(self._known))]  # the oldest remembered
        self._known[order_id] = trace_id


class Console:
    """The console's clients (one HTTP client, one small database pool) and its last gathering."""

    def __init__(self, settings: MonitorSettings) -> None:
        self.settings = settings
        self.timeout = settings.console_timeout_seconds
        self.http = httpx.AsyncClient(timeout=self.timeout)
        self.engine: AsyncEngine | None = None
        if settings.db_user and settings.db_password:
            self.engine = make_engine(settings, settings.orders_db, pool_size=1)
        # Where the monitor asks (loopback natively, the containers' names in compose) ...
        self.prometheus = f"http://{settings.prometheus_host}:{settings.prometheus_port}"
        self.zipkin = f"http://{settings.zipkin_host}:{settings.zipkin_port}"
        # ... and where the page sends a browser.
        self.prometheus_link = (settings.console_prometheus_url or self.prometheus).rstrip("/")
        self.zipkin_link = (settings.console_zipkin_url or self.zipkin).rstrip("/")
        self._latest: tuple[float, asyncio.Task[ConsoleState]] | None = None
        self.traces = TraceFinder(
            self.http, self.zipkin, settings.console_order_tag, self.timeout / 2, link_base=self.zipkin_link
        )

    async def close(self) -> None:
        await self.traces.close()
        await self.http.aclose()
        if self.engine is not None:
            await self.engine.dispose()

    async def state(self, app: FastAPI) -> ConsoleState:
        """The gathering started within the last REUSE_SECONDS (or still running), else a new one."""
        now = time.monotonic()
        if self._latest is None or now - self._latest[0] > REUSE_SECONDS:
            self._latest = (now, asyncio.create_task(self.gather(app)))
        return await asyncio.shield(self._latest[1])

    async def gather(self, app: FastAPI) -> ConsoleState:
        history: LagHistory = app.state.history
        now_ms = int(time.time() * 1000)
        # Asked once for two sections (each awaits it shielded: one's timeout must not cancel it for the other).
        registry = asyncio.create_task(self._registry())
        try:
            (instances, rates, connectors, orders, stock, audit) = await asyncio.gather(
                section(self._instances(registry), self.timeout),
                section(self._order_rates(), self.timeout),
                section(self._connectors(), self.timeout),
                section(self._orders(app), 2 * self.timeout),
                section(self._stock(registry), 2 * self.timeout),
                section(self.audit(app), self.timeout),
            )
        finally:
            registry.cancel()
        return ConsoleState(
            generated_at_ms=now_ms,
            links=LinksOut(
                prometheus=self.prometheus_link,
                zipkin=f"{self.zipkin_link}/zipkin/",
                order_traces=traces_url(self.zipkin_link),
                burrow=f"/v3/kafka/{history.cluster}/consumer",
            ),
            instances=instances,
            order_rates=rates,
            topics=computed(lambda: topics_of(history)),
            groups=computed(lambda: groups_of(history, now_ms)),
            connectors=connectors,
            orders=orders,
            stock=stock,
            audit=audit,
        )

    async def _registry(self) -> "Registry":
        """The registry of the first discovery server that answers (DISCOVERY_URL may list peers)."""
        failure: Exception = RuntimeError("DISCOVERY_URL names no server")
        for server in self.settings.discovery_urls:
            try:
                response = await self.http.get(f"{server.rstrip('/')}/apps", headers={"Accept": "application/json"})
                response.raise_for_status()
            except httpx.HTTPError as exc:
                failure = exc
                continue
            return instances_from_registry(response.json())
        raise failure

    async def _instances(self, registry: "asyncio.Task[Registry]") -> list[AppOut]:
        return apps_of(await asyncio.shield(registry))

    async def _order_rates(self) -> OrderRatesOut:
        rates, accepted = await asyncio.gather(self._query(ACCEPTED_RATE), self._query(ACCEPTED_TOTAL))
        return order_rates_of(rates, accepted)

    async def _query(self, promql: str) -> dict[str, float]:
        response = await self.http.get(f"{self.prometheus}/api/v1/query", params={"query": promql})
        response.raise_for_status()
        return vector_by_instance(response.json())

    async def _connectors(self) -> list[ConnectorOut]:
        settings = self.settings
        if not settings.connect_url:
            raise LookupError("CONNECT_URL is not set for the monitor")
        auth = httpx.BasicAuth(settings.connect_user, settings.connect_password) if settings.connect_password else None
        url = f"{settings.connect_url.rstrip('/')}/connectors"
        response = await self.http.get(url, params={"expand": "status"}, auth=auth)
        response.raise_for_status()
        return connectors_of(response.json())

    async def _orders(self, app: FastAPI) -> OrdersOut:
        """The counts per status come from the auditor (a COUNT by status read the whole table: measured 0.4 s at
        225,000 rows on the loaded machine); the newest rows from the primary key's end."""
        if self.engine is None:
            raise LookupError("no database account configured for the monitor (DB_USER / DB_PASSWORD)")
        audit: AuditTask | None = getattr(app.state, "audit", None)
        known = audit.row_counts() if audit is not None else None
        async with self.engine.connect() as connection:
            if known is None:
                estimate = await connection.execute(ESTIMATED_ROWS, {"schema": self.settings.orders_db})
                total, by_status, as_of = estimate.scalar(), {}, None
            else:
                by_status, as_of = order_counts(list(known.by_status.items())), known.as_of
                total = sum(by_status.values())
            newest = await connection.execute(
                select(ORDERS.c.order_id, ORDERS.c.status, ORDERS.c.product_id, ORDERS.c.qty, ORDERS.c.created_at)
                .order_by(ORDERS.c.id.desc())
                .limit(LATEST_ORDERS)
            )
            rows = [(str(o), str(s), str(p), int(q), epoch_ms(c)) for o, s, p, q, c in newest.all()]
        traced = self.traces.find({order_id: created_ms for order_id, *_, created_ms in rows})
        latest = [
            LatestOrderOut(
                order_id=order_id,
                status=status,
                product_id=product_id,
                qty=qty,
                created_at_ms=created_ms,
                **self.traces.link(order_id, created_ms, traced),
            )
            for order_id, status, product_id, qty, created_ms in rows
        ]
        return OrdersOut(
            total_rows=None if total is None else int(total),
            by_status=by_status,
            counted=counted_text(as_of),
            counted_at_ms=None if as_of is None else int(as_of.timestamp() * 1000),
            latest=latest,
        )

    async def _stock(self, registry: "asyncio.Task[Registry]") -> StockOut:
        """From the first UP catalog-service instance that answers (its public GET /catalogs)."""
        candidates = [i for i in (await asyncio.shield(registry)).get("CATALOG-SERVICE", []) if i.status == "UP"]
        if not candidates:
            raise LookupError("no catalog-service instance is UP in discovery")
        failures = []
        for instance in candidates:
            try:
                response = await self.http.get(f"{instance.base_url}/catalogs")
                response.raise_for_status()
            except httpx.HTTPError as exc:
                failures.append(f"{instance.instance_id}: {describe(exc)}")
                continue
            return StockOut(served_by=instance.instance_id, products=products_of(response.json()))
        raise LookupError("; ".join(failures))

    async def audit(self, app: FastAPI) -> dict[str, Any]:
        """The auditor's verdict from this very app's /audit (in process, no network)."""
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://monitor") as client:
            return audit_of(await client.get("/audit"))


def router(settings: MonitorSettings) -> APIRouter:
    """The page at / and its data at /console/state; the console's clients live as long as the app."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        console = Console(settings)
        app.state.console = console
        try:
            yield
        finally:
            await console.close()

    console_router = APIRouter(lifespan=lifespan)

    @console_router.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(PAGE, media_type="text/html", headers={"Cache-Control": "no-cache"})

    @console_router.get("/console/state", response_model=ConsoleState)
    async def console_state(request: Request) -> ConsoleState:
        console: Console = request.app.state.console
        return await console.state(request.app)

    return console_router

"""How cost grows with the orders table: intake, the list's p99, sync lag, an auditor pass and a console refresh on
a table of 10,000, 1,000,000 and 10,000,000 rows that the benchmark fills in its own database, each figure next
to the same figure at the smallest size (the anchor; its growth ratio) and a plain `SELECT COUNT(*)` of the
table (a scan: what growing in step with the rows looks like).

    .venv/bin/python -m bench.cost_growth [--sizes 10000,1000000,10000000] [--rounds 3] [--seconds 5]
        [--audit-up-to 1000000]

What each figure is, at each size (rows are added by the server from MariaDB's sequence engine, a million to a
multi-row INSERT ... SELECT, with progress):
- intake: one private order-service instance (as bench/read_your_writes.py runs them) pointed at the bench's
  database (ORDERS_DB, ORDER_VIEW=false, its table not migrated), wrk -c64 POSTs for `--seconds`: orders/s. It
  publishes to Kafka and reads no table, so the row count should not move it: a flat figure is the finding.
  Measured last in each round, and its orders (settled by the bench stack's catalog-service and sink) waited
  for, so that their aftermath does not load the round's other figures.
- list p99: the same instance, GET /{userId}/orders (the service's own query: user_id, newest first) of a user with
  50 rows among the table's, wrk -c32.
- sync lag: a private JDBC sink connector (bench/sink_vs_raw.py's own_sink: the stack's orders-sink config on a
  topic and database of the run's) writing into the big table; one record committed per transaction, 50 a second,
  committed -> row visible (a poller as bench/sync_lag.py's).
- auditor pass: consistency_audit's Auditor on bench/audit_cost.py's own topics and `bench_audit` database (its
  helpers), grown to the size; after a catch-up pass (printed, not a figure) each round adds 1,000 orders and
  times the incremental pass with the row checksum (the whole-table COUNT and BIT_XOR the stack runs every
  AUDIT_TOTALS_EVERY_SECONDS). Above `--audit-up-to` it is not measured: its topics hold three records per order.
  Measured here (2 cores): a million orders written in 60-70 s and caught up in 56-58 s; from 1M to 10M, 730 s to
  write, 1,147 s to catch up, ~7 GB resident in this process and 17 GB of topics, hence 1M by default.
- console refresh: the monitor's Console.gather (monitor/stack_monitor/console.py) against the bench stack's
  discovery, Prometheus, Connect and catalog-service, and the big table as its orders database; the auditor is not
  attached, so the orders section is what it shows before the auditor's first pass (InnoDB's row estimate and the
  newest rows by primary key).

Runs on the benchmarks' own stack (stack_support.bench_stack; started for it when run alone). Everything is the
run's own and removed afterwards: the sink's topic, connector, group and database, audit_cost's topics and
database, the instance's orders (user `bench-<run>`, product BENCH-<id>, settled through that stack's whole flow
before the product is removed). Figures are medians of `--rounds` with their range. `--quick`: 1,000 and 10,000
rows, one round of 2 s.
"""

import argparse
import asyncio
import contextlib
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import UnknownTopicOrPartitionError
from fastapi import FastAPI

from bench import audit_cost, sync_lag
from bench import order_publish as order_bench
from bench import sink_vs_raw as sink_bench
from bench.read_your_writes import READ_SCRIPT
from consistency_audit import Auditor
from launcher.connect import answering_url
from order_contract.connect_record import order_record_key, order_record_value
from servicekit.kafka import ensure_topics, transactional_producer
from servicekit.testing import eventually
from stack_description.access import ORDER_SERVICE_KAFKA
from stack_description.settings import StackConfig
from stack_monitor.config import MonitorSettings
from stack_monitor.console import Console
from stack_monitor.history import LagHistory
from stack_support.bench_stack import on_bench_stack, parse_args
from stack_support.database import operator_connection

SIZES = (10_000, 1_000_000, 10_000_000)
FILL_CHUNK = 1_000_000  # rows a statement: one transaction the server fills from seq_1_to_<chunk>
LISTED_ORDERS = 50  # each user of the filled rows has this many; the listed one among them
SYNC_RATE = 50.0  # records a second, one transaction each
AUDIT_NEW = 1000
READERS, WRITERS = 32, 64
FIGURES = ("intake (orders/s)", "list p99 (ms)", "sync lag p99 (ms)", "auditor pass (ms)", "console refresh (ms)")
SCAN = "SELECT COUNT(*) (ms)"
AUDIT_TOPICS = (audit_cost.ORDERS_TOPIC, audit_cost.STOCK_TOPIC, audit_cost.DEAD_LETTER_TOPIC)


@dataclass
class Measured:
    """One size's rounds per figure, and why a figure was not measured."""

    rows: int
    rounds: dict[str, list[float]] = field(default_factory=dict)
    not_measured: dict[str, str] = field(default_factory=dict)

    def add(self, figure: str, value: float) -> None:
        self.rounds.setdefault(figure, []).append(value)


def user_of(run: str, number: int) -> str:
    return f"bench-{run}-u{number // LISTED_ORDERS}"


def grow_table(config: StackConfig, database: str, run: str, first: int, last: int) -> None:
    """Rows `first`..`last` (settled orders, LISTED_ORDERS per user), a million to a statement, with progress."""
    connection = operator_connection(config, database)
    try:
        with connection.cursor() as cursor:
            for start in range(first, last + 1, FILL_CHUNK):
                end = min(start + FILL_CHUNK - 1, last)
                started = time.perf_counter()
                cursor.execute(
                    "INSERT INTO orders (order_id, user_id, product_id, qty, unit_price, total_price, status,"
                    " created_at) SELECT CONCAT('bench-', %s, '-', LPAD(n, 9, '0')),"
                    f" CONCAT('bench-', %s, '-u', n DIV {LISTED_ORDERS}), 'BENCH-GROWTH', 1, 100, 100,"
                    " IF(n MOD 10 = 0, 'REJECTED', 'CONFIRMED'),"
                    " TIMESTAMP'2026-11-30 00:00:00' + INTERVAL n * 1000 MICROSECOND"
                    f" FROM (SELECT seq + {start - 1} AS n FROM seq_1_to_{end - start + 1}) s",
                    (run, run),
                )
                connection.commit()
                print(f"    rows up to {end:>12,} ({time.perf_counter() - started:.1f} s)", flush=True)
    finally:
        connection.close()


def scan_ms(config: StackConfig, database: str) -> float:
    connection = operator_connection(config, database)
    try:
        with connection.cursor() as cursor:
            started = time.perf_counter()
            cursor.execute("SELECT COUNT(*) FROM orders")
            cursor.fetchall()
            return (time.perf_counter() - started) * 1000
    finally:
        connection.close()


async def sync_lag_p99(sink: sink_bench.BenchSink, seconds: float) -> float:
    """SYNC_RATE records a second for `seconds`, each its own transaction: commit -> row in the big table (p99)."""
    table = sink.config.with_values(ORDERS_DB=sink.database)
    orders = sink_bench.settled_orders(f"bench-{sink.run}-{uuid.uuid4().hex[:6]}", int(SYNC_RATE * seconds))
    seen = sync_lag.Round()
    done = asyncio.Event()
    poller = asyncio.create_task(sync_lag.poll_table(table, seen, done))
    producer = transactional_producer(sink.config.kafka_access, f"{sink.connector}-lag", linger_ms=0)
    await producer.start()
    try:
        start = time.monotonic()
        for number, order in enumerate(orders):
            await asyncio.sleep(max(0.0, start + number / SYNC_RATE - time.monotonic()))
            async with producer.transaction():
                await producer.send(sink.topic, order_record_value(order), key=order_record_key(order))
            seen.accepted[order.order_id] = time.monotonic()
        with contextlib.suppress(AssertionError):  # what has no row by then is reported below
            await eventually(
                lambda: len(seen.visible) >= len(seen.accepted) or None, within=sync_lag.SETTLE_SECONDS, what="rows"
            )
    finally:
        done.set()
        await poller
        await producer.stop()
    if len(seen.visible) < len(seen.accepted):
        raise SystemExit(f"{len(seen.accepted) - len(seen.visible)} rows not visible in {sync_lag.SETTLE_SECONDS} s")
    return sync_lag.percentile(seen.lags_ms(seen.visible), 0.99)


async def console_ms(console: Console, app: FastAPI) -> float:
    started = time.perf_counter()
    state = await console.gather(app)
    took = (time.perf_counter() - started) * 1000
    if not state.orders.up:
        raise SystemExit(f"the console's orders section is down: {state.orders.error}")
    return took


def console_for(config: StackConfig, database: str) -> tuple[Console, FastAPI]:
    """The monitor's console with the big table as its orders database; an app holding what gather() reads (an
    empty lag history, no auditor attached)."""
    settings = MonitorSettings(
        instance_id="bench-cost-growth-console",
        orders_db=database,
        connect_url=answering_url(config),
        connect_user=config.get("CONNECT_MONITOR_USER"),
        connect_password=config.get("CONNECT_MONITOR_PASSWORD"),
    )
    app = FastAPI()
    app.state.history = LagHistory(settings.monitor_cluster, settings.monitor_window, settings.monitor_allowed_lag)
    app.state.audit = None
    return Console(settings), app


class AuditStage:
    """bench/audit_cost.py's topics and database, grown with the sizes; one Auditor across them, so a size costs a
    catch-up pass over what was added, not a full pass."""

    def __init__(self, config: StackConfig, run: str) -> None:
        self.config, self.run, self.orders = config, run, 0
        self.auditor = Auditor(audit_cost.audit_settings())

    async def start(self) -> None:
        await ensure_topics(self.config.kafka_access, list(AUDIT_TOPICS), 3)
        await asyncio.to_thread(audit_cost.make_database, self.config)

    async def add(self, count: int) -> None:
        await asyncio.to_thread(audit_cost.fill_database, self.config, self.run, self.orders + 1, count)
        await audit_cost.publish(self.config, self.run, self.orders + 1, count)
        self.orders += count

    async def grow_to(self, size: int) -> None:
        started = time.perf_counter()
        await self.add(size - self.orders)
        written = time.perf_counter() - started
        verdict = await self.pass_ms(full=not self.auditor.ledger)
        print(f"    auditor's topics and tables at {size:,} orders ({written:.0f} s); catch-up pass {verdict:.0f} ms")

    async def pass_ms(self, full: bool = False) -> float:
        await asyncio.sleep(self.auditor.settings.audit_sink_lag_seconds)
        verdict = await self.auditor.run(full=full)
        if not verdict.consistent:
            raise SystemExit(f"the bench's own auditor found discrepancies: {verdict.as_json()}")
        return verdict.duration_seconds * 1000

    async def round_ms(self) -> float:
        await self.add(AUDIT_NEW)
        return await self.pass_ms()

    async def close(self) -> None:
        await self.auditor.close()
        admin = AIOKafkaAdminClient(**self.config.kafka_access.client_options())
        await admin.start()
        try:
            await admin.delete_topics(list(AUDIT_TOPICS))
        except UnknownTopicOrPartitionError:
            pass  # it failed before making them
        finally:
            await admin.close()
            await asyncio.to_thread(audit_cost.drop_database, self.config)


RATE, P99 = attrgetter("orders_per_second"), attrgetter("p99_ms")


async def wrk(
    url: str, script: Path, clients: int, seconds: int, figure: Callable[[order_bench.Figures], float]
) -> float:
    figures = await asyncio.to_thread(order_bench.run_wrk, url, script, clients, seconds)
    if figures.failed:
        raise SystemExit(f"{figures.failed} requests to {url} failed or timed out")
    return figure(figures)


async def timed(measured: Measured, figure: str, measure: Callable[[], Awaitable[float]]) -> None:
    value = await measure()
    measured.add(figure, value)
    print(f"    {figure:<22} {value:>10,.1f}", flush=True)


async def one_size(
    size: int,
    run: str,
    args: argparse.Namespace,
    sink: sink_bench.BenchSink,
    instance: order_bench.Instance,
    scripts: dict[str, Path],
    audit: AuditStage,
    console: tuple[Console, FastAPI],
) -> Measured:
    measured = Measured(size)
    if size <= args.audit_up_to:
        await audit.grow_to(size)
    else:
        measured.not_measured[FIGURES[3]] = (
            f"above --audit-up-to {args.audit_up_to:,}: {3 * size:,} records to write and one pass to read them"
        )
    intake = f"{instance.url}/bench-{run}/orders"
    listed = f"{instance.url}/{user_of(run, LISTED_ORDERS)}/orders"
    for number in range(args.rounds):
        print(f"  {size:,} rows, round {number + 1}", flush=True)
        await timed(measured, FIGURES[1], lambda: wrk(listed, scripts["read"], READERS, args.seconds, P99))
        await timed(measured, FIGURES[2], lambda: sync_lag_p99(sink, args.seconds))
        if size <= args.audit_up_to:
            await timed(measured, FIGURES[3], audit.round_ms)
        await timed(measured, FIGURES[4], lambda: console_ms(*console))
        await timed(measured, SCAN, lambda: asyncio.to_thread(scan_ms, sink.config, sink.database))
        await timed(measured, FIGURES[0], lambda: wrk(intake, scripts["post"], WRITERS, args.seconds, RATE))
        # Its orders go through the bench stack's whole flow: settled before the next round measures anything.
        await asyncio.to_thread(order_bench.wait_settled, sink.config, f"bench-{run}")
    return measured


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):,.1f} ({min(values):,.1f}-{max(values):,.1f})"


def report(results: list[Measured]) -> None:
    anchor = results[0]
    print(f"\nmedians of the rounds (range); ratio: the median against the same figure at {anchor.rows:,} rows")
    for figure in (*FIGURES, SCAN):
        print(f"  {figure}")
        for measured in results:
            if figure in measured.not_measured:
                print(f"    {measured.rows:>12,} rows: not measured: {measured.not_measured[figure]}")
                continue
            values = measured.rounds[figure]
            base = anchor.rounds.get(figure)
            ratio = f"   x{statistics.median(values) / statistics.median(base):.2f}" if base else ""
            print(f"    {measured.rows:>12,} rows: {spread(values):<32}{ratio}")


async def bench(args: argparse.Namespace) -> None:
    config = StackConfig.load()
    run = uuid.uuid4().hex[:8]
    product_id = await order_bench.with_bench_product(stock=1_000_000_000)
    scripts = {
        "post": order_bench.wrk_script(order_bench.WRK_SCRIPT % (order_bench.bearer(f"bench-{run}"), product_id)),
        "read": order_bench.wrk_script(READ_SCRIPT % order_bench.bearer(user_of(run, LISTED_ORDERS))),
    }
    results: list[Measured] = []
    try:
        async with sink_bench.own_sink(config) as sink:
            await sink_bench.set_connector_state(sink, "resume", "RUNNING")
            env = {
                **ORDER_SERVICE_KAFKA.env(config),
                "ORDERS_DB": sink.database,
                "MIGRATE_ORDERS_TABLE": "false",
                "ORDER_VIEW": "false",
            }
            instance = order_bench.start_instance(f"order-bench-{run}-growth", True, env)
            audit = AuditStage(config, run)
            console = console_for(config, sink.database)
            try:
                order_bench.wait_ready(instance, product_id, f"bench-{run}")
                # Uncounted: a fresh instance publishes slower in its first seconds, a console's first gathering
                # opens its connections.
                url = f"{instance.url}/bench-{run}/orders"
                await asyncio.to_thread(order_bench.run_wrk, url, scripts["post"], WRITERS, args.seconds)
                await asyncio.to_thread(order_bench.wait_settled, config, f"bench-{run}")
                await console[0].gather(console[1])
                await audit.start()
                rows = 0
                for size in args.sizes:
                    print(f"filling {sink.database}.orders to {size:,} rows", flush=True)
                    await asyncio.to_thread(grow_table, config, sink.database, run, rows + 1, size)
                    rows = size
                    results.append(await one_size(size, run, args, sink, instance, scripts, audit, console))
            finally:
                order_bench.stop_instance(instance)
                await console[0].close()
                await audit.close()
    finally:
        for path in scripts.values():
            path.unlink()
        try:
            order_bench.wait_settled(config, f"bench-{run}")
        finally:
            await order_bench.remove_bench_product(product_id)
    report(results)


def sizes(text: str) -> list[int]:
    return sorted(int(size.replace("_", "")) for size in text.split(","))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=sizes, default=list(SIZES), help="rows, comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5, help="of each wrk run and of each sync-lag round")
    parser.add_argument("--audit-up-to", type=int, default=1_000_000, help="the largest size the auditor is timed at")
    args = parse_args(parser, sizes=[1000, 10_000], rounds=1, seconds=2)
    on_bench_stack()
    asyncio.run(bench(args))


if __name__ == "__main__":
    main()

"""Sink throughput, the sink alone: settled order records already on a topic, drained by a JDBC sink connector into
MariaDB, next to a raw multi-row INSERT ... ON DUPLICATE KEY UPDATE of the same rows, in the same run.

    .venv/bin/python bench/sink_vs_raw.py [--records 100000] [--rounds 5]

Everything it touches is its own, made for the run and removed afterwards (also when it fails): the topic
`bench-orders-<run>` (partitions like `orders`), the connector `bench-sink-<run>` (infra/connect/orders-sink.json
with only its topic, database and dead-letter topic changed) and its consumer group, and the database
`bench_sink_<run>` with two tables made LIKE mydb.orders (`orders` for the sink, `orders_raw` for the raw upsert).
Nothing of the stack's (`orders`, mydb.orders, its expirers, catalog-service, the auditor) sees a record or row of it.

Each round: with the connector paused, the records are produced (CONFIRMED orders, one record per row, Connect
JSON as order-service writes them), then the connector is resumed and the drain timed until the last row is
visible; the raw side upserts the same rows in batches of RAW_BATCH, one commit each. Rounds alternate which side
goes first; figures are medians with the rounds' range. Runs on the benchmarks' own stack (stack_support.bench_stack;
started for it when run alone), not make up's. `--quick`: 300 records, one round, no warm-up.
"""

import argparse
import asyncio
import contextlib
import json
import statistics
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pymysql
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import GroupIdNotFound, KafkaError, NonEmptyGroup, UnknownTopicOrPartitionError
from aiokafka.errors import for_code as kafka_error
from aiokafka.protocol.admin import DeleteGroupsRequest

from launcher.connect import answering_url
from order_contract.connect_record import order_record_key, order_record_value
from order_contract.order import Order, OrderStatus
from order_contract.timestamps import now_ms
from servicekit.kafka import ensure_topics, transactional_producer
from stack_description.connectors import CONNECTOR_DIR, SINK_CONNECTOR, rest_auth
from stack_description.settings import StackConfig
from stack_support.bench_stack import on_bench_stack, parse_args
from stack_support.database import operator_connection

RAW_BATCH = 1000
WARM_UP_RECORDS = 50_000
PER_TRANSACTION = 5000
DRAIN_TIMEOUT_SECONDS = 600
TARGET_RATIO = 0.9
UPSERT = (
    "INSERT INTO orders_raw (order_id, user_id, product_id, qty, unit_price, total_price, status, created_at)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
    " ON DUPLICATE KEY UPDATE user_id = VALUES(user_id), product_id = VALUES(product_id), qty = VALUES(qty),"
    " unit_price = VALUES(unit_price), total_price = VALUES(total_price), status = VALUES(status),"
    " created_at = VALUES(created_at)"
)


@dataclass(frozen=True)
class BenchSink:
    """The names of one run's own topic, connector, consumer group and database (the launcher grants `connect`
    READ on bench-orders-* and connect-bench-sink-*, and the sink's database account bench_* databases)."""

    config: StackConfig
    run: str

    @property
    def topic(self) -> str:
        return f"bench-orders-{self.run}"

    @property
    def connector(self) -> str:
        return f"bench-sink-{self.run}"

    @property
    def group(self) -> str:
        return f"connect-{self.connector}"  # what Connect names a sink connector's consumer group

    @property
    def database(self) -> str:
        return f"bench_sink_{self.run}"

    def connect_db(self) -> pymysql.Connection:
        return operator_connection(self.config, self.database)


def settled_orders(prefix: str, count: int) -> list[Order]:
    created = now_ms()
    return [
        Order(
            f"{prefix}-{n:07d}",
            f"bench-user-{n % 97}",
            f"BENCH-P{n % 3 + 1}",
            1 + n % 5,
            1000,
            1000 * (1 + n % 5),
            OrderStatus.CONFIRMED,
            created,
        )
        for n in range(count)
    ]


def connector_config(sink: BenchSink) -> dict[str, str]:
    """The stack's orders-sink config, reading the bench's topic and writing the bench's database; no dead-letter
    topic (orders-dlq is the stack's: its auditor reads it)."""
    config: dict[str, str] = json.loads((CONNECTOR_DIR / f"{SINK_CONNECTOR}.json").read_text())
    assert "${env:ORDERS_DB}" in config["connection.url"], config["connection.url"]
    config["connection.url"] = config["connection.url"].replace("${env:ORDERS_DB}", sink.database)
    config["topics"] = sink.topic
    config["collection.name.format"] = "orders"
    return {key: value for key, value in config.items() if not key.startswith("errors.deadletterqueue.")}


def connect_request(sink: BenchSink, method: str, path: str, body: object = None) -> httpx.Response:
    """One Connect REST call, tried again while the worker group rebalances (409)."""
    deadline = time.monotonic() + 60
    while True:
        url = f"{answering_url(sink.config)}/connectors{path}"
        answer = httpx.request(method, url, json=body, auth=rest_auth(sink.config), timeout=30)
        if answer.status_code != 409 or time.monotonic() > deadline:
            return answer
        time.sleep(0.5)


async def wait_connector(sink: BenchSink, state: str, *, tasks_made: bool = True) -> None:
    """Until the connector and each of its tasks report `state` (a connector made PAUSED has no tasks yet)."""
    deadline = time.monotonic() + 90
    while True:
        status = connect_request(sink, "GET", f"/{sink.connector}/status").json()
        tasks = status.get("tasks", [])
        states = {status.get("connector", {}).get("state"), *(task.get("state") for task in tasks)}
        if (tasks or not tasks_made) and states == {state}:
            return
        if "FAILED" in states or time.monotonic() > deadline:
            raise SystemExit(f"{sink.connector} not {state}: {status}")
        await asyncio.sleep(0.1)


async def set_connector_state(sink: BenchSink, action: str, state: str) -> None:
    connect_request(sink, "PUT", f"/{sink.connector}/{action}").raise_for_status()
    await wait_connector(sink, state)


def make_database(sink: BenchSink) -> None:
    orders = f"`{sink.config.get('ORDERS_DB')}`.orders"
    connection = operator_connection(sink.config, sink.config.get("ORDERS_DB"))
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{sink.database}` CHARACTER SET utf8mb4")
        cursor.execute(f"CREATE TABLE `{sink.database}`.orders LIKE {orders}")
        cursor.execute(f"CREATE TABLE `{sink.database}`.orders_raw LIKE {orders}")
    connection.close()


async def drop_database(sink: BenchSink) -> None:
    await asyncio.to_thread(drop_database_now, sink)


def drop_database_now(sink: BenchSink) -> None:
    connection = operator_connection(sink.config, sink.config.get("ORDERS_DB"))
    with connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{sink.database}`")
    connection.close()


async def delete_group(sink: BenchSink) -> None:
    """The connector's consumer group (the monitor rates every group; a leftover one would stay on its console).
    aiokafka's admin client has no call for it, so the request goes to the group's coordinator as it is."""
    admin = AIOKafkaAdminClient(**sink.config.kafka_access.client_options())
    await admin.start()
    try:
        deadline = time.monotonic() + 60
        while True:
            coordinator = await admin.find_coordinator(sink.group)
            answer: Any = await admin._send_request_to_node(coordinator, DeleteGroupsRequest([sink.group]))
            error = kafka_error(answer.results[0][1])
            if error.errno == 0 or error is GroupIdNotFound:
                return
            # The deleted connector's consumers leave the group within a session timeout.
            if error is not NonEmptyGroup or time.monotonic() > deadline:
                raise error(f"deleting consumer group {sink.group}")
            await asyncio.sleep(1)
    finally:
        await admin.close()


async def delete_topic(sink: BenchSink) -> None:
    admin = AIOKafkaAdminClient(**sink.config.kafka_access.client_options())
    await admin.start()
    try:
        await admin.delete_topics([sink.topic])
    except UnknownTopicOrPartitionError:
        pass
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def own_sink(config: StackConfig) -> AsyncIterator[BenchSink]:
    """A run's database, topic and paused connector; every one removed afterwards, whatever happened."""
    sink = BenchSink(config, uuid.uuid4().hex[:8])
    try:
        make_database(sink)
        await ensure_topics(config.kafka_access, [sink.topic], config.number("TOPIC_PARTITIONS"))
        body = {"name": sink.connector, "config": connector_config(sink), "initial_state": "PAUSED"}
        connect_request(sink, "POST", "", body).raise_for_status()
        await wait_connector(sink, "PAUSED", tasks_made=False)
        yield sink
    finally:
        # Each step on its own: one that fails leaves the others to run.
        cleanups = (
            ("connector", remove_connector),
            ("consumer group", delete_group),
            ("topic", delete_topic),
            ("database", drop_database),
        )
        for what, cleanup in cleanups:
            try:
                await cleanup(sink)
            except (KafkaError, httpx.HTTPError, pymysql.Error, SystemExit) as failed:
                print(f"  WARNING: could not remove the bench's {what} ({sink.run}): {failed!r}", flush=True)


async def remove_connector(sink: BenchSink) -> None:
    answer = connect_request(sink, "DELETE", f"/{sink.connector}")
    if answer.status_code not in (204, 404):
        answer.raise_for_status()
    deadline = time.monotonic() + 60
    while connect_request(sink, "GET", f"/{sink.connector}").status_code != 404:
        if time.monotonic() > deadline:
            raise SystemExit(f"{sink.connector} still there 60 s after its DELETE")
        await asyncio.sleep(0.2)


def truncate(sink: BenchSink, table: str) -> None:
    connection = sink.connect_db()
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE TABLE {table}")
    connection.close()


def count(cursor: Any, sql: str, args: tuple[object, ...] = ()) -> int:
    cursor.execute(sql, args)
    row = cursor.fetchone()
    assert row is not None  # COUNT(*) always answers one row
    return int(row[0])


async def produce(sink: BenchSink, orders: list[Order]) -> list[bytes]:
    """Every order's record on the bench's topic; the key of each partition's last record."""
    producer = transactional_producer(sink.config.kafka_access, sink.connector, linger_ms=5)
    await producer.start()
    last: dict[int, tuple[int, bytes]] = {}
    try:
        for first in range(0, len(orders), PER_TRANSACTION):
            sent = []
            async with producer.transaction():
                for order in orders[first : first + PER_TRANSACTION]:
                    key = order_record_key(order)
                    sent.append((key, await producer.send(sink.topic, order_record_value(order), key=key)))
            for key, future in sent:
                written = await future
                if written.offset >= last.get(written.partition, (-1, b""))[0]:
                    last[written.partition] = (written.offset, key)
    finally:
        await producer.stop()
    return [key for _, key in last.values()]


async def sink_rows_per_second(sink: BenchSink, orders: list[Order]) -> float:
    """From the paused connector's resume to the last row visible: the records are on the topic before."""
    await asyncio.to_thread(truncate, sink, "orders")
    last_keys = [key.decode() for key in await produce(sink, orders)]
    connection = sink.connect_db()
    placeholders = ", ".join(["%s"] * len(last_keys))
    try:
        with connection.cursor() as cursor:
            started = time.perf_counter()
            await set_connector_state(sink, "resume", "RUNNING")
            deadline = started + DRAIN_TIMEOUT_SECONDS
            # A partition's rows are written in its order: its last record's row comes last (checked below).
            last_in = f"SELECT COUNT(*) FROM orders WHERE order_id IN ({placeholders})"
            while count(cursor, last_in, tuple(last_keys)) < len(last_keys):
                if time.perf_counter() > deadline:
                    raise SystemExit(f"the sink did not write {len(orders)} rows within {DRAIN_TIMEOUT_SECONDS} s")
                await asyncio.sleep(0.02)
            while count(cursor, "SELECT COUNT(*) FROM orders") < len(orders):
                if time.perf_counter() > deadline:
                    raise SystemExit(f"the sink did not write {len(orders)} rows within {DRAIN_TIMEOUT_SECONDS} s")
                await asyncio.sleep(0.02)
            elapsed = time.perf_counter() - started
    finally:
        connection.close()
    await set_connector_state(sink, "pause", "PAUSED")
    return len(orders) / elapsed


def raw_rows_per_second(sink: BenchSink, orders: list[Order]) -> float:
    """The same rows, upserted by one client in multi-row statements of RAW_BATCH rows, one commit each."""
    truncate(sink, "orders_raw")
    rows = [
        (
            o.order_id,
            o.user_id,
            o.product_id,
            o.qty,
            o.unit_price,
            o.total_price,
            o.status.value,
            o.created_at.replace(tzinfo=None),
        )
        for o in orders
    ]
    connection = sink.connect_db()
    connection.autocommit(False)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        for first in range(0, len(rows), RAW_BATCH):
            cursor.executemany(UPSERT, rows[first : first + RAW_BATCH])  # pymysql sends one multi-row INSERT
            connection.commit()
    elapsed = time.perf_counter() - started
    connection.close()
    return len(rows) / elapsed


async def paired_round(sink: BenchSink, records: int, sink_first: bool) -> tuple[float, float]:
    """(sink, raw) rows/s for the same `records` fresh rows each way."""
    orders = settled_orders(f"bench-{sink.run}-{uuid.uuid4().hex[:6]}", records)
    if sink_first:
        sink_rate = await sink_rows_per_second(sink, orders)
        raw_rate = await asyncio.to_thread(raw_rows_per_second, sink, orders)
    else:
        raw_rate = await asyncio.to_thread(raw_rows_per_second, sink, orders)
        sink_rate = await sink_rows_per_second(sink, orders)
    return sink_rate, raw_rate


def spread(values: list[float]) -> str:
    return f"rounds {min(values):,.0f} to {max(values):,.0f}"


async def main(records: int, rounds: int, warm_up: int) -> None:
    config = StackConfig.load()
    async with own_sink(config) as sink:
        print(f"  bench topic {sink.topic}, connector {sink.connector}, database {sink.database}", flush=True)
        # A freshly made connector's task runs its first records interpreted: both paths get an uncounted round.
        if warm_up:
            await paired_round(sink, warm_up, sink_first=True)
            print(f"  warm-up: {warm_up:,} records each way, not counted", flush=True)
        sink_rates, raw_rates = [], []
        for number in range(1, rounds + 1):
            sink_rate, raw_rate = await paired_round(sink, records, sink_first=number % 2 == 1)
            sink_rates.append(sink_rate)
            raw_rates.append(raw_rate)
            print(
                f"  round {number} ({'sink' if number % 2 else 'raw'} first): sink {sink_rate:>9,.0f} rows/s"
                f"   raw upsert {raw_rate:>9,.0f} rows/s   ratio {sink_rate / raw_rate:.2f}",
                flush=True,
            )
    ratios = [s / r for s, r in zip(sink_rates, raw_rates, strict=True)]
    sink_median, raw_median = statistics.median(sink_rates), statistics.median(raw_rates)
    print(
        f"JDBC sink draining {records:,} records (Kafka -> Connect -> MariaDB): {sink_median:,.0f} rows/s median"
        f" ({spread(sink_rates)})"
    )
    print(
        f"raw multi-row upsert (same rows, a twin table, {RAW_BATCH} per statement): {raw_median:,.0f} rows/s median"
        f" ({spread(raw_rates)})"
    )
    print(
        f"ratio sink/raw: {statistics.median(ratios):.2f} median of paired rounds "
        f"(rounds {min(ratios):.2f} to {max(ratios):.2f}; target >= {TARGET_RATIO})"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warm-up", type=int, default=WARM_UP_RECORDS, help="records of the uncounted round (0: none)")
    args = parse_args(parser, records=300, rounds=1, warm_up=0)
    on_bench_stack()
    asyncio.run(main(args.records, args.rounds, args.warm_up))

"""Auditor cost: one incremental pass over a stack holding 1,000,000 orders, 100,000 of them unresolved discrepancies,
after 1,000 new ones, and one full pass.

A million real orders through the gateway would take hours here, so the bench writes what the stack would hold
straight into sources of its own, beside the running stack: topics `bench-audit-orders` and `bench-audit-stock`
(3 partitions each, like the real ones; and an empty `bench-audit-orders-dlq`), written by a transactional
producer, 1,000 orders per transaction, each order as the real flow leaves it (PENDING then CONFIRMED or REJECTED
on the orders topic, Connect JSON with schema; a stock request on the stock topic), and a database
`bench_audit` (the operator's account may create `bench_*` databases; nothing of the stack reads them) with
tables made LIKE
mydb.orders, catalogdb.catalogs and catalogdb.processed_orders, filled by INSERT ... SELECT from MariaDB's sequence
engine. The auditor reads them exactly as it reads the real ones (same code, settings pointing at the bench's names).

Before the full pass, the rows of every tenth order (--discrepancies of them) are deleted: missing rows the auditor
keeps watching and reports every pass, the issue's "100k unresolved discrepancies"; an incremental pass must cost
what changed, not what it watches.

Figures: the full pass (median of --full-rounds; one by default, it takes minutes), the incremental pass after --new
orders were added (medians over --rounds, alternately with the row checksum compared in that pass and without it),
and the process's resident memory after them (what the monitor would hold for the auditor).
Setting the stage (about 15 minutes for a million orders here) is not measured. Anchors from the same run: a plain
`SELECT COUNT(*)` of the orders table (incremental), and a plain read of every record of both topics, nothing parsed
(full pass).

    .venv/bin/python bench/audit_cost.py [--orders 1000000] [--discrepancies 100000] [--new 1000] [--rounds 6]
        [--full-rounds 1]

Runs on the benchmarks' own stack (stack_support.bench_stack; started for it when run alone), not make up's. The bench's
topics and database are removed afterwards. Figures are medians with their rounds' range. `--quick`: 2,000 orders,
200 discrepancies, two incremental rounds.
"""

import argparse
import asyncio
import statistics
import time
import uuid

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import UnknownTopicOrPartitionError

from consistency_audit import Auditor, AuditSettings, Kind
from order_contract.connect_record import ORDER_SCHEMA
from servicekit.kafka import ensure_topics, transactional_producer
from stack_description.settings import StackConfig
from stack_support.bench_stack import on_bench_stack, parse_args
from stack_support.database import operator_connection

PRODUCTS = 1000
PER_TRANSACTION = 1000  # orders (3,000 records): well inside the 10 s transaction timeout on a busy machine
DATABASE = "bench_audit"
ORDERS_TOPIC, STOCK_TOPIC = "bench-audit-orders", "bench-audit-stock"
DEAD_LETTER_TOPIC = "bench-audit-orders-dlq"  # empty: nothing the bench writes is refused
SCHEMA = orjson.dumps(ORDER_SCHEMA).decode()
# 2026-11-30 00:00:00 UTC: every bench order is older than any grace period.
CREATED_MS = 1_796_000_000_000


def audit_settings() -> AuditSettings:
    """The auditor pointed at the bench's topics and database instead of the stack's (bench/cost_growth.py too)."""
    return AuditSettings(
        orders_db=DATABASE,
        catalog_db=DATABASE,
        orders_topic=ORDERS_TOPIC,
        stock_topic=STOCK_TOPIC,
        orders_dead_letter_topic=DEAD_LETTER_TOPIC,
        audit_settle_seconds=0,
        audit_totals_every_seconds=0,
        audit_sink_lag_seconds=1,  # the bench's rows are written before their records: the deleted ones are missing
    )


def order_id(run: str, number: int) -> str:
    return f"bench-{run}-{number:09d}"


def product_of(number: int) -> str:
    return f"BENCH-AUDIT-{number % PRODUCTS:04d}"


def status_of(number: int) -> str:
    return "REJECTED" if number % 10 == 0 else "CONFIRMED"


def order_value(run: str, number: int, status: str) -> bytes:
    payload = (
        f'{{"order_id":"{order_id(run, number)}","user_id":"bench-user","product_id":"{product_of(number)}",'
        f'"qty":1,"unit_price":100,"total_price":100,"status":"{status}","created_at":{CREATED_MS + number}}}'
    )
    return f'{{"schema":{SCHEMA},"payload":{payload}}}'.encode()


def stock_value(run: str, number: int) -> bytes:
    return (
        f'{{"orderId":"{order_id(run, number)}","userId":"bench-user","productId":"{product_of(number)}","qty":1,'
        f'"unitPrice":100,"totalPrice":100,"createdAt":"2026-11-30T00:00:00.000Z"}}'
    ).encode()


async def publish(config: StackConfig, run: str, first: int, count: int) -> None:
    producer = transactional_producer(config.kafka_access, f"bench-audit-{run}", linger_ms=5)
    await producer.start()
    try:
        for start in range(first, first + count, PER_TRANSACTION):
            async with producer.transaction():
                for number in range(start, min(start + PER_TRANSACTION, first + count)):
                    key = order_id(run, number).encode()
                    await producer.send(ORDERS_TOPIC, order_value(run, number, "PENDING"), key=key)
                    await producer.send(STOCK_TOPIC, stock_value(run, number), key=product_of(number).encode())
                    await producer.send(ORDERS_TOPIC, order_value(run, number, status_of(number)), key=key)
            if (start - first) % 100_000 == 0 and count > PER_TRANSACTION:
                print(f"    {start - first + PER_TRANSACTION:>9,} orders on the topics", flush=True)
    finally:
        await producer.stop()


def fill_database(config: StackConfig, run: str, first: int, count: int) -> None:
    """Rows, ledger rows and the stock they took, made by the server from a sequence (1 .. count)."""
    connection = operator_connection(config, DATABASE)
    last = first + count - 1
    seq = f"seq_{first}_to_{last}"
    order = "CONCAT('bench-', %s, '-', LPAD(seq, 9, '0'))"
    product = f"CONCAT('BENCH-AUDIT-', LPAD(seq MOD {PRODUCTS}, 4, '0'))"
    status = "IF(seq MOD 10 = 0, 'REJECTED', 'CONFIRMED')"
    created = f"TIMESTAMP'1970-01-01 00:00:00' + INTERVAL ({CREATED_MS} + seq) * 1000 MICROSECOND"
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO orders (order_id, user_id, product_id, qty, unit_price, total_price, status, created_at)"
            f" SELECT {order}, 'bench-user', {product}, 1, 100, 100, {status}, {created} FROM {seq}",
            (run,),
        )
        cursor.execute(
            "INSERT INTO processed_orders (order_id, user_id, product_id, qty, unit_price, total_price, status,"
            f" order_created_at) SELECT {order}, 'bench-user', {product}, 1, 100, 100, {status}, {created} FROM {seq}",
            (run,),
        )
        cursor.execute(
            "UPDATE catalogs c JOIN (SELECT product_id, COUNT(*) AS taken FROM processed_orders"
            " WHERE status = 'CONFIRMED' AND order_id BETWEEN %s AND %s GROUP BY product_id) t"
            " ON t.product_id = c.product_id SET c.stock = c.stock - t.taken",
            (order_id(run, first), order_id(run, last)),
        )
    connection.close()


def make_database(config: StackConfig) -> None:
    connection = operator_connection(config, config.get("ORDERS_DB"))
    with connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
        cursor.execute(f"CREATE DATABASE {DATABASE}")
        cursor.execute(f"CREATE TABLE {DATABASE}.orders LIKE {config.get('ORDERS_DB')}.orders")
        catalog_db = config.get("CATALOG_DB")
        cursor.execute(f"CREATE TABLE {DATABASE}.catalogs LIKE {catalog_db}.catalogs")
        cursor.execute(f"CREATE TABLE {DATABASE}.processed_orders LIKE {catalog_db}.processed_orders")
        cursor.execute(
            f"INSERT INTO {DATABASE}.catalogs (product_id, product_name, stock, initial_stock, unit_price, created_at)"
            f" SELECT CONCAT('BENCH-AUDIT-', LPAD(seq, 4, '0')), 'bench', 1000000, 1000000, 100, UTC_TIMESTAMP(3)"
            f" FROM seq_0_to_{PRODUCTS - 1}"
        )
    connection.close()


def drop_database(config: StackConfig) -> None:
    connection = operator_connection(config, config.get("ORDERS_DB"))
    with connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
    connection.close()


def delete_rows(config: StackConfig, orders: int, count: int) -> int:
    """The rows of `count` orders spread over all of them (every n-th id): missing rows, for good."""
    if not count:
        return 0
    connection = operator_connection(config, DATABASE)
    with connection.cursor() as cursor:
        deleted: int = cursor.execute("DELETE FROM orders WHERE id %% %s = 0 LIMIT %s", (orders // count, count))
    connection.commit()
    connection.close()
    return deleted


def resident_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def count_rows(config: StackConfig) -> float:
    connection = operator_connection(config, DATABASE)
    with connection.cursor() as cursor:
        started = time.perf_counter()
        cursor.execute("SELECT COUNT(*) FROM orders")
        cursor.fetchall()
        took = time.perf_counter() - started
    connection.close()
    return took


async def read_topics_plainly(config: StackConfig) -> tuple[int, float]:
    """Every committed record of both topics, values untouched: what reading alone costs."""
    consumer = AIOKafkaConsumer(
        **config.kafka_access.client_options(),
        isolation_level="read_committed",
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
        fetch_max_wait_ms=20,
    )
    await consumer.start()
    try:
        started = time.perf_counter()
        await consumer._client.force_metadata_update()
        parts = [TopicPartition(t, p) for t in (ORDERS_TOPIC, STOCK_TOPIC) for p in consumer.partitions_for_topic(t)]
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        await consumer.seek_to_beginning(*parts)
        waiting, records = {tp for tp in parts if ends[tp] > 0}, 0
        while waiting:
            batches = await consumer.getmany(*waiting, timeout_ms=200)
            records += sum(len(batch) for batch in batches.values())
            for tp in list(waiting):
                if await consumer.position(tp) >= ends[tp]:
                    waiting.discard(tp)
        return records, time.perf_counter() - started
    finally:
        await consumer.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--discrepancies", type=int, default=100_000)  # missing rows the auditor keeps reporting
    parser.add_argument("--new", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=6)  # alternately with and without the row checksum
    parser.add_argument("--full-rounds", type=int, default=1)  # a full pass over a million orders takes minutes
    args = parse_args(parser, orders=2000, discrepancies=200, new=100, rounds=2)
    on_bench_stack()
    config = StackConfig.load()
    run = uuid.uuid4().hex[:8]
    settings = audit_settings()
    admin = AIOKafkaAdminClient(**config.kafka_access.client_options())
    await admin.start()
    try:
        await ensure_topics(config.kafka_access, [ORDERS_TOPIC, STOCK_TOPIC, DEAD_LETTER_TOPIC], 3)
        print(f"writing {args.orders:,} orders (3 records and 2 rows each) into the bench's topics and database")
        started = time.perf_counter()
        await asyncio.to_thread(make_database, config)
        await asyncio.to_thread(fill_database, config, run, 1, args.orders)
        print(f"    database filled in {time.perf_counter() - started:.0f} s", flush=True)
        await publish(config, run, 1, args.orders)
        print(f"    written in {time.perf_counter() - started:.0f} s")
        missing = await asyncio.to_thread(delete_rows, config, args.orders, args.discrepancies)
        expected = {kind.value: 0 for kind in Kind} | {Kind.MISSING_ROW.value: missing}
        await asyncio.sleep(settings.audit_sink_lag_seconds)

        full_times: list[float] = []
        plain_times: list[float] = []
        auditor = Auditor(settings)
        try:
            for _ in range(args.full_rounds):
                records, plain = await read_topics_plainly(config)
                plain_times.append(plain)
                verdict = await auditor.run(full=True)
                assert verdict.counts() == expected, verdict.as_json()
                full_times.append(verdict.duration_seconds)
                print(
                    f"    full pass {verdict.duration_seconds:.2f} s {verdict.timings}; plain read of "
                    f"{records:,} records {plain:.2f} s",
                    flush=True,
                )
            incremental: list[float] = []
            resident = resident_mb()
            unchecked: list[float] = []
            counts: list[float] = []
            next_number = args.orders + 1
            for round_ in range(args.rounds):
                await asyncio.to_thread(fill_database, config, run, next_number, args.new)
                await publish(config, run, next_number, args.new)
                next_number += args.new
                counts.append(await asyncio.to_thread(count_rows, config))
                checked = round_ % 2 == 0
                auditor.settings = settings.model_copy(update={"audit_totals_every_seconds": 0 if checked else 3600})
                verdict = await auditor.run()
                assert not verdict.full and verdict.counts() == expected, verdict.as_json()
                (incremental if checked else unchecked).append(verdict.duration_seconds)
                print(
                    f"    incremental pass ({'with' if checked else 'without'} row checksum) "
                    f"{verdict.duration_seconds * 1000:.0f} ms, {verdict.rows_read:,} rows read, {verdict.watched:,} "
                    f"orders watched {verdict.timings}",
                    flush=True,
                )
            resident = resident_mb()
        finally:
            await auditor.close()
    finally:
        try:
            await admin.delete_topics([ORDERS_TOPIC, STOCK_TOPIC, DEAD_LETTER_TOPIC])
        except UnknownTopicOrPartitionError:
            pass  # it failed before making them
        finally:
            await admin.close()
            await asyncio.to_thread(drop_database, config)

    full, plain = statistics.median(full_times), statistics.median(plain_times)
    count = statistics.median(counts)
    print()
    print(
        f"full pass over {args.orders:,} orders: {full:.1f} s (rounds {min(full_times):.1f}-{max(full_times):.1f}); "
        f"plain read of both topics {plain:.1f} s (rounds {min(plain_times):.1f}-{max(plain_times):.1f}) "
        f"(ratio {full / plain:.1f}x)"
    )
    for label, times in (("with the row checksum", incremental), ("without it", unchecked)):
        if times:
            median = statistics.median(times)
            print(
                f"incremental pass after {args.new:,} new orders, {missing:,} discrepancies reported, {label}: "
                f"{median * 1000:.0f} ms (rounds {min(times) * 1000:.0f}-{max(times) * 1000:.0f}); SELECT COUNT(*) "
                f"of {args.orders:,} rows {count * 1000:.0f} ms (rounds {min(counts) * 1000:.0f}-"
                f"{max(counts) * 1000:.0f}) (ratio {median / count:.1f}x)"
            )
    print(f"resident memory after the passes: {resident:.0f} MB")


if __name__ == "__main__":
    asyncio.run(main())

"""Sink throughput: 100,000 order records through Kafka and the JDBC sink into mydb.orders, next to a raw
batched INSERT ... ON DUPLICATE KEY UPDATE of the same rows into the same table, in the same run.

    .venv/bin/python bench/sink_vs_raw.py [--records 100000] [--rounds 5]

Needs the stack (make up). Rows it writes are deleted afterwards.
"""

import argparse
import asyncio
import statistics
import time
import uuid

import pymysql

from launcher.environment import StackConfig
from launcher.mariadb import operator_connection
from order_contract.connect_record import order_record_key, order_record_value
from order_contract.order import Order, OrderStatus
from order_contract.timestamps import now_ms
from order_contract.topics import ORDERS_TOPIC
from servicekit.kafka import transactional_producer

RAW_BATCH = 1000
WARM_UP_RECORDS = 50_000
UPSERT = (
    "INSERT INTO orders (order_id, user_id, product_id, qty, unit_price, total_price, status, created_at)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
    " ON DUPLICATE KEY UPDATE user_id = VALUES(user_id), product_id = VALUES(product_id), qty = VALUES(qty),"
    " unit_price = VALUES(unit_price), total_price = VALUES(total_price), status = VALUES(status),"
    " created_at = VALUES(created_at)"
)


def orders_for(prefix: str, count: int) -> list[Order]:
    created = now_ms()
    return [
        Order(
            f"{prefix}-{n:07d}",
            f"user-{n % 97}",
            f"BENCH-P{n % 3 + 1}",
            1 + n % 5,
            1000,
            1000 * (1 + n % 5),
            OrderStatus.PENDING,
            created,
        )
        for n in range(count)
    ]


def connect_db(config: StackConfig) -> pymysql.Connection:
    return operator_connection(config, config.get("ORDERS_DB", "mydb"))


def count_rows(db: pymysql.Connection, prefix: str) -> int:
    with db.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM orders WHERE order_id LIKE %s", (f"{prefix}-%",))
        row = cursor.fetchone()
        assert row is not None  # COUNT(*) always answers one row
        return int(row[0])


def delete_rows(db: pymysql.Connection, prefix: str) -> None:
    with db.cursor() as cursor:
        cursor.execute("DELETE FROM orders WHERE order_id LIKE %s", (f"{prefix}-%",))


async def sink_rows_per_second(config: StackConfig, orders: list[Order], prefix: str) -> float:
    """From the first record produced to the last row visible in MariaDB."""
    records = [(order_record_key(o), order_record_value(o)) for o in orders]
    db = connect_db(config)
    producer = transactional_producer(config.kafka_access, f"bench-sink-{prefix}", linger_ms=5)
    await producer.start()
    started = time.perf_counter()
    try:
        for first in range(0, len(records), 5000):
            async with producer.transaction():
                for key, value in records[first : first + 5000]:
                    await producer.send(ORDERS_TOPIC, key=key, value=value)
    finally:
        await producer.stop()
    produced = time.perf_counter() - started
    deadline = started + 600
    while count_rows(db, prefix) < len(orders):
        if time.perf_counter() > deadline:
            raise SystemExit(f"sink did not write {len(orders)} rows within 600 s")
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - started
    print(f"    (produce {produced:.1f}s, visible after {elapsed:.1f}s)")
    delete_rows(db, prefix)
    db.close()
    return len(orders) / elapsed


def raw_rows_per_second(config: StackConfig, orders: list[Order], prefix: str) -> float:
    """The same rows, upserted by one client in batches of RAW_BATCH, one commit per batch."""
    rows = [
        (
            o.order_id.replace(o.order_id.split("-", 2)[0], "raw", 1),
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
    db = connect_db(config)
    db.autocommit(False)
    started = time.perf_counter()
    with db.cursor() as cursor:
        for first in range(0, len(rows), RAW_BATCH):
            cursor.executemany(UPSERT, rows[first : first + RAW_BATCH])
            db.commit()
    elapsed = time.perf_counter() - started
    db.autocommit(True)
    delete_rows(db, prefix)
    db.close()
    return len(rows) / elapsed


def one_round(config: StackConfig, records: int) -> tuple[float, float]:
    """(sink, raw) rows/s for `records` fresh orders each way, the raw upsert first."""
    run = uuid.uuid4().hex[:8]
    raw = raw_rows_per_second(config, orders_for(f"braw{run}", records), f"braw{run}")
    sink = asyncio.run(sink_rows_per_second(config, orders_for(f"bsink{run}", records), f"bsink{run}"))
    return sink, raw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    config = StackConfig.load()

    # A freshly started Connect worker runs its first records interpreted; both paths get one uncounted round.
    one_round(config, WARM_UP_RECORDS)
    print(f"  warm-up: {WARM_UP_RECORDS:,} records each way, not counted", flush=True)

    sink, raw = [], []
    for round_number in range(1, args.rounds + 1):
        sink_rate, raw_rate = one_round(config, args.records)
        sink.append(sink_rate)
        raw.append(raw_rate)
        line = f"  round {round_number}: sink {sink_rate:>9,.0f} rows/s   raw upsert {raw_rate:>9,.0f} rows/s"
        print(line, flush=True)
    sink_median, raw_median = statistics.median(sink), statistics.median(raw)
    print(f"JDBC sink ({args.records:,} records, Kafka -> Connect -> MariaDB): {sink_median:,.0f} rows/s (median)")
    print(f"raw batched upsert (same rows, same table, batches of {RAW_BATCH}): {raw_median:,.0f} rows/s (median)")
    print(f"ratio sink/raw: {sink_median / raw_median:.2f}  (target >= 0.5)")


if __name__ == "__main__":
    main()

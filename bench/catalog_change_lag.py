"""Change lag of the catalog CDC path: from the COMMIT of a price UPDATE in catalogdb to the moment each
order-service instance's read model holds it (binlog -> catalog-source -> catalog-changes -> read model), at
50 updates/s. Anchor, same run: a plain Kafka hop (a producer sends a timestamp at the same rate on a topic of its
own; a consumer reads it), i.e. what Kafka alone costs on this machine, and the ratio.

    .venv/bin/python bench/catalog_change_lag.py [--rate 50] [--seconds 10] [--rounds 3]

Runs on the benchmarks' own stack (stack_support.bench_stack; started for it when run alone), not make up's. It goes
through that stack's CDC path by design, on products of its own (BENCH-CDC-<run>-*, stock 0, so no order can take
them; no order is placed): their rows are removed from its catalogdb.catalogs afterwards (the connector then writes
their tombstones to catalog-changes), and its Kafka hop topic is deleted. Figures are medians of the rounds with
their range. `--quick`: 10 updates/s for 2 s, one round.
"""

import argparse
import asyncio
import statistics
import time
import uuid
from dataclasses import dataclass, field

import httpx
import pymysql
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import UnknownTopicOrPartitionError

from servicekit.kafka import ensure_topics
from stack_description.settings import StackConfig
from stack_support.bench_stack import on_bench_stack, parse_args
from stack_support.catalog_views import instance_base_urls, priced_everywhere
from stack_support.database import operator_connection

PRODUCTS = 10
BASE_PRICE = 10_000


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def connect_catalog(config: StackConfig) -> pymysql.Connection:
    return operator_connection(config, config.get("CATALOG_DB"))


@dataclass
class Round:
    committed_ms: dict[tuple[str, int], float] = field(default_factory=dict)  # (product, price) -> commit time
    applied_ms: dict[tuple[str, str, int], float] = field(default_factory=dict)  # (instance, product, price)

    def lags(self) -> list[float]:
        return [
            applied - self.committed_ms[(product, price)]
            for (_, product, price), applied in self.applied_ms.items()
            if (product, price) in self.committed_ms
        ]


async def watch_instances(urls: dict[str, str], measured: Round, stop: asyncio.Event) -> None:
    """Collect (instance, product, price) -> applied time from each instance's recent changes."""
    async with httpx.AsyncClient(timeout=5) as http:
        while not stop.is_set():
            for instance_id, base_url in urls.items():
                answer = (await http.get(f"{base_url}/catalog-view")).json()
                for change in answer["recent"]:
                    if change["unitPrice"] is not None:
                        key = (instance_id, change["productId"], change["unitPrice"])
                        measured.applied_ms.setdefault(key, float(change["appliedAtMs"]))
            await asyncio.sleep(0.2)


async def cdc_round(config: StackConfig, products: list[str], rate: int, seconds: float, first_price: int) -> Round:
    measured = Round()
    stop = asyncio.Event()
    urls = instance_base_urls(config)
    watcher = asyncio.create_task(watch_instances(urls, measured, stop))
    connection = connect_catalog(config)
    price = first_price
    started = time.monotonic()
    try:
        with connection.cursor() as cursor:
            for n in range(int(rate * seconds)):
                await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
                product = products[n % len(products)]
                price += 1
                cursor.execute("UPDATE catalogs SET unit_price = %s WHERE product_id = %s", (price, product))
                measured.committed_ms[(product, price)] = time.time() * 1000
        expected = len(measured.committed_ms) * len(urls)
        for _ in range(150):  # at most 30 s for the last updates to arrive everywhere
            if len(measured.lags()) >= expected:
                break
            await asyncio.sleep(0.2)
    finally:
        stop.set()
        await watcher
        connection.close()
    missing = len(measured.committed_ms) * len(urls) - len(measured.lags())
    if missing:
        print(f"  note: {missing} (instance, update) pairs not seen within 30 s")
    return measured


async def kafka_round(config: StackConfig, topic: str, rate: int, seconds: float) -> list[float]:
    """The anchor: one record per tick carrying its send time; the consumer's lag from send to receipt."""
    options = config.kafka_access.client_options()
    consumer = AIOKafkaConsumer(topic, **options, auto_offset_reset="latest", enable_auto_commit=False)
    producer = AIOKafkaProducer(**options, acks="all", enable_idempotence=True)
    await consumer.start()
    await producer.start()
    lags: list[float] = []
    count = int(rate * seconds)

    async def consume() -> None:
        async for record in consumer:
            lags.append(time.time() * 1000 - float(record.value or b"0"))
            if len(lags) >= count:
                return

    try:
        for _ in range(200):  # the consumer takes the topic's partition once it has its metadata
            if consumer.assignment():
                break
            await asyncio.sleep(0.05)
        await consumer.seek_to_end()
        reader = asyncio.create_task(consume())
        started = time.monotonic()
        for n in range(count):
            await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
            await producer.send_and_wait(topic, str(time.time() * 1000).encode())
        await asyncio.wait_for(reader, 30)
    finally:
        await producer.stop()
        await consumer.stop()
    return lags


async def main(rate: int, seconds: float, rounds: int) -> None:
    config = StackConfig.load()
    run = uuid.uuid4().hex[:6].upper()
    products = [f"BENCH-CDC-{run}-{n}" for n in range(PRODUCTS)]
    topic = f"bench-kafka-hop-{run.lower()}"
    connection = connect_catalog(config)
    try:
        with connection.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO catalogs (product_id, product_name, stock, unit_price, created_at)"
                " VALUES (%s, 'Benchmark product', 0, %s, UTC_TIMESTAMP(3))",
                [(product, BASE_PRICE) for product in products],
            )
        await ensure_topics(config.kafka_access, [topic], 1)
        instances = config.number("ORDER_INSTANCES")
        deadline = time.monotonic() + 30
        while not priced_everywhere(config, dict.fromkeys(products, BASE_PRICE), instances):
            if time.monotonic() > deadline:
                raise SystemExit("the bench products did not reach every order-service instance in 30 s")
            await asyncio.sleep(0.2)
        print(f"{rate} price updates/s for {seconds:.0f} s, {rounds} rounds, {instances} order-service instances")
        print(f"{'round':>5}  {'CDC p50':>9} {'CDC p99':>9}  {'Kafka p50':>9} {'Kafka p99':>9}")
        cdc_all: list[float] = []
        rows = []
        price = BASE_PRICE
        for number in range(1, rounds + 1):
            measured = await cdc_round(config, products, rate, seconds, price)
            price += len(measured.committed_ms)
            cdc = measured.lags()
            anchor = await kafka_round(config, topic, rate, seconds)
            cdc_all += cdc
            row = (percentile(cdc, 0.5), percentile(cdc, 0.99), percentile(anchor, 0.5), percentile(anchor, 0.99))
            rows.append(row)
            print(f"{number:>5}  {row[0]:>7.0f}ms {row[1]:>7.0f}ms  {row[2]:>7.1f}ms {row[3]:>7.1f}ms")
        medians = [statistics.median(row[i] for row in rows) for i in range(4)]
        low = [min(row[i] for row in rows) for i in range(4)]
        high = [max(row[i] for row in rows) for i in range(4)]
        ratios = [row[1] / row[3] for row in rows]
        print(
            f"median of rounds (range): CDC p50 {medians[0]:.0f} ms ({low[0]:.0f}-{high[0]:.0f}), p99 "
            f"{medians[1]:.0f} ms ({low[1]:.0f}-{high[1]:.0f}); plain Kafka hop p50 {medians[2]:.1f} ms "
            f"({low[2]:.1f}-{high[2]:.1f}), p99 {medians[3]:.1f} ms ({low[3]:.1f}-{high[3]:.1f}); CDC/Kafka p99 "
            f"ratio {statistics.median(ratios):.1f}x paired ({min(ratios):.1f}-{max(ratios):.1f})"
        )
        verdict = "meets" if percentile(cdc_all, 0.99) <= 1000 else "MISSES"
        print(f"all {len(cdc_all)} CDC lags: p99 {percentile(cdc_all, 0.99):.0f} ms ({verdict} the 1 s target)")
    finally:
        with connection.cursor() as cursor:
            cursor.executemany("DELETE FROM catalogs WHERE product_id = %s", [(p,) for p in products])
        connection.close()
        admin = AIOKafkaAdminClient(**config.kafka_access.client_options())
        await admin.start()
        try:
            await admin.delete_topics([topic])
        except UnknownTopicOrPartitionError:
            pass  # it failed before making it
        finally:
            await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parse_args(parser, rate=10, seconds=2.0, rounds=1)
    on_bench_stack()
    asyncio.run(main(args.rate, args.seconds, args.rounds))

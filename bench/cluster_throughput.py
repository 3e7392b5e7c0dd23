"""Cluster mode's price: order intake and sink throughput with 3 KRaft brokers at RF 3 (min.insync.replicas 2, every
write acknowledged once two copies hold it) next to the shared stack's 1 broker at RF 1, in the same run.

    .venv/bin/python -m bench.cluster_throughput [--rounds 3] [--seconds 8] [--connections 64] [--records 50000]

1. Intake: one private order-service instance per side (it does not register, so only wrk calls it), wrk -c64
   POSTing orders straight at it; each publishes to its own side's brokers (the order and its stock request in one
   transaction, group-committed), and its side's catalog-service answers.
2. Sink: sink_vs_raw.py's sink of the bench's own on each side (topic bench-orders-<run>, a connector made from
   orders-sink's config, a database bench_sink_<run>, all removed afterwards): `--records` settled order records
   produced with the connector paused, then the drain timed until every row is in (one worker on the single stack,
   two sharing the tasks in the cluster). Nothing of the stack's `orders` or mydb.orders is touched.

The intake goes through the stack by design: its orders (user bench-<run>, a product of the bench's own) are real
orders on the shared stack, settled before the product is removed (order_publish.py says how).

The cluster is a stack of its own beside make up's (stack_support.side_stack: .stack/bench-cluster, every port
30000 up), started fresh and removed afterwards (--keep leaves it up). Rounds alternate which side goes first;
figures are medians; the ratio is cluster/single. Needs the shared stack (make up) and wrk. Run as a module (from
the repo root): it uses the order and sink benchmarks' helpers.
"""

import argparse
import asyncio
import contextlib
import statistics
import uuid

from bench import order_publish as order_bench
from bench import sink_vs_raw as sink_bench
from launcher.environment import ORDER_SERVICE_KAFKA, StackConfig
from launcher.mariadb import operator_connection
from stack_support.catalog_views import products_in_catalog
from stack_support.side_stack import CLUSTER_LAYOUT, SideStack

SINGLE, CLUSTER = "1 broker, RF 1", "3 brokers, RF 3"
SINK_WARM_UP_RECORDS = 20_000


def order_service_env(config: StackConfig) -> dict[str, str]:
    """Point a private order-service instance at one side: its brokers, database server and registry."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": config.kafka_bootstrap_servers,
        "KAFKA_USERNAME": ORDER_SERVICE_KAFKA.user,
        "KAFKA_PASSWORD": config.get(ORDER_SERVICE_KAFKA.password_key),
        "KAFKA_REPLICATION_FACTOR": str(config.kafka_replication_factor),
        "KAFKA_MIN_INSYNC_REPLICAS": str(config.kafka_min_insync_replicas),
        "DB_PORT": str(config.db_port),
        "DISCOVERY_URL": config.get("DISCOVERY_URL"),
    }


def measure_intake(sides: dict[str, StackConfig], args: argparse.Namespace) -> dict[str, order_bench.Figures]:
    run = uuid.uuid4().hex[:8]
    product_id = f"BENCH-CLUSTER-{run}"
    with contextlib.ExitStack() as stack:
        for config in sides.values():
            connection = stack.enter_context(contextlib.closing(operator_connection(config, config.get("CATALOG_DB"))))
            stack.enter_context(products_in_catalog(connection, config, {product_id: 10**9}, "Cluster benchmark"))
        instances = {
            side: order_bench.start_instance(f"cluster-bench-{n}-{run}", True, order_service_env(config))
            for n, (side, config) in enumerate(sides.items())
        }
        try:
            for instance in instances.values():
                wait_serving(instance, product_id, f"bench-{run}")
            results, _cold = order_bench.measure(instances, product_id, run, args)
        finally:
            for instance in instances.values():
                order_bench.stop_instance(instance)
            for config in sides.values():
                order_bench.wait_settled(config, f"bench-{run}")
    return results


def wait_serving(instance: order_bench.Instance, product_id: str, user_id: str, attempts: int = 5) -> None:
    """An instance serves once its catalog read model has caught up: on the shared stack's long catalog-changes, on
    a loaded machine, that can take longer than order_publish's 60 s."""
    for attempt in range(attempts):
        try:
            order_bench.wait_ready(instance, product_id, user_id)
            return
        except SystemExit:
            if instance.process.poll() is not None or attempt == attempts - 1:
                raise


def measure_sink(sides: dict[str, StackConfig], args: argparse.Namespace) -> dict[str, float]:
    return asyncio.run(sink_rates(sides, args))


async def sink_rates(sides: dict[str, StackConfig], args: argparse.Namespace) -> dict[str, float]:
    async with contextlib.AsyncExitStack() as stack:
        sinks = {side: await stack.enter_async_context(sink_bench.own_sink(config)) for side, config in sides.items()}

        async def once(side: str, records: int) -> float:
            orders = sink_bench.settled_orders(f"bench-{sinks[side].run}-{uuid.uuid4().hex[:6]}", records)
            return await sink_bench.sink_rows_per_second(sinks[side], orders)

        # A freshly made connector's tasks run their first records interpreted: one uncounted round per side.
        for side in sides:
            await once(side, SINK_WARM_UP_RECORDS)
        rates: dict[str, list[float]] = {side: [] for side in sides}
        names = list(sides)
        for number in range(args.rounds):
            for side in names[number % 2 :] + names[: number % 2]:
                rate = await once(side, args.records)
                rates[side].append(rate)
                print(f"  round {number + 1} sink {side:<16} {rate:9,.0f} rows/s", flush=True)
    return {side: statistics.median(values) for side, values in rates.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--warm-up", type=int, default=15, help="seconds of intake load per side before measuring")
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--keep", action="store_true", help="leave the bench cluster running (and reuse it)")
    args = parser.parse_args()

    cluster = SideStack("bench-cluster", 30000, CLUSTER_LAYOUT)
    print("starting the bench cluster (3 brokers, 2 Connect workers, 2 catalog instances; .stack/bench-cluster)")
    if args.keep:
        cluster.up()
    else:
        cluster.up_fresh()
    try:
        sides = {SINGLE: StackConfig.load(), CLUSTER: cluster.config}
        intake = measure_intake(sides, args)
        sink = measure_sink(sides, args)
    finally:
        if not args.keep:
            cluster.down()

    print()
    print(f"Order intake: one order-service instance, {args.connections} clients, {args.seconds} s x {args.rounds}")
    print(f"{'':<18}{'orders/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'failed':>8}")
    for side, figures in intake.items():
        print(
            f"{side:<18}{figures.orders_per_second:>10.0f}{figures.p50_ms:>10.2f}"
            f"{figures.p99_ms:>10.2f}{figures.failed:>8}"
        )
    print(f"Sink: {args.records:,} records per round, Kafka -> Connect -> MariaDB")
    for side, rate in sink.items():
        print(f"{side:<18}{rate:>10,.0f} rows/s")
    intake_ratio = intake[CLUSTER].orders_per_second / intake[SINGLE].orders_per_second
    print(f"ratio cluster/single: intake {intake_ratio:.2f}, sink {sink[CLUSTER] / sink[SINGLE]:.2f}")


if __name__ == "__main__":
    main()

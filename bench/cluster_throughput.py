"""Cluster mode's price: order intake and sink throughput with 3 KRaft brokers at RF 3 (min.insync.replicas 2, every
write acknowledged once two copies hold it) next to the benchmarks' own stack's 1 broker at RF 1, in the same run.

    .venv/bin/python -m bench.cluster_throughput [--rounds 3] [--seconds 8] [--connections 64] [--records 50000]

1. Intake: one private order-service instance per side (it does not register, so only wrk calls it), wrk -c64
   POSTing orders straight at it; each publishes to its own side's brokers (the order and its stock request in one
   transaction, group-committed), and its side's catalog-service answers.
2. Sink: sink_vs_raw.py's sink of the bench's own on each side (topic bench-orders-<run>, a connector made from
   orders-sink's config, a database bench_sink_<run>, all removed afterwards): `--records` settled order records
   produced with the connector paused, then the drain timed until every row is in (one worker on the single stack,
   two sharing the tasks in the cluster). Nothing of either stack's `orders` or mydb.orders is touched.

Neither side is make up's stack. The single side is the benchmarks' own stack (stack_support.bench_stack, started for it
when run alone); the cluster is another beside it (stack_support.side_stack: .stack/bench-cluster, every port 22000
up), started fresh and removed afterwards (--keep leaves it up). The intake goes through each side's whole flow by
design: its orders (user bench-<run>, a product of the bench's own) are real orders there, settled before the
product is removed (order_publish.py says how). Rounds alternate which side goes first; figures are medians with
their range; the ratio is cluster/single, the median of the paired rounds. Needs wrk. `--quick`: tiny counts, one
round; with `--without-cluster` both sides are the bench stack (no cluster started: what tests/bench runs to see
what the intake and sink parts leave). Run as a module (from the repo root): it uses the order and sink
benchmarks' helpers.
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
from stack_support.bench_stack import on_bench_stack, parse_args
from stack_support.catalog_views import products_in_catalog
from stack_support.side_stack import CLUSTER_LAYOUT, SideStack

SINGLE, CLUSTER = "1 broker, RF 1", "3 brokers, RF 3"
SINK_WARM_UP_RECORDS = 20_000
# Below the ephemeral ports (32768 up) and apart from the other stacks: stack_support.bench_stack says which.
CLUSTER_PORT_SHIFT = 22000


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
    # --without-cluster: both sides are one stack, which gets the product once.
    stacks = list({id(config): config for config in sides.values()}.values())
    with contextlib.ExitStack() as stack:
        for config in stacks:
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
            for config in stacks:
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


def measure_sink(sides: dict[str, StackConfig], args: argparse.Namespace) -> dict[str, list[float]]:
    return asyncio.run(sink_rates(sides, args))


async def sink_rates(sides: dict[str, StackConfig], args: argparse.Namespace) -> dict[str, list[float]]:
    async with contextlib.AsyncExitStack() as stack:
        sinks = {side: await stack.enter_async_context(sink_bench.own_sink(config)) for side, config in sides.items()}

        async def once(side: str, records: int) -> float:
            orders = sink_bench.settled_orders(f"bench-{sinks[side].run}-{uuid.uuid4().hex[:6]}", records)
            return await sink_bench.sink_rows_per_second(sinks[side], orders)

        # A freshly made connector's tasks run their first records interpreted: one uncounted round per side.
        for side in sides:
            await once(side, min(SINK_WARM_UP_RECORDS, args.records))
        rates: dict[str, list[float]] = {side: [] for side in sides}
        names = list(sides)
        for number in range(args.rounds):
            for side in names[number % 2 :] + names[: number % 2]:
                rate = await once(side, args.records)
                rates[side].append(rate)
                print(f"  round {number + 1} sink {side:<16} {rate:9,.0f} rows/s", flush=True)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--warm-up", type=int, default=15, help="seconds of intake load per side before measuring")
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--keep", action="store_true", help="leave the bench cluster running (and reuse it)")
    parser.add_argument(
        "--without-cluster",
        action="store_true",
        help="both sides on the bench stack (what each part leaves; no figures)",
    )
    args = parse_args(parser, rounds=1, seconds=2, connections=8, warm_up=2, records=500)
    on_bench_stack()

    single = StackConfig.load()
    if args.without_cluster:
        sides = {SINGLE: single, CLUSTER: single}
        intake = measure_intake(sides, args)
        sink = measure_sink(sides, args)
    else:
        cluster = SideStack("bench-cluster", CLUSTER_PORT_SHIFT, CLUSTER_LAYOUT)
        print("starting the bench cluster (3 brokers, 2 Connect workers, 2 catalog instances; .stack/bench-cluster)")
        if args.keep:
            cluster.up()
        else:
            cluster.up_fresh()
        try:
            sides = {SINGLE: single, CLUSTER: cluster.config}
            intake = measure_intake(sides, args)
            sink = measure_sink(sides, args)
        finally:
            if not args.keep:
                cluster.down()

    print()
    if args.without_cluster:
        print("--without-cluster: both sides ran on the bench stack; the ratios below compare nothing")
    print(f"Order intake: one order-service instance, {args.connections} clients, {args.seconds} s x {args.rounds}")
    print(f"{'':<18}{'orders/s':>10}{'rounds':>13}{'p50 ms':>10}{'p99 ms':>10}{'failed':>8}")
    for side, figures in intake.items():
        print(
            f"{side:<18}{figures.orders_per_second:>10.0f}{figures.spread:>13}{figures.p50_ms:>10.2f}"
            f"{figures.p99_ms:>10.2f}{figures.failed:>8}"
        )
    print(f"Sink: {args.records:,} records per round, Kafka -> Connect -> MariaDB")
    for side, rates in sink.items():
        print(f"{side:<18}{statistics.median(rates):>10,.0f} rows/s (rounds {min(rates):,.0f}-{max(rates):,.0f})")
    sink_ratios = [c / s for c, s in zip(sink[CLUSTER], sink[SINGLE], strict=True)]
    print(
        f"ratio cluster/single, paired rounds: intake {order_bench.paired(intake[CLUSTER], intake[SINGLE])}, "
        f"sink {statistics.median(sink_ratios):.2f} (rounds {min(sink_ratios):.2f}-{max(sink_ratios):.2f})"
    )


if __name__ == "__main__":
    main()

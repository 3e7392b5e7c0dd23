"""Cluster mode's price: order intake, sink throughput and a small transaction's commit with `make up-cluster`'s
layout (3 KRaft brokers at RF 3, min.insync.replicas 2, every write acknowledged once two copies hold it; a three-node
MariaDB Galera cluster, every commit certified by the three nodes before it returns) next to the benchmarks' own
stack (1 broker at RF 1, one MariaDB server), in the same run. `--galera-only`: the other side differs only in its
database (MARIADB_NODES=3, one broker): what synchronous replication alone costs.

    .venv/bin/python -m bench.cluster_throughput [--galera-only] [--rounds 3] [--seconds 8] [--connections 64]
                                                 [--records 50000] [--commits 2000]

1. Intake: one private order-service instance per side (it does not register, so only wrk calls it), wrk -c64
   POSTing orders straight at it; each publishes to its own side's brokers (the order and its stock request in one
   transaction, group-committed), and its side's catalog-service answers.
2. Sink: sink_vs_raw.py's sink of the bench's own on each side (topic bench-orders-<run>, a connector made from
   orders-sink's config, a database bench_sink_<run>, all removed afterwards): `--records` settled order records
   produced with the connector paused, then the drain timed until every row is in (one worker on the single stack,
   two sharing the tasks in the cluster). Nothing of either stack's `orders` or mydb.orders is touched.
3. Commits: one client runs `--commits` transactions, each an UPDATE of one stock row and an INSERT of one
   processed-order row (what catalog-service commits for each order), in a database of the bench's own
   (bench_commit_<run>, dropped afterwards) on each side; commits/s and the p50/p99 of one commit.

Neither side is make up's stack. The single side is the benchmarks' own stack (stack_support.bench_stack, started
for it when run alone); the other is a stack beside it (stack_support.side_stack: .stack/bench-cluster, or
.stack/bench-galera with --galera-only; every port 22000 up), started fresh and removed afterwards (--keep leaves it
up). The intake goes through each side's whole flow by design: its orders (user bench-<run>, a product of the
bench's own) are real orders there, settled before the product is removed (order_publish.py says how). Rounds
alternate which side goes first; figures are medians with their range; each ratio is the median of the paired
rounds. Needs wrk. `--quick`: tiny counts, one round; with `--without-cluster` both sides are the bench stack (no
other stack started: what tests/bench runs to see what the three parts leave). Run as a module (from the repo
root): it uses the order and sink benchmarks' helpers.
"""

import argparse
import asyncio
import contextlib
import statistics
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from bench import order_publish as order_bench
from bench import sink_vs_raw as sink_bench
from bench.catalog_change_lag import percentile
from stack_description.access import ORDER_SERVICE_KAFKA
from stack_description.settings import StackConfig
from stack_support.bench_stack import on_bench_stack, parse_args
from stack_support.catalog_views import products_in_catalog
from stack_support.database import operator_connection
from stack_support.side_stack import CLUSTER_LAYOUT, SideStack

SINGLE, CLUSTER = "single", "cluster"
# What each side is, by mode: the full cluster layout, or Galera alone.
SIDES = {
    "cluster": ("1 broker, 1 MariaDB", "3 brokers RF 3, Galera", "bench-cluster", CLUSTER_LAYOUT),
    "galera": ("1 MariaDB", "Galera, 3 nodes", "bench-galera", {"MARIADB_NODES": "3"}),
}
SINK_WARM_UP_RECORDS = 20_000
COMMIT_WARM_UP = 200
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


def measure_intake(
    sides: dict[str, StackConfig], args: argparse.Namespace, signing_keys: dict[str, Path] | None = None
) -> dict[str, order_bench.Figures]:
    """`signing_keys`: a side's user-service key file, where it is not this process's stack's (its instance checks
    tokens against that side's user-service)."""
    run = uuid.uuid4().hex[:8]
    product_id = f"BENCH-CLUSTER-{run}"
    # --without-cluster: both sides are one stack, which gets the product once.
    stacks = list({id(config): config for config in sides.values()}.values())
    with contextlib.ExitStack() as stack:
        for config in stacks:
            connection = stack.enter_context(contextlib.closing(operator_connection(config, config.get("CATALOG_DB"))))
            stack.enter_context(products_in_catalog(connection, config, {product_id: 10**9}, "Cluster benchmark"))
        instances = {
            side: order_bench.start_instance(
                f"cluster-bench-{n}-{run}", True, order_service_env(config), signing_keys=(signing_keys or {}).get(side)
            )
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
                print(f"  round {number + 1} sink {side:<8} {rate:9,.0f} rows/s", flush=True)
    return rates


@contextlib.contextmanager
def commit_database(config: StackConfig) -> Iterator[str]:
    """A database of the bench's own with one stock row and an empty processed-orders table; dropped afterwards."""
    name = f"bench_commit_{uuid.uuid4().hex[:8]}"
    connection = operator_connection(config, config.get("ORDERS_DB"))
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {name}")
            cursor.execute(f"CREATE TABLE {name}.stock (product_id VARCHAR(64) PRIMARY KEY, stock BIGINT NOT NULL)")
            cursor.execute(f"CREATE TABLE {name}.processed (order_id VARCHAR(64) PRIMARY KEY)")
            cursor.execute(f"INSERT INTO {name}.stock VALUES ('BENCH-COMMIT', %s)", (10**12,))
        yield name
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name}")
        connection.close()


def commit_latencies(config: StackConfig, database: str, commits: int) -> list[float]:
    """Seconds each of `commits` small transactions took, one after another from one client."""
    connection = operator_connection(config, database)
    connection.autocommit(False)
    run = uuid.uuid4().hex[:8]
    took = []
    try:
        with connection.cursor() as cursor:
            for number in range(commits):
                started = time.perf_counter()
                cursor.execute("UPDATE stock SET stock = stock - 1 WHERE product_id = 'BENCH-COMMIT'")
                cursor.execute("INSERT INTO processed VALUES (%s)", (f"{run}-{number}",))
                connection.commit()
                took.append(time.perf_counter() - started)
    finally:
        connection.close()
    return took


def measure_commits(sides: dict[str, StackConfig], args: argparse.Namespace) -> dict[str, list[list[float]]]:
    """Per side, each round's commit latencies (rounds alternate which side goes first)."""
    rounds: dict[str, list[list[float]]] = {side: [] for side in sides}
    # --without-cluster: both sides are one stack, which gets one database.
    stacks = {id(config): config for config in sides.values()}
    with contextlib.ExitStack() as stack:
        databases = {key: stack.enter_context(commit_database(config)) for key, config in stacks.items()}
        for key, config in stacks.items():
            commit_latencies(config, databases[key], min(COMMIT_WARM_UP, args.commits))
        names = list(sides)
        for number in range(args.rounds):
            for side in names[number % 2 :] + names[: number % 2]:
                config = sides[side]
                took = commit_latencies(config, databases[id(config)], args.commits)
                rounds[side].append(took)
                print(
                    f"  round {number + 1} commits {side:<8} {len(took) / sum(took):9,.0f}/s"
                    f"  p50 {percentile(took, 0.5) * 1000:6.2f} ms  p99 {percentile(took, 0.99) * 1000:6.2f} ms",
                    flush=True,
                )
    return rounds


def paired(ours: list[float], anchor: list[float]) -> str:
    """The median of the per-round ratios ours/anchor and their range."""
    ratios = [a / b for a, b in zip(ours, anchor, strict=True)]
    return f"{statistics.median(ratios):.2f} (rounds {min(ratios):.2f}-{max(ratios):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--warm-up", type=int, default=15, help="seconds of intake load per side before measuring")
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--commits", type=int, default=2000, help="small transactions per side and round")
    parser.add_argument("--galera-only", action="store_true", help="the other side differs only in its database")
    parser.add_argument("--keep", action="store_true", help="leave the bench cluster running (and reuse it)")
    parser.add_argument(
        "--without-cluster",
        action="store_true",
        help="both sides on the bench stack (what each part leaves; no figures)",
    )
    args = parse_args(parser, rounds=1, seconds=2, connections=8, warm_up=2, records=500, commits=50)
    on_bench_stack()

    single_label, cluster_label, cluster_name, layout = SIDES["galera" if args.galera_only else "cluster"]
    single = StackConfig.load()
    cluster = None if args.without_cluster else SideStack(cluster_name, CLUSTER_PORT_SHIFT, layout)
    if cluster is not None:
        print(f"starting the other side ({cluster_label}; .stack/{cluster_name})", flush=True)
        if args.keep:
            cluster.up()
        else:
            cluster.up_fresh()
    try:
        sides = {SINGLE: single, CLUSTER: single if cluster is None else cluster.config}
        keys = None if cluster is None else {CLUSTER: cluster.signing_keys_file}
        intake, sink, commits = (
            measure_intake(sides, args, keys),
            measure_sink(sides, args),
            measure_commits(sides, args),
        )
    finally:
        if cluster is not None and not args.keep:
            cluster.down()

    labels = {SINGLE: single_label, CLUSTER: cluster_label}
    print()
    if args.without_cluster:
        print("--without-cluster: both sides ran on the bench stack; the ratios below compare nothing")
    print(f"Order intake: one order-service instance, {args.connections} clients, {args.seconds} s x {args.rounds}")
    print(f"{'':<24}{'orders/s':>10}{'rounds':>13}{'p50 ms':>10}{'p99 ms':>10}{'failed':>8}")
    for side, figures in intake.items():
        print(
            f"{labels[side]:<24}{figures.orders_per_second:>10.0f}{figures.spread:>13}{figures.p50_ms:>10.2f}"
            f"{figures.p99_ms:>10.2f}{figures.failed:>8}"
        )
    print(f"Sink: {args.records:,} records per round, Kafka -> Connect -> MariaDB")
    for side, rates in sink.items():
        print(
            f"{labels[side]:<24}{statistics.median(rates):>10,.0f} rows/s (rounds {min(rates):,.0f}-{max(rates):,.0f})"
        )
    print(f"Commits: {args.commits:,} small transactions per round, one client")
    per_second = {side: [len(took) / sum(took) for took in rounds] for side, rounds in commits.items()}
    for side, rounds in commits.items():
        every = [t for took in rounds for t in took]
        print(
            f"{labels[side]:<24}{statistics.median(per_second[side]):>10,.0f} commits/s"
            f" (rounds {min(per_second[side]):,.0f}-{max(per_second[side]):,.0f});"
            f" one commit p50 {percentile(every, 0.5) * 1000:.2f} ms, p99 {percentile(every, 0.99) * 1000:.2f} ms"
        )
    print(
        f"ratio {cluster_label} / {single_label}, paired rounds: "
        f"intake {order_bench.paired(intake[CLUSTER], intake[SINGLE])}, sink {paired(sink[CLUSTER], sink[SINGLE])}, "
        f"commits {paired(per_second[CLUSTER], per_second[SINGLE])}"
    )


if __name__ == "__main__":
    main()

"""make bench leaves make up's stack as it found it (#24 item 1). Every benchmark that touches Kafka or MariaDB runs
once with `--quick` (tiny counts, one round), started as a user would start it (make up's settings in its
environment): it must move itself onto the benchmarks' own stack (stack_support.bench_stack; one for this module,
ports 12000 up, already up, so each one reuses it). After each one:

- make up's stack holds what it held: mydb.orders' row count, no order of a `bench-*` user, catalogdb's products and
  stock, its topics, connectors, consumer groups and databases;
- the bench stack holds no topic, connector, consumer group or database the benchmark made, and its catalog is as
  it was (no product of the benchmark's left, the seed products' stock untouched).

At the end the auditor says consistent over the module's window on both stacks (the order benchmarks' orders went
through the bench stack's whole flow).

gateway_vs_nginx.py and token_verify_cost.py touch neither (their upstreams, discovery and gateways are private; the
second is in-process), so they are not run here. Neither is cluster_throughput.py's cluster (3 brokers and 3 Galera
nodes; tests/cluster starts such a stack already): it runs `--without-cluster`, both sides on the bench stack.
"""

import asyncio
import datetime as dt
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from launcher.connect import answering_url
from stack_description.connectors import rest_auth
from stack_description.settings import REPO_ROOT, StackConfig
from stack_support.bench_stack import bench_stack, environment, is_up
from stack_support.database import operator_connection
from stack_support.side_stack import SideStack

pytestmark = pytest.mark.stack

# A benchmark's quick run takes well under a minute here; a loaded machine gets room.
BENCH_TIMEOUT_SECONDS = 600

BENCHES = {
    "sink_vs_raw": ["bench/sink_vs_raw.py", "--quick"],
    "audit_cost": ["bench/audit_cost.py", "--quick"],
    "catalog_change_lag": ["bench/catalog_change_lag.py", "--quick"],
    "order_publish": ["bench/order_publish.py", "--quick"],
    "observability_cost": ["-m", "bench.observability_cost", "--quick", "--skip-gateway"],
    "read_your_writes": ["-m", "bench.read_your_writes", "--quick"],
    "sync_lag": ["-m", "bench.sync_lag", "--quick"],
    "cluster_throughput": ["-m", "bench.cluster_throughput", "--quick", "--without-cluster"],
    "cost_growth": ["-m", "bench.cost_growth", "--quick"],
}


@dataclass(frozen=True)
class Holdings:
    """What a stack holds that a benchmark could leave behind or change."""

    orders: int
    bench_user_orders: int
    stock: dict[str, int]
    topics: frozenset[str]
    connectors: frozenset[str]
    groups: frozenset[str]
    databases: frozenset[str]


def holdings(config: StackConfig) -> Holdings:
    connection = operator_connection(config, config.get("ORDERS_DB"))
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT COUNT(*), COALESCE(SUM(user_id LIKE 'bench-%'), 0) FROM orders")
            counts = cursor.fetchone()
            assert counts is not None  # COUNT(*) always answers one row
            orders, bench_user_orders = counts
            cursor.execute(f"SELECT product_id, stock FROM `{config.get('CATALOG_DB')}`.catalogs")
            stock = {str(product): int(count) for product, count in cursor.fetchall()}
            cursor.execute("SHOW DATABASES")
            databases = frozenset(str(name) for (name,) in cursor.fetchall())
    finally:
        connection.close()
    connectors = httpx.get(f"{answering_url(config)}/connectors", auth=rest_auth(config), timeout=30)
    connectors.raise_for_status()
    topics, groups = asyncio.run(kafka_holdings(config))
    return Holdings(int(orders), int(bench_user_orders), stock, topics, frozenset(connectors.json()), groups, databases)


async def kafka_holdings(config: StackConfig) -> tuple[frozenset[str], frozenset[str]]:
    admin = AIOKafkaAdminClient(**config.kafka_access.client_options())
    await admin.start()
    try:
        topics = frozenset(await admin.list_topics())
        groups = frozenset(str(group[0]) for group in await admin.list_consumer_groups())
    finally:
        await admin.close()
    return topics, groups


def run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python ARGV` from the repo root, with this process's environment (make up's settings) unless `env`."""
    return subprocess.run(
        [sys.executable, *argv],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=BENCH_TIMEOUT_SECONDS,
        check=False,
    )


@pytest.fixture(scope="module")
def window_start() -> dt.datetime:
    return dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)


@pytest.fixture(scope="module")
def main_before(stack_config: StackConfig, window_start: dt.datetime) -> Holdings:
    """make up's stack before any benchmark ran."""
    return holdings(stack_config)


@pytest.fixture(scope="module")
def bench(main_before: Holdings) -> Iterator[SideStack]:
    """The benchmarks' own stack, fresh, down afterwards (make bench starts it the same way); KEEP_BENCH_STACK=1
    reuses one that is up and leaves it up."""
    stack = bench_stack()
    keep = bool(os.environ.get("KEEP_BENCH_STACK"))
    try:
        if not (keep and is_up(stack)):
            stack.up_fresh()
        yield stack
    finally:
        if not keep:
            stack.down()


@pytest.fixture(scope="module")
def bench_before(bench: SideStack) -> Holdings:
    return holdings(bench.config)


@pytest.mark.parametrize("name", list(BENCHES))
def test_a_quick_benchmark_leaves_both_stacks_as_it_found_them(
    name: str, stack_config: StackConfig, main_before: Holdings, bench: SideStack, bench_before: Holdings
) -> None:
    started = time.monotonic()
    result = run(*BENCHES[name])
    print(f"{name} --quick: {time.monotonic() - started:.0f} s\n{result.stdout[-2500:]}")
    assert result.returncode == 0, f"{name} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    assert holdings(stack_config) == main_before, f"{name} changed make up's stack"
    after = holdings(bench.config)
    assert after.topics == bench_before.topics, f"{name} left topics {sorted(after.topics - bench_before.topics)}"
    assert after.connectors == bench_before.connectors, f"{name} left connectors {sorted(after.connectors)}"
    left_groups = sorted(after.groups - bench_before.groups)
    assert not left_groups, f"{name} left consumer groups {left_groups}"
    assert after.databases == bench_before.databases, f"{name} left databases {after.databases}"
    assert after.stock == bench_before.stock, f"{name} changed the bench stack's catalog"


def test_both_auditors_agree_over_the_window(bench: SideStack, window_start: dt.datetime) -> None:
    since = window_start.isoformat()
    on_bench = run("-m", "consistency_audit", "--full", "--since", since, env=environment(bench))
    assert on_bench.returncode == 0, on_bench.stdout + on_bench.stderr
    on_main = run("-m", "consistency_audit", "--since", since)
    assert on_main.returncode == 0, on_main.stdout + on_main.stderr

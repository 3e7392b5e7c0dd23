"""Order publishing: one order-service instance under 64 concurrent clients, orders/s and p50/p99 latency when
every order is published (PENDING order + stock request in a group-committed Kafka transaction), next to its
anchor: the same endpoint with ORDER_STORE=local, the course's "before" (one insert per order into the
instance's own database), in the same run. Also the same endpoint with publishing switched off
(PUBLISH_ORDERS=false, the ceiling), and two instances publishing to private brokers with and without SASL/SCRAM
logins and ACLs (started and removed by this script): the cost of the stack's security.

    .venv/bin/python bench/order_publish.py [--rounds 3] [--seconds 8] [--connections 64]

Needs wrk. Runs on the benchmarks' own stack (stack_support.bench_stack: started for it when run alone, by make bench
otherwise). The instances are private: they look catalog-service up through discovery but do not register, so the
gateway never sends them real traffic, and they leave the saga's deadlines to the stack's instances
(ORDER_EXPIRY=false: the expirer's share of `orders` is not part of these figures). Rounds rotate which side goes
first; figures are medians over the rounds with their range. Targets (#24): publishing keeps at least 0.6 of the
baseline's throughput and is 2x the local store warm, 1.3x cold; SASL and ACLs cost under 5% of the plaintext
broker's. `--quick`: tiny counts, one round, no private brokers (`--skip-security`; they touch neither stack),
targets not judged.

What it leaves: nothing on make up's stack. The published side goes through the bench stack's whole flow by design
(user `bench-<run>`, a product BENCH-<id> of its own with stock for all of them): its orders are answered by that
stack's catalog-service and sunk into its mydb.orders. The bench waits until every one of them is settled (no
PENDING row left, the user's row count still) before it removes its product, so its auditor agrees too. The
private brokers and the local store's database are removed.
"""

import argparse
import asyncio
import contextlib
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from catalog_service import service as catalog
from catalog_service.config import CatalogSettings
from launcher import kafka as stack_kafka
from launcher.processes import port_open, render_template
from order_contract.catalog_change import CatalogProduct, catalog_change_record
from order_contract.topics import CATALOG_CHANGES_TOPIC, ORDER_CLAIMS_TOPIC, ORDERS_TOPIC, STOCK_TOPIC
from order_service.config import OrderSettings
from servicekit.database import make_engine, make_sessions
from servicekit.kafka import KafkaAccess, ensure_topics
from servicekit.testing import free_port, stack_signing_key
from servicekit.tokens import issue_token
from stack_description import access
from stack_description.access import KAFKA_LOGINS, ORDER_SERVICE_KAFKA
from stack_description.settings import STACK_DIR, StackConfig
from stack_support.bench_stack import on_bench_stack, parse_args
from stack_support.database import operator_connection

REPO_ROOT = Path(__file__).resolve().parent.parent
LOG_DIR = STACK_DIR / "logs"
# Issue #24's goals: publishing keeps 0.6 of the ceiling; the Kafka path beats the local store 2x warm, 1.3x cold.
TARGET_RATIO = 0.6
TARGET_VERSUS_LOCAL_WARM = 2.0
TARGET_VERSUS_LOCAL_COLD = 1.3
# SASL/SCRAM and ACLs may cost at most this share of the plaintext broker's throughput.
TARGET_SECURITY_COST = 0.05
BASELINE_WARM_UP_SECONDS = 5
# A private instance's start to its first accepted order. Mostly seconds; at load 40 on two cores three instances
# started together had logged nothing after 60 s.
READY_SECONDS = 180
# A bench user's orders count as settled once none is PENDING and their row count held this long.
SETTLED_QUIET_SECONDS = 3

WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "%s"
wrk.body = '{"productId": "%s", "qty": 1, "unitPrice": 100}'
"""


@dataclass
class Figures:
    orders_per_second: float
    p50_ms: float
    p99_ms: float
    failed: int
    # A median's rounds, in order (orders/s): their range is its spread, and two sides' rounds pair up.
    per_round: tuple[float, ...] = ()

    @property
    def spread(self) -> str:
        rounds = self.per_round or (self.orders_per_second,)
        return f"{min(rounds):.0f}-{max(rounds):.0f}"


def paired(ours: Figures, anchor: Figures) -> str:
    """The median of the per-round ratios ours/anchor and their range (the rounds alternate who goes first)."""
    ratios = [a / b for a, b in zip(ours.per_round, anchor.per_round, strict=True)] or [
        ours.orders_per_second / anchor.orders_per_second
    ]
    return f"{statistics.median(ratios):.2f} (rounds {min(ratios):.2f}-{max(ratios):.2f})"


@dataclass
class Instance:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    # The key file of the stack whose user-service its token checks trust; None: this process's stack (STACK_DIR).
    signing_keys: Path | None = None


def start_instance(
    name: str, publish: bool, kafka_env: dict[str, str], store: str = "kafka", signing_keys: Path | None = None
) -> Instance:
    port = free_port()
    env = os.environ | {
        "INSTANCE_ID": name,
        "ORDER_STORE": store,
        "PUBLISH_ORDERS": "true" if publish else "false",
        "DISCOVERY_REGISTER": "false",
        # The stack's instances expire orders; a private one owning some of `orders` would work for them.
        "ORDER_EXPIRY": "false",
        "PORT": str(port),
        "LOG_LEVEL": "INFO",
        **kafka_env,
    }
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path = LOG_DIR / f"bench-{name}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "order_service"], cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    return Instance(name, f"http://127.0.0.1:{port}", process, log_path, signing_keys)


# The stack's server.properties with its listeners made plaintext and no authorizer (later keys win).
PLAIN_OVERRIDES = """
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
authorizer.class.name=
"""


@contextlib.contextmanager
def private_broker(name: str, secured: bool, product_id: str) -> Iterator[dict[str, str]]:
    """A private single-node broker with the stack's server.properties: `secured` keeps its SASL/SCRAM logins and
    ACLs (infra/kafka/acls.txt, fresh passwords), otherwise plaintext without an authorizer. Nothing else uses it,
    so the two differ in their security only. Its catalog-changes holds the bench product (order-service prices from
    it). Yields the environment that points order-service at it."""
    port, controller_port = free_port(), free_port()
    home = STACK_DIR / name
    passwords = {"KAFKA_ADMIN_PASSWORD": secrets.token_urlsafe(32)}
    passwords |= {login.password_key: secrets.token_urlsafe(32) for login in KAFKA_LOGINS}
    properties = render_template(
        REPO_ROOT / "infra" / "kafka" / "server.properties",
        home / "server.properties",
        private=True,
        node_id=1,
        quorum_voters=f"1@127.0.0.1:{controller_port}",
        data_dir=home / "kafka" / "data",
        replication_factor=1,
        min_insync_replicas=1,
        kafka_port=port,
        kafka_controller_port=controller_port,
        admin_password=passwords["KAFKA_ADMIN_PASSWORD"],
    )
    if not secured:
        with open(properties, "a") as extra:
            extra.write(PLAIN_OVERRIDES.format(port=port, controller_port=controller_port))
    log_path = LOG_DIR / f"{name}.log"
    bootstrap = f"127.0.0.1:{port}"
    tool = stack_kafka.TOOL_JVM_OPTIONS
    with open(log_path, "wb") as log:
        format_storage = ["kafka.tools.StorageTool", "format", f"--cluster-id={uuid.uuid4().hex[:22]}"]
        if secured:
            format_storage.append(
                f"--add-scram=SCRAM-SHA-512=[name=admin,password={passwords['KAFKA_ADMIN_PASSWORD']}]"
            )
        argv = stack_kafka.java_command(*format_storage, "-c", str(properties), jvm_options=tool)
        subprocess.run(argv, stdout=log, stderr=log, check=True)
        # The collector start-broker gives the stack's brokers, in a smaller heap.
        jvm = ("-Xms256m", "-Xmx512m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20")
        broker = subprocess.Popen(
            stack_kafka.java_command("kafka.Kafka", str(properties), jvm_options=jvm), stdout=log, stderr=log
        )
    admin = KafkaAccess(bootstrap, "admin", passwords["KAFKA_ADMIN_PASSWORD"]) if secured else KafkaAccess(bootstrap)
    try:
        deadline = time.monotonic() + 90
        while not port_open(port):
            if broker.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the bench broker {name} did not start; see {log_path}")
            time.sleep(0.5)
        asyncio.run(ensure_topics(admin, [ORDERS_TOPIC, STOCK_TOPIC, ORDER_CLAIMS_TOPIC], 3))
        asyncio.run(publish_catalog(admin, CatalogProduct(product_id, "Benchmark product", 100)))
        if not secured:
            yield {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "KAFKA_ADMIN_PASSWORD": ""}
            return
        setup = ["example.kafkasync.admin.KafkaAccessSetup", bootstrap, str(access.ACL_FILE)]
        with open(log_path, "ab") as log:
            argv = stack_kafka.java_command(*setup, jvm_options=tool)
            subprocess.run(argv, env=os.environ | passwords, stdout=log, stderr=log, check=True)
        login = ORDER_SERVICE_KAFKA
        password = passwords[login.password_key]
        yield {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "KAFKA_USERNAME": login.user, "KAFKA_PASSWORD": password}
    finally:
        broker.terminate()
        try:
            broker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            broker.kill()
        shutil.rmtree(home, ignore_errors=True)


async def publish_catalog(kafka: KafkaAccess, product: CatalogProduct) -> None:
    """The bench product on a private broker's catalog-changes, as the catalog-source connector would write it."""
    await ensure_topics(kafka, [CATALOG_CHANGES_TOPIC], 1, {"cleanup.policy": "compact"})
    producer = AIOKafkaProducer(**kafka.client_options())
    await producer.start()
    try:
        key, value = catalog_change_record(product)
        await producer.send_and_wait(CATALOG_CHANGES_TOPIC, value, key=key)
    finally:
        await producer.stop()


def bearer(user_id: str, signing_keys: Path | None = None) -> str:
    """order-service checks the caller's token itself: the bench calls as the user in its path, with a token
    signed by the stack's own key (read from user-service's key file, as the operator can)."""
    return f"Bearer {issue_token(user_id, stack_signing_key(keys_file=signing_keys), 3600)}"


def wait_ready(instance: Instance, product_id: str, user_id: str) -> None:
    """Up (it serves once its catalog read model has caught up) and pricing the bench product."""
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if instance.process.poll() is not None:
            raise SystemExit(f"{instance.name} exited; see {instance.log_path}")
        try:
            answer = httpx.post(
                f"{instance.url}/{user_id}/orders",
                json={"productId": product_id, "qty": 1, "unitPrice": 100},
                headers={"Authorization": bearer(user_id, instance.signing_keys)},
                timeout=5,
            )
            if answer.status_code == 201:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{instance.name} not ready within {READY_SECONDS} s; see {instance.log_path}")


def stop_instance(instance: Instance) -> None:
    instance.process.send_signal(signal.SIGTERM)
    try:
        instance.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        instance.process.kill()


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk_script(body: str) -> Path:
    """A wrk Lua script in a file of its own (the caller deletes it)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(body)
    return Path(script.name)


def run_wrk(url: str, script: Path, connections: int, seconds: int) -> Figures:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout

    def latency(percentile: str) -> float:
        match = re.search(rf"^\s+{percentile}%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
        assert match, output
        return float(match.group(1)) * _UNITS_MS[match.group(2)]

    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    failed = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors:.*?timeout (\d+)", output)
    assert rate, output
    return Figures(
        orders_per_second=float(rate.group(1)),
        p50_ms=latency("50"),
        p99_ms=latency("99"),
        failed=int(failed.group(1) if failed else 0) + int(errors.group(1) if errors else 0),
    )


def median_of(runs: list[Figures]) -> Figures:
    return Figures(
        orders_per_second=statistics.median(r.orders_per_second for r in runs),
        p50_ms=statistics.median(r.p50_ms for r in runs),
        p99_ms=statistics.median(r.p99_ms for r in runs),
        failed=sum(r.failed for r in runs),
        per_round=tuple(r.orders_per_second for r in runs),
    )


def group_commit_line(log_path: Path) -> str:
    """The publisher logs its transaction and order counts when it stops."""
    for line in reversed(log_path.read_text(errors="replace").splitlines()):
        if '"publisher stopped"' in line:
            counts = dict(re.findall(r'"(transactions|orders)":(\d+)', line))
            transactions, orders = int(counts.get("transactions", 0)), int(counts.get("orders", 0))
            return f"{orders} orders in {transactions} transactions ({orders / max(transactions, 1):.1f} per commit)"
    return "(publisher counts not found in the log)"


async def with_bench_product(stock: int) -> str:
    settings = CatalogSettings()
    engine = make_engine(settings, settings.catalog_db)
    product_id = f"BENCH-{uuid.uuid4().hex[:10]}"
    await catalog.add_product(make_sessions(engine), product_id, "Benchmark product", stock, 100)
    await engine.dispose()
    return product_id


def wait_settled(config: StackConfig, user_id: str, within: float = 180) -> None:
    """Until the stack has settled every order of `user_id` (a bench's own user): no PENDING row left and the row
    count unchanged for SETTLED_QUIET_SECONDS (the sink has written the last answers). A deadline expires every
    unanswered order after ORDER_DEADLINE_SECONDS, so this ends well within `within` on a working stack."""
    connection = operator_connection(config, config.get("ORDERS_DB"))
    deadline = time.monotonic() + within
    last, quiet_since = (-1, -1), time.monotonic()
    try:
        with connection.cursor() as cursor:
            while True:
                cursor.execute(
                    "SELECT COUNT(*), COALESCE(SUM(status = 'PENDING'), 0) FROM orders WHERE user_id = %s", (user_id,)
                )
                row = cursor.fetchone()
                assert row is not None  # COUNT(*) always answers one row
                now = (int(row[0]), int(row[1]))
                if now != last:
                    last, quiet_since = now, time.monotonic()
                elif now[1] == 0 and time.monotonic() - quiet_since >= SETTLED_QUIET_SECONDS:
                    print(f"  {now[0]:,} orders of {user_id} settled in {config.get('ORDERS_DB')}.orders")
                    return
                if time.monotonic() > deadline:
                    raise SystemExit(
                        f"orders of {user_id} not settled within {within:.0f} s: {now[1]} of {now[0]} PENDING"
                    )
                time.sleep(0.5)
    finally:
        connection.close()


async def remove_bench_product(product_id: str) -> None:
    settings = CatalogSettings()
    engine = make_engine(settings, settings.catalog_db)
    await catalog.remove_product(make_sessions(engine), product_id)
    await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=64)
    # Right after `make up` publishing runs slower for a while (bench/perf-notes.md). The baseline touches neither
    # Kafka nor Connect, so a few seconds warm it.
    parser.add_argument("--warm-up", type=int, default=20, help="seconds of publishing load before measuring")
    # The private brokers touch neither stack; they are what makes a quick run slow.
    parser.add_argument("--skip-security", action="store_true", help="no private brokers (SASL vs plaintext)")
    args = parse_args(parser, rounds=1, seconds=2, connections=8, warm_up=2, skip_security=True)
    on_bench_stack()

    run = uuid.uuid4().hex[:6]
    config = StackConfig.load()
    product_id = asyncio.run(with_bench_product(stock=1_000_000_000))
    instances: dict[str, Instance] = {}
    try:
        with contextlib.ExitStack() as brokers:
            stack_env = ORDER_SERVICE_KAFKA.env(config)
            sides = {
                "publish": (f"order-bench-{run}-publish", True, stack_env, "kafka"),
                "local": (f"order-bench-{run}-local", False, stack_env, "local"),
                "baseline": (f"order-bench-{run}-nopublish", False, stack_env, "kafka"),
            }
            if not args.skip_security:
                secured_env = brokers.enter_context(
                    private_broker(f"bench-kafka-{run}-sasl", secured=True, product_id=product_id)
                )
                plain_env = brokers.enter_context(
                    private_broker(f"bench-kafka-{run}-plain", secured=False, product_id=product_id)
                )
                sides["sasl"] = (f"order-bench-{run}-sasl", True, secured_env, "kafka")
                sides["plaintext"] = (f"order-bench-{run}-plaintext", True, plain_env, "kafka")
            try:
                for side, (name, publish, env, store) in sides.items():
                    instances[side] = start_instance(name, publish, env, store)
                results, cold = measure(instances, product_id, run, args)
            finally:
                for instance in instances.values():
                    stop_instance(instance)
    finally:
        try:
            wait_settled(config, f"bench-{run}")
        finally:
            asyncio.run(remove_bench_product(product_id))
            asyncio.run(drop_local_database(f"order-bench-{run}-local"))
    report(results, cold, instances["publish"].log_path, args)


async def drop_local_database(instance_id: str) -> None:
    settings = OrderSettings(instance_id=instance_id)
    engine = create_async_engine(settings.database_url(None))
    async with engine.begin() as connection:
        await connection.execute(text(f"DROP DATABASE IF EXISTS `{settings.local_database()}`"))
    await engine.dispose()


def measure(
    instances: dict[str, Instance], product_id: str, run: str, args: argparse.Namespace
) -> tuple[dict[str, Figures], dict[str, Figures]]:
    """Warm every side up (what each did then is its cold figure), then rounds that rotate which side goes first;
    the median of each side."""
    cold: dict[str, Figures] = {}
    results: dict[str, list[Figures]] = {side: [] for side in instances}
    # One script per side: each side's token is signed with the key its stack's user-service publishes.
    scripts: dict[str, Path] = {}
    for side, instance in instances.items():
        scripts[side] = wrk_script(WRK_SCRIPT % (bearer(f"bench-{run}", instance.signing_keys), product_id))
    for side, instance in instances.items():
        wait_ready(instance, product_id, f"bench-{run}")
        warm_up = min(BASELINE_WARM_UP_SECONDS, args.warm_up) if side == "baseline" else args.warm_up
        cold[side] = run_wrk(f"{instance.url}/bench-{run}/orders", scripts[side], args.connections, warm_up)
    sides = list(instances)
    for number in range(args.rounds):
        for side in sides[number % len(sides) :] + sides[: number % len(sides)]:
            url = f"{instances[side].url}/bench-{run}/orders"
            figures = run_wrk(url, scripts[side], args.connections, args.seconds)
            results[side].append(figures)
            print(
                f"  round {number + 1} {side:<9} {figures.orders_per_second:8.0f} orders/s"
                f"  p50 {figures.p50_ms:7.2f} ms  p99 {figures.p99_ms:7.2f} ms  failed {figures.failed}",
                flush=True,
            )
    for script in scripts.values():
        script.unlink()
    return {side: median_of(runs) for side, runs in results.items()}, cold


def report(
    results: dict[str, Figures], cold: dict[str, Figures], publisher_log: Path, args: argparse.Namespace
) -> None:
    published, plain, local = results["publish"], results["baseline"], results["local"]
    ratio = published.orders_per_second / plain.orders_per_second
    versus_local = published.orders_per_second / local.orders_per_second
    cold_versus_local = cold["publish"].orders_per_second / cold["local"].orders_per_second
    print()
    print(f"POST /{{userId}}/orders, one instance, {args.connections} clients, {args.seconds} s x {args.rounds} rounds")
    print(f"{'':<46}{'orders/s':>10}{'rounds':>13}{'p50 ms':>10}{'p99 ms':>10}{'failed':>8}")
    for label, figures in (
        ("published to the stack (Kafka transaction)", published),
        ("ORDER_STORE=local, own database (anchor)", local),
        (f"published, first {args.warm_up} s after start (cold)", cold["publish"]),
        (f"ORDER_STORE=local, first {args.warm_up} s (cold)", cold["local"]),
        ("publishing off (ceiling)", plain),
        *(
            (label, results[side])
            for side, label in (
                ("sasl", "published to a private broker, SASL + ACLs"),
                ("plaintext", "published to a private broker, plaintext"),
            )
            if side in results
        ),
    ):
        print(
            f"{label:<46}{figures.orders_per_second:>10.0f}{figures.spread:>13}{figures.p50_ms:>10.2f}"
            f"{figures.p99_ms:>10.2f}{figures.failed:>8}"
        )
    print(f"published / local store: {versus_local:.2f}x warm (paired {paired(published, local)}), ", end="")
    targets = f"targets >= {TARGET_VERSUS_LOCAL_WARM}x warm, >= {TARGET_VERSUS_LOCAL_COLD}x cold"
    print(f"{cold_versus_local:.2f}x cold ({targets})")
    print(f"ratio published/ceiling: {ratio:.2f}, paired {paired(published, plain)} (target >= {TARGET_RATIO})")
    if "sasl" in results:
        security_cost = 1 - results["sasl"].orders_per_second / results["plaintext"].orders_per_second
        print(
            f"SASL + ACL cost (private brokers): {security_cost:+.1%} (target < {TARGET_SECURITY_COST:.0%}); "
            f"sasl/plaintext paired {paired(results['sasl'], results['plaintext'])}"
        )
    print(f"group commit: {group_commit_line(publisher_log)}")
    missed = (
        ratio < TARGET_RATIO
        or versus_local < TARGET_VERSUS_LOCAL_WARM
        or cold_versus_local < TARGET_VERSUS_LOCAL_COLD
        or published.failed
    )
    if not args.quick and missed:
        sys.exit(1)


if __name__ == "__main__":
    main()

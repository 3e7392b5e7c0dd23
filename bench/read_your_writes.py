"""Read your own writes, what it costs: one order-service instance with its view of `orders` (every read waits for
its sync point and merges the view with the table) next to its anchor, the same instance with ORDER_VIEW=false
(reads from the table alone), both on the benchmarks' own stack (stack_support.bench_stack), in the same run:

- GET /{userId}/orders of a user with 50 orders, 32 clients: p50/p99 and reads/s (target: p99 at most 10 ms more);
- POST /{userId}/orders without and with an Idempotency-Key, 64 clients: orders/s (target: within 5% without a key;
  with a key the view also writes and reads back a claim on order-claims);
- the view's memory when it holds a minute of orders at 1,000 orders/s that the table does not show yet (the sink
  stopped): 60,000 orders, each PENDING then settled, applied to a view in this process.

    .venv/bin/python -m bench.read_your_writes [--rounds 3] [--seconds 8]

Needs wrk; runs on the bench stack (started for it when run alone). Rounds alternate which side goes first; figures
are medians over the rounds with their range. `--quick`: tiny counts, one round, targets not judged.
What it leaves: nothing on make up's stack. On the bench's stack, real orders of its own users (`bench-<run>`,
`bench-<run>-reader`) and product BENCH-<id>, answered by that stack's catalog-service; it waits until they are
settled, then removes its product (as bench/order_publish.py).
"""

import argparse
import asyncio
import datetime as dt
import time
import tracemalloc
import uuid
from pathlib import Path

import httpx
from aiokafka.structs import ConsumerRecord

from bench import order_publish as order_bench
from order_contract.connect_record import order_record_value
from order_contract.order import Order, OrderStatus
from order_service.view import OrderView
from servicekit.kafka import KafkaAccess
from stack_description.access import ORDER_SERVICE_KAFKA
from stack_description.settings import StackConfig
from stack_support.bench_stack import on_bench_stack, parse_args

READERS = 32
WRITERS = 64
TARGET_ADDED_P99_MS = 10.0
TARGET_INTAKE_LOSS = 0.05
LISTED_ORDERS = 50
# A minute at 1,000 orders/s with the sink stopped: every order stays in the view.
HELD_ORDERS = 60_000

READ_SCRIPT = """
wrk.method = "GET"
wrk.headers["Authorization"] = "%s"
"""

# Each request its own Idempotency-Key (a new order), as a client with a key per order sends it.
KEYED_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "%s"
wrk.body = '{"productId": "%s", "qty": 1, "unitPrice": 100}'
counter = 0
request = function()
  counter = counter + 1
  wrk.headers["Idempotency-Key"] = string.format("%%s-%%d-%%d", "%s", math.random(1, 1000000000), counter)
  return wrk.format()
end
"""


def scripts(run: str, product_id: str) -> dict[str, Path]:
    token = order_bench.bearer(f"bench-{run}")
    bodies = {
        "read": READ_SCRIPT % order_bench.bearer(reader(run)),
        "post": order_bench.WRK_SCRIPT % (token, product_id),
        "keyed": KEYED_SCRIPT % (token, product_id, run),
    }
    return {name: order_bench.wrk_script(body) for name, body in bodies.items()}


def measure(
    instances: dict[str, order_bench.Instance], run: str, product_id: str, args: argparse.Namespace
) -> dict[tuple[str, str], order_bench.Figures]:
    paths = scripts(run, product_id)
    urls = {"read": f"/{reader(run)}/orders", "post": f"/bench-{run}/orders", "keyed": f"/bench-{run}/orders"}
    results: dict[tuple[str, str], list[order_bench.Figures]] = {}
    sides = list(instances)
    try:
        for side in sides:  # warm both up: the view side's first seconds read what the table does not show yet
            order_bench.run_wrk(instances[side].url + urls["post"], paths["post"], WRITERS, args.warm_up)
        for number in range(args.rounds):
            order = sides if number % 2 == 0 else sides[::-1]
            for kind, script, clients in (
                ("read", paths["read"], READERS),
                ("post", paths["post"], WRITERS),
                ("keyed", paths["keyed"], WRITERS),
            ):
                for side in order:
                    figures = order_bench.run_wrk(instances[side].url + urls[kind], script, clients, args.seconds)
                    results.setdefault((side, kind), []).append(figures)
                    print(
                        f"  round {number + 1} {kind:<5} {side:<5} {figures.orders_per_second:8.0f}/s"
                        f"  p50 {figures.p50_ms:7.2f} ms  p99 {figures.p99_ms:7.2f} ms  failed {figures.failed}",
                        flush=True,
                    )
    finally:
        for path in paths.values():
            path.unlink()
    return {key: order_bench.median_of(runs) for key, runs in results.items()}


def reader(run: str) -> str:
    """The user whose orders are listed: 50 of them, none placed while the reads are measured."""
    return f"bench-{run}-reader"


def seed_orders(instance: order_bench.Instance, run: str, product_id: str) -> None:
    """The listed user's 50 orders, and the view side's proof that it lists an order at once."""
    headers = {"Authorization": order_bench.bearer(reader(run))}
    with httpx.Client(base_url=instance.url, headers=headers, timeout=15) as client:
        for _ in range(LISTED_ORDERS):
            placed = client.post(f"/{reader(run)}/orders", json={"productId": product_id, "qty": 1, "unitPrice": 100})
            placed.raise_for_status()
        listed = client.get(f"/{reader(run)}/orders", params={"limit": 1})
        if listed.json()[0]["orderId"] != placed.json()["orderId"]:
            raise SystemExit("the view side did not list its last order at once")


def view_memory(held_orders: int) -> tuple[float, float]:
    """MB and seconds to hold `held_orders` orders (PENDING, then CONFIRMED) in a view, measured in this process."""
    view = OrderView(KafkaAccess("127.0.0.1:1"), instance_id="bench", max_entries=held_orders)
    created = dt.datetime.now(dt.UTC).replace(microsecond=0)
    records = []
    for number in range(held_orders):
        order = Order(
            order_id=str(uuid.uuid4()),
            user_id=f"user-{number % 5000}",
            product_id=f"BENCH-{number % 3}",
            qty=1,
            unit_price=100,
            total_price=100,
            status=OrderStatus.PENDING,
            created_at=created,
        )
        for offset, status in ((2 * number, OrderStatus.PENDING), (2 * number + 1, OrderStatus.CONFIRMED)):
            value = order_record_value(order.with_status(status))
            records.append(ConsumerRecord("orders", 0, offset, 0, 0, None, value, None, 0, len(value), []))
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    started = time.perf_counter()
    for start in range(0, len(records), 5000):
        view._apply_orders(0, records[start : start + 5000])
    seconds = time.perf_counter() - started
    held = sum(stat.size_diff for stat in tracemalloc.take_snapshot().compare_to(before, "filename"))
    tracemalloc.stop()
    assert len(view) == held_orders
    return held / 1e6, seconds


def report(
    figures: dict[tuple[str, str], order_bench.Figures], memory: tuple[float, float], args: argparse.Namespace
) -> bool:
    held_orders = args.held_orders
    print()
    print(f"One order-service instance per side on the stack, {args.seconds} s x {args.rounds} rounds (medians)")
    print(f"{'':<52}{'per s':>9}{'rounds':>13}{'p50 ms':>9}{'p99 ms':>9}{'failed':>8}")
    labels = {
        ("view", "read"): f"GET orders, {READERS} clients, sync point + view",
        ("table", "read"): f"GET orders, {READERS} clients, table alone (anchor)",
        ("view", "post"): f"POST, {WRITERS} clients, with the view",
        ("table", "post"): f"POST, {WRITERS} clients, ORDER_VIEW=false (anchor)",
        ("view", "keyed"): f"POST with a key, {WRITERS} clients, claimed",
        ("table", "keyed"): f"POST with a key, {WRITERS} clients, per instance",
    }
    for key, label in labels.items():
        f = figures[key]
        print(f"{label:<52}{f.orders_per_second:>9.0f}{f.spread:>13}{f.p50_ms:>9.2f}{f.p99_ms:>9.2f}{f.failed:>8}")
    added_p99 = figures[("view", "read")].p99_ms - figures[("table", "read")].p99_ms
    intake = figures[("view", "post")].orders_per_second / figures[("table", "post")].orders_per_second
    keyed = figures[("view", "keyed")].orders_per_second / figures[("table", "keyed")].orders_per_second
    print(f"reads: added p99 {added_p99:+.2f} ms (target <= {TARGET_ADDED_P99_MS:.0f} ms)")
    print(
        f"intake without a key: {intake:.2f}x the anchor, paired "
        f"{order_bench.paired(figures[('view', 'post')], figures[('table', 'post')])} "
        f"(target >= {1 - TARGET_INTAKE_LOSS:.2f})"
    )
    print(
        f"intake with a key: {keyed:.2f}x the anchor, paired "
        f"{order_bench.paired(figures[('view', 'keyed')], figures[('table', 'keyed')])}"
    )
    mb, seconds = memory
    print(
        f"view memory, {held_orders:,} orders held ({held_orders / 60_000:.2g} minutes at 1,000/s with the sink"
        f" stopped): {mb:.1f} MB ({mb * 1e6 / held_orders:.0f} bytes per order), applied at"
        f" {2 * held_orders / seconds:,.0f} records/s"
    )
    failed = any(f.failed for f in figures.values())
    return added_p99 <= TARGET_ADDED_P99_MS and intake >= 1 - TARGET_INTAKE_LOSS and not failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--warm-up", type=int, default=8, help="seconds of publishing load per side before measuring")
    parser.add_argument("--held-orders", type=int, default=HELD_ORDERS, help="orders the view-memory figure holds")
    args = parse_args(parser, rounds=1, seconds=2, warm_up=2, held_orders=2000)
    on_bench_stack()

    memory = view_memory(args.held_orders)
    run = uuid.uuid4().hex[:6]
    config = StackConfig.load()
    product_id = asyncio.run(order_bench.with_bench_product(stock=1_000_000_000))
    instances: dict[str, order_bench.Instance] = {}
    ok = False
    try:
        stack_env = ORDER_SERVICE_KAFKA.env(config)
        for side, view in (("view", "true"), ("table", "false")):
            env = {**stack_env, "ORDER_VIEW": view}
            instances[side] = order_bench.start_instance(f"order-bench-{run}-{side}", True, env)
        try:
            for instance in instances.values():
                order_bench.wait_ready(instance, product_id, f"bench-{run}")
            seed_orders(instances["view"], run, product_id)
            figures = measure(instances, run, product_id, args)
        finally:
            for instance in instances.values():
                order_bench.stop_instance(instance)
        ok = report(figures, memory, args)
    finally:
        try:
            order_bench.wait_settled(config, f"bench-{run}")
            order_bench.wait_settled(config, reader(run))
        finally:
            asyncio.run(order_bench.remove_bench_product(product_id))
    if not ok and not args.quick:
        raise SystemExit(1)


if __name__ == "__main__":
    main()

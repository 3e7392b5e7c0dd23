"""make demo: the seed story through the gateway. First the problem (each order-service instance with its own
database), then the fix (every instance publishes to Kafka; the JDBC sink writes one shared table), then the same
sync the other way (a price changed by plain SQL in catalogdb reaches every order-service instance by CDC), and
last, read your own writes (an order listed the moment it is accepted, though the table shows it ~100 ms later).

Each run makes three products of its own (DEMO-<run>-1..3, removed at the end), so the story is the same on a
stack whose seed products are sold out."""

import asyncio
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

from launcher import services
from launcher.processes import stop
from stack_description.deployables import ORDER_SERVICE
from stack_description.settings import StackConfig
from stack_support.api_client import GatewayClient, User
from stack_support.catalog_views import catalog_views, instance_base_urls, products_in_catalog
from stack_support.database import operator_connection

# The seed catalog's stock, for this run's own three products.
STOCK = (100, 110, 120)
UNIT_PRICE = 1000
# (which of the three products, qty)
ORDERS = [(0, 2), (1, 1), (2, 3), (0, 1), (1, 2), (2, 1)]
# Place-then-list pairs of the read-your-writes part.
PAIRS = 20


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(c) for c in header], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    line = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    print(f"\n{title}\n{line}")
    for index, row in enumerate(cells):
        print("| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) + " |")
        if index == 0:
            print(line)
    print(line)


def switch_order_store(config: StackConfig, store: str) -> None:
    """Restart every order-service instance with ORDER_STORE=<store>."""
    print(f"\n--- restarting the order-service instances with ORDER_STORE={store}")
    for instance in services.instances(config, ORDER_SERVICE):
        stop(instance.component)
        services.restart_service(config, instance.component.name, ORDER_STORE=store)


async def place(gateway: GatewayClient, user: User, products: list[str]) -> list[tuple[str, str, int, str]]:
    catalog = await gateway.catalog()
    placed = []
    for index, qty in ORDERS:
        product_id = products[index]
        order = await gateway.place_order(user, product_id, qty, catalog[product_id]["unitPrice"])
        placed.append((order.order_id, product_id, qty, order.instance_id))
    return placed


async def answers_per_instance(gateway: GatewayClient, user: User, asks: int = 4) -> dict[str, list[dict[str, Any]]]:
    answers: dict[str, list[dict[str, Any]]] = {}
    for _ in range(asks):
        orders, instance = await gateway.orders_of(user)
        answers.setdefault(instance, orders)
    return answers


async def the_problem(gateway: GatewayClient, products: list[str]) -> None:
    print("\n=== 1. The problem: every order-service instance keeps orders in its own database")
    user = await gateway.sign_up("Before Kafka")
    placed = await place(gateway, user, products)
    table(
        "Orders placed through the gateway (round robin)",
        ["#", "orderId", "product", "qty", "served by"],
        [(n + 1, o[0][:8] + "…", o[1], o[2], o[3]) for n, o in enumerate(placed)],
    )
    answers = await answers_per_instance(gateway, user)
    table(
        "'My orders', asked 4 times: each instance answers from its own database",
        ["answered by", "orders it knows"],
        [(i, len(orders)) for i, orders in sorted(answers.items())],
    )
    counts = {len(orders) for orders in answers.values()}
    verdict = "DISAGREE" if len(counts) > 1 or counts != {len(placed)} else "agree (only one instance answered?)"
    print(f"The instances {verdict}: {len(placed)} orders were placed.")


async def the_fix(gateway: GatewayClient, products: list[str]) -> bool:
    print("\n=== 2. The fix: publish to Kafka, one JDBC sink writes one shared table")
    user = await gateway.sign_up("With Kafka")
    stock_before = await gateway.stock()
    placed = await place(gateway, user, products)
    table(
        "Orders placed through the gateway (round robin)",
        ["#", "orderId", "product", "qty", "served by"],
        [(n + 1, o[0][:8] + "…", o[1], o[2], o[3]) for n, o in enumerate(placed)],
    )

    deadline = time.monotonic() + 60
    while True:
        orders, _ = await gateway.orders_of(user)
        statuses = {o["orderId"]: o["status"] for o in orders}
        if len(statuses) == len(placed) and "PENDING" not in statuses.values():
            break
        if time.monotonic() > deadline:
            print(f"Orders did not settle within 60 s: {statuses}. See .stack/logs/.")
            return False
        await asyncio.sleep(0.3)

    answers = await answers_per_instance(gateway, user)
    table(
        "'My orders', asked of every instance",
        ["answered by", "orders", "statuses"],
        [(i, len(o), dict(Counter(x["status"] for x in o))) for i, o in sorted(answers.items())],
    )
    same = len({tuple(sorted(x["orderId"] for x in o)) for o in answers.values()}) == 1
    print("Every instance gives the same answer." if same else "Instances disagree!")

    stock_after = await gateway.stock()
    confirmed: Counter[str] = Counter()
    for order_id, product_id, qty, _ in placed:
        if statuses[order_id] == "CONFIRMED":
            confirmed[product_id] += qty
    rows = [
        (p, stock_before[p], stock_after[p], stock_before[p] - stock_after[p], confirmed[p])
        for p in sorted({o[1] for o in placed})
    ]
    table(
        "Stock (catalog-service consumed example-catalog-topic)",
        ["product", "before", "after", "taken", "confirmed qty"],
        rows,
    )
    exact = all(r[3] == r[4] for r in rows)
    print("Stock decreased by exactly the confirmed quantities." if exact else "Stock drifted!")

    product = products[2]
    too_many = stock_after[product] + 1
    big = await gateway.place_order(user, product, too_many)
    deadline = time.monotonic() + 60
    status = "PENDING"
    while status == "PENDING" and time.monotonic() < deadline:
        orders, _ = await gateway.orders_of(user)
        status = next((o["status"] for o in orders if o["orderId"] == big.order_id), "PENDING")
        await asyncio.sleep(0.3)
    left = (await gateway.stock())[product]
    table(
        "An order larger than the stock",
        ["product", "qty ordered", "stock", "status", "stock after"],
        [(product, too_many, stock_after[product], status, left)],
    )
    return same and exact and status == "REJECTED" and left == stock_after[product]


def set_price_by_sql(config: StackConfig, product_id: str, unit_price: int) -> float:
    """UPDATE the price in catalogdb with plain SQL (no service involved); returns when it committed."""
    connection = operator_connection(config, config.get("CATALOG_DB"))
    try:
        with connection.cursor() as cursor:
            cursor.execute("UPDATE catalogs SET unit_price = %s WHERE product_id = %s", (unit_price, product_id))
        return time.monotonic()
    finally:
        connection.close()


async def until_priced(config: StackConfig, product_id: str, unit_price: int, since: float) -> dict[str, float]:
    """Seconds from `since` until each order-service instance's read model priced the product at `unit_price`."""
    seen: dict[str, float] = {}
    deadline = since + 30
    urls = await asyncio.to_thread(instance_base_urls, config)
    while time.monotonic() < deadline:
        views = await asyncio.to_thread(catalog_views, config, 2.0, urls)
        for view in views:
            if view.instance_id not in seen and view.prices.get(product_id) == unit_price:
                seen[view.instance_id] = time.monotonic() - since
        if views and len(seen) >= len(views):
            break
        await asyncio.sleep(0.02)
    return seen


async def the_price_change(config: StackConfig, gateway: GatewayClient, product: str) -> bool:
    print("\n=== 3. The other way: a price changed in catalogdb reaches every order-service instance (CDC)")
    old_price = (await gateway.catalog())[product]["unitPrice"]
    new_price = old_price + 250
    changed_at = await asyncio.to_thread(set_price_by_sql, config, product, new_price)
    print(f"UPDATE catalogs SET unit_price = {new_price} WHERE product_id = '{product}'   (plain SQL, was {old_price})")
    try:
        seen = await until_priced(config, product, new_price, changed_at)
        table(
            "binlog -> catalog-source connector -> catalog-changes -> each instance's read model",
            ["order-service instance", "prices it at", "after the COMMIT"],
            [(instance, new_price, f"{seconds * 1000:.0f} ms") for instance, seconds in sorted(seen.items())],
        )
        user = await gateway.sign_up("After a price change")
        placed = await gateway.place_order(user, product, 2)
        stale = await gateway.order(user, product, 1, old_price)
        table(
            "The next orders",
            ["request", "answer", "unitPrice", "totalPrice"],
            [
                ("2 x, no unitPrice", 201, placed.order["unitPrice"], placed.order["totalPrice"]),
                (f"1 x at the old {old_price}", stale.status_code, stale.json().get("unitPrice"), "-"),
            ],
        )
        return (
            len(seen) >= config.number("ORDER_INSTANCES")
            and placed.order["unitPrice"] == new_price
            and stale.status_code == 409
        )
    finally:
        # Back to the price it had, so the demo can run again from the same catalog.
        restored_at = await asyncio.to_thread(set_price_by_sql, config, product, old_price)
        await until_priced(config, product, old_price, restored_at)
        print(f"(price of {product} set back to {old_price})")


def in_table(config: StackConfig, order_id: str) -> bool:
    """Whether mydb.orders has a row of the order: all "My orders" could show before read your own writes."""
    connection = operator_connection(config, config.get("ORDERS_DB"))
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM orders WHERE order_id = %s", (order_id,))
            return cursor.fetchone() is not None
    finally:
        connection.close()


async def read_your_writes(config: StackConfig, gateway: GatewayClient, product: str) -> bool:
    print("\n=== 4. Read your own writes: 'My orders' at once, on any instance")
    user = await gateway.sign_up("Right After Paying")
    in_table_at_once = listed_at_once = 0
    row_after: list[float] = []
    for _ in range(PAIRS):
        placed = await gateway.place_order(user, product, 1)
        accepted = time.monotonic()
        # Before: the list was the table alone, which shows an order once the sink has written it.
        in_table_at_once += await asyncio.to_thread(in_table, config, placed.order_id)
        # Now: the list waits for the instance's sync point and merges its view of `orders` with the table.
        orders, _ = await gateway.orders_of(user)
        listed_at_once += placed.order_id in {o["orderId"] for o in orders}
        for _ in range(3000):  # polled every ~10 ms, 30 s at most
            if await asyncio.to_thread(in_table, config, placed.order_id):
                break
            await asyncio.sleep(0.005)
        row_after.append((time.monotonic() - accepted) * 1000)
    table(
        f"{PAIRS} orders, each read back the moment it was accepted",
        ["read", "showed the order", ""],
        [
            ("the shared table alone (before)", f"{in_table_at_once} of {PAIRS}", "the sink's lag"),
            ("GET .../orders through the gateway (now)", f"{listed_at_once} of {PAIRS}", "sync point + view"),
        ],
    )
    print(f"The row appeared after a median {statistics.median(row_after):.0f} ms (max {max(row_after):.0f} ms).")
    return listed_at_once == PAIRS


async def tell(config: StackConfig, products: list[str]) -> bool:
    async with GatewayClient(f"http://127.0.0.1:{services.gateway_port(config)}") as gateway:
        await asyncio.to_thread(switch_order_store, config, "local")
        try:
            await the_problem(gateway, products)
        finally:
            await asyncio.to_thread(switch_order_store, config, config.get("ORDER_STORE", "kafka") or "kafka")
        fixed = await the_fix(gateway, products)
        synced = await the_price_change(config, gateway, products[1])
        fresh = await read_your_writes(config, gateway, products[0])
        return fixed and synced and fresh


def main() -> int:
    config = StackConfig.load()
    run = uuid.uuid4().hex[:6]
    stock = {f"DEMO-{run}-{n + 1}": count for n, count in enumerate(STOCK)}
    connection = operator_connection(config, config.get("CATALOG_DB"))
    try:
        with products_in_catalog(connection, config, stock, "Demo product", UNIT_PRICE):
            print(f"This run's products: {', '.join(stock)} (stock {', '.join(map(str, STOCK))}; removed at the end)")
            ok = asyncio.run(tell(config, list(stock)))
    finally:
        connection.close()
    print("\nDemo finished: one consistent database." if ok else "\nDemo finished with a problem (see above).")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

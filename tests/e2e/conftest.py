"""End-to-end fixtures: the running stack, reached through the gateway; the shared table read for verification."""

import uuid
from collections.abc import AsyncIterator, Iterator

import pymysql
import pytest

from demo.gateway_client import GatewayClient
from launcher import services
from launcher.environment import StackConfig
from servicekit.config import ServiceSettings
from tests.conftest import database

# The contract's seed catalog: stock each product started with.
SEED_STOCK = {"CATALOG-001": 100, "CATALOG-002": 110, "CATALOG-003": 120}
SEED_PRICE = {"CATALOG-001": 1500, "CATALOG-002": 1000, "CATALOG-003": 2000}


@pytest.fixture
async def gateway(stack_config: StackConfig) -> AsyncIterator[GatewayClient]:
    async with GatewayClient(f"http://127.0.0.1:{services.gateway_port(stack_config)}") as client:
        yield client


def rows_by_id(db: pymysql.Connection, order_ids: list[str]) -> dict[str, list[dict]]:
    """Every row of the shared table for these order ids (a list per id, to see duplicates)."""
    if not order_ids:
        return {}
    found: dict[str, list[dict]] = {}
    with db.cursor() as cursor:
        placeholders = ", ".join(["%s"] * len(order_ids))
        cursor.execute(
            f"SELECT order_id, user_id, product_id, qty, status FROM orders WHERE order_id IN ({placeholders})",
            order_ids,
        )
        for row in cursor.fetchall():
            found.setdefault(row["order_id"], []).append(row)
    return found


def settled(db: pymysql.Connection, order_ids: list[str]) -> dict[str, dict] | None:
    """The rows once every order has exactly one row with its final status, else None."""
    rows = rows_by_id(db, order_ids)
    if set(rows) != set(order_ids) or any(len(r) != 1 or r[0]["status"] == "PENDING" for r in rows.values()):
        return None
    return {order_id: r[0] for order_id, r in rows.items()}


def stock_drift(db: pymysql.Connection, initial: dict[str, int], stock: dict[str, int]) -> dict[str, int]:
    """Per product: (initial stock - stock now) - confirmed quantity in the shared table, over every order
    ever taken for it. All zero = no drift."""
    taken = confirmed_qty(db, list(initial))
    return {p: (initial[p] - stock[p]) - taken.get(p, 0) for p in initial}


@pytest.fixture
def fresh_products(settings: ServiceSettings, stack_config: StackConfig) -> Iterator[dict[str, int]]:
    """Three products of this test alone, each with 5,000 in stock, so a long flow of orders neither empties
    the seed catalog (the demo's) nor depends on what earlier runs left. Removed afterwards."""
    products = {f"E2E-{uuid.uuid4().hex[:10]}": 5000 for _ in range(3)}
    connection = database(settings, stack_config.get("CATALOG_DB", "catalogdb"))
    with connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO catalogs (product_id, product_name, stock, unit_price, created_at)"
            " VALUES (%s, 'End-to-end test product', %s, 100, UTC_TIMESTAMP(3))",
            list(products.items()),
        )
    yield products
    with connection.cursor() as cursor:
        cursor.executemany("DELETE FROM catalogs WHERE product_id = %s", [(p,) for p in products])
    connection.close()


def confirmed_qty(db: pymysql.Connection, product_ids: list[str]) -> dict[str, int]:
    placeholders = ", ".join(["%s"] * len(product_ids))
    with db.cursor() as cursor:
        cursor.execute(
            f"SELECT product_id, SUM(qty) AS taken FROM orders WHERE status = 'CONFIRMED'"
            f" AND product_id IN ({placeholders}) GROUP BY product_id",
            product_ids,
        )
        return {row["product_id"]: int(row["taken"]) for row in cursor.fetchall()}


def rows_of_user(db: pymysql.Connection, user_id: str) -> list[dict]:
    with db.cursor() as cursor:
        cursor.execute("SELECT order_id, status FROM orders WHERE user_id = %s", (user_id,))
        return list(cursor.fetchall())

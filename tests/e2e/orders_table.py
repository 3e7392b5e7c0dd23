"""What the end-to-end tests check against: the seed catalog, and the shared orders table read directly."""

from typing import Any

from servicekit.testing import DictConnection

# The contract's seed catalog: stock each product started with.
SEED_STOCK = {"CATALOG-001": 100, "CATALOG-002": 110, "CATALOG-003": 120}
SEED_PRICE = {"CATALOG-001": 1500, "CATALOG-002": 1000, "CATALOG-003": 2000}

Row = dict[str, Any]


def rows_by_id(db: DictConnection, order_ids: list[str]) -> dict[str, list[Row]]:
    """Every row of the shared table for these order ids (a list per id, to see duplicates)."""
    if not order_ids:
        return {}
    found: dict[str, list[Row]] = {}
    with db.cursor() as cursor:
        placeholders = ", ".join(["%s"] * len(order_ids))
        cursor.execute(
            f"SELECT order_id, user_id, product_id, qty, status FROM orders WHERE order_id IN ({placeholders})",
            order_ids,
        )
        for row in cursor.fetchall():
            found.setdefault(row["order_id"], []).append(row)
    return found


def settled(db: DictConnection, order_ids: list[str]) -> dict[str, Row] | None:
    """The rows once every order has exactly one row with its final status, else None."""
    rows = rows_by_id(db, order_ids)
    if set(rows) != set(order_ids) or any(len(r) != 1 or r[0]["status"] == "PENDING" for r in rows.values()):
        return None
    return {order_id: r[0] for order_id, r in rows.items()}


def confirmed_qty(db: DictConnection, product_ids: list[str]) -> dict[str, int]:
    placeholders = ", ".join(["%s"] * len(product_ids))
    with db.cursor() as cursor:
        cursor.execute(
            f"SELECT product_id, SUM(qty) AS taken FROM orders WHERE status = 'CONFIRMED'"
            f" AND product_id IN ({placeholders}) GROUP BY product_id",
            product_ids,
        )
        return {row["product_id"]: int(row["taken"]) for row in cursor.fetchall()}


def stock_drift(db: DictConnection, initial: dict[str, int], stock: dict[str, int]) -> dict[str, int]:
    """Per product: (initial stock - stock now) - confirmed quantity in the shared table, over every order
    ever taken for it. All zero = no drift."""
    taken = confirmed_qty(db, list(initial))
    return {p: (initial[p] - stock[p]) - taken.get(p, 0) for p in initial}


def rows_of_user(db: DictConnection, user_id: str) -> list[Row]:
    with db.cursor() as cursor:
        cursor.execute("SELECT order_id, status FROM orders WHERE user_id = %s", (user_id,))
        return list(cursor.fetchall())

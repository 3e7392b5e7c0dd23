"""What the CDC tests do to the running stack and read back from it: products written to catalogdb by plain SQL
(any writer of the table is captured), each order-service instance's catalog read model (GET /catalog-view),
orders placed on one instance directly or through the gateway, and the rows they leave in mydb.orders."""

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pymysql

from servicekit.testing import DictConnection, eventually
from servicekit.tokens import SigningKey, issue_token
from stack_description.settings import StackConfig
from stack_support.api_client import User
from stack_support.catalog_views import instance_base_urls, priced_everywhere

# A change committed to catalogdb.catalogs is priced by every order-service instance within this (issue #12).
CHANGE_DEADLINE_SECONDS = 3.0
SEED_PRODUCTS = ("CATALOG-001", "CATALOG-002", "CATALOG-003")


class TestProducts:
    """Products of one test in catalogdb.catalogs, written by plain SQL as any writer of the table may; every
    product it made (or was told of) is deleted at the end. Reconnects, so it outlives a MariaDB restart."""

    __test__ = False  # not a test class, whatever its name says

    def __init__(self, connect: Callable[[], DictConnection]) -> None:
        self._connect = connect
        self._db: DictConnection | None = None
        self.made: list[str] = []

    def _connection(self) -> DictConnection:
        """The open connection, or a new one once the old is gone (the server was restarted)."""
        if self._db is not None:
            try:
                self._db.ping()
            except pymysql.err.Error:
                self._db = None
        if self._db is None:
            self._db = self._connect()
        return self._db

    def _execute(self, sql: str, args: tuple[Any, ...] | list[Any]) -> int:
        with self._connection().cursor() as cursor:
            return int(cursor.execute(sql, args))

    def new_id(self) -> str:
        product_id = f"CDC-{uuid.uuid4().hex[:12]}"
        self.made.append(product_id)
        return product_id

    def add(self, unit_price: int, stock: int = 1000, name: str = "CDC test product") -> str:
        product_id = self.new_id()
        self._execute(
            "INSERT INTO catalogs (product_id, product_name, stock, unit_price, created_at)"
            " VALUES (%s, %s, %s, %s, UTC_TIMESTAMP(3))",
            (product_id, name, stock, unit_price),
        )
        return product_id

    def set_price(self, product_id: str, unit_price: int) -> None:
        changed = self._execute("UPDATE catalogs SET unit_price = %s WHERE product_id = %s", (unit_price, product_id))
        assert changed == 1, f"{product_id} is not in catalogdb.catalogs"

    def remove(self, product_id: str) -> None:
        self._execute("DELETE FROM catalogs WHERE product_id = %s", (product_id,))

    def prices(self, product_ids: list[str]) -> dict[str, int]:
        """What catalogdb says now."""
        with self._connection().cursor() as cursor:
            placeholders = ", ".join(["%s"] * len(product_ids))
            cursor.execute(
                f"SELECT product_id, unit_price FROM catalogs WHERE product_id IN ({placeholders})", product_ids
            )
            return {row["product_id"]: row["unit_price"] for row in cursor.fetchall()}

    def remove_all(self) -> None:
        if self.made:
            self._execute(f"DELETE FROM catalogs WHERE product_id IN ({', '.join(['%s'] * len(self.made))})", self.made)
        if self._db is not None:
            self._db.close()


def order_instances(config: StackConfig) -> int:
    return config.number("ORDER_INSTANCES")


async def priced_on_every_instance(
    config: StackConfig, expected: dict[str, int | None], *, within: float, what: str, instances: int | None = None
) -> None:
    """Wait until every UP order-service instance, and at least `instances` (default: all of them), prices each
    product as `expected` (None: unknown there)."""
    instances = order_instances(config) if instances is None else instances
    await eventually(
        lambda: asyncio.to_thread(priced_everywhere, config, expected, instances),
        within=within,
        what=f"every order-service instance prices {what}",
        interval=0.05,
    )


def read_models(config: StackConfig) -> dict[str, dict[str, Any]]:
    """instance id -> its GET /catalog-view, for every UP order-service instance that answers."""
    found = {}
    for instance_id, base_url in instance_base_urls(config).items():
        try:
            found[instance_id] = httpx.get(f"{base_url}/catalog-view", timeout=2).json()
        except (httpx.HTTPError, ValueError):
            continue
    return found


def user_with_token(key: SigningKey, name: str = "cdc") -> User:
    """A user id of this test's own with a token for it, as user-service would sign it (no sign-up needed:
    order-service trusts the token, and sign-ups are rate limited)."""
    user_id = f"{name}-{uuid.uuid4().hex[:12]}"
    return User(user_id=user_id, email=f"{user_id}@example.com", token=issue_token(user_id, key, 600))


async def order_on_every_instance(config: StackConfig, user: User, body: dict[str, Any]) -> dict[str, httpx.Response]:
    """POST the order body to each UP order-service instance directly (not round robin): instance id -> answer."""
    urls = await asyncio.to_thread(instance_base_urls, config)
    assert len(urls) >= order_instances(config), f"not every order-service instance is UP: {sorted(urls)}"
    async with httpx.AsyncClient(timeout=15, headers=user.auth) as http:
        answers = await asyncio.gather(*(http.post(f"{url}/{user.user_id}/orders", json=body) for url in urls.values()))
    return dict(zip(urls, answers, strict=True))


def rows_of_user(db: DictConnection, user_id: str) -> list[dict[str, Any]]:
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT order_id, product_id, qty, unit_price, total_price, status FROM orders WHERE user_id = %s",
            (user_id,),
        )
        return list(cursor.fetchall())


def settled_rows(db: DictConnection, user_id: str, order_ids: set[str]) -> dict[str, dict[str, Any]] | None:
    """That user's rows once each of `order_ids` has exactly one, no longer PENDING; else None."""
    rows = rows_of_user(db, user_id)
    by_id = {row["order_id"]: row for row in rows}
    if len(by_id) != len(rows) or not order_ids <= set(by_id):
        return None
    if any(by_id[order_id]["status"] == "PENDING" for order_id in order_ids):
        return None
    return by_id

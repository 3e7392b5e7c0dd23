"""What every order-service instance prices products at: each registered instance's catalog read model, read from
its GET /catalog-view (the demo, the tests and the change-lag benchmark look through this)."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pymysql

from launcher import services
from servicekit.discovery import instance_from_entry
from servicekit.testing import eventually_blocking
from stack_description.settings import StackConfig

ORDER_APP = "ORDER-SERVICE"


@dataclass(frozen=True)
class CatalogView:
    instance_id: str
    base_url: str
    caught_up: bool
    prices: dict[str, int]
    recent: list[dict[str, Any]]


def instance_base_urls(config: StackConfig) -> dict[str, str]:
    """instance id -> base URL of every UP order-service instance in discovery."""
    instances = (instance_from_entry(ORDER_APP, entry) for entry in services.registered_instances(config, ORDER_APP))
    return {instance.instance_id: instance.base_url for instance in instances if instance.status == "UP"}


def catalog_views(config: StackConfig, timeout: float = 2.0, urls: dict[str, str] | None = None) -> list[CatalogView]:
    """One view per UP order-service instance (an instance that does not answer is left out); `urls` (from
    instance_base_urls) spares a caller that polls asking discovery every time."""
    views = []
    for instance_id, base_url in (urls if urls is not None else instance_base_urls(config)).items():
        try:
            answer = httpx.get(f"{base_url}/catalog-view", timeout=timeout).json()
        except (httpx.HTTPError, ValueError):
            continue
        prices = {product["productId"]: product["unitPrice"] for product in answer["products"]}
        views.append(CatalogView(instance_id, base_url, answer["caughtUp"], prices, answer["recent"]))
    return views


def priced_everywhere(config: StackConfig, expected: dict[str, int | None], instances: int) -> bool:
    """Do `instances` (or more) order-service instances price each product as `expected` (None: unknown)?"""
    views = catalog_views(config)
    return len(views) >= instances and all(
        view.prices.get(product_id) == price for view in views for product_id, price in expected.items()
    )


@contextmanager
def products_in_catalog(
    connection: "pymysql.Connection[Any]",
    config: StackConfig,
    stock: dict[str, int],
    name: str,
    unit_price: int = 100,
) -> Iterator[dict[str, int]]:
    """Products of a caller's own (`stock`: product id -> its stock, each at `unit_price`), written into catalogdb
    by plain SQL through `connection` and removed afterwards; handed over once every order-service instance prices
    them (the catalog-source connector brought them to each read model)."""
    try:
        with connection.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO catalogs (product_id, product_name, stock, unit_price, created_at)"
                " VALUES (%s, %s, %s, %s, UTC_TIMESTAMP(3))",
                [(product_id, name, count, unit_price) for product_id, count in stock.items()],
            )
        instances = config.number("ORDER_INSTANCES")
        eventually_blocking(
            lambda: priced_everywhere(config, dict.fromkeys(stock, unit_price), instances),
            within=30,
            what="every order-service instance to price the new products (CDC)",
        )
        yield stock
    finally:
        try:
            connection.ping()
        except pymysql.err.Error:
            connection.connect()  # the caller may have restarted MariaDB meanwhile (make chaos does)
        with connection.cursor() as cursor:
            cursor.executemany("DELETE FROM catalogs WHERE product_id = %s", [(p,) for p in stock])

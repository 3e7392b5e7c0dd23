"""Products of a test's own in catalogdb, written by plain SQL and removed afterwards; handed to the test once
every order-service instance prices them (the catalog-source connector brought them to each read model)."""

from collections.abc import Iterator
from contextlib import contextmanager

from launcher.catalog_views import priced_everywhere
from launcher.environment import StackConfig
from servicekit.config import ServiceSettings
from servicekit.testing import database, eventually_blocking

UNIT_PRICE = 100


@contextmanager
def products_in_catalog(
    settings: ServiceSettings, stack_config: StackConfig, stock: dict[str, int], name: str
) -> Iterator[dict[str, int]]:
    """`stock`: product id -> its stock; each costs UNIT_PRICE."""
    connection = database(settings, stack_config.get("CATALOG_DB", "catalogdb"))
    try:
        with connection.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO catalogs (product_id, product_name, stock, unit_price, created_at)"
                " VALUES (%s, %s, %s, %s, UTC_TIMESTAMP(3))",
                [(product_id, name, count, UNIT_PRICE) for product_id, count in stock.items()],
            )
        instances = stack_config.number("ORDER_INSTANCES", 2)
        eventually_blocking(
            lambda: priced_everywhere(stack_config, dict.fromkeys(stock, UNIT_PRICE), instances),
            within=30,
            what="every order-service instance to price the new products (CDC)",
        )
        yield stock
    finally:
        with connection.cursor() as cursor:
            cursor.executemany("DELETE FROM catalogs WHERE product_id = %s", [(p,) for p in stock])
        connection.close()

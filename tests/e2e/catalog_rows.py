"""Products of a test's own in catalogdb (stack_support.catalog_views.products_in_catalog), written with the
services' database account."""

from collections.abc import Iterator
from contextlib import contextmanager

from servicekit.config import ServiceSettings
from servicekit.testing import database
from stack_description.settings import StackConfig
from stack_support import catalog_views

UNIT_PRICE = 100


@contextmanager
def products_in_catalog(
    settings: ServiceSettings, stack_config: StackConfig, stock: dict[str, int], name: str
) -> Iterator[dict[str, int]]:
    """`stock`: product id -> its stock; each costs UNIT_PRICE."""
    connection = database(settings, stack_config.get("CATALOG_DB"))
    try:
        with catalog_views.products_in_catalog(connection, stack_config, stock, name, UNIT_PRICE) as made:
            yield made
    finally:
        connection.close()

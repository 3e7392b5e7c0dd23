"""The cluster suite's own stack (tests/cluster/cluster_stack.py), up once for its module and down afterwards."""

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from launcher import services
from servicekit.testing import DictConnection, database
from stack_description.deployables import GATEWAY
from stack_support.api_client import GatewayClient, User
from stack_support.side_stack import CLUSTER_LAYOUT, SideStack
from tests.e2e.catalog_rows import products_in_catalog


@pytest.fixture(scope="module")
def cluster() -> Iterator[SideStack]:
    """Fresh, and down afterwards; KEEP_CLUSTER=1 reuses the last one (fresh when there is none) and leaves it up."""
    stack = SideStack("cluster-test", 20000, CLUSTER_LAYOUT)
    keep = bool(os.environ.get("KEEP_CLUSTER"))
    if keep and stack.stack_dir.exists():
        stack.up()
    else:
        stack.up_fresh()
    try:
        yield stack
    finally:
        if not keep:
            stack.down()


@pytest.fixture
async def gateway(cluster: SideStack) -> AsyncIterator[GatewayClient]:
    """Both gateways: a client moves to the other one when its connection breaks."""
    urls = [f"http://127.0.0.1:{i.component.port}" for i in services.instances(cluster.config, GATEWAY)]
    async with GatewayClient(*urls) as client:
        yield client


@pytest.fixture
async def buyers(gateway: GatewayClient) -> list[User]:
    return list(await asyncio.gather(*(gateway.sign_up(f"Cluster Buyer {n}") for n in range(3))))


@pytest.fixture
def orders_db(cluster: SideStack) -> Iterator[DictConnection]:
    connection = database(cluster.settings, cluster.config.get("ORDERS_DB"))
    yield connection
    connection.close()


@pytest.fixture
def catalog_db(cluster: SideStack) -> Iterator[DictConnection]:
    connection = database(cluster.settings, cluster.config.get("CATALOG_DB"))
    yield connection
    connection.close()


@pytest.fixture
def fresh_products(cluster: SideStack) -> Iterator[dict[str, int]]:
    """Three products of this test alone, 5,000 each in stock (every order of a test fits)."""
    products = {f"CLUSTER-{uuid.uuid4().hex[:10]}": 5000 for _ in range(3)}
    with products_in_catalog(cluster.settings, cluster.config, products, "Cluster test product") as made:
        yield made


@pytest.fixture
def scarce_product(cluster: SideStack) -> Iterator[dict[str, int]]:
    """One product with 40 in stock: a test's flow sells it out, and later orders are REJECTED."""
    product = {f"CLUSTER-SCARCE-{uuid.uuid4().hex[:8]}": 40}
    with products_in_catalog(cluster.settings, cluster.config, product, "Scarce cluster product") as made:
        yield made


@pytest.fixture
def price_probe(cluster: SideStack) -> Iterator[str]:
    """A product of the test's own that nobody orders: its price is changed while nodes die, to follow CDC."""
    product = f"CLUSTER-PRICE-{uuid.uuid4().hex[:8]}"
    with products_in_catalog(cluster.settings, cluster.config, {product: 1}, "Price probe"):
        yield product

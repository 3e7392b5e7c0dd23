"""CDC fixtures: the running stack (real binlog, real Connect, every order-service instance), products of each test's
own written to catalogdb by plain SQL and removed afterwards. tests/conftest.py gives stack_config, settings and
orders_db."""

from collections.abc import AsyncIterator, Iterator

import pytest

from launcher import services
from servicekit.config import ServiceSettings
from servicekit.testing import database, stack_signing_key
from servicekit.tokens import SigningKey
from stack_description.settings import StackConfig
from stack_support.api_client import GatewayClient
from tests.cdc.catalog_stack import TestProducts


@pytest.fixture
async def gateway(stack_config: StackConfig) -> AsyncIterator[GatewayClient]:
    async with GatewayClient(f"http://127.0.0.1:{services.gateway_port(stack_config)}") as client:
        yield client


@pytest.fixture
def products(settings: ServiceSettings, stack_config: StackConfig) -> Iterator[TestProducts]:
    """Test products in catalogdb (never the seed ones); every one made is deleted afterwards."""
    made = TestProducts(lambda: database(settings, stack_config.get("CATALOG_DB")))
    yield made
    made.remove_all()


@pytest.fixture
def signing_key() -> SigningKey:
    """The stack's token signing key, read from user-service's key file as the operator can."""
    return stack_signing_key()

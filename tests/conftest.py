"""Fixtures for the repo-level suites (infra, e2e): the running stack's settings and its database."""

from collections.abc import Iterator

import pytest

from servicekit.config import ServiceSettings
from servicekit.testing import DictConnection, database
from stack_description.settings import StackConfig


@pytest.fixture(scope="session")
def stack_config() -> StackConfig:
    return StackConfig.load()


@pytest.fixture(scope="session")
def settings() -> ServiceSettings:
    return ServiceSettings()


@pytest.fixture
def orders_db(settings: ServiceSettings, stack_config: StackConfig) -> Iterator[DictConnection]:
    """The shared orders database."""
    connection = database(settings, stack_config.get("ORDERS_DB"))
    yield connection
    connection.close()

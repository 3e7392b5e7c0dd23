"""Fixtures for the repo-level suites (infra, e2e): the running stack's settings and its database."""

import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import pymysql
import pytest

from launcher.environment import StackConfig
from servicekit.config import ServiceSettings

T = TypeVar("T")


def eventually(check: Callable[[], T], timeout: float, what: str, interval: float = 0.25) -> T:
    """Poll `check` until it returns something truthy; fail with `what` and the last value after `timeout` s."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            last = check()
            if last:
                return last
        except AssertionError as exc:
            last = exc
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout:.0f}s: {what} (last: {last!r})")
        time.sleep(interval)


@pytest.fixture(scope="session")
def stack_config() -> StackConfig:
    return StackConfig.load()


@pytest.fixture(scope="session")
def settings() -> ServiceSettings:
    return ServiceSettings()


def database(settings: ServiceSettings, name: str) -> pymysql.Connection:
    """A connection as the services' user, autocommit so every read sees the latest rows."""
    return pymysql.connect(
        host=settings.db_host,
        port=settings.db_port,
        user=settings.db_user,
        password=settings.db_password,
        database=name,
        autocommit=True,
        cursorclass=pymysql.cursors.DictCursor,
    )


@pytest.fixture
def orders_db(settings: ServiceSettings, stack_config: StackConfig) -> Iterator[pymysql.Connection]:
    """The shared orders database."""
    connection = database(settings, stack_config.get("ORDERS_DB", "mydb"))
    yield connection
    connection.close()

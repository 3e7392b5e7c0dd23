"""Which of .env's secrets the launcher hands a component: the monitor gets its Basic auth password and Connect's
read-only REST login, the services neither; nobody but the launcher's own clients Connect's admin password."""

import pytest

from launcher import connect
from stack_description.deployables import (
    CATALOG_SERVICE,
    CONNECT_WATCHDOG,
    DEPLOYABLES,
    MONITOR,
    ORDER_SERVICE,
    USER_SERVICE,
)
from stack_description.settings import StackConfig, is_secret

pytestmark = pytest.mark.unit

ENV = {
    "MONITOR_USER": "operator",
    "MONITOR_PASSWORD": "m" * 40,
    "DISCOVERY_PASSWORD": "d" * 40,
    "DB_PASSWORD": "x" * 40,
    "CONNECT_USER": "connect-admin",
    "CONNECT_PASSWORD": "a" * 40,
    "CONNECT_MONITOR_USER": "connect-monitor",
    "CONNECT_MONITOR_PASSWORD": "r" * 40,
}


def test_the_monitor_is_given_its_basic_auth_credentials_so_setting_them_in_env_turns_it_on() -> None:
    env = MONITOR.env(StackConfig(dict(ENV)))

    assert (env["MONITOR_USER"], env["MONITOR_PASSWORD"]) == ("operator", "m" * 40)
    assert env["DB_USER"] == "monitor" and env["DB_PASSWORD"] != "x" * 40  # its own account, not the operator's


def test_the_services_are_not_given_the_monitors_password() -> None:
    for deployable in (USER_SERVICE, CATALOG_SERVICE, ORDER_SERVICE):
        env = deployable.env(StackConfig(dict(ENV)))
        assert "MONITOR_PASSWORD" not in env and env["DISCOVERY_PASSWORD"] == "d" * 40


def test_the_monitor_reads_connect_as_its_read_only_user() -> None:
    env = MONITOR.env(StackConfig(dict(ENV)))

    assert (env["CONNECT_USER"], env["CONNECT_PASSWORD"]) == ("connect-monitor", "r" * 40)
    assert "a" * 40 not in env.values()


def test_each_deployable_is_given_exactly_the_secrets_its_description_names() -> None:
    """What the native launcher hands a process is what compose's secrets volume holds for it (the same table)."""
    config = StackConfig(dict(ENV))
    for deployable in DEPLOYABLES:
        env = deployable.env(config)
        given = {name for name in env if is_secret(name)}
        assert given == set(deployable.secret_sources()) | (set(deployable.optional) & set(ENV)), deployable.name


def test_the_watchdog_holds_connects_admin_login_and_its_own_accounts() -> None:
    env = connect.watchdog_env(StackConfig(dict(ENV)))
    assert env["CONNECT_PASSWORD"] == "a" * 40
    assert (env["DB_USER"], env["KAFKA_USERNAME"]) == ("orders_sink", "connect-watchdog")
    assert CONNECT_WATCHDOG.secret_sources()["DB_PASSWORD"] == "ORDERS_SINK_DB_PASSWORD"

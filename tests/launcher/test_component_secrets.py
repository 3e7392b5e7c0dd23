"""Which of .env's secrets the launcher hands a component: the monitor gets its Basic auth password and Connect's
read-only REST login, the services neither; nobody but the launcher's own clients Connect's admin password."""

import pytest

from launcher import services
from launcher.environment import StackConfig

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
    env = StackConfig(dict(ENV)).component_env(services.MONITOR_SECRETS)

    assert (env["MONITOR_USER"], env["MONITOR_PASSWORD"]) == ("operator", "m" * 40)
    assert "DB_PASSWORD" not in env


def test_the_services_are_not_given_the_monitors_password() -> None:
    env = StackConfig(dict(ENV)).component_env(services.REGISTRY_SECRETS)

    assert "MONITOR_PASSWORD" not in env and env["DISCOVERY_PASSWORD"] == "d" * 40


def test_the_monitor_reads_connect_as_its_read_only_user() -> None:
    env = services.monitor_env(StackConfig(dict(ENV)), "monitor-1")

    assert (env["CONNECT_USER"], env["CONNECT_PASSWORD"]) == ("connect-monitor", "r" * 40)
    assert "a" * 40 not in env.values()

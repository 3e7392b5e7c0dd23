"""The Python side of the stack: discovery, the services (order-service as several instances) and the gateway."""

import subprocess
import time
from typing import Any

import httpx

from launcher import connect
from launcher.deployables import (
    CATALOG_SERVICE,
    DISCOVERY,
    GATEWAY,
    MONITOR,
    ORDER_SERVICE,
    ORDERS_MIGRATOR,
    USER_SERVICE,
    Deployable,
)
from launcher.environment import REPO_ROOT, STACK_DIR, USER_SERVICE_DB, VENV_PYTHON, StackConfig
from launcher.processes import Component, StartupFailed, done, needs_start, run_dir, start, step, wait_until


def discovery_port(config: StackConfig) -> int:
    return config.number("DISCOVERY_PORT", 8761)


def gateway_port(config: StackConfig) -> int:
    return config.number("GATEWAY_PORT", 8000)


def eureka_url(config: StackConfig) -> str:
    return config.get("DISCOVERY_URL", f"http://127.0.0.1:{discovery_port(config)}/eureka").rstrip("/")


# Each component's accounts and secrets are its Deployable's (launcher.deployables). Tokens need none: user-service
# keeps its signing keys in a file of its own, the others fetch its public keys.
# user-service's private signing keys (made at its first start, mode 0600); no other component is told the path.
SIGNING_KEYS_FILE = STACK_DIR / "user-service" / "signing-keys.json"
GATEWAY_ROUTES = REPO_ROOT / "gateway" / "routes.yaml"


def service_instances(config: StackConfig) -> list[tuple[Component, Deployable, str, dict[str, str]]]:
    """(component, its deployable, Eureka app name, extra env) for every service instance, in start order."""
    # CATALOG_INSTANCES of them in one consumer group; each its own INSTANCE_ID, hence its own transactional id.
    instances = [
        (Component(name), CATALOG_SERVICE, "CATALOG-SERVICE", {"INSTANCE_ID": name})
        for name in (f"catalog-service-{n}" for n in range(1, config.catalog_instances + 1))
    ]
    user_env = {"INSTANCE_ID": "user-service-1", "SIGNING_KEYS_FILE": str(SIGNING_KEYS_FILE)}
    instances.append((Component("user-service-1"), USER_SERVICE, "USER-SERVICE", user_env))
    # order-service only reads mydb.orders: the launcher migrated it with the migrator's account before
    # (migrate_orders_table).
    for number in range(1, config.number("ORDER_INSTANCES", 2) + 1):
        name = f"order-service-{number}"
        extra = {"INSTANCE_ID": name, "MIGRATE_ORDERS_TABLE": "false"}
        instances.append((Component(name), ORDER_SERVICE, "ORDER-SERVICE", extra))
    return instances


def discovery_component(config: StackConfig) -> Component:
    return Component("discovery", discovery_port(config))


def gateway_component(config: StackConfig) -> Component:
    return Component("gateway", gateway_port(config))


def monitor_port(config: StackConfig) -> int:
    return config.number("MONITOR_PORT", 8090)


def monitor_component(config: StackConfig) -> Component:
    return Component("monitor", monitor_port(config))


def all_components(config: StackConfig) -> list[Component]:
    return [
        discovery_component(config),
        *(c for c, *_ in service_instances(config)),
        gateway_component(config),
        monitor_component(config),
    ]


def migrate_orders_table(config: StackConfig) -> None:
    """order-service's Alembic history owns mydb.orders; the sink needs the table before it writes."""
    step("migrating the shared orders table (order-service alembic)")
    result = subprocess.run(
        [
            str(VENV_PYTHON),
            "-m",
            "alembic",
            "-c",
            str(REPO_ROOT / "services/order-service/alembic.ini"),
            "upgrade",
            "head",
        ],
        cwd=REPO_ROOT,
        env=ORDERS_MIGRATOR.env(config),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise StartupFailed(f"order-service migration failed:\n{result.stderr[-2000:]}")
    done("ok")


def up(config: StackConfig) -> None:
    discovery = discovery_component(config)
    if _start_python(config, discovery, DISCOVERY, {}) is not None:
        wait_until(discovery, lambda: _discovery_ready(config), 60, "ready")
    for component, deployable, app, extra in service_instances(config):
        _start_instance(config, component, deployable, app, extra)
    gateway = gateway_component(config)
    if _start_python(config, gateway, GATEWAY, {"GATEWAY_ROUTES": str(GATEWAY_ROUTES)}) is not None:
        wait_until(gateway, lambda: _gateway_ready(config), 60, "ready")
    start_monitor(config)
    create_first_admin(config)


def create_first_admin(config: StackConfig) -> None:
    """The account ADMIN_EMAIL names, made once with a generated password that only this output shows; later runs
    find it an admin and say so. An account someone else signed up with that e-mail is refused, never promoted."""
    if not config.get("ADMIN_EMAIL", ""):
        return
    step(f"first admin {config.get('ADMIN_EMAIL')} (user_service create-admin)")
    result = subprocess.run(
        [str(VENV_PYTHON), "-m", "user_service", "create-admin"],
        cwd=REPO_ROOT,
        env=config.component_env((), **USER_SERVICE_DB.env(config)),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        done(f"NOT MADE: {result.stderr.strip()[-2000:]}")
        return
    done("\n" + result.stdout.strip())


def monitor_env(config: StackConfig, instance_id: str) -> dict[str, str]:
    """Its deployable's accounts and secrets, and Connect's read-only REST user as its CONNECT_USER (with
    CONNECT_MONITOR_PASSWORD as CONNECT_PASSWORD): the console only reads connector states."""
    return MONITOR.env(config, INSTANCE_ID=instance_id, CONNECT_USER=connect.monitor_rest_user(config))


def start_monitor(config: StackConfig) -> None:
    """The monitor, on its fixed MONITOR_PORT, with its own Kafka login, database account and secrets."""
    monitor = monitor_component(config)
    if not needs_start(monitor, monitor.port):
        return
    step("starting monitor (consumer lag)")
    started_ms = int(time.time() * 1000)
    instance_id = "monitor-1"
    start(monitor, [str(VENV_PYTHON), "-m", MONITOR.module], monitor_env(config, instance_id), cwd=run_dir())
    wait_until(monitor, lambda: _registered(config, "MONITOR", instance_id, started_ms), 60, "registered as MONITOR")


def restart_service(config: StackConfig, name: str, **env: str) -> None:
    """Start one service instance again (after a test or the demo stopped it), with optional extra
    environment (the demo's ORDER_STORE=local), and wait until the new process has registered and, when the
    gateway runs, until the gateway's copy of the registry routes to it (it refreshes every few seconds)."""
    found = [entry for entry in service_instances(config) if entry[0].name == name]
    if not found:
        raise KeyError(name)
    component, deployable, app, extra = found[0]
    _start_instance(config, component, deployable, app, {**extra, **env})
    if gateway_component(config).running():
        instance_id = extra["INSTANCE_ID"]
        wait_until(
            component,
            lambda: _gateway_routes_to(config, app, instance_id),
            30,
            "reachable through the gateway",
            quiet=True,
        )


def _gateway_routes_to(config: StackConfig, app: str, instance_id: str) -> bool:
    """One round-robin answer from the gateway came from `instance_id` (callers poll until it does)."""
    url = f"http://127.0.0.1:{gateway_port(config)}/{app.lower()}/health_check"
    answered_by: str | None = httpx.get(url, timeout=2).headers.get("X-Instance-Id")
    return answered_by == instance_id


def _start_instance(
    config: StackConfig, component: Component, deployable: Deployable, app: str, extra: dict[str, str]
) -> None:
    started_ms = _start_python(config, component, deployable, extra)
    if started_ms is not None:
        instance_id = extra["INSTANCE_ID"]
        wait_until(component, lambda: _registered(config, app, instance_id, started_ms), 90, f"registered as {app}")


def _start_python(
    config: StackConfig, component: Component, deployable: Deployable, extra: dict[str, str]
) -> int | None:
    """Start the deployable unless it runs already; the start time in epoch ms, or None when nothing was started."""
    if not needs_start(component, component.port):
        return None
    step(f"starting {component.name}")
    started_ms = int(time.time() * 1000)
    start(component, [str(VENV_PYTHON), "-m", deployable.module], deployable.env(config, **extra), cwd=run_dir())
    return started_ms


def _discovery_ready(config: StackConfig) -> bool:
    response = httpx.get(f"{eureka_url(config)}/apps", headers={"Accept": "application/json"}, timeout=2)
    return response.status_code == 200


def _gateway_ready(config: StackConfig) -> bool:
    response = httpx.get(f"http://127.0.0.1:{gateway_port(config)}/gateway/health_check", timeout=2)
    return response.status_code == 200


def registered_instances(config: StackConfig, app: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{eureka_url(config)}/apps/{app}", headers={"Accept": "application/json"}, timeout=2)
    if response.status_code != 200:
        return []
    instances = response.json().get("application", {}).get("instance", [])
    return instances if isinstance(instances, list) else [instances]


def _registered(config: StackConfig, app: str, instance_id: str, since_ms: int) -> bool:
    """UP, and registered by the new process (a killed predecessor's lease may still be listed)."""
    return any(
        i.get("instanceId") == instance_id
        and i.get("status") == "UP"
        and int(i.get("lastUpdatedTimestamp", 0)) >= since_ms
        for i in registered_instances(config, app)
    )

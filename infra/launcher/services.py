"""The Python side of the stack, started from stack_description.deployables: discovery, the services (several
instances of some), the gateway and the monitor, in that order, each waited for as its description says."""

import contextlib
import subprocess
import time
from functools import partial
from typing import Any, NamedTuple

import httpx

from launcher.processes import (
    VENV_PYTHON,
    Component,
    StartupFailed,
    done,
    needs_start,
    run_dir,
    start,
    step,
    wait_until,
)
from stack_description.access import USER_SERVICE_DB
from stack_description.deployables import (
    DEPLOYABLES,
    DISCOVERY,
    GATEWAY,
    MONITOR,
    ORDERS_MIGRATOR,
    USER_SERVICE,
    Deployable,
    discovery_urls,
)
from stack_description.settings import REPO_ROOT, StackConfig


class Instance(NamedTuple):
    """One process of a deployable, as its pid and log files name it, and its environment beyond the deployable's:
    its name as INSTANCE_ID when there may be several, a copy's own ports."""

    component: Component
    deployable: Deployable
    extra: dict[str, str]


def instances(config: StackConfig, *deployables: Deployable) -> list[Instance]:
    """Every process of these deployables (by default every app), in start order."""
    chosen = deployables or tuple(d for d in DEPLOYABLES if d.kind == "app")
    found = []
    for d in chosen:
        for copy, name in enumerate(d.instance_names(config), start=1):
            if d.copies is not None:
                ports = d.copy_ports(config, copy)
                found.append(Instance(Component(name, int(ports[str(d.port)])), d, ports))
            elif d.instances is not None:
                found.append(Instance(Component(name), d, {"INSTANCE_ID": name}))
            else:
                found.append(Instance(Component(name, d.port_number(config) if d.port else None), d, {}))
    return found


def numbered_apps() -> list[str]:
    """The apps that run as numbered instances on free ports (their ports are found in discovery)."""
    return [deployable.app for deployable in DEPLOYABLES if deployable.instances is not None]


def all_components(config: StackConfig) -> list[Component]:
    return [instance.component for instance in instances(config)]


def discovery_port(config: StackConfig) -> int:
    return DISCOVERY.port_number(config)


def gateway_port(config: StackConfig) -> int:
    return GATEWAY.port_number(config)


def monitor_port(config: StackConfig) -> int:
    return MONITOR.port_number(config)


def monitor_component(config: StackConfig) -> Component:
    return instances(config, MONITOR)[0].component


def eureka_url(config: StackConfig) -> str:
    return config.get("DISCOVERY_URL", f"http://127.0.0.1:{discovery_port(config)}/eureka").rstrip("/")


def migrate_orders_table(config: StackConfig) -> None:
    """order-service's Alembic history owns mydb.orders; the sink needs the table before it writes."""
    step("migrating the shared orders table (order-service alembic)")
    alembic_ini = str(REPO_ROOT / "services/order-service/alembic.ini")
    result = subprocess.run(
        [str(VENV_PYTHON), "-m", ORDERS_MIGRATOR.module, "-c", alembic_ini, "upgrade", "head"],
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
    for instance in instances(config):
        start_instance(config, instance)
    create_first_admin(config)


def create_first_admin(config: StackConfig) -> None:
    """The account ADMIN_EMAIL names, made once with a generated password that only this output shows; later runs
    find it an admin and say so. An account someone else signed up with that e-mail is refused, never promoted."""
    if not config.get("ADMIN_EMAIL"):
        return
    step(f"first admin {config.get('ADMIN_EMAIL')} (user_service create-admin)")
    result = subprocess.run(
        [str(VENV_PYTHON), "-m", USER_SERVICE.module, "create-admin"],
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


def restart_service(config: StackConfig, name: str, **env: str) -> None:
    """Start one service instance again (after a test or the demo stopped it), with optional extra
    environment (the demo's ORDER_STORE=local), and wait until the new process has registered and, when the
    gateway runs, until the gateway's copy of the registry routes to it (it refreshes every few seconds)."""
    found = [instance for instance in instances(config) if instance.component.name == name]
    if not found:
        raise KeyError(name)
    component, deployable, _ = instance = found[0]
    start_instance(config, instance, env)
    # A service instance (registered under its own INSTANCE_ID) is waited for until the gateway routes to it.
    if deployable.instances is not None and instances(config, GATEWAY)[0].component.running():
        wait_until(
            component,
            lambda: _gateway_routes_to(config, deployable.app, component.name),
            30,
            "reachable through the gateway",
            quiet=True,
        )


def _gateway_routes_to(config: StackConfig, app: str, instance_id: str) -> bool:
    """One round-robin answer from the gateway came from `instance_id` (callers poll until it does)."""
    url = f"http://127.0.0.1:{gateway_port(config)}/{app.lower()}/health_check"
    answered_by: str | None = httpx.get(url, timeout=2).headers.get("X-Instance-Id")
    return answered_by == instance_id


def start_instance(config: StackConfig, instance: Instance, env: dict[str, str] | None = None) -> None:
    """Start it (with `env` on top of its own) unless it runs already, then wait until it is ready as its
    description says: its health path answers, or (an app) it has registered."""
    component, deployable, extra = instance
    if not needs_start(component, component.port):
        return
    step(f"starting {component.name}")
    started_ms = int(time.time() * 1000)
    argv = [str(VENV_PYTHON), "-m", deployable.module]
    start(component, argv, deployable.env(config, **{**extra, **(env or {})}), cwd=run_dir())
    if deployable.health is not None:
        url = f"http://127.0.0.1:{component.port}{deployable.health}"
        wait_until(component, lambda: _answers(url), deployable.timeout, "ready")
    elif deployable.kind == "app":
        instance_id = {**deployable.settings, **extra}["INSTANCE_ID"]
        ready = partial(_registered, config, deployable.app, instance_id, started_ms)
        wait_until(component, ready, deployable.timeout, f"registered as {deployable.app}")
    else:
        done()  # connect-watchdog: neither serves nor registers; started is all


def _answers(url: str) -> bool:
    return httpx.get(url, headers={"Accept": "application/json"}, timeout=2).status_code == 200


def registered_instances(config: StackConfig, app: str) -> list[dict[str, Any]]:
    """`app`'s instances as the first discovery server that answers lists them (the cluster runs two peers)."""
    peers = discovery_urls(config)
    *others, last = peers if len(peers) > 1 else [eureka_url(config)]
    for server in others:
        with contextlib.suppress(httpx.TransportError):
            return _instances_at(server, app)
    return _instances_at(last, app)


def _instances_at(server: str, app: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{server}/apps/{app}", headers={"Accept": "application/json"}, timeout=2)
    if response.status_code != 200:
        return []
    found = response.json().get("application", {}).get("instance", [])
    return found if isinstance(found, list) else [found]


def _registered(config: StackConfig, app: str, instance_id: str, since_ms: int) -> bool:
    """UP, and registered by the new process (a killed predecessor's lease may still be listed)."""
    return any(
        i.get("instanceId") == instance_id
        and i.get("status") == "UP"
        and int(i.get("lastUpdatedTimestamp", 0)) >= since_ms
        for i in registered_instances(config, app)
    )

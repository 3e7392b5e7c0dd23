"""python -m launcher up|down|status|clean: the native stack, behind make up / down / status / clean."""

import argparse
import logging
import shutil
import sys
import time
from typing import Any

from launcher import connect, kafka, mariadb, prometheus, services, zipkin
from launcher.environment import REPO_ROOT, STACK_DIR, StackConfig, env_file_path, weak_secrets, weak_secrets_message
from launcher.processes import Component, StartupFailed, fail, stop


def infra_components(config: StackConfig) -> list[Component]:
    return [mariadb.component(config), kafka.component(config), connect.component(config), connect.watchdog_component()]


def every_component(config: StackConfig) -> list[Component]:
    """In start order: the infrastructure, Zipkin, discovery, the services, the gateway, the monitor, Prometheus."""
    return [
        *infra_components(config),
        zipkin.component(config),
        *services.all_components(config),
        prometheus.component(config),
    ]


def up(config: StackConfig, infra_only: bool) -> None:
    started = time.monotonic()
    mariadb.up(config)
    kafka.up(config)
    services.migrate_orders_table(config)
    mariadb.grant_component_accounts(config)
    connect.up(config)
    if not infra_only:
        zipkin.up(config)
        services.up(config)
        prometheus.up(config)
    print(f"\nStack is up ({time.monotonic() - started:.0f}s).")
    print_urls(config, infra_only)


def print_urls(config: StackConfig, infra_only: bool) -> None:
    rows = [
        ("MariaDB", f"127.0.0.1:{config.db_port} (databases {', '.join(config.databases)})"),
        ("Kafka", config.get("KAFKA_BOOTSTRAP_SERVERS")),
        *((f"Connector {name}", f"{config.connect_url}/connectors/{name}/status") for name in connect.CONNECTORS),
    ]
    if not infra_only:
        gateway = f"http://127.0.0.1:{services.gateway_port(config)}"
        rows += [
            ("Gateway", gateway),
            ("Discovery dashboard", f"http://127.0.0.1:{services.discovery_port(config)}/"),
            (
                "Consumer lag (Burrow API)",
                f"http://127.0.0.1:{services.monitor_port(config)}/v3/kafka/"
                f"{config.get('MONITOR_CLUSTER', 'local')}/consumer",
            ),
            ("Prometheus (targets)", f"{prometheus.url(config)}/targets"),
            ("Zipkin (traces)", zipkin.url(config)),
        ]
        for app in ("USER-SERVICE", "CATALOG-SERVICE", "ORDER-SERVICE"):
            for instance in services.registered_instances(config, app):
                port = _port_of(instance)
                rows.append((f"{instance.get('instanceId')} docs", f"http://127.0.0.1:{port}/docs"))
    width = max(len(name) for name, _ in rows)
    for name, url in rows:
        print(f"  {name:<{width}}  {url}")
    print(f"  {'Logs':<{width}}  {STACK_DIR / 'logs'}/")


def _port_of(instance: dict[str, Any]) -> int | str:
    port = instance.get("port", "?")
    found: int | str = port.get("$", "?") if isinstance(port, dict) else port
    return found


def down(config: StackConfig) -> None:
    # Reverse dependency order: the gateway first, the database last.
    for component in reversed(every_component(config)):
        if stop(component):
            print(f"==> stopped {component.name}")
    print("Stack is down (data kept in .stack/; `make clean` removes it).")


def status(config: StackConfig) -> int:
    dynamic_ports: dict[str, int | str] = {}
    if services.discovery_component(config).running():
        for app in ("USER-SERVICE", "CATALOG-SERVICE", "ORDER-SERVICE", "GATEWAY"):
            try:
                for instance in services.registered_instances(config, app):
                    dynamic_ports[instance.get("instanceId", "")] = _port_of(instance)
            except Exception:
                pass
    all_up = True
    for component in every_component(config):
        pid = component.pid()
        all_up &= pid is not None
        port = component.port if component.port is not None else dynamic_ports.get(component.name, "-")
        state = "up" if pid else "down"
        log = component.log_file.relative_to(REPO_ROOT)
        print(f"{component.name:<18} {state:<5} port={port!s:<6} pid={pid or '-'!s:<8} log={log}")
    if kafka.component(config).pid() is not None:
        summary = kafka.node_summary(config)
        print(f"{'':<18} kafka node 1: {summary or 'no metrics yet (JMX exporter on KAFKA_METRICS_PORT)'}")
    return 0 if all_up else 3


def main() -> int:
    parser = argparse.ArgumentParser(prog="launcher", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    up_parser = commands.add_parser("up", help="start whatever is not running, wait for each piece")
    up_parser.add_argument("--infra-only", action="store_true", help="MariaDB, Kafka and Connect only")
    commands.add_parser("down", help="stop everything this launcher started")
    commands.add_parser("status", help="one line per component")
    commands.add_parser("clean", help="down, then delete .stack/ (all data and logs)")
    args = parser.parse_args()
    # aiokafka logs every refused connection while the broker is still starting; the launcher reports progress
    # itself. Set here, not at import, so tests that import the launcher keep aiokafka's logs.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)

    config = StackConfig.load()
    try:
        if args.command == "up":
            problems = weak_secrets(config.values)
            if problems:
                fail(weak_secrets_message(env_file_path(), problems))
                return 2
            up(config, args.infra_only)
        elif args.command == "down":
            down(config)
        elif args.command == "status":
            return status(config)
        elif args.command == "clean":
            down(config)
            shutil.rmtree(STACK_DIR, ignore_errors=True)
            print("Removed .stack/")
    except StartupFailed as exc:
        fail(str(exc))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

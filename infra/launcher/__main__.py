"""python -m launcher up|down|status|clean|start|kill: the native stack, behind make up / up-cluster / down / status /
clean; start and kill one component for failure tests."""

import argparse
import logging
import os
import shutil
import sys
import time
from typing import Any

import httpx
from pydantic import ValidationError

from launcher import connect, kafka, mariadb, prometheus, services, zipkin
from launcher.processes import Component, StartupFailed, fail, kill, stop
from stack_description import connectors
from stack_description.deployables import DISCOVERY
from stack_description.settings import (
    LAYOUT_FILE,
    LOG_DIR,
    REPO_ROOT,
    STACK_DIR,
    StackConfig,
    env_file_path,
    read_env_file,
    weak_secrets,
    weak_secrets_message,
)


def any_layout_components(config: StackConfig) -> list[Component]:
    """Every component of any layout (one or three Kafka nodes, up to three workers and catalog instances): what
    `down` stops and `up` checks, whichever layout started them."""
    widest = config.with_values(
        KAFKA_BROKERS="3",
        CONNECT_WORKERS="3",
        CATALOG_INSTANCES="3",
        DISCOVERY_INSTANCES="2",
        GATEWAY_INSTANCES="2",
        MARIADB_NODES="3",
    )
    single = config.with_values(KAFKA_BROKERS="1", CONNECT_WORKERS="1", CATALOG_INSTANCES="1", MARIADB_NODES="1")
    found: dict[str, Component] = {}
    for component in [*every_component(single), *every_component(widest)]:
        found.setdefault(component.name, component)
    # The single node "kafka", worker "connect" and server "mariadb" stand where the cluster's first ones do.
    order = [c.name for c in every_component(widest)]
    return sorted(found.values(), key=lambda c: order.index(c.name if c.name in order else f"{c.name}-1"))


def check_layout(config: StackConfig) -> None:
    """Refuse to start one layout while another runs: their ports and their Kafka clusters differ."""
    ours = {component.name for component in every_component(config)}
    others = [c.name for c in any_layout_components(config) if c.name not in ours and c.running()]
    if others:
        running = read_env_file(LAYOUT_FILE) if LAYOUT_FILE.exists() else {}
        described = ", ".join(f"{key}={value}" for key, value in running.items()) or "another layout"
        raise StartupFailed(
            f"the stack runs with {described} ({', '.join(others)} up); `make down` first, then `make up` or "
            "`make up-cluster`. Each layout keeps its own data (.stack/kafka vs .stack/kafka-cluster/node-N)."
        )


def every_component(config: StackConfig) -> list[Component]:
    """In start order: the infrastructure, Zipkin, discovery, the services, the gateway, the monitor, Prometheus."""
    return [
        *mariadb.components(config),
        *kafka.components(config),
        *connect.components(config),
        connect.watchdog_component(),
        zipkin.SERVER.component(config),
        *services.all_components(config),
        prometheus.SERVER.component(config),
    ]


def up(config: StackConfig, infra_only: bool) -> None:
    started = time.monotonic()
    check_layout(config)
    # Every file the stack writes (data, logs, keys, pids) is the owner's alone: new ones 0600/0700, and .stack
    # itself 0700, so what an older stack left with wider modes is out of others' reach too.
    os.umask(0o077)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    STACK_DIR.chmod(0o700)
    LAYOUT_FILE.write_text("".join(f"{key}={value}\n" for key, value in config.layout.items()))
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
        ("Kafka", config.kafka_bootstrap_servers),
        ("Kafka Connect", ", ".join(config.connect_urls)),
        *((f"Connector {name}", f"{config.connect_url}/connectors/{name}/status") for name in connectors.CONNECTORS),
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
            ("Prometheus (targets)", f"{prometheus.SERVER.url(config)}/targets"),
            ("Zipkin (traces)", zipkin.SERVER.url(config)),
        ]
        for app in services.numbered_apps():
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
    # Reverse dependency order: the gateway first, the database last; whichever layout runs.
    for component in reversed(any_layout_components(config)):
        if stop(component):
            print(f"==> stopped {component.name}")
    LAYOUT_FILE.unlink(missing_ok=True)
    print("Stack is down (data kept in .stack/; `make clean` removes it).")


def status(config: StackConfig) -> int:
    dynamic_ports: dict[str, int | str] = {}
    if Component(DISCOVERY.name).running():
        for app in services.numbered_apps():
            try:
                for instance in services.registered_instances(config, app):
                    dynamic_ports[instance.get("instanceId", "")] = _port_of(instance)
            except (httpx.HTTPError, ValueError) as exc:
                # Only the ports are missing from the table below: say why.
                print(f"discovery did not list {app}: {exc!r}", file=sys.stderr)
    all_up = True
    for component in every_component(config):
        pid = component.pid()
        all_up &= pid is not None
        port = component.port if component.port is not None else dynamic_ports.get(component.name, "-")
        state = "up" if pid else "down"
        log = component.log_file.relative_to(REPO_ROOT)
        print(f"{component.name:<18} {state:<5} port={port!s:<6} pid={pid or '-'!s:<8} log={log}")
    for database in config.mariadb_nodes if mariadb.galera(config) else []:
        if Component.of(database).pid() is not None:
            print(f"{'':<18} {database.name}: {mariadb.node_summary(database)}")
    for node in config.kafka_nodes:
        if Component.of(node).pid() is not None:
            summary = kafka.node_summary(node)
            metrics = f"no metrics yet (JMX exporter on 127.0.0.1:{node.metrics_port})"
            print(f"{'':<18} kafka node {node.node_id}: {summary or metrics}")
    return 0 if all_up else 3


def start_some(config: StackConfig, names: list[str]) -> None:
    """Start these components of the running stack that are down (Galera nodes, Kafka nodes, Connect workers,
    service instances) and wait until they serve: what a failure test does after killing them. Kafka nodes start
    together: two of three controllers cannot elect a leader without each other."""
    databases = [node for node in config.mariadb_nodes if node.name in names] if mariadb.galera(config) else []
    mariadb.start_nodes(config, [node for node in databases if not Component.of(node).running()])
    nodes = [node for node in config.kafka_nodes if node.name in names]
    kafka.start_nodes(config, [node for node in nodes if not Component.of(node).running()])
    workers = [worker for worker in config.connect_workers if worker.name in names]
    connect.start_workers(config, [worker for worker in workers if not Component.of(worker).running()])
    known = {node.name for node in nodes} | {node.name for node in databases} | {worker.name for worker in workers}
    for name in names:
        if name == prometheus.SERVER.name:
            prometheus.up(config)
        elif name not in known:
            services.restart_service(config, name)


def kill_one(config: StackConfig, name: str) -> None:
    """kill -9 one component, as a crash would."""
    found = [component for component in every_component(config) if component.name == name]
    if not found:
        raise StartupFailed(f"no component {name!r} in this stack (make status lists them)")
    kill(found[0])


def main() -> int:
    parser = argparse.ArgumentParser(prog="launcher", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    up_parser = commands.add_parser("up", help="start whatever is not running, wait for each piece")
    up_parser.add_argument("--infra-only", action="store_true", help="MariaDB, Kafka and Connect only")
    commands.add_parser("down", help="stop everything this launcher started")
    commands.add_parser("status", help="one line per component")
    commands.add_parser("clean", help="down, then delete .stack/ (all data and logs)")
    start_parser = commands.add_parser("start", help="start components that are down (e.g. kafka-2) and wait")
    start_parser.add_argument("names", nargs="+")
    kill_parser = commands.add_parser("kill", help="kill -9 one component (failure tests)")
    kill_parser.add_argument("name")
    args = parser.parse_args()
    # aiokafka logs every refused connection while the broker is still starting; the launcher reports progress
    # itself. Set here, not at import, so tests that import the launcher keep aiokafka's logs.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)

    try:
        config = StackConfig.load()
    except ValidationError as exc:
        wrong = "; ".join(f"{'.'.join(map(str, error['loc']))}: {error['msg']}" for error in exc.errors())
        fail(f"settings: {env_file_path()} or the environment gives a value of the wrong kind ({wrong})")
        return 2
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
        elif args.command == "start":
            start_some(config, args.names)
        elif args.command == "kill":
            kill_one(config, args.name)
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

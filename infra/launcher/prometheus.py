"""Prometheus (Debian's package) on 127.0.0.1:PROMETHEUS_PORT, finding the services through discovery; its data
under .stack/prometheus/. Rules: infra/prometheus/rules.yml (make check runs promtool on them)."""

import json
import os
import shutil
import signal

from launcher.processes import Component, LocalServer, done, needs_start, render_template, step
from launcher.services import discovery_port, instances, monitor_port
from stack_description.deployables import DISCOVERY
from stack_description.settings import INFRA_DIR, STACK_DIR, StackConfig

PROMETHEUS_DIR = STACK_DIR / "prometheus"
CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULES = INFRA_DIR / "prometheus" / "rules.yml"
SERVER = LocalServer("prometheus", "PROMETHEUS_PORT", "/-/ready")


def up(config: StackConfig) -> None:
    prometheus = SERVER.component(config)
    binary = shutil.which("prometheus")
    if binary is None:
        step("prometheus not installed (apt-get install prometheus); metrics are served, not collected")
        done("skipped")
        return
    # Reads of the registry are open; Prometheus needs no credentials.
    eureka = f"http://127.0.0.1:{discovery_port(config)}/eureka"
    render_template(
        INFRA_DIR / "prometheus" / "prometheus.yml",
        CONFIG,
        rules_file=RULES,
        eureka_url=eureka,
        discovery_static_configs=json.dumps([discovery_entry(i.component) for i in instances(config, DISCOVERY)]),
        prometheus_target=f"127.0.0.1:{SERVER.port(config)}",
        kafka_static_configs=jvm_static_configs("kafka", [f"127.0.0.1:{n.metrics_port}" for n in config.kafka_nodes]),
        connect_static_configs=jvm_static_configs(
            "connect", [f"127.0.0.1:{worker.metrics_port}" for worker in config.connect_workers]
        ),
    )
    if not needs_start(prometheus, prometheus.port):
        # Running already: it reads the configuration again (what an older checkout started it with may differ).
        # A signal, not POST /-/reload: the lifecycle API is off, so no web page can stop or reload it.
        pid = prometheus.pid()
        if pid is not None:
            os.kill(pid, signal.SIGHUP)
        return
    argv = [
        binary,
        f"--config.file={CONFIG}",
        f"--storage.tsdb.path={PROMETHEUS_DIR / 'data'}",
        "--storage.tsdb.retention.time=2d",
        f"--web.listen-address=127.0.0.1:{prometheus.port}",
        # No --web.enable-lifecycle (PUT /-/quit from any page in a browser stopped it), and answers readable
        # cross-origin by the console's page only (the default is every origin).
        f"--web.cors.origin={console_origin_pattern(monitor_port(config))}",
    ]
    SERVER.start(config, argv, 60)


def discovery_entry(peer: Component) -> dict[str, object]:
    """The scrape entry of one discovery server, labelled by its component name (discovery, discovery-2)."""
    return {"targets": [f"127.0.0.1:{peer.port}"], "labels": {"app": "DISCOVERY", "instance": peer.name}}


def console_origin_pattern(port: int) -> str:
    """The console's origins as Prometheus' --web.cors.origin regex (anchored by Prometheus)."""
    return rf"http://(127\.0\.0\.1|localhost):{port}"


def jvm_static_configs(kind: str, targets: list[str]) -> str:
    """The scrape entries of the JVMs behind the JMX exporter, one per node, labelled as the nodes are numbered
    (app KAFKA, instance kafka-1, kafka-2, ...), in YAML's flow form for infra/prometheus/prometheus.yml. The
    compose stack writes the same entries in infra/containers/bin/start-prometheus."""
    entries = [
        {"targets": [target], "labels": {"app": kind.upper(), "instance": f"{kind}-{number}"}}
        for number, target in enumerate(targets, start=1)
    ]
    return json.dumps(entries)

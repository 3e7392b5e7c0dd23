"""docker-compose.yml, checked without a Docker engine: structure, images, ports, dependencies, environment.

Values are interpolated from .env.example with every change-me filled in, as `docker compose` would from a `.env`
copied from it and completed as its header says (the services refuse placeholder secrets).
"""

import ast
import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from infra.containers.compose_secrets import (
    COMPONENT_SECRETS,
    OPERATOR,
    SECRETS_GID,
    compose_accounts,
    rendered_accounts,
    secret_keys,
)
from infra.containers.register_connectors import ComposeStack
from order_contract.order import ORDER_FIELDS
from order_contract.table import ORDERS_TABLE
from order_contract.topics import ORDERS_DEAD_LETTER_TOPIC, ORDERS_TOPIC
from stack_description import connectors
from stack_description.access import ACL_FILE, acl_file_text
from stack_description.deployables import DEPLOYABLES
from stack_description.settings import PLACEHOLDER, is_secret

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"

CONNECTOR_CONFIGS = sorted((REPO / "infra/connect").glob("*.json"))
PYTHON_DOCKERFILE = REPO / "infra/containers/python.Dockerfile"
PODMAN_COMPOSE = REPO / ".stack/tools/podman-compose/bin/podman-compose"
# CONTRACT.md, "Ports (native defaults)": the same ports on the host, loopback only; the cluster's further Kafka nodes,
# Connect workers and Galera nodes on the ports the launcher gives them in cluster mode.
CONTRACT_PORTS = {
    "gateway": 8000,
    "gateway-2": 8002,
    "discovery": 8761,
    "kafka-1": 9092,
    "kafka-2": 9094,
    "kafka-3": 9096,
    "connect-1": 8083,
    "connect-2": 8084,
    "mariadb": 3306,
    "mariadb-2": 3307,
    "mariadb-3": 3308,
    "monitor": 8090,
    "prometheus": 9090,
    "zipkin": 9411,
}
# The Galera cluster's nodes, the first (named as the one server was, with its volume) first.
GALERA_NODES = ("mariadb", "mariadb-2", "mariadb-3")
LOOPBACK = re.compile(r"\b(127\.0\.0\.1|localhost)\b")
# Settings that are addresses for a browser on the host (the monitor console's links), never dialled from inside.
BROWSER_FACING = frozenset({"console_prometheus_url", "console_zipkin_url"})


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return {
        key: f"{key.lower()}-filled-in-by-the-user-0123456789" if value == PLACEHOLDER else value
        for key, value in values.items()
    }


_VARIABLE = re.compile(r"\$\$|\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$(?P<bare>\w+)")


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}`, `${VAR:?error}` and `$$` (a literal dollar)."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("name") or match.group("bare")
        op, arg = match.group("op"), match.group("arg") or ""
        present = variables.get(name)
        if op in (":-", ":?") and not present:
            present = None
        if present is not None:
            return present
        if op and op.endswith("?"):
            raise AssertionError(f"${{{name}}} is required: {arg}")
        return arg if op else ""

    return _VARIABLE.sub(substitute, value)


def interpolate_all(node: Any, variables: dict[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, variables)
    if isinstance(node, list):
        return [interpolate_all(item, variables) for item in node]
    if isinstance(node, dict):
        return {key: interpolate_all(value, variables) for key, value in node.items()}
    return node


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    resolved: dict[str, Any] = interpolate_all(document, env_example())
    return resolved


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def dockerfile_of(service: dict[str, Any]) -> Path | None:
    build = service.get("build")
    if build is None:
        return None
    if isinstance(build, str):
        return REPO / build / "Dockerfile"
    context: str = build.get("context", ".")
    dockerfile: str = build.get("dockerfile", "Dockerfile")
    return REPO / context / dockerfile


def dockerfile_instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined; heredoc bodies skipped."""
    instructions: list[tuple[str, str]] = []
    lines = iter(dockerfile.read_text().splitlines())
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        while line.endswith("\\"):
            line = line[:-1] + " " + next(lines).strip()
        keyword, _, arguments = line.strip().partition(" ")
        heredoc = re.search(r"<<-?'?(\w+)'?", arguments)
        if heredoc:
            terminator = heredoc.group(1)
            for body_line in lines:
                if body_line.strip() == terminator:
                    break
        instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def stage_instructions(dockerfile: Path, target: str | None = None) -> list[tuple[str, str]]:
    """The instructions that make the image of `target` (default: the last stage): its stage and those it is
    built FROM, in order. Other stages are not built for it."""
    stages: list[tuple[str, str, list[tuple[str, str]]]] = []  # (name, parent, instructions)
    for keyword, arguments in dockerfile_instructions(dockerfile):
        if keyword == "FROM":
            image, *alias = arguments.split()
            stages.append((alias[1] if len(alias) == 2 else "", image, []))
        elif stages:
            stages[-1][2].append((keyword, arguments))
    by_name = {name: (parent, instructions) for name, parent, instructions in stages if name}
    _, parent, instructions = next(s for s in stages if s[0] == target) if target else stages[-1]
    chain = [instructions]
    while parent in by_name:
        parent, parent_instructions = by_name[parent]
        chain.insert(0, parent_instructions)
    return [instruction for stage in chain for instruction in stage]


def image_environment(dockerfile: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, arguments in stage_instructions(dockerfile):
        if keyword == "ENV":
            for pair in shlex.split(arguments):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def service_environment(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {key: str(value) for key, value in environment.items()}


SECRETS_MOUNT = "/run/stack-secrets"


def secret_volume(service: dict[str, Any]) -> str | None:
    """The component whose secrets the service mounts at SECRETS_MOUNT (its volume is secrets-<component>)."""
    for mount in service.get("volumes", []):
        source, _, rest = str(mount).partition(":")
        if rest.split(":")[0] == SECRETS_MOUNT:
            assert source.startswith("secrets-"), mount
            return source.removeprefix("secrets-")
    return None


def secret_environment(service: dict[str, Any]) -> dict[str, str]:
    """What with-secrets exports in the service's container: its secret volume's files, by name."""
    component = secret_volume(service)
    files = COMPONENT_SECRETS[component] if component is not None else {}
    return {name: f"{name.lower()}-from-its-file-0123456789abcdef" for name in files}


@dataclass(frozen=True)
class PythonService:
    name: str
    project: Path
    package: str
    dockerfile: Path


def build_args(service: dict[str, Any]) -> dict[str, str]:
    args = service.get("build", {}).get("args", {})
    if isinstance(args, list):
        args = dict(item.split("=", 1) for item in args)
    return {key: str(value) for key, value in args.items()}


def python_services(services: dict[str, dict[str, Any]]) -> list[PythonService]:
    """The services built from the shared Python Dockerfile that run a service (not a one-shot)."""
    found = []
    for name, service in services.items():
        if dockerfile_of(service) != PYTHON_DOCKERFILE or service.get("restart", "no") == "no":
            continue
        args = build_args(service)
        found.append(PythonService(name, REPO / args["PROJECT"], args["MODULE"], PYTHON_DOCKERFILE))
    return found


def settings_classes(project: Path, package: str) -> list[type[BaseSettings]]:
    """The most derived BaseSettings subclasses the package defines (migrations are never imported)."""
    if str(project) not in sys.path:
        sys.path.append(str(project))
    classes: list[type[BaseSettings]] = []
    for source in sorted((project / package).rglob("*.py")):
        if "migrations" in source.parts:
            continue
        tree = ast.parse(source.read_text())
        if not any(
            isinstance(node, ast.ClassDef) and any("Settings" in ast.unparse(base) for base in node.bases)
            for node in tree.body
        ):
            continue
        module_name = ".".join(source.relative_to(project).with_suffix("").parts)
        module = importlib.import_module(module_name)
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, BaseSettings) and value.__module__ == module_name:
                classes.append(value)
    return [cls for cls in classes if not any(other is not cls and issubclass(other, cls) for other in classes)]


def service_ids(services: dict[str, dict[str, Any]]) -> list[str]:
    return [service.name for service in python_services(services)]


# ---------------------------------------------------------------------------------------------------------


@pytest.mark.unit
def test_every_service_has_an_image_or_a_build_whose_context_and_dockerfile_exist(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        dockerfile = dockerfile_of(service)
        if dockerfile is not None:
            assert dockerfile.is_file(), f"{name}: {dockerfile} is missing"


@pytest.mark.unit
def test_every_file_a_dockerfile_copies_from_the_context_exists(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        dockerfile = dockerfile_of(service)
        if dockerfile is None:
            continue
        build = service["build"]
        context = REPO / (build if isinstance(build, str) else build.get("context", "."))
        target = build.get("target") if isinstance(build, dict) else None
        for keyword, arguments in stage_instructions(dockerfile, target):
            parts = [part for part in shlex.split(arguments) if not part.startswith("--")]
            # Skip copies from another build stage and heredocs: neither comes from the context.
            if keyword != "COPY" or "--from" in arguments or any(part.startswith("<<") for part in parts):
                continue
            for source in parts[:-1]:
                source = interpolate(source, build_args(service))
                assert any(context.glob(source)), f"{name}: {dockerfile.name} copies missing {source}"


@pytest.mark.unit
def test_every_python_image_runs_a_package_of_its_project(services: dict[str, dict[str, Any]]) -> None:
    found = {service.name: service for service in python_services(services)}
    assert {"gateway", "discovery", "user-service", "catalog-service", "order-service-1", "monitor"} <= found.keys()
    for service in found.values():
        assert (service.project / service.package / "__main__.py").is_file(), service


@pytest.mark.unit
def test_published_ports_are_the_contract_ports_on_loopback(services: dict[str, dict[str, Any]]) -> None:
    published = {}
    for name, service in services.items():
        for mapping in service.get("ports", []):
            host_ip, host_port, container_port = str(mapping).split(":")
            assert host_ip == "127.0.0.1", f"{name} publishes {mapping} beyond loopback"
            published[name] = (int(host_port), int(container_port))
    assert {name: ports[0] for name, ports in published.items()} == CONTRACT_PORTS


@pytest.mark.unit
def test_depends_on_targets_exist_and_have_what_their_condition_waits_for(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        depends_on = service.get("depends_on", {})
        if isinstance(depends_on, list):
            depends_on = {target: {"condition": "service_started"} for target in depends_on}
        for target, condition in depends_on.items():
            assert target in services, f"{name} depends on unknown {target}"
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits for {target} to be healthy: no healthcheck"
            if condition["condition"] == "service_completed_successfully":
                assert services[target].get("restart", "no") == "no", f"{target} must be one-shot"


@pytest.mark.unit
def test_long_running_services_have_healthchecks(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if service.get("restart", "no") != "no" or name in (*GALERA_NODES, "kafka-1", "kafka-2", "kafka-3"):
            assert "healthcheck" in service, name


PYTHON_SERVICES = [
    "user-service",
    "catalog-service",
    "order-service-1",
    "order-service-2",
    "gateway",
    "discovery",
    "monitor",
    "connect-watchdog",
]


@pytest.mark.unit
def test_every_python_service_has_its_settings_checked(services: dict[str, dict[str, Any]]) -> None:
    assert sorted(service_ids(services)) == sorted(PYTHON_SERVICES)


@pytest.mark.unit
@pytest.mark.parametrize("service_name", PYTHON_SERVICES)
def test_settings_load_from_the_container_environment_alone_without_loopback_addresses(
    services: dict[str, dict[str, Any]], service_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every setting without a default is set; none that the service uses points at the container itself."""
    service = next(found for found in python_services(services) if found.name == service_name)
    environment = {
        **image_environment(service.dockerfile),
        **service_environment(services[service_name]),
        **secret_environment(services[service_name]),
    }
    classes = settings_classes(service.project, service.package)
    assert classes, f"{service_name}: no settings class found in {service.package}"
    for name in list(os.environ):
        monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    for settings_class in classes:
        try:
            settings = settings_class(_env_file=None)
        except Exception as exc:
            pytest.fail(f"{service_name}: {settings_class.__name__} does not load from its environment: {exc}")
        for field, value in settings.model_dump().items():
            if field in BROWSER_FACING:
                continue
            assert not LOOPBACK.search(str(value)), f"{service_name}: {field}={value} is loopback in a container"


@pytest.mark.unit
def test_no_secret_is_in_any_environment_but_the_secrets_one_shots_and_only_from_a_dot_env() -> None:
    """Raw file: compose's `config` or `inspect` lists a container's environment; no secret may be there. Only
    the `secrets` one-shot takes a .env's secrets (${KEY:-}: empty without a .env), to write them to the volumes."""
    document: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    for name, service in document["services"].items():
        secrets_here = {key: value for key, value in service_environment(service).items() if is_secret(key)}
        if name == "secrets":
            assert secrets_here == {key: f"${{{key}:-}}" for key in secret_keys()}
        else:
            assert not secrets_here, f"{name} has secrets in its environment: {sorted(secrets_here)}"


@pytest.mark.unit
def test_each_python_deployable_runs_with_the_account_names_and_module_its_description_gives(
    services: dict[str, dict[str, Any]],
) -> None:
    """stack_description.deployables is what both launchers start from: the compose service that reads a deployable's
    secrets volume logs in as its accounts (DB_USER, KAFKA_USERNAME) and, when it is a service, runs its module."""
    by_volume = {deployable.volume or deployable.name: deployable for deployable in DEPLOYABLES}
    checked = set()
    for name, service in services.items():
        deployable = by_volume.get(secret_volume(service) or "")
        if deployable is None:
            continue
        environment = service_environment(service)
        for key, value in {**deployable.settings, **deployable.account_names()}.items():
            assert environment.get(key) == value, f"{name}: {key}"
        if service.get("restart", "no") != "no" and deployable.volume is None:
            assert build_args(service)["MODULE"] == deployable.module, name
        checked.add(deployable.volume or deployable.name)
    assert checked == set(by_volume), "a deployable that compose does not run"


@pytest.mark.unit
def test_each_component_mounts_only_its_own_secrets_read_only_after_they_are_made(
    services: dict[str, dict[str, Any]],
) -> None:
    writer = services["secrets"]
    written = {str(mount).split(":")[1].removeprefix("/secrets/") for mount in writer["volumes"]}
    assert written == set(COMPONENT_SECRETS) | {OPERATOR}
    assert writer["restart"] == "no" and "user" not in writer, "as the image's app user, not root"
    assert writer["cap_drop"] == ["ALL"] and "cap_add" not in writer
    assert [str(group) for group in writer["group_add"]] == [str(SECRETS_GID)]

    readers = {name: secret_volume(service) for name, service in services.items() if secret_volume(service)}
    for name, component in readers.items():
        service = services[name]
        mount = next(str(m) for m in service["volumes"] if f":{SECRETS_MOUNT}" in str(m))
        assert mount.endswith(":ro"), name
        assert [str(group) for group in service.get("group_add", [])] == [str(SECRETS_GID)], name
        assert sum(str(m).startswith("secrets-") for m in service["volumes"]) == 1, name
        assert component != OPERATOR, f"{name} mounts every secret"
        # The volume is filled before the container starts: it waits for the one-shot, or for one that did.
        waited, todo = set(), [name]
        while todo:
            for dependency in services[todo.pop()].get("depends_on") or {}:
                if dependency not in waited:
                    waited.add(dependency)
                    todo.append(dependency)
        assert "secrets" in waited, name
    # Everyone that logs in with a password reads it from its own volume; Prometheus and Zipkin hold none.
    assert readers == {
        **dict.fromkeys(GALERA_NODES, "mariadb"),
        **{f"kafka-{n}": "kafka-admin" for n in (1, 2, 3)},
        "create-topics": "kafka-admin",
        "kafka-access": "kafka-access",
        "connect-1": "connect",
        "connect-2": "connect",
        "register-connectors": "connect-client",
        "connect-watchdog": "connect-watchdog",
        "discovery": "discovery",
        "discovery-2": "discovery",
        "gateway": "discovery",
        "gateway-2": "discovery",
        "user-service": "user-service",
        "catalog-service": "catalog-service",
        "order-service-1": "order-service",
        "order-service-2": "order-service",
        "migrate-orders": "orders-migrator",
        "monitor": "monitor",
    }


@pytest.mark.unit
def test_services_bind_and_register_their_own_hostname(services: dict[str, dict[str, Any]]) -> None:
    """What a service registers in discovery (HOST) must resolve, from the other containers, to that service."""
    for service in python_services(services):
        environment = service_environment(services[service.name])
        if "DISCOVERY_URL" in environment and "HOST" in environment:
            assert services[service.name].get("hostname") == environment["HOST"], service.name


@pytest.mark.unit
def test_order_service_runs_two_replicas_with_distinct_instance_ids(services: dict[str, dict[str, Any]]) -> None:
    replicas = [
        service_environment(service)["INSTANCE_ID"]
        for service in services.values()
        if build_args(service).get("PROJECT") == "services/order-service" and service.get("restart", "no") != "no"
    ]
    assert len(replicas) == 2
    assert len(set(replicas)) == 2


@pytest.mark.unit
def test_topics_are_made_from_the_stacks_description(services: dict[str, dict[str, Any]]) -> None:
    """The same topics and settings as natively (partitions, compaction), whatever the description adds."""
    create_topics = services["create-topics"]
    assert create_topics["restart"] == "no"
    assert create_topics["build"]["target"] == "stack-tools"
    assert create_topics["command"][-3:] == ["python", "-m", "stack_description.topics"]
    for name, service in services.items():
        environment = service_environment(service)
        if "KAFKA_USERNAME" in environment or "CONNECT_KAFKA_JAAS" in environment:
            for one_shot in ("create-topics", "kafka-access"):
                assert one_shot in service.get("depends_on", {}), f"{name} may start before {one_shot} is done"


@pytest.mark.unit
def test_every_connector_config_is_in_the_image_and_registered(services: dict[str, dict[str, Any]]) -> None:
    """register-connectors runs the launcher's rendering (launcher.connect) in the stack-tools image, which holds
    every connector config where the launcher reads them."""
    register = services["register-connectors"]
    assert register["build"]["target"] == "stack-tools"
    copied = [shlex.split(arguments) for keyword, arguments in stage_instructions(PYTHON_DOCKERFILE, "stack-tools")]
    assert ["infra/connect/*.json", "infra/connect/"] in copied
    assert any("infra/containers/register_connectors.py" in sources for sources in copied)
    assert register["command"] == ["python", "-m", "infra.containers.register_connectors"]
    assert {path.stem for path in CONNECTOR_CONFIGS} == set(connectors.CONNECTORS)
    classes = {json.loads(path.read_text())["connector.class"] for path in CONNECTOR_CONFIGS}
    assert "io.debezium.connector.jdbc.JdbcSinkConnector" in classes


@pytest.mark.unit
def test_the_connector_config_follows_the_order_contract() -> None:
    """The JSON file cannot import the contract's constants; this keeps them equal."""
    connector = json.loads((REPO / "infra/connect/orders-sink.json").read_text())
    assert connector["topics"] == ORDERS_TOPIC
    assert connector["errors.deadletterqueue.topic.name"] == ORDERS_DEAD_LETTER_TOPIC
    assert connector["collection.name.format"] == ORDERS_TABLE
    assert connector["primary.key.fields"] == "order_id" and "order_id" in ORDER_FIELDS


@pytest.mark.unit
@pytest.mark.parametrize("connector", CONNECTOR_CONFIGS, ids=lambda path: path.stem)
def test_the_connect_worker_resolves_every_env_reference_of_each_connector(
    services: dict[str, dict[str, Any]], connector: Path
) -> None:
    referenced = set(re.findall(r"\$\{env:(\w+)\}", connector.read_text()))
    # start-worker makes the worker's Kafka login from KAFKA_CONNECT_PASSWORD (a file of its secret volume).
    made = (
        {"CONNECT_KAFKA_JAAS"}
        if "export CONNECT_KAFKA_JAAS" in (REPO / "infra/containers/bin/start-worker").read_text()
        else set()
    )
    for worker in ("connect-1", "connect-2"):
        environment = service_environment(services[worker]) | secret_environment(services[worker])
        assert referenced <= environment.keys() | made, worker


@pytest.mark.unit
def test_compose_grants_and_allows_what_the_descriptions_give(services: dict[str, dict[str, Any]]) -> None:
    """start-mariadb's accounts and infra/kafka/acls.txt (what compose's images apply) are the launcher's
    descriptions rendered; `python -m infra.containers.compose_secrets --render-access` rewrites them."""
    assert rendered_accounts((REPO / "infra/containers/bin/start-mariadb").read_text()) == compose_accounts()
    assert ACL_FILE.read_text() == acl_file_text()
    copied = [
        shlex.split(arguments)
        for keyword, arguments in dockerfile_instructions(REPO / "infra/containers/kafka.Dockerfile")
        if keyword == "COPY"
    ]
    assert any("infra/kafka/acls.txt" in sources and sources[-1] == "/opt/kafka/config/" for sources in copied)
    assert services["kafka-access"]["command"][-1] == "/opt/kafka/config/acls.txt"


def used_dockerfiles(services: dict[str, dict[str, Any]]) -> list[Path]:
    return sorted({path for service in services.values() if (path := dockerfile_of(service)) is not None})


@pytest.mark.unit
def test_every_image_builds_from_the_base_image_argument(services: dict[str, dict[str, Any]]) -> None:
    """One base for all (debian:bookworm-slim, or the one make compose-up builds with debootstrap)."""
    for dockerfile in used_dockerfiles(services):
        instructions = dockerfile_instructions(dockerfile)
        assert instructions[0] == ("ARG", "BASE_IMAGE=debian:bookworm-slim"), dockerfile
        stages: set[str] = set()
        for keyword, arguments in instructions:
            if keyword == "FROM":
                image, *alias = arguments.split()
                assert image == "${BASE_IMAGE}" or image in stages, f"{dockerfile.name}: FROM {image}"
                stages.update(alias[1:] if alias and alias[0].upper() == "AS" else [])
    for name, service in services.items():
        if "build" in service:
            assert build_args(service)["BASE_IMAGE"] == "debian:bookworm-slim", name


@pytest.mark.unit
def test_every_image_ends_as_a_user_other_than_root(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        dockerfile = dockerfile_of(service)
        if dockerfile is None:
            continue
        built = stage_instructions(dockerfile, service["build"].get("target"))
        users = [arguments for keyword, arguments in built if keyword == "USER"]
        assert users and users[-1] not in ("root", "0"), f"{name}: {dockerfile.name}"


@pytest.mark.unit
def test_no_image_keeps_a_ca_bundle_or_points_a_tool_at_one(services: dict[str, dict[str, Any]]) -> None:
    """The host's CA is mounted into a build step only (podman build --volume); no layer or setting keeps it."""
    for dockerfile in used_dockerfiles(services):
        for keyword, arguments in dockerfile_instructions(dockerfile):
            assert not (keyword in ("COPY", "ADD") and re.search(r"\.(crt|pem)\b", arguments)), dockerfile.name
            assert not (keyword == "ENV" and re.search(r"PIP_CERT|SSL_CERT|REQUESTS_CA", arguments)), dockerfile.name


@pytest.mark.unit
def test_python_images_install_the_lock_with_its_hashes_then_the_projects_without_resolving() -> None:
    runs = [arguments for keyword, arguments in dockerfile_instructions(PYTHON_DOCKERFILE) if keyword == "RUN"]
    installs = [re.search(r"pip install (.*)", run) for run in runs]
    flags = [match.group(1) for match in installs if match]
    assert flags[0].startswith("--require-hashes -r /opt/requirements.lock")
    assert all(flag.startswith("--no-deps") for flag in flags[1:])


@pytest.mark.unit
def test_restart_policies_keep_long_running_services_up(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if "healthcheck" in service:
            assert service.get("restart") == "unless-stopped", name


def test_podman_compose_config_accepts_the_file() -> None:
    if not PODMAN_COMPOSE.exists() or shutil.which("podman") is None:
        pytest.skip("podman-compose is installed by make compose-up / compose-test (podman path)")
    result = subprocess.run(
        [str(PODMAN_COMPOSE), "--env-file", str(ENV_EXAMPLE), "-f", str(COMPOSE_FILE), "config"],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        env={**os.environ, "CONTAINERS_CONF": str(REPO / "infra/containers/containers.conf")},
    )
    assert result.returncode == 0, result.stderr
    assert set(yaml.safe_load(result.stdout)["services"]) == set(yaml.safe_load(COMPOSE_FILE.read_text())["services"])


def test_docker_compose_config_accepts_the_file() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker CLI on this machine")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip("the docker CLI here has no compose plugin (`docker compose` is an unknown command)")
    result = subprocess.run(
        [docker, "compose", "--env-file", str(ENV_EXAMPLE), "-f", str(COMPOSE_FILE), "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.unit
def test_kafka_is_three_voters_of_one_quorum_and_connect_two_workers_of_one_group(
    services: dict[str, dict[str, Any]],
) -> None:
    brokers = {name: service for name, service in services.items() if service.get("command") == ["start-broker"]}
    voters = {f"{service_environment(s)['NODE_ID']}@{s['hostname']}:9093" for s in brokers.values()}
    bootstrap = {f"{service['hostname']}:19092" for service in brokers.values()}
    assert len(brokers) == len(voters) == 3
    for name, service in brokers.items():
        environment = service_environment(service)
        assert set(environment["QUORUM_VOTERS"].split(",")) == voters, name
        assert (environment["KAFKA_REPLICATION_FACTOR"], environment["KAFKA_MIN_INSYNC_REPLICAS"]) == ("3", "2")
    assert sum(service.get("command") == ["start-worker"] for service in services.values()) == 2
    # Every client knows every node, and whatever makes a topic makes it with the cluster's replication.
    for name, service in services.items():
        environment = service_environment(service)
        if "KAFKA_BOOTSTRAP_SERVERS" in environment:
            assert set(environment["KAFKA_BOOTSTRAP_SERVERS"].split(",")) == bootstrap, name
            assert environment.get("KAFKA_REPLICATION_FACTOR") == "3", name


@pytest.mark.unit
def test_every_one_shot_is_awaited_by_a_long_running_service(services: dict[str, dict[str, Any]]) -> None:
    """`docker compose up --wait` counts a one-shot's exit as a failure unless a long-running service waits for it
    with `service_completed_successfully`."""
    one_shots = {name for name, service in services.items() if service.get("restart", "no") == "no"}
    adopted = {
        dependency
        for service in services.values()
        if service.get("restart", "no") != "no"
        for dependency, wait in (service.get("depends_on") or {}).items()
        if wait.get("condition") == "service_completed_successfully"
    }
    assert one_shots and one_shots <= adopted, sorted(one_shots - adopted)


# Where the images render a template we ship (infra/containers/bin/render-template): the file that sets the T_
# variables, and the template. Every placeholder needs its T_ variable, or the image build or the start fails.
RENDERED_IN_IMAGES = [
    ("infra/containers/bin/start-mariadb", "infra/mariadb/my.cnf"),
    ("infra/containers/bin/start-mariadb", "infra/mariadb/galera.cnf"),
    ("infra/containers/bin/start-prometheus", "infra/prometheus/prometheus.yml"),
    ("infra/containers/bin/start-broker", "infra/kafka/server.properties"),
    ("infra/containers/bin/start-worker", "infra/connect/worker.properties"),
]


@pytest.mark.unit
@pytest.mark.parametrize(("renderer", "template"), RENDERED_IN_IMAGES)
def test_the_images_give_every_placeholder_of_the_templates_they_render(renderer: str, template: str) -> None:
    given = set(re.findall(r"\bT_(\w+)=", (REPO / renderer).read_text()))
    needed = set(re.findall(r"\{\{(\w+)\}\}", (REPO / template).read_text()))
    assert needed <= given, f"{renderer} does not set T_{', T_'.join(sorted(needed - given))} for {template}"


@pytest.mark.unit
def test_mariadb_is_three_galera_nodes_each_with_its_own_volume_healthy_when_synced(
    services: dict[str, dict[str, Any]],
) -> None:
    nodes = {name: service for name, service in services.items() if service.get("image") == "kafka-sync/mariadb"}
    assert tuple(nodes) == GALERA_NODES
    data_volumes = []
    for number, (name, service) in enumerate(nodes.items(), start=1):
        environment = service_environment(service)
        assert service["hostname"] == name
        assert environment["GALERA_NODE"] == str(number), name
        assert environment["GALERA_PEERS"].split(",") == list(GALERA_NODES), name
        assert service["healthcheck"]["test"] == ["CMD", "mariadb-ready"], name
        assert service.get("command") is None, f"{name} runs the image's start-mariadb"
        data_volumes += [m for m in map(str, service["volumes"]) if m.endswith(":/var/lib/kafka-sync/mariadb")]
    assert len(data_volumes) == len(set(data_volumes)) == 3, data_volumes
    # A node started on its own waits for nothing but its secrets: it founds the cluster or joins a peer itself.
    assert all(set(service["depends_on"]) == {"secrets"} for service in nodes.values())


@pytest.mark.unit
def test_every_database_client_tries_every_node_the_first_first_and_waits_for_all_of_them(
    services: dict[str, dict[str, Any]],
) -> None:
    in_order = ",".join(f"{node}:3306" for node in GALERA_NODES)
    clients = {name: service for name, service in services.items() if "DB_HOST" in service_environment(service)}
    assert {"user-service", "catalog-service", "order-service-1", "monitor", "connect-watchdog"} <= clients.keys()
    for name, service in clients.items():
        environment = service_environment(service)
        assert (environment["DB_HOST"], environment["DB_PORT"]) == ("mariadb", "3306"), name
        if name not in ("connect-1", "connect-2"):  # the workers resolve the connectors' references only
            assert environment["DB_HOSTS"] == in_order, name
        if not {"mariadb", "mariadb-2", "mariadb-3"} & set(service.get("depends_on") or {}):
            continue
        for node in GALERA_NODES:
            assert service["depends_on"][node] == {"condition": "service_healthy"}, f"{name} waits for {node}"
    assert service_environment(services["register-connectors"])["DB_HOSTS"] == in_order


@pytest.mark.unit
def test_the_connectors_registered_in_compose_reach_the_galera_cluster_as_the_launchers_do() -> None:
    """The sink writes through MariaDB Connector/J's sequential failover over every node (a non-Synced one passed
    over); the CDC source reads node 1 (the workers' DB_HOST) from the cluster's GTID domain."""
    config = ComposeStack({"DB_HOSTS": ",".join(f"{node}:3306" for node in GALERA_NODES)})
    sink = connectors.rendered(config, connectors.SINK_CONNECTOR, connect_config(connectors.SINK_CONNECTOR))
    source = connectors.rendered(config, connectors.SOURCE_CONNECTOR, connect_config(connectors.SOURCE_CONNECTOR))

    assert sink["connection.url"] == (
        "jdbc:mariadb:sequential://mariadb:3306,mariadb-2:3306,mariadb-3:3306/${env:ORDERS_DB}"
        "?useServerPrepStmts=true&galeraAllowedState=4"
    )
    assert source["gtid.source.includes"] == connectors.GALERA_GTID_SOURCES
    assert (source["database.hostname"], source["database.port"]) == ("${env:DB_HOST}", "${env:DB_PORT}")


def connect_config(name: str) -> dict[str, str]:
    loaded: dict[str, str] = json.loads((connectors.CONNECTOR_DIR / f"{name}.json").read_text())
    return loaded

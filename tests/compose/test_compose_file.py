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

from order_contract.order import ORDER_FIELDS
from order_contract.table import ORDERS_TABLE
from order_contract.topics import DATA_TOPICS, DEAD_LETTER_TOPICS, ORDERS_DEAD_LETTER_TOPIC, ORDERS_TOPIC

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"

# CONTRACT.md, "Ports (native defaults)": the same ports on the host, loopback only.
CONTRACT_PORTS = {"gateway": 8000, "discovery": 8761, "kafka": 9092, "connect": 8083, "mariadb": 3306}
TOPICS = (*DATA_TOPICS, *DEAD_LETTER_TOPICS)
LOOPBACK = re.compile(r"\b(127\.0\.0\.1|localhost)\b")
PYTHON_MODULE_CMD = re.compile(r'^CMD \["python", "-m", "(?P<package>\w+)"\]$', re.MULTILINE)


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return {
        key: f"{key.lower()}-filled-in-by-the-user-0123456789" if value == "change-me" else value
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


def image_environment(dockerfile: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, arguments in dockerfile_instructions(dockerfile):
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


@dataclass(frozen=True)
class PythonService:
    name: str
    project: Path
    package: str
    dockerfile: Path


def python_services(services: dict[str, dict[str, Any]]) -> list[PythonService]:
    found = []
    for name, service in services.items():
        dockerfile = dockerfile_of(service)
        if dockerfile is None or not dockerfile.is_file():
            continue
        command = PYTHON_MODULE_CMD.search(dockerfile.read_text())
        if command:
            found.append(PythonService(name, dockerfile.parent, command.group("package"), dockerfile))
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
        for keyword, arguments in dockerfile_instructions(dockerfile):
            parts = [part for part in shlex.split(arguments) if not part.startswith("--")]
            # Skip copies from another build stage and heredocs: neither comes from the context.
            if keyword != "COPY" or "--from" in arguments or any(part.startswith("<<") for part in parts):
                continue
            for source in parts[:-1]:
                assert (context / source).exists(), f"{name}: {dockerfile.name} copies missing {source}"


@pytest.mark.unit
def test_every_python_image_runs_a_package_of_its_project(services: dict[str, dict[str, Any]]) -> None:
    found = {service.name: service for service in python_services(services)}
    assert {"gateway", "discovery", "user-service", "catalog-service", "order-service-1"} <= found.keys()
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
        if service.get("restart", "no") != "no" or name in ("mariadb", "kafka"):
            assert "healthcheck" in service, name


PYTHON_SERVICES = ["user-service", "catalog-service", "order-service-1", "order-service-2", "gateway", "discovery"]


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
    environment = {**image_environment(service.dockerfile), **service_environment(services[service_name])}
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
            assert not LOOPBACK.search(str(value)), f"{service_name}: {field}={value} is loopback in a container"


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
        if str(service.get("build", {}).get("dockerfile", "")).startswith("services/order-service/")
    ]
    assert len(replicas) == 2
    assert len(set(replicas)) == 2


@pytest.mark.unit
def test_one_shot_services_create_the_contract_topics_and_register_the_sink(
    services: dict[str, dict[str, Any]],
) -> None:
    one_shots = [service for service in services.values() if service.get("restart") == "no"]
    scripts = " ".join(" ".join(map(str, service.get("command", []))) for service in one_shots)
    for topic in TOPICS:
        assert re.search(rf"(?<![\w-]){re.escape(topic)}(?![\w-])", scripts), f"topic {topic} is not created"
    assert "-X PUT" in scripts and "/connectors/orders-sink/config" in scripts
    assert "@/opt/connect/orders-sink.json" in scripts


@pytest.mark.unit
def test_the_connector_config_the_connect_image_ships_exists_and_names_the_sink() -> None:
    dockerfile = REPO / "infra/connect/Dockerfile"
    copied = [
        shlex.split(arguments)
        for keyword, arguments in dockerfile_instructions(dockerfile)
        if keyword == "COPY" and "orders-sink.json" in arguments
    ]
    assert copied == [["infra/connect/orders-sink.json", "/opt/connect/orders-sink.json"]]
    connector = json.loads((REPO / "infra/connect/orders-sink.json").read_text())
    assert connector["connector.class"] == "io.debezium.connector.jdbc.JdbcSinkConnector"


@pytest.mark.unit
def test_the_connector_config_follows_the_order_contract() -> None:
    """The JSON file cannot import the contract's constants; this keeps them equal."""
    connector = json.loads((REPO / "infra/connect/orders-sink.json").read_text())
    assert connector["topics"] == ORDERS_TOPIC
    assert connector["errors.deadletterqueue.topic.name"] == ORDERS_DEAD_LETTER_TOPIC
    assert connector["collection.name.format"] == ORDERS_TABLE
    assert connector["primary.key.fields"] == "order_id" and "order_id" in ORDER_FIELDS


@pytest.mark.unit
def test_the_connect_worker_resolves_every_env_reference_of_the_connector(
    services: dict[str, dict[str, Any]],
) -> None:
    connector_text = (REPO / "infra/connect/orders-sink.json").read_text()
    referenced = set(re.findall(r"\$\{env:(\w+)\}", connector_text))
    assert referenced <= service_environment(services["connect"]).keys()


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

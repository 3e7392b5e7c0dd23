"""Connect's REST API resolves ${env:...} in a connector config and answers with the values of every field it does not
hide as a password: the worker's REST guard (infra/src/.../rest) refuses a reference to a secret anywhere else, and
the real connectors still register."""

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from launcher import connect
from servicekit.testing import eventually_blocking
from stack_description import connectors
from stack_description.settings import StackConfig

pytestmark = pytest.mark.stack

WORKER_PROPERTIES = connectors.CONNECTOR_DIR / "worker.properties"

SINK_PLUGIN = connectors.SINK_CLASS.rsplit(".", 1)[-1]
# What the worker's environment resolves that is secret, by the .env key holding it (or part of it).
WORKER_SECRETS = ("ORDERS_SINK_DB_PASSWORD", "CDC_DB_PASSWORD", "KAFKA_CONNECT_PASSWORD")


def connector_config(name: str) -> dict[str, str]:
    config: dict[str, str] = json.loads((connectors.CONNECTOR_DIR / f"{name}.json").read_text())
    return config


def assert_no_worker_secret(config: StackConfig, answer: httpx.Response) -> None:
    for key in WORKER_SECRETS:
        assert config.get(key) not in answer.text, f"{key} came back"


def settled(request: "httpx.Request", client: httpx.Client) -> httpx.Response:
    """Send until the worker group is not rebalancing (409)."""

    def answered() -> httpx.Response | None:
        answer = client.send(request)
        return None if answer.status_code == 409 else answer

    return eventually_blocking(
        answered, within=60, what=f"{request.method} {request.url.path} answered without a rebalance"
    )


@pytest.fixture
def admin(stack_config: StackConfig) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack_config.connect_url, auth=connectors.rest_auth(stack_config), timeout=60) as client:
        yield client


@pytest.mark.parametrize(
    ("field", "reference"),
    [
        ("collection.name.format", "${env:SINK_DB_PASSWORD}"),
        ("tasks.max", "${env:CDC_DB_PASSWORD}"),
        ("connection.username", "${env:CONNECT_KAFKA_JAAS}"),
        ("topics", "orders-${env:SINK_DB_PASSWORD}"),
    ],
)
def test_validation_refuses_a_secret_reference_in_a_field_connect_echoes(
    stack_config: StackConfig, admin: httpx.Client, field: str, reference: str
) -> None:
    config = {**connector_config(connectors.SINK_CONNECTOR), field: reference}

    answer = admin.put(f"/connector-plugins/{SINK_PLUGIN}/config/validate", json=config)

    assert answer.status_code == 400, answer.text
    assert field in answer.json()["message"]
    assert_no_worker_secret(stack_config, answer)


def test_creating_or_updating_a_connector_refuses_a_secret_reference(
    stack_config: StackConfig, admin: httpx.Client
) -> None:
    # tasks.max is no number, so even a worker without the guard makes no connector: it echoes the value instead.
    name = f"guard-test-{uuid.uuid4().hex[:8]}"
    config = {**connector_config(connectors.SINK_CONNECTOR), "tasks.max": "${env:SINK_DB_PASSWORD}"}

    created = admin.post("/connectors", json={"name": name, "config": config})
    put = admin.put(f"/connectors/{name}/config", json=config)
    patched = admin.patch(f"/connectors/{name}/config", json={"tasks.max": "${env:CDC_DB_PASSWORD}"})

    assert (created.status_code, put.status_code, patched.status_code) == (400, 400, 400), put.text
    for answer in (created, put, patched):
        assert "tasks.max" in answer.json()["message"]
        assert_no_worker_secret(stack_config, answer)
    assert admin.get(f"/connectors/{name}").status_code == 404


def test_a_reference_spelled_with_json_escapes_or_a_duplicate_key_is_refused(admin: httpx.Client) -> None:
    url = f"/connector-plugins/{SINK_PLUGIN}/config/validate"
    start = f'{{"connector.class": "{connectors.SINK_CLASS}", '
    escaped = start + '"topics": "\\u0024{env:SINK_DB_PASSWORD}"}'
    duplicate = start + '"topics": "orders", "topics": "${env:SINK_DB_PASSWORD}"}'
    headers = {"Content-Type": "application/json"}

    answers = [admin.put(url, content=body, headers=headers) for body in (escaped, duplicate)]

    assert [answer.status_code for answer in answers] == [400, 400], [answer.text for answer in answers]


def test_an_anonymous_request_is_refused_before_its_body_is_judged(stack_config: StackConfig) -> None:
    config = {**connector_config(connectors.SINK_CONNECTOR), "topics": "${env:SINK_DB_PASSWORD}"}

    answer = httpx.put(f"{stack_config.connect_url}/connector-plugins/{SINK_PLUGIN}/config/validate", json=config)

    assert answer.status_code == 401


@pytest.mark.parametrize("name", connectors.CONNECTORS)
def test_the_real_connector_configs_validate_without_showing_a_secret(
    stack_config: StackConfig, admin: httpx.Client, name: str
) -> None:
    config = connector_config(name)
    plugin = config["connector.class"].rsplit(".", 1)[-1]

    answer = admin.put(f"/connector-plugins/{plugin}/config/validate", json=config)

    assert answer.status_code == 200, answer.text
    assert_no_worker_secret(stack_config, answer)


@pytest.mark.parametrize("name", connectors.CONNECTORS)
def test_the_real_connectors_still_register(stack_config: StackConfig, admin: httpx.Client, name: str) -> None:
    """What the launcher and compose's register-connectors send: PUT of infra/connect/<name>.json (unchanged, so
    the connector keeps running)."""
    config_file: Path = connectors.CONNECTOR_DIR / f"{name}.json"
    request = admin.build_request("PUT", f"/connectors/{name}/config", json=json.loads(config_file.read_text()))

    answer = settled(request, admin)

    assert answer.status_code == 200, answer.text
    eventually_blocking(lambda: connect.connector_running(stack_config, name), within=90, what=f"{name} RUNNING")


@pytest.mark.unit
@pytest.mark.parametrize("name", connectors.CONNECTORS)
def test_every_reference_of_the_real_connectors_passes_the_guard(name: str) -> None:
    """A ${env:NAME} outside the guard's password fields names a plain setting (worker.properties' lists)."""
    guard = dict(re.findall(r"^kafkasync\.rest\.guard\.([a-z.]+)=(.*)$", WORKER_PROPERTIES.read_text(), re.MULTILINE))
    secret_fields, plain = set(guard["secret.fields"].split(",")), set(guard["plain.env"].split(","))
    misplaced = {
        field: value
        for field, value in connector_config(name).items()
        if field not in secret_fields and not set(re.findall(r"\$\{env:(\w+)\}", value)) <= plain
    }
    assert misplaced == {}
    assert not plain & {"SINK_DB_PASSWORD", "CDC_DB_PASSWORD", "CONNECT_KAFKA_JAAS"}

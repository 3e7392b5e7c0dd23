"""The running compose stack, from the host (make compose-test runs this after the e2e suite): what its images hold,
who its containers run as, and containers killed and restarted while orders flow.

make compose-test sets STACK_UNDER_TEST=compose, COMPOSE_TEST_ENGINE (docker or podman), COMPOSE_TEST_PROJECT and
the published ports (GATEWAY_PORT, DB_PORT, ...); without them these tests are skipped.
"""

import asyncio
import json
import os
import re
import signal
import subprocess
import time
from importlib import metadata
from pathlib import Path

import httpx
import pytest

from infra.containers.compose_secrets import COMPONENT_SECRETS, secret_keys
from infra.containers.compose_stack import bridge_link
from servicekit.testing import DictConnection, eventually
from stack_support.api_client import GatewayClient
from tests.compose.orders import priced_by_every_instance
from tests.e2e.orders_table import settled, stock_drift
from tests.e2e.test_faults import Progress, place_until

pytestmark = pytest.mark.skipif(
    os.environ.get("STACK_UNDER_TEST") != "compose", reason="needs the compose stack: make compose-test"
)

REPO = Path(__file__).resolve().parents[2]
ENGINE = os.environ.get("COMPOSE_TEST_ENGINE", "podman")
PROJECT = os.environ.get("COMPOSE_TEST_PROJECT", "kafka-sync-test")
PYTHON_IMAGES = [
    "kafka-sync/gateway",
    "kafka-sync/discovery",
    "kafka-sync/user-service",
    "kafka-sync/catalog-service",
    "kafka-sync/order-service",
    "kafka-sync/monitor",
    "kafka-sync/stack-tools",
]
# The installer's own packages, which a venv brings and the lock does not name.
INSTALLERS = {"pip", "setuptools"}


def engine(*args: str) -> str:
    return subprocess.run([ENGINE, *args], check=True, capture_output=True, text=True, timeout=120).stdout


def container(service: str) -> str:
    names = engine(
        "ps",
        "-a",
        "--filter",
        f"label=com.docker.compose.project={PROJECT}",
        "--filter",
        f"label=com.docker.compose.service={service}",
        "--format",
        "{{.Names}}",
    ).split()
    assert names, f"no container of {service} in {PROJECT}"
    return names[0]


def project_containers() -> list[str]:
    return engine(
        "ps", "-a", "--filter", f"label=com.docker.compose.project={PROJECT}", "--format", "{{.Names}}"
    ).split()


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_versions() -> dict[str, str]:
    return {
        normalized(name): version
        for name, version in re.findall(
            r"^([A-Za-z0-9][\w.-]*)==([^\s\\]+)", (REPO / "requirements.lock").read_text(), re.M
        )
    }


@pytest.mark.parametrize("image", PYTHON_IMAGES)
def test_an_images_python_packages_are_the_native_venvs_versions(image: str) -> None:
    """Both read from what is installed: the image's venv (pip list) and this .venv (the native stack's)."""
    listed = json.loads(engine("run", "--rm", image, "python", "-m", "pip", "list", "--format", "json"))
    in_image = {normalized(entry["name"]): entry["version"] for entry in listed if entry["name"] not in INSTALLERS}
    native = {normalized(dist.metadata["Name"]): dist.version for dist in metadata.distributions()}

    assert {name: native.get(name) for name in in_image} == in_image
    assert lock_versions().items() <= in_image.items(), "every locked package, at the lock's version"


@pytest.mark.skipif(ENGINE != "podman", reason="Docker gives its bridges a fixed address itself")
def test_the_networks_bridge_keeps_its_address_when_a_container_joins_and_leaves() -> None:
    """Name lookups go to aardvark-dns on the bridge's address. A bridge whose MAC address the kernel takes from its
    ports (netavark 1.4 leaves it so) changed it when a container left or joined, and lookups stalled until each
    container's ARP entry expired: compose_stack.pin_bridge_address sets it (addr_assign_type 3, NET_ADDR_SET)."""
    before = bridge_link(f"{PROJECT}_default")
    assert before is not None
    engine("run", "--rm", "--network", f"{PROJECT}_default", "kafka-sync/stack-tools", "true")

    after = bridge_link(f"{PROJECT}_default")
    assert after is not None and after.assign_type == "3"
    assert after.address == before.address


def test_every_container_of_the_stack_runs_as_a_user_other_than_root() -> None:
    names = project_containers()
    assert len(names) >= 12
    for name in names:
        user = engine("inspect", "--format", "{{.Config.User}}", name).strip()
        assert user not in ("", "root", "0", "0:0"), f"{name} runs as {user or 'root (no USER)'}"
        if engine("inspect", "--format", "{{.State.Status}}", name).strip() == "running":
            assert engine("exec", name, "id", "-u").strip() != "0", name


def crash(service: str) -> None:
    """SIGKILL to the container's main process, as a crash (an engine's `kill` counts as a stop by the user, and
    the restart policy would then leave the container down)."""
    name = container(service)
    os.kill(int(engine("inspect", "--format", "{{.State.Pid}}", name)), signal.SIGKILL)


def restarted_by_its_policy(service: str, within: float = 60) -> None:
    name = container(service)
    deadline = time.monotonic() + within
    while engine("inspect", "--format", "{{.RestartCount}}", name).strip() in ("", "0"):
        assert time.monotonic() < deadline, f"{service} was not restarted by its restart policy within {within:.0f} s"
        time.sleep(1)


def broker_stopped_and_started(service: str) -> None:
    """A broker container stopped (its node shuts down in order: leaders move to the others) and started again."""
    engine("stop", container(service))
    engine("start", container(service))


async def test_a_replica_crashing_a_broker_and_connect_restarting_while_orders_flow_lose_and_duplicate_nothing(
    gateway: GatewayClient, orders_db: DictConnection, own_products: dict[str, int]
) -> None:
    products = list(own_products)
    probe_user = await gateway.sign_up("Compose Probe")
    probes = await priced_by_every_instance(gateway, probe_user, products)
    users = await asyncio.gather(*(gateway.sign_up(f"Compose Buyer {n}") for n in range(3)))
    progress, faults_done = Progress(), asyncio.Event()
    flow = asyncio.ensure_future(
        asyncio.gather(*(place_until(gateway, user, products, faults_done, progress) for user in users))
    )
    try:
        await progress.reached(15, flow)
        await asyncio.to_thread(crash, "order-service-2")
        await asyncio.to_thread(restarted_by_its_policy, "order-service-2")

        # One of the three Kafka nodes away and back: two replicas still take every write (min.insync.replicas 2).
        await progress.reached(len(progress.accepted) + 15, flow)
        await asyncio.to_thread(broker_stopped_and_started, "kafka-2")

        await progress.reached(len(progress.accepted) + 15, flow)
        await asyncio.to_thread(engine, "restart", container("connect-1"))
        restarted_at = len(progress.accepted)

        await progress.reached(restarted_at + 15, flow)
        assert not flow.done(), "orders flowed through every fault"
    finally:
        faults_done.set()
        await flow

    accepted = progress.accepted
    assert len(accepted) == len(set(accepted)) >= 60
    rows = await eventually(
        lambda: settled(orders_db, probes + accepted),
        within=120,
        what="every accepted order, also those after the broker's and Connect's restarts, has one settled row",
    )
    assert {row["status"] for row in rows.values()} == {"CONFIRMED"}, "5,000 in stock: every order fits"
    stock = await eventually(gateway.stock, within=30, what="the catalog through the gateway")
    assert set(stock_drift(orders_db, own_products, stock).values()) == {0}, "stock moved by the confirmed orders"


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


async def test_orders_flow_through_the_second_gateway_while_the_first_discovery_peer_and_gateway_are_stopped(
    orders_db: DictConnection, fresh_products: dict[str, int]
) -> None:
    """Two discovery peers and two gateways, as in cluster mode: the first peer stopped, then the first gateway; the
    clients know both gateways and move on when a connection fails, sending the same Idempotency-Key again."""
    first, second = (f"http://127.0.0.1:{os.environ[key]}" for key in ("GATEWAY_PORT", "GATEWAY_2_PORT"))
    products = list(fresh_products)
    async with GatewayClient(first, second) as gateway:
        users = await asyncio.gather(*(gateway.sign_up(f"Compose Peer Buyer {n}") for n in range(3)))
        progress, faults_done = Progress(), asyncio.Event()
        flow = asyncio.ensure_future(
            asyncio.gather(*(place_until(gateway, user, products, faults_done, progress) for user in users))
        )
        try:
            await progress.reached(10, flow)
            for service in ("discovery", "gateway"):
                await asyncio.to_thread(engine, "stop", container(service))
                await progress.reached(len(progress.accepted) + 15, flow)
            assert not flow.done(), "orders flowed with the first peer and gateway stopped"
        finally:
            faults_done.set()
            try:
                await flow
            finally:
                # Whole again for the suites after this one, whatever happened above.
                for service in ("discovery", "gateway"):
                    await asyncio.to_thread(engine, "start", container(service))
                back = f"{first}/gateway/health_check"
                await eventually(lambda: answers(back), within=90, what="the first gateway back")
        assert str(gateway.http.base_url).rstrip("/") == second, "the clients moved to the second gateway"
        accepted = progress.accepted
        rows = await eventually(
            lambda: settled(orders_db, accepted), within=120, what="every accepted order has one settled row"
        )
        assert {row["status"] for row in rows.values()} == {"CONFIRMED"}
        stock = await eventually(gateway.stock, within=30, what="the catalog through the second gateway")
        assert set(stock_drift(orders_db, fresh_products, stock).values()) == {0}


def test_no_secret_is_in_any_containers_configuration_or_log_and_each_holds_only_its_own() -> None:
    """The `secrets` one-shot made them (no .env under compose-test); the runner passed them to this suite."""
    secrets = {key: os.environ[key] for key in secret_keys()}
    assert all(len(value) >= 32 for value in secrets.values())
    for name in project_containers():
        service = engine("inspect", "--format", '{{index .Config.Labels "com.docker.compose.service"}}', name).strip()
        configuration = engine("inspect", name)
        log = subprocess.run([ENGINE, "logs", name], capture_output=True, text=True, check=False, timeout=60)
        for key, value in secrets.items():
            assert value not in configuration, f"{key} is in {service}'s configuration"
            assert value not in log.stdout + log.stderr, f"{key} is in {service}'s log"
        mounts = json.loads(engine("inspect", "--format", "{{json .Mounts}}", name))
        volumes = sorted(m.get("Name", "") for m in mounts if m.get("Name", "").startswith(f"{PROJECT}_secrets-"))
        if service == "secrets":
            continue
        assert f"{PROJECT}_secrets-operator" not in volumes, f"{service} mounts every secret"
        if not volumes:
            continue
        assert len(volumes) == 1, f"{service}: {volumes}"
        component = volumes[0].removeprefix(f"{PROJECT}_secrets-")
        if engine("inspect", "--format", "{{.State.Status}}", name).strip() == "running":
            held = engine("exec", name, "ls", "/run/stack-secrets").split()
            assert sorted(held) == sorted(COMPONENT_SECRETS[component]), service

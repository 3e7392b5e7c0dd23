"""Who may see what, end to end: through the gateway, and straight at the services' own ports."""

import asyncio
import subprocess
import sys
import uuid
from collections.abc import Iterator

import httpx
import pytest

from launcher import services
from servicekit.config import ServiceSettings
from servicekit.testing import DictConnection, database, eventually
from stack_description.settings import REPO_ROOT, StackConfig
from stack_support.api_client import GatewayClient, User
from tests.e2e.orders_table import SEED_PRICE, settled

pytestmark = pytest.mark.stack


def instance_urls(stack_config: StackConfig, app: str) -> list[str]:
    urls = []
    for instance in services.registered_instances(stack_config, app):
        port = instance["port"]["$"] if isinstance(instance["port"], dict) else instance["port"]
        urls.append(f"http://{instance['ipAddr']}:{port}")
    assert urls, f"no {app} instance registered"
    return urls


async def test_a_user_sees_neither_the_user_list_nor_another_users_page(gateway: GatewayClient) -> None:
    alice, bob = await gateway.sign_up("Alice"), await gateway.sign_up("Bob")

    listed = await gateway.http.get("/user-service/users", headers=alice.auth)
    foreign = await gateway.http.get(f"/user-service/users/{bob.user_id}", headers=alice.auth)
    own = await gateway.http.get(f"/user-service/users/{alice.user_id}", headers=alice.auth)

    assert (listed.status_code, foreign.status_code, own.status_code) == (403, 403, 200)
    assert own.json()["email"] == alice.email
    assert bob.email not in listed.text + foreign.text


@pytest.mark.parametrize(
    "template",
    [
        "/user-service//users/{bob}",
        "/user-service/users//{bob}",
        "/user-service/users/{alice}%2F..%2F{bob}",
        "/user-service/users%2F{bob}",
        "/order-service//{bob}/orders",
        "/order-service/{alice}%2F..%2F{bob}/orders",
        "/order-service/{alice}/..%2F{bob}/orders",
    ],
)
async def test_path_tricks_do_not_reach_another_users_data(gateway: GatewayClient, template: str) -> None:
    alice, bob = await gateway.sign_up("Alice"), await gateway.sign_up("Bob")

    response = await gateway.http.get(template.format(alice=alice.user_id, bob=bob.user_id), headers=alice.auth)

    assert 400 <= response.status_code < 500, response.text
    assert bob.email not in response.text


INTERNALS = [
    "metrics",
    "docs",
    "openapi.json",
    "redoc",
    "docs/oauth2-redirect",
    "%6Detrics",
    "%6fpenapi.json",
    "d%6Fcs",
]


@pytest.mark.parametrize("service", ["user-service", "catalog-service", "order-service"])
async def test_a_services_internals_are_not_reachable_through_the_gateway_with_a_users_token(
    gateway: GatewayClient, service: str
) -> None:
    user = await gateway.sign_up("Curious")

    answers = {internal: await gateway.http.get(f"/{service}/{internal}", headers=user.auth) for internal in INTERNALS}

    reached = {internal: a.status_code for internal, a in answers.items() if a.status_code not in (400, 403)}
    assert reached == {}


async def test_user_services_keys_and_revocations_stay_public_at_its_port(stack_config: StackConfig) -> None:
    # The gateway and every service fetch them through discovery, straight from user-service's port.
    async with httpx.AsyncClient(timeout=5) as http:
        for url in instance_urls(stack_config, "USER-SERVICE"):
            assert (await http.get(f"{url}/.well-known/jwks.json")).json()["keys"]
            assert (await http.get(f"{url}/tokens/revocations")).status_code == 200


async def test_service_ports_answer_401_without_a_token(gateway: GatewayClient, stack_config: StackConfig) -> None:
    user = await gateway.sign_up("Direct Caller")
    async with httpx.AsyncClient(timeout=5) as http:
        for url in instance_urls(stack_config, "ORDER-SERVICE"):
            assert (await http.get(f"{url}/{user.user_id}/orders")).status_code == 401
            body = {"productId": "CATALOG-001", "qty": 1, "unitPrice": SEED_PRICE["CATALOG-001"]}
            assert (await http.post(f"{url}/{user.user_id}/orders", json=body)).status_code == 401
        for url in instance_urls(stack_config, "USER-SERVICE"):
            assert (await http.get(f"{url}/users")).status_code == 401
            assert (await http.get(f"{url}/users/{user.user_id}")).status_code == 401
            assert (await http.get(f"{url}/users", headers=user.auth)).status_code == 403


async def test_a_users_page_shows_their_orders_read_with_their_own_token(
    gateway: GatewayClient, orders_db: DictConnection
) -> None:
    user = await gateway.sign_up("Shopper")
    placed = await gateway.place_order(user, "CATALOG-002", 1, SEED_PRICE["CATALOG-002"])
    await eventually(lambda: settled(orders_db, [placed.order_id]), within=30, what="the order settled in mydb.orders")

    page = await gateway.http.get(f"/user-service/users/{user.user_id}", headers=user.auth)

    assert page.status_code == 200
    assert page.json()["ordersError"] is None
    assert [order["orderId"] for order in page.json()["orders"]] == [placed.order_id]


async def test_an_admin_made_with_grant_admin_lists_users_after_logging_in_again(gateway: GatewayClient) -> None:
    user = await gateway.sign_up("Future Admin")
    command = [sys.executable, "-m", "user_service", "grant-admin", user.email]
    granted = await asyncio.to_thread(subprocess.run, command, cwd=REPO_ROOT, capture_output=True, timeout=60)
    assert granted.returncode == 0, granted.stderr

    admin = await log_in_again(gateway, user)
    listed = await gateway.http.get("/user-service/users", headers=admin.auth)

    assert listed.status_code == 200
    assert user.email in [entry["email"] for entry in listed.json()]


async def test_the_admin_made_by_create_admin_logs_in_with_the_printed_password_and_lists_users(
    gateway: GatewayClient,
) -> None:
    email = f"first-admin-{uuid.uuid4().hex[:10]}@example.com"
    command = [sys.executable, "-m", "user_service", "create-admin", email]
    made = await asyncio.to_thread(subprocess.run, command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    [password] = [line.removeprefix("password: ") for line in made.stdout.splitlines() if line.startswith("password: ")]

    login = await gateway.http.post("/user-service/login", json={"email": email, "password": password})
    assert login.status_code == 200, login.text
    listed = await gateway.http.get("/user-service/users", headers={"Authorization": f"Bearer {login.json()['token']}"})

    assert listed.status_code == 200
    assert email in [entry["email"] for entry in listed.json()]


async def log_in_again(gateway: GatewayClient, user: User) -> User:
    response = await gateway.http.post("/user-service/login", json={"email": user.email, "password": user.password})
    response.raise_for_status()
    return User(user_id=user.user_id, email=user.email, token=response.headers["token"], password=user.password)


@pytest.fixture
def users_db(settings: ServiceSettings, stack_config: StackConfig) -> Iterator[DictConnection]:
    connection = database(settings, stack_config.get("USERS_DB", "userdb"))
    yield connection
    connection.close()


def failures_counted_for(users_db: DictConnection, address: str) -> int:
    with users_db.cursor() as cursor:
        cursor.execute("SELECT failures FROM login_throttle WHERE throttle_key = %s", (f"address:{address}",))
        row = cursor.fetchone()
    return int(row["failures"]) if row else 0


async def test_a_client_cannot_choose_the_address_its_failed_logins_count_against(
    gateway: GatewayClient, users_db: DictConnection
) -> None:
    user = await gateway.sign_up("Throttled")
    chosen = f"2001:db8::{uuid.uuid4().hex[:4]}:{uuid.uuid4().hex[:4]}"

    wrong = {"email": user.email, "password": "not-" + user.password}
    spoofs = (
        {"X-Forwarded-For": chosen},
        {"X-Forwarded-For": f"{chosen}, {chosen}"},
        {"Forwarded": f'for="[{chosen}]"'},
    )
    for forwarded in spoofs:
        answer = await gateway.http.post("/user-service/login", json=wrong, headers=forwarded)
        assert answer.status_code == 401, answer.text

    # user-service believes only the hop the gateway added (the client's own address), never the client's header.
    assert failures_counted_for(users_db, chosen) == 0

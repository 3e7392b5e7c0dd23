"""POST /users, GET /users, GET /users/{userId}: against the real MariaDB and a real discovery server."""

import uuid

import httpx
import pytest
from sqlalchemy import select

from servicekit.database import make_engine, make_sessions
from user_service.config import UserServiceSettings
from user_service.models import User

from .order_service_stand_in import ORDERS_TIMEOUT_SECONDS, Bearer, FakeOrderService

pytestmark = pytest.mark.stack


async def register(api: httpx.AsyncClient, body: dict[str, str]) -> dict[str, str]:
    response = await api.post("/users", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, str] = response.json()
    return created


async def test_register_answers_201_with_email_name_and_a_new_user_id(
    api: httpx.AsyncClient, new_user: dict[str, str]
) -> None:
    response = await api.post("/users", json=new_user)

    assert response.status_code == 201
    body = response.json()
    assert body == {"email": new_user["email"], "name": new_user["name"], "userId": body["userId"]}
    assert uuid.UUID(body["userId"])


async def test_register_with_a_taken_email_is_409(api: httpx.AsyncClient, new_user: dict[str, str]) -> None:
    await register(api, new_user)

    again = await api.post("/users", json={**new_user, "name": "Someone Else"})

    assert again.status_code == 409
    assert again.json()["fields"] == ["email"]


async def test_register_with_the_same_email_in_other_case_is_409(
    api: httpx.AsyncClient, new_user: dict[str, str]
) -> None:
    await register(api, new_user)

    again = await api.post("/users", json={**new_user, "email": new_user["email"].upper()})

    assert again.status_code == 409


@pytest.mark.parametrize(
    ("change", "bad_field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"pwd": "short"}, "pwd"),
        ({"pwd": "password123"}, "pwd"),
        ({"pwd": "12345678"}, "pwd"),
        ({"name": ""}, "name"),
        ({"name": 42}, "name"),
        ({"pwd": None}, "pwd"),
        ({"isAdmin": True}, "isAdmin"),
    ],
)
async def test_register_with_a_bad_field_is_422_naming_it(
    api: httpx.AsyncClient, new_user: dict[str, str], change: dict[str, object], bad_field: str
) -> None:
    response = await api.post("/users", json={**new_user, **change})

    assert response.status_code == 422
    assert bad_field in response.json()["fields"]


async def test_register_without_a_field_is_422_naming_it(api: httpx.AsyncClient, new_user: dict[str, str]) -> None:
    del new_user["email"]

    response = await api.post("/users", json=new_user)

    assert response.status_code == 422
    assert response.json()["fields"] == ["email"]


async def test_register_with_malformed_json_is_400(api: httpx.AsyncClient) -> None:
    response = await api.post("/users", content=b'{"email": ', headers={"Content-Type": "application/json"})

    assert response.status_code == 400
    assert "detail" in response.json()


async def test_register_stores_an_argon2_hash_not_the_password(
    api: httpx.AsyncClient, settings: UserServiceSettings, new_user: dict[str, str]
) -> None:
    created = await register(api, new_user)

    engine = make_engine(settings, settings.users_db, pool_size=1)
    try:
        async with make_sessions(engine)() as session:
            stored = await session.scalar(select(User.password_hash).where(User.user_id == created["userId"]))
    finally:
        await engine.dispose()
    assert stored is not None
    assert stored.startswith("$argon2id$")
    assert new_user["pwd"] not in stored


async def test_list_users_includes_a_registered_user(
    api: httpx.AsyncClient, new_user: dict[str, str], bearer: Bearer
) -> None:
    created = await register(api, new_user)

    response = await api.get("/users", headers=bearer("some-admin", admin=True))

    assert response.status_code == 200
    assert created in response.json()


async def test_unknown_user_is_404(api: httpx.AsyncClient, bearer: Bearer) -> None:
    user_id = str(uuid.uuid4())
    response = await api.get(f"/users/{user_id}", headers=bearer(user_id))

    assert response.status_code == 404
    assert "detail" in response.json()


async def test_user_comes_with_the_orders_order_service_has_for_them(
    api: httpx.AsyncClient, order_service: FakeOrderService, new_user: dict[str, str], bearer: Bearer
) -> None:
    created = await register(api, new_user)
    order = {
        "orderId": str(uuid.uuid4()),
        "userId": created["userId"],
        "productId": "CATALOG-001",
        "qty": 2,
        "unitPrice": 1500,
        "totalPrice": 3000,
        "status": "CONFIRMED",
        "createdAt": "2026-11-23T19:00:00.000Z",
    }
    order_service.orders[created["userId"]] = [order]
    own_token = bearer(created["userId"])

    response = await api.get(f"/users/{created['userId']}", headers=own_token)

    assert response.status_code == 200
    assert response.json() == {**created, "orders": [order], "ordersError": None, "ordersNext": None}
    assert order_service.authorizations == [own_token["Authorization"]]


async def test_user_without_any_order_service_instance_has_no_orders_and_an_orders_error(
    api: httpx.AsyncClient, new_user: dict[str, str], bearer: Bearer
) -> None:
    created = await register(api, new_user)

    response = await api.get(f"/users/{created['userId']}", headers=bearer(created["userId"]))

    assert response.status_code == 200
    body = response.json()
    assert body["userId"] == created["userId"]
    assert body["orders"] == []
    assert "order-service" in body["ordersError"]


async def test_user_with_a_slow_order_service_has_no_orders_and_an_orders_error(
    api: httpx.AsyncClient, order_service: FakeOrderService, new_user: dict[str, str], bearer: Bearer
) -> None:
    created = await register(api, new_user)
    order_service.delay_seconds = ORDERS_TIMEOUT_SECONDS + 1

    response = await api.get(f"/users/{created['userId']}", headers=bearer(created["userId"]))

    assert response.status_code == 200
    body = response.json()
    assert body["orders"] == []
    assert "timed out" in body["ordersError"]


async def test_health_check_names_the_instance(api: httpx.AsyncClient, settings: UserServiceSettings) -> None:
    response = await api.get("/health_check")

    assert response.status_code == 200
    assert response.json()["instanceId"] == settings.instance_id

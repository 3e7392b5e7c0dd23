"""order-service checks the caller's token itself: a request that skips the gateway gets nothing."""

import httpx
import pytest
from fastapi import FastAPI

from order_service.config import OrderSettings
from servicekit.testing import TopicReader, bearer
from servicekit.tokens import SigningKey

pytestmark = pytest.mark.stack


@pytest.fixture
async def anonymous(order_service: tuple[FastAPI, str]) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=order_service[1], timeout=30)


def signed(user_id: str, key: SigningKey | None = None) -> dict[str, str]:
    return {"Authorization": bearer(user_id, key=key)}


async def test_without_a_token_orders_are_neither_read_nor_placed(
    settings: OrderSettings, anonymous: httpx.AsyncClient, user_id: str
) -> None:
    async with anonymous, TopicReader(settings.kafka_access, "example-catalog-topic") as stock_requests:
        listed = await anonymous.get(f"/{user_id}/orders")
        placed = await anonymous.post(
            f"/{user_id}/orders", json={"productId": "CATALOG-001", "qty": 1, "unitPrice": 1500}
        )
        assert (listed.status_code, placed.status_code) == (401, 401)
        assert "token" in placed.json()["detail"]
        assert all(user_id.encode() not in (r.value or b"") for r in await stock_requests.read_to_end())


async def test_another_users_token_is_403_and_a_forged_one_401(
    settings: OrderSettings, anonymous: httpx.AsyncClient, user_id: str
) -> None:
    async with anonymous:
        foreign = await anonymous.get(f"/{user_id}/orders", headers=signed("someone-else"))
        forged = await anonymous.get(f"/{user_id}/orders", headers=signed(user_id, SigningKey.generate("test-kit")))
        own = await anonymous.get(f"/{user_id}/orders", headers=signed(user_id))
    assert (foreign.status_code, forged.status_code, own.status_code) == (403, 401, 200)


async def test_two_authorization_headers_are_refused(
    settings: OrderSettings, anonymous: httpx.AsyncClient, user_id: str
) -> None:
    headers = [
        ("Authorization", signed("someone-else")["Authorization"]),
        ("Authorization", signed(user_id)["Authorization"]),
    ]
    async with anonymous:
        response = await anonymous.get(f"/{user_id}/orders", headers=headers)
    assert response.status_code == 400
    assert "Authorization" in response.json()["detail"]

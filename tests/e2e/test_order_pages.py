"""A user's orders come in pages, newest first, through the gateway: order-service's `limit` and cursor, and
user-service's user view (the latest page and the path of the next one)."""

import asyncio
from typing import Any

import pytest

from servicekit.testing import DictConnection, eventually
from stack_support.api_client import GatewayClient, User
from tests.e2e.orders_table import settled

pytestmark = pytest.mark.stack


async def place(gateway: GatewayClient, user: User, product: str, count: int) -> list[str]:
    placed = await asyncio.gather(*(gateway.place_order(user, product, 1) for _ in range(count)))
    return [order.order_id for order in placed]


async def page(gateway: GatewayClient, user: User, query: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    response = await gateway.http.get(f"/order-service/{user.user_id}/orders", params=query, headers=user.auth)
    assert response.status_code == 200, response.text
    return response.json(), response.headers.get("X-Next-Cursor")


def newest_first(orders: list[dict[str, Any]]) -> bool:
    stamps = [order["createdAt"] for order in orders]
    return stamps == sorted(stamps, reverse=True)


async def test_pages_follow_each_other_newest_first_until_the_last(
    gateway: GatewayClient, orders_db: DictConnection, fresh_products: dict[str, int]
) -> None:
    user = await gateway.sign_up("Pager")
    order_ids = await place(gateway, user, next(iter(fresh_products)), 7)
    await eventually(lambda: settled(orders_db, order_ids), within=60, what="every order settled in mydb.orders")

    seen: list[dict[str, Any]] = []
    query: dict[str, Any] = {"limit": 3}
    sizes = []
    for _ in range(5):
        orders, cursor = await page(gateway, user, query)
        sizes.append(len(orders))
        seen += orders
        if cursor is None:
            break
        query = {"limit": 3, "cursor": cursor}

    assert sizes == [3, 3, 1]
    assert sorted(order["orderId"] for order in seen) == sorted(order_ids)
    assert newest_first(seen)
    everything, cursor = await page(gateway, user, {})
    assert ([o["orderId"] for o in everything], cursor) == ([o["orderId"] for o in seen], None)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"cursor": "bm90LWEtY3Vyc29y"}, "cursor"),
    ],
)
async def test_a_bad_limit_or_cursor_is_422_naming_it(
    gateway: GatewayClient, query: dict[str, Any], field: str
) -> None:
    user = await gateway.sign_up("Bad Pager")

    response = await gateway.http.get(f"/order-service/{user.user_id}/orders", params=query, headers=user.auth)

    assert response.status_code == 422
    assert field in response.json()["fields"]


async def test_the_user_view_shows_the_latest_page_and_the_path_of_the_next(
    gateway: GatewayClient, orders_db: DictConnection, fresh_products: dict[str, int]
) -> None:
    user = await gateway.sign_up("Many Orders")
    order_ids = await place(gateway, user, next(iter(fresh_products)), 52)
    await eventually(lambda: settled(orders_db, order_ids), within=90, what="every order settled in mydb.orders")

    view = (await gateway.http.get(f"/user-service/users/{user.user_id}", headers=user.auth)).json()

    assert len(view["orders"]) == 50
    assert newest_first(view["orders"])
    rest = await gateway.http.get(view["ordersNext"], headers=user.auth)
    assert rest.status_code == 200
    assert "X-Next-Cursor" not in rest.headers
    listed = [o["orderId"] for o in view["orders"]] + [o["orderId"] for o in rest.json()]
    assert sorted(listed) == sorted(order_ids)

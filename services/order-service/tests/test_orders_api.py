"""POST and GET /{userId}/orders on one order-service instance with the real Kafka and the shared mydb."""

import asyncio
import functools
from collections.abc import Awaitable, Callable

import httpx
import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from order_contract.connect_record import order_from_record_value
from order_contract.order import OrderStatus
from order_contract.stock_request import order_from_stock_request
from order_contract.topics import ORDERS_TOPIC, STOCK_TOPIC
from order_service.config import OrderSettings
from order_service.messaging import OrderPublisher
from order_service.models import OrderRow
from servicekit.testing import Record, TopicReader, eventually

pytestmark = pytest.mark.stack

NewProduct = Callable[..., Awaitable[str]]
OrderService = tuple[FastAPI, str]


def order_ids_in(records: list[Record], user_id: str) -> list[str]:
    """Order ids of `user_id` in records of either topic."""
    found = []
    for record in records:
        body = orjson.loads(record.value or b"{}")
        payload = body.get("payload", body)
        if user_id in (payload.get("user_id"), payload.get("userId")):
            found.append(payload.get("order_id") or payload.get("orderId"))
    return found


async def test_an_order_is_answered_201_pending_after_both_messages_are_committed(
    settings: OrderSettings, client: httpx.AsyncClient, new_product: NewProduct, user_id: str
) -> None:
    product_id = await new_product(unit_price=150)
    async with (
        TopicReader(settings.kafka_access, ORDERS_TOPIC) as orders,
        TopicReader(settings.kafka_access, STOCK_TOPIC) as stock_requests,
    ):
        # No unitPrice: the catalog's price is the order's.
        response = await client.post(f"/{user_id}/orders", json={"productId": product_id, "qty": 3})

        assert response.status_code == 201
        body = response.json()
        assert body | {"orderId": "-", "createdAt": "-"} == {
            "orderId": "-",
            "userId": user_id,
            "productId": product_id,
            "qty": 3,
            "unitPrice": 150,
            "totalPrice": 450,
            "status": "PENDING",
            "createdAt": "-",
        }
        # Answered after the commit: both records are already visible to read_committed readers.
        order_records = [r for r in await orders.read_to_end() if r.key == body["orderId"].encode()]
        stock_records = [r for r in await stock_requests.read_to_end() if body["orderId"] in order_ids_in([r], user_id)]

    assert len(order_records) == len(stock_records) == 1
    envelope = orjson.loads(order_records[0].value or b"")
    assert envelope["schema"]["name"] == "orders"
    published = order_from_record_value(order_records[0].value)
    assert (published.status, published.total_price) == (OrderStatus.PENDING, 450)
    assert stock_records[0].key == product_id.encode()
    assert order_from_stock_request(stock_records[0].value).created_at == published.created_at


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b'{"productId": "P", "qty": 0, "unitPrice": 100}', 422, "qty"),
        (b'{"productId": "P", "qty": -2, "unitPrice": 100}', 422, "qty"),
        (b'{"productId": "P", "qty": 1000000000, "unitPrice": 100}', 422, "qty"),
        (b'{"productId": "P", "qty": "3", "unitPrice": 100}', 422, "qty"),
        (b'{"productId": "P", "qty": 1, "unitPrice": 0}', 422, "unitPrice"),
        (b'{"productId": "P", "qty": 1, "unitPrice": 1.5}', 422, "unitPrice"),
        (b'{"qty": 1, "unitPrice": 100}', 422, "productId"),
        (b'{"productId": "P", "qty": 1, "unitPrice": 100, "discount": 5}', 422, "discount"),
        (b'{"productId": "P", "qty": 1, "unitPrice": 100', 400, "body"),
        (b"[1, 2]", 422, "body"),
    ],
)
async def test_an_invalid_order_is_4xx_naming_the_field_and_publishes_nothing(
    settings: OrderSettings, client: httpx.AsyncClient, user_id: str, body: bytes, status: int, field: str
) -> None:
    async with TopicReader(settings.kafka_access, ORDERS_TOPIC) as orders:
        response = await client.post(f"/{user_id}/orders", content=body, headers={"content-type": "application/json"})

        assert response.status_code == status
        assert field in response.json()["fields"]
        assert field in response.json()["detail"] or status == 400
        assert order_ids_in(await orders.read_to_end(), user_id) == []


async def test_an_unknown_product_is_422_naming_product_id_and_publishes_nothing(
    settings: OrderSettings, client: httpx.AsyncClient, user_id: str
) -> None:
    async with TopicReader(settings.kafka_access, STOCK_TOPIC) as stock_requests:
        response = await client.post(
            f"/{user_id}/orders", json={"productId": "TEST-NO-SUCH-PRODUCT", "qty": 1, "unitPrice": 100}
        )

        assert response.status_code == 422
        assert response.json()["fields"] == ["productId"]
        assert order_ids_in(await stock_requests.read_to_end(), user_id) == []


async def test_a_unit_price_other_than_the_catalogs_is_409_naming_the_current_price_and_publishes_nothing(
    settings: OrderSettings, client: httpx.AsyncClient, new_product: NewProduct, user_id: str
) -> None:
    product_id = await new_product(unit_price=1500)
    async with TopicReader(settings.kafka_access, STOCK_TOPIC) as stock_requests:
        response = await client.post(f"/{user_id}/orders", json={"productId": product_id, "qty": 1, "unitPrice": 1})

        assert response.status_code == 409
        assert response.json()["unitPrice"] == 1500
        assert response.json()["fields"] == ["unitPrice"]
        assert order_ids_in(await stock_requests.read_to_end(), user_id) == []


async def test_the_catalogs_unit_price_stated_by_the_client_is_accepted(
    client: httpx.AsyncClient, new_product: NewProduct, user_id: str
) -> None:
    product_id = await new_product(unit_price=1500)

    response = await client.post(f"/{user_id}/orders", json={"productId": product_id, "qty": 2, "unitPrice": 1500})

    assert response.status_code == 201
    assert (response.json()["unitPrice"], response.json()["totalPrice"]) == (1500, 3000)


async def test_an_oversized_body_is_413(client: httpx.AsyncClient, user_id: str) -> None:
    body = b'{"productId": "P", "qty": 1, "unitPrice": 100, "note": "' + b"x" * 100_000 + b'"}'

    response = await client.post(f"/{user_id}/orders", content=body, headers={"content-type": "application/json"})

    assert response.status_code == 413


async def test_every_answer_carries_the_instance_id(
    settings: OrderSettings, client: httpx.AsyncClient, user_id: str
) -> None:
    answers = [
        await client.get("/health_check"),
        await client.get(f"/{user_id}/orders"),
        await client.post(f"/{user_id}/orders", content=b"{"),
        await client.get("/no/such/path"),
    ]

    assert [a.headers.get("x-instance-id") for a in answers] == [settings.instance_id] * 4
    assert answers[0].json()["instanceId"] == settings.instance_id


async def test_the_idempotency_key_retried_five_times_gives_one_order_and_one_row(
    settings: OrderSettings,
    client: httpx.AsyncClient,
    orders_db: async_sessionmaker[AsyncSession],
    new_product: NewProduct,
    user_id: str,
) -> None:
    product_id = await new_product()
    request = {"productId": product_id, "qty": 2, "unitPrice": 100}
    async with TopicReader(settings.kafka_access, STOCK_TOPIC) as stock_requests:
        answers = [
            await client.post(f"/{user_id}/orders", json=request, headers={"Idempotency-Key": "checkout-42"})
            for _ in range(5)
        ]
        published = order_ids_in(await stock_requests.read_to_end(), user_id)

    assert {a.status_code for a in answers} == {201}
    assert len({(a.json()["orderId"], a.json()["createdAt"]) for a in answers}) == 1
    assert len(published) == 1  # one stock request: one decrement downstream

    order_id = answers[0].json()["orderId"]

    async def rows() -> int | None:
        async with orders_db() as session:
            count = await session.scalar(select(func.count()).where(OrderRow.order_id == order_id))
            return count or None

    assert await eventually(rows, within=30, what="the sink to write the order to mydb.orders") == 1


async def test_a_retry_reaching_another_instance_answers_the_stored_order_without_publishing(
    settings: OrderSettings,
    client: httpx.AsyncClient,
    order_service: OrderService,
    new_product: NewProduct,
    user_id: str,
) -> None:
    product_id = await new_product()
    request = {"productId": product_id, "qty": 1, "unitPrice": 100}
    first = await client.post(f"/{user_id}/orders", json=request, headers={"Idempotency-Key": "k-1"})
    await eventually(
        lambda: _listed(client, user_id, first.json()["orderId"]), within=30, what="the order in mydb.orders"
    )
    app = order_service[0]
    app.state.intake._recent.clear()  # as if this were another instance, which never saw the first answer

    async with TopicReader(settings.kafka_access, STOCK_TOPIC) as stock_requests:
        retry = await client.post(f"/{user_id}/orders", json=request, headers={"Idempotency-Key": "k-1"})
        assert order_ids_in(await stock_requests.read_to_end(), user_id) == []

    assert retry.status_code == 201
    assert (retry.json()["orderId"], retry.json()["createdAt"]) == (first.json()["orderId"], first.json()["createdAt"])


async def test_the_same_idempotency_key_for_a_different_order_is_422_naming_the_key(
    client: httpx.AsyncClient, new_product: NewProduct, user_id: str
) -> None:
    product_id = await new_product()
    headers = {"Idempotency-Key": "k-2"}
    await client.post(f"/{user_id}/orders", json={"productId": product_id, "qty": 1, "unitPrice": 100}, headers=headers)

    other = await client.post(
        f"/{user_id}/orders", json={"productId": product_id, "qty": 9, "unitPrice": 100}, headers=headers
    )

    assert other.status_code == 422
    assert other.json()["fields"] == ["Idempotency-Key"]


async def _listed(client: httpx.AsyncClient, user_id: str, order_id: str) -> dict[str, object] | None:
    response = await client.get(f"/{user_id}/orders")
    return next((o for o in response.json() if o["orderId"] == order_id), None)


async def test_orders_are_listed_from_the_shared_table_with_their_current_status(
    client: httpx.AsyncClient, new_product: NewProduct, user_id: str
) -> None:
    product_id = await new_product(stock=50)
    placed = [
        (await client.post(f"/{user_id}/orders", json={"productId": product_id, "qty": q})).json() for q in (1, 2)
    ]

    for order in placed:
        listed = await eventually(
            functools.partial(_listed, client, user_id, order["orderId"]), within=30, what="the sink to write the order"
        )
        assert {k: listed[k] for k in ("productId", "qty", "totalPrice", "createdAt")} == {
            k: order[k] for k in ("productId", "qty", "totalPrice", "createdAt")
        }
        assert listed["status"] in {"PENDING", "CONFIRMED"}


async def test_concurrent_orders_share_transactions(
    order_service: OrderService, client: httpx.AsyncClient, new_product: NewProduct, user_id: str
) -> None:
    publisher = order_service[0].state.sink
    assert isinstance(publisher, OrderPublisher)
    product_id = await new_product()
    transactions_before = publisher.committed_transactions

    answers = await asyncio.gather(
        *(
            client.post(f"/{user_id}/orders", json={"productId": product_id, "qty": 1, "unitPrice": 100})
            for _ in range(100)
        )
    )

    assert [a.status_code for a in answers] == [201] * 100
    assert publisher.committed_transactions - transactions_before < 100

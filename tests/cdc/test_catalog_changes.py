"""Changes to catalogdb.catalogs, by plain SQL or by an admin through the gateway, reach every order-service
instance through the binlog, the catalog-source connector and catalog-changes, and price the next order."""

import asyncio
import time

import pytest

from launcher import services
from launcher.processes import Component, stop
from order_contract.topics import ORDERS_TOPIC
from servicekit.testing import DictConnection, TopicReader, eventually
from servicekit.tokens import ADMIN_ROLE, SigningKey, issue_token
from stack_description.settings import StackConfig
from stack_support.api_client import GatewayClient
from tests.cdc.catalog_stack import (
    CHANGE_DEADLINE_SECONDS,
    TestProducts,
    order_on_every_instance,
    priced_on_every_instance,
    settled_rows,
    user_with_token,
)

pytestmark = pytest.mark.stack


async def test_a_price_updated_by_sql_prices_the_next_order_on_every_instance_within_3_s(
    stack_config: StackConfig, products: TestProducts, gateway: GatewayClient, signing_key: SigningKey
) -> None:
    product = products.add(unit_price=700)
    await priced_on_every_instance(stack_config, {product: 700}, within=30, what="the new product")

    products.set_price(product, 950)
    committed = time.monotonic()
    await priced_on_every_instance(
        stack_config, {product: 950}, within=CHANGE_DEADLINE_SECONDS, what=f"{product} at its new price 950"
    )
    lag = time.monotonic() - committed

    user = user_with_token(signing_key)
    answers = await order_on_every_instance(stack_config, user, {"productId": product, "qty": 3})
    through_gateway = await gateway.http.post(
        f"/order-service/{user.user_id}/orders", json={"productId": product, "qty": 2}, headers=user.auth
    )
    for instance, answer in [*answers.items(), ("gateway", through_gateway)]:
        assert answer.status_code == 201, f"{instance}: {answer.text}"
    assert {i: (a.json()["unitPrice"], a.json()["totalPrice"]) for i, a in answers.items()} == {
        i: (950, 2850) for i in answers
    }, f"priced {lag:.2f} s after the commit"
    assert (through_gateway.json()["unitPrice"], through_gateway.json()["totalPrice"]) == (950, 1900)


async def test_an_order_stating_the_old_price_gets_409_naming_the_current_one_and_publishes_nothing(
    stack_config: StackConfig,
    products: TestProducts,
    gateway: GatewayClient,
    orders_db: DictConnection,
    signing_key: SigningKey,
) -> None:
    product = products.add(unit_price=400)
    await priced_on_every_instance(stack_config, {product: 400}, within=30, what="the new product")
    products.set_price(product, 480)
    await priced_on_every_instance(
        stack_config, {product: 480}, within=CHANGE_DEADLINE_SECONDS, what=f"{product} at its new price 480"
    )
    user = user_with_token(signing_key, "stale-price")
    stale = {"productId": product, "qty": 1, "unitPrice": 400}

    async with TopicReader(stack_config.kafka_access, ORDERS_TOPIC) as orders_topic:
        answers = await order_on_every_instance(stack_config, user, stale)
        through_gateway = await gateway.http.post(
            f"/order-service/{user.user_id}/orders", json=stale, headers=user.auth
        )
        for instance, answer in [*answers.items(), ("gateway", through_gateway)]:
            assert answer.status_code == 409, f"{instance}: {answer.status_code} {answer.text}"
            body = answer.json()
            assert set(body) == {"detail", "fields", "unitPrice"}, body
            assert (body["fields"], body["unitPrice"]) == (["unitPrice"], 480), body
            assert "480" in body["detail"], body

        # Then an order at the current price from the same user: once it is on the topic and in the table,
        # anything published before it would be too.
        good = await gateway.http.post(
            f"/order-service/{user.user_id}/orders",
            json={**stale, "unitPrice": 480},
            headers=user.auth,
        )
        assert good.status_code == 201, good.text
        good_id = good.json()["orderId"]
        await orders_topic.read_until(
            lambda records: any(r.key == good_id.encode() for r in records), within=30, what="the good order"
        )
        published = await orders_topic.read_to_end()
    # The good order's own records only (PENDING, then catalog-service's CONFIRMED): no 409 was published.
    assert {r.key for r in published if user.user_id.encode() in (r.value or b"")} == {good_id.encode()}
    rows = await eventually(
        lambda: settled_rows(orders_db, user.user_id, {good_id}), within=60, what="the good order settles"
    )
    assert list(rows) == [good_id], "the 409s left no row"
    assert (rows[good_id]["unit_price"], rows[good_id]["total_price"]) == (480, 480)


async def test_a_product_inserted_by_sql_is_orderable_everywhere_within_3_s_and_once_deleted_is_unknown(
    stack_config: StackConfig, products: TestProducts, gateway: GatewayClient, signing_key: SigningKey
) -> None:
    user = user_with_token(signing_key)

    product = products.add(unit_price=1234)
    await priced_on_every_instance(
        stack_config, {product: 1234}, within=CHANGE_DEADLINE_SECONDS, what=f"the inserted {product}"
    )
    answers = await order_on_every_instance(stack_config, user, {"productId": product, "qty": 1})
    assert {i: (a.status_code, a.json().get("unitPrice")) for i, a in answers.items()} == {
        i: (201, 1234) for i in answers
    }

    products.remove(product)
    await priced_on_every_instance(
        stack_config, {product: None}, within=CHANGE_DEADLINE_SECONDS, what=f"no longer the deleted {product}"
    )
    answers = await order_on_every_instance(stack_config, user, {"productId": product, "qty": 1})
    through_gateway = await gateway.http.post(
        f"/order-service/{user.user_id}/orders", json={"productId": product, "qty": 1}, headers=user.auth
    )
    for instance, answer in [*answers.items(), ("gateway", through_gateway)]:
        assert answer.status_code == 422, f"{instance}: {answer.status_code} {answer.text}"
        assert answer.json()["fields"] == ["productId"]
        assert "unknown product" in answer.json()["detail"]


async def test_with_catalog_service_stopped_orders_are_still_accepted_and_confirmed_once_it_is_back(
    stack_config: StackConfig,
    products: TestProducts,
    gateway: GatewayClient,
    orders_db: DictConnection,
    signing_key: SigningKey,
) -> None:
    product = products.add(unit_price=310, stock=100)
    await priced_on_every_instance(stack_config, {product: 310}, within=30, what="the new product")
    user = user_with_token(signing_key, "while-catalog-away")
    catalog = Component("catalog-service-1")
    try:
        await asyncio.to_thread(stop, catalog)
        assert not catalog.running()
        answers = await order_on_every_instance(stack_config, user, {"productId": product, "qty": 2})
        through_gateway = await gateway.http.post(
            f"/order-service/{user.user_id}/orders", json={"productId": product, "qty": 1}, headers=user.auth
        )
        accepted = [*answers.values(), through_gateway]
        assert [a.status_code for a in accepted] == [201] * len(accepted), [a.text for a in accepted]
        assert {a.json()["status"] for a in accepted} == {"PENDING"}
        assert not catalog.running(), "catalog-service stayed away while the orders were taken"
    finally:
        await asyncio.to_thread(services.restart_service, stack_config, catalog.name)

    order_ids = {a.json()["orderId"] for a in accepted}
    rows = await eventually(
        lambda: settled_rows(orders_db, user.user_id, order_ids), within=60, what="the orders settle"
    )
    assert {order_id: rows[order_id]["status"] for order_id in order_ids} == dict.fromkeys(order_ids, "CONFIRMED")
    assert len(rows) == len(order_ids)


async def test_writes_through_the_gateway_need_the_admin_role_and_an_admins_change_reaches_every_instance(
    stack_config: StackConfig, products: TestProducts, gateway: GatewayClient, signing_key: SigningKey
) -> None:
    product = products.new_id()  # created below through the gateway; deleted afterwards like the others
    new = {"productId": product, "productName": "Gateway Test", "unitPrice": 640, "stock": 50}
    admin = {"Authorization": f"Bearer {issue_token('cdc-admin', signing_key, 600, (ADMIN_ROLE,))}"}
    plain = user_with_token(signing_key).auth

    refused = [
        await gateway.http.post("/catalog-service/catalogs", json=new),
        await gateway.http.post("/catalog-service/catalogs", json=new, headers=plain),
    ]
    assert [r.status_code for r in refused] == [401, 403], [r.text for r in refused]
    assert (await gateway.http.get(f"/catalog-service/catalogs/{product}")).status_code == 404

    created = await gateway.http.post("/catalog-service/catalogs", json=new, headers=admin)
    assert created.status_code == 201, created.text
    await priced_on_every_instance(stack_config, {product: 640}, within=CHANGE_DEADLINE_SECONDS, what="the product")

    path = f"/catalog-service/catalogs/{product}"
    refused = [
        await gateway.http.put(path, json={"unitPrice": 1}),
        await gateway.http.put(path, json={"unitPrice": 1}, headers=plain),
    ]
    assert [r.status_code for r in refused] == [401, 403], [r.text for r in refused]
    assert (await gateway.http.get(path)).json()["unitPrice"] == 640, "a refused change changes nothing"
    changed = await gateway.http.put(path, json={"unitPrice": 720}, headers=admin)
    assert changed.status_code == 200, changed.text
    assert (changed.json()["unitPrice"], changed.json()["stock"]) == (720, 50)

    await priced_on_every_instance(
        stack_config, {product: 720}, within=CHANGE_DEADLINE_SECONDS, what="the admin's new price"
    )
    assert (await gateway.http.get(path)).json()["unitPrice"] == 720

"""A record on catalog-changes that is not a catalog row (whoever wrote it): every order-service instance skips it,
logs it, counts it, and keeps pricing the product at its last good value."""

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from launcher.processes import Component
from order_contract.topics import CATALOG_CHANGES_TOPIC
from servicekit.testing import eventually
from servicekit.tokens import SigningKey
from stack_description.settings import StackConfig
from tests.cdc.catalog_stack import (
    CHANGE_DEADLINE_SECONDS,
    TestProducts,
    order_instances,
    order_on_every_instance,
    priced_on_every_instance,
    read_models,
    user_with_token,
)

pytestmark = pytest.mark.stack

SKIPPED_LOG_LINE = "skipped a record on catalog-changes that is not a catalog row"


def junk_for(product_id: str, other_id: str) -> dict[str, bytes]:
    """Values for `product_id`'s key that are not its row, by kind (one names `other_id`'s row instead)."""
    envelope = {"schema": {"type": "struct", "fields": [], "optional": False, "name": "junk"}}
    row = {"product_id": product_id, "product_name": "Junk", "created_at": 0}
    return {
        "not-json": b"certainly not JSON",
        "bare-row": orjson.dumps({**row, "unit_price": 1}),
        "string-price": orjson.dumps({**envelope, "payload": {**row, "unit_price": "1"}}),
        "bool-price": orjson.dumps({**envelope, "payload": {**row, "unit_price": True}}),
        "zero-price": orjson.dumps({**envelope, "payload": {**row, "unit_price": 0}}),
        "other-product": orjson.dumps({**envelope, "payload": {**row, "product_id": other_id, "unit_price": 1}}),
    }


@pytest.fixture
async def admin_producer(stack_config: StackConfig) -> AsyncIterator[AIOKafkaProducer]:
    """The Kafka admin, who may write anything anywhere (nobody else may write catalog-changes but Connect)."""
    producer = AIOKafkaProducer(**stack_config.kafka_access.client_options(), acks="all")
    await producer.start()
    yield producer
    await producer.stop()


def skipped_counts(config: StackConfig) -> dict[str, int]:
    return {instance_id: int(model["skipped"]) for instance_id, model in read_models(config).items()}


def log_ends(instance_ids: list[str]) -> dict[str, int]:
    """Where each instance's log file (the native stack's) ends now."""
    return {instance_id: Component(instance_id).log_file.stat().st_size for instance_id in instance_ids}


def logged_skips(instance_id: str, since: int, offsets: set[int]) -> set[int]:
    """Which of `offsets` the instance's log names in a skipped-record line written after byte `since`."""
    found = set()
    with Component(instance_id).log_file.open("rb") as log:
        log.seek(since)
        lines = log.read().decode(errors="replace").splitlines()
    for line in lines:
        if SKIPPED_LOG_LINE not in line:
            continue
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if entry.get("offset") in offsets:
            found.add(entry["offset"])
    return found


async def test_a_record_that_is_not_a_catalog_row_is_skipped_logged_and_counted_and_the_last_good_price_stays(
    stack_config: StackConfig, products: TestProducts, admin_producer: AIOKafkaProducer, signing_key: SigningKey
) -> None:
    product, other = products.add(unit_price=555), products.add(unit_price=444)
    await priced_on_every_instance(stack_config, {product: 555, other: 444}, within=30, what="the new products")
    counted_before = await asyncio.to_thread(skipped_counts, stack_config)
    assert len(counted_before) >= order_instances(stack_config)

    junk = junk_for(product, other)
    logs_from = log_ends(list(counted_before))
    offsets = set()
    try:
        for value in junk.values():
            sent = await admin_producer.send_and_wait(CATALOG_CHANGES_TOPIC, value, key=product.encode())
            offsets.add(sent.offset)

        async def every_instance_skipped_them() -> dict[str, int] | None:
            counted = await asyncio.to_thread(skipped_counts, stack_config)
            grown = {i: counted.get(i, 0) - before for i, before in counted_before.items()}
            return counted if all(n >= len(junk) for n in grown.values()) else None

        await eventually(every_instance_skipped_them, within=10, what=f"every instance skipped {len(junk)} records")
        await priced_on_every_instance(
            stack_config, {product: 555, other: 444}, within=1, what="the last good prices still"
        )
        for instance_id, model in (await asyncio.to_thread(read_models, stack_config)).items():
            applied_offsets = {change["offset"] for change in model["recent"]}
            assert not applied_offsets & offsets, f"{instance_id} applied a junk record"
        await eventually(
            lambda: {i: logged_skips(i, logs_from[i], offsets) for i in logs_from} == dict.fromkeys(logs_from, offsets),
            within=5,
            what=f"every instance logs each skipped record with its offset {sorted(offsets)}",
        )

        user = user_with_token(signing_key)
        answers = await order_on_every_instance(stack_config, user, {"productId": product, "qty": 1})
        assert {i: (a.status_code, a.json().get("unitPrice")) for i, a in answers.items()} == {
            i: (201, 555) for i in answers
        }

        # Junk behind it does not stop the instances from following the topic.
        products.set_price(product, 565)
        await priced_on_every_instance(
            stack_config, {product: 565}, within=CHANGE_DEADLINE_SECONDS, what="the next good change"
        )
    finally:
        # A later reader must not find junk as this key's last value: a tombstone ends it.
        products.remove(product)
        await admin_producer.send_and_wait(CATALOG_CHANGES_TOPIC, None, key=product.encode())

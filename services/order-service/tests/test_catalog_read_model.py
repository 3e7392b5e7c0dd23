"""CatalogReadModel.apply: records of catalog-changes (built by hand, as aiokafka hands them over) change the
products an instance prices orders from; a record that is not a catalog row changes nothing but the count."""

import logging
import time
from typing import Any

import orjson
import pytest
from aiokafka import ConsumerRecord

from order_contract.catalog_change import CATALOG_VALUE_SCHEMA as SCHEMA
from order_contract.catalog_change import CatalogProduct
from order_contract.topics import CATALOG_CHANGES_TOPIC
from order_service.catalog import CatalogReadModel
from servicekit.kafka import KafkaAccess
from servicekit.testing import Record

pytestmark = pytest.mark.unit


class Topic:
    """Hands out records with consecutive offsets on partition 0, like one partition of catalog-changes."""

    def __init__(self) -> None:
        self.offset = 0

    def record(self, key: bytes | None, value: bytes | None) -> Record:
        made: Record = ConsumerRecord(
            topic=CATALOG_CHANGES_TOPIC,
            partition=0,
            offset=self.offset,
            timestamp=int(time.time() * 1000),
            timestamp_type=0,
            key=key,
            value=value,
            checksum=None,
            serialized_key_size=len(key) if key is not None else -1,
            serialized_value_size=len(value) if value is not None else -1,
            headers=[],
        )
        self.offset += 1
        return made

    def row(self, product_id: str, unit_price: int, name: str = "Berlin") -> Record:
        payload = {"product_id": product_id, "product_name": name, "unit_price": unit_price, "created_at": 0}
        return self.record(product_id.encode(), orjson.dumps({"schema": SCHEMA, "payload": payload}))

    def tombstone(self, product_id: str) -> Record:
        return self.record(product_id.encode(), None)


@pytest.fixture
def model() -> CatalogReadModel:
    return CatalogReadModel(KafkaAccess("127.0.0.1:1"))  # never started: nothing connects


@pytest.fixture
def topic() -> Topic:
    return Topic()


def follow(model: CatalogReadModel, *records: Record) -> None:
    """Apply as the model does once caught up: into the table it serves (get(), view())."""
    model.apply(records, model._products)


def test_a_row_adds_the_product_and_a_later_row_changes_its_price(model: CatalogReadModel, topic: Topic) -> None:
    products: dict[str, CatalogProduct] = {}

    model.apply([topic.row("CATALOG-001", 1500)], products)
    assert products == {"CATALOG-001": CatalogProduct("CATALOG-001", "Berlin", 1500)}

    model.apply([topic.row("CATALOG-001", 1750, name="Berlin Mitte")], products)
    assert products == {"CATALOG-001": CatalogProduct("CATALOG-001", "Berlin Mitte", 1750)}


def test_records_of_one_batch_apply_in_offset_order_so_the_last_price_wins(
    model: CatalogReadModel, topic: Topic
) -> None:
    products: dict[str, CatalogProduct] = {}

    model.apply([topic.row("P-1", price) for price in (100, 300, 200)], products)

    assert products["P-1"].unit_price == 200


def test_a_tombstone_removes_the_product_and_leaves_the_others(model: CatalogReadModel, topic: Topic) -> None:
    products: dict[str, CatalogProduct] = {}
    model.apply([topic.row("P-1", 100), topic.row("P-2", 200)], products)

    model.apply([topic.tombstone("P-1")], products)

    assert products == {"P-2": CatalogProduct("P-2", "Berlin", 200)}


def test_a_tombstone_of_a_product_never_seen_changes_nothing(model: CatalogReadModel, topic: Topic) -> None:
    products: dict[str, CatalogProduct] = {"P-2": CatalogProduct("P-2", "Berlin", 200)}

    model.apply([topic.tombstone("P-1")], products)

    assert products == {"P-2": CatalogProduct("P-2", "Berlin", 200)}
    assert (model.applied, model.skipped) == (1, 0)


BAD_VALUES = {
    "not-json": b"certainly not JSON",
    "no-envelope": orjson.dumps({"product_id": "P-1", "product_name": "Junk", "unit_price": 1}),
    "string-price": orjson.dumps(
        {"schema": SCHEMA, "payload": {"product_id": "P-1", "product_name": "Junk", "unit_price": "1"}}
    ),
    "bool-price": orjson.dumps(
        {"schema": SCHEMA, "payload": {"product_id": "P-1", "product_name": "Junk", "unit_price": True}}
    ),
    "zero-price": orjson.dumps(
        {"schema": SCHEMA, "payload": {"product_id": "P-1", "product_name": "Junk", "unit_price": 0}}
    ),
    "other-product": orjson.dumps(
        {"schema": SCHEMA, "payload": {"product_id": "P-2", "product_name": "Junk", "unit_price": 1}}
    ),
}


@pytest.mark.parametrize("value", list(BAD_VALUES.values()), ids=list(BAD_VALUES))
def test_a_bad_record_is_skipped_and_the_product_keeps_its_last_good_value(
    model: CatalogReadModel, topic: Topic, value: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    products: dict[str, CatalogProduct] = {}
    model.apply([topic.row("P-1", 100)], products)

    with caplog.at_level(logging.WARNING, logger="order_service.catalog"):
        model.apply([topic.record(b"P-1", value)], products)

    assert products == {"P-1": CatalogProduct("P-1", "Berlin", 100)}
    assert (model.applied, model.skipped) == (1, 1)
    [logged] = [r for r in caplog.records if "not a catalog row" in r.getMessage()]
    assert (getattr(logged, "partition", None), getattr(logged, "offset", None)) == (0, 1), "names where it lies"


def test_a_bad_record_in_the_middle_of_a_batch_does_not_stop_the_records_after_it(
    model: CatalogReadModel, topic: Topic
) -> None:
    products: dict[str, CatalogProduct] = {}

    model.apply(
        [topic.row("P-1", 100), topic.record(None, b"{}"), topic.record(b"P-1", b"junk"), topic.row("P-2", 200)],
        products,
    )

    assert {p: product.unit_price for p, product in products.items()} == {"P-1": 100, "P-2": 200}
    assert (model.applied, model.skipped) == (2, 2)


def test_counts_add_up_over_batches_rows_tombstones_and_skips(model: CatalogReadModel, topic: Topic) -> None:
    products: dict[str, CatalogProduct] = {}

    model.apply([topic.row("P-1", 100), topic.row("P-2", 200)], products)
    model.apply([topic.record(b"P-1", b"junk"), topic.tombstone("P-2")], products)
    model.apply([topic.row("P-1", 150), topic.record(b"", None)], products)

    assert (model.applied, model.skipped) == (4, 2)


def test_the_view_before_catching_up_is_empty_and_says_so(model: CatalogReadModel) -> None:
    assert model.view() == {"caughtUp": False, "applied": 0, "skipped": 0, "products": [], "recent": []}


def test_the_view_lists_products_by_id_and_the_changes_applied_with_their_offsets_and_times(
    model: CatalogReadModel, topic: Topic
) -> None:
    before_ms = int(time.time() * 1000)
    follow(model, topic.row("P-2", 200, name="Tokyo"), topic.row("P-1", 100), topic.record(b"P-1", b"junk"))
    follow(model, topic.tombstone("P-2"), topic.row("P-3", 300, name="Stockholm"))
    model.caught_up.set()
    after_ms = int(time.time() * 1000)

    view: dict[str, Any] = model.view()

    assert view["caughtUp"] is True
    assert (view["applied"], view["skipped"]) == (4, 1)
    assert view["products"] == [
        {"productId": "P-1", "productName": "Berlin", "unitPrice": 100},
        {"productId": "P-3", "productName": "Stockholm", "unitPrice": 300},
    ]
    assert [{k: v for k, v in change.items() if k != "appliedAtMs"} for change in view["recent"]] == [
        {"offset": 0, "productId": "P-2", "unitPrice": 200},
        {"offset": 1, "productId": "P-1", "unitPrice": 100},
        {"offset": 3, "productId": "P-2", "unitPrice": None},  # the tombstone; offset 2 was skipped
        {"offset": 4, "productId": "P-3", "unitPrice": 300},
    ]
    assert all(before_ms <= change["appliedAtMs"] <= after_ms for change in view["recent"])
    assert model.get("P-1") == CatalogProduct("P-1", "Berlin", 100)
    assert model.get("P-2") is None
    assert len(model) == 2


def test_the_view_keeps_only_the_latest_changes(model: CatalogReadModel, topic: Topic) -> None:
    follow(model, *(topic.row("P-1", price) for price in range(1, CatalogReadModel.RECENT_CHANGES + 11)))

    recent = model.view()["recent"]

    assert len(recent) == CatalogReadModel.RECENT_CHANGES
    assert (recent[0]["offset"], recent[-1]["offset"]) == (10, CatalogReadModel.RECENT_CHANGES + 9)
    assert recent[-1]["unitPrice"] == CatalogReadModel.RECENT_CHANGES + 10

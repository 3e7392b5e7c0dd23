"""A record on catalog-changes: a product's row as the catalog-source connector writes it, a tombstone, or junk
that readers must skip (InvalidCatalogChange) rather than take for a price."""

from typing import Any

import orjson
import pytest

from order_contract.catalog_change import CatalogProduct, InvalidCatalogChange, parse_catalog_change
from order_contract.order import MAX_UNIT_PRICE

pytestmark = pytest.mark.unit

# The schema Debezium's MariaDB source writes for catalogdb.catalogs (flattened, stock excluded), as on the topic.
SCHEMA = {
    "type": "struct",
    "fields": [
        {"type": "string", "optional": False, "field": "product_id"},
        {"type": "string", "optional": False, "field": "product_name"},
        {"type": "int32", "optional": False, "field": "unit_price"},
        {
            "type": "int64",
            "optional": False,
            "name": "org.apache.kafka.connect.data.Timestamp",
            "version": 1,
            "field": "created_at",
        },
    ],
    "optional": False,
    "name": "catalogdb-cdc.catalogdb.catalogs.Value",
}
ROW = {"product_id": "CATALOG-001", "product_name": "Berlin", "unit_price": 1500, "created_at": 1796053992953}


def record(**payload: Any) -> bytes:
    """The connector's value for ROW with `payload` changes (a value of None drops that field)."""
    changed = {name: value for name, value in {**ROW, **payload}.items() if value is not None}
    return orjson.dumps({"schema": SCHEMA, "payload": changed})


def test_a_row_is_its_product_id_name_and_price() -> None:
    assert parse_catalog_change(b"CATALOG-001", record()) == (
        "CATALOG-001",
        CatalogProduct(product_id="CATALOG-001", product_name="Berlin", unit_price=1500),
    )


def test_a_tombstone_is_the_product_id_without_a_row() -> None:
    assert parse_catalog_change(b"CATALOG-001", None) == ("CATALOG-001", None)


def test_connect_json_with_a_null_payload_is_a_delete_too() -> None:
    """What a JSON converter with schemas on writes for a null value (the connector's deletes before
    delete-to-tombstone): the product is gone, like after a tombstone."""
    assert parse_catalog_change(b"CATALOG-001", orjson.dumps({"schema": SCHEMA, "payload": None})) == (
        "CATALOG-001",
        None,
    )


def test_the_lowest_and_highest_prices_are_rows() -> None:
    assert parse_catalog_change(b"CATALOG-001", record(unit_price=1))[1] == CatalogProduct("CATALOG-001", "Berlin", 1)
    top = parse_catalog_change(b"CATALOG-001", record(unit_price=MAX_UNIT_PRICE))[1]
    assert top is not None and top.unit_price == MAX_UNIT_PRICE


@pytest.mark.parametrize("key", [None, b""], ids=["no-key", "empty-key"])
def test_a_record_without_a_key_is_not_a_catalog_row(key: bytes | None) -> None:
    with pytest.raises(InvalidCatalogChange, match="no key"):
        parse_catalog_change(key, record())


def test_a_key_that_is_not_text_is_not_a_catalog_row() -> None:
    with pytest.raises(InvalidCatalogChange, match="UTF-8"):
        parse_catalog_change(b"\xff\xfe", record())


@pytest.mark.parametrize(
    "value",
    [b"this is not JSON", b'{"schema": {}, "payload": {', b"\xff\xfe\xfd"],
    ids=["text", "cut-off-json", "not-utf8"],
)
def test_a_value_that_is_not_json_is_not_a_catalog_row(value: bytes) -> None:
    with pytest.raises(InvalidCatalogChange, match="not JSON"):
        parse_catalog_change(b"CATALOG-001", value)


@pytest.mark.parametrize(
    "document",
    [
        ROW,  # the payload alone, without the envelope (a JSON converter with schemas disabled)
        {"payload": ROW},
        {"schema": SCHEMA},
        {"schema": SCHEMA, "payload": [ROW]},
        [ROW],
        "CATALOG-001",
        1500,
        None,
    ],
    ids=["bare-row", "no-schema", "no-payload", "list-payload", "list", "string", "number", "null"],
)
def test_json_that_is_not_connect_json_with_a_schema_and_a_payload_is_not_a_catalog_row(document: Any) -> None:
    with pytest.raises(InvalidCatalogChange, match="schema and a payload"):
        parse_catalog_change(b"CATALOG-001", orjson.dumps(document))


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"product_id": None}, "product_id"),
        ({"product_id": 1}, "product_id"),
        ({"product_id": ""}, "product_id"),
        ({"product_id": "X" * 65}, "product_id"),
        ({"product_name": None}, "product_name"),
        ({"product_name": ["Berlin"]}, "product_name"),
        ({"product_name": ""}, "product_name"),
        ({"product_name": "B" * 256}, "product_name"),
        ({"unit_price": None}, "unit_price"),
        ({"unit_price": "1500"}, "unit_price"),
        ({"unit_price": 1500.0}, "unit_price"),
        ({"unit_price": 15.5}, "unit_price"),
    ],
    ids=[
        "product_id-missing",
        "product_id-number",
        "product_id-empty",
        "product_id-too-long",
        "product_name-missing",
        "product_name-list",
        "product_name-empty",
        "product_name-too-long",
        "unit_price-missing",
        "unit_price-string",
        "unit_price-float",
        "unit_price-fraction",
    ],
)
def test_a_field_of_the_wrong_type_is_not_a_catalog_row(payload: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidCatalogChange, match=field):
        parse_catalog_change(b"CATALOG-001", record(**payload))


@pytest.mark.parametrize("price", [True, False], ids=["true", "false"])
def test_a_boolean_price_is_not_a_price(price: bool) -> None:
    # bool is an int in Python: True would otherwise be a price of 1.
    with pytest.raises(InvalidCatalogChange, match="unit_price"):
        parse_catalog_change(b"CATALOG-001", record(unit_price=price))


@pytest.mark.parametrize("price", [0, -1, MAX_UNIT_PRICE + 1, 2**31], ids=["zero", "negative", "above-max", "int32"])
def test_a_price_out_of_range_is_not_a_catalog_row(price: int) -> None:
    with pytest.raises(InvalidCatalogChange, match="unit_price"):
        parse_catalog_change(b"CATALOG-001", record(unit_price=price))


def test_a_key_naming_another_product_than_the_row_is_not_a_catalog_row() -> None:
    with pytest.raises(InvalidCatalogChange, match="CATALOG-002"):
        parse_catalog_change(b"CATALOG-002", record())

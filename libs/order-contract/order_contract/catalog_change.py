"""A record on `catalog-changes`: one product's current row, written by the catalog-source connector (Debezium's
MariaDB source, flattened by its ExtractNewRecordState transform).

Key: the product id as plain text. Value: Kafka Connect JSON, `{"schema": {...}, "payload": {"product_id",
"product_name", "unit_price", "created_at"}}` (stock is not captured), or null (a tombstone) once the row is
deleted (`{"schema": ..., "payload": null}` reads as a delete too: it is Connect JSON's null value). Anything else is
not a catalog row: readers skip it and keep what they had.
"""

import json
from dataclasses import dataclass
from typing import Any

from order_contract.order import MAX_TEXT_LENGTH, MAX_UNIT_PRICE


class InvalidCatalogChange(ValueError):
    """A record on catalog-changes that is not a catalog row (readers skip it)."""


@dataclass(frozen=True, slots=True)
class CatalogProduct:
    """What an order needs to know of a product: that it exists, and its price."""

    product_id: str
    product_name: str
    unit_price: int


# The value schema the connector writes (Debezium names it after its topic prefix, database and table).
CATALOG_VALUE_SCHEMA = {
    "type": "struct",
    "name": "catalogdb-cdc.catalogdb.catalogs.Value",
    "optional": False,
    "fields": [
        {"field": "product_id", "type": "string", "optional": False},
        {"field": "product_name", "type": "string", "optional": False},
        {"field": "unit_price", "type": "int32", "optional": False},
    ],
}


def catalog_change_record(product: CatalogProduct) -> tuple[bytes, bytes]:
    """(key, value) of the record the connector writes for this row: for a catalog of one's own, e.g. a benchmark's
    private broker, or a test's."""
    payload = {"product_id": product.product_id, "product_name": product.product_name, "unit_price": product.unit_price}
    value = json.dumps({"schema": CATALOG_VALUE_SCHEMA, "payload": payload}, separators=(",", ":")).encode()
    return product.product_id.encode(), value


def parse_catalog_change(key: bytes | None, value: bytes | None) -> tuple[str, CatalogProduct | None]:
    """(product id, its row), or (product id, None) for a tombstone: the product was deleted."""
    if not key:
        raise InvalidCatalogChange("no key (a product id)")
    try:
        product_id = key.decode()
    except UnicodeDecodeError as exc:
        raise InvalidCatalogChange("the key is not UTF-8 text") from exc
    if value is None:
        return product_id, None
    try:
        document = json.loads(value)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidCatalogChange(f"the value is not JSON: {exc}") from exc
    if not (isinstance(document, dict) and "schema" in document and "payload" in document):
        raise InvalidCatalogChange("the value is not Kafka Connect JSON with a schema and a payload")
    payload = document["payload"]
    if payload is None:
        # Connect JSON's null value with a schema: a delete written by a converter with schemas on (what the
        # connector wrote for deletes before it was set to `delete-to-tombstone`).
        return product_id, None
    if not isinstance(payload, dict):
        raise InvalidCatalogChange("the value is not Kafka Connect JSON with a schema and a payload")
    row = CatalogProduct(
        product_id=_text(payload, "product_id"),
        product_name=_text(payload, "product_name", max_length=255),
        unit_price=_price(payload),
    )
    if row.product_id != product_id:
        raise InvalidCatalogChange(f"key {product_id!r} names another product than the row ({row.product_id!r})")
    return product_id, row


def _text(payload: dict[str, Any], name: str, max_length: int = MAX_TEXT_LENGTH) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not 0 < len(value) <= max_length:
        raise InvalidCatalogChange(f"{name}: not text of 1 to {max_length} characters")
    return value


def _price(payload: dict[str, Any]) -> int:
    value = payload.get("unit_price")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_UNIT_PRICE:
        raise InvalidCatalogChange(f"unit_price: not a whole number from 1 to {MAX_UNIT_PRICE}")
    return value

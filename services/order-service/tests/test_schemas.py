"""The HTTP view of an order lists its fields for OpenAPI; the contract's Order is where they are defined."""

import datetime as dt

import pytest

from order_contract.order import ORDER_FIELDS, Order, OrderStatus
from order_service.schemas import OrderOut

pytestmark = pytest.mark.unit


def test_the_http_view_has_exactly_the_contracts_fields_in_camel_case() -> None:
    assert tuple(OrderOut.model_fields) == ORDER_FIELDS
    order = Order(
        "o-1", "u-1", "CATALOG-001", 2, 1500, 3000, OrderStatus.PENDING, dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
    )
    assert OrderOut.of(order).model_dump() == {
        "orderId": "o-1",
        "userId": "u-1",
        "productId": "CATALOG-001",
        "qty": 2,
        "unitPrice": 1500,
        "totalPrice": 3000,
        "status": "PENDING",
        "createdAt": "2026-11-30T00:00:00.000Z",
    }

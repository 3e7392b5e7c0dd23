"""POST /catalogs and PUT /catalogs/{productId} against the real catalogdb: admins only, strict bodies, and a PUT
never touches stock (orders own it). Through the gateway and on to every order-service instance: tests/cdc."""

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from catalog_service import service
from catalog_service.config import CatalogSettings
from catalog_service.models import CatalogRow
from order_contract.order import MAX_UNIT_PRICE
from servicekit.testing import kit_signing_key
from servicekit.tokens import ADMIN_ROLE, SigningKey, issue_token

pytestmark = pytest.mark.stack


def bearer(settings: CatalogSettings, *roles: str, key: SigningKey | None = None) -> dict[str, str]:
    token = issue_token(f"catalog-writer-{uuid.uuid4().hex[:6]}", key or kit_signing_key(), 600, roles)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def admin(settings: CatalogSettings) -> dict[str, str]:
    return bearer(settings, ADMIN_ROLE)


@pytest.fixture
async def fresh_id(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[str]:
    """A product id nobody has used; the product is removed afterwards if the test created it."""
    product_id = f"TEST-W-{uuid.uuid4().hex[:12]}"
    yield product_id
    await service.remove_product(sessions, product_id)


async def row_of(sessions: async_sessionmaker[AsyncSession], product_id: str) -> CatalogRow | None:
    async with sessions() as session:
        return await session.get(CatalogRow, product_id)


def new_product(product_id: str, **changes: Any) -> dict[str, Any]:
    return {"productId": product_id, "productName": "Lisbon", "unitPrice": 1300, "stock": 40, **changes}


async def test_an_admin_creates_a_product_and_gets_it_back_with_201(
    client: httpx.AsyncClient, admin: dict[str, str], fresh_id: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    response = await client.post("/catalogs", json=new_product(fresh_id), headers=admin)

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"productId", "productName", "unitPrice", "stock", "createdAt"}
    assert (body["productId"], body["productName"], body["unitPrice"], body["stock"]) == (fresh_id, "Lisbon", 1300, 40)
    assert body["createdAt"].endswith("Z")
    assert (await client.get(f"/catalogs/{fresh_id}")).json() == body
    row = await row_of(sessions, fresh_id)
    assert row is not None and (row.product_name, row.unit_price, row.stock) == ("Lisbon", 1300, 40)


async def test_creating_a_product_needs_a_valid_token_with_the_admin_role(
    client: httpx.AsyncClient, settings: CatalogSettings, fresh_id: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    body = new_product(fresh_id)

    anonymous = await client.post("/catalogs", json=body)
    forged = await client.post(
        "/catalogs", json=body, headers=bearer(settings, ADMIN_ROLE, key=SigningKey.generate("test-kit"))
    )
    plain_user = await client.post("/catalogs", json=body, headers=bearer(settings))
    other_role = await client.post("/catalogs", json=body, headers=bearer(settings, "catalog-editor"))

    statuses = [r.status_code for r in (anonymous, forged, plain_user, other_role)]
    assert statuses == [401, 401, 403, 403], [r.text for r in (anonymous, forged, plain_user, other_role)]
    assert "admin" in plain_user.json()["detail"]
    assert await row_of(sessions, fresh_id) is None, "a refused request creates nothing"


async def test_creating_an_existing_product_is_409_and_leaves_it_as_it_was(
    client: httpx.AsyncClient, admin: dict[str, str], fresh_id: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    first = await client.post("/catalogs", json=new_product(fresh_id), headers=admin)
    assert first.status_code == 201

    again = await client.post(
        "/catalogs", json=new_product(fresh_id, productName="Porto", unitPrice=9, stock=1), headers=admin
    )

    assert again.status_code == 409, again.text
    assert again.json()["fields"] == ["productId"]
    assert fresh_id in again.json()["detail"]
    assert (await client.get(f"/catalogs/{fresh_id}")).json() == first.json()


async def test_creating_a_seed_product_again_is_409(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    response = await client.post("/catalogs", json=new_product("CATALOG-001", unitPrice=1), headers=admin)

    assert response.status_code == 409
    assert (await client.get("/catalogs/CATALOG-001")).json()["unitPrice"] == 1500


def bad(changes: dict[str, Any], field: str, *, id: str, drop: str | None = None) -> Any:
    return pytest.param(changes, field, drop, id=id)


BAD_NEW_PRODUCTS = [
    bad({}, "productId", drop="productId", id="productId-missing"),
    bad({}, "productName", drop="productName", id="productName-missing"),
    bad({}, "unitPrice", drop="unitPrice", id="unitPrice-missing"),
    bad({}, "stock", drop="stock", id="stock-missing"),
    bad({"unitPrice": "1300"}, "unitPrice", id="unitPrice-string"),
    bad({"unitPrice": 1300.0}, "unitPrice", id="unitPrice-float"),
    bad({"unitPrice": True}, "unitPrice", id="unitPrice-bool"),
    bad({"unitPrice": 0}, "unitPrice", id="unitPrice-zero"),
    bad({"unitPrice": -5}, "unitPrice", id="unitPrice-negative"),
    bad({"unitPrice": MAX_UNIT_PRICE + 1}, "unitPrice", id="unitPrice-above-max"),
    bad({"stock": "40"}, "stock", id="stock-string"),
    bad({"stock": -1}, "stock", id="stock-negative"),
    bad({"stock": 2**31}, "stock", id="stock-past-int32"),
    bad({"productName": ""}, "productName", id="productName-empty"),
    bad({"productName": "x" * 256}, "productName", id="productName-too-long"),
    bad({"productName": 7}, "productName", id="productName-number"),
    bad({"productId": "has space"}, "productId", id="productId-pattern"),
    bad({"productId": "P" * 65}, "productId", id="productId-too-long"),
    bad({"discount": 10}, "discount", id="extra-field"),
    bad({"unit_price": 1300}, "unit_price", id="snake-case-name"),
]


@pytest.mark.parametrize(("changes", "field", "drop"), BAD_NEW_PRODUCTS)
async def test_a_bad_new_product_is_422_naming_the_field_and_creates_nothing(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    fresh_id: str,
    sessions: async_sessionmaker[AsyncSession],
    changes: dict[str, Any],
    field: str,
    drop: str | None,
) -> None:
    body = new_product(fresh_id, **changes)
    body.pop(drop or "", None)

    response = await client.post("/catalogs", json=body, headers=admin)

    assert response.status_code == 422, response.text
    assert response.json()["fields"] == [field], response.json()
    assert field in response.json()["detail"]
    assert await row_of(sessions, fresh_id) is None


@pytest.fixture
async def existing(
    client: httpx.AsyncClient, admin: dict[str, str], fresh_id: str, sessions: async_sessionmaker[AsyncSession]
) -> dict[str, Any]:
    """A product created through the API (removed by fresh_id), whose stock orders have since moved to 33."""
    created = await client.post("/catalogs", json=new_product(fresh_id), headers=admin)
    assert created.status_code == 201
    async with sessions.begin() as session:
        await session.execute(update(CatalogRow).where(CatalogRow.product_id == fresh_id).values(stock=33))
    answer: dict[str, Any] = {**created.json(), "stock": 33}
    return answer


async def test_an_admin_changes_name_and_price_and_stock_stays_as_orders_left_it(
    client: httpx.AsyncClient, admin: dict[str, str], existing: dict[str, Any]
) -> None:
    product_id = existing["productId"]

    response = await client.put(
        f"/catalogs/{product_id}", json={"productName": "Coimbra", "unitPrice": 1450}, headers=admin
    )

    assert response.status_code == 200, response.text
    assert response.json() == {**existing, "productName": "Coimbra", "unitPrice": 1450}
    assert (await client.get(f"/catalogs/{product_id}")).json() == response.json()


async def test_a_price_alone_or_a_name_alone_changes_only_that(
    client: httpx.AsyncClient, admin: dict[str, str], existing: dict[str, Any]
) -> None:
    path = f"/catalogs/{existing['productId']}"

    priced = await client.put(path, json={"unitPrice": 999}, headers=admin)
    renamed = await client.put(path, json={"productName": "Faro"}, headers=admin)

    assert (priced.status_code, renamed.status_code) == (200, 200)
    assert priced.json() == {**existing, "unitPrice": 999}
    assert renamed.json() == {**existing, "unitPrice": 999, "productName": "Faro"}


async def test_changing_an_unknown_product_is_404_naming_it(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    response = await client.put("/catalogs/NO-SUCH-PRODUCT", json={"unitPrice": 10}, headers=admin)

    assert response.status_code == 404
    assert response.json()["fields"] == ["productId"]
    assert "NO-SUCH-PRODUCT" in response.json()["detail"]


async def test_changing_a_product_needs_a_valid_token_with_the_admin_role(
    client: httpx.AsyncClient, settings: CatalogSettings, existing: dict[str, Any]
) -> None:
    path = f"/catalogs/{existing['productId']}"
    body = {"unitPrice": 1}

    anonymous = await client.put(path, json=body)
    expired = await client.put(
        path,
        json=body,
        headers={"Authorization": f"Bearer {issue_token('x', kit_signing_key(), -10, (ADMIN_ROLE,))}"},
    )
    plain_user = await client.put(path, json=body, headers=bearer(settings))

    assert [r.status_code for r in (anonymous, expired, plain_user)] == [401, 401, 403]
    assert (await client.get(path)).json() == existing, "a refused change changes nothing"


BAD_CHANGES = [
    pytest.param({}, "body", id="empty"),
    pytest.param({"productName": None, "unitPrice": None}, "body", id="both-null"),
    pytest.param({"unitPrice": "1450"}, "unitPrice", id="unitPrice-string"),
    pytest.param({"unitPrice": 14.5}, "unitPrice", id="unitPrice-fraction"),
    pytest.param({"unitPrice": False}, "unitPrice", id="unitPrice-bool"),
    pytest.param({"unitPrice": 0}, "unitPrice", id="unitPrice-zero"),
    pytest.param({"unitPrice": MAX_UNIT_PRICE + 1}, "unitPrice", id="unitPrice-above-max"),
    pytest.param({"productName": ""}, "productName", id="productName-empty"),
    pytest.param({"stock": 1000}, "stock", id="stock-is-not-changed-here"),
    pytest.param({"unitPrice": 10, "productId": "OTHER"}, "productId", id="productId-is-not-changed-here"),
    pytest.param({"unitPrice": 10, "colour": "red"}, "colour", id="extra-field"),
]


@pytest.mark.parametrize(("body", "field"), BAD_CHANGES)
async def test_a_bad_change_is_422_naming_the_field_and_changes_nothing(
    client: httpx.AsyncClient, admin: dict[str, str], existing: dict[str, Any], body: dict[str, Any], field: str
) -> None:
    path = f"/catalogs/{existing['productId']}"

    response = await client.put(path, json=body, headers=admin)

    assert response.status_code == 422, response.text
    assert response.json()["fields"] == [field], response.json()
    assert (await client.get(path)).json() == existing

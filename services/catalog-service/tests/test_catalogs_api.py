"""GET /catalogs and /catalogs/{productId} against the real catalogdb."""

from collections.abc import Awaitable, Callable

import httpx
import pytest

from catalog_service.config import CatalogSettings

pytestmark = pytest.mark.stack

NewProduct = Callable[..., Awaitable[str]]


async def test_catalogs_list_the_seed_products_with_name_and_price(client: httpx.AsyncClient) -> None:
    response = await client.get("/catalogs")

    assert response.status_code == 200
    by_id = {item["productId"]: item for item in response.json()}
    assert {"CATALOG-001", "CATALOG-002", "CATALOG-003"} <= set(by_id)
    assert (by_id["CATALOG-001"]["productName"], by_id["CATALOG-001"]["unitPrice"]) == ("Berlin", 1500)
    assert (by_id["CATALOG-003"]["productName"], by_id["CATALOG-003"]["unitPrice"]) == ("Stockholm", 2000)
    assert set(by_id["CATALOG-002"]) == {"productId", "productName", "unitPrice", "stock", "createdAt"}


async def test_one_catalog_answers_its_stock(client: httpx.AsyncClient, new_product: NewProduct) -> None:
    product_id = await new_product(stock=7, unit_price=250)

    response = await client.get(f"/catalogs/{product_id}")

    assert response.status_code == 200
    assert (response.json()["stock"], response.json()["unitPrice"]) == (7, 250)


async def test_unknown_catalog_is_404_naming_the_product(client: httpx.AsyncClient) -> None:
    response = await client.get("/catalogs/NO-SUCH-PRODUCT")

    assert response.status_code == 404
    assert "NO-SUCH-PRODUCT" in response.json()["detail"]


async def test_answers_carry_the_instance_id(client: httpx.AsyncClient, settings: CatalogSettings) -> None:
    response = await client.get("/health_check")

    assert response.status_code == 200
    assert response.headers["x-instance-id"] == settings.instance_id
    assert response.json()["instanceId"] == settings.instance_id

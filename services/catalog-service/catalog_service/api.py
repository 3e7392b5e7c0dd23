"""HTTP routes (served without the /catalog-service prefix; the gateway strips it)."""

from typing import Annotated

from fastapi import APIRouter, Path

from catalog_service import service
from catalog_service.schemas import CatalogOut, NewProduct, ProductChange
from servicekit.auth import Caller, require_role
from servicekit.database import SessionDep

ProductIdPath = Annotated[str, Path(min_length=1, max_length=64)]

router = APIRouter()


@router.get("/catalogs", response_model=list[CatalogOut])
async def list_catalogs(session: SessionDep) -> list[CatalogOut]:
    return [CatalogOut.of(row) for row in await service.list_catalogs(session)]


@router.get("/catalogs/{product_id}", response_model=CatalogOut)
async def get_catalog(product_id: ProductIdPath, session: SessionDep) -> CatalogOut:
    return CatalogOut.of(await service.get_catalog(session, product_id))


# Writes need the admin role: a price is what every order of the product will be charged.
@router.post("/catalogs", status_code=201, response_model=CatalogOut)
async def create_catalog(body: NewProduct, session: SessionDep, caller: Caller) -> CatalogOut:
    require_role(caller, "admin")
    row = await service.create_product(session, body.product_id, body.product_name, body.stock, body.unit_price)
    return CatalogOut.of(row)


@router.put("/catalogs/{product_id}", response_model=CatalogOut)
async def change_catalog(
    product_id: ProductIdPath, body: ProductChange, session: SessionDep, caller: Caller
) -> CatalogOut:
    require_role(caller, "admin")
    row = await service.change_product(session, product_id, name=body.product_name, unit_price=body.unit_price)
    return CatalogOut.of(row)

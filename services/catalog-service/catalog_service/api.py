"""HTTP routes (served without the /catalog-service prefix; the gateway strips it)."""

from fastapi import APIRouter

from catalog_service import service
from catalog_service.schemas import CatalogOut
from servicekit.database import SessionDep

router = APIRouter()


@router.get("/catalogs", response_model=list[CatalogOut])
async def list_catalogs(session: SessionDep) -> list[CatalogOut]:
    return [CatalogOut.of(row) for row in await service.list_catalogs(session)]


@router.get("/catalogs/{product_id}", response_model=CatalogOut)
async def get_catalog(product_id: str, session: SessionDep) -> CatalogOut:
    return CatalogOut.of(await service.get_catalog(session, product_id))

"""HTTP routes (served without the /order-service prefix; the gateway strips it)."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Request, Response

from order_service.catalog import CatalogReadModel
from order_service.schemas import OrderOut, OrderRequest
from order_service.service import OrderIntake
from servicekit.auth import Caller, require_self

router = APIRouter()


async def get_intake(request: Request) -> OrderIntake:
    intake: OrderIntake = request.app.state.intake
    return intake


IntakeDep = Annotated[OrderIntake, Depends(get_intake)]
UserId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200)]


@router.post("/{user_id}/orders", status_code=201, response_model=OrderOut)
async def create_order(
    user_id: UserId, body: OrderRequest, intake: IntakeDep, caller: Caller, idempotency_key: IdempotencyKey = None
) -> OrderOut:
    require_self(caller, user_id)
    order = await intake.place(user_id, body, idempotency_key)
    return OrderOut.of(order)


@router.get("/catalog-view")
async def catalog_view(request: Request) -> dict[str, Any]:
    """This instance's catalog read model: its products and prices (public, like the catalog itself), and the
    last changes it applied with the time it applied each (the change-lag benchmark reads them)."""
    catalog: CatalogReadModel = request.app.state.catalog
    return catalog.view()


@router.get("/{user_id}/orders", response_model=list[OrderOut])
async def list_orders(user_id: UserId, intake: IntakeDep, caller: Caller, response: Response) -> list[OrderOut]:
    require_self(caller, user_id)
    response.headers["Cache-Control"] = "no-store"
    return [OrderOut.of(order) for order in await intake.orders_of(user_id)]

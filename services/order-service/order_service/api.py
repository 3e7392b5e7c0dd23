"""HTTP routes (served without the /order-service prefix; the gateway strips it)."""

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response

from order_service.catalog import CatalogReadModel
from order_service.schemas import OrderOut, OrderRequest
from order_service.service import OrderIntake
from order_service.view import BEHIND_HEADER, POSITION_HEADER, Freshness, Position
from servicekit.auth import Caller, require_self

router = APIRouter()

DEFAULT_PAGE = 50
MAX_PAGE = 500


async def get_intake(request: Request) -> OrderIntake:
    intake: OrderIntake = request.app.state.intake
    return intake


IntakeDep = Annotated[OrderIntake, Depends(get_intake)]
UserId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200)]
OrderId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]
# A position a POST answered with: the read answers only once this instance has read that order's record.
PositionToken = Annotated[str | None, Header(alias=POSITION_HEADER, min_length=1, max_length=100)]


def _freshness_headers(response: Response, freshness: Freshness) -> None:
    """Reads are never cached; one answered before the view was up to date says how far behind it is."""
    response.headers["Cache-Control"] = "no-store"
    behind = freshness.header
    if behind is not None:
        response.headers[BEHIND_HEADER] = behind


@router.post("/{user_id}/orders", status_code=201, response_model=OrderOut)
async def create_order(
    user_id: UserId,
    body: OrderRequest,
    intake: IntakeDep,
    caller: Caller,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> OrderOut:
    """Answers once the order is committed to Kafka; `X-Order-Position` says where its record is."""
    require_self(caller, user_id)
    placed = await intake.place(user_id, body, idempotency_key)
    if placed.position is not None:
        response.headers[POSITION_HEADER] = placed.position.token()
    return OrderOut.of(placed.order)


@router.get("/catalog-view")
async def catalog_view(request: Request) -> dict[str, Any]:
    """This instance's catalog read model: its products and prices (public, like the catalog itself), and the
    last changes it applied with the time it applied each (the change-lag benchmark reads them)."""
    catalog: CatalogReadModel = request.app.state.catalog
    return catalog.view()


@router.get("/{user_id}/orders", response_model=list[OrderOut])
async def list_orders(
    user_id: UserId,
    intake: IntakeDep,
    caller: Caller,
    response: Response,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    cursor: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
    position: PositionToken = None,
) -> list[OrderOut]:
    """A page of the user's orders, newest first, every order committed before the request included (read your
    own writes, whichever instance took them). When there are more, `X-Next-Cursor` holds the cursor of the
    next page and `Link` (rel="next") the query that asks for it, relative to this path."""
    require_self(caller, user_id)
    wanted = Position.parse(position) if position is not None else None
    page = await intake.orders_of(user_id, limit=limit, cursor=cursor, position=wanted)
    _freshness_headers(response, page.freshness)
    if page.next_cursor is not None:
        response.headers["X-Next-Cursor"] = page.next_cursor
        response.headers["Link"] = f'<?{urlencode({"limit": limit, "cursor": page.next_cursor})}>; rel="next"'
    return [OrderOut.of(order) for order in page.orders]


@router.get("/{user_id}/orders/{order_id}", response_model=OrderOut)
async def get_order(
    user_id: UserId,
    order_id: OrderId,
    intake: IntakeDep,
    caller: Caller,
    response: Response,
    position: PositionToken = None,
) -> OrderOut:
    """One of the user's orders with its current status (read your own writes, as the list); 404 if none."""
    require_self(caller, user_id)
    wanted = Position.parse(position) if position is not None else None
    order, freshness = await intake.order_of(user_id, order_id, position=wanted)
    _freshness_headers(response, freshness)
    return OrderOut.of(order)

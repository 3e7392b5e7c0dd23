"""The HTTP routes of user-service (served at its root; the gateway strips `/user-service`)."""

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response, status

from servicekit.database import SessionDep
from servicekit.tokens import issue_token
from user_service import service
from user_service.config import UserServiceSettings
from user_service.schemas import LoginRequest, LoginResponse, UserRegistration, UserView, UserWithOrders

router = APIRouter()


async def get_settings(request: Request) -> UserServiceSettings:
    settings: UserServiceSettings = request.app.state.settings
    return settings


async def get_order_service(request: Request) -> service.OrderServiceClient:
    client: service.OrderServiceClient = request.app.state.order_service
    return client


SettingsDep = Annotated[UserServiceSettings, Depends(get_settings)]
OrderServiceDep = Annotated[service.OrderServiceClient, Depends(get_order_service)]


@router.post("/users", status_code=status.HTTP_201_CREATED)
async def register(registration: UserRegistration, session: SessionDep) -> UserView:
    return UserView.of(await service.register_user(session, registration))


@router.post("/login")
async def login(
    credentials: LoginRequest, session: SessionDep, settings: SettingsDep, response: Response
) -> LoginResponse:
    user = await service.authenticate(session, credentials.email, credentials.password)
    token = issue_token(user.user_id, settings.jwt_secret, settings.jwt_ttl_seconds)
    # Headers as in the original Spring filter; the body carries the same for clients that prefer JSON.
    response.headers["token"] = token
    response.headers["userId"] = user.user_id
    return LoginResponse(token=token, userId=user.user_id)


@router.get("/users")
async def list_users(session: SessionDep) -> list[UserView]:
    return [UserView.of(user) for user in await service.list_users(session)]


@router.get("/users/{user_id}")
async def get_user(
    user_id: str,
    session: SessionDep,
    order_service: OrderServiceDep,
    authorization: Annotated[str | None, Header()] = None,
) -> UserWithOrders:
    return await service.user_with_orders(session, order_service, user_id, authorization=authorization)

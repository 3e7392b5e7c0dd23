"""The HTTP routes of user-service (served at its root; the gateway strips `/user-service`).

Sign-up and login are public; listing users needs the admin role; a user's page only its own token.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, status

from servicekit.auth import Caller, require_role, require_self
from servicekit.database import SessionDep
from servicekit.token_trust import JWKS_PATH, REVOCATIONS_PATH
from servicekit.tokens import ADMIN_ROLE, issue_token, jwks
from user_service import service
from user_service.config import UserServiceSettings
from user_service.proxies import TrustedProxies
from user_service.schemas import (
    LoginRequest,
    LoginResponse,
    UserRegistration,
    UserUpdate,
    UserView,
    UserWithOrders,
)
from user_service.signing_keys import KeyStore

router = APIRouter()


async def get_settings(request: Request) -> UserServiceSettings:
    settings: UserServiceSettings = request.app.state.settings
    return settings


async def get_order_service(request: Request) -> service.OrderServiceClient:
    client: service.OrderServiceClient = request.app.state.order_service
    return client


async def get_key_store(request: Request) -> KeyStore:
    keys: KeyStore = request.app.state.key_store
    return keys


SettingsDep = Annotated[UserServiceSettings, Depends(get_settings)]
KeyStoreDep = Annotated[KeyStore, Depends(get_key_store)]
OrderServiceDep = Annotated[service.OrderServiceClient, Depends(get_order_service)]


async def client_address(request: Request, trusted: TrustedProxies) -> str:
    """The caller's address: the last X-Forwarded-For hop when the peer is our gateway, else the peer itself."""
    peer = request.client.host if request.client else "unknown"
    forwarded = request.headers.get("x-forwarded-for")
    if forwarded and await trusted.trusts(peer):
        return forwarded.rsplit(",", 1)[-1].strip() or peer
    return peer


@router.post("/users", status_code=status.HTTP_201_CREATED)
async def register(registration: UserRegistration, session: SessionDep) -> UserView:
    return UserView.of(await service.register_user(session, registration))


@router.post("/login")
async def login(
    credentials: LoginRequest,
    session: SessionDep,
    settings: SettingsDep,
    keys: KeyStoreDep,
    request: Request,
    response: Response,
) -> LoginResponse:
    address = await client_address(request, request.app.state.trusted_proxies)
    user = await service.log_in(session, credentials.email, credentials.password, address, settings)
    token = issue_token(user.user_id, keys.signing_key(), settings.jwt_ttl_seconds, user.role_names, user.token_version)
    # Headers as in the original Spring filter; the body carries the same for clients that prefer JSON.
    response.headers["token"] = token
    response.headers["userId"] = user.user_id
    return LoginResponse(token=token, userId=user.user_id)


@router.get("/users")
async def list_users(session: SessionDep, caller: Caller) -> list[UserView]:
    require_role(caller, ADMIN_ROLE)
    return [UserView.of(user) for user in await service.list_users(session)]


@router.get("/users/{user_id}")
async def get_user(
    user_id: str, session: SessionDep, order_service: OrderServiceDep, caller: Caller, request: Request
) -> UserWithOrders:
    require_self(caller, user_id)
    # order-service checks the token too: ask it with the caller's own (verified, single) Authorization header.
    authorization = request.headers["authorization"]
    return await service.user_with_orders(session, order_service, user_id, authorization=authorization)


@router.put("/users/{user_id}")
async def update_user(user_id: str, update: UserUpdate, session: SessionDep, caller: Caller) -> UserView:
    require_self(caller, user_id)
    return UserView.of(await service.update_user(session, user_id, update))


@router.get(JWKS_PATH)
async def signing_keys(keys: KeyStoreDep) -> dict[str, Any]:
    """Public: the keys tokens are signed with (the current one, the previous one, a coming one)."""
    return jwks(keys.published())


@router.get(REVOCATIONS_PATH)
async def token_revocations(session: SessionDep, settings: SettingsDep) -> dict[str, Any]:
    """Public, for the verifiers: per user whose password changed within a token lifetime, the lowest valid
    token version. It names user ids (random UUIDs) and nothing else."""
    return {"minVersions": await service.revoked_token_versions(session, settings)}

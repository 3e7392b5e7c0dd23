"""Who is calling: every service checks the bearer token itself (deny by default), not only the gateway.

Routes take `caller: Caller` and, where the path names a user, `require_self(caller, user_id)`. A route
without `Caller` is public on purpose (health checks, sign-up, login, catalog reads).
"""

import time
from typing import Annotated

from fastapi import Depends, FastAPI, Request

from servicekit.errors import DomainError
from servicekit.tokens import InvalidToken, TokenClaims, verify_token

MAX_CACHED_TOKENS = 10_000
# A verification is reused at most this long (never past the token's expiry): HS256 checks cost ~40 us each.
CACHE_SECONDS = 60.0


class Unauthenticated(DomainError):
    status_code = 401


class Forbidden(DomainError):
    status_code = 403


class VerifiedTokens:
    """Verifies `Authorization: Bearer <jwt>` values and remembers the recent ones."""

    def __init__(self, secret: str) -> None:
        self._secret = secret
        self._verified: dict[str, TokenClaims] = {}
        self._trusted_until: dict[str, float] = {}

    def claims(self, authorization: str | None) -> TokenClaims:
        if not authorization:
            raise Unauthenticated("missing bearer token")
        now = time.time()
        if self._trusted_until.get(authorization, 0.0) > now:
            return self._verified[authorization]
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("expected 'Authorization: Bearer <token>'")
        try:
            claims = verify_token(token.strip(), self._secret)
        except InvalidToken as exc:
            raise Unauthenticated(f"invalid token: {exc}") from exc
        if len(self._verified) >= MAX_CACHED_TOKENS:
            self._verified.clear()
            self._trusted_until.clear()
        self._verified[authorization] = claims
        self._trusted_until[authorization] = min(claims.expires, now + CACHE_SECONDS)
        return claims


async def bearer_claims(request: Request) -> TokenClaims:
    """The verified claims of the request's one Authorization header; 401 otherwise, 400 for two of them."""
    values = request.headers.getlist("authorization")
    if len(values) > 1:
        raise DomainError("more than one Authorization header")
    tokens: VerifiedTokens = request.app.state.verified_tokens
    return tokens.claims(values[0] if values else None)


Caller = Annotated[TokenClaims, Depends(bearer_claims)]


def require_self(caller: TokenClaims, user_id: str) -> None:
    """Only the user named in the path may act on it."""
    if caller.subject != user_id:
        raise Forbidden("this token is not for this user")


def require_role(caller: TokenClaims, role: str) -> None:
    if role not in caller.roles:
        raise Forbidden(f"needs the {role} role")


def install_token_check(app: FastAPI, secret: str) -> None:
    """What `Caller` verifies tokens with, for the lifetime of `app`."""
    app.state.verified_tokens = VerifiedTokens(secret)

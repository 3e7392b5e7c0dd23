"""Who is calling: every service checks the bearer token itself (deny by default), not only the gateway.

Routes take `caller: Caller` and, where the path names a user, `require_self(caller, user_id)`. A route
without `Caller` is public on purpose (health checks, sign-up, login, catalog reads).
"""

import json
import logging
import time
from typing import Annotated

import httpx
from fastapi import Depends, FastAPI, Request

from servicekit.config import TokenSettings
from servicekit.errors import DomainError, Unavailable
from servicekit.keep_alive import internal_client
from servicekit.token_trust import (
    FIRST_KEYS_WAIT_SECONDS,
    TrustDocuments,
    TrustRefresher,
    TrustSource,
    from_user_service,
)
from servicekit.tokens import InvalidToken, TokenClaims, TokenTrust, TrustNotReady, UnknownKey

log = logging.getLogger(__name__)

MAX_CACHED_TOKENS = 10_000
# A verification is reused at most this long (never past the token's expiry; revocations are checked on every
# use, 0.2 us): an Ed25519 check took ~350 us here (HS256 ~90 us) on a loaded 2-core machine.
CACHE_SECONDS = 60.0


class Unauthenticated(DomainError):
    status_code = 401


class Forbidden(DomainError):
    status_code = 403


class VerifiedTokens:
    """Verifies `Authorization: Bearer <jwt>` values and remembers the recent ones."""

    def __init__(self, trust: TokenTrust, refresher: TrustRefresher | None = None) -> None:
        self._trust = trust
        # None: the trust is static (tests); else started by load() before the instance registers (or on first use),
        # in the serving event loop.
        self._refresher = refresher
        self._verified: dict[str, TokenClaims] = {}
        self._trusted_until: dict[str, float] = {}

    async def load(self, within: float = FIRST_KEYS_WAIT_SECONDS) -> bool:
        """Start fetching and wait (at most `within` seconds) until user-service's keys are in; False if they are not.
        An instance does this before it registers, so its first request with a token does not wait for a fetch."""
        if self._refresher is None:
            return True
        return await self._refresher.wait_loaded(within)

    async def stop(self) -> None:
        """Stop fetching (before what the trust source uses goes away, e.g. the database engine)."""
        if self._refresher is not None:
            await self._refresher.stop()

    def forget(self) -> None:
        """Drop remembered verifications (the published keys changed)."""
        self._verified.clear()
        self._trusted_until.clear()

    async def claims(self, authorization: str | None) -> TokenClaims:
        if not authorization:
            raise Unauthenticated("missing bearer token")
        now = time.time()
        try:
            if self._trusted_until.get(authorization, 0.0) > now:
                claims = self._verified[authorization]
                self._trust.check_not_revoked(claims)
                return claims
            scheme, _, token = authorization.strip().partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("expected 'Authorization: Bearer <token>'")
            claims = await self._verify(token.strip())
        except TrustNotReady as exc:
            raise Unavailable(f"tokens cannot be checked yet: {exc}") from exc
        except InvalidToken as exc:
            raise Unauthenticated(f"invalid token: {exc}") from exc
        if len(self._verified) >= MAX_CACHED_TOKENS:
            self.forget()
        self._verified[authorization] = claims
        self._trusted_until[authorization] = min(claims.expires, now + CACHE_SECONDS)
        return claims

    async def _verify(self, token: str) -> TokenClaims:
        refresher = self._refresher
        if refresher is None:
            return self._trust.verify(token)
        refresher.start()
        try:
            return self._trust.verify(token)
        except TrustNotReady:
            # Just started: wait a little for user-service's keys rather than answer 503 at once.
            await refresher.wait_loaded(FIRST_KEYS_WAIT_SECONDS)
            return self._trust.verify(token)
        except UnknownKey:
            # A key published since the last fetch: ask once more.
            await refresher.refresh_if_due()
            return self._trust.verify(token)


async def bearer_claims(request: Request) -> TokenClaims:
    """The verified claims of the request's one Authorization header; 401 otherwise, 400 for two of them."""
    values = request.headers.getlist("authorization")
    if len(values) > 1:
        raise DomainError("more than one Authorization header")
    tokens: VerifiedTokens = request.app.state.verified_tokens
    return await tokens.claims(values[0] if values else None)


Caller = Annotated[TokenClaims, Depends(bearer_claims)]


def require_self(caller: TokenClaims, user_id: str) -> None:
    """Only the user named in the path may act on it."""
    if caller.subject != user_id:
        raise Forbidden("this token is not for this user")


def require_role(caller: TokenClaims, role: str) -> None:
    if role not in caller.roles:
        raise Forbidden(f"needs the {role} role")


def install_token_check(app: FastAPI, settings: TokenSettings, source: TrustSource | None = None) -> None:
    """What `Caller` verifies tokens with, for the lifetime of `app`: `settings.trusted_jwks` when set, else what
    `source` gives (user-service's own keys), else USER-SERVICE's JWKS through `app.state.discovery`."""
    if settings.trusted_jwks:
        app.state.verified_tokens = VerifiedTokens(TokenTrust.static(json.loads(settings.trusted_jwks)))
        return
    trust = TokenTrust()

    http: list[httpx.AsyncClient] = []  # made in the serving loop, on first use; lives as long as the process

    async def from_registry() -> TrustDocuments:
        if not http:
            http.append(internal_client())
        return await from_user_service(app.state.discovery, http[0])()

    refresher = TrustRefresher(trust, source or from_registry, settings.token_trust_refresh_seconds)
    app.state.verified_tokens = tokens = VerifiedTokens(trust, refresher)
    refresher.on_keys_changed = tokens.forget


async def load_token_keys(app: FastAPI) -> None:
    """The app's token check ready before the instance registers (servicekit.server.serve): bounded, since a
    user-service that is not up yet must not keep the instance from starting; tokens are answered 503 until then."""
    tokens: VerifiedTokens | None = getattr(app.state, "verified_tokens", None)
    if tokens is not None and not await tokens.load():
        log.warning("registering without user-service's token keys; tokens are answered 503 until they come")

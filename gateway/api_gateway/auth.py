"""The authorization filter: Bearer JWTs checked against user-service's published keys, verifications cached briefly."""

import time

from servicekit.token_trust import TrustRefresher
from servicekit.tokens import InvalidToken, TokenClaims, TokenTrust, UnknownKey

MAX_CACHED_TOKENS = 10_000
# A cached verification is trusted at most this long, and never past the token's own expiry; revocations
# (a password change) are checked on every use.
CACHE_SECONDS = 60.0


class TokenVerifier:
    def __init__(self, trust: TokenTrust, refresher: TrustRefresher | None = None) -> None:
        self._trust = trust
        # None: static trust (tests, benchmarks); else the worker's background fetcher, nudged on unknown kids.
        self._refresher = refresher
        self._verified: dict[bytes, tuple[TokenClaims, float]] = {}

    def forget(self) -> None:
        """Drop cached verifications (the published keys changed)."""
        self._verified.clear()

    def claims(self, authorization: bytes | None) -> TokenClaims:
        """The claims of a valid `Authorization: Bearer <jwt>`, or InvalidToken."""
        if not authorization:
            raise InvalidToken("missing Authorization header")
        now = time.time()
        cached = self._verified.get(authorization)
        if cached is not None and cached[1] > now:
            self._trust.check_not_revoked(cached[0])
            return cached[0]
        scheme, _, token = authorization.decode("latin-1").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise InvalidToken("expected 'Bearer <token>'")
        try:
            claims = self._trust.verify(token.strip())
        except UnknownKey:
            # Refused now (the hot path does not wait); keys published since the last fetch arrive soon. A new
            # key signs only after two refresh periods, so a real token does not get here.
            if self._refresher is not None:
                self._refresher.want_refresh()
            raise
        if len(self._verified) >= MAX_CACHED_TOKENS:
            self._verified.clear()
        self._verified[authorization] = (claims, min(claims.expires, now + CACHE_SECONDS))
        return claims

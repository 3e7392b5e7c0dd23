"""JWTs: signed by user-service alone (Ed25519, `kid` in the header), verified everywhere with its public keys.

The verifiers hold no secret: a `TokenTrust` (the published JWKS plus the token versions user-service revoked) is
all they need. docs/access.md says who holds what, and how a key is rotated.
"""

import base64
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ALGORITHM = "EdDSA"
ADMIN_ROLE = "admin"
# The claim naming the user's token version at issue; a password change raises the version (revocation).
VERSION_CLAIM = "ver"


class InvalidToken(Exception):
    """The token is missing, malformed, expired, revoked, or not signed by a key user-service publishes."""


class UnknownKey(InvalidToken):
    """Signed with a key id the verifier does not know (yet): worth asking user-service again."""


class TrustNotReady(UnknownKey):
    """The verifier has no published key yet (it just started, and user-service has not answered it): no token can
    be judged, so the answer is 503 and the client tries again, not 401."""


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a verified token says about its bearer."""

    subject: str
    roles: frozenset[str]
    expires: float
    version: int = 0

    @property
    def is_admin(self) -> bool:
        return ADMIN_ROLE in self.roles


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One Ed25519 key pair with its key id; only user-service (and a test's own kit) ever holds one."""

    kid: str
    private: Ed25519PrivateKey
    created: float = 0.0

    @classmethod
    def generate(cls, kid: str, created: float | None = None) -> "SigningKey":
        return cls(kid, Ed25519PrivateKey.generate(), time.time() if created is None else created)

    @classmethod
    def from_raw(cls, kid: str, raw: str, created: float) -> "SigningKey":
        return cls(kid, Ed25519PrivateKey.from_private_bytes(_unb64url(raw)), created)

    @property
    def raw(self) -> str:
        """The 32 private bytes, base64url: how the key file stores it."""
        return _b64url(self.private.private_bytes_raw())

    def public_jwk(self) -> dict[str, str]:
        """RFC 8037: an OKP key, crv Ed25519, x the 32 public bytes."""
        public = self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": _b64url(public), "kid": self.kid, "alg": ALGORITHM, "use": "sig"}


def jwks(keys: list[SigningKey]) -> dict[str, Any]:
    """The public half of `keys` as a JWKS document (RFC 7517)."""
    return {"keys": [key.public_jwk() for key in keys]}


def public_keys(document: Mapping[str, Any]) -> dict[str, Ed25519PublicKey]:
    """kid -> key of the Ed25519 signing keys in a JWKS document; anything else in it is ignored."""
    found: dict[str, Ed25519PublicKey] = {}
    for entry in document.get("keys", []):
        if not isinstance(entry, dict) or entry.get("kty") != "OKP" or entry.get("crv") != "Ed25519":
            continue
        kid, x = entry.get("kid"), entry.get("x")
        if isinstance(kid, str) and isinstance(x, str):
            found[kid] = Ed25519PublicKey.from_public_bytes(_unb64url(x))
    return found


def issue_token(user_id: str, key: SigningKey, ttl_seconds: int, roles: tuple[str, ...] = (), version: int = 0) -> str:
    now = int(time.time())
    claims: dict[str, object] = {"sub": user_id, "iat": now, "exp": now + ttl_seconds}
    if roles:
        claims["roles"] = list(roles)
    if version:
        claims[VERSION_CLAIM] = version
    return jwt.encode(claims, key.private, algorithm=ALGORITHM, headers={"kid": key.kid})


@dataclass
class TokenTrust:
    """What a verifier trusts: user-service's published keys, and per user the lowest token version still valid."""

    keys: dict[str, Ed25519PublicKey] = field(default_factory=dict)
    min_versions: dict[str, int] = field(default_factory=dict)

    def verify(self, token: str) -> TokenClaims:
        """The claims of a token signed by a published key, unexpired and not revoked, or InvalidToken."""
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from exc
        key = self.keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            if not self.keys:
                raise TrustNotReady("user-service's keys are not loaded yet")
            raise UnknownKey(f"unknown key id {kid!r}")
        try:
            # Only EdDSA: a token "signed" with HS256 (or alg none) never reaches a key.
            claims = jwt.decode(token, key, algorithms=[ALGORITHM], options={"require": ["sub", "exp", "iat"]})
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from exc
        roles = claims.get("roles", [])
        version = claims.get(VERSION_CLAIM, 0)
        if not isinstance(claims["sub"], str) or not isinstance(roles, list) or not isinstance(version, int):
            raise InvalidToken("malformed claims")
        verified = TokenClaims(claims["sub"], frozenset(str(role) for role in roles), float(claims["exp"]), version)
        self.check_not_revoked(verified)
        return verified

    def check_not_revoked(self, claims: TokenClaims) -> None:
        """Also for a verification remembered from earlier: a password change ends older tokens at once."""
        if claims.version < self.min_versions.get(claims.subject, 0):
            raise InvalidToken("token ended by a password change")

    @classmethod
    def static(cls, document: Mapping[str, Any]) -> "TokenTrust":
        """Trust exactly the keys of `document` (in-process tests, a benchmark's private gateway)."""
        return cls(public_keys(document))

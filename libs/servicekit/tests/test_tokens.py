"""servicekit.tokens and token_trust: what a verifier accepts, with no stack and no secret."""

import time

import jwt
import pytest

from servicekit.auth import VerifiedTokens
from servicekit.errors import DomainError
from servicekit.token_trust import TrustDocuments, TrustRefresher, TrustUnavailable, apply
from servicekit.tokens import InvalidToken, SigningKey, TokenTrust, TrustNotReady, UnknownKey, issue_token, jwks

pytestmark = pytest.mark.unit

OLD_SHARED_SECRET = "the-hs256-secret-every-service-used-to-hold-32b"


def test_a_token_signed_by_a_published_key_is_accepted_with_its_claims() -> None:
    key = SigningKey.generate("k1")
    claims = TokenTrust.static(jwks([key])).verify(issue_token("alice", key, 60, ("admin",), version=3))
    assert (claims.subject, claims.roles, claims.version) == ("alice", frozenset({"admin"}), 3)


def test_an_hs256_token_is_refused_even_with_a_known_kid() -> None:
    key = SigningKey.generate("k1")
    now = int(time.time())
    forged = jwt.encode({"sub": "alice", "iat": now, "exp": now + 60}, OLD_SHARED_SECRET, "HS256", {"kid": "k1"})
    with pytest.raises(InvalidToken):
        TokenTrust.static(jwks([key])).verify(forged)


def test_a_token_with_an_unknown_kid_is_refused() -> None:
    published, other = SigningKey.generate("k1"), SigningKey.generate("k2")
    with pytest.raises(UnknownKey):
        TokenTrust.static(jwks([published])).verify(issue_token("alice", other, 60))


def test_a_key_with_a_published_kid_but_other_bytes_is_refused() -> None:
    published, impostor = SigningKey.generate("k1"), SigningKey.generate("k1")
    with pytest.raises(InvalidToken):
        TokenTrust.static(jwks([published])).verify(issue_token("alice", impostor, 60))


def test_an_expired_token_is_refused() -> None:
    key = SigningKey.generate("k1")
    with pytest.raises(InvalidToken):
        TokenTrust.static(jwks([key])).verify(issue_token("alice", key, -10))


def test_a_raised_token_version_ends_older_tokens_only() -> None:
    key = SigningKey.generate("k1")
    trust = TokenTrust.static(jwks([key]))
    old, new = issue_token("alice", key, 60, version=0), issue_token("alice", key, 60, version=1)
    apply(trust, (jwks([key]), {"minVersions": {"alice": 1}}))
    with pytest.raises(InvalidToken):
        trust.verify(old)
    assert trust.verify(new).version == 1


async def test_rotation_is_learned_by_refreshing_and_the_previous_key_stays_valid() -> None:
    first, second = SigningKey.generate("k1"), SigningKey.generate("k2")
    published = [first]

    async def source() -> TrustDocuments:
        return jwks(published), {"minVersions": {}}

    changes: list[bool] = []
    trust = TokenTrust()
    refresher = TrustRefresher(trust, source, 60.0, lambda: changes.append(True))
    await refresher.refresh()
    published.append(second)
    with pytest.raises(UnknownKey):
        trust.verify(issue_token("alice", second, 60))
    await refresher.refresh()
    assert trust.verify(issue_token("alice", second, 60)).subject == "alice"
    assert trust.verify(issue_token("alice", first, 60)).subject == "alice"
    assert len(changes) == 2


async def test_before_any_key_is_loaded_a_token_cannot_be_judged_and_the_answer_is_503_not_401() -> None:
    """A verifier that just started and has not heard from user-service yet: the client is to try again."""
    token = issue_token("alice", SigningKey.generate("k1"), 60)
    with pytest.raises(TrustNotReady):
        TokenTrust().verify(token)

    async def user_service_away() -> TrustDocuments:
        raise TrustUnavailable("no USER-SERVICE instance registered")

    trust = TokenTrust()
    refresher = TrustRefresher(trust, user_service_away, refresh_seconds=5)
    tokens = VerifiedTokens(trust, refresher)
    try:
        with pytest.raises(DomainError) as refused:
            await tokens.claims(f"Bearer {token}")
    finally:
        await tokens.stop()
    assert refused.value.status_code == 503


async def test_keys_loaded_before_the_first_request_check_its_token_without_asking_user_service() -> None:
    """What an instance does before it registers (servicekit.server): its first request does not wait for a fetch."""
    key = SigningKey.generate("k1")
    fetches: list[float] = []

    async def source() -> TrustDocuments:
        fetches.append(time.monotonic())
        return jwks([key]), {"minVersions": {}}

    trust = TokenTrust()
    tokens = VerifiedTokens(trust, TrustRefresher(trust, source, refresh_seconds=60))
    try:
        assert await tokens.load(within=5)
        before = len(fetches)
        claims = await tokens.claims(f"Bearer {issue_token('alice', key, 60)}")
    finally:
        await tokens.stop()
    assert claims.subject == "alice"
    assert before >= 1 and len(fetches) == before, "the token was checked with the keys already loaded"


async def test_loading_keys_while_user_service_is_away_gives_up_within_its_bound() -> None:
    async def user_service_away() -> TrustDocuments:
        raise TrustUnavailable("no USER-SERVICE instance registered")

    trust = TokenTrust()
    tokens = VerifiedTokens(trust, TrustRefresher(trust, user_service_away, refresh_seconds=5))
    try:
        assert not await tokens.load(within=0.3)
    finally:
        await tokens.stop()

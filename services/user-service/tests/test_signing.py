"""user-service signs tokens with its own Ed25519 keys, publishes their public halves, rotates them live, and
ends older tokens when a password changes (which needs the current password)."""

import uuid

import httpx
import jwt
import pytest

from servicekit.testing import eventually
from servicekit.tokens import TokenTrust
from user_service.config import UserServiceSettings
from user_service.signing_keys import KeyStore, RotationRefused, rotate

pytestmark = pytest.mark.stack


async def logged_in(api: httpx.AsyncClient, email: str, password: str) -> str:
    # A client address of its own, so the login throttle of other tests never counts against it.
    address = {"X-Forwarded-For": f"198.51.100.{uuid.uuid4().int % 250 + 1}"}
    login = await api.post("/login", json={"email": email, "password": password}, headers=address)
    assert login.status_code == 200, login.text
    token: str = login.json()["token"]
    return token


async def signed_up_and_logged_in(api: httpx.AsyncClient, user: dict[str, str]) -> tuple[str, str]:
    user_id: str = (await api.post("/users", json=user)).json()["userId"]
    return user_id, await logged_in(api, user["email"], user["pwd"])


async def test_the_jwks_is_public_and_verifies_the_login_token(
    api: httpx.AsyncClient, new_user: dict[str, str]
) -> None:
    user_id, token = await signed_up_and_logged_in(api, new_user)

    document = (await api.get("/.well-known/jwks.json")).json()

    assert all(key["kty"] == "OKP" and "d" not in key for key in document["keys"])
    assert jwt.get_unverified_header(token)["alg"] == "EdDSA"
    assert TokenTrust.static(document).verify(token).subject == user_id


async def test_a_new_password_without_the_current_one_or_with_a_wrong_one_is_refused(
    api: httpx.AsyncClient, new_user: dict[str, str]
) -> None:
    user_id, token = await signed_up_and_logged_in(api, new_user)
    headers = {"Authorization": f"Bearer {token}"}

    missing = await api.put(f"/users/{user_id}", json={"pwd": "a-new-password"}, headers=headers)
    wrong = await api.put(f"/users/{user_id}", json={"pwd": "a-new-password", "currentPwd": "guess"}, headers=headers)
    login = await api.post("/login", json={"email": new_user["email"], "password": new_user["pwd"]})

    assert (missing.status_code, wrong.status_code) == (422, 403)
    assert login.status_code == 200, "the password is unchanged"


async def test_a_password_change_ends_every_older_token_but_not_the_next(
    api: httpx.AsyncClient, new_user: dict[str, str]
) -> None:
    user_id, older = await signed_up_and_logged_in(api, new_user)
    page = f"/users/{user_id}"
    assert (await api.get(page, headers={"Authorization": f"Bearer {older}"})).status_code == 200

    change = {"pwd": "a-new-password", "currentPwd": new_user["pwd"]}
    changed = await api.put(page, json=change, headers={"Authorization": f"Bearer {older}"})
    assert changed.status_code == 200, changed.text
    newer = await logged_in(api, new_user["email"], "a-new-password")

    async def older_refused() -> bool:
        return (await api.get(page, headers={"Authorization": f"Bearer {older}"})).status_code == 401

    await eventually(older_refused, within=10, what="the token from before the change refused")
    assert (await api.get(page, headers={"Authorization": f"Bearer {newer}"})).status_code == 200


async def test_a_rotated_key_signs_after_its_activation_and_the_previous_key_stays_valid(
    api: httpx.AsyncClient, settings: UserServiceSettings, key_store: KeyStore, new_user: dict[str, str]
) -> None:
    user_id, before = await signed_up_and_logged_in(api, new_user)
    previous_kid = jwt.get_unverified_header(before)["kid"]

    new_key = rotate(settings.signing_keys_file, settings.jwt_ttl_seconds, settings.key_activation_seconds, force=True)

    async def signed_with_new_key() -> str | None:
        _, token = await signed_up_and_logged_in(api, {**new_user, "email": f"r-{uuid.uuid4().hex[:8]}@example.com"})
        return token if jwt.get_unverified_header(token)["kid"] == new_key.kid else None

    after = await eventually(signed_with_new_key, within=15, what="a login token signed with the new key")
    published = {key["kid"] for key in (await api.get("/.well-known/jwks.json")).json()["keys"]}
    assert published == {previous_kid, new_key.kid}
    assert (await api.get(f"/users/{user_id}", headers={"Authorization": f"Bearer {before}"})).status_code == 200
    after_user = TokenTrust.static({"keys": [new_key.public_jwk()]}).verify(after).subject
    assert (await api.get(f"/users/{after_user}", headers={"Authorization": f"Bearer {after}"})).status_code == 200


def test_rotating_again_within_a_token_lifetime_is_refused(settings: UserServiceSettings, key_store: KeyStore) -> None:
    rotate(settings.signing_keys_file, settings.jwt_ttl_seconds, settings.key_activation_seconds, force=True)

    with pytest.raises(RotationRefused):
        rotate(settings.signing_keys_file, settings.jwt_ttl_seconds, settings.key_activation_seconds)

    assert len(key_store.published()) == 2

"""POST /login: a JWT for the user, in the headers and the body."""

from collections.abc import Callable

import httpx
import pytest

from servicekit.tokens import TokenClaims

pytestmark = pytest.mark.stack


async def test_login_answers_the_token_and_user_id_in_headers_and_body(
    api: httpx.AsyncClient, verified: Callable[[str], TokenClaims], new_user: dict[str, str]
) -> None:
    created = (await api.post("/users", json=new_user)).json()

    response = await api.post("/login", json={"email": new_user["email"], "password": new_user["pwd"]})

    assert response.status_code == 200
    body = response.json()
    assert body == {"token": response.headers["token"], "userId": created["userId"]}
    assert response.headers["userId"] == created["userId"]
    assert verified(body["token"]).subject == created["userId"]


async def test_login_with_a_wrong_password_is_401(api: httpx.AsyncClient, new_user: dict[str, str]) -> None:
    await api.post("/users", json=new_user)

    response = await api.post("/login", json={"email": new_user["email"], "password": "wrong-password"})

    assert response.status_code == 401
    assert "token" not in response.headers
    assert "detail" in response.json()


async def test_login_with_an_unknown_email_is_401(api: httpx.AsyncClient, new_user: dict[str, str]) -> None:
    response = await api.post("/login", json={"email": new_user["email"], "password": new_user["pwd"]})

    assert response.status_code == 401


async def test_login_without_a_password_is_422_naming_it(api: httpx.AsyncClient, new_user: dict[str, str]) -> None:
    response = await api.post("/login", json={"email": new_user["email"]})

    assert response.status_code == 422
    assert response.json()["fields"] == ["password"]

"""The authorization filter on the contract's routes: public, any valid token, or the path's own user."""

from collections.abc import Callable

import httpx
import pytest


@pytest.fixture(scope="module")
def services(start_module_instances: Callable[..., object]) -> None:
    for app in ("USER-SERVICE", "ORDER-SERVICE", "CATALOG-SERVICE"):
        start_module_instances(app, 1)


@pytest.mark.usefixtures("services")
def test_signup_login_catalogs_and_health_need_no_token(gateway_url: str) -> None:
    assert httpx.post(f"{gateway_url}/user-service/users", json={}).json()["path"] == "/users"
    assert httpx.post(f"{gateway_url}/user-service/login", json={}).json()["path"] == "/login"
    assert httpx.get(f"{gateway_url}/catalog-service/catalogs").json()["path"] == "/catalogs"
    for service in ("user-service", "order-service", "catalog-service"):
        assert httpx.get(f"{gateway_url}/{service}/health_check").json()["path"] == "/health_check"


@pytest.mark.usefixtures("services")
def test_user_routes_without_or_with_a_bad_token_are_401(gateway_url: str) -> None:
    missing = httpx.get(f"{gateway_url}/user-service/users")
    forged = httpx.get(f"{gateway_url}/user-service/users", headers={"Authorization": "Bearer not.a.jwt"})

    assert (missing.status_code, forged.status_code) == (401, 401)
    assert "detail" in missing.json()


@pytest.mark.usefixtures("services")
def test_user_routes_with_a_valid_token_pass_with_the_header(gateway_url: str, token_for: Callable[..., str]) -> None:
    token = token_for("u1")

    response = httpx.get(f"{gateway_url}/user-service/users/u1", headers={"Authorization": token})

    assert response.status_code == 200
    assert response.json()["headers"]["authorization"] == token


@pytest.mark.usefixtures("services")
def test_the_user_list_is_for_admins_and_a_user_page_for_its_user(
    gateway_url: str, token_for: Callable[..., str]
) -> None:
    plain = httpx.get(f"{gateway_url}/user-service/users", headers={"Authorization": token_for("u1")})
    admin = httpx.get(f"{gateway_url}/user-service/users", headers={"Authorization": token_for("u1", "admin")})
    foreign = httpx.get(f"{gateway_url}/user-service/users/u2", headers={"Authorization": token_for("u1")})
    foreign_put = httpx.put(f"{gateway_url}/user-service/users/u2", json={}, headers={"Authorization": token_for("u1")})

    assert (plain.status_code, admin.status_code) == (403, 200)
    assert admin.json()["path"] == "/users"
    assert (foreign.status_code, foreign_put.status_code) == (403, 403)


@pytest.mark.usefixtures("services")
@pytest.mark.parametrize(
    "path",
    [
        "/order-service//u2/orders",
        "/order-service/u1%2F..%2Fu2/orders",
        "/order-service/u1%2fu2/orders",
        "/user-service//users/u2",
        "/user-service/users//u2",
        "/user-service/users/u1%2F..%2Fu2",
        "/user-service/users%2Fu2",
        "/order-service/u1%5Cu2/orders",
    ],
)
def test_empty_segments_and_encoded_slashes_never_reach_a_service(
    gateway_url: str, token_for: Callable[..., str], path: str
) -> None:
    response = httpx.get(f"{gateway_url}{path}", headers={"Authorization": token_for("u1")})

    assert 400 <= response.status_code < 500
    assert "path" not in response.json()


@pytest.mark.usefixtures("services")
def test_two_authorization_headers_are_400(gateway_url: str, token_for: Callable[..., str]) -> None:
    headers = [("Authorization", token_for("u2")), ("Authorization", token_for("u1"))]

    response = httpx.get(f"{gateway_url}/order-service/u1/orders", headers=headers)

    assert response.status_code == 400
    assert "Authorization" in response.json()["detail"]


@pytest.mark.usefixtures("services")
def test_order_routes_need_the_token_of_the_user_in_the_path(gateway_url: str, token_for: Callable[..., str]) -> None:
    url = f"{gateway_url}/order-service/u1/orders"

    own = httpx.post(url, json={"productId": "CATALOG-001"}, headers={"Authorization": token_for("u1")})
    other = httpx.post(url, json={}, headers={"Authorization": token_for("u2")})
    missing = httpx.get(url)

    assert own.status_code == 200 and own.json()["path"] == "/u1/orders"
    assert other.status_code == 403 and "detail" in other.json()
    assert missing.status_code == 401


def test_dot_segments_cannot_climb_out_of_a_public_route(gateway_url: str) -> None:
    response = httpx.get(f"{gateway_url}/catalog-service/catalogs/%2e%2e/%2e%2e/order-service/u1/orders")

    assert response.status_code == 400

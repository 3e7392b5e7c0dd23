"""Routes in Spring Cloud Gateway's vocabulary, as loaded from gateway/routes.yaml."""

from pathlib import Path

import pytest

from api_gateway.routes import (
    Route,
    RouteConfigError,
    RouteTable,
    load_routes,
    path_pattern,
    prefix_rewrite,
    rewrite_rule,
    route_from_config,
)

pytestmark = pytest.mark.unit

ROUTES = load_routes(Path(__file__).resolve().parents[1] / "routes.yaml")


def first_match(method: str, path: str) -> tuple[Route, dict[str, str]]:
    matched = RouteTable(ROUTES).match(method, path)
    assert matched is not None, f"no route for {method} {path}"
    in_file_order = next((r, v) for r in ROUTES if (v := r.match(method, path)) is not None)
    assert matched == in_file_order
    return matched


def test_path_pattern_takes_variables_single_and_double_stars() -> None:
    matched = path_pattern("/order-service/{userId}/**").fullmatch("/order-service/u-1/orders/7")
    assert matched is not None and matched["userId"] == "u-1"
    assert path_pattern("/a/**").fullmatch("/a") is not None
    assert path_pattern("/a/*.json").fullmatch("/a/x.json") is not None
    assert path_pattern("/a/*.json").fullmatch("/a/b/x.json") is None


def test_rewrite_path_takes_java_named_groups_and_escaped_replacement() -> None:
    pattern, replacement = rewrite_rule(r"/user-service/(?<segment>.*), /$\{segment}")
    assert pattern.sub(replacement, "/user-service/users/42") == "/users/42"


@pytest.mark.parametrize(
    ("method", "path", "route_id", "rewritten"),
    [
        ("POST", "/user-service/users", "user-service-signup", "/users"),
        ("POST", "/user-service/login", "user-service-login", "/login"),
        ("GET", "/user-service/users", "user-service-list", "/users"),
        ("GET", "/user-service/users/u1", "user-service-user", "/users/u1"),
        ("PUT", "/user-service/users/u1", "user-service-user", "/users/u1"),
        ("GET", "/user-service/health_check", "user-service-health", "/health_check"),
        ("GET", "/catalog-service/catalogs", "catalog-service-public", "/catalogs"),
        ("POST", "/order-service/u1/orders", "order-service-user", "/u1/orders"),
        ("GET", "/order-service/health_check", "order-service-health", "/health_check"),
    ],
)
def test_contract_routes_go_where_the_contract_says(method: str, path: str, route_id: str, rewritten: str) -> None:
    route, _ = first_match(method, path)
    assert route.id == route_id
    assert route.rewritten(path) == rewritten


def test_prefix_rewrites_slice_exactly_as_the_regex_substitutes() -> None:
    assert all(route.rewrite_prefixes is not None for route in ROUTES)
    paths = ["/order-service/u1/orders", "/order-service", "/x/order-service/a", "/order-service/a\n/order-service/b"]
    for route in ROUTES:
        assert route.rewrite is not None
        pattern, replacement = route.rewrite
        for path in [p.replace("order-service", route.app.lower()) for p in paths]:
            assert route.rewritten(path) == (pattern.sub(replacement, path) or "/"), (route.id, path)
    assert prefix_rewrite(rewrite_rule(r"/a.b/(?<s>.*), /$\{s}")) is None
    assert prefix_rewrite(rewrite_rule(r"/a/(?<s>.*), /x/$\{s}/y")) is None
    assert prefix_rewrite(rewrite_rule(r"/a/(?<s>.*), /v1/$\{s}")) == ("/a/", "/v1/")


def test_only_signup_login_catalogs_and_health_are_public() -> None:
    assert not first_match("POST", "/user-service/users")[0].requires_token
    assert not first_match("GET", "/catalog-service/catalogs")[0].requires_token
    assert first_match("GET", "/user-service/users/1")[0].requires_token
    assert first_match("POST", "/catalog-service/catalogs")[0].requires_token
    order_route, variables = first_match("GET", "/order-service/u9/orders")
    assert order_route.subject_path_variable == "userId" and variables["userId"] == "u9"


def test_every_route_drops_cookies_except_health_checks() -> None:
    for route in ROUTES:
        assert (b"cookie" in route.removed_headers) or route.id.endswith("health")


def test_the_user_list_needs_admin_and_a_user_page_its_own_user() -> None:
    assert first_match("GET", "/user-service/users")[0].required_role == "admin"
    user_route, variables = first_match("GET", "/user-service/users/u9")
    assert user_route.subject_path_variable == "userId" and variables["userId"] == "u9"
    assert first_match("GET", "/user-service/users/u9/orders")[0].subject_path_variable == "userId"


@pytest.mark.parametrize("filters", [["RemoveRequestHeader=Cookie"], ["Public", "AuthorizationHeaderFilter"]])
def test_a_route_must_be_either_public_or_need_a_token(filters: list[str]) -> None:
    with pytest.raises(RouteConfigError, match="Public"):
        route_from_config({"id": "x", "uri": "lb://X", "predicates": ["Path=/x/**"], "filters": filters})


def test_unknown_filter_is_a_config_error() -> None:
    with pytest.raises(RouteConfigError):
        route_from_config({"id": "x", "uri": "lb://X", "predicates": ["Path=/x/**"], "filters": ["Bogus"]})

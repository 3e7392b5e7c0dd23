"""Bad input through the gateway: a clear 4xx JSON naming the problem, and nothing published or written."""

import jwt
import pytest

from servicekit.config import ServiceSettings
from servicekit.testing import DictConnection, eventually, stack_signing_key
from servicekit.tokens import SigningKey, issue_token
from stack_support.api_client import GatewayClient
from tests.e2e.orders_table import SEED_PRICE, rows_of_user, settled

pytestmark = pytest.mark.stack

GOOD = {"productId": "CATALOG-001", "qty": 1, "unitPrice": SEED_PRICE["CATALOG-001"]}


def bad(body: object, status: int, field: str, *, id: str, says: str | None = None) -> object:
    """A bad body, the status it gets, the field its answer names, and what the detail says (the field, unless
    `says`)."""
    return pytest.param(body, status, field, says or field, id=id)


BAD_BODIES = [
    bad(b'{"productId": "CATALOG-001", "qty": 1,', 400, "body", says="malformed JSON", id="malformed-json"),
    bad({"qty": 1, "unitPrice": 1500}, 422, "productId", id="missing-productId"),
    bad({**GOOD, "qty": "two"}, 422, "qty", id="qty-not-a-number"),
    bad({**GOOD, "qty": 0}, 422, "qty", id="qty-zero"),
    bad({**GOOD, "qty": -3}, 422, "qty", id="qty-negative"),
    bad({**GOOD, "qty": 10**12}, 422, "qty", id="qty-absurd"),
    bad({**GOOD, "unitPrice": "cheap"}, 422, "unitPrice", id="unitPrice-not-a-number"),
    bad({**GOOD, "productId": "NO-SUCH-PRODUCT"}, 422, "productId", id="unknown-product"),
    bad({**GOOD, "discount": 50}, 422, "discount", id="unexpected-field"),
    bad([GOOD], 422, "body", id="array-instead-of-object"),
]


@pytest.mark.parametrize(("body", "status", "field", "says"), BAD_BODIES)
async def test_bad_order_body_is_refused_with_a_4xx_naming_the_problem(
    gateway: GatewayClient, body: object, status: int, field: str, says: str
) -> None:
    user = await gateway.sign_up("Careless Client")
    headers = {**user.auth, "Content-Type": "application/json"}
    kwargs = {"content": body} if isinstance(body, bytes) else {"json": body}

    response = await gateway.http.post(f"/order-service/{user.user_id}/orders", headers=headers, **kwargs)

    assert response.status_code == status, response.text
    answer = response.json()
    assert answer["fields"] == [field], answer
    assert says in answer["detail"], answer


async def test_oversized_body_gets_413(gateway: GatewayClient) -> None:
    user = await gateway.sign_up("Verbose Client")
    body = b'{"productId": "CATALOG-001", "qty": 1, "unitPrice": 1500, "note": "' + b"x" * 2_000_000 + b'"}'
    response = await gateway.http.post(
        f"/order-service/{user.user_id}/orders", content=body, headers={**user.auth, "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert "detail" in response.json()


async def test_missing_bad_expired_and_foreign_tokens_get_401_or_403(
    gateway: GatewayClient, settings: ServiceSettings
) -> None:
    alice, bob = await gateway.sign_up("Alice"), await gateway.sign_up("Bob")
    path = f"/order-service/{alice.user_id}/orders"
    # Another Ed25519 key under the stack's own key id; and the stack's key, read as the operator can.
    kid = jwt.get_unverified_header(alice.token)["kid"]
    forged = issue_token(alice.user_id, SigningKey.generate(kid), 600)
    expired = issue_token(alice.user_id, stack_signing_key(), -10)

    cases = {
        "missing": ({}, 401),
        "not a JWT": ({"Authorization": "Bearer not-a-token"}, 401),
        "wrong scheme": ({"Authorization": f"Basic {alice.token}"}, 401),
        "forged signature": ({"Authorization": f"Bearer {forged}"}, 401),
        "expired": ({"Authorization": f"Bearer {expired}"}, 401),
        "another user's": (bob.auth, 403),
    }
    for name, (headers, status) in cases.items():
        for method in ("POST", "GET"):
            response = await gateway.http.request(method, path, json=GOOD, headers=headers)
            assert response.status_code == status, f"{name} token on {method}: {response.status_code}"
            assert "detail" in response.json()


async def test_rejected_requests_leave_no_row_behind(gateway: GatewayClient, orders_db: DictConnection) -> None:
    user = await gateway.sign_up("Clumsy Then Careful")
    for body in ({**GOOD, "qty": 0}, {**GOOD, "productId": "NO-SUCH-PRODUCT"}, {"qty": 1}):
        response = await gateway.http.post(f"/order-service/{user.user_id}/orders", json=body, headers=user.auth)
        assert 400 <= response.status_code < 500

    # A good order from the same user afterwards: once it is in the table, the rejected ones would be too.
    placed = await gateway.place_order(user, "CATALOG-001", 1, SEED_PRICE["CATALOG-001"])
    await eventually(lambda: settled(orders_db, [placed.order_id]), within=60, what="the good order settles")
    assert [row["order_id"] for row in rows_of_user(orders_db, user.user_id)] == [placed.order_id]

"""Tokens only user-service can sign, end to end: refused when signed any other way, keys rotated while everything
keeps running, and a password change (which needs the current password) ends older tokens everywhere."""

import asyncio
import os
import subprocess
import sys
import time
import uuid

import httpx
import jwt
import pytest

from launcher.processes import PID_DIR
from servicekit.testing import eventually
from servicekit.tokens import SigningKey, issue_token
from stack_description import deployables
from stack_description.settings import REPO_ROOT, StackConfig
from stack_support.api_client import GatewayClient, User
from tests.e2e.test_access import instance_urls

pytestmark = pytest.mark.stack

# A verifier learns a revocation within its refresh period (5 s) plus a fetch; rotation takes two periods.
LEARN_SECONDS = 20.0


def as_bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def answers(gateway: GatewayClient, stack_config: StackConfig, user_id: str, token: str) -> tuple[int, int]:
    """(gateway, an order-service port) status for the user's order list with this token."""
    through = await gateway.http.get(f"/order-service/{user_id}/orders", headers=as_bearer(token))
    async with httpx.AsyncClient(base_url=instance_urls(stack_config, "ORDER-SERVICE")[0], timeout=10) as port:
        direct = await port.get(f"/{user_id}/orders", headers=as_bearer(token))
    return through.status_code, direct.status_code


async def test_a_token_signed_with_hs256_and_the_old_shared_secret_is_refused(
    gateway: GatewayClient, stack_config: StackConfig
) -> None:
    alice = await gateway.sign_up("Alice")
    now = int(time.time())
    claims = {"sub": alice.user_id, "iat": now, "exp": now + 600}
    kid = jwt.get_unverified_header(alice.token)["kid"]
    secret = stack_config.get("JWT_SECRET")
    forged = [jwt.encode(claims, secret, "HS256"), jwt.encode(claims, secret, "HS256", {"kid": kid})]

    for token in forged:
        assert await answers(gateway, stack_config, alice.user_id, token) == (401, 401)
    assert await answers(gateway, stack_config, alice.user_id, alice.token) == (200, 200)


async def test_a_token_with_an_unknown_kid_is_refused(gateway: GatewayClient, stack_config: StackConfig) -> None:
    alice = await gateway.sign_up("Alice")

    token = issue_token(alice.user_id, SigningKey.generate(f"unknown-{uuid.uuid4().hex[:8]}"), 600)

    assert await answers(gateway, stack_config, alice.user_id, token) == (401, 401)


def rotate_key() -> str:
    """The operator's rotation step, against the running user-service's key file."""
    env = {**os.environ, "SIGNING_KEYS_FILE": str(deployables.SIGNING_KEYS_FILE)}
    command = [sys.executable, "-m", "user_service", "rotate-key", "--force"]
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()[2].rstrip(";")  # "published key <kid>; ..."


def pids() -> dict[str, str]:
    """The signer's and the gateway's processes (other components may be restarted by other tests meanwhile)."""
    return {name: (PID_DIR / f"{name}.pid").read_text().strip() for name in ("user-service-1", "gateway")}


async def log_in(gateway: GatewayClient, user: User, password: str | None = None) -> str:
    body = {"email": user.email, "password": password or user.password}
    response = await gateway.http.post("/user-service/login", json=body)
    assert response.status_code == 200, response.text
    return response.headers["token"]


async def test_a_key_is_rotated_without_restarting_anyone(gateway: GatewayClient, stack_config: StackConfig) -> None:
    alice = await gateway.sign_up("Alice")
    before_pids = pids()

    new_kid = await asyncio.to_thread(rotate_key)

    async def signed_with_the_new_key() -> str | None:
        token = await log_in(gateway, alice)
        return token if jwt.get_unverified_header(token)["kid"] == new_kid else None

    rotated = await eventually(signed_with_the_new_key, within=LEARN_SECONDS, what=f"a login signed with {new_kid}")
    assert await answers(gateway, stack_config, alice.user_id, rotated) == (200, 200)
    assert await answers(gateway, stack_config, alice.user_id, alice.token) == (200, 200), "the previous key"
    user_page = await gateway.http.get(f"/user-service/users/{alice.user_id}", headers=as_bearer(rotated))
    assert user_page.status_code == 200
    assert pids() == before_pids


async def test_a_password_change_without_the_current_password_is_refused(gateway: GatewayClient) -> None:
    alice = await gateway.sign_up("Alice")
    page = f"/user-service/users/{alice.user_id}"

    missing = await gateway.http.put(page, json={"pwd": "a-new-password"}, headers=alice.auth)
    wrong = await gateway.http.put(page, json={"pwd": "a-new-password", "currentPwd": "a-guess"}, headers=alice.auth)

    assert (missing.status_code, wrong.status_code) == (422, 403)
    assert await log_in(gateway, alice), "the old password still logs in"


async def test_after_a_password_change_older_tokens_are_refused_at_the_gateway_and_a_service_port(
    gateway: GatewayClient, stack_config: StackConfig
) -> None:
    alice = await gateway.sign_up("Alice")
    older = alice.token
    assert await answers(gateway, stack_config, alice.user_id, older) == (200, 200)

    change = {"pwd": "a-new-password", "currentPwd": alice.password}
    changed = await gateway.http.put(f"/user-service/users/{alice.user_id}", json=change, headers=alice.auth)
    assert changed.status_code == 200, changed.text
    newer = await log_in(gateway, alice, "a-new-password")

    async def older_refused_everywhere() -> bool:
        # Each verifier (every gateway worker too) learns the revocation within its own refresh period.
        own_page = await gateway.http.get(f"/user-service/users/{alice.user_id}", headers=as_bearer(older))
        orders = await answers(gateway, stack_config, alice.user_id, older)
        return (*orders, own_page.status_code) == (401, 401, 401)

    await eventually(
        older_refused_everywhere, within=LEARN_SECONDS, what="the older token refused (gateway, port, user page)"
    )
    assert await answers(gateway, stack_config, alice.user_id, newer) == (200, 200)

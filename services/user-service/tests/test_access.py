"""Who may see what in user-service, checked by user-service itself (the gateway checks again in front of it)."""

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from servicekit.discovery import DiscoveryClient
from servicekit.testing import eventually
from servicekit.tokens import TokenClaims
from user_service.config import UserServiceSettings
from user_service.main import create_app

from .order_service_stand_in import Bearer

pytestmark = pytest.mark.stack

REPO_ROOT = Path(__file__).resolve().parents[3]

App = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def app_with(settings: UserServiceSettings, discovery: DiscoveryClient) -> App:
    """`async with app_with(admin_email=...) as api:` a user-service app with some settings changed."""

    @asynccontextmanager
    async def started(**changes: Any) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(settings.model_copy(update=changes))
        app.state.discovery = discovery
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://user") as client:
                yield client

    return started


async def signed_up(api: httpx.AsyncClient, body: dict[str, str]) -> str:
    response = await api.post("/users", json=body)
    assert response.status_code == 201, response.text
    user_id: str = response.json()["userId"]
    return user_id


def login_body(user: dict[str, str], password: str | None = None) -> dict[str, str]:
    return {"email": user["email"], "password": password if password is not None else user["pwd"]}


def from_address(address: str) -> dict[str, str]:
    """As the gateway forwards a client at `address` (the test client's peer is loopback, a trusted proxy)."""
    return {"X-Forwarded-For": address}


def fresh_address() -> str:
    return f"203.0.113.{uuid.uuid4().int % 250 + 1}-{uuid.uuid4().hex[:6]}"


async def test_listing_users_needs_the_admin_role(
    api: httpx.AsyncClient, bearer: Bearer, new_user: dict[str, str]
) -> None:
    user_id = await signed_up(api, new_user)

    anonymous = await api.get("/users")
    plain_user = await api.get("/users", headers=bearer(user_id))
    admin = await api.get("/users", headers=bearer("an-admin", admin=True))

    assert (anonymous.status_code, plain_user.status_code, admin.status_code) == (401, 403, 200)
    assert "detail" in plain_user.json()


async def test_a_user_page_is_only_for_its_own_user(
    api: httpx.AsyncClient, bearer: Bearer, new_user: dict[str, str]
) -> None:
    alice = await signed_up(api, new_user)
    bob = await signed_up(api, {**new_user, "email": f"bob-{uuid.uuid4().hex[:8]}@example.com"})

    assert (await api.get(f"/users/{bob}")).status_code == 401
    assert (await api.get(f"/users/{bob}", headers=bearer(alice))).status_code == 403
    assert (await api.get(f"/users/{bob}", headers=bearer(alice, admin=True))).status_code == 403
    own = await api.get(f"/users/{alice}", headers=bearer(alice))
    assert own.status_code == 200
    assert own.json()["email"] == new_user["email"]


async def test_a_user_changes_their_own_name_and_password_only(
    api: httpx.AsyncClient, bearer: Bearer, new_user: dict[str, str]
) -> None:
    alice = await signed_up(api, new_user)
    other = str(uuid.uuid4())
    headers = {**bearer(alice), **from_address(fresh_address())}

    foreign = await api.put(f"/users/{other}", json={"name": "Mallory"}, headers=bearer(alice))
    empty = await api.put(f"/users/{alice}", json={}, headers=headers)
    change = {"name": "Alice B", "pwd": "a-new-password", "currentPwd": new_user["pwd"]}
    changed = await api.put(f"/users/{alice}", json=change, headers=headers)

    assert (foreign.status_code, empty.status_code, changed.status_code) == (403, 422, 200)
    assert changed.json()["name"] == "Alice B"
    old = await api.post("/login", json=login_body(new_user), headers=headers)
    new = await api.post("/login", json=login_body(new_user, "a-new-password"), headers=headers)
    assert (old.status_code, new.status_code) == (401, 200)


async def test_signing_up_with_the_admin_email_gives_no_admin_role(
    app_with: App, verified: Callable[[str], TokenClaims], new_user: dict[str, str]
) -> None:
    async with app_with(admin_email=new_user["email"].upper()) as api:
        await signed_up(api, new_user)
        login = await api.post("/login", json=login_body(new_user), headers=from_address(fresh_address()))
        token = login.json()["token"]
        listed = await api.get("/users", headers={"Authorization": f"Bearer {token}"})

    assert not verified(token).is_admin
    assert listed.status_code == 403


def run_command(*arguments: str) -> subprocess.CompletedProcess[str]:
    """`python -m user_service <arguments>` as the operator runs it from the repository root."""
    command = [sys.executable, "-m", "user_service", *arguments]
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False)


def printed_password(output: str) -> str | None:
    lines = [line.removeprefix("password: ") for line in output.splitlines() if line.startswith("password: ")]
    assert len(lines) <= 1, output
    return lines[0] if lines else None


async def test_create_admin_makes_the_account_with_a_password_printed_once(
    api: httpx.AsyncClient, verified: Callable[[str], TokenClaims], new_user: dict[str, str]
) -> None:
    first = await asyncio.to_thread(run_command, "create-admin", new_user["email"])
    again = await asyncio.to_thread(run_command, "create-admin", new_user["email"])

    assert first.returncode == 0, first.stderr
    password = printed_password(first.stdout)
    assert password is not None and len(password) >= 32
    assert again.returncode == 0, again.stderr
    assert printed_password(again.stdout) is None and "admin already" in again.stdout
    login = await api.post("/login", json=login_body(new_user, password), headers=from_address(fresh_address()))
    assert login.status_code == 200, login.text
    assert verified(login.json()["token"]).is_admin


async def test_create_admin_refuses_an_email_someone_signed_up_with_first(
    api: httpx.AsyncClient, verified: Callable[[str], TokenClaims], new_user: dict[str, str]
) -> None:
    await signed_up(api, new_user)

    refused = await asyncio.to_thread(run_command, "create-admin", new_user["email"].upper())

    assert refused.returncode != 0
    assert "already has an account" in refused.stderr and printed_password(refused.stdout) is None
    login = await api.post("/login", json=login_body(new_user), headers=from_address(fresh_address()))
    assert not verified(login.json()["token"]).is_admin


async def test_grant_admin_command_makes_an_existing_account_admin(
    api: httpx.AsyncClient, verified: Callable[[str], TokenClaims], new_user: dict[str, str]
) -> None:
    await signed_up(api, new_user)
    before = await api.post("/login", json=login_body(new_user), headers=from_address(fresh_address()))

    done = await asyncio.to_thread(run_command, "grant-admin", new_user["email"])
    missing = await asyncio.to_thread(run_command, "grant-admin", "nobody-" + new_user["email"])

    assert done.returncode == 0, done.stderr
    assert missing.returncode != 0 and "no user" in missing.stderr
    after = await api.post("/login", json=login_body(new_user), headers=from_address(fresh_address()))
    assert not verified(before.json()["token"]).is_admin
    assert verified(after.json()["token"]).is_admin


async def test_twenty_wrong_passwords_lock_the_account_from_the_sixth_but_not_another_account(
    api: httpx.AsyncClient, new_user: dict[str, str]
) -> None:
    await signed_up(api, new_user)
    other = {**new_user, "email": f"other-{uuid.uuid4().hex[:8]}@example.com"}
    await signed_up(api, other)
    address = from_address(fresh_address())

    answers = [
        await api.post("/login", json=login_body(new_user, "wrong-password"), headers=address) for _ in range(20)
    ]
    right_password_while_locked = await api.post("/login", json=login_body(new_user), headers=address)
    other_account = await api.post("/login", json=login_body(other), headers=address)

    assert [a.status_code for a in answers] == [401] * 5 + [429] * 15
    assert 1 <= int(answers[-1].headers["Retry-After"]) <= 30
    assert "detail" in answers[-1].json()
    assert right_password_while_locked.status_code == 429
    assert other_account.status_code == 200


async def test_an_account_lock_ends_after_its_time(app_with: App, new_user: dict[str, str]) -> None:
    async with app_with(login_lock_seconds=1.0) as api:
        await signed_up(api, new_user)
        address = from_address(fresh_address())
        for _ in range(5):
            assert (await api.post("/login", json=login_body(new_user, "wrong"), headers=address)).status_code == 401
        locked = await api.post("/login", json=login_body(new_user), headers=address)

        async def unlocked() -> httpx.Response | None:
            answer = await api.post("/login", json=login_body(new_user), headers=address)
            return answer if answer.status_code == 200 else None

        after = await eventually(unlocked, within=5, what="the account lock to end")
    assert locked.status_code == 429
    assert after.json()["userId"]


async def test_many_failures_from_one_address_lock_that_address_only(
    api: httpx.AsyncClient, settings: UserServiceSettings, new_user: dict[str, str]
) -> None:
    await signed_up(api, new_user)
    attacker, someone_else = from_address(fresh_address()), from_address(fresh_address())

    for number in range(settings.login_failures_per_address):
        guess = {"email": f"guess-{number}-{uuid.uuid4().hex[:6]}@example.com", "password": "123456"}
        assert (await api.post("/login", json=guess, headers=attacker)).status_code == 401

    from_attacker = await api.post("/login", json=login_body(new_user), headers=attacker)
    from_elsewhere = await api.post("/login", json=login_body(new_user), headers=someone_else)
    assert (from_attacker.status_code, from_elsewhere.status_code) == (429, 200)


def spelled_otherwise(email: str) -> list[str]:
    """Five spellings of a `user-...@example.com` address that the users table's collation (utf8mb4_unicode_ci)
    takes for the same account: other case, other accents."""
    local, domain = email.split("@")
    assert local.startswith("user-"), local
    rest = local.removeprefix("user-")
    return [
        f"USER-{rest}@{domain}",
        f"\u00fas\u00e9r-{rest}@{domain}",
        f"\u00f9ser-{rest}@{domain.upper()}",
        f"us\u00e8r-{rest}@{domain}",
        f"\u00dcSER-{rest}@{domain}",
    ]


async def test_spellings_of_one_email_share_the_accounts_failure_budget(
    api: httpx.AsyncClient, settings: UserServiceSettings, new_user: dict[str, str]
) -> None:
    await signed_up(api, new_user)
    address = from_address(fresh_address())
    variants = spelled_otherwise(new_user["email"])
    assert len(set(variants)) == settings.login_failures_per_account

    for variant in variants:
        # Each variant is the same account: the collation finds it, so the right password would log in.
        wrong = await api.post("/login", json={"email": variant, "password": "wrong-password"}, headers=address)
        assert wrong.status_code == 401, wrong.text
    right_password = await api.post("/login", json=login_body(new_user), headers=address)

    assert right_password.status_code == 429

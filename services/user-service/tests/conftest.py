"""user-service against the real MariaDB, a real in-process discovery server and a small real order-service."""

import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from discovery_server.config import RegistrySettings
from discovery_server.main import create_app as create_registry_app
from servicekit.discovery import DiscoveryClient, with_credentials
from servicekit.testing import eventually, serving
from servicekit.tokens import ADMIN_ROLE, TokenClaims, TokenTrust, issue_token, jwks
from user_service.config import ORDER_SERVICE_APP, UserServiceSettings
from user_service.main import create_app
from user_service.signing_keys import KeyStore, ensure_key_file

from .order_service_stand_in import ORDERS_TIMEOUT_SECONDS, Bearer, FakeOrderService

POLL_DEADLINE_SECONDS = 15.0


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> UserServiceSettings:
    """Signing keys of its own (not the stack's), and revocations and new keys picked up within half a second."""
    return UserServiceSettings(
        instance_id="user-service-test",
        orders_timeout_seconds=ORDERS_TIMEOUT_SECONDS,
        signing_keys_file=tmp_path_factory.mktemp("user-service") / "signing-keys.json",
        token_trust_refresh_seconds=0.5,
    )


@pytest.fixture(scope="session")
def key_store(settings: UserServiceSettings) -> KeyStore:
    """The app's signing keys, as the tests read them."""
    ensure_key_file(settings.signing_keys_file)
    return KeyStore(settings.signing_keys_file, settings.key_activation_seconds)


@pytest.fixture
def verified(key_store: KeyStore) -> Callable[[str], TokenClaims]:
    """`verified(token)`: its claims, checked against the keys user-service publishes now."""
    return lambda token: TokenTrust.static(jwks(key_store.published())).verify(token)


@pytest.fixture(scope="session")
async def discovery_url() -> AsyncIterator[str]:
    """A discovery server of our own, so the stack's real order-service instances stay out of these tests."""
    registry_settings = RegistrySettings()
    async with serving(create_registry_app(registry_settings)) as base_url:
        yield with_credentials(
            f"{base_url}/eureka", registry_settings.discovery_user, registry_settings.discovery_password
        )


@pytest.fixture(scope="session")
async def discovery(discovery_url: str) -> AsyncIterator[DiscoveryClient]:
    """What user-service reads the registry through (it does not register itself here)."""
    client = DiscoveryClient(discovery_url, registry_refresh_interval=0.1)
    await client.start()
    yield client
    await client.stop()


@pytest.fixture(scope="session")
async def api(settings: UserServiceSettings, discovery: DiscoveryClient) -> AsyncIterator[httpx.AsyncClient]:
    """The user-service app with its lifespan run (migrations, engine), called in-process."""
    app = create_app(settings)
    app.state.discovery = discovery
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://user-service") as client:
            yield client


@pytest.fixture
async def order_service(discovery_url: str, discovery: DiscoveryClient) -> AsyncIterator[FakeOrderService]:
    """A real HTTP order-service stand-in, registered UP as ORDER-SERVICE for one test, then deregistered."""
    fake = FakeOrderService()

    async def visible() -> bool:
        return bool(discovery.instances(ORDER_SERVICE_APP))

    async def gone() -> bool:
        return not discovery.instances(ORDER_SERVICE_APP)

    async with serving(fake.app) as base_url:
        instance = DiscoveryClient(
            discovery_url,
            app_name=ORDER_SERVICE_APP,
            instance_id=f"fake-order-service-{uuid.uuid4().hex[:8]}",
            host="127.0.0.1",
            port=int(base_url.rsplit(":", 1)[1]),
        )
        await instance.start()
        await eventually(visible, within=POLL_DEADLINE_SECONDS, what="ORDER-SERVICE in user-service's registry copy")
        yield fake
        await instance.stop()
        await eventually(gone, within=POLL_DEADLINE_SECONDS, what="ORDER-SERVICE gone from the registry copy")


@pytest.fixture
def new_user() -> dict[str, str]:
    """A registration body with an email no earlier run has used."""
    tag = uuid.uuid4().hex[:12]
    return {"email": f"user-{tag}@example.com", "name": f"Test {tag}", "pwd": f"secret-{tag}"}


@pytest.fixture(scope="session")
def bearer(key_store: KeyStore) -> Bearer:
    """`bearer(user_id)` / `bearer(user_id, admin=True)` -> an Authorization header signed with user-service's key."""

    def headers(user_id: str, *, admin: bool = False) -> dict[str, str]:
        roles = (ADMIN_ROLE,) if admin else ()
        return {"Authorization": f"Bearer {issue_token(user_id, key_store.signing_key(), 600, roles)}"}

    return headers

"""The user-service app: migrations and database at start, the routes, and the order-service client."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from servicekit.auth import install_token_check
from servicekit.database import make_engine, make_sessions, run_migrations
from servicekit.keep_alive import internal_client
from servicekit.token_trust import TrustDocuments
from servicekit.tokens import jwks
from servicekit.tracing import instrument_http_client
from servicekit.web import install_edge
from user_service import api, service
from user_service.config import APP_NAME, UserServiceSettings
from user_service.proxies import TrustedProxies
from user_service.service import OrderServiceClient
from user_service.signing_keys import KeyStore, ensure_key_file

ALEMBIC_INI = Path(__file__).resolve().parent.parent / "alembic.ini"


def create_app(settings: UserServiceSettings) -> FastAPI:
    """The app; whoever serves it sets `app.state.discovery` (a started DiscoveryClient) before requests."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(run_migrations, ALEMBIC_INI, settings.users_db, settings)
        engine = make_engine(settings, settings.users_db)
        app.state.sessions = make_sessions(engine)
        async with internal_client(timeout=settings.orders_timeout_seconds) as http:
            instrument_http_client(http)  # the user's orders from order-service, in the same trace
            app.state.order_service = OrderServiceClient(app.state.discovery, http)
            try:
                yield
            finally:
                await app.state.verified_tokens.stop()
                await engine.dispose()

    async def own_trust() -> TrustDocuments:
        """user-service verifies tokens with its own keys and revocations, not through the registry."""
        async with app.state.sessions() as session:
            revoked = await service.revoked_token_versions(session, settings)
        return jwks(key_store.published()), {"minVersions": revoked}

    ensure_key_file(settings.signing_keys_file)
    key_store = KeyStore(settings.signing_keys_file, settings.key_activation_seconds)
    app = FastAPI(title="user-service", lifespan=lifespan)
    app.state.settings = settings
    app.state.key_store = key_store
    app.state.trusted_proxies = TrustedProxies(
        settings.trusted_proxies, settings.trusted_proxy_names, refresh_seconds=settings.trusted_proxy_refresh_seconds
    )
    install_edge(app, settings, APP_NAME)
    install_token_check(app, settings, own_trust)
    app.include_router(api.router)
    return app

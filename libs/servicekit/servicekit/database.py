"""Async engines for the shared MariaDB server, the FastAPI session dependency, migrations at start."""

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

from alembic import command
from alembic.config import Config
from fastapi import Depends, Request
from sqlalchemy import create_engine, pool, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from servicekit.config import ServiceSettings
from servicekit.tracing import instrument_engine

log = logging.getLogger(__name__)

# Several instances may start at once; only one of them migrates a database at a time.
MIGRATION_LOCK_TIMEOUT_SECONDS = 120


def make_engine(settings: ServiceSettings, database: str, *, pool_size: int = 10) -> AsyncEngine:
    engine = create_async_engine(
        settings.database_url(database),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
    )
    instrument_engine(engine)  # when tracing is on
    return engine


def make_sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """FastAPI dependency: a session from `app.state.sessions`, closed after the request."""
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
    async with sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


def ensure_database(settings: ServiceSettings, database: str) -> None:
    """CREATE DATABASE IF NOT EXISTS (blocking; call through asyncio.to_thread)."""
    engine = create_engine(settings.database_url(None, driver="mysql+pymysql"), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            quoted = connection.dialect.identifier_preparer.quote_identifier(database)
            connection.execute(text(f"CREATE DATABASE IF NOT EXISTS {quoted} CHARACTER SET utf8mb4"))
    finally:
        engine.dispose()


def run_migrations(alembic_ini_path: str | Path, database: str, settings: ServiceSettings) -> None:
    """`alembic upgrade head` on `database`, under a server-wide GET_LOCK (blocking; use asyncio.to_thread).

    The migration environment receives the locked connection as `config.attributes["connection"]`
    (see `migration_connection` for env.py).
    """
    ensure_database(settings, database)
    engine = create_engine(settings.database_url(database, driver="mysql+pymysql"), poolclass=pool.NullPool)
    lock_name = f"migrate:{database}"
    try:
        with engine.connect() as connection:
            got = connection.execute(
                text("SELECT GET_LOCK(:name, :timeout)"),
                {"name": lock_name, "timeout": MIGRATION_LOCK_TIMEOUT_SECONDS},
            ).scalar()
            if got != 1:
                raise RuntimeError(f"could not take the migration lock {lock_name!r}")
            try:
                config = Config(str(alembic_ini_path))
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                connection.commit()
            finally:
                connection.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": lock_name})
        log.info("migrations applied", extra={"database": database})
    finally:
        engine.dispose()


def run_migration_environment(settings: ServiceSettings, database: str) -> None:
    """The body of every env.py here: use the connection handed over by `run_migrations`, or connect.

    The second path serves the CLI (`alembic -c services/<svc>/alembic.ini upgrade head`), which builds its
    URL from DB_* variables and `.env`.
    """
    # alembic.context only exists while alembic runs an env.py.
    from alembic import context as alembic_context

    connection = alembic_context.config.attributes.get("connection")
    if connection is not None:
        alembic_context.configure(connection=connection, target_metadata=None)
        with alembic_context.begin_transaction():
            alembic_context.run_migrations()
        return
    ensure_database(settings, database)
    engine = create_engine(settings.database_url(database, driver="mysql+pymysql"), poolclass=pool.NullPool)
    try:
        with engine.connect() as own_connection:
            alembic_context.configure(connection=own_connection, target_metadata=None)
            with alembic_context.begin_transaction():
                alembic_context.run_migrations()
    finally:
        engine.dispose()

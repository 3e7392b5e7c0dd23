"""Async engines for the shared MariaDB server (or the first answering node of several), the FastAPI session
dependency, migrations at start."""

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Annotated, Any, cast

import aiomysql
import pymysql
from alembic import command
from alembic.config import Config
from fastapi import Depends, Request
from sqlalchemy import Engine, create_engine, event, pool, text
from sqlalchemy.engine import Dialect
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from servicekit.config import ServiceSettings
from servicekit.tracing import instrument_engine

log = logging.getLogger(__name__)

# Several instances may start at once; only one of them migrates a database at a time.
MIGRATION_LOCK_TIMEOUT_SECONDS = 120
# With several servers to try, a server that does not answer the handshake within this long is passed over.
FAILOVER_CONNECT_TIMEOUT_SECONDS = 3
# With several servers, connections made to a later one are replaced after this long (a new one goes to the first
# that answers), so the clients come back to one writer once the preferred server has returned.
FAILOVER_POOL_RECYCLE_SECONDS = 60
# With several servers, a statement, commit or rollback of the async driver unanswered this long gives its connection
# up (a node that stalled while it ran). Above InnoDB's row lock wait (innodb_lock_wait_timeout, 50 s): a statement
# waiting for a lock gets MariaDB's own error first.
FAILOVER_STATEMENT_TIMEOUT_SECONDS = 60.0


class NoServerAnswers(Exception):
    """None of DB_HOSTS accepted a connection and served writes."""


def connect_first_answering(
    settings: ServiceSettings, connect: Callable[..., Any], cparams: dict[str, Any]
) -> DBAPIConnection:
    """A DBAPI connection to the first of `settings.db_addresses` that accepts one and, if it is a Galera node,
    is synced with a primary component (a non-primary node accepts connections but refuses reads and writes; a donor
    or joiner is blocked or behind). Every client tries the servers in the same order, so all write to one node."""
    failures = []
    for host, port in settings.db_addresses:
        try:
            connection: DBAPIConnection = connect(**{**cparams, "host": host, "port": port})
        except Exception as exc:  # the driver's OperationalError for a refused or broken connection, or a timeout
            failures.append(f"{host}:{port}: {exc}")
            continue
        state = galera_state(connection)
        if state in (None, "Synced"):
            if failures:
                log.warning("database failover", extra={"server": f"{host}:{port}", "passed_over": failures})
            return connection
        connection.close()
        failures.append(f"{host}:{port}: galera node {state}, not synced")
    raise NoServerAnswers("no database server answers: " + "; ".join(failures))


def galera_state(connection: DBAPIConnection) -> str | None:
    """The node's wsrep_local_state_comment (Synced, Donor/Desynced, Joining, Initialized...); None without Galera."""
    cursor = connection.cursor()
    try:
        cursor.execute("SHOW GLOBAL STATUS LIKE 'wsrep_local_state_comment'")
        row = cursor.fetchone()
    finally:
        cursor.close()
    if not row:
        return None
    # A tuple (name, value), or a dict where the connection's cursor class makes rows dicts (the tests' DictCursor).
    return str(row["Value"] if isinstance(row, dict) else row[1])


def with_failover(
    engine: Engine, settings: ServiceSettings, *, statement_timeout: float = FAILOVER_STATEMENT_TIMEOUT_SECONDS
) -> None:
    """Make every new connection of `engine` go to the first server of DB_HOSTS that answers (nothing to do for one
    server): pool_pre_ping finds a pooled connection broken, and its replacement goes to the next server. The async
    driver's statements get `statement_timeout` seconds each (`bound_calls`)."""
    if len(settings.db_addresses) < 2:
        return

    @event.listens_for(engine, "do_connect")
    def connect(
        dialect: Dialect, record: ConnectionPoolEntry, cargs: tuple[Any, ...], cparams: dict[str, Any]
    ) -> DBAPIConnection:
        cparams.setdefault("connect_timeout", FAILOVER_CONNECT_TIMEOUT_SECONDS)
        if dialect.is_async:
            # aiomysql's connect_timeout bounds the TCP connect alone: a server that accepts and then never greets
            # (stalled) would hold the request, and every one behind it, instead of being passed over.
            bounded = partial(connect_within, cparams["connect_timeout"], statement_timeout)
            cparams.setdefault("async_creator_fn", bounded)
        try:
            return connect_first_answering(settings, partial(dialect.connect, *cargs), cparams)
        except NoServerAnswers as exc:
            # As the driver says "can't connect" (2003): callers treat it as the database away, as for one server.
            raise dialect.loaded_dbapi.OperationalError(2003, str(exc)) from exc


async def connect_within(seconds: float, statement_seconds: float, *args: Any, **kwargs: Any) -> aiomysql.Connection:
    """aiomysql.connect with the server's greeting and the login bounded too, failing as a refused connection does;
    the connection's ping (the pool's pre-ping) is bounded as well, and its statements by `statement_seconds`."""
    try:
        async with asyncio.timeout(seconds):
            connection = await aiomysql.connect(*args, **kwargs)
    except TimeoutError as exc:
        host = kwargs.get("host")
        raise pymysql.err.OperationalError(
            2003, f"Can't connect to MySQL server on {host!r} (no greeting and login within {seconds:g} s)"
        ) from exc
    bound_calls(connection, seconds, "ping")
    bound_calls(connection, statement_seconds, "query", "commit", "rollback")
    return connection


def bound_calls(connection: aiomysql.Connection, seconds: float, *names: str) -> None:
    """aiomysql has no read timeout: a server that stalls (it holds the connection and never answers) held a pooled
    connection's pre-ping until TCP gave up, minutes later, and a statement running when it stalled for as long as
    the stall lasted, with every request checking the connection out behind it. Each of these calls unanswered within
    `seconds` closes the connection and fails as a lost connection (2013): SQLAlchemy throws the connection away, and
    its replacement goes to the first server that answers."""
    for name in names:
        setattr(connection, name, _answered_within(seconds, connection, name))


def _answered_within(seconds: float, connection: aiomysql.Connection, name: str) -> Callable[..., Awaitable[Any]]:
    call = getattr(connection, name)

    async def bounded(*args: Any, **kwargs: Any) -> Any:
        try:
            async with asyncio.timeout(seconds):
                return await call(*args, **kwargs)
        except TimeoutError as exc:
            connection.close()
            lost = f"Lost connection to MySQL server at {connection.host!r} (no answer to {name} within {seconds:g} s)"
            raise pymysql.err.OperationalError(2013, lost) from exc

    return bounded


def make_engine(
    settings: ServiceSettings,
    database: str,
    *,
    pool_size: int = 10,
    statement_timeout: float = FAILOVER_STATEMENT_TIMEOUT_SECONDS,
) -> AsyncEngine:
    engine = create_async_engine(
        settings.database_url(database),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=1800 if len(settings.db_addresses) < 2 else FAILOVER_POOL_RECYCLE_SECONDS,
    )
    with_failover(engine.sync_engine, settings, statement_timeout=statement_timeout)
    instrument_engine(engine)  # when tracing is on
    return engine


def make_blocking_engine(settings: ServiceSettings, database: str | None) -> Engine:
    """A pymysql engine without a pool (migrations, CREATE DATABASE), failing over as make_engine's does."""
    engine = create_engine(settings.database_url(database, driver="mysql+pymysql"), poolclass=pool.NullPool)
    with_failover(engine, settings)
    return engine


def connect_blocking(settings: ServiceSettings, database: str | None, **options: Any) -> "pymysql.Connection[Any]":
    """A plain pymysql connection, autocommit, as `settings`' account, to the first server of DB_HOSTS that answers
    and is synced (the tools' and the tests' reads and checks; the services use engines). `options` go to
    pymysql.connect (connect_timeout, cursorclass, ...)."""
    cparams = {
        "user": settings.db_user,
        "password": settings.db_password,
        "database": database,
        "autocommit": True,
        "connect_timeout": FAILOVER_CONNECT_TIMEOUT_SECONDS if len(settings.db_addresses) > 1 else 10,
        **options,
    }
    try:
        return cast("pymysql.Connection[Any]", connect_first_answering(settings, pymysql.connect, cparams))
    except NoServerAnswers as exc:
        # As the driver says "can't connect" (2003), which callers handle as for one server (with_failover's too).
        raise pymysql.err.OperationalError(2003, str(exc)) from exc


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
    engine = make_blocking_engine(settings, None)
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
    engine = make_blocking_engine(settings, database)
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
    engine = make_blocking_engine(settings, database)
    try:
        with engine.connect() as own_connection:
            alembic_context.configure(connection=own_connection, target_metadata=None)
            with alembic_context.begin_transaction():
                alembic_context.run_migrations()
    finally:
        engine.dispose()

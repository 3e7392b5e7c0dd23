"""DB_HOSTS: several MariaDB servers (a Galera cluster) tried in one order, the first that answers taken."""

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any, cast

import pymysql
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from servicekit.config import ServiceSettings
from servicekit.database import (
    NoServerAnswers,
    connect_blocking,
    connect_first_answering,
    galera_state,
    make_blocking_engine,
    make_engine,
)
from servicekit.testing import free_port


def settings_for(db_hosts: str) -> ServiceSettings:
    return ServiceSettings(db_hosts=db_hosts, db_user="app", db_password="unused")


class HangingUpServer:
    """A real listening port that accepts a connection and closes it at once (a server that dies in the handshake),
    noting when each connection came."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.accepted: list[float] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.accepted.append(time.monotonic())
            self.took(connection)

    def took(self, connection: socket.socket) -> None:
        connection.close()

    def close(self) -> None:
        self.listener.close()


class SilentServer(HangingUpServer):
    """One that accepts and never says a word (a stalled server: the kernel completes the TCP handshake, the server
    never sends its greeting)."""

    def __init__(self) -> None:
        self.held: list[socket.socket] = []
        super().__init__()

    def took(self, connection: socket.socket) -> None:
        self.held.append(connection)

    def close(self) -> None:
        super().close()
        for connection in self.held:
            connection.close()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


@pytest.fixture
def hanging_up() -> Iterator[list[HangingUpServer]]:
    servers = [HangingUpServer(), HangingUpServer()]
    yield servers
    for server in servers:
        server.close()


@pytest.mark.unit
def test_db_hosts_lists_the_servers_in_order_and_db_host_stands_alone_without_it() -> None:
    assert settings_for("10.0.0.1:3306, db-2:3307,db-3:3308").db_addresses == [
        ("10.0.0.1", 3306),
        ("db-2", 3307),
        ("db-3", 3308),
    ]
    assert ServiceSettings(db_host="db", db_port=3310, db_user="app", db_password="x").db_addresses == [("db", 3310)]
    with pytest.raises(ValueError, match="not host:port"):
        _ = settings_for("db-1:3306,db-2").db_addresses


@pytest.mark.unit
def test_every_server_is_tried_in_the_listed_order_and_each_failure_named(hanging_up: list[HangingUpServer]) -> None:
    refusing = free_port()
    first, second = hanging_up
    settings = settings_for(f"127.0.0.1:{refusing},127.0.0.1:{second.port},127.0.0.1:{first.port}")

    with pytest.raises(NoServerAnswers) as failure:
        connect_first_answering(settings, pymysql.connect, {"user": "app", "password": "x", "connect_timeout": 2})

    message = str(failure.value)
    positions = [message.index(f"127.0.0.1:{port}:") for port in (refusing, second.port, first.port)]
    assert positions == sorted(positions), message
    assert "Connection refused" in message
    assert len(second.accepted) == 1 and len(first.accepted) == 1
    assert second.accepted[0] < first.accepted[0]


@pytest.mark.unit
def test_an_engine_with_no_server_answering_fails_as_a_refused_connection_does(
    hanging_up: list[HangingUpServer],
) -> None:
    """Callers (catalog-service counts 2000-2999 as the database away) see what one server away gives them."""
    settings = settings_for(f"127.0.0.1:{free_port()},127.0.0.1:{hanging_up[0].port}")
    engine = make_blocking_engine(settings, "mydb")

    with pytest.raises(Exception) as failure:
        engine.connect()

    orig = getattr(failure.value, "orig", None)
    assert isinstance(orig, pymysql.err.OperationalError) and orig.args[0] == 2003, failure.value
    assert len(hanging_up[0].accepted) == 1


@pytest.mark.unit
async def test_an_engine_passes_over_a_server_that_accepts_and_never_greets(silent: SilentServer) -> None:
    """The async driver bounds only the TCP connect by itself: the greeting and the login are bounded too, so a
    stalled node is passed over after FAILOVER_CONNECT_TIMEOUT_SECONDS, not waited on for as long as it stalls."""
    settings = settings_for(f"127.0.0.1:{silent.port},127.0.0.1:{free_port()}")
    engine = make_engine(settings, "mydb", pool_size=1)
    try:
        async with asyncio.timeout(30):  # a deadline for the test, far past the 3 s bound; without it: never
            with pytest.raises(Exception) as failure:
                async with engine.connect():
                    pass
    finally:
        await engine.dispose()

    orig = getattr(failure.value, "orig", None)
    assert isinstance(orig, pymysql.err.OperationalError) and orig.args[0] == 2003, failure.value
    assert f"127.0.0.1:{silent.port}: (2003" in str(orig) and "no greeting and login within 3 s" in str(orig)
    assert len(silent.accepted) == 1


@pytest.mark.stack
async def test_a_stalled_first_server_is_passed_over_for_the_next_that_answers(silent: SilentServer) -> None:
    real = ServiceSettings()  # DB_USER and DB_PASSWORD from .env
    settings = real.model_copy(update={"db_hosts": f"127.0.0.1:{silent.port},{real.db_host}:{real.db_port}"})
    engine = make_engine(settings, "information_schema", pool_size=1)
    try:
        async with asyncio.timeout(30), engine.connect() as connection:
            port = (await connection.execute(text("SELECT @@port"))).scalar_one()
    finally:
        await engine.dispose()
    assert port == real.db_port


class StallingRelay(HangingUpServer):
    """A real TCP path to the real MariaDB that can stall: after `stall()` it forwards nothing more, either way, and
    holds every connection open (as a frozen node, or a network that drops everything, looks to a client)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.stalled = threading.Event()
        self.relayed = 0
        self.held: list[socket.socket] = []
        super().__init__()

    def took(self, connection: socket.socket) -> None:
        self.held.append(connection)
        if self.stalled.is_set():
            return
        upstream = socket.create_connection(self.target)
        self.held.append(upstream)
        self.relayed += 1
        for source, sink in ((connection, upstream), (upstream, connection)):
            threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        while True:
            try:
                data = source.recv(65536)
                if not data or self.stalled.is_set():
                    return  # stalled: what comes is dropped, and both ends stay open
                sink.sendall(data)
            except OSError:
                return

    def stall(self) -> None:
        self.stalled.set()

    def close(self) -> None:
        super().close()
        for connection in self.held:
            connection.close()


@pytest.mark.stack
async def test_a_pooled_connection_to_a_server_that_stalled_since_is_replaced_by_one_to_the_next() -> None:
    """The pool's pre-ping on a connection whose server stopped answering after it was made: bounded, it fails as a
    lost connection, and the replacement passes the stalled server over. Unbounded it waited for TCP to give up,
    minutes, and so did every request behind it (here: past the test's 30 s deadline)."""
    real = ServiceSettings()  # DB_USER and DB_PASSWORD from .env
    relay = StallingRelay((real.db_host, real.db_port))
    settings = real.model_copy(update={"db_hosts": f"127.0.0.1:{relay.port},{real.db_host}:{real.db_port}"})
    engine = make_engine(settings, "information_schema", pool_size=1)
    try:
        async with engine.connect() as connection:
            through_relay = (await connection.execute(text("SELECT CONNECTION_ID()"))).scalar_one()
        assert relay.relayed == 1, "the first server listed that answers, the relay, took the connection"
        relay.stall()
        async with asyncio.timeout(30), engine.connect() as connection:
            replaced = (await connection.execute(text("SELECT CONNECTION_ID()"))).scalar_one()
    finally:
        await engine.dispose()
        relay.close()
    assert replaced != through_relay and relay.relayed == 1, "a new connection, straight to the server that answers"


@pytest.mark.stack
async def test_a_statement_running_when_its_server_stalls_fails_within_its_bound_and_the_next_goes_elsewhere() -> None:
    """A node that stalls while a statement of ours runs on it: the answer never comes. aiomysql has no read timeout,
    so the statement waited as long as the stall lasted (here: past the test's 30 s deadline) with its pooled
    connection, and every request behind it. Bounded, it fails as a lost connection (SQLAlchemy drops the connection)
    and the next statement runs on the next server."""
    real = ServiceSettings()  # DB_USER and DB_PASSWORD from .env
    relay = StallingRelay((real.db_host, real.db_port))
    settings = real.model_copy(update={"db_hosts": f"127.0.0.1:{relay.port},{real.db_host}:{real.db_port}"})
    engine = make_engine(settings, "information_schema", pool_size=1, statement_timeout=2)
    try:
        async with engine.connect() as connection:
            through_relay = (await connection.execute(text("SELECT CONNECTION_ID()"))).scalar_one()
        started = time.monotonic()
        with pytest.raises(OperationalError) as lost:
            async with asyncio.timeout(30), engine.connect() as connection:
                asyncio.get_running_loop().call_later(0.5, relay.stall)  # while the statement runs
                await connection.execute(text("SELECT SLEEP(1.5)"))
        failed_after = time.monotonic() - started
        async with asyncio.timeout(30), engine.connect() as connection:
            elsewhere = (await connection.execute(text("SELECT CONNECTION_ID()"))).scalar_one()
    finally:
        await engine.dispose()
        relay.close()
    assert lost.value.orig is not None and lost.value.orig.args[0] == 2013, lost.value
    assert lost.value.connection_invalidated, "the connection is not handed out again"
    assert 2 <= failed_after < 10, f"failed {failed_after:.1f} s after the statement began (bound: 2 s)"
    assert elsewhere != through_relay and relay.relayed == 1, "the next connection went straight to the server"


@pytest.mark.stack
def test_the_first_server_that_answers_takes_the_connections() -> None:
    """Against the real MariaDB (DB_HOST, DB_PORT of .env) behind a port nobody listens on."""
    real = ServiceSettings()  # DB_USER and DB_PASSWORD from .env
    settings = real.model_copy(update={"db_hosts": f"127.0.0.1:{free_port()},{real.db_host}:{real.db_port}"})

    async def served_by() -> int:
        engine = make_engine(settings, "information_schema", pool_size=1)
        try:
            async with engine.connect() as connection:
                port: int = (await connection.execute(text("SELECT @@port"))).scalar_one()
                return port
        finally:
            await engine.dispose()

    assert asyncio.run(served_by()) == real.db_port
    with make_blocking_engine(settings, None).connect() as connection:
        assert connection.execute(text("SELECT @@port")).scalar_one() == real.db_port


@pytest.mark.unit
def test_a_plain_connection_with_no_server_answering_fails_as_a_refused_connection_does() -> None:
    """The tools' and tests' connect_blocking: the driver's "can't connect" (2003), which they catch as pymysql
    errors, whether one server or several were tried."""
    for db_hosts in (f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()},127.0.0.1:{free_port()}"):
        with pytest.raises(pymysql.err.OperationalError) as failure:
            connect_blocking(settings_for(db_hosts), None, connect_timeout=2)
        assert failure.value.args[0] == 2003, failure.value
        assert "no database server answers" in str(failure.value)


class StatusAnswer:
    """A connection whose one query answers as a Galera node's SHOW GLOBAL STATUS does: `row`, in the shape the
    connection's cursor class gives (pymysql's default tuples, or the tests' DictCursor dicts)."""

    def __init__(self, row: object) -> None:
        self.row = row

    def cursor(self) -> "StatusAnswer":
        return self

    def execute(self, query: str) -> None:
        assert query == "SHOW GLOBAL STATUS LIKE 'wsrep_local_state_comment'"

    def fetchone(self) -> object:
        return self.row

    def close(self) -> None:
        pass


@pytest.mark.unit
@pytest.mark.parametrize(
    "row",
    [
        ("wsrep_local_state_comment", "Donor/Desynced"),
        {"Variable_name": "wsrep_local_state_comment", "Value": "Donor/Desynced"},
    ],
)
def test_the_galera_state_is_read_from_tuple_and_dict_rows_alike(row: object) -> None:
    assert galera_state(cast(Any, StatusAnswer(row))) == "Donor/Desynced"


@pytest.mark.unit
def test_a_server_without_galera_has_no_galera_state() -> None:
    assert galera_state(cast(Any, StatusAnswer(None))) is None

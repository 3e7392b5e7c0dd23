"""Which failures the stock consumer waits out (the database or the broker away) and which it narrows down to a
record and dead-letters: by MariaDB's error number, not by the driver's exception class."""

import pymysql
import pytest
from aiokafka.errors import KafkaConnectionError
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError

from catalog_service.messaging import is_infrastructure_error

pytestmark = pytest.mark.unit


def operational(errno: int, message: str = "") -> OperationalError:
    return OperationalError("UPDATE catalogs ...", {}, pymysql.err.OperationalError(errno, message))


@pytest.mark.parametrize(
    "errno",
    [2003, 2006, 2013, 1040, 1047, 1053, 1205, 1213, 1927, 4031],
    ids=[
        "cannot-connect",
        "gone-away",
        "lost",
        "too-many",
        "galera-not-ready",
        "shutdown",
        "lock",
        "deadlock",
        "killed",
        "idle",
    ],
)
def test_the_database_away_busy_or_locked_is_waited_out(errno: int) -> None:
    assert is_infrastructure_error(operational(errno))


def test_errors_without_a_database_error_number_of_their_own_are_waited_out() -> None:
    assert is_infrastructure_error(InterfaceError("SELECT 1", {}, pymysql.err.InterfaceError(0, "")))
    assert is_infrastructure_error(KafkaConnectionError())
    assert is_infrastructure_error(ConnectionRefusedError())


@pytest.mark.parametrize("errno", [4025, 1139, 1264, 1406, 3819], ids=["check", "regexp", "range", "long", "check-8"])
def test_a_server_error_about_the_statement_is_not_infrastructure(errno: int) -> None:
    assert not is_infrastructure_error(operational(errno, "CONSTRAINT `stock` failed"))


def test_other_errors_are_not_infrastructure() -> None:
    assert not is_infrastructure_error(IntegrityError("INSERT", {}, pymysql.err.IntegrityError(1062, "duplicate")))
    assert not is_infrastructure_error(ValueError("cannot apply"))

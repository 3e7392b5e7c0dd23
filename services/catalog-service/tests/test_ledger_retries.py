"""The stock ledger's transaction is tried again on the answers a retry can fix: MariaDB's deadlock (1213, also what a
Galera node answers when another node's write wins certification or aborts ours), a lock wait timeout (1205);
a bounded number of times, and never for an error about the statement."""

import pymysql
import pytest
from sqlalchemy.exc import OperationalError

from catalog_service.service import MAX_ATTEMPTS, StockLedger
from order_contract.order import Order

pytestmark = pytest.mark.unit

GALERA_CERTIFICATION_FAILURE = (1213, "Deadlock found when trying to get lock; try restarting transaction")


class FailingFirst(StockLedger):
    """A ledger whose transaction fails with `error` the first `failures` times (no database: the retry is the
    subject), then publishes nothing."""

    def __init__(self, error: tuple[int, str], failures: int) -> None:
        super().__init__(sessions=None)  # type: ignore[arg-type]  # _apply_together, the only user, is replaced
        self.error, self.failures, self.attempts = error, failures, 0

    async def _apply_together(self, orders: list[Order]) -> list[Order]:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise OperationalError("COMMIT", {}, pymysql.err.OperationalError(*self.error))
        return []


async def test_a_galera_certification_failure_at_commit_is_retried_until_the_transaction_goes_through() -> None:
    ledger = FailingFirst(GALERA_CERTIFICATION_FAILURE, failures=MAX_ATTEMPTS - 1)

    assert await ledger.apply_all([]) == []
    assert ledger.attempts == MAX_ATTEMPTS


async def test_a_lock_wait_timeout_is_retried() -> None:
    ledger = FailingFirst((1205, "Lock wait timeout exceeded; try restarting transaction"), failures=1)

    assert await ledger.apply_all([]) == []
    assert ledger.attempts == 2


async def test_the_retries_are_bounded_and_the_last_deadlock_is_raised() -> None:
    ledger = FailingFirst(GALERA_CERTIFICATION_FAILURE, failures=MAX_ATTEMPTS)

    with pytest.raises(OperationalError) as failure:
        await ledger.apply_all([])

    assert failure.value.orig is not None and failure.value.orig.args[0] == 1213
    assert ledger.attempts == MAX_ATTEMPTS


async def test_an_error_about_the_statement_is_not_retried() -> None:
    ledger = FailingFirst((4025, "CONSTRAINT `stock_not_negative` failed"), failures=1)

    with pytest.raises(OperationalError):
        await ledger.apply_all([])

    assert ledger.attempts == 1

"""Publishing orders: the PENDING order and its stock request in one Kafka transaction, commits shared.

Each of the instance's lanes (one transactional producer each) drains every queued order into its next
transaction (group commit): while one lane commits, new orders queue up and the next free lane sends them, so a
commit is paid per batch, not per request.

A 503 is the truth: an order whose request was answered "not committed in time" is never committed later. Its
transaction waits for its records to be written, then aborts if any of its requests was answered meanwhile (with
two of three brokers down the records cannot be written, so that is where the wait is); once the commit request is
out, the expiry waits for its outcome (up to another timeout). Before this, a refused order's transaction committed
when the brokers returned, and the client's retry published the order again (docs/cluster.md).

Tracing: each order keeps the trace context of the request that made it. Its two records get one "send" span each
(children of that request's span), and each record carries its own span's traceparent in its headers, so a
transaction of 500 orders from 500 requests still continues 500 traces.
"""

import asyncio
import logging
import time
from collections import deque

from aiokafka import AIOKafkaProducer
from aiokafka.errors import IllegalOperation, KafkaError
from opentelemetry.trace import SpanContext
from prometheus_client import Counter, Histogram

from order_contract.connect_record import order_record_key, order_record_value
from order_contract.order import Order
from order_contract.stock_request import stock_request_key, stock_request_value
from order_contract.topics import ORDERS_TOPIC, STOCK_TOPIC
from order_service.view import Position
from servicekit import tracing
from servicekit.kafka import KafkaAccess, fresh_producer
from servicekit.tasks import cancel_and_wait

log = logging.getLogger(__name__)

# Per instance (Prometheus adds the instance label): the group commit at work.
ORDERS_PUBLISHED = Counter("orders_published_total", "Orders committed to Kafka (order and stock request together)")
TRANSACTIONS = Counter("order_transactions_total", "Kafka transactions of the order publisher, by outcome", ["outcome"])
TRANSACTION_ORDERS = Histogram(
    "order_transaction_orders", "Orders per committed transaction", buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500)
)
COMMIT_SECONDS = Histogram(
    "order_transaction_commit_seconds",
    "From a transaction's first send to its commit",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
)


class PublishFailed(Exception):
    """The order did not reach its sink: the transaction carrying it was aborted or did not commit in time."""


# An order, its waiting request (answered with where the order's record is), and that request's trace context
# (None when tracing is off).
_Pending = tuple[Order, asyncio.Future[Position], SpanContext | None]


class OrderPublisher:
    """The OrderSink of ORDER_STORE=kafka (sinks.py). Group commit over `lanes` transactional producers: while one
    lane commits, the next collects and sends.

    Each lane has a stable transactional id (`<transactional_id>:<lane>`), so a restarted instance fences every
    transaction its predecessor left open.
    """

    def __init__(
        self,
        kafka: KafkaAccess,
        transactional_id: str,
        *,
        lanes: int = 4,
        max_batch: int = 500,
        commit_timeout: float = 10.0,
    ) -> None:
        self.kafka = kafka
        self.transactional_ids = [f"{transactional_id}:{lane}" for lane in range(lanes)]
        self.max_batch = max_batch
        self.commit_timeout = commit_timeout
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        # (deadline, waiter) in the order publish() was called: with one timeout for all, deadlines are sorted.
        self._deadlines: deque[tuple[float, asyncio.Future[Position]]] = deque()
        self._expiry_interval = max(0.01, min(0.25, commit_timeout / 4))
        self._producers: dict[str, AIOKafkaProducer] = {}
        # Waiters whose transaction is committing (its records written): answered by the commit, not the expiry.
        self._committing: set[asyncio.Future[Position]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        # Counters for logs, tests and the benchmark: orders per transaction = the group commit at work.
        self.committed_transactions = 0
        self.committed_orders = 0
        # Orders answered 503 for want of a commit in time, and the expiry passes that did so.
        self.expired_orders = 0
        self.expiry_passes = 0

    async def start(self) -> None:
        for transactional_id in self.transactional_ids:
            self._producers[transactional_id] = await fresh_producer(self.kafka, transactional_id)
        self._tasks = [
            asyncio.create_task(self._publish_forever(transactional_id), name=f"order-publisher-{transactional_id}")
            for transactional_id in self.transactional_ids
        ]
        self._tasks.append(asyncio.create_task(self._expire_forever(), name="order-publisher-expiry"))

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        # Every waiter, queued or in a transaction the cancelled lanes left, is in _deadlines.
        while self._deadlines:
            _, waiter = self._deadlines.popleft()
            if not waiter.done():
                waiter.set_exception(PublishFailed("shutting down"))
        for producer in self._producers.values():
            await producer.stop()
        log.info(
            "publisher stopped",
            extra={"transactions": self.committed_transactions, "orders": self.committed_orders},
        )

    async def publish(self, order: Order) -> Position:
        """Returns where the order's record is on `orders` once the transaction holding both messages of `order`
        has committed; raises PublishFailed if that has not happened within `commit_timeout` seconds."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Position] = loop.create_future()
        self._queue.put_nowait((order, waiter, tracing.current_span_context()))
        self._deadlines.append((loop.time() + self.commit_timeout, waiter))
        return await waiter

    async def _expire_forever(self) -> None:
        """Fails the waiters past their deadline: one timer for all of them. A wait_for per request cost a timer
        and two more futures per order, a share of the publishing throughput a profile shows plainly."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._expiry_interval)
            now = loop.time()
            expired = 0
            while self._deadlines and (self._deadlines[0][1].done() or self._deadlines[0][0] <= now):
                deadline, waiter = self._deadlines[0]
                if waiter in self._committing and now < deadline + self.commit_timeout:
                    break  # its commit request is out: the commit answers it (a 503 now might be untrue)
                self._deadlines.popleft()
                if not waiter.done():
                    # Not sent yet: it never will be (done waiters are skipped). Sent: its transaction is aborted
                    # (_commit). Committing for another whole timeout: the one answer that may be untrue, logged.
                    waiter.set_exception(PublishFailed(f"no commit within {self.commit_timeout} s"))
                    expired += 1
                    if waiter in self._committing:
                        log.error("answered 503 while its commit was still out: it may yet commit")
            if expired:
                self.expired_orders += expired
                self.expiry_passes += 1
                log.warning("orders not committed in time", extra={"orders": expired, "timeout": self.commit_timeout})

    async def _publish_forever(self, transactional_id: str) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            batch = [pending for pending in batch if not pending[1].done()]
            if not batch:
                continue
            await self._publish_batch(transactional_id, batch)

    async def _publish_batch(self, transactional_id: str, batch: list[_Pending]) -> None:
        """One transaction for `batch`. When Kafka refuses it (a fenced or timed-out producer: the coordinator has
        aborted what it held, so nothing of it is visible), the orders whose waiters still wait go once more in a
        transaction of a fresh producer; their deadline still holds. Then each waiter gets its answer."""
        for attempt in (1, 2):
            started = time.perf_counter()
            try:
                positions = await self._commit(self._producers[transactional_id], batch)
            except Exception as exc:
                TRANSACTIONS.labels("aborted").inc()
                log.exception("transaction failed", extra={"orders": len(batch), "transactional_id": transactional_id})
                # The producer may be fenced or stuck; one with the same id starts clean.
                self._producers[transactional_id] = await fresh_producer(
                    self.kafka, transactional_id, self._producers[transactional_id]
                )
                waiting = [pending for pending in batch if not pending[1].done()]
                # IllegalOperation: the producer left its transaction before a record went out (aiokafka's word for
                # a transaction manager already failed, e.g. fenced): nothing was sent, so the same as a refusal.
                if attempt == 1 and waiting and isinstance(exc, (KafkaError, IllegalOperation)):
                    log.info("sending the orders again in a new transaction", extra={"orders": len(waiting)})
                    batch = waiting
                    continue
                for _, waiter, _ in batch:
                    if not waiter.done():
                        waiter.set_exception(PublishFailed(str(exc) or type(exc).__name__))
                return
            TRANSACTIONS.labels("committed").inc()
            COMMIT_SECONDS.observe(time.perf_counter() - started)
            TRANSACTION_ORDERS.observe(len(batch))
            ORDERS_PUBLISHED.inc(len(batch))
            self.committed_transactions += 1
            self.committed_orders += len(batch)
            for (_, waiter, _), position in zip(batch, positions, strict=True):
                if not waiter.done():
                    waiter.set_result(position)
            return

    async def _commit(self, producer: AIOKafkaProducer, batch: list[_Pending]) -> list[Position]:
        """Both records of every order in one transaction; where each order's `orders` record is. Aborted, not
        committed, when a waiter of the batch was answered 503 meanwhile: a refused order must leave nothing."""
        waiters = {waiter for _, waiter, _ in batch}
        with tracing.KafkaSpans() as spans:
            try:
                async with producer.transaction():
                    deliveries = []
                    for order, _, trace_context in batch:
                        for topic, key, value in _records(order):
                            headers = spans.send(topic, key, trace_context)
                            deliveries.append(await producer.send(topic, value, key=key, headers=headers))
                    # Every record written (not visible yet) before the commit is decided: while the brokers cannot
                    # take them (2 of 3 down), this is where the wait is, and where the expiry may answer 503.
                    sent = await asyncio.gather(*deliveries)
                    spans.landed(sent)
                    refused = [w for w in waiters if w.done() and not w.cancelled()]
                    if refused:
                        raise PublishFailed(
                            f"{len(refused)} of its orders answered 503 before their records were written"
                        )
                    # From here the commit's outcome is each waiter's answer; the expiry leaves them alone.
                    self._committing |= waiters
            finally:
                self._committing -= waiters
        # Two records per order, the `orders` one first.
        return [Position(metadata.partition, metadata.offset) for metadata in sent[::2]]


def _records(order: Order) -> tuple[tuple[str, bytes, bytes], tuple[str, bytes, bytes]]:
    """The records publishing `order` takes, (topic, key, value) each: the order on `orders`, then its stock request."""
    return (
        (ORDERS_TOPIC, order_record_key(order), order_record_value(order)),
        (STOCK_TOPIC, stock_request_key(order), stock_request_value(order)),
    )

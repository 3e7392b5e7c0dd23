"""Where an accepted order goes: order intake hands every order to one OrderSink and knows nothing else.

- OrderPublisher (messaging.py), ORDER_STORE=kafka: both messages in one Kafka transaction; the JDBC sink
  writes the shared table.
- LocalOrderStore, ORDER_STORE=local: the course's "before", one insert into this instance's own database.
- DiscardingSink, PUBLISH_ORDERS=false: the benchmark's baseline, the same endpoint with nothing sent.
"""

import logging
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from order_contract.order import Order
from order_service.models import OrderRow
from order_service.view import Position

log = logging.getLogger(__name__)


class OrderSink(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...

    async def publish(self, order: Order) -> Position | None:
        """Returns once the order is durable, with where its record is on `orders` (None: it went to no topic);
        raises messaging.PublishFailed when it is not durable."""
        ...


class LocalOrderStore:
    """Each instance keeps its own orders: what the course started from, and why instances disagreed."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def start(self) -> None:
        log.warning("ORDER_STORE=local: orders stay in this instance's own database")

    async def stop(self) -> None:
        pass

    async def publish(self, order: Order) -> Position | None:
        async with self._sessions.begin() as session:
            session.add(OrderRow.from_order(order))
        return None


class DiscardingSink:
    """PUBLISH_ORDERS=false, for the benchmark's baseline: the same endpoint, nothing sent anywhere."""

    async def start(self) -> None:
        log.warning("PUBLISH_ORDERS=false: orders are answered but not published (benchmark baseline)")

    async def stop(self) -> None:
        pass

    async def publish(self, order: Order) -> Position | None:
        return None

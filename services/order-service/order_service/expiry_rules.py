"""The expirer's bookkeeping for one partition of `orders`, without Kafka: which orders still wait for an outcome,
which of them are overdue at a moment, and where a new owner of the partition must start reading.
expiry.py feeds it the records it polls and publishes what it decides; tests/test_expiry_rules.py tests each rule.
"""

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass

from order_contract.connect_record import order_from_record_value
from order_contract.order import InvalidMessage, Order, OrderStatus


@dataclass(frozen=True)
class Deadline:
    """An order is overdue `grace` after its saga deadline (`seconds` after it was taken)."""

    seconds: float
    grace: dt.timedelta

    def due(self, order: Order) -> dt.datetime:
        """From when the order, still PENDING, is overdue."""
        return order.deadline(self.seconds) + self.grace

    def passed(self, order: Order, moment: dt.datetime) -> bool:
        return moment >= self.due(order)


class WaitingOrders:
    """A partition's PENDING orders with no outcome yet, each with the offset of its (first) PENDING record."""

    def __init__(self) -> None:
        self._orders: dict[str, tuple[Order, int]] = {}
        # What `overdue` remembers between calls, so that a call when nothing is due looks only at the orders read
        # since the last: under `_rule`, no order read before them is due before `_next_due` (None: none waits).
        # Orders that left since only make it earlier than need be, which costs a look at all, never a miss.
        self._rule: Deadline | None = None
        self._next_due: dt.datetime | None = None
        self._fresh: list[Order] = []

    def __len__(self) -> int:
        return len(self._orders)

    def read(self, value: bytes | None, offset: int) -> None:
        """One record of the partition, in offset order: a PENDING order starts waiting (a redelivered PENDING
        keeps its first offset), any outcome ends the wait, and a record that is no order changes nothing (the
        sink dead-letters it)."""
        try:
            order = order_from_record_value(value)
        except InvalidMessage:
            return
        if order.status is OrderStatus.PENDING:
            if order.order_id not in self._orders:
                self._orders[order.order_id] = (order, offset)
                self._fresh.append(order)
        else:
            self._orders.pop(order.order_id, None)

    def overdue(self, deadline: Deadline, moment: dt.datetime) -> list[Order]:
        """The waiting orders overdue at `moment`, in the order they were read. Called after every poll: while none
        is due it costs the orders read since the last call, not every order that waits."""
        if deadline != self._rule:
            self._rule, self._next_due = deadline, None
            self._fresh = [order for order, _ in self._orders.values()]
        for order in self._fresh:
            due = deadline.due(order)
            if self._next_due is None or due < self._next_due:
                self._next_due = due
        self._fresh = []
        if self._next_due is None or moment < self._next_due:
            return []
        found, next_due = [], None
        for order, _ in self._orders.values():
            due = deadline.due(order)
            if moment >= due:
                found.append(order)
            if next_due is None or due < next_due:  # the overdue too: they wait until settled
                next_due = due
        self._next_due = next_due
        return found

    def settle(self, order_ids: Collection[str]) -> None:
        """These orders were expired (their EXPIRED records committed): they wait no more."""
        for order_id in order_ids:
            self._orders.pop(order_id, None)

    def restart_offset(self, position: int, settled: Collection[str] = ()) -> int:
        """Where a new owner must start reading: the oldest record of an order still waiting (`settled` ones aside),
        or `position`, how far this owner has read, when none waits."""
        waiting = (offset for order_id, (_, offset) in self._orders.items() if order_id not in settled)
        return min(waiting, default=position)

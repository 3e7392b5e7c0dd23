"""The saga's stock rules, as one pure function: the ledger and the stock as they are, the records of a poll, and
the moment in; what to write and what to publish out. service.StockLedger reads the state, calls `decide`, and
writes what it says in one transaction; tests/test_stock_rules.py checks each rule without a database.

The rules, per record in order:
- a stock request (PENDING) seen for the first time: CONFIRMED and the qty taken if the product has that much left,
  else REJECTED (an unknown product has nothing left); past its deadline: EXPIRED, nothing taken, nothing published
  (the expirer answers it);
- a redelivered request: the recorded answer again, nothing taken twice (an EXPIRED one: nothing, the expirer
  answered it);
- an expiry notice (EXPIRED) for an order never answered here: recorded, so that its request, if read later, takes
  nothing; for one answered here: taken back, the ledger row's product and qty given back if it was CONFIRMED
  (never what the notice says: security review N3), EXPIRED published as the last word. A notice that describes its
  order otherwise than the row is listed.
"""

import datetime as dt
from dataclasses import dataclass, field, fields

from order_contract.order import Order, OrderStatus


def differences(notice: Order, recorded: Order) -> list[str]:
    """The fields, status aside, in which an expiry notice disagrees with the ledger's row for its order."""
    return [
        f.name for f in fields(Order) if f.name != "status" and getattr(notice, f.name) != getattr(recorded, f.name)
    ]


@dataclass
class Decisions:
    """What a poll comes to."""

    # Records to publish on `orders`, in order.
    to_publish: list[Order] = field(default_factory=list)
    # New ledger rows, by order id.
    fresh: dict[str, Order] = field(default_factory=dict)
    # Orders answered here, then expired: the status each was answered with (the row is updated only from it).
    expired_late: dict[str, OrderStatus] = field(default_factory=dict)
    # (notice, ledger row) where an expiry notice disagrees with the row.
    disagreeing: list[tuple[Order, Order]] = field(default_factory=list)
    # Stock taken (+) or given back (-) per product.
    change: dict[str, int] = field(default_factory=dict)
    # Requests read again: answered from the ledger.
    redelivered: list[str] = field(default_factory=list)

    def move(self, product_id: str, qty: int) -> None:
        self.change[product_id] = self.change.get(product_id, 0) + qty


def decide(
    orders: list[Order],
    recorded: dict[str, Order],
    stock: dict[str, int],
    *,
    now: dt.datetime,
    deadline_seconds: float,
) -> Decisions:
    """Apply `orders` (stock requests and expiry notices) to the ledger rows `recorded` and the stock left per
    product `stock`. Both are updated in place as the records are applied (a later record of the poll sees what an
    earlier one did); stock never goes below zero."""
    decisions = Decisions()
    for order in orders:
        outcome = recorded.get(order.order_id)
        if order.status is OrderStatus.EXPIRED:
            _expire(order, outcome, recorded, stock, decisions)
        elif outcome is not None:
            decisions.redelivered.append(order.order_id)
            if outcome.status is not OrderStatus.EXPIRED:  # the expirer answered for EXPIRED ones
                decisions.to_publish.append(outcome)
        elif now >= order.deadline(deadline_seconds):
            recorded[order.order_id] = decisions.fresh[order.order_id] = order.with_status(OrderStatus.EXPIRED)
        else:
            left = stock.get(order.product_id)
            if left is not None and left >= order.qty:
                stock[order.product_id] = left - order.qty
                decisions.move(order.product_id, order.qty)
                outcome = order.with_status(OrderStatus.CONFIRMED)
            else:
                outcome = order.with_status(OrderStatus.REJECTED)
            recorded[order.order_id] = decisions.fresh[order.order_id] = outcome
            decisions.to_publish.append(outcome)
    return decisions


def _expire(
    notice: Order, outcome: Order | None, recorded: dict[str, Order], stock: dict[str, int], decisions: Decisions
) -> None:
    if outcome is None:
        recorded[notice.order_id] = decisions.fresh[notice.order_id] = notice
        return
    if outcome.status is OrderStatus.EXPIRED:
        return  # taken back already
    if differences(notice, outcome):
        decisions.disagreeing.append((notice, outcome))
    if outcome.status is OrderStatus.CONFIRMED:
        stock[outcome.product_id] = stock.get(outcome.product_id, 0) + outcome.qty
        decisions.move(outcome.product_id, -outcome.qty)
    decisions.expired_late[notice.order_id] = outcome.status
    recorded[notice.order_id] = outcome.with_status(OrderStatus.EXPIRED)
    decisions.to_publish.append(recorded[notice.order_id])

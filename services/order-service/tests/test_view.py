"""The read-your-writes view's bookkeeping (order_service.view), without brokers: records in, entries, eviction,
caps, positions and claims out. tests/e2e/test_read_your_writes.py proves the whole on the stack."""

import asyncio
import datetime as dt
import uuid

import orjson
import pytest
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from order_contract.connect_record import order_record_value
from order_contract.order import Order, OrderStatus
from order_service.service import InvalidCursor, OrderKey, _cursor, _position, merge_page, order_key, view_orders
from order_service.view import Freshness, InvalidPosition, OrderView, Position
from servicekit.kafka import KafkaAccess

pytestmark = pytest.mark.unit

CREATED = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)


def view(max_entries: int = 100) -> OrderView:
    return OrderView(KafkaAccess("127.0.0.1:1"), instance_id="test", max_entries=max_entries, sync_timeout=0.05)


def order(user_id: str = "u1", status: OrderStatus = OrderStatus.PENDING) -> Order:
    return Order(str(uuid.uuid4()), user_id, "P", 1, 100, 100, status, CREATED)


def record(offset: int, value: bytes | None, topic: str = "orders", timestamp: int = 0) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(topic, 0, offset, timestamp, 0, None, value, None, 0, len(value or b""), [])


def test_the_latest_record_of_an_order_is_its_entry_and_records_that_are_no_order_are_skipped() -> None:
    seen = view()
    placed = order()

    seen._apply_orders(0, [record(0, order_record_value(placed)), record(1, b"not json")])
    seen._apply_orders(0, [record(2, order_record_value(placed.with_status(OrderStatus.CONFIRMED)))])

    assert seen.order(placed.order_id) == placed.with_status(OrderStatus.CONFIRMED)
    assert [o.order_id for o in seen.orders_of("u1")] == [placed.order_id] and seen.orders_of("u2") == []


def test_an_entry_leaves_once_the_sink_has_written_past_its_latest_record() -> None:
    seen = view()
    placed, other = order(), order("u2")
    seen._apply_orders(0, [record(0, order_record_value(placed)), record(1, order_record_value(other))])
    seen._apply_orders(0, [record(2, order_record_value(placed.with_status(OrderStatus.REJECTED)))])

    seen._sink_offsets[0] = 2  # offsets 0 and 1 are in the table
    seen.evict()

    assert seen.order(other.order_id) is None
    assert seen.order(placed.order_id) is not None, "its REJECTED record (offset 2) is not in the table yet"
    seen._sink_offsets[0] = 3
    seen.evict()
    assert len(seen) == 0 and seen.orders_of("u1") == []


def test_the_sinks_offsets_are_asked_for_only_while_the_view_waits_for_the_sink() -> None:
    seen = view(max_entries=1)
    assert not seen._waits_for_the_sink(), "an empty view has nothing to evict: no offset fetch a second at rest"
    placed = order()
    seen._apply_orders(0, [record(0, order_record_value(placed))])
    assert seen._waits_for_the_sink()
    seen._sink_offsets[0] = 1
    seen.evict()
    assert not seen._waits_for_the_sink()

    seen._apply_orders(0, [record(1, order_record_value(order())), record(2, order_record_value(order()))])
    seen._sink_offsets[0] = 3  # both held entries written; offset 1 was dropped (view full), and is written too
    seen.evict()
    assert not seen._waits_for_the_sink()
    seen._apply_orders(0, [record(3, order_record_value(order())), record(4, order_record_value(order()))])
    seen._read_order.clear()  # as if evicted: what is left to wait for is offset 3, dropped and not yet written
    assert seen._waits_for_the_sink()


def test_past_the_cap_the_oldest_leave_and_reads_say_how_far_behind_they_are() -> None:
    seen = view(max_entries=3)
    orders = [order() for _ in range(5)]

    seen._apply_orders(0, [record(n, order_record_value(o)) for n, o in enumerate(orders)])

    assert len(seen) == 3
    assert [seen.order(o.order_id) is not None for o in orders] == [False, False, True, True, True]
    assert seen._behind({}) == 2, "two records neither in the view nor in the table"
    seen._sink_offsets[0] = 2
    assert seen._behind({}) == 0


async def test_a_read_that_cannot_reach_its_sync_point_in_time_answers_with_how_far_behind() -> None:
    seen = view()
    tp = TopicPartition("orders", 0)
    seen._positions[tp] = 7

    freshness = await seen._wait_for({tp: 10}, asyncio.get_running_loop().time() + 0.05)

    assert freshness == Freshness(3) and freshness.header == "3"
    assert await seen._wait_for({tp: 7}, asyncio.get_running_loop().time() + 0.05) == Freshness(0)
    assert Freshness(0).header is None and Freshness(None).header == "unknown"


def test_a_position_round_trips_and_anything_else_is_refused() -> None:
    assert Position.parse(Position(2, 41).token()) == Position(2, 41)
    for forged in ("", "x", "bzE6MQ", "bzI6MToy", "bzE6LTE6Mg"):  # empty, junk, 2 fields, version 2, negative
        with pytest.raises(InvalidPosition):
            Position.parse(forged)


def test_a_position_past_what_is_committed_or_on_no_partition_is_refused() -> None:
    seen = view()
    seen._orders_partitions = [TopicPartition("orders", 0)]
    targets = {TopicPartition("orders", 0): 10}

    seen._check(Position(0, 9), targets)
    with pytest.raises(InvalidPosition):
        seen._check(Position(0, 10), targets)
    with pytest.raises(InvalidPosition):
        seen._check(Position(5, 0), targets)


def test_the_first_claim_of_an_order_id_decides_and_claims_leave_after_their_window() -> None:
    seen = view()
    now_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)

    def claim(offset: int, qty: int, timestamp: int) -> ConsumerRecord[bytes, bytes]:
        value = orjson.dumps({"orderId": "o1", "productId": "P", "qty": qty, "instance": f"i{offset}"})
        return record(offset, value, "order-claims", timestamp)

    seen._apply_claims(0, [claim(0, 1, now_ms - 10), claim(1, 2, now_ms), record(2, b"{}", "order-claims")])

    first = seen._claims["o1"]
    assert (first.offset, first.qty, first.instance) == (0, 1, "i0")
    assert first.same_body("P", 1) and not first.same_body("P", 2)
    seen._claims_window_ms = 0
    seen.evict()
    assert seen._claims == {}


def test_a_page_places_a_view_order_where_its_row_will_be_and_repeats_none_across_pages() -> None:
    """Seven orders in the same millisecond, pages of three: the rows of five, the view's records of all seven
    (the sink has written five and not yet committed its offsets). Every order comes once, in key order; an order
    that moves from the view to the table between two pages keeps its place."""
    same_moment = [order() for _ in range(7)]
    expected = sorted(same_moment, key=order_key, reverse=True)
    in_table = set(o.order_id for o in expected[:2] + expected[4:])

    def table_after(after: OrderKey | None, limit: int) -> list[Order]:
        rows = [o for o in expected if o.order_id in in_table and (after is None or order_key(o) < after)]
        return rows[: limit + 1]

    seen: list[Order] = []
    after: OrderKey | None = None
    for _ in range(4):
        page, after = merge_page(table_after(after, 3), same_moment, after=after, limit=3)
        seen += page
        in_table.update(o.order_id for o in same_moment)  # the sink catches up between the pages
        if after is None:
            break

    assert [o.order_id for o in seen] == [o.order_id for o in expected]


def test_an_order_the_view_let_go_while_the_table_was_read_is_listed_from_what_it_held_before() -> None:
    """A list reads the table between two looks at the view. An entry evicted in between (the sink wrote its row and
    committed) is absent from the second look; the table, read before that row was visible, may not show it either."""
    placed, confirmed, written = order(), order(), order()
    confirmed_now = confirmed.with_status(OrderStatus.CONFIRMED)

    held = view_orders(rows=[written], held_before=[placed, confirmed, written], held_after=[confirmed_now])

    assert held == [confirmed_now, placed], "the later look wins; the order seen only before stays; the row stands"
    page, _ = merge_page([written], held, after=None, limit=10)
    assert {o.order_id for o in page} == {placed.order_id, confirmed.order_id, written.order_id}


def test_a_cursor_names_its_key_and_one_not_given_out_is_refused() -> None:
    placed = order()

    assert _position(_cursor(order_key(placed))) == order_key(placed)
    for forged in ["bm90LWEtY3Vyc29y", "", "%%%", _cursor((CREATED.replace(tzinfo=None), "x" * 65))]:
        with pytest.raises(InvalidCursor):
            _position(forged)

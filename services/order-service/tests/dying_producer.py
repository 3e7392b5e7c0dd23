"""Run by test_killed_producer.py as a child process: sends one order's two messages inside a transaction,
says "sent" once they are in the log, and then waits, without committing, to be killed."""

import asyncio
import dataclasses
import sys

from order_contract.connect_record import order_record_key, order_record_value
from order_contract.order import Order, OrderStatus
from order_contract.stock_request import stock_request_key, stock_request_value
from order_contract.timestamps import now_ms
from servicekit.config import ServiceSettings
from servicekit.kafka import transactional_producer


async def main(
    bootstrap_servers: str, transactional_id: str, orders_topic: str, stock_topic: str, order_id: str
) -> None:
    order = Order(order_id, "user-killed", "CATALOG-001", 1, 1500, 1500, OrderStatus.PENDING, now_ms())
    # The operator's credentials from .env, as the test that starts this uses.
    kafka = dataclasses.replace(ServiceSettings().kafka_access, bootstrap_servers=bootstrap_servers)
    producer = transactional_producer(kafka, transactional_id)
    await producer.start()
    await producer.begin_transaction()
    await (await producer.send(orders_topic, order_record_value(order), key=order_record_key(order)))
    await (await producer.send(stock_topic, stock_request_value(order), key=stock_request_key(order)))
    print("sent", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:6]))

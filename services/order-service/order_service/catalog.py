"""The catalog read model: every product and its price, as this instance last read them from `catalog-changes`.

The catalog-source connector turns every committed change of catalogdb.catalogs (whoever made it: catalog-service,
a migration, plain SQL) into one record on that compacted topic. Each instance reads the whole topic when it
starts (compaction keeps at least the last record of every product), then follows it. Nothing is committed
anywhere: the topic IS the state, so no consumer group is needed, and a restarted instance simply reads it again.
The instance registers with discovery only once it has caught up to the end offsets it saw at start
(main.py waits for `caught_up`), so it never prices an order from a half-read catalog.
"""

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import Counter

from order_contract.catalog_change import CatalogProduct, InvalidCatalogChange, parse_catalog_change
from order_contract.topics import CATALOG_CHANGES_TOPIC
from servicekit.kafka import KafkaAccess, committed_consumer
from servicekit.tasks import cancel_and_wait

log = logging.getLogger(__name__)

CHANGES_APPLIED = Counter("catalog_changes_applied_total", "catalog-changes records applied to the read model")
CHANGES_SKIPPED = Counter("catalog_changes_skipped_total", "catalog-changes records skipped: not a catalog row")


@dataclass(frozen=True, slots=True)
class AppliedChange:
    """One record this instance applied: when, and what it said (unit_price None: the product was deleted)."""

    offset: int
    product_id: str
    unit_price: int | None
    applied_at_ms: int


class CatalogReadModel:
    """Products by id, fed by `catalog-changes`. `start()` returns at once; `caught_up` is set once the records
    that were on the topic at start have all been applied."""

    RECENT_CHANGES = 1000
    RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0)

    def __init__(self, kafka: KafkaAccess, topic: str = CATALOG_CHANGES_TOPIC) -> None:
        self._kafka = kafka
        self._topic = topic
        self._products: dict[str, CatalogProduct] = {}
        self._recent: deque[AppliedChange] = deque(maxlen=self.RECENT_CHANGES)
        self._task: asyncio.Task[None] | None = None
        self.caught_up = asyncio.Event()
        self.applied = 0
        self.skipped = 0

    def get(self, product_id: str) -> CatalogProduct | None:
        return self._products.get(product_id)

    def __len__(self) -> int:
        return len(self._products)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._follow_forever(), name="catalog-read-model")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])

    def view(self) -> dict[str, Any]:
        """What GET /catalog-view answers: the products, and the last changes applied with their times."""
        return {
            "caughtUp": self.caught_up.is_set(),
            "applied": self.applied,
            "skipped": self.skipped,
            "products": [
                {"productId": p.product_id, "productName": p.product_name, "unitPrice": p.unit_price}
                for p in sorted(self._products.values(), key=lambda product: product.product_id)
            ],
            "recent": [
                {
                    "offset": c.offset,
                    "productId": c.product_id,
                    "unitPrice": c.unit_price,
                    "appliedAtMs": c.applied_at_ms,
                }
                for c in self._recent
            ],
        }

    def apply(self, records: Iterable[ConsumerRecord[bytes, bytes]], products: dict[str, CatalogProduct]) -> None:
        """Apply records to `products` in offset order; one that is not a catalog row is skipped (logged,
        counted), and the product keeps its last good value."""
        for record in records:
            try:
                product_id, product = parse_catalog_change(record.key, record.value)
            except InvalidCatalogChange as exc:
                self.skipped += 1
                CHANGES_SKIPPED.inc()
                log.warning(
                    "skipped a record on %s that is not a catalog row: %s",
                    self._topic,
                    exc,
                    extra={"partition": record.partition, "offset": record.offset},
                )
                continue
            if product is None:
                products.pop(product_id, None)
            else:
                products[product_id] = product
            self.applied += 1
            CHANGES_APPLIED.inc()
            price = product.unit_price if product is not None else None
            self._recent.append(AppliedChange(record.offset, product_id, price, int(time.time() * 1000)))

    async def _follow_forever(self) -> None:
        attempt = 0
        while True:
            # No group: the consumer takes every partition of the topic itself and commits nothing.
            consumer = committed_consumer(self._kafka, self._topic, group_id=None)
            try:
                await consumer.start()
                await self._follow(consumer)
            except (KafkaError, OSError) as exc:
                delay = self.RETRY_SECONDS[min(attempt, len(self.RETRY_SECONDS) - 1)]
                attempt += 1
                log.warning("reading %s failed (%s); again in %.1f s", self._topic, exc, delay)
                await asyncio.sleep(delay)
            finally:
                with contextlib.suppress(Exception):
                    await consumer.stop()

    async def _follow(self, consumer: AIOKafkaConsumer) -> None:
        """Read the topic from its start into a new table, then follow it. The new table replaces the one in use
        once it has caught up (after a reconnect, a product deleted meanwhile must not linger)."""
        partitions = await self._partitions(consumer)
        await consumer.seek_to_beginning(*partitions)
        ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        products: dict[str, CatalogProduct] = {}
        log.info("reading %s from the start", self._topic, extra={"end_offsets": sum(ends.values())})
        replaced = False
        while True:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for partition_records in batches.values():
                self.apply(partition_records, products)
            if not replaced and await self._reached(consumer, ends):
                self._products, replaced = products, True
                self.caught_up.set()
                log.info("catalog read model caught up", extra={"products": len(products)})

    async def _partitions(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        """The partitions the consumer took (once it has the topic's metadata)."""
        waited = 0.0
        while not consumer.assignment():
            await asyncio.sleep(0.05)
            waited += 0.05
            if waited >= 10.0:
                log.warning("topic %s has no partitions yet (does it exist?); waiting for it", self._topic)
                waited = 0.0
        return sorted(consumer.assignment())

    @staticmethod
    async def _reached(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
        for partition, end in ends.items():
            if await consumer.position(partition) < end:
                return False
        return True

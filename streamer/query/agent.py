"""The search agent: ``search.requests`` in, answers out, as a service of the faust worker.

It reads requests with its own aiokafka consumer group (``<app_id>-search``) rather than
through a faust agent: faust's threaded consumer delivered each record ~0.7 s after it was
produced on the embedded broker, which is fine for ingest batches and fatal for queries
(measured in ``streamer bench search``). Requests fetched together, or within the coalescing
window after the first, are answered together; offsets are committed after the answers are
delivered. Requests older than the client timeout are skipped: nobody waits for them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord
from mode import Service

from streamer.config.connections import kafka_options
from streamer.config.settings import Settings
from streamer.core.metrics import Metrics
from streamer.query.service import SearchService

__all__ = ["QueryAgent"]

log = logging.getLogger(__name__)


class QueryAgent(Service):
    def __init__(
        self,
        settings: Settings,
        searcher: SearchService,
        *,
        metrics: Metrics | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.searcher = searcher
        self.metrics = metrics
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None

    async def on_start(self) -> None:
        kafka = self.settings.kafka
        self._consumer = AIOKafkaConsumer(
            kafka.search_requests_topic,
            **kafka_options(kafka),
            group_id=f"{kafka.app_id}-search",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # Tansu answers a long-polled fetch late when the data lands on another partition
            # of the request: short polls keep the request hop at a few milliseconds.
            fetch_max_wait_ms=10,
            session_timeout_ms=int(kafka.session_timeout_s * 1000),
            heartbeat_interval_ms=int(kafka.heartbeat_interval_s * 1000),
            rebalance_timeout_ms=int(kafka.rebalance_timeout_s * 1000),
        )
        self._producer = AIOKafkaProducer(**kafka_options(kafka), acks="all", linger_ms=0)
        await self._producer.start()
        await self._consumer.start()

    async def on_stop(self) -> None:
        for part in (self._consumer, self._producer):
            if part is not None:
                await part.stop()

    async def _take(self) -> list[ConsumerRecord]:
        """The next requests: what is there now, plus what comes within the window."""
        assert self._consumer is not None
        search = self.settings.search
        first = await self._consumer.getmany(timeout_ms=1000, max_records=search.max_batch)
        records = [r for batch in first.values() for r in batch]
        if records and len(records) < search.max_batch and search.window_ms:
            more = await self._consumer.getmany(
                timeout_ms=search.window_ms, max_records=search.max_batch - len(records)
            )
            records += [r for batch in more.values() for r in batch]
        return records

    @Service.task
    async def _serve(self) -> None:
        assert self._producer is not None and self._consumer is not None
        stale_after_ms = self.settings.search.timeout_s * 1000
        while not self.should_stop:
            records = await self._take()
            if not records:
                continue
            now_ms = time.time() * 1000
            fresh = [r for r in records if now_ms - r.timestamp <= stale_after_ms]
            if len(fresh) < len(records):
                log.warning(
                    "skipped stale search requests", extra={"count": len(records) - len(fresh)}
                )
            started = time.perf_counter()
            answers = await self.searcher.answer([r.value for r in fresh], [r.key for r in fresh])
            deliveries = [
                await self._producer.send(a.reply_to, key=a.key(), value=a.value()) for a in answers
            ]
            await asyncio.gather(*deliveries)
            await self._consumer.commit()
            if self.metrics is not None:
                self.metrics.search_seconds.observe(time.perf_counter() - started)
                self.metrics.batch_size.labels("search").observe(len(fresh))

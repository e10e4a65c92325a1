"""The search agent: ``search.requests`` in, answers out, as a service of the faust worker.

It reads requests with its own aiokafka consumer group (``<app_id>-search``) rather than
through a faust agent: faust's threaded consumer delivered each record ~0.7 s after it was
produced on the embedded broker, which is fine for ingest batches and fatal for queries
(measured in ``streamer bench search``).

Three loops, so that no request waits on work that is not its own:

- the reader hands every fetched request to the :class:`~streamer.query.inbox.Inbox` at once,
  stamped with when it came, also while a search runs;
- the answerer takes what has gathered (a lone request at once, a burst after the coalescing
  window), answers it with one search per collection and filter, and sends the answers;
- the committer commits the offsets of answered requests in the background: a commit is a
  broker round trip, and the next batch used to wait for it.

Offsets are committed only for requests whose answers the broker has acknowledged, so a worker
that dies mid-batch leaves those requests to the next owner of their partitions. Requests
older than the client timeout are skipped: nobody waits for them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from mode import Service

from streamer.config.connections import kafka_options
from streamer.config.settings import Settings
from streamer.core.metrics import Metrics
from streamer.query.inbox import Arrival, Inbox
from streamer.query.service import SearchService

__all__ = ["QueryAgent"]

log = logging.getLogger(__name__)

#: batches the inbox holds before the reader stops fetching
INBOX_BATCHES = 4


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
        search = settings.search
        self.inbox = Inbox(
            max_batch=search.max_batch,
            window_ms=search.window_ms,
            capacity=INBOX_BATCHES * search.max_batch,
        )
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._answered: dict[TopicPartition, int] = {}  # the next offset to commit
        self._to_commit = asyncio.Event()

    async def on_start(self) -> None:
        kafka = self.settings.kafka
        self._consumer = AIOKafkaConsumer(
            kafka.search_requests_topic,
            **kafka_options(kafka),
            group_id=f"{kafka.app_id}-search",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=kafka.search_fetch_max_wait_ms,
            session_timeout_ms=int(kafka.session_timeout_s * 1000),
            heartbeat_interval_ms=int(kafka.heartbeat_interval_s * 1000),
            rebalance_timeout_ms=int(kafka.rebalance_timeout_s * 1000),
        )
        # acks=all: the request's offset is committed once its answer is acknowledged, so an
        # answer lost with a broker would leave its client waiting out its whole timeout
        self._producer = AIOKafkaProducer(**kafka_options(kafka), acks="all", linger_ms=0)
        await self._producer.start()
        await self._consumer.start()

    async def on_stop(self) -> None:
        if self._consumer is not None:
            await self._commit_answered()
        for part in (self._consumer, self._producer):
            if part is not None:
                await part.stop()

    @Service.task
    async def _read(self) -> None:
        assert self._consumer is not None
        max_records = self.settings.search.max_batch
        while not self.should_stop:
            fetched = await self._consumer.getmany(timeout_ms=1000, max_records=max_records)
            received_ms = time.time() * 1000
            await self.inbox.put(
                [Arrival(r, received_ms) for batch in fetched.values() for r in batch]
            )

    @Service.task
    async def _serve(self) -> None:
        while not self.should_stop:
            await self._answer(await self.inbox.take())

    @Service.task
    async def _commit(self) -> None:
        while not self.should_stop:
            await self._to_commit.wait()
            self._to_commit.clear()
            await self._commit_answered()

    async def _answer(self, arrivals: list[Arrival]) -> None:
        assert self._producer is not None
        stale_after_ms = self.settings.search.timeout_s * 1000
        now_ms = time.time() * 1000
        fresh = [a for a in arrivals if now_ms - a.record.timestamp <= stale_after_ms]
        if len(fresh) < len(arrivals):
            log.warning(
                "skipped stale search requests", extra={"count": len(arrivals) - len(fresh)}
            )
        started = time.perf_counter()
        answers = await self.searcher.answer(
            [a.record.value for a in fresh],
            [a.record.key for a in fresh],
            received_ms=[a.received_ms for a in fresh],
        )
        deliveries = [
            await self._producer.send(
                a.reply_to, key=a.key(), value=a.value(replied_ms=time.time() * 1000)
            )
            for a in answers
        ]
        await asyncio.gather(*deliveries)
        for arrival in arrivals:  # in fetch order: offsets only grow per partition
            record = arrival.record
            self._answered[TopicPartition(record.topic, record.partition)] = record.offset + 1
        self._to_commit.set()
        if self.metrics is not None:
            self.metrics.search_seconds.observe(time.perf_counter() - started)
            self.metrics.batch_size.labels("search").observe(len(fresh))

    async def _commit_answered(self) -> None:
        """Commit what has been answered, for the partitions this worker still owns (after a
        rebalance the new owner answers the rest again: a duplicate answer is dropped by the
        client, a lost one is not)."""
        assert self._consumer is not None
        owned = self._consumer.assignment()
        offsets = {tp: offset for tp, offset in self._answered.items() if tp in owned}
        self._answered.clear()
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except KafkaError as exc:
            log.warning("search offsets not committed (tried again later): %s", exc)
            for tp, offset in offsets.items():  # unless a later answer moved past them
                self._answered.setdefault(tp, offset)

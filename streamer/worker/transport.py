"""faust's Kafka transport with a configurable fetch wait, and rebalances bounded in time.

faust-streaming builds its aiokafka consumer with ``fetch_max_wait_ms=1500`` and no setting to
change it. A fetch that finds no data waits that long on the broker, and on the embedded broker
(Tansu) a fetch whose data lands on another partition of the request is answered only when the
wait runs out: an upload published to an idle worker waited up to 1.5 s before the agent saw it
(measured: the first batch of a run done 1.2-2.5 s after publishing). This transport builds the
same consumer with ``STREAMER_KAFKA_FETCH_MAX_WAIT_MS`` (100 by default; Kafka's own default is
500). On a backlog nothing changes: a fetch that finds data returns at once.

Before a member rejoins its group in a rebalance, faust revokes its partitions, and with
``stream_wait_empty`` (the default) it first waits until every message its streams have taken
is acknowledged: the batches in flight, and the one the agent has taken but not yet started.
That wait has no bound: a member in the middle of long model calls, or whose sink is retrying
through an outage, rejoins only when they are done. Apache Kafka drops such a member once the
rebalance timeout is over and goes on without it. Tansu 0.6 drops a member only when its
session times out, which never happens while aiokafka keeps heartbeating through the wait, and
it keeps the group's leader through a rebalance, so every other member, a newcomer included,
waits for the busy one. Measured on the embedded stack: a newcomer got partitions 44-58 s
after asking while the busy member finished 25-30 s model calls, and none in 120 s while the
busy member's calls did not end. So a revocation waits at most :attr:`StreamerApp.revoke_wait_s`
(the rebalance timeout less two heartbeats: soon enough that Apache Kafka keeps the member
too), commits what was acknowledged, and rejoins; the newcomer then gets partitions in about
18 s (that wait and Tansu's JoinGroup hold of half the session timeout, twice).

The batches still in flight then go on, and their acknowledgements stay safe to commit: the
agent finishes batches in the order it took them, so what a member has acknowledged is always
an unbroken run of offsets above those it acknowledged before; faust commits only such a run
following the committed offset, and never for a partition no longer assigned to the member.
So a partition the member keeps is committed only as far as its batches are stored, and one
that moved is read again by its new owner from the last commit: what the old owner was still
working on is processed twice, and the upserts, by id, store it once. (The consumer answers
"no end offset known" for a partition that moved, where aiokafka would fail the late batch's
lag metric.)
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiokafka
import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, ConsumerT, TransportT

__all__ = ["StreamerApp"]

log = logging.getLogger(__name__)


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        wait_ms = getattr(self.app, "fetch_max_wait_ms", None)
        if wait_ms is not None:
            # read by AIOKafkaConsumer.start() when it builds its fetcher
            consumer._fetch_max_wait_ms = int(wait_ms)
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def highwater(self, tp: TP) -> int | None:  # type: ignore[override]  # aiokafka's type
        """The end offset of ``tp``; None where aiokafka knows none, and where ``tp`` is not
        assigned here (any more): a batch may finish after a rebalance moved its partition,
        and aiokafka asserts on that."""
        if tp not in self.assignment():
            return None
        try:
            return super().highwater(tp)
        except AssertionError:  # moved between the check and the call (the consumer's thread)
            return None


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer


class StreamerApp(faust.App):
    """A faust app whose consumer waits at most ``fetch_max_wait_ms`` for data per fetch, and
    whose revocations wait at most ``revoke_wait_s`` for the batches in flight."""

    def __init__(
        self,
        *args: Any,
        fetch_max_wait_ms: int = 100,
        revoke_wait_s: float | None = None,
        **kwargs: Any,
    ) -> None:
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self._revoke_wait_s = revoke_wait_s
        super().__init__(*args, **kwargs)

    @property
    def revoke_wait_s(self) -> float:
        """How long a revocation waits for the batches in flight: as given, else the rebalance
        timeout less two heartbeats (a member learns of a rebalance at its next heartbeat and
        must rejoin within the timeout), and at least half the timeout."""
        if self._revoke_wait_s is not None:
            return self._revoke_wait_s
        timeout = float(self.conf.broker_rebalance_timeout)
        return max(timeout - 2 * float(self.conf.broker_heartbeat_interval), timeout / 2)

    def _new_transport(self) -> TransportT:
        return _Transport(self.conf.broker_consumer, self)

    # Rebalances, in the worker's own log (faust's and aiokafka's loggers are held at WARNING):
    # how long the batches in flight held the revocation, and how long the whole rebalance took.
    _rebalance_started: float | None = None
    _revoking = False

    async def _on_partitions_revoked(self, revoked: set[TP]) -> None:
        started = time.monotonic()
        if self._rebalance_started is None:
            self._rebalance_started = started
        log.info("rebalance: revoking", extra={"partitions": _names(revoked)})
        self._revoking = True
        try:
            await super()._on_partitions_revoked(revoked)
        finally:
            self._revoking = False
        log.info(
            "rebalance: revoked",
            extra={
                "partitions": _names(revoked),
                "waited_s": round(time.monotonic() - started, 3),
                "left_in_flight": len(_pending(self.consumer)),
            },
        )

    async def _consumer_wait_empty(self, consumer: ConsumerT, logger: Any) -> None:
        # faust calls this when revoking partitions and when stopping; only the first is
        # bounded here (the stop has its own grace, see streamer.worker.shutdown)
        if not (self._revoking and self.conf.stream_wait_empty):
            await super()._consumer_wait_empty(consumer, logger)
            return
        deadline = time.monotonic() + self.revoke_wait_s
        while _pending(consumer) and not consumer.should_stop:
            await consumer.commit()  # what is acknowledged so far
            left_s = deadline - time.monotonic()
            if left_s <= 0:
                log.warning(
                    "rebalance: batches still in flight, rejoining without them",
                    extra={
                        "messages": len(_pending(consumer)),
                        "waited_s": round(self.revoke_wait_s, 3),
                    },
                )
                break
            await asyncio.sleep(min(_ACK_POLL_S, left_s))
        await consumer.commit()

    async def _on_partitions_assigned(self, assigned: set[TP], generation_id: int = 0) -> None:
        await super()._on_partitions_assigned(assigned, generation_id)
        started, self._rebalance_started = self._rebalance_started, None
        log.info(
            "partitions assigned",
            extra={
                "partitions": _names(assigned),
                "generation": generation_id,
                "rebalance_s": round(time.monotonic() - started, 3) if started else None,
            },
        )


#: how often a bounded revocation looks for new acknowledgements
_ACK_POLL_S = 0.1


def _pending(consumer: ConsumerT) -> list[Any]:
    """The messages the streams took and have not acknowledged yet."""
    return [m for m in consumer.unacked if not m.acked]


def _names(tps: set[TP]) -> list[str]:
    return sorted(f"{tp.topic}[{tp.partition}]" for tp in tps)

"""faust's Kafka transport with a configurable fetch wait.

faust-streaming builds its aiokafka consumer with ``fetch_max_wait_ms=1500`` and no setting to
change it. A fetch that finds no data waits that long on the broker, and on the embedded broker
(Tansu) a fetch whose data lands on another partition of the request is answered only when the
wait runs out: an upload published to an idle worker waited up to 1.5 s before the agent saw it
(measured: the first batch of a run done 1.2-2.5 s after publishing). This transport builds the
same consumer with ``STREAMER_KAFKA_FETCH_MAX_WAIT_MS`` (100 by default; Kafka's own default is
500). On a backlog nothing changes: a fetch that finds data returns at once.
"""

from __future__ import annotations

from typing import Any

import aiokafka
import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TransportT

__all__ = ["StreamerApp"]


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


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer


class StreamerApp(faust.App):
    """A faust app whose consumer waits at most ``fetch_max_wait_ms`` for data per fetch."""

    def __init__(self, *args: Any, fetch_max_wait_ms: int = 100, **kwargs: Any) -> None:
        self.fetch_max_wait_ms = fetch_max_wait_ms
        super().__init__(*args, **kwargs)

    def _new_transport(self) -> TransportT:
        return _Transport(self.conf.broker_consumer, self)

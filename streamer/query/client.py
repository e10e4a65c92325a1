"""A Python client for applications: search through the query topics, async or sync.

    async with SearchClient(load_settings().kafka) as client:
        result = await client.search("a cup of coffee", filter={"tenant": "acme"})

    with SyncSearchClient(load_settings().kafka) as client:
        result = client.search(image_path="cat.jpg", top_k=5)

Each client reads the results topic from its end and picks out the answers to its own
requests by ``request_id``, so any number of clients can share one results topic. Each request
carries the client's send time (``sent_ms``), which comes back in the answer's ``hops``.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Coroutine, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from streamer.config.connections import kafka_options
from streamer.config.settings import KafkaSettings
from streamer.core.errors import NoAnswer, TransientError
from streamer.core.messages import SearchRequest, SearchResult

__all__ = ["SearchClient", "SyncSearchClient"]

T = TypeVar("T")


class SearchClient:
    def __init__(
        self, kafka: KafkaSettings, *, reply_to: str | None = None, timeout_s: float = 30.0
    ) -> None:
        self.kafka = kafka
        self.reply_to = reply_to or kafka.search_results_topic
        self.timeout_s = timeout_s
        self._pending: dict[str, asyncio.Future[SearchResult]] = {}
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> SearchClient:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        servers = self.kafka.bootstrap_servers
        options = kafka_options(self.kafka)
        self._producer = AIOKafkaProducer(**options, linger_ms=0, acks="all")
        self._consumer = AIOKafkaConsumer(
            **options,
            enable_auto_commit=False,
            fetch_max_wait_ms=self.kafka.search_fetch_max_wait_ms,
        )
        try:
            await self._producer.start()
            await self._consumer.start()
            partitions = await self._partitions(self._consumer)
            self._consumer.assign(partitions)
            await self._consumer.seek_to_end(*partitions)
            for partition in partitions:  # resolve positions now: no answer may slip past
                await self._consumer.position(partition)
        except KafkaError as exc:
            await self.stop()
            raise TransientError("kafka", f"cannot reach {servers}: {exc}") from exc
        self._reader = asyncio.create_task(self._read())

    async def _partitions(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        for _ in range(50):
            found = consumer.partitions_for_topic(self.reply_to)
            if found:
                return [TopicPartition(self.reply_to, p) for p in sorted(found)]
            await consumer.topics()  # refreshes the metadata
            await asyncio.sleep(0.1)
        raise TransientError("kafka", f"results topic {self.reply_to!r} does not exist")

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
            self._reader = None
        for part in (self._producer, self._consumer):
            if part is not None:
                await part.stop()
        self._producer = self._consumer = None
        for future in self._pending.values():
            if not future.done():
                future.set_exception(NoAnswer("the client stopped before the answer came"))
        self._pending.clear()

    async def _read(self) -> None:
        assert self._consumer is not None
        async for message in self._consumer:
            try:
                result = SearchResult.model_validate_json(message.value or b"")
            except ValidationError:
                continue  # not an answer of the contract; not ours to judge
            future = self._pending.pop(result.request_id, None)
            if future is not None and not future.done():
                future.set_result(result)

    async def search(
        self,
        text: str | None = None,
        *,
        uri: str | None = None,
        image_path: str | Path | None = None,
        video_path: str | Path | None = None,
        vector: Sequence[float] | None = None,
        topology: str | None = None,
        top_k: int = 10,
        filter: Mapping[str, Any] | None = None,
        version: str | None = None,
        timeout_s: float | None = None,
    ) -> SearchResult:
        """Send one request and wait for its answer (whose ``error`` may be set). A photo or a
        video may search the other medium's topology (``topology``) when they share a space."""
        local = image_path if image_path is not None else video_path
        if local is not None:
            uri = Path(local).expanduser().resolve().as_uri()
        request = SearchRequest(
            request_id=uuid.uuid4().hex,
            text=text,
            uri=uri,
            vector=list(vector) if vector is not None else None,
            topology=topology,
            top_k=top_k,
            filter=dict(filter or {}),
            version=version,
            reply_to=self.reply_to,
        )
        return await self.send(request, timeout_s=timeout_s)

    async def send(self, request: SearchRequest, *, timeout_s: float | None = None) -> SearchResult:
        if self._producer is None:
            raise RuntimeError("start the client first (async with SearchClient(...))")
        if request.sent_ms is None:
            request = request.model_copy(update={"sent_ms": round(time.time() * 1000, 3)})
        future: asyncio.Future[SearchResult] = asyncio.get_running_loop().create_future()
        self._pending[request.request_id] = future
        wait_s = timeout_s or self.timeout_s
        try:
            await self._producer.send_and_wait(
                self.kafka.search_requests_topic,
                key=request.request_id.encode(),
                value=request.model_dump_json().encode(),
            )
            return await asyncio.wait_for(future, wait_s)
        except TimeoutError:
            raise NoAnswer(
                f"no answer to request {request.request_id} within {wait_s:.0f}s on "
                f"{self.reply_to!r}: is a worker running (streamer worker) against "
                f"{self.kafka.bootstrap_servers}?"
            ) from None
        finally:
            self._pending.pop(request.request_id, None)


class SyncSearchClient:
    """The same client for code without an event loop: it runs one in a background thread."""

    def __init__(self, kafka: KafkaSettings, **kwargs: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._client = SearchClient(kafka, **kwargs)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def __enter__(self) -> SyncSearchClient:
        self._thread.start()
        self._run(self._client.start())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._run(self._client.stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()

    def search(self, text: str | None = None, **kwargs: Any) -> SearchResult:
        return self._run(self._client.search(text, **kwargs))

"""The search agent with fake Kafka parts: answers sent with their hops, offsets committed
only once answered and only for partitions the worker owns."""

import asyncio
import time
from collections.abc import Sequence

from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError
from aiokafka.structs import ConsumerRecord

from streamer.config.settings import Settings
from streamer.core.messages import SearchHops, SearchRequest, SearchResult
from streamer.query.agent import QueryAgent
from streamer.query.inbox import Arrival
from streamer.query.service import Answer

TOPIC = "search.requests"


class Searcher:
    """Answers every request at once, with the hops a service gives."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    async def answer(
        self,
        values: Sequence[bytes | None],
        keys: Sequence[bytes | None],
        *,
        received_ms: Sequence[float] | None = None,
    ) -> list[Answer]:
        requests = [SearchRequest.model_validate_json(v or b"") for v in values]
        self.batches.append([r.request_id for r in requests])
        now_ms = time.time() * 1000
        return [
            Answer(
                r.reply_to,
                SearchResult(
                    request_id=r.request_id,
                    hops=SearchHops(sent_ms=r.sent_ms, received_ms=got, taken_ms=now_ms),
                ),
            )
            for r, got in zip(requests, received_ms or [now_ms] * len(values), strict=True)
        ]


class Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []

    async def send(self, topic: str, *, key: bytes, value: bytes) -> asyncio.Future[None]:
        self.sent.append((topic, key, value))
        delivered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        delivered.set_result(None)
        return delivered


class Consumer:
    def __init__(self, owned: set[TopicPartition], fail: int = 0) -> None:
        self.owned = owned
        self.fail = fail
        self.commits: list[dict[TopicPartition, int]] = []

    def assignment(self) -> set[TopicPartition]:
        return self.owned

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.fail:
            self.fail -= 1
            raise CommitFailedError("rebalancing")
        self.commits.append(offsets)


def arrival(partition: int, offset: int, *, age_s: float = 0.0) -> Arrival:
    request = SearchRequest(request_id=f"p{partition}-{offset}", text="a", sent_ms=1.0)
    produced_ms = int((time.time() - age_s) * 1000)
    record: ConsumerRecord[bytes, bytes] = ConsumerRecord(
        TOPIC, partition, offset, produced_ms, 0, b"k", request.model_dump_json().encode(),
        None, 1, 1, [],
    )  # fmt: skip
    return Arrival(record, received_ms=produced_ms + 2.0)


def agent_with(consumer: Consumer) -> tuple[QueryAgent, Searcher, Producer]:
    searcher = Searcher()
    agent = QueryAgent(Settings(), searcher)  # type: ignore[arg-type]
    producer = Producer()
    agent._producer = producer
    agent._consumer = consumer
    return agent, searcher, producer


def tp(partition: int) -> TopicPartition:
    return TopicPartition(TOPIC, partition)


def test_answers_go_out_stamped_and_their_offsets_are_committed() -> None:
    consumer = Consumer(owned={tp(0), tp(1)})
    agent, searcher, producer = agent_with(consumer)

    async def run() -> None:
        await agent._answer([arrival(0, 3), arrival(1, 7), arrival(0, 4)])
        assert consumer.commits == []  # the committer's job, apart from answering
        await agent._commit_answered()

    asyncio.run(run())
    assert searcher.batches == [["p0-3", "p1-7", "p0-4"]]
    results = [SearchResult.model_validate_json(value) for _, _, value in producer.sent]
    assert [r.request_id for r in results] == ["p0-3", "p1-7", "p0-4"]
    assert all(r.hops is not None and r.hops.replied_ms is not None for r in results)
    assert consumer.commits == [{tp(0): 5, tp(1): 8}]


def test_stale_requests_are_skipped_but_committed() -> None:
    consumer = Consumer(owned={tp(0)})
    agent, searcher, producer = agent_with(consumer)

    async def run() -> None:
        await agent._answer([arrival(0, 1, age_s=3600), arrival(0, 2)])
        await agent._commit_answered()

    asyncio.run(run())
    assert searcher.batches == [["p0-2"]]
    assert len(producer.sent) == 1
    assert consumer.commits == [{tp(0): 3}]


def test_partitions_given_away_are_not_committed() -> None:
    consumer = Consumer(owned={tp(1)})
    agent, _, _ = agent_with(consumer)

    async def run() -> None:
        await agent._answer([arrival(0, 1), arrival(1, 1)])
        await agent._commit_answered()

    asyncio.run(run())
    assert consumer.commits == [{tp(1): 2}]


def test_a_failed_commit_is_tried_again_without_going_back() -> None:
    consumer = Consumer(owned={tp(0), tp(1)}, fail=1)
    agent, _, _ = agent_with(consumer)

    async def run() -> None:
        await agent._answer([arrival(0, 1), arrival(1, 1)])
        await agent._commit_answered()  # fails
        await agent._answer([arrival(0, 2)])
        await agent._commit_answered()

    asyncio.run(run())
    assert consumer.commits == [{tp(0): 3, tp(1): 2}]


def test_nothing_answered_commits_nothing() -> None:
    consumer = Consumer(owned={tp(0)})
    agent, _, _ = agent_with(consumer)
    asyncio.run(agent._commit_answered())
    assert consumer.commits == []

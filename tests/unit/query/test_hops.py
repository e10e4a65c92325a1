"""The hop stamps of a search round trip: optional on the wire, set by the client, split
into durations for the bench (the service's stamps: ``test_service.py``)."""

import asyncio
from typing import Any

import pytest

from streamer.config.settings import KafkaSettings
from streamer.core.messages import HOPS, SearchHops, SearchRequest, SearchResult
from streamer.query.client import SearchClient


def stamps(**changes: float | None) -> SearchHops:
    values: dict[str, Any] = {
        "sent_ms": 1000.0,
        "received_ms": 1002.0,
        "taken_ms": 1003.0,
        "search_started_ms": 1004.5,
        "search_ended_ms": 1034.5,
        "replied_ms": 1035.0,
    }
    return SearchHops.model_validate({**values, **changes})


def test_durations_split_the_round_trip_in_order() -> None:
    durations = stamps().durations_ms(answered_ms=1038.0)
    assert durations is not None
    assert list(durations) == list(HOPS)
    assert durations == {
        "request": 2.0,
        "queue": 1.0,
        "prepare": 1.5,
        "search": 30.0,
        "finish": 0.5,
        "reply": 3.0,
    }
    assert sum(durations.values()) == 38.0  # answered - sent


@pytest.mark.parametrize("missing", ["sent_ms", "search_started_ms", "replied_ms"])
def test_no_durations_without_every_stamp(missing: str) -> None:
    assert stamps(**{missing: None}).durations_ms(answered_ms=1038.0) is None


def test_results_of_older_workers_have_no_hops() -> None:
    result = SearchResult.model_validate_json(b'{"request_id": "r", "hits": []}')
    assert result.hops is None
    request = SearchRequest.model_validate({"request_id": "r", "text": "a"})
    assert request.sent_ms is None


def test_hops_survive_the_wire() -> None:
    result = SearchResult(request_id="r", hops=stamps())
    assert SearchResult.model_validate_json(result.model_dump_json()) == result


class _Producer:
    """Answers each request at once, as a worker would."""

    def __init__(self, client: SearchClient) -> None:
        self.client = client
        self.sent: list[SearchRequest] = []

    async def send_and_wait(self, topic: str, *, key: bytes, value: bytes) -> None:
        request = SearchRequest.model_validate_json(value)
        self.sent.append(request)
        self.client._pending[request.request_id].set_result(
            SearchResult(request_id=request.request_id)
        )


def test_the_client_stamps_when_it_sends() -> None:
    async def run() -> list[SearchRequest]:
        client = SearchClient(KafkaSettings())
        producer = _Producer(client)
        client._producer = producer
        await client.search("cats")
        await client.send(SearchRequest(request_id="given", text="a", sent_ms=7.0))
        return producer.sent

    stamped, given = asyncio.run(run())
    assert stamped.sent_ms is not None and stamped.sent_ms > 1.6e12  # ms since the epoch
    assert given.sent_ms == 7.0  # a caller's own stamp is kept

"""Nothing lost, nothing let in: poison messages, repeated crashes, dead-letter replays."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from PIL import Image

from operators.fetch import path_to_uri
from streamer.core.messages import UploadMessage
from streamer.ingest.deadletters import list_letters, replay_letters
from streamer.ingest.producer import publish, publish_raw
from tests.integration.conftest import Scenario, wait_for
from tests.integration.test_ingest_e2e import image_uploads

pytestmark = pytest.mark.integration

HEADERS = {"x-error-stage", "x-error-class", "x-error-message", "x-source-topic",
           "x-source-partition", "x-source-offset", "x-attempts"}  # fmt: skip


def test_one_percent_poison_exactly_that_many_dead_letters(scenario: Scenario) -> None:
    kafka = scenario.settings.kafka
    good = [(f"g{i}".encode(), UploadMessage(id=f"g{i}", text=f"good message {i}").to_bytes())
            for i in range(297)]  # fmt: skip
    poison = [
        (b"p1", b'{"id": "p1", "text": '),  # malformed JSON
        (b"p2", json.dumps({"text": "no id"}).encode()),  # a missing field
        (b"p3", UploadMessage(id="p3", uri=path_to_uri(scenario.media / "gone.jpg")).to_bytes()),
    ]
    records = [*good[:100], poison[0], *good[100:200], poison[1], *good[200:], poison[2]]
    asyncio.run(publish_raw(kafka, records, topic=kafka.uploads_topic))
    scenario.start_worker()
    wait_for("every good message", lambda: scenario.count("text") == 297, timeout_s=240)
    wait_for("the dead letters", lambda: scenario.stats.read().get("dead_lettered", 0) >= 3)
    letters = asyncio.run(list_letters(kafka, limit=None))
    assert len(letters) == 3
    assert {letter.key for letter in letters} == {b"p1", b"p2", b"p3"}
    for letter in letters:
        assert set(letter.headers) >= HEADERS
        assert letter.value == dict(poison)[letter.key or b""]
    assert {letter.stage for letter in letters} == {"validate", "fetch"}
    ids = scenario.store.ids(scenario.collection("text"))
    assert len(ids) == len(set(ids)) == 297


def test_three_sigkills_then_a_restart_lose_and_duplicate_nothing(scenario: Scenario) -> None:
    images = image_uploads(scenario, 45)
    texts = [UploadMessage(id=f"t{i}", text=f"sentence {i} of many") for i in range(90)]
    asyncio.run(publish(scenario.settings.kafka, [*images, *texts]))
    small = {"STREAMER_BATCH_MAX_BATCH_SIZE": "2", "STREAMER_BATCH_MAX_WAIT_MS": "5"}
    total = len(images) + len(texts)
    progress = [0]
    for round_ in range(3):
        worker = scenario.start_worker(**small)
        before = progress[-1]
        wait_for(f"progress before kill {round_ + 1}",
                 lambda b=before: scenario.count("image") + scenario.count("text") >= b + 4,
                 timeout_s=180)  # fmt: skip
        scenario.kill(worker)
        progress.append(scenario.count("image") + scenario.count("text"))
    assert progress[-1] < total, "everything was done before the last kill; nothing proven"
    scenario.start_worker(**small)
    wait_for("every asset", lambda: scenario.count("image") + scenario.count("text") == total,
             timeout_s=300)  # fmt: skip
    for topology, uploads in (("image", images), ("text", texts)):
        ids = scenario.store.ids(scenario.collection(topology))
        assert len(ids) == len(set(ids)) == len(uploads)
        assert set(ids) == {u.id for u in uploads}


def test_replay_after_the_cause_is_fixed(scenario: Scenario) -> None:
    kafka = scenario.settings.kafka
    late = scenario.media / "late.jpg"
    asyncio.run(publish(kafka, [UploadMessage(id="late", uri=path_to_uri(late))]))
    scenario.start_worker()
    wait_for("a dead letter", lambda: scenario.stats.read().get("dead_lettered", 0) == 1)

    assert len(asyncio.run(replay_letters(kafka))) == 1  # the file is still missing
    wait_for("the second failure", lambda: scenario.stats.read().get("dead_lettered", 0) == 2)
    letters = asyncio.run(list_letters(kafka, limit=None))
    assert [letter.headers["x-attempts"] for letter in letters] == ["1", "2"]

    Image.new("RGB", (64, 48), (10, 200, 30)).save(late, "JPEG")  # the fix
    replayed = asyncio.run(replay_letters(kafka))
    assert len(replayed) == 1  # only the letter not replayed before
    wait_for("the fixed asset", lambda: scenario.count("image") == 1)
    time.sleep(1)
    assert asyncio.run(replay_letters(kafka, dry_run=True)) == []

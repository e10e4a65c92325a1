"""A saved classifier on the real stack's stream: attached while a worker runs, it labels every
new photo (fresh, or content seen before under another id), the label lands in the row's
metadata and on ``media.labels``, a search filtered on ``label:<name>`` finds what it said; a
re-delivery is still skipped (the labels do not change the row's digest), and once detached new
rows are left unlabelled."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from operators.fetch import path_to_uri
from streamer.core.messages import LABELS_KEY, LabelEvent, UploadMessage
from streamer.demo.samples import sample_photo
from streamer.ingest.producer import publish
from streamer.query.client import SearchClient
from streamer.trainer import Classifier, SavedClassifiers
from tests.integration.conftest import Scenario, wait_for
from tests.integration.test_kafka_producer import read_topic

pytestmark = pytest.mark.integration

FIRST = ("chelsea", "rocket", "coffee", "clock")


def test_an_attached_classifier_labels_the_stream(scenario: Scenario) -> None:
    media, kafka = scenario.media, scenario.settings.kafka
    for name in FIRST:
        sample_photo(name).save(media / f"{name}.jpg", "JPEG", quality=90)
    # the cat again, encoded otherwise: other bytes (embedded afresh), the same scene
    sample_photo("chelsea").save(media / "chelsea-again.jpg", "JPEG", quality=60)

    def upload(asset_id: str, file: str) -> UploadMessage:
        return UploadMessage(id=asset_id, uri=path_to_uri(media / file), metadata={"album": "a"})

    asyncio.run(publish(kafka, [upload(n, f"{n}.jpg") for n in FIRST]))
    scenario.start_worker(STREAMER_TRAINER_ATTACHED_REFRESH_S="0.5")
    collection = scenario.collection("image")
    wait_for("the first photos", lambda: scenario.count("image") == len(FIRST))
    first = scenario.store.read_rows(collection, list(FIRST), with_vectors=True)
    assert all(LABELS_KEY not in row.metadata for row in first.values())

    # "cats": positive above the midpoint between the cat's own similarity and the nearest
    # other photo's
    cat = np.asarray(first["chelsea"].vector, dtype=np.float32)
    nearest = max(float(cat @ np.asarray(first[n].vector)) for n in FIRST if n != "chelsea")
    threshold = (1.0 + nearest) / 2
    cats = Classifier("cats", "image", "effnet-lite0@1", 40 * cat, -40 * threshold)
    saved = SavedClassifiers(scenario.redis, scenario.settings.redis.key_prefix)
    saved.save(cats)
    saved.attach("cats")
    asyncio.run(asyncio.sleep(1.0))  # the worker's next look at what is attached

    asyncio.run(
        publish(
            kafka,
            [
                upload("cat-copy", "chelsea.jpg"),  # content stored before: its vector reused
                upload("cat-again", "chelsea-again.jpg"),  # new content: embedded
                upload("rocket-copy", "rocket.jpg"),
                upload("rocket", "rocket.jpg"),  # unchanged: skipped, not even re-labelled
            ],
        )
    )
    wait_for("the labelled photos", lambda: scenario.count("image") == len(FIRST) + 3)

    rows = scenario.store.read_rows(collection, ["cat-copy", "cat-again", "rocket-copy", "rocket"])
    verdicts = {i: r.metadata.get(LABELS_KEY, {}).get("cats") for i, r in rows.items()}
    assert verdicts["rocket"] is None  # stored before the classifier was attached
    assert verdicts["cat-copy"]["label"] is True and verdicts["cat-again"]["label"] is True
    assert verdicts["rocket-copy"]["label"] is False
    expected = float(cats.probabilities(cat[None, :])[0])
    assert verdicts["cat-copy"]["score"] == pytest.approx(expected, abs=1e-4)
    assert rows["cat-copy"].metadata["album"] == "a"  # the upload's metadata kept beside

    events = {}
    for key, value, _ in read_topic(kafka, kafka.labels_topic):
        event = LabelEvent.model_validate_json(value or b"")
        assert key == event.id.encode()
        events[event.id] = event
    assert set(events) == {"cat-copy", "cat-again", "rocket-copy"}
    assert events["cat-again"].labels["cats"].label is True
    assert events["rocket-copy"].labels["cats"].label is False
    assert events["cat-copy"].model_version == "effnet-lite0@1"
    assert events["cat-copy"].uri == path_to_uri(media / "chelsea.jpg")

    scenario.wait_searchable(collection)

    async def search(label: str) -> list[str]:
        async with SearchClient(kafka, timeout_s=120) as client:
            found = await client.search(
                image_path=media / "coffee.jpg", topology="image", filter={"label:cats": label}
            )
        assert found.error is None, found.error
        return sorted(h.id for h in found.hits)

    assert asyncio.run(search("true")) == ["cat-again", "cat-copy"]
    assert asyncio.run(search("false")) == ["rocket-copy"]

    # a re-delivery of a labelled photo is skipped: its labels are not part of what it said
    skipped = scenario.stats.read().get("skipped", 0)
    asyncio.run(publish(kafka, [upload("cat-copy", "chelsea.jpg")]))
    wait_for("the re-delivery", lambda: scenario.stats.read().get("skipped", 0) > skipped)

    # detached: new rows are left unlabelled, labelled ones keep their labels
    assert saved.detach("cats")
    asyncio.run(asyncio.sleep(1.0))
    asyncio.run(publish(kafka, [upload("clock-copy", "clock.jpg")]))
    wait_for("the last photo", lambda: scenario.count("image") == len(FIRST) + 4)
    last = scenario.store.read_rows(collection, ["clock-copy", "cat-again"])
    assert LABELS_KEY not in last["clock-copy"].metadata
    assert last["cat-again"].metadata[LABELS_KEY]["cats"]["label"] is True
    assert "attached classifiers" in scenario.worker_logs()
    assert json.dumps(scenario.stats.read()).count("labelled") == 1
    assert scenario.stats.read()["labelled"] == 3
    assert scenario.workers[0].poll() is None, scenario.worker_logs()

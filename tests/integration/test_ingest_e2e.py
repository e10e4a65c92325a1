"""Uploads on the real broker become rows in the real Milvus, through a real worker."""

from __future__ import annotations

import asyncio
import io
import json

import numpy as np
import pytest
from aiokafka import AIOKafkaConsumer
from PIL import Image

from operators.fetch import path_to_uri
from streamer.core.messages import UploadMessage
from streamer.demo.samples import write_photos
from streamer.ingest.producer import publish, publish_raw
from tests.integration.conftest import BOTH_MILVUS, Scenario, wait_for
from tests.models.reference import sentence_transformers_reference, timm_reference
from tests.unit.operators.test_decode import png_header_only

pytestmark = [pytest.mark.integration, BOTH_MILVUS]

TEXTS = ["A cup of coffee.", "A cat asleep on a sofa.", "Rockets launch at dawn.", "Rain in Paris."]


def image_uploads(scenario: Scenario, count: int) -> list[UploadMessage]:
    photos = list(write_photos(scenario.media / "photos").values())
    uploads = []
    for i in range(count):
        image = Image.open(photos[i % len(photos)]).convert("RGB")
        if i >= len(photos):  # distinct content for every asset
            image = image.resize((image.width * 3 // 4 + i, image.height * 3 // 4 + i))
        path = scenario.media / f"img-{i}.jpg"
        image.save(path, "JPEG", quality=90)
        uploads.append(UploadMessage(id=f"img-{i}", uri=path_to_uri(path), metadata={"i": i}))
    return uploads


def text_uploads() -> list[UploadMessage]:
    return [UploadMessage(id=f"txt-{i}", text=t, metadata={"i": i}) for i, t in enumerate(TEXTS)]


def test_uploads_resend_and_delete(scenario: Scenario) -> None:
    images, texts = image_uploads(scenario, 10), text_uploads()
    asyncio.run(publish(scenario.settings.kafka, [*images, *texts]))
    scenario.start_worker()
    wait_for("all rows", lambda: scenario.count("image") == 10 and scenario.count("text") == 4)

    # N uploads give N rows of the model's dimension and unit norm
    for topology, uploads, dim in (("image", images, 1280), ("text", texts, 384)):
        rows = scenario.store.read_rows(
            scenario.collection(topology), [u.id for u in uploads], with_vectors=True
        )
        assert set(rows) == {u.id for u in uploads}
        for row in rows.values():
            assert row.vector is not None and row.vector.shape == (dim,)
            assert abs(float(np.linalg.norm(row.vector)) - 1.0) < 1e-4

    # the stored vectors are the models' own: preprocessing pinned against the libraries
    stored_image = scenario.store.read_rows(
        scenario.collection("image"), ["img-0"], with_vectors=True
    )
    reference = timm_reference(Image.open(io.BytesIO(_read(images[0]))))
    assert float(stored_image["img-0"].vector @ reference) >= 0.99  # type: ignore[operator]
    stored_text = scenario.store.read_rows(
        scenario.collection("text"), ["txt-0"], with_vectors=True
    )
    reference_text = sentence_transformers_reference([TEXTS[0]])[0]
    assert float(stored_text["txt-0"].vector @ reference_text) >= 0.99  # type: ignore[operator]

    # the same N re-sent: the count is unchanged and the model is not called (counted)
    before = scenario.stats.read()
    asyncio.run(publish(scenario.settings.kafka, [*images, *texts]))
    wait_for(
        "re-sent messages consumed",
        lambda: scenario.stats.read().get("received", 0) >= before["received"] + 14,
    )
    after = scenario.stats.read()
    assert after.get("embedded", 0) == before["embedded"] == 14
    assert after.get("skipped", 0) - before.get("skipped", 0) == 14
    assert scenario.count("image") == 10 and scenario.count("text") == 4

    # a delete removes the row
    asyncio.run(publish(scenario.settings.kafka, [UploadMessage(id="img-3", op="delete")]))
    wait_for("the delete", lambda: scenario.count("image") == 9)
    assert "img-3" not in scenario.store.read_rows(scenario.collection("image"), ["img-3"])
    assert scenario.workers[0].poll() is None, scenario.worker_logs()


def _read(upload: UploadMessage) -> bytes:
    assert upload.uri is not None
    return open(upload.uri.removeprefix("file://"), "rb").read()


def test_bad_input_becomes_dead_letters_and_the_worker_lives(scenario: Scenario) -> None:
    (scenario.media / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg at all")
    (scenario.media / "empty.jpg").write_bytes(b"")
    (scenario.media / "doc.jpg").write_bytes(b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n")
    whole = io.BytesIO()
    Image.new("RGB", (640, 480), (90, 20, 200)).save(whole, "JPEG")
    (scenario.media / "cut.jpg").write_bytes(whole.getvalue()[: len(whole.getvalue()) // 2])
    bomb = scenario.media / "bomb.png"
    bomb.write_bytes(png_header_only(20_000, 20_000))
    bad = [
        (b"k1", b"{not json"),
        (b"k2", json.dumps({"id": "no-source"}).encode()),
        (
            b"k3",
            UploadMessage(id="broken", uri=path_to_uri(scenario.media / "broken.jpg")).to_bytes(),
        ),
        (
            b"k4",
            UploadMessage(id="empty", uri=path_to_uri(scenario.media / "empty.jpg")).to_bytes(),
        ),
        (b"k5", UploadMessage(id="pdf", uri=path_to_uri(scenario.media / "doc.jpg")).to_bytes()),
        (b"k6", UploadMessage(id="escape", uri="file:///etc/hostname.jpg").to_bytes()),
        (b"k7", UploadMessage(id="cut", uri=path_to_uri(scenario.media / "cut.jpg")).to_bytes()),
        (b"k8", UploadMessage(id="bomb", uri=path_to_uri(bomb)).to_bytes()),
    ]
    good = [(b"ok", UploadMessage(id="ok", text="still indexed").to_bytes())]
    kafka = scenario.settings.kafka
    asyncio.run(publish_raw(kafka, [*bad, *good], topic=kafka.uploads_topic))
    scenario.start_worker()
    wait_for("the good item", lambda: scenario.count("text") == 1)
    letters = asyncio.run(_consume(scenario, kafka.deadletter_topic, len(bad)))
    by_key = {m.key: m for m in letters}
    assert set(by_key) == {k for k, _ in bad}
    stages = {k: dict(m.headers)["x-error-stage"].decode() for k, m in by_key.items()}
    assert stages == {
        b"k1": "validate",
        b"k2": "validate",
        b"k3": "decode",
        b"k4": "decode",
        b"k5": "decode",
        b"k6": "fetch",
        b"k7": "decode",
        b"k8": "decode",
    }
    for key, value in bad:
        headers = dict(by_key[key].headers)
        assert by_key[key].value == value  # the original bytes, untouched
        assert headers["x-source-topic"].decode() == kafka.uploads_topic
        assert int(headers["x-source-offset"]) >= 0
        assert headers["x-error-class"] and headers["x-error-message"]
    assert scenario.workers[0].poll() is None, scenario.worker_logs()


async def _consume(scenario: Scenario, topic: str, count: int, timeout_s: float = 60) -> list:  # type: ignore[type-arg]
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=scenario.settings.kafka.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    out = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while len(out) < count and loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for messages in batch.values():
                out.extend(messages)
    finally:
        await consumer.stop()
    return out

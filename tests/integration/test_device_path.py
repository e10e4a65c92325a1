"""The GPU path's logic in a real worker, on the CPU (CI has no GPU): JPEGs decoded, turned
upright, resized and cropped by the model-device stage in batches, other files falling back per
item, model calls padded to bucketed shapes that were all warmed at start-up, and no cold call
afterwards."""

from __future__ import annotations

import asyncio
import io
import re

import numpy as np
import pytest
from PIL import Image, ImageOps

from operators.fetch import path_to_uri
from streamer.core.messages import UploadMessage
from streamer.ingest.producer import publish
from streamer.stack.processes import free_port
from tests.integration.conftest import Scenario, wait_for
from tests.integration.test_ingest_e2e import _consume, image_uploads
from tests.models.reference import timm_reference
from tests.unit.core.test_metrics import get

pytestmark = pytest.mark.integration


def _metric(text: str, name: str, stage: str) -> float | None:
    found = re.search(rf'^{name}{{[^}}]*stage="{stage}"[^}}]*}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else None


def test_a_worker_decoding_on_the_model_device_with_bucketed_shapes(scenario: Scenario) -> None:
    uploads = image_uploads(scenario, 10)
    # a PNG goes the CPU way; a JPEG stored sideways (EXIF orientation 6) is turned on the device
    Image.open(scenario.media / "img-0.jpg").save(scenario.media / "photo.png")
    turned = Image.open(scenario.media / "img-1.jpg")
    exif = turned.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise to view
    turned.save(scenario.media / "turned.jpg", "JPEG", exif=exif.tobytes())
    whole = io.BytesIO()
    Image.new("RGB", (640, 480), (90, 20, 200)).save(whole, "JPEG")
    (scenario.media / "cut.jpg").write_bytes(whole.getvalue()[: len(whole.getvalue()) // 2])
    (scenario.media / "junk.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg at all")
    for name in ("photo.png", "turned.jpg", "cut.jpg", "junk.jpg"):
        uploads.append(UploadMessage(id=name, uri=path_to_uri(scenario.media / name)))

    port = free_port()
    scenario.start_worker(
        STREAMER_TOPOLOGIES="topologies:IMAGE",
        STREAMER_DECODE_ON_DEVICE="on",
        STREAMER_BATCH_BUCKETS="3",
        STREAMER_BATCH_MAX_BATCH_SIZE="8",
        STREAMER_METRICS_PORT=str(port),
    )
    asyncio.run(publish(scenario.settings.kafka, uploads))
    wait_for("the photos", lambda: scenario.count("image") == 12, timeout_s=300)
    kafka = scenario.settings.kafka
    letters = asyncio.run(_consume(scenario, kafka.deadletter_topic, 2))
    assert sorted(m.key for m in letters) == [b"cut.jpg", b"junk.jpg"]
    assert {dict(m.headers)["x-error-stage"] for m in letters} == {b"decode"}

    # the vectors are the model's: close to timm's own transform on the full image
    rows = scenario.store.read_rows(
        scenario.collection("image"), ["img-3", "photo.png", "turned.jpg"], with_vectors=True
    )
    for asset, path in (("img-3", "img-3.jpg"), ("photo.png", "photo.png")):
        expected = timm_reference(Image.open(scenario.media / path))
        assert float(np.dot(rows[asset].vector, expected)) >= 0.99, asset
    upright = ImageOps.exif_transpose(Image.open(scenario.media / "turned.jpg"))
    assert upright.size == turned.size[::-1]
    assert float(np.dot(rows["turned.jpg"].vector, timm_reference(upright))) >= 0.99

    status, text = get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    for stage in ("decode", "embed"):
        warmup = _metric(text, "streamer_model_warmup_seconds", stage)
        assert warmup is not None and warmup > 0, stage
        assert _metric(text, "streamer_model_cold_calls_total", stage) in (None, 0.0), stage
    logs = scenario.worker_logs()
    assert re.search(r'model warmed .*stage="decode" batch_shapes=\[2, 4, 8\] padded=true', logs)
    assert "new batch shape" not in logs
    assert scenario.workers[0].poll() is None

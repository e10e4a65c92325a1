"""The ingest pipeline sized to the machine: how many messages a micro-batch takes, how long
the stream waits for them, and how many micro-batches are in flight at once.

A micro-batch pays fixed costs once (the Kafka take, Redis lookups, a Milvus upsert, the
commit: tens of milliseconds together), so it should hold enough model work to amortise them:
about ``target_batch_ms`` of model time at the speed calibration measured, in whole model
batches (a GPU at 7,000 photos/s takes ~1,800 photos; a 2-core CPU at 100 photos/s takes ~25).
Without a measured speed (calibration off, a pinned size) it takes one model batch.

In flight: while one batch is in the model, the next is fetched and decoded and the previous
is written. On a GPU those are different resources, so three batches overlap; on a CPU decode
and model share the cores, and a third batch only adds memory and latency, so two.

Settings pin any of these (``STREAMER_BATCH_TAKE_SIZE``, ``STREAMER_BATCH_MAX_IN_FLIGHT``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from streamer.config.settings import BatchingSettings

__all__ = ["MAX_TAKE", "ModelSpeed", "PipelineSize", "size_pipeline"]

#: the most messages one micro-batch takes when sized (memory: JPEG bytes of a whole window
#: are held at once; a setting may go higher)
MAX_TAKE = 2048


@dataclass(frozen=True, slots=True)
class ModelSpeed:
    """What sizing knows of one topology's first model stage."""

    topology: str
    batch_size: int
    items_per_s: float | None
    max_wait_ms: int


@dataclass(frozen=True, slots=True)
class PipelineSize:
    take: int
    wait_s: float
    in_flight: int
    #: how the take was chosen, for the start-up log
    why: str


def _take(model: ModelSpeed, target_s: float) -> tuple[int, str]:
    if model.items_per_s is None:
        return model.batch_size, f"{model.topology}: one model batch (speed not measured)"
    batches = max(1, math.ceil(model.items_per_s * target_s / model.batch_size))
    take = min(batches * model.batch_size, max(model.batch_size, MAX_TAKE))
    take = max(model.batch_size, take // model.batch_size * model.batch_size)
    why = (
        f"{model.topology}: {take // model.batch_size} batches of {model.batch_size} "
        f"(~{take / model.items_per_s * 1000:.0f} ms at {model.items_per_s:.0f} items/s)"
    )
    return take, why


def size_pipeline(
    models: Sequence[ModelSpeed], *, device: str, batching: BatchingSettings
) -> PipelineSize:
    """The take, wait and window for a stream carrying every topology of ``models``: room for
    the largest take any of them wants, the shortest wait."""
    if not models:
        raise ValueError("sizing needs at least one model stage")
    if batching.take_size is not None:
        take, why = batching.take_size, "pinned by STREAMER_BATCH_TAKE_SIZE"
    else:
        take, why = max(_take(m, batching.target_batch_ms / 1000) for m in models)
    in_flight = batching.max_in_flight or (3 if device.startswith("cuda") else 2)
    wait_s = max(min(m.max_wait_ms for m in models) / 1000, 0.001)
    return PipelineSize(take=take, wait_s=wait_s, in_flight=in_flight, why=why)

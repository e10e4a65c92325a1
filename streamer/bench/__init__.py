"""Benchmarks: scripts that measure and print figures, never timed assertions."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BenchSizes"]


@dataclass(frozen=True, slots=True)
class BenchSizes:
    """How much work each phase of ``streamer bench`` does (the CLI's defaults)."""

    images: int = 320
    texts: int = 3000
    naive_images: int = 40
    naive_texts: int = 300
    redelivery_rounds: int = 5
    memory_items: int = 20_000
    #: texts of mixed length timed through the text model in arrival order and cut by length
    #: (0: not measured)
    mixed_texts: int = 288
    model_seconds: float = 4.0
    #: rows the sink-alone phase writes, and rows per upsert there
    sink_rows: int = 4096
    sink_chunk: int = 1024
    #: measure the text topology too (False: images only, no text model loaded anywhere; the
    #: memory run, which uses texts, is left out)
    text: bool = True
    #: worker processes in one consumer group for the end-to-end phases (each with its own
    #: interpreter lock, the cores split between them; on a GPU they share the device)
    workers: int = 1

    @property
    def media(self) -> tuple[str, ...]:
        return ("image", "text") if self.text else ("image",)

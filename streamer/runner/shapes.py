"""Batch shapes a model stage runs at: a few buckets, padded up to, warmed before serving.

On a GPU the first call of a model at a new batch shape in a thread costs ~2 s (cuDNN builds
its execution plans per thread and per shape), and a stream makes every size from 1 to its
batch size: partial batches at the end of a take, survivors of a batch with failures. So a
GPU worker runs a handful of sizes only, the *buckets* (the batch size and its halves: 256,
128, 64, 32): a call of ``n`` items is padded up to the smallest bucket that holds it, with
copies of its last item whose outputs are dropped, and every bucket is run once in every model
thread before the worker takes work. A CPU has no such stall, and padding would cost real
compute there, so by default a CPU stage runs every size as it comes.

:class:`ShapedModel` wraps a loaded model with this policy and keeps the evidence: how long the
warm-up took, and every call after it at a shape its thread had not run (a *cold call*, logged
once per shape and thread, counted for the metrics). A served worker that stays at zero cold
calls never stalls on a first call.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from streamer.runner.operator import LoadedModel

__all__ = ["ShapedModel", "bucket_for", "buckets", "padded"]

log = logging.getLogger(__name__)


def buckets(max_size: int, count: int) -> tuple[int, ...]:
    """``count`` sizes, ``max_size`` and its successive halves, ascending (at least 1 each);
    ``count`` 0: no buckets (every size runs as it comes)."""
    if count <= 0:
        return ()
    sizes = {max(1, max_size >> i) for i in range(count)}
    return tuple(sorted(sizes))


def bucket_for(n: int, sizes: Sequence[int]) -> int:
    """The smallest bucket that holds ``n`` items (``n`` itself above the largest, or without
    buckets)."""
    for size in sizes:
        if size >= n:
            return size
    return n


def padded(items: Sequence[Any], size: int) -> list[Any]:
    """``items`` filled up to ``size`` with copies of the last one."""
    if not items:
        raise ValueError("cannot pad an empty batch")
    return [*items, *([items[-1]] * (size - len(items)))]


class ShapedModel:
    """``model`` called only at bucketed sizes, with a record of warm-up and cold calls.

    ``on_cold(size)`` is called for every cold call (the worker counts them in a metric).
    """

    def __init__(
        self,
        model: LoadedModel[Any, Any],
        sizes: Sequence[int],
        *,
        label: str,
        on_cold: Callable[[int], None] | None = None,
    ) -> None:
        self.model = model
        self.sizes = tuple(sorted(sizes))
        self.label = label
        self.on_cold = on_cold
        self.warmup_s: float | None = None
        self.cold_calls = 0
        self._seen: set[tuple[int, int]] = set()
        self._lock = threading.Lock()

    @property
    def device(self) -> str:
        return self.model.device

    @property
    def precision(self) -> str:
        return self.model.precision

    @property
    def warm(self) -> bool:
        return self.warmup_s is not None

    def shapes_to_warm(self, largest: int) -> tuple[int, ...]:
        """The sizes a warm-up runs: the buckets, or without them every size up to
        ``largest`` would be needed, so just ``largest`` (a CPU has no first-call stall)."""
        return self.sizes or (largest,)

    def __call__(self, batch: Sequence[Any], /) -> Any:
        n = len(batch)
        if n == 0:
            return self.model(batch)
        size = bucket_for(n, self.sizes)
        self._note(size)
        out = self.model(padded(batch, size) if size > n else batch)
        return out[:n] if size > n else out

    def sample_inputs(self, n: int) -> list[Any]:
        return self.model.sample_inputs(n)

    def warmed(self, seconds: float) -> None:
        """Record that every thread has run every bucket (calls from now on are served)."""
        self.warmup_s = seconds

    def _note(self, size: int) -> None:
        if not self.sizes:  # every size runs as it comes: nothing to tell
            return
        key = (threading.get_ident(), size)
        with self._lock:
            if key in self._seen:
                return
            self._seen.add(key)
            cold = self.warm
            if cold:
                self.cold_calls += 1
        if cold:
            log.warning(
                "first model call at a new batch shape after warm-up (may stall on a GPU)",
                extra={
                    "stage": self.label,
                    "batch": size,
                    "model_thread": threading.current_thread().name,
                },
            )
            if self.on_cold is not None:
                self.on_cold(size)

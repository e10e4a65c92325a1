"""The threads a process runs its model calls on.

A GPU builds execution plans per thread and per input shape (cuDNN: ~2 s for each new pair),
so a thread that has not run a shape before stalls the stream on its first call. On a GPU every
model call of the process therefore runs on one long-lived thread (``model_streams`` threads if
asked for), which ingest and queries share through *lanes*: the query lane goes first, so an
answer never waits behind more than the model call already running. On a CPU there is no such
stall and a query should not wait for an ingest batch at all: ingest gets ``streams`` threads
and queries a thread of their own.

A model stage that only prepares the next one's inputs on the device (JPEG decode on the GPU)
runs on a *prepare* thread of its own with its own CUDA stream, so one batch is decoded while
the model embeds another (it uses no cuDNN convolutions, so it builds no per-thread plans). On
a CPU it shares the ingest threads.

A lane is an :class:`~concurrent.futures.Executor`, so ``loop.run_in_executor(lane, ...)`` and
the :class:`~streamer.runner.runner.Runner` take it as they take a thread pool. Closing a lane
does nothing: the threads belong to :class:`ModelThreads`, closed once by the process.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

__all__ = ["Lane", "ModelThreads", "PriorityExecutor"]

T = TypeVar("T")

#: lower runs first
_PRIORITY = {"query": 0, "prepare": 1, "ingest": 1}
_STOP = float("inf")

Lane = Literal["ingest", "query", "prepare"]


@dataclass(order=True)
class _Work:
    priority: float
    seq: int
    run: Callable[[], None] = field(compare=False)
    future: Future[Any] | None = field(default=None, compare=False)


class PriorityExecutor:
    """``threads`` long-lived threads taking work by priority, then in order of submission."""

    def __init__(self, threads: int, name: str) -> None:
        if threads < 1:
            raise ValueError(f"an executor needs at least one thread, got {threads}")
        self.threads = threads
        self._queue: queue.PriorityQueue[_Work] = queue.PriorityQueue()
        self._seq = itertools.count()
        self._closed = False
        self._lock = threading.Lock()
        self._workers = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
            for i in range(threads)
        ]
        for worker in self._workers:
            worker.start()

    def submit(
        self, priority: float, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> Future[T]:
        future: Future[T] = Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)

        with self._lock:
            if self._closed:
                raise RuntimeError("cannot submit to a closed executor")
            self._queue.put(_Work(priority, next(self._seq), run, future))
        return future

    def lane(self, priority: float) -> _LaneExecutor:
        return _LaneExecutor(self, priority)

    def close(self, *, wait: bool = False) -> None:
        """Stop taking work; queued work not yet started is dropped (its futures cancelled)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._drain()
            for _ in self._workers:
                self._queue.put(_Work(_STOP, next(self._seq), lambda: None))
        if wait:
            for worker in self._workers:
                worker.join()

    def _work(self) -> None:
        while True:
            work = self._queue.get()
            if work.priority == _STOP:
                return
            work.run()

    def _drain(self) -> None:
        """Cancel the work not yet started."""
        while True:
            try:
                work = self._queue.get_nowait()
            except queue.Empty:
                return
            if work.future is not None:
                work.future.cancel()


class _LaneExecutor(Executor):
    """One priority of a :class:`PriorityExecutor`, as an executor; shutting it down does
    nothing (the threads are shared)."""

    def __init__(self, owner: PriorityExecutor, priority: float) -> None:
        self.owner = owner
        self.priority = priority

    @property
    def threads(self) -> int:
        return self.owner.threads

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        return self.owner.submit(self.priority, fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        pass


class ModelThreads:
    """The model threads of a process on ``device`` (see the module docstring)."""

    def __init__(self, device: str, streams: int) -> None:
        self.device = device
        self.streams = max(1, streams)
        self.shared = device.startswith("cuda")
        self._ingest = PriorityExecutor(self.streams, "model")
        self._query = self._ingest if self.shared else PriorityExecutor(1, "model-query")
        self._prepare = PriorityExecutor(1, "device-prepare") if self.shared else self._ingest

    def lane(self, name: Lane) -> _LaneExecutor:
        """The executor model calls of ingest (``ingest``), of queries (``query``) and of
        stages that prepare a model's inputs on the device (``prepare``) go to."""
        owner = {"ingest": self._ingest, "query": self._query, "prepare": self._prepare}[name]
        return owner.lane(_PRIORITY[name])

    def pools(self, *, prepare: bool = False) -> list[_LaneExecutor]:
        """One lane per distinct set of threads that runs model stages (``prepare``: stages
        that prepare a model's inputs): what a warm-up must reach."""
        if prepare:
            return [self.lane("prepare")]
        lanes = [self.lane("ingest")]
        return lanes if self.shared else [*lanes, self.lane("query")]

    def close(self) -> None:
        for owner in {id(e): e for e in (self._ingest, self._query, self._prepare)}.values():
            owner.close()

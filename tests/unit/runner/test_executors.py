"""Model threads: one shared thread on a GPU with queries first, separate threads on a CPU."""

import asyncio
import threading
import time

import pytest

from streamer.runner.executors import ModelThreads, PriorityExecutor


def _thread() -> str:
    return threading.current_thread().name


def test_on_a_gpu_ingest_and_queries_share_one_long_lived_thread() -> None:
    threads = ModelThreads("cuda:0", 1)
    try:
        names = {threads.lane(lane).submit(_thread).result() for lane in ("ingest", "query")}
        names |= {threads.lane("ingest").submit(_thread).result() for _ in range(20)}
        assert names == {"model-0"}
        assert len(threads.pools()) == 1
    finally:
        threads.close()


def test_on_a_cpu_queries_have_a_thread_of_their_own() -> None:
    threads = ModelThreads("cpu", 2)
    try:
        gate = threading.Event()
        busy = [threads.lane("ingest").submit(gate.wait, 5) for _ in range(2)]  # both taken
        # a query is answered while every ingest thread is busy
        assert threads.lane("query").submit(_thread).result(timeout=5) == "model-query-0"
        gate.set()
        assert all(f.result(timeout=5) for f in busy)
        assert [p.threads for p in threads.pools()] == [2, 1]
    finally:
        threads.close()


def test_queued_queries_run_before_queued_ingest_work() -> None:
    threads = ModelThreads("cuda", 1)
    order: list[str] = []
    gate = threading.Event()
    try:
        running = threads.lane("ingest").submit(gate.wait, 5)
        queued = [threads.lane("ingest").submit(order.append, f"ingest{i}") for i in range(3)]
        queued.append(threads.lane("query").submit(order.append, "query"))
        gate.set()
        for future in [running, *queued]:
            future.result(timeout=5)
        # the query jumped the queue; the ingest calls kept their order
        assert order == ["query", "ingest0", "ingest1", "ingest2"]
    finally:
        threads.close()


def test_lanes_are_executors_for_the_event_loop() -> None:
    threads = ModelThreads("cuda", 1)

    async def main() -> int:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(threads.lane("query"), sum, [1, 2, 3])

    try:
        assert asyncio.run(main()) == 6
        threads.lane("ingest").shutdown(cancel_futures=True)  # a lane does not own the threads
        assert threads.lane("ingest").submit(_thread).result(timeout=5) == "model-0"
    finally:
        threads.close()


def test_close_cancels_what_has_not_started_and_refuses_more() -> None:
    executor = PriorityExecutor(1, "t")
    gate = threading.Event()
    running = executor.submit(1, gate.wait, 5)
    time.sleep(0.05)
    waiting = executor.submit(1, lambda: "never")
    executor.close()
    gate.set()
    assert running.result(timeout=5) is True
    assert waiting.cancelled()
    with pytest.raises(RuntimeError, match="closed"):
        executor.submit(1, lambda: None)


def test_an_exception_reaches_the_caller_and_the_thread_lives_on() -> None:
    executor = PriorityExecutor(1, "t")
    try:
        with pytest.raises(ZeroDivisionError):
            executor.submit(1, lambda: 1 / 0).result(timeout=5)
        assert executor.submit(1, lambda: 2).result(timeout=5) == 2
    finally:
        executor.close()


def test_stages_that_prepare_a_models_inputs_get_a_thread_of_their_own_on_a_gpu() -> None:
    gpu, cpu = ModelThreads("cuda", 1), ModelThreads("cpu", 2)
    try:
        assert gpu.lane("prepare").submit(_thread).result(timeout=5) == "device-prepare-0"
        assert [p.threads for p in gpu.pools(prepare=True)] == [1]
        # on a CPU they share the ingest threads
        assert cpu.lane("prepare").submit(_thread).result(timeout=5).startswith("model-")
        assert cpu.lane("prepare").owner is cpu.lane("ingest").owner
    finally:
        gpu.close()
        cpu.close()

import asyncio

import pytest

from streamer.ingest.inflight import InFlightWindow


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_batches_overlap_up_to_the_limit_and_finish_in_order() -> None:
    async def main() -> tuple[list[str], int]:
        window: InFlightWindow[str] = InFlightWindow(2)
        log: list[str] = []
        running = 0
        most = 0

        def batch(name: str, delay: float) -> tuple[object, object]:
            async def process() -> str:
                nonlocal running, most
                running += 1
                most = max(most, running)
                log.append(f"start {name}")
                await asyncio.sleep(delay)
                running -= 1
                return name

            async def finish(result: str) -> None:
                log.append(f"finish {result}")

            return process, finish

        for name, delay in [("a", 0.05), ("b", 0.01), ("c", 0.0)]:
            process, finish = batch(name, delay)
            await window.submit({name}, process, finish)  # type: ignore[arg-type]
        await window.drain()
        return log, most

    log, most = run(main())
    assert most == 2  # a and b ran together; c waited for a slot
    finishes = [entry for entry in log if entry.startswith("finish")]
    assert finishes == ["finish a", "finish b", "finish c"]  # taken order, though b was faster


def test_a_batch_sharing_a_key_waits_for_the_earlier_one() -> None:
    async def main() -> list[str]:
        window: InFlightWindow[None] = InFlightWindow(4)
        log: list[str] = []

        async def slow() -> None:
            log.append("a start")
            await asyncio.sleep(0.05)
            log.append("a done")

        async def fast_same_key() -> None:
            log.append("b start")

        async def other_key() -> None:
            log.append("c start")

        async def finish(_: None) -> None:
            return None

        await window.submit({"asset-1", "asset-2"}, slow, finish)
        await window.submit({"asset-2"}, fast_same_key, finish)
        await window.submit({"asset-3"}, other_key, finish)
        await window.drain()
        return log

    log = run(main())
    assert log.index("b start") > log.index("a done")  # same asset: in order
    assert log.index("c start") < log.index("a done")  # other assets: overlapped


def test_a_failed_batch_stops_later_ones_from_finishing() -> None:
    async def main() -> tuple[list[str], InFlightWindow[str]]:
        window: InFlightWindow[str] = InFlightWindow(3)
        finished: list[str] = []

        async def boom() -> str:
            await asyncio.sleep(0.02)
            raise RuntimeError("sink bug")

        async def fine() -> str:
            return "b"

        async def finish(result: str) -> None:
            finished.append(result)

        await window.submit({"a"}, boom, finish)
        await window.submit({"b"}, fine, finish)
        with pytest.raises(RuntimeError, match="sink bug"):
            await window.drain()
        assert window.failed.is_set()
        with pytest.raises(RuntimeError, match="sink bug"):
            await window.submit({"c"}, fine, finish)
        return finished, window

    finished, window = run(main())
    assert finished == []  # b was processed but never acknowledged past the failed a
    assert window.in_flight == 0


def test_submit_blocks_while_the_window_is_full() -> None:
    async def main() -> bool:
        window: InFlightWindow[None] = InFlightWindow(1)
        release = asyncio.Event()

        async def held() -> None:
            await release.wait()

        async def finish(_: None) -> None:
            return None

        await window.submit({"a"}, held, finish)
        second = asyncio.create_task(window.submit({"b"}, held, finish))
        await asyncio.sleep(0.02)
        blocked = not second.done()
        release.set()
        await second
        await window.drain()
        return blocked

    assert run(main())


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError):
        InFlightWindow(0)

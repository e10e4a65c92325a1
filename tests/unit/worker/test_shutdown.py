"""The stop of a worker: drain within the grace, one last line, the watchdog's exit."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from streamer.ingest.inflight import InFlightWindow
from streamer.worker.shutdown import EXIT_CLEAN, EXIT_FORCED, Shutdown, end_process


class Exits:
    def __init__(self) -> None:
        self.codes: list[int] = []
        self.called = threading.Event()

    def __call__(self, code: int) -> None:
        self.codes.append(code)
        self.called.set()


async def _hold(release: asyncio.Event) -> None:
    await release.wait()


async def _noop(_: object) -> None:
    return None


async def _window_with_batch(release: asyncio.Event) -> InFlightWindow[None]:
    window: InFlightWindow[None] = InFlightWindow(2)
    await window.submit({"a"}, lambda: _hold(release), _noop)
    return window


@pytest.fixture(autouse=True)
def disarmed() -> Iterator[None]:
    """Watchdogs a test left armed do not fire during the next tests."""
    yield
    for thread in threading.enumerate():
        if isinstance(thread, threading.Timer) and thread.name == "shutdown-watchdog":
            thread.cancel()


def stopped_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == "worker stopped"]


def test_drain_waits_for_the_batches_in_flight() -> None:
    async def scenario() -> tuple[bool, int]:
        release = asyncio.Event()
        window = await _window_with_batch(release)
        shutdown = Shutdown(30.0, exit=Exits())
        shutdown.watch(window)
        shutdown.begin("SIGTERM")
        asyncio.get_running_loop().call_later(0.05, release.set)
        return await shutdown.drain(), window.in_flight

    finished, left = asyncio.run(scenario())
    assert finished and left == 0


def test_drain_gives_up_in_time_and_leaves_the_batch_running() -> None:
    async def scenario() -> tuple[bool, int, int, bool]:
        release = asyncio.Event()
        window = await _window_with_batch(release)
        shutdown = Shutdown(0.3, exit=Exits())  # 0.2 s to drain, 0.1 s kept for faust's stop
        shutdown.watch(window)
        shutdown.begin("SIGTERM")
        finished = await shutdown.drain()
        assert shutdown.draining.is_set()
        running = window.in_flight
        release.set()  # the batch was not cancelled: it can still finish
        await window.drain()
        return finished, running, shutdown.left_unfinished, window.failed.is_set()

    finished, running, left, failed = asyncio.run(scenario())
    assert not finished and running == 1 and left == 1
    assert not failed  # giving up on a batch is not failing it


def test_the_watchdog_ends_the_process_when_the_grace_runs_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    exits = Exits()
    shutdown = Shutdown(0.3, exit=exits)
    with caplog.at_level(logging.INFO):
        shutdown.begin("SIGTERM")
        assert exits.called.wait(5)
    assert exits.codes == [EXIT_FORCED]
    (line,) = stopped_lines(caplog)
    assert line.how == "grace ran out"  # type: ignore[attr-defined]
    assert line.exit_code == EXIT_FORCED  # type: ignore[attr-defined]


def test_one_last_line_and_the_watchdog_keeps_its_code(caplog: pytest.LogCaptureFixture) -> None:
    exits = Exits()
    shutdown = Shutdown(0.3, exit=exits)
    with caplog.at_level(logging.INFO):
        shutdown.begin("SIGINT")
        assert shutdown.finish("clean", EXIT_CLEAN) == EXIT_CLEAN
        assert exits.called.wait(5)  # tearing down hung past the grace
    assert exits.codes == [EXIT_CLEAN]  # the clean stop's code, not a forced one
    assert len(stopped_lines(caplog)) == 1


def test_a_second_signal_ends_the_process_at_once(caplog: pytest.LogCaptureFixture) -> None:
    exits = Exits()
    shutdown = Shutdown(60.0, exit=exits)
    with caplog.at_level(logging.INFO):
        assert shutdown.begin("SIGINT")
        assert not shutdown.begin("SIGINT")
    assert exits.codes == [EXIT_FORCED]
    (line,) = stopped_lines(caplog)
    assert "second SIGINT" in line.how  # type: ignore[attr-defined]


def test_nothing_to_drain() -> None:
    shutdown = Shutdown(10.0, exit=Exits())
    shutdown.begin("SIGTERM")
    assert asyncio.run(shutdown.drain())
    assert shutdown.left_unfinished == 0


def test_callbacks_run_when_stopping_begins_without_holding_it_up() -> None:
    shutdown = Shutdown(10.0, exit=Exits())
    called, release = threading.Event(), threading.Event()

    def withdraw() -> None:
        called.set()
        release.wait(5)  # a server that is gone: the stop does not wait for it

    shutdown.on_begin(withdraw)
    assert shutdown.begin("SIGTERM")
    assert called.wait(5)
    assert asyncio.run(shutdown.drain())
    release.set()


def test_end_process_flushes_then_exits_with_the_code() -> None:
    exits = Exits()
    end_process(EXIT_FORCED, exit=exits)
    assert exits.codes == [EXIT_FORCED]


def test_end_process_skips_the_interpreters_teardown_but_not_what_was_written() -> None:
    """Buffered output reaches the pipe; the teardown (where native libraries' threads abort
    it) never runs: an atexit hook is not called, and the code is the one given."""
    program = (
        "import atexit, logging, sys\n"
        "from streamer.worker.shutdown import end_process\n"
        "logging.basicConfig(stream=sys.stderr, level=logging.INFO)\n"
        "atexit.register(lambda: print('teardown ran', flush=True))\n"
        "print('last line')\n"  # buffered: stdout is a pipe
        "logging.getLogger('w').info('worker stopped')\n"
        "end_process(3)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 3, done.stderr
    assert done.stdout == "last line\n"
    assert "worker stopped" in done.stderr

"""A failing dependency in the logs: said once, then as a count every window, then said back."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from streamer.config.logs import DigestHandler, OutageDigest, configure_logging

WINDOW_S = 30.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def digest(clock: Clock) -> OutageDigest:
    return OutageDigest(every_s=WINDOW_S, clock=clock)


def record(
    logger: str, msg: str, *args: object, level: int = logging.ERROR, **fields: object
) -> logging.LogRecord:
    return logging.makeLogRecord(
        {
            "name": logger,
            "levelno": level,
            "levelname": logging.getLevelName(level),
            "msg": msg,
            "args": args,
            **fields,
        }
    )


def unreachable(node: int) -> logging.LogRecord:
    """aiokafka's line for each failed reconnect (aiokafka/client.py)."""
    return record("aiokafka", "Unable connect to node with id %s: %s", node, "Connect call failed")


def written(lines: list[logging.LogRecord]) -> list[str]:
    return [line.getMessage() for line in lines]


def test_a_flood_of_failure_lines_becomes_one_line_then_a_count(
    digest: OutageDigest, clock: Clock
) -> None:
    out: list[str] = []
    for i in range(100):  # 40 s of an outage, several lines a second, from two nodes
        out += written(digest.admit(unreachable(i % 2)))
        clock.now += 0.4
    assert out == [
        "Unable connect to node with id 0: Connect call failed",
        "kafka failing for 30 s, 75 repeated lines held back "
        "(last: aiokafka: Unable connect to node with id 1: Connect call failed)",
    ]


def test_each_kind_of_failure_is_shown_once(digest: OutageDigest, clock: Clock) -> None:
    out: list[str] = []
    for _ in range(3):
        out += written(digest.admit(unreachable(111)))
        out += written(digest.admit(record("aiokafka", "Unable to update metadata from %s", [111])))
        fetch = record("aiokafka.consumer.fetcher", "Failed fetch messages from %s: %s", 111, "x")
        out += written(digest.admit(fetch))
        clock.now += 1
    assert out == [
        "Unable connect to node with id 111: Connect call failed",
        "Unable to update metadata from [111]",
        "Failed fetch messages from 111: x",
    ]


def test_when_the_failures_stop_the_dependency_is_said_back_once(
    digest: OutageDigest, clock: Clock
) -> None:
    for _ in range(10):
        digest.admit(unreachable(1))
        clock.now += 1.0
    assert digest.next_due_in() == pytest.approx(WINDOW_S - 1.0)  # 30 s after the last failure
    clock.now += WINDOW_S
    back = digest.come_due()
    assert written(back) == [
        "kafka back after 9 s (no failure for 30 s), 9 repeated lines held back"
    ]
    assert back[0].levelno == logging.INFO
    assert (back[0].dependency, back[0].outage) == ("kafka", "over")  # type: ignore[attr-defined]
    assert digest.come_due() == [] and digest.next_due_in() is None


def test_a_later_line_flushes_what_came_due_before_it(digest: OutageDigest, clock: Clock) -> None:
    digest.admit(unreachable(1))
    digest.admit(unreachable(1))
    clock.now += 45
    done = record("streamer.ingest.agent", "batch done", level=logging.INFO)
    assert written(digest.admit(done)) == [
        "kafka back after 0 s (no failure for 30 s), 1 repeated lines held back",
        "batch done",
    ]


def test_a_single_failure_line_needs_no_back_line(digest: OutageDigest, clock: Clock) -> None:
    warning = "Marking the coordinator dead (node %s)for group %s."
    assert len(digest.admit(record("aiokafka", warning, 1, "g", level=logging.WARNING))) == 1
    clock.now += 2 * WINDOW_S
    assert digest.come_due() == []


def test_a_new_outage_shows_its_first_line_again(digest: OutageDigest, clock: Clock) -> None:
    digest.admit(unreachable(1))
    digest.admit(unreachable(1))
    clock.now += 2 * WINDOW_S
    digest.come_due()
    assert written(digest.admit(unreachable(1))) == [
        "Unable connect to node with id 1: Connect call failed"
    ]


def test_lines_that_are_not_about_a_dependency_pass_untouched(digest: OutageDigest) -> None:
    ours = record("streamer.query.service", "search failed: %s", "bad filter")
    info = record("aiokafka.consumer", "joined group", level=logging.INFO)
    for _ in range(5):
        assert digest.admit(ours) == [ours]
        assert digest.admit(info) == [info]


def test_callers_waiting_on_the_same_outage_say_it_once(digest: OutageDigest, clock: Clock) -> None:
    def retry(what: str, msg: str, phase: str, level: int = logging.WARNING) -> list[str]:
        line = record("streamer.core.retry", f"{what}: {msg}", level=level,
                      dependency="milvus", outage=phase)  # fmt: skip
        return written(digest.admit(line))

    out = retry("upsert", "milvus unavailable", "began") + retry(
        "delete", "milvus unavailable", "began"
    )
    clock.now += 10
    out += retry("upsert", "unavailable for 10 s", "ongoing")  # within the window: held
    clock.now += 25
    out += retry("upsert", "unavailable for 35 s", "ongoing")
    out += retry("delete", "unavailable for 35 s", "ongoing")
    clock.now += 5
    out += retry("upsert", "back after 40 s", "over", logging.INFO)
    out += retry("delete", "back after 40 s", "over", logging.INFO)
    assert out == [
        "upsert: milvus unavailable",
        "upsert: unavailable for 35 s",
        "upsert: back after 40 s",
    ]
    clock.now += 1
    assert retry("upsert", "milvus unavailable", "began") == ["upsert: milvus unavailable"]


def test_faust_is_known_by_its_code_whatever_logger_it_uses(clock: Clock) -> None:
    """faust's services log through the logger of their subclass's module (a streamer one)."""
    digest = OutageDigest(every_s=WINDOW_S, clock=clock, library_level=logging.WARNING)
    consumer = "/venv/lib/python3.11/site-packages/faust/transport/consumer.py"

    def faust(msg: str, level: int) -> logging.LogRecord:
        return record("streamer.worker.transport", msg, level=level, pathname=consumer)

    assert digest.admit(faust("[^--_Consumer]: Agent tracebacks:", logging.INFO)) == []
    waiting = "[^--_Consumer]: wait_empty: Waiting for tasks"
    out = [
        line for _ in range(5) for line in written(digest.admit(faust(waiting, logging.WARNING)))
    ]
    assert out == [waiting]
    at = "/work/streamer/worker/transport.py"
    ours = record("streamer.worker.transport", "rebalance", level=logging.INFO, pathname=at)
    assert digest.admit(ours) == [ours]


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_the_handler_writes_what_the_digest_admits(clock: Clock) -> None:
    target = Collect()
    handler = DigestHandler(target, OutageDigest(every_s=WINDOW_S, clock=clock))
    logger = logging.Logger("aiokafka")  # not the shared one: nothing else sees these lines
    logger.addHandler(handler)
    try:
        for _ in range(20):
            logger.error("Unable to update metadata from %s", [111])
        assert target.lines == ["Unable to update metadata from [111]"]
    finally:
        handler.close()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    names = ("pymilvus", "pymilvus.milvus_client", "aiokafka", "milvus_lite")
    saved = {n: (logging.getLogger(n).level, logging.getLogger(n).propagate) for n in names}
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:], root.level = handlers, level
    for name, (lvl, propagate) in saved.items():
        logging.getLogger(name).setLevel(lvl)
        logging.getLogger(name).propagate = propagate


@pytest.mark.usefixtures("restore_logging")
def test_a_command_shows_its_own_warnings_and_no_librarys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stderr = io.StringIO()
    monkeypatch.setattr("sys.stderr", stderr)
    configure_logging("INFO", third_party="CRITICAL")
    logging.getLogger("pymilvus.client.iterator.query_iterator").warning(
        "failed to get mvccTs from milvus server, use client-side ts instead"
    )
    logging.getLogger("pymilvus.milvus_client.milvus_client").info("Created new connection")
    logging.getLogger("aiokafka").error("Unable to update metadata from %s", [111])
    logging.getLogger("milvus_lite.server_manager").info("MilvusLite server started")
    logging.getLogger("streamer.rollout.commands").warning("the candidate lacks 3 assets")
    lines = stderr.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].endswith("the candidate lacks 3 assets"), lines


@pytest.mark.usefixtures("restore_logging")
def test_a_worker_shows_a_librarys_failures_collapsed(monkeypatch: pytest.MonkeyPatch) -> None:
    stderr = io.StringIO()
    monkeypatch.setattr("sys.stderr", stderr)
    configure_logging("INFO")
    for node in range(50):
        logging.getLogger("aiokafka").error("Unable connect to node with id %s: %s", node, "x")
    # pymilvus routes through the same handler: no handler of its own on stderr
    assert logging.getLogger("pymilvus").handlers == []
    assert logging.getLogger("pymilvus").propagate
    lines = stderr.getvalue().splitlines()
    assert len(lines) == 1 and "Unable connect to node with id 0: x" in lines[0], lines

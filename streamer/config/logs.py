"""Structured logs: ``key=value`` pairs on a console, one JSON object a line for machines; and
a failing dependency said once, then as a count, not several lines a second.

Pass fields with ``extra={...}``; they are rendered after the message.

A dependency that is down makes its client log the same failure over and over (aiokafka: every
reconnect, every metadata refresh, every fetch). :class:`OutageDigest` lets the first line of
each kind through (kind: the logger and the message template, so other node ids are the same
kind), holds the repeats back, and says every ``every_s`` how long the dependency has been
failing and how many lines it held back; once no failure has come for ``every_s`` it says the
dependency is back. streamer's own retries (:mod:`streamer.core.retry`) report their outages
themselves, with ``extra={"dependency": ..., "outage": "began" | "ongoing" | "over"}``; the
digest keeps concurrent callers from saying the same thing at once.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from streamer.core.retry import REPORT_EVERY_S

__all__ = [
    "DEPENDENCY_LOGGERS",
    "DigestHandler",
    "OutageDigest",
    "adopt_pymilvus_loggers",
    "configure_logging",
]

#: libraries' loggers, and the dependency their failure lines are about
DEPENDENCY_LOGGERS: Mapping[str, str] = {
    "aiokafka": "kafka",
    "kafka": "kafka",
    "faust": "faust",
    "mode": "faust",
    "pymilvus": "milvus",
    "milvus_lite": "milvus",
    "grpc": "milvus",
    "redis": "redis",
    "urllib3": "http",
    "httpx": "http",
}
#: libraries that are quiet below ``third_party`` without being a dependency of their own
_QUIET_LOGGERS = ("faiss",)
#: pymilvus logs every failed call with a traceback; streamer reports them itself, typed
_PYMILVUS_LOGGERS = ("pymilvus", "pymilvus.milvus_client", "pymilvus.bulk_writer")
_LAST_LINE_CHARS = 200
_TIMER_SLACK_S = 0.05

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        pairs = " ".join(f"{k}={json.dumps(v, default=str)}" for k, v in _fields(record).items())
        line = f"{stamp} {record.levelname:<7} {record.name}: {record.getMessage()}"
        line = f"{line} {pairs}" if pairs else line
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


@dataclass
class _Outage:
    """What a library's failure lines say about one dependency since they began."""

    since: float
    last_failure: float
    last_report: float
    shown: set[tuple[str, object]] = field(default_factory=set)
    held: int = 0
    last_line: str = ""


class OutageDigest:
    """Decides which log lines about a failing dependency are written: :meth:`admit` takes each
    record and returns those to write in its place, in order (none, the record itself, and
    any digest line that has come due). Not thread-safe: :class:`DigestHandler` serialises."""

    def __init__(
        self,
        *,
        every_s: float = REPORT_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
        dependency_loggers: Mapping[str, str] = DEPENDENCY_LOGGERS,
        library_level: int = logging.NOTSET,
    ) -> None:
        """``library_level``: lines a library logs below it are dropped, also those it logs
        through a logger named after streamer's module (faust's services log through the
        logger of their subclass's module, which a logger's level does not reach)."""
        self.every_s = every_s
        self.clock = clock
        self.dependency_loggers = dependency_loggers
        self.library_level = library_level
        self._down: dict[str, _Outage] = {}  # inferred from libraries' lines
        self._reported: dict[str, float] = {}  # ours: when a caller last said it is down
        self._recovered: dict[str, float] = {}  # ours: when a caller last said it is back

    def admit(self, record: logging.LogRecord) -> list[logging.LogRecord]:
        now = self.clock()
        lines = self._come_due(now)
        phase = getattr(record, "outage", None)
        library = self._library_of(record)
        if library is not None and record.levelno < self.library_level:
            return lines
        dependency = getattr(record, "dependency", None) or library
        if phase is not None and dependency is not None:
            lines += self._reported_by_us(record, dependency, str(phase), now)
        elif dependency is not None and record.levelno >= logging.WARNING:
            lines += self._failure_line(record, dependency, now)
        else:
            lines.append(record)
        return lines

    def _library_of(self, record: logging.LogRecord) -> str | None:
        """The dependency of the library that logged ``record``: by its logger's name, else by
        the package its call site is in."""
        logger = record.name
        while logger:
            if logger in self.dependency_loggers:
                return self.dependency_loggers[logger]
            logger = logger.rpartition(".")[0]
        parts = PurePath(record.pathname).parts
        for installed in ("site-packages", "dist-packages"):
            if installed in parts[:-1]:
                package = parts[parts.index(installed) + 1]
                return self.dependency_loggers.get(package)
        return None

    def _failure_line(
        self, record: logging.LogRecord, dependency: str, now: float
    ) -> list[logging.LogRecord]:
        outage = self._down.get(dependency)
        if outage is None:
            outage = self._down[dependency] = _Outage(since=now, last_failure=now, last_report=now)
        outage.last_failure = now
        kind = (record.name, record.msg)
        if kind not in outage.shown:
            outage.shown.add(kind)
            return [record]
        outage.held += 1
        outage.last_line = f"{record.name}: {record.getMessage()}"[:_LAST_LINE_CHARS]
        if now - outage.last_report < self.every_s:
            return []
        outage.last_report = now
        text = (
            f"{dependency} failing for {now - outage.since:.0f} s, {outage.held} repeated lines "
            f"held back (last: {outage.last_line})"
        )
        return [_line(logging.WARNING, dependency, "ongoing", text)]

    def _reported_by_us(
        self, record: logging.LogRecord, dependency: str, phase: str, now: float
    ) -> list[logging.LogRecord]:
        """A caller's own report: one "down" line a window per dependency, however many callers
        wait on it, and one "back" line when they come through."""
        if phase == "over":
            if self._reported.pop(dependency, None) is None:
                recovered = self._recovered.get(dependency)
                if recovered is not None and now - recovered < self.every_s:
                    return []  # another caller already said so
            self._recovered[dependency] = now
            return [record]
        reported = self._reported.get(dependency)
        if reported is not None and now - reported < self.every_s:
            return []
        self._reported[dependency] = now
        return [record]

    def come_due(self) -> list[logging.LogRecord]:
        """The lines due by now: a "back" line for each outage that has gone quiet with lines
        held back. (Its summaries come with its failure lines, which go on while it lasts.)"""
        return self._come_due(self.clock())

    def next_due_in(self) -> float | None:
        """Seconds until :meth:`come_due` has a line to give, or None while nothing is held."""
        deadlines = [o.last_failure + self.every_s for o in self._down.values() if o.held]
        return max(min(deadlines) - self.clock(), 0.0) if deadlines else None

    def _come_due(self, now: float) -> list[logging.LogRecord]:
        lines = []
        for dependency, outage in list(self._down.items()):
            if now - outage.last_failure < self.every_s:
                continue
            del self._down[dependency]
            if outage.held:  # else every line was written: nothing to add
                text = (
                    f"{dependency} back after {outage.last_failure - outage.since:.0f} s (no "
                    f"failure for {self.every_s:.0f} s), {outage.held} repeated lines held back"
                )
                lines.append(_line(logging.INFO, dependency, "over", text))
        return lines


def _line(level: int, dependency: str, phase: str, text: str) -> logging.LogRecord:
    return logging.makeLogRecord(
        {
            "name": __name__,
            "levelno": level,
            "levelname": logging.getLevelName(level),
            "msg": text,
            "dependency": dependency,
            "outage": phase,
        }
    )


class DigestHandler(logging.Handler):
    """Writes through ``target`` what ``digest`` admits; and, while lines are held back, the
    digest's lines as they come due, even when nothing else is logged by then (a worker with no
    traffic still says that Kafka is back)."""

    def __init__(self, target: logging.Handler, digest: OutageDigest) -> None:
        super().__init__()
        self.target = target
        self.digest = digest
        self._timer: threading.Timer | None = None

    def emit(self, record: logging.LogRecord) -> None:
        self._write(self.digest.admit(record), record)
        self._arm()

    def _write(self, lines: list[logging.LogRecord], record: logging.LogRecord | None) -> None:
        for line in lines:
            if line is record or logging.getLogger(line.name).isEnabledFor(line.levelno):
                self.target.handle(line)

    def _arm(self) -> None:
        wait = self.digest.next_due_in()
        if wait is None or self._timer is not None:
            return
        # a little late rather than early, so that the line is due when the timer fires
        self._timer = threading.Timer(wait + _TIMER_SLACK_S, self._tick)
        self._timer.daemon = True
        self._timer.start()

    def _tick(self) -> None:
        self.acquire()
        try:
            self._timer = None
            self._write(self.digest.come_due(), None)
            self._arm()
        finally:
            self.release()

    def flush(self) -> None:
        self.target.flush()

    def close(self) -> None:
        self.acquire()
        try:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        finally:
            self.release()
        self.target.close()
        super().close()


def configure_logging(
    level: str = "INFO", fmt: str = "console", *, third_party: str = "WARNING"
) -> None:
    """Write logs at ``level`` and up to stderr, repeated failure lines collapsed. Libraries log
    at ``third_party`` and up (a command passes ``"CRITICAL"``: it reports failures itself);
    at DEBUG they log their warnings too."""
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    root = logging.getLogger()
    for replaced in root.handlers:
        if isinstance(replaced, DigestHandler):
            replaced.close()  # stops its timer; stderr stays open
    root.setLevel(level.upper())
    debugging = root.level <= logging.DEBUG
    floor = logging.getLevelNamesMapping()[third_party.upper()]
    libraries = logging.WARNING if debugging else max(floor, root.level)
    root.handlers[:] = [DigestHandler(stream, OutageDigest(library_level=libraries))]
    for name in (*DEPENDENCY_LOGGERS, *_QUIET_LOGGERS):
        logging.getLogger(name).setLevel(libraries)
    global _pymilvus_level
    _pymilvus_level = libraries if debugging else logging.CRITICAL
    adopt_pymilvus_loggers()


#: the level of pymilvus's logger, as :func:`configure_logging` last set it
_pymilvus_level = logging.CRITICAL


def adopt_pymilvus_loggers() -> None:
    """pymilvus configures its loggers when imported (a stderr handler of its own, not
    propagating, "pymilvus.milvus_client" at INFO) over whatever was set before: route them
    through the root's handler like any other, at the configured level. Called again by the
    modules that import pymilvus, right after (importing it here would cost every command
    ~0.5 s: it pulls in pandas)."""
    if "pymilvus.settings" not in sys.modules:
        return
    for name in _PYMILVUS_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
    logging.getLogger("pymilvus").setLevel(_pymilvus_level)

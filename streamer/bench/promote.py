"""``streamer bench promote``: search latency while a rollout is promoted.

A promotion moves every search to the candidate at once; if a worker loads and calibrates the
candidate's model on its first query, that query waits for it (10 s on a CPU). The warmer
(:mod:`streamer.worker.warmup`) binds the candidate when the rollout starts, and ``promote``
waits until every live worker reports it warm. This bench shows what a search sees: on the
embedded stack, one worker (ingest and search) serving the text topology ingests ``texts``
texts; the candidate ``minilm-l6-cls@2`` is started and backfilled, and the bench waits until
the worker reports it warm. Then text searches go out at a fixed rate (each embedded by the
worker's model of the serving version) for ``steady_s``, ``rollout promote`` runs, and the
load goes on for ``after_s`` more.

Figures: p50/p99 of the steady searches (sent before the promotion began) beside those sent
from the promotion's start to ``window_s`` after it ended, their ratio to the steady p99 (goal:
at most :data:`GOAL_RATIO`), the slowest answer in the window, the first answer of the
candidate, and how many model loads the worker logged after the promotion (none expected).
The last line of ``--json`` holds them.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.table import Table

from streamer.bench.stats import percentile_ms
from streamer.config.connections import kafka_options, redis_client
from streamer.config.settings import KafkaSettings, Settings, namespaced, settings_env
from streamer.core.errors import NoAnswer, StreamerError
from streamer.core.messages import UploadMessage
from streamer.ingest.producer import publish
from streamer.kafka.topics import ensure_topics
from streamer.query.client import SearchClient
from streamer.stack.embedded import down as stack_down
from streamer.stack.embedded import recorded_settings
from streamer.stack.embedded import up as stack_up
from streamer.stack.processes import start_worker, terminate
from streamer.storage.store import VectorStore
from topologies import TEXT

__all__ = ["GOAL_RATIO", "Sample", "promote_figures", "run_promote_bench"]

NAMESPACE = "promotebench"
CANDIDATE = "minilm-l6-cls@2"
#: the window's p99 may be at most this many times the steady p99
GOAL_RATIO = 2.0
TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class Sample:
    """One search: when it was sent (seconds on the bench's clock), how long its answer took,
    and which model version answered (``error`` set: it failed, or no answer came)."""

    sent_s: float
    seconds: float
    model_version: str | None = None
    error: str | None = None


def promote_figures(
    samples: Sequence[Sample],
    *,
    promote_started_s: float,
    promote_done_s: float,
    window_s: float = 10.0,
    candidate: str = CANDIDATE,
) -> dict[str, Any]:
    """Steady figures (searches sent before the promotion began) beside those of the window
    from the promotion's start to ``window_s`` after its end; failed searches count in the
    window's tail at their time taken (a timeout is the worst latency there is)."""
    steady = [s for s in samples if s.sent_s < promote_started_s]
    window = [s for s in samples if promote_started_s <= s.sent_s < promote_done_s + window_s]
    steady_ok = [s.seconds for s in steady if s.error is None]
    window_all = [s.seconds for s in window]
    from_candidate = [s for s in samples if s.error is None and s.model_version == candidate]
    first = min(from_candidate, key=lambda s: s.sent_s) if from_candidate else None
    figures: dict[str, Any] = {
        "requests": len(samples),
        "steady_requests": len(steady),
        "steady_errors": len(steady) - len(steady_ok),
        "steady_p50_ms": percentile_ms(steady_ok, 50),
        "steady_p99_ms": percentile_ms(steady_ok, 99),
        "window_s": window_s,
        "promote_s": round(promote_done_s - promote_started_s, 2),
        "window_requests": len(window),
        "window_errors": sum(s.error is not None for s in window),
        "window_p50_ms": percentile_ms(window_all, 50),
        "window_p99_ms": percentile_ms(window_all, 99),
        "window_max_ms": round(max(window_all) * 1000, 2) if window_all else float("nan"),
        "window_from_candidate": sum(s.model_version == candidate for s in window),
        "first_candidate_answer_ms": round(first.seconds * 1000, 2) if first else None,
        "goal_ratio": GOAL_RATIO,
    }
    steady_p99 = figures["steady_p99_ms"]
    ratio = figures["window_p99_ms"] / steady_p99 if steady_ok and window_all else float("nan")
    figures["window_p99_over_steady_p99"] = round(ratio, 2)
    figures["goal_met"] = bool(
        ratio <= GOAL_RATIO and not figures["window_errors"] and figures["window_from_candidate"]
    )
    return figures


async def _fresh_topics(kafka: KafkaSettings) -> None:
    """The namespace's topics, deleted and made again: a run starts on empty partitions."""
    admin = AIOKafkaAdminClient(**kafka_options(kafka), request_timeout_ms=10_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        ours = (
            kafka.uploads_topic,
            kafka.deadletter_topic,
            kafka.search_requests_topic,
            kafka.search_results_topic,
        )
        if doomed := [t for t in ours if t in existing]:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()
    await ensure_topics(kafka)


def _texts(n: int) -> list[UploadMessage]:
    return [
        UploadMessage(id=f"doc-{i}", text=f"note {i}: the weather in city {i % 13} is mild")
        for i in range(n)
    ]


def _wait(
    what: str, check: Any, worker: subprocess.Popen[bytes], log: Path, timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if worker.poll() is not None:
            raise StreamerError(f"the bench worker exited while waiting for {what}; see {log}")
        if time.monotonic() > deadline:
            raise StreamerError(f"timed out after {timeout_s:.0f}s waiting for {what}; see {log}")
        time.sleep(0.5)


async def _search(client: SearchClient, clock0: float, i: int) -> Sample:
    sent = time.perf_counter()
    try:
        result = await client.search(f"weather in city {i % 13}", topology="text", top_k=10)
    except NoAnswer as exc:
        return Sample(sent - clock0, time.perf_counter() - sent, error=str(exc))
    seconds = time.perf_counter() - sent
    return Sample(sent - clock0, seconds, result.model_version, result.error)


async def _load(
    settings: Settings,
    promote: Any,
    *,
    rate_qps: float,
    steady_s: float,
    after_s: float,
) -> tuple[list[Sample], float, float]:
    """Searches at ``rate_qps``; ``promote`` (blocking) runs in a thread once ``steady_s``
    have passed, and the load goes on ``after_s`` after it ends. Returns the samples and the
    promotion's start and end on the samples' clock."""
    loop = asyncio.get_running_loop()
    async with SearchClient(settings.kafka, timeout_s=TIMEOUT_S) as client:
        for i in range(20):  # settle: partitions assigned, connections made
            await client.search(f"settle {i}", topology="text", timeout_s=TIMEOUT_S)
        clock0 = time.perf_counter()
        tasks: list[asyncio.Task[Sample]] = []
        promotion: asyncio.Future[tuple[float, float]] | None = None
        ends_at = float("inf")
        i = 0
        while time.perf_counter() - clock0 < ends_at:
            tasks.append(asyncio.create_task(_search(client, clock0, i)))
            i += 1
            if promotion is None and time.perf_counter() - clock0 >= steady_s:
                promotion = loop.run_in_executor(None, promote, clock0)
            if promotion is not None and promotion.done() and ends_at == float("inf"):
                ends_at = promotion.result()[1] + after_s
            await asyncio.sleep(max(0.0, clock0 + i / rate_qps - time.perf_counter()))
        samples = await asyncio.gather(*tasks)
        assert promotion is not None
        started, done = await promotion
    return list(samples), started, done


def run_promote_bench(
    base: Settings,
    *,
    texts: int = 300,
    rate_qps: float = 20.0,
    steady_s: float = 15.0,
    after_s: float = 15.0,
    window_s: float = 10.0,
    quiet: bool = False,
) -> dict[str, Any]:
    from streamer.rollout.commands import Rollouts

    console = Console(stderr=quiet)
    began = time.perf_counter()
    _, started_stack = stack_up(base)
    media = Path(tempfile.mkdtemp(prefix="streamer-bench-"))
    settings = namespaced(recorded_settings(base), NAMESPACE, (media,))
    runtime = settings.runtime.model_copy(update={"topologies": ("topologies:TEXT",)})
    settings = settings.model_copy(update={"runtime": runtime})
    store = VectorStore(settings.milvus)
    client = redis_client(settings.redis)
    worker: subprocess.Popen[bytes] | None = None
    rollouts: Rollouts | None = None
    worker_log = settings.stack.state_dir / "bench-promote-worker.log"
    prefix = settings.milvus.collection_prefix
    try:
        for key in client.scan_iter(match=f"{settings.redis.key_prefix}:*"):
            client.delete(key)
        for name in store.collections(prefix):
            store.drop(name)
        asyncio.run(_fresh_topics(settings.kafka))
        asyncio.run(publish(settings.kafka, _texts(texts)))
        worker = start_worker(settings_env(settings), worker_log)
        v1 = TEXT.collection_name(prefix=prefix)
        indexed = lambda: bool(store.collections(v1)) and store.count(v1) >= texts  # noqa: E731
        with console.status(f"worker up, {texts} texts ingested"):
            _wait(f"{texts} texts ingested", indexed, worker, worker_log, 600)
        console.print(f"{texts} texts ingested into {v1}")

        rollouts = Rollouts(settings, [TEXT])
        started = time.perf_counter()
        rollouts.start("text", CANDIDATE)
        with console.status(f"backfilling {CANDIDATE}"):
            backfill = rollouts.backfill("text")
        console.print(f"backfilled {backfill.done}/{backfill.total} into {CANDIDATE}")
        with console.status(f"waiting for the worker to hold {CANDIDATE} warm"):
            readiness = rollouts.await_warm("text", CANDIDATE, wait_s=600)
        if not readiness.live or not readiness.done:
            raise StreamerError(
                f"the bench worker never warmed {CANDIDATE}: {readiness.describe()}"
            )
        warm_s = time.perf_counter() - started
        console.print(f"{readiness.describe()} ({warm_s:.1f}s after rollout start)")

        log_at_promote = [0]
        live_rollouts = rollouts

        def promote(clock0: float) -> tuple[float, float]:
            log_at_promote[0] = worker_log.stat().st_size
            start = time.perf_counter()
            live_rollouts.promote("text", wait_s=60)
            return start - clock0, time.perf_counter() - clock0

        with console.status(
            f"searching at {rate_qps:g}/s: {steady_s:g}s steady, promote, {after_s:g}s more"
        ):
            samples, promote_started, promote_done = asyncio.run(
                _load(settings, promote, rate_qps=rate_qps, steady_s=steady_s, after_s=after_s)
            )
        with worker_log.open("rb") as log:
            log.seek(log_at_promote[0])
            after = log.read().decode(errors="replace")
    finally:
        if worker is not None:
            terminate(worker)
        if rollouts is not None:
            rollouts.close()
        for key in client.scan_iter(match=f"{settings.redis.key_prefix}:*"):
            client.delete(key)
        client.close()
        for name in store.collections(prefix):
            store.drop(name)
        store.close()
        with contextlib.suppress(KafkaError):
            asyncio.run(_fresh_topics(settings.kafka))
        if started_stack:
            stack_down(base)
    figures = promote_figures(
        samples, promote_started_s=promote_started, promote_done_s=promote_done, window_s=window_s
    )
    figures.update(
        texts=texts,
        rate_qps=rate_qps,
        candidate=CANDIDATE,
        warm_after_start_s=round(warm_s, 1),
        model_loads_after_promote=after.count("model loaded"),
        cold_calls_after_promote=after.count("first model call at a new batch shape"),
        seconds=round(time.perf_counter() - began, 1),
    )
    _print(console, figures)
    return figures


def _print(console: Console, f: dict[str, Any]) -> None:
    table = Table(
        title=f"search at {f['rate_qps']:g} req/s while text is promoted to {f['candidate']}"
    )
    for column in ("measure", "value", "goal"):
        table.add_column(column)
    table.add_row(
        f"steady p50 / p99 ({f['steady_requests']} searches)",
        f"{f['steady_p50_ms']} / {f['steady_p99_ms']} ms",
        "",
    )
    table.add_row(
        f"promote → +{f['window_s']:g}s p50 / p99 ({f['window_requests']} searches)",
        f"{f['window_p50_ms']} / {f['window_p99_ms']} ms",
        f"p99 ≤ {f['goal_ratio']:g}x steady",
    )
    met = "met" if f["goal_met"] else "NOT met"
    table.add_row("window p99 / steady p99", f"{f['window_p99_over_steady_p99']}x", met)
    table.add_row("slowest answer in the window", f"{f['window_max_ms']} ms", "")
    table.add_row("first answer of the candidate", f"{f['first_candidate_answer_ms']} ms", "")
    table.add_row("errors in the window", str(f["window_errors"]), "0")
    table.add_row("promote took", f"{f['promote_s']} s", "")
    table.add_row("candidate warm after rollout start", f"{f['warm_after_start_s']} s", "")
    table.add_row(
        "model loads / cold calls after promote",
        f"{f['model_loads_after_promote']} / {f['cold_calls_after_promote']}",
        "0 / 0",
    )
    console.print(table)

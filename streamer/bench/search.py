"""``streamer bench search``: the query service against Milvus itself, in one run.

On one collection of ``rows`` unit vectors (384-d, the text topology's size; FLAT search costs
the same whatever the vectors are), it measures:

- direct: single-vector searches straight to Milvus, one after another (the floor);
- round trip at a fixed rate: requests through ``search.requests`` → worker → ``search.results``
  at ``rate_qps``, each timed from send to answer;
- sequential: one request at a time through the topics (what a naive service gives);
- coalesced: ``concurrency`` requests in flight at once, answered by batched searches.

Each answer of the fixed-rate run carries the times its request passed each point of the path
(:class:`~streamer.core.messages.SearchHops`), so the round trip splits into hops: request
(client produce, broker, worker fetch), queue (behind the batch in progress, coalescing window),
prepare (validation, alias lookup), search (Milvus), finish (results built, earlier answers
sent) and reply (reply produce, broker, client fetch). The stamps are wall-clock times of the
client and the worker; the bench runs both on one machine, so they read the same clock.

Each run starts on empty search topics (deleted and created again) and deletes them at the
end: the embedded broker (Tansu, memory storage) fetches slower the more a partition holds, so
a bench on topics earlier runs had filled measured their history (the request hop took 12.8 ms
at p50 on topics 25 runs had filled, 3.6 ms on empty ones, same code, same machine).

The last line of ``--json`` holds ``rt_p50_ms``, ``rt_p99_ms``, ``direct_p50_ms``,
``direct_p99_ms``, ``coalesced_qps`` and ``sequential_qps``, with their ratios, and per hop
``hop_<hop>_p50_ms``, ``hop_<hop>_p99_ms``, ``hop_<hop>_share_pct`` (its part of all round
trips' time) and ``hop_<hop>_tail_share_pct`` (its part of the slowest 5%'s).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from operators.normalize import l2_normalize
from streamer.bench.stats import percentile_ms
from streamer.config.connections import kafka_options, redis_client
from streamer.config.settings import KafkaSettings, Settings, namespaced, settings_env
from streamer.core.errors import NoAnswer, StreamerError
from streamer.core.messages import HOPS, SearchResult
from streamer.kafka.topics import ensure_topics
from streamer.query.client import SearchClient
from streamer.stack.embedded import down as stack_down
from streamer.stack.embedded import recorded_settings
from streamer.stack.embedded import up as stack_up
from streamer.stack.processes import start_worker, terminate
from streamer.storage.store import VectorRow, VectorStore
from topologies import TEXT

__all__ = ["run_search_bench"]

NAMESPACE = "bench"
DIM = 384
TAIL = 0.05  # the slowest share of round trips whose hops are shown apart


def _vectors(n: int, seed: int) -> npt.NDArray[np.float32]:
    return l2_normalize(np.random.default_rng(seed).normal(size=(n, DIM)))


def _load(settings: Settings, store: VectorStore, rows: int, console: Console) -> str:
    prefix = settings.milvus.collection_prefix
    for name in store.collections(prefix):
        store.drop(name)
    collection = TEXT.collection_name(prefix=prefix)
    store.ensure_collection(
        collection, DIM, alias=TEXT.alias(prefix=prefix), model_version=TEXT.model_version
    )
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"loading {rows} vectors", total=rows)
        for start in range(0, rows, 1000):
            vectors = _vectors(min(1000, rows - start), seed=start)
            batch = [
                VectorRow(f"doc-{start + i}", v, "-", TEXT.model_version, "text",
                          text=f"document {start + i}", metadata={"tenant": f"t{i % 10}"})
                for i, v in enumerate(vectors)
            ]  # fmt: skip
            store.upsert(collection, batch)
            progress.update(task, advance=len(batch))
    store.flush(collection)
    return collection


async def _drop_search_topics(kafka: KafkaSettings) -> None:
    """Delete the search topics (the bench's own, namespaced ones) if they exist."""
    admin = AIOKafkaAdminClient(**kafka_options(kafka), request_timeout_ms=10_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        topics = (kafka.search_requests_topic, kafka.search_results_topic)
        if doomed := [t for t in topics if t in existing]:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


async def _fresh_topics(kafka: KafkaSettings) -> None:
    await _drop_search_topics(kafka)
    await ensure_topics(kafka)


def _direct(store: VectorStore, collection: str, n: int) -> list[float]:
    latencies = []
    for vector in _vectors(n, seed=10**6):
        start = time.perf_counter()
        store.search(collection, vector[None, :], top_k=10)
        latencies.append(time.perf_counter() - start)
    return latencies


@dataclass(frozen=True, slots=True)
class _Timed:
    """One round trip: its latency, and its hops where the answer carried them."""

    seconds: float
    hops_ms: dict[str, float] | None


async def _timed(client: SearchClient, vector: npt.NDArray[np.float32]) -> _Timed:
    start = time.perf_counter()
    result: SearchResult = await client.search(vector=vector.tolist(), topology="text", top_k=10)
    answered_ms = time.time() * 1000
    seconds = time.perf_counter() - start
    if result.error:
        raise StreamerError(f"bench request failed: {result.error}")
    hops = result.hops.durations_ms(answered_ms) if result.hops is not None else None
    return _Timed(seconds, hops)


def _hop_figures(timed: Sequence[_Timed]) -> dict[str, float]:
    """Per hop: p50 and p99, and its share of the round trips' time, of all and of the
    slowest (percentiles of hops do not add up to the round trip's; shares do)."""
    split = [(t.seconds * 1000, t.hops_ms) for t in timed if t.hops_ms is not None]
    if not split:
        return {}
    slowest = sorted(split, key=lambda s: s[0])[-max(1, round(len(split) * TAIL)) :]
    figures: dict[str, float] = {}
    for hop in HOPS:
        values_s = [hops[hop] / 1000 for _, hops in split]
        figures[f"hop_{hop}_p50_ms"] = percentile_ms(values_s, 50)
        figures[f"hop_{hop}_p99_ms"] = percentile_ms(values_s, 99)
        for key, part in (("share", split), ("tail_share", slowest)):
            share = sum(hops[hop] for _, hops in part) / sum(ms for ms, _ in part)
            figures[f"hop_{hop}_{key}_pct"] = round(100 * share, 1)
    return figures


async def _through_topics(
    settings: Settings,
    rate_qps: float,
    duration_s: float,
    sequential: int,
    concurrency: int,
    direct: Callable[[], list[float]],
) -> dict[str, Any]:
    async with SearchClient(settings.kafka, timeout_s=120) as client:
        for _ in range(60):  # the worker joins its group and loads models first
            try:
                await client.search(vector=_vectors(1, 1)[0].tolist(), topology="text", timeout_s=5)
                break
            except NoAnswer:
                continue
        else:
            raise StreamerError("the benchmark worker never answered")
        await asyncio.gather(*(_timed(client, v) for v in _vectors(50, 2)))  # warm-up
        # the floor, measured now: same machine state (the worker up and idle) as what follows
        direct_lat = await asyncio.get_running_loop().run_in_executor(None, direct)

        sequential_lat = []
        start = time.perf_counter()
        for vector in _vectors(sequential, 3):
            sequential_lat.append((await _timed(client, vector)).seconds)
        sequential_qps = sequential / (time.perf_counter() - start)

        count = max(1, int(rate_qps * duration_s))
        tasks = []
        paced_from = time.perf_counter()
        for i, vector in enumerate(_vectors(count, 4)):
            tasks.append(asyncio.create_task(_timed(client, vector)))
            await asyncio.sleep(max(0.0, paced_from + (i + 1) / rate_qps - time.perf_counter()))
        rate_timed: list[_Timed] = await asyncio.gather(*tasks)

        rounds = 3
        start = time.perf_counter()
        for r in range(rounds):
            await asyncio.gather(*(_timed(client, v) for v in _vectors(concurrency, 5 + r)))
        coalesced_qps = rounds * concurrency / (time.perf_counter() - start)
    return {
        "direct_lat": direct_lat,
        "rate_lat": [t.seconds for t in rate_timed],
        "hops": _hop_figures(rate_timed),
        "sequential_lat": sequential_lat,
        "sequential_qps": sequential_qps,
        "coalesced_qps": coalesced_qps,
    }


def run_search_bench(
    base: Settings,
    *,
    rows: int = 20_000,
    rate_qps: float = 20.0,
    duration_s: float = 10.0,
    sequential: int = 40,
    concurrency: int = 200,
    quiet: bool = False,
) -> dict[str, Any]:
    console = Console(stderr=quiet)
    started_at = time.perf_counter()
    _, started_stack = stack_up(base)
    media = Path(tempfile.mkdtemp(prefix="streamer-bench-"))
    settings = namespaced(recorded_settings(base), NAMESPACE, (media,))
    store = VectorStore(settings.milvus)
    worker: subprocess.Popen[bytes] | None = None
    try:
        client = redis_client(settings.redis)
        for key in client.scan_iter(match=f"{settings.redis.key_prefix}:*"):
            client.delete(key)
        asyncio.run(_fresh_topics(settings.kafka))
        collection = _load(settings, store, rows, console)
        console.print(f"loaded {rows} vectors of {DIM} dimensions into {collection}")
        worker = start_worker(
            settings_env(settings), settings.stack.state_dir / "bench-worker.log", agents="search"
        )
        topics = asyncio.run(
            _through_topics(settings, rate_qps, duration_s, sequential, concurrency,
                            direct=lambda: _direct(store, collection, 100))
        )  # fmt: skip
        direct = topics["direct_lat"]
        calls = int(client.hget(f"{settings.redis.key_prefix}:stats", "search_calls") or 0)
        served = int(client.hget(f"{settings.redis.key_prefix}:stats", "search_requests") or 0)
    finally:
        if worker is not None:
            terminate(worker)
        with contextlib.suppress(KafkaError):  # tidying up must not hide why the run ended
            asyncio.run(_drop_search_topics(settings.kafka))
        for name in store.collections(settings.milvus.collection_prefix):
            store.drop(name)
        store.close()
        if started_stack:
            stack_down(base)
    figures = {
        "rows": rows,
        "dim": DIM,
        "rate_qps": rate_qps,
        "rt_p50_ms": percentile_ms(topics["rate_lat"], 50),
        "rt_p99_ms": percentile_ms(topics["rate_lat"], 99),
        "direct_p50_ms": percentile_ms(direct, 50),
        "direct_p99_ms": percentile_ms(direct, 99),
        "sequential_p50_ms": percentile_ms(topics["sequential_lat"], 50),
        "sequential_qps": round(topics["sequential_qps"], 1),
        "coalesced_qps": round(topics["coalesced_qps"], 1),
        "concurrency": concurrency,
        "requests_per_search_call": round(served / calls, 1) if calls else None,
        "seconds": round(time.perf_counter() - started_at, 1),
    }
    figures["coalesced_over_sequential"] = round(
        figures["coalesced_qps"] / max(figures["sequential_qps"], 1e-9), 1
    )
    figures["rt_p99_goal_ms"] = round(1.5 * figures["direct_p99_ms"] + 20, 2)
    figures["rt_p99_goal_met"] = figures["rt_p99_ms"] <= figures["rt_p99_goal_ms"]
    figures.update(topics["hops"])
    _print(console, figures)
    return figures


def _print(console: Console, f: dict[str, Any]) -> None:
    table = Table(title=f"search benchmark: {f['rows']} x {f['dim']}-d vectors, FLAT, top-10")
    for column in ("measure", "value", "goal"):
        table.add_column(column)
    table.add_row("direct Milvus p50 / p99", f"{f['direct_p50_ms']} / {f['direct_p99_ms']} ms", "")
    table.add_row(
        f"round trip at {f['rate_qps']:.0f} req/s p50 / p99",
        f"{f['rt_p50_ms']} / {f['rt_p99_ms']} ms",
        f"p99 ≤ {f['rt_p99_goal_ms']} ms",
    )
    table.add_row("sequential requests", f"{f['sequential_qps']} req/s", "")
    table.add_row(
        f"{f['concurrency']} concurrent requests",
        f"{f['coalesced_qps']} req/s ({f['coalesced_over_sequential']}x)",
        "≥ 5x sequential",
    )
    table.add_row("requests per Milvus search", str(f["requests_per_search_call"]), "")
    console.print(table)
    if "hop_search_p50_ms" not in f:
        return
    hops = Table(title=f"where the round trip at {f['rate_qps']:.0f} req/s goes")
    for column in ("hop", "p50 ms", "p99 ms", "share", f"share of slowest {TAIL:.0%}"):
        hops.add_column(column, justify="left" if column == "hop" else "right")
    for hop in HOPS:
        hops.add_row(
            hop,
            str(f[f"hop_{hop}_p50_ms"]),
            str(f[f"hop_{hop}_p99_ms"]),
            f"{f[f'hop_{hop}_share_pct']}%",
            f"{f[f'hop_{hop}_tail_share_pct']}%",
        )
    console.print(hops)

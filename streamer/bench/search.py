"""``streamer bench search``: the query service against Milvus itself, in one run.

On one collection of ``rows`` unit vectors (384-d, the text topology's size; FLAT search costs
the same whatever the vectors are), it measures:

- direct: single-vector searches straight to Milvus, one after another (the floor);
- round trip at a fixed rate: requests through ``search.requests`` → worker → ``search.results``
  at ``rate_qps``, each timed from send to answer;
- sequential: one request at a time through the topics (what a naive service gives);
- coalesced: ``concurrency`` requests in flight at once, answered by batched searches.

The last line of ``--json`` holds ``rt_p50_ms``, ``rt_p99_ms``, ``direct_p50_ms``,
``direct_p99_ms``, ``coalesced_qps`` and ``sequential_qps``, with their ratios.
"""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from operators.normalize import l2_normalize
from streamer.bench.stats import percentile_ms
from streamer.config.connections import redis_client
from streamer.config.settings import Settings, namespaced, settings_env
from streamer.config.topics import ensure_topics
from streamer.core.errors import NoAnswer, StreamerError
from streamer.core.messages import SearchResult
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


def _direct(store: VectorStore, collection: str, n: int) -> list[float]:
    latencies = []
    for vector in _vectors(n, seed=10**6):
        start = time.perf_counter()
        store.search(collection, vector[None, :], top_k=10)
        latencies.append(time.perf_counter() - start)
    return latencies


async def _timed(client: SearchClient, vector: npt.NDArray[np.float32]) -> float:
    start = time.perf_counter()
    result: SearchResult = await client.search(vector=vector.tolist(), topology="text", top_k=10)
    if result.error:
        raise StreamerError(f"bench request failed: {result.error}")
    return time.perf_counter() - start


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
            sequential_lat.append(await _timed(client, vector))
        sequential_qps = sequential / (time.perf_counter() - start)

        count = max(1, int(rate_qps * duration_s))
        tasks = []
        paced_from = time.perf_counter()
        for i, vector in enumerate(_vectors(count, 4)):
            tasks.append(asyncio.create_task(_timed(client, vector)))
            await asyncio.sleep(max(0.0, paced_from + (i + 1) / rate_qps - time.perf_counter()))
        rate_lat = await asyncio.gather(*tasks)

        rounds = 3
        start = time.perf_counter()
        for r in range(rounds):
            await asyncio.gather(*(_timed(client, v) for v in _vectors(concurrency, 5 + r)))
        coalesced_qps = rounds * concurrency / (time.perf_counter() - start)
    return {
        "direct_lat": direct_lat,
        "rate_lat": rate_lat,
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
        asyncio.run(ensure_topics(settings.kafka))
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

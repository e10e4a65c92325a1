"""``streamer bench sink``: the Milvus sink alone, rows/s by rows per upsert call.

A GPU worker hands the sink 1,000-4,000 rows of 1280-d vectors at a time, a pace a CPU's
pipeline never reaches: so the sink is measured on its own. This writes ``rows`` synthetic
rows (unit vectors, and the id, content hash, uri and metadata an ingested image's row has)
through :meth:`VectorStore.upsert`, the sink's own call, into a fresh collection per size, and
times the upsert calls only (with the flushes ``flush_rows`` asks for: the sink pays them too).

Each size is the rows of one call: the store's row cap is lifted to it, its byte cap stays,
so a size over the byte cap is measured as the calls the store would make. Sizes are taken in
turn, ``rounds`` times, and each figure is the median: on a shared machine a busy spell then
falls on every size alike. It runs against the embedded stack's milvus-lite, and against a
Milvus server as well when ``milvus_uri`` is given or the settings name another Milvus than the
stack's.

The picked size is the smallest within 10 % of the best rate: smaller calls hold less memory
and re-send less when a refused row is isolated. The last line of ``--json`` holds
``sink_rows_per_s`` (milvus-lite at the picked size), ``sink_rows_per_s_by_size`` and, when a
server was measured, ``sink_server_rows_per_s`` (at the size picked for it) and
``sink_server_rows_per_s_by_size``.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from operators.normalize import l2_normalize
from streamer.config.settings import MilvusSettings, Settings, namespaced
from streamer.core.errors import StreamerError
from streamer.stack.embedded import down as stack_down
from streamer.stack.embedded import recorded_settings
from streamer.stack.embedded import up as stack_up
from streamer.storage.store import VectorRow, VectorStore, row_bytes, upsert_chunks

__all__ = ["SIZES", "bench_rows", "pick_size", "run_sink_bench", "sink_alone"]

NAMESPACE = "sinkbench"  # not "bench": the search bench drops every "bench_" collection
DIM = 1280  # EfficientNet-Lite0's embedding, the image topology's
SIZES = (64, 256, 1024, 4096)
MODEL_VERSION = "effnet-lite0@bench"
#: a size within this share of the best rate is as good as the best
GOOD_ENOUGH = 0.9
WARM_UP_ROWS = 256


def bench_rows(start: int, count: int, dim: int) -> list[VectorRow]:
    """Rows ``start`` .. ``start + count - 1`` as the image topology writes them."""
    vectors = l2_normalize(np.random.default_rng(start).standard_normal((count, dim)))
    rows = []
    for i, vector in enumerate(vectors, start):
        asset = f"upload-{i:09d}"
        rows.append(
            VectorRow(
                id=asset,
                vector=vector,
                content_hash=hashlib.sha256(asset.encode()).hexdigest(),
                model_version=MODEL_VERSION,
                media_type="image",
                uri=f"s3://media-uploads/acme/2026/11/27/{asset}.jpg",
                metadata={"tenant": f"tenant-{i % 7}", "camera": "front-door", "tags": ["bench"]},
            )
        )
    return rows


def sink_alone(store: VectorStore, rows: int, dim: int, chunk: int) -> float:
    """Rows/s of ``store.upsert`` writing ``rows`` synthetic rows of ``dim`` dimensions,
    ``chunk`` rows a call, into a fresh collection (dropped afterwards). Only the upsert calls
    are timed: making the rows is not the sink's work."""
    name = f"{store.settings.collection_prefix}sink_{dim}d_{chunk}_{uuid.uuid4().hex[:8]}"
    store.ensure_collection(name, dim, model_version=MODEL_VERSION)
    try:
        spent = 0.0
        for start in range(0, rows, chunk):
            batch = bench_rows(start, min(chunk, rows - start), dim)
            began = time.perf_counter()
            store.upsert(name, batch)
            spent += time.perf_counter() - began
        stored = store.count(name)
        if stored != rows:
            raise StreamerError(f"the sink bench wrote {rows} rows into {name}; it holds {stored}")
    finally:
        store.drop(name)
    return rows / max(spent, 1e-9)


def pick_size(rates: dict[int, float]) -> int:
    """The smallest size within ``GOOD_ENOUGH`` of the best rate."""
    best = max(rates.values())
    return min(size for size, rate in rates.items() if rate >= GOOD_ENOUGH * best)


def _measure(
    targets: dict[str, MilvusSettings],
    rows: int,
    dim: int,
    sizes: Sequence[int],
    rounds: int,
    console: Console,
) -> dict[str, dict[int, float]]:
    """The median rate of each target at each size over ``rounds``, sizes and targets taken in
    turn within a round, so that a busy spell of the machine does not fall on one of them."""
    for milvus in targets.values():
        warm = VectorStore(milvus)
        try:  # a connection's and a collection's first calls are slower: no size's cost
            sink_alone(warm, min(rows, WARM_UP_ROWS), dim, min(sizes))
        finally:
            warm.close()
    seen: dict[str, dict[int, list[float]]] = {t: {s: [] for s in sizes} for t in targets}
    for turn in range(1, rounds + 1):
        for target, milvus in targets.items():
            for size in sizes:
                store = VectorStore(milvus.model_copy(update={"upsert_max_rows": size}))
                try:
                    rate = sink_alone(store, rows, dim, size)
                finally:
                    store.close()
                seen[target][size].append(rate)
                console.print(f"round {turn}/{rounds} {target}: {size} rows a call, {rate:.0f}/s")
    return {t: {s: float(np.median(r)) for s, r in by_size.items()} for t, by_size in seen.items()}


def _calls(row: VectorRow, size: int, max_bytes: int) -> int:
    """Upsert calls the store makes for ``size`` rows like ``row`` (more than one: byte cap)."""
    return sum(1 for _ in upsert_chunks([row] * size, max_rows=size, max_bytes=max_bytes))


def _server(milvus_uri: str | None, configured: MilvusSettings, lite_uri: str) -> str | None:
    if milvus_uri:
        return milvus_uri
    return configured.uri if configured.uri.rstrip("/") != lite_uri.rstrip("/") else None


def run_sink_bench(
    base: Settings,
    *,
    rows: int = 10_000,
    dim: int = DIM,
    sizes: Sequence[int] = SIZES,
    rounds: int = 3,
    milvus_uri: str | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """Measure the sink alone on milvus-lite (and a server, see the module doc): ``rows`` rows
    per size and round; print a table and return the figures (medians over the rounds)."""
    console = Console(stderr=quiet)
    sizes = sorted({min(size, rows) for size in sizes})  # a call holds at most every row
    started_at = time.perf_counter()
    state, started_stack = stack_up(base)
    try:
        recorded = recorded_settings(base)
        settings = namespaced(recorded, NAMESPACE, recorded.fetch.media_roots)
        lite = settings.milvus.model_copy(update={"uri": state.milvus_uri})
        server_uri = _server(milvus_uri, settings.milvus, state.milvus_uri)
        targets = {"milvus-lite": lite}
        if server_uri is not None:
            # a server seals segments itself: flushing would only add calls (MilvusSettings)
            targets["server"] = settings.milvus.model_copy(
                update={"uri": server_uri, "flush_rows": 0}
            )
        rates = _measure(targets, rows, dim, sizes, rounds, console)
        lite_rates, server_rates = rates["milvus-lite"], rates.get("server", {})
    finally:
        if started_stack:
            stack_down(base)
    sample = bench_rows(0, 1, dim)[0]
    picked = pick_size(lite_rates)
    figures: dict[str, Any] = {
        "rows": rows,
        "rounds": rounds,
        "dim": dim,
        "row_bytes": row_bytes(sample),
        "upsert_max_bytes": lite.upsert_max_bytes,
        "calls_by_size": {str(s): _calls(sample, s, lite.upsert_max_bytes) for s in sizes},
        "sink_picked_rows": picked,
        "sink_rows_per_s": round(lite_rates[picked], 1),
        "sink_rows_per_s_by_size": {str(s): round(r, 1) for s, r in lite_rates.items()},
    }
    if server_rates:
        server_picked = pick_size(server_rates)
        figures["sink_server_uri"] = server_uri
        figures["sink_server_picked_rows"] = server_picked
        figures["sink_server_rows_per_s"] = round(server_rates[server_picked], 1)
        figures["sink_server_rows_per_s_by_size"] = {
            str(s): round(r, 1) for s, r in server_rates.items()
        }
    figures["seconds"] = round(time.perf_counter() - started_at, 1)
    _print(console, figures)
    return figures


def _print(console: Console, f: dict[str, Any]) -> None:
    server = "sink_server_rows_per_s_by_size" in f
    table = Table(
        title=f"sink: {f['rows']} rows of {f['dim']}-d (~{f['row_bytes']} B a row) per size, "
        f"median of {f['rounds']} rounds"
    )
    table.add_column("rows per upsert")
    table.add_column("MB per upsert", justify="right")
    table.add_column("milvus-lite rows/s", justify="right")
    if server:
        table.add_column("server rows/s", justify="right")
    for size, rate in f["sink_rows_per_s_by_size"].items():
        calls = f["calls_by_size"][size]
        label = size + (f" ({calls} calls: byte cap)" if calls > 1 else "")
        marks = " ◀" if int(size) == f["sink_picked_rows"] else ""
        cells = [label, f"{int(size) * f['row_bytes'] / calls / 1e6:.2f}", f"{rate:.0f}{marks}"]
        if server:
            server_mark = " ◀" if int(size) == f["sink_server_picked_rows"] else ""
            cells.append(f"{f['sink_server_rows_per_s_by_size'][size]:.0f}{server_mark}")
        table.add_row(*cells)
    console.print(table)
    picked = f"picked: {f['sink_picked_rows']} rows per upsert ({f['sink_rows_per_s']} rows/s)"
    if server:
        picked += f"; server: {f['sink_server_picked_rows']} ({f['sink_server_rows_per_s']} rows/s)"
    console.print(f"{picked}; smallest size within {GOOD_ENOUGH:.0%} of the best; {f['seconds']} s")

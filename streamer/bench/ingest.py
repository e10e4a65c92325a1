"""``streamer bench``: ingest throughput against its ceiling and its baseline, in one run.

All on the same machine, one after another, on the embedded stack (or the servers the settings
name):

1. calibration: the fastest batch size of each model on this device (cached for the worker);
2. model-only ceilings: forward passes on already decoded inputs at the calibrated size;
3. naive baselines: one message at a time, full-size decode, batch 1, one upsert and one
   commit per item (a per-item local runtime);
4. end to end through a real worker process: Kafka -> fetch -> decode -> embed -> Milvus, for
   distinct 1920x1280 JPEGs and for distinct short texts;
5. re-delivery: the same image messages again (already indexed);
6. memory: ``memory_items`` new texts through the same worker, its RSS sampled throughout.

It prints items/s, the ratios against the goals, the worker's peak RSS, writes a PNG chart, and
(with ``--json``) ends with one JSON line of the figures.
"""

from __future__ import annotations

import asyncio
import os
import platform
import resource
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import redis
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from operators.fetch import path_to_uri
from streamer.bench import BenchSizes
from streamer.bench.chart import write_chart
from streamer.bench.media import bench_texts, write_bench_photos
from streamer.bench.naive import run_naive
from streamer.models.calibration import (
    Calibration,
    CalibrationCache,
    calibrated_batch_size,
    throughput,
)
from streamer.config.connections import redis_client
from streamer.models.embedders import Embedder, load_embedder
from streamer.core.errors import StreamerError
from streamer.config.fetching import fetcher_for
from streamer.core.messages import UploadMessage
from streamer.ingest.producer import publish
from streamer.config.settings import Settings, available_cores, load_settings, namespaced, settings_env
from streamer.stack.embedded import down as stack_down
from streamer.stack.embedded import up as stack_up
from streamer.stack.processes import start_worker, terminate
from streamer.core.stats import Stats
from streamer.storage.store import VectorStore
from streamer.config.topics import ensure_topics
from topologies import IMAGE, TEXT

__all__ = ["run_ingest_bench"]


# ---------------------------------------------------------------------------------------------
# worker process memory


def _status_mb(pid: int, field: str) -> float:
    """A ``VmRSS``/``VmHWM`` line of /proc/<pid>/status, in MB (0 when unreadable)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _own_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _RssSampler(threading.Thread):
    """Samples a process's RSS every ``every_s`` seconds; keeps the peak."""

    def __init__(self, pid: int, every_s: float = 0.2) -> None:
        super().__init__(daemon=True, name="rss-sampler")
        self.pid, self.every_s = pid, every_s
        self.peak_mb = 0.0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.every_s):
            self.peak_mb = max(self.peak_mb, _status_mb(self.pid, "VmRSS"))

    def stop(self) -> None:
        self._stop_event.set()


# ---------------------------------------------------------------------------------------------
# phases


def _model_ceiling(
    embedder: Embedder, inputs: Sequence[Any], size: int, seconds: float, streams: int
) -> float:
    """Items/s of forward passes over prepared ``inputs`` in chunks of ``size``, ``streams``
    calls at once (as the worker runs them)."""
    embedder.embed(list(inputs[:size]))  # warm
    chunks = [list(inputs[start : start + size]) for start in range(0, len(inputs), size)]
    with ThreadPoolExecutor(streams) as pool:
        return throughput(embedder.embed, chunks, pool, min_time_s=seconds)


class _Counters:
    """The pipeline counters every worker mirrors to Redis."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.stats = Stats(client, prefix=prefix)

    def received(self) -> int:
        return self.stats.read().get("received", 0)

    def snapshot(self) -> dict[str, int]:
        return self.stats.read()


def _wait_received(
    counters: _Counters,
    target: int,
    *,
    worker: subprocess.Popen[bytes],
    timeout_s: float,
    on_tick: Callable[[int], None] = lambda received: None,
) -> float:
    """Wait until the workers have processed ``target`` messages in all; returns when."""
    deadline = time.monotonic() + timeout_s
    while True:
        received = counters.received()
        on_tick(received)
        if received >= target:
            return time.perf_counter()
        if worker.poll() is not None:
            raise StreamerError(f"the benchmark worker exited with {worker.returncode}")
        if time.monotonic() > deadline:
            raise StreamerError(f"timed out: {received} of {target} messages processed")
        time.sleep(0.02)


def _image_uploads(paths: Sequence[Path], tag: str) -> list[UploadMessage]:
    return [
        UploadMessage(id=f"{tag}-{p.stem}", uri=path_to_uri(p), metadata={"source": "bench"})
        for p in paths
    ]


def _text_uploads(texts: Sequence[str], tag: str) -> list[UploadMessage]:
    return [
        UploadMessage(id=f"{tag}-{i}", text=text, metadata={"source": "bench"})
        for i, text in enumerate(texts)
    ]


def _machine() -> str:
    import torch

    from streamer.models.calibration import cpu_model

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"
    return f"{cpu_model()}, {cores} cores{gpu}, {platform.system()} {platform.machine()}"


# ---------------------------------------------------------------------------------------------
# the run


def run_ingest_bench(
    base: Settings,
    sizes: BenchSizes | None = None,
    *,
    chart: Path | None = Path("streamer-bench.png"),
    media_dir: Path | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    sizes = sizes or BenchSizes()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    console = Console(stderr=quiet)
    began = time.perf_counter()
    phase_started = began

    def phase(message: str) -> None:
        nonlocal phase_started
        now = time.perf_counter()
        console.print(f"[dim]{now - began:6.1f}s[/dim] {message}")
        phase_started = now

    _, started_stack = stack_up(base)
    run_id = f"ib{int(time.time()) % 10**7}"
    media = media_dir or base.stack.state_dir / "bench-media"
    settings = namespaced(load_settings(), run_id, (media,))
    store = VectorStore(settings.milvus)
    client = redis_client(settings.redis)
    counters = _Counters(client, settings.redis.key_prefix)
    worker: subprocess.Popen[bytes] | None = None
    sampler: _RssSampler | None = None
    figures: dict[str, Any] = {"machine": _machine()}
    memory_trace: list[tuple[int, float]] = []
    try:
        asyncio.run(ensure_topics(settings.kafka))
        phase(f"writing {sizes.images + sizes.naive_images + 2} distinct 1920x1280 JPEGs")
        photos = write_bench_photos(media, sizes.images, seed=1)
        naive_photos = write_bench_photos(media, sizes.naive_images, seed=2)
        warm_photos = write_bench_photos(media, 2, seed=3)

        # 1. calibration (measured now, on demand; the worker reads the cache)
        phase("loading models and calibrating batch sizes")
        import torch

        from operators.device import resolve_device

        runtime = settings.runtime
        streams = runtime.streams_for(resolve_device(runtime.device))
        torch.set_num_threads(runtime.threads_per_stream(resolve_device(runtime.device)))
        figures["model_streams"] = streams
        figures["threads_per_stream"] = torch.get_num_threads()
        cache = CalibrationCache(settings.batching.calibration_cache)
        embedders: dict[str, Embedder] = {}
        calibrations: dict[str, Calibration] = {}
        for topology in (IMAGE, TEXT):
            embedder = load_embedder(
                topology,
                settings.fetch,
                settings.runtime.device,
                precision=settings.runtime.precision,
            )
            calibration = calibrated_batch_size(
                embedder,
                mode="always",
                candidates=settings.batching.calibration_sizes,
                cache=cache,
                streams=streams,
            )
            assert calibration is not None
            embedders[topology.name] = embedder
            calibrations[topology.name] = calibration
        image, text = embedders["image"], embedders["text"]
        figures["device"] = f"{image.device} ({image.precision})"
        for name, calibration in calibrations.items():
            figures[f"{name}_batch_size"] = calibration.batch_size
            figures[f"{name}_calibration"] = calibration.items_per_s

        # 2. model-only ceilings on already decoded inputs
        phase("model-only ceilings")
        prepared = [image.prepare(p.read_bytes()) for p in photos[:48]]
        figures["image_model_ips"] = _model_ceiling(
            image, prepared, calibrations["image"].batch_size, sizes.model_seconds, streams
        )
        texts = bench_texts(sizes.texts, seed=1)
        figures["text_model_ips"] = _model_ceiling(
            text, texts[:1024], calibrations["text"].batch_size, sizes.model_seconds, streams
        )

        # the naive runtime has one stream: give it every core
        torch.set_num_threads(available_cores())

        # 3. naive baselines
        fetcher = fetcher_for(settings.fetch)
        for name, uploads in (
            ("image", _image_uploads(naive_photos, "naive")),
            ("text", _text_uploads(bench_texts(sizes.naive_texts, seed=2), "naive")),
        ):
            phase(f"naive baseline: {len(uploads)} {name} items one by one")
            topic = f"{run_id}.naive.{name}"
            asyncio.run(ensure_topics(settings.kafka, extra=(topic,)))
            asyncio.run(publish(settings.kafka, uploads, topic=topic))
            collection = f"{settings.milvus.collection_prefix}naive_{name}"
            embedder = embedders[name]
            store.ensure_collection(collection, embedder.dim)
            with _progress(console, f"naive {name}", len(uploads)) as advance:
                figures[f"{name}_naive_ips"] = asyncio.run(
                    run_naive(
                        settings.kafka,
                        topic,
                        len(uploads),
                        embedder=embedder,
                        fetcher=fetcher,
                        store=store,
                        collection=collection,
                        max_pixels=settings.fetch.max_image_pixels,
                        group=f"{run_id}-naive-{name}",
                        progress=advance,
                    )
                )
        del embedders, image, text, prepared

        # 4. end to end through a worker process
        phase("starting a worker (ingest agent) and warming it up")
        worker = start_worker(
            settings_env(settings),
            settings.stack.state_dir / "bench-ingest-worker.log",
            agents="ingest",
        )
        sampler = _RssSampler(worker.pid)
        sampler.start()
        warm = [*_image_uploads(warm_photos, "warm"), *_text_uploads(["warm up"] * 1, "warm")]
        asyncio.run(publish(settings.kafka, warm))
        _wait_received(counters, len(warm), worker=worker, timeout_s=300)

        def through_worker(label: str, uploads: Sequence[UploadMessage]) -> float:
            target = counters.received() + len(uploads)
            with _progress(console, label, len(uploads)) as advance:
                first = target - len(uploads)
                started = time.perf_counter()
                asyncio.run(publish(settings.kafka, uploads))
                done = _wait_received(
                    counters,
                    target,
                    worker=worker,
                    timeout_s=600,
                    on_tick=lambda received: advance(received - first),
                )
            return len(uploads) / (done - started)

        phase(f"end to end: {len(photos)} images")
        image_uploads = _image_uploads(photos, "img")
        figures["image_e2e_ips"] = through_worker("images", image_uploads)
        phase(f"end to end: {len(texts)} texts")
        figures["text_e2e_ips"] = through_worker("texts", _text_uploads(texts, "txt"))

        # 5. re-delivery of the indexed images
        before = counters.snapshot()
        rounds = sizes.redelivery_rounds
        phase(f"re-delivery: the {len(photos)} images again, {rounds} times")
        figures["redelivery_ips"] = through_worker("re-delivery", image_uploads * rounds)
        after = counters.snapshot()
        figures["redelivery_embedded"] = after.get("embedded", 0) - before.get("embedded", 0)
        figures["first_ingest_ips"] = figures["image_e2e_ips"]

        # 6. memory across many new items
        phase(f"memory: {sizes.memory_items} new texts through the same worker")
        memory_texts = bench_texts(sizes.memory_items, seed=4)
        first = counters.received()

        def sample(received: int) -> None:
            done = received - first
            if not memory_trace or done - memory_trace[-1][0] >= sizes.memory_items / 200:
                memory_trace.append((done, _status_mb(worker.pid, "VmRSS")))
            advance(done)

        with _progress(console, "memory run", sizes.memory_items) as advance:
            started = time.perf_counter()
            asyncio.run(publish(settings.kafka, _text_uploads(memory_texts, "mem")))
            done = _wait_received(
                counters,
                first + sizes.memory_items,
                worker=worker,
                timeout_s=900,
                on_tick=sample,
            )
        sample(first + sizes.memory_items)
        figures["memory_run_ips"] = sizes.memory_items / (done - started)
        figures.update(_memory_figures(memory_trace, sizes.memory_items))
        figures["peak_rss_mb"] = max(_status_mb(worker.pid, "VmHWM"), sampler.peak_mb)
        figures["bench_process_peak_rss_mb"] = _own_peak_mb()
        totals = counters.snapshot()
        figures["dead_lettered"] = totals.get("dead_lettered", 0)
    finally:
        if sampler is not None:
            sampler.stop()
        if worker is not None:
            terminate(worker)
        for name in store.collections(settings.milvus.collection_prefix):
            store.drop(name)
        for key in client.scan_iter(match=f"{settings.redis.key_prefix}:*"):
            client.delete(key)
        store.close()
        if started_stack:
            stack_down(base)
    figures.update(_ratios(figures))
    figures["seconds"] = round(time.perf_counter() - began, 1)
    figures = {k: round(v, 2) if isinstance(v, float) else v for k, v in figures.items()}
    if chart is not None:
        figures["chart"] = str(write_chart(chart, figures, memory_trace))
    _print(console, figures)
    return figures


def _memory_figures(trace: Sequence[tuple[int, float]], total: int) -> dict[str, float]:
    """RSS once the run is warm (10 % done) against the highest RSS after it."""
    warm = [rss for done, rss in trace if done >= total * 0.1]
    if not warm:
        return {"rss_warm_mb": 0.0, "rss_end_mb": 0.0, "rss_growth_pct": 0.0}
    start, peak = warm[0], max(warm)
    return {
        "rss_warm_mb": start,
        "rss_end_mb": trace[-1][1],
        "rss_growth_pct": 100 * (peak - start) / start if start else 0.0,
    }


def _ratios(f: dict[str, Any]) -> dict[str, float]:
    def ratio(a: str, b: str) -> float:
        return round(float(f[a]) / max(float(f[b]), 1e-9), 2)

    return {
        "image_e2e_over_model": ratio("image_e2e_ips", "image_model_ips"),
        "text_e2e_over_model": ratio("text_e2e_ips", "text_model_ips"),
        "image_e2e_over_naive": ratio("image_e2e_ips", "image_naive_ips"),
        "text_e2e_over_naive": ratio("text_e2e_ips", "text_naive_ips"),
        "redelivery_over_first": ratio("redelivery_ips", "first_ingest_ips"),
    }


class _progress:
    """A progress bar (``advance(done)`` sets the count) that disappears when done."""

    def __init__(self, console: Console, label: str, total: int) -> None:
        self.progress = Progress(
            TextColumn(label),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self.task = self.progress.add_task(label, total=total)

    def __enter__(self) -> Callable[[int], None]:
        self.progress.start()
        return lambda done: self.progress.update(self.task, completed=max(0, done))

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


def _print(console: Console, f: dict[str, Any]) -> None:
    table = Table(title=f"ingest benchmark on {f['machine']} ({f['device']})")
    for column in ("measure", "items/s", "ratio", "goal"):
        table.add_column(column)

    def check(value: float, goal: float) -> str:
        return f"{'✓' if value >= goal else '✗'} ≥ {goal}x"

    table.add_row(
        f"image model-only (batch {f['image_batch_size']})", f"{f['image_model_ips']}", "", ""
    )
    table.add_row(
        "image end to end (1920x1280 JPEG)",
        f"{f['image_e2e_ips']}",
        f"{f['image_e2e_over_model']}x model, {f['image_e2e_over_naive']}x naive",
        f"{check(f['image_e2e_over_model'], 0.8)} model, {check(f['image_e2e_over_naive'], 1.6)}",
    )
    table.add_row("image naive per-item", f"{f['image_naive_ips']}", "", "")
    table.add_row(
        f"text model-only (batch {f['text_batch_size']})", f"{f['text_model_ips']}", "", ""
    )
    table.add_row(
        "text end to end",
        f"{f['text_e2e_ips']}",
        f"{f['text_e2e_over_model']}x model, {f['text_e2e_over_naive']}x naive",
        f"{check(f['text_e2e_over_model'], 0.8)} model, {check(f['text_e2e_over_naive'], 4)}",
    )
    table.add_row("text naive per-item", f"{f['text_naive_ips']}", "", "")
    table.add_row(
        "re-delivery of indexed images",
        f"{f['redelivery_ips']}",
        f"{f['redelivery_over_first']}x first ingest",
        check(f["redelivery_over_first"], 50),
    )
    table.add_row(
        f"memory run ({f['memory_run_ips']} items/s)",
        "",
        f"RSS {f['rss_warm_mb']} -> {f['rss_end_mb']} MB ({f['rss_growth_pct']:+.1f} %)",
        f"{'✓' if abs(f['rss_growth_pct']) <= 10 else '✗'} within 10 %",
    )
    table.add_row("worker peak RSS", f"{f['peak_rss_mb']} MB", "", "")
    console.print(table)
    console.print(f"took {f['seconds']} s" + (f"; chart: {f['chart']}" if "chart" in f else ""))

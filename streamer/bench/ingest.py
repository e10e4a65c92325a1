"""``streamer bench``: ingest throughput against its ceiling and its baseline, in one run.

All on the same machine, one after another, on the embedded stack (or the servers the settings
name), for the first served topology of each medium (image and text):

1. calibration: the fastest batch size of each model stage on this device (cached for the
   worker);
2. ceilings, each stage alone at full speed: the model stage on inputs its topology already
   prepared, at the calibrated size; the CPU prepare path (decode and the model's transform) on
   every core; JPEG decode on the GPU when the model runs there;
3. naive baselines: one message at a time through the topology's baseline (full-size decode,
   the model's transform as it comes), batch 1, one upsert and one commit per item;
4. end to end through a real worker process: Kafka -> fetch -> decode -> embed -> Milvus, for
   distinct 1920x1280 JPEGs (the GPU's utilisation sampled meanwhile, where there is one) and
   for distinct short texts;
5. re-delivery: the same image messages again (already indexed);
6. memory: ``memory_items`` new texts through the same worker, its RSS sampled throughout;
7. the sink alone: rows/s of upserts into the vector store (last: milvus-lite keeps working
   after a big write, which would slow the phase after it).

It prints items/s, the ratios against the goals, the worker's peak RSS, writes a PNG chart, and
(with ``--json``) ends with one JSON line of the figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console

from operators.fetch import path_to_uri
from streamer.bench import BenchSizes
from streamer.bench.chart import require_chart, write_chart
from streamer.bench.media import bench_texts, mixed_texts, write_bench_photos
from streamer.bench.naive import run_naive
from streamer.bench.observe import (
    Counters,
    GpuBusy,
    RssSampler,
    StageTimes,
    WorkerMetrics,
    group_children,
    own_peak_mb,
    status_mb,
    wait_ready,
    wait_received,
)
from streamer.bench.report import machine, memory_figures, print_figures, progress, ratios
from streamer.bench.sink import sink_alone
from streamer.config.connections import redis_client
from streamer.config.settings import Settings, available_cores, namespaced, settings_env
from streamer.core.errors import ConfigError, StageError
from streamer.core.messages import UploadMessage
from streamer.ingest.producer import publish
from streamer.kafka.topics import ensure_topics
from streamer.models.calibration import (
    Calibration,
    CalibrationCache,
    calibrated_batch_size,
    stage_label,
    throughput,
    warm_up,
)
from streamer.runner.context import Context
from streamer.runner.lengths import length_chunks, lengths_of
from streamer.runner.operator import ModelOperator, Source
from streamer.runner.plan import Plan, Stage, bind
from streamer.runner.runner import Runner
from streamer.runner.topology import Topology
from streamer.stack.embedded import down as stack_down
from streamer.stack.embedded import recorded_settings
from streamer.stack.embedded import up as stack_up
from streamer.stack.processes import free_port, start_worker, terminate
from streamer.storage.store import VectorStore
from streamer.worker.shares import process_ports

__all__ = ["run_ingest_bench"]

log = logging.getLogger(__name__)


def _model_ceiling(
    stage: Stage, inputs: Sequence[Any], size: int, seconds: float, streams: int
) -> float:
    """Items/s of the model stage alone over prepared ``inputs`` in chunks of ``size`` (for a
    model whose inputs have lengths, all of them cut by length, as the runner cuts a take: the
    best the model does), ``streams`` calls at once (as the worker runs them)."""
    assert stage.model is not None
    model = stage.model.model
    measured = lengths_of(model)
    if measured is None:
        chunks = [list(inputs[start : start + size]) for start in range(0, len(inputs), size)]
    else:
        cuts = length_chunks(range(len(inputs)), measured.lengths(inputs), size)
        chunks = [[inputs[i] for i in cut] for cut in cuts]
    with ThreadPoolExecutor(streams) as pool:
        # every thread, every chunk shape, before timing (a GPU's first call per pair is slow)
        for shape in {len(chunk): chunk for chunk in chunks}.values():
            warm_up(model, shape, pool, streams)
        return throughput(model, chunks, pool, min_time_s=seconds)


def _prepared(
    runner: Runner, plan: Plan, inputs: Sequence[Any], first: int, last: int
) -> list[Any]:
    """What stages ``first`` up to ``last`` make of ``inputs`` (none may fail)."""
    outs = asyncio.run(runner.run(plan, inputs, first=first, last=last))
    failed = [o for o in outs if isinstance(o, StageError)]
    if failed:
        raise failed[0]
    return outs


def _measured(plan: Plan) -> Stage:
    """The model stage whose speed is the topology's: the first one that does not merely
    prepare the next one's inputs (a decode stage on the GPU does)."""
    return next(s for s in plan.models if s.model is not None and not s.model.operator.prepares)


def _by_length(plan: Plan, n: int, size: int, streams: int) -> dict[str, Any]:
    """Items/s of ``n`` texts of mixed length (:func:`mixed_texts`) through the model stage and
    the rest of ``plan``, in takes of :data:`MIXED_TAKE` as a worker runs them: model calls cut
    in arrival order, then by length (the runner's way), on the same texts."""
    stage = _measured(plan)
    texts = mixed_texts(n, seed=5)
    figures: dict[str, Any] = {}
    with (
        ThreadPoolExecutor(available_cores(), "bench-mixed-cpu") as cpu,
        ThreadPoolExecutor(streams, "bench-mixed-model") as model,
    ):
        prepare = Runner(cpu, model)
        inputs = _prepared(prepare, plan, [Source(text=t) for t in texts], 0, stage.index)
        for label, by_length in (("arrival", False), ("by_length", True)):
            runner = Runner(cpu, model, batch_size=lambda _p, _s: size, by_length=by_length)
            asyncio.run(runner.run(plan, inputs[:size], first=stage.index))  # warm
            started = time.perf_counter()
            for start in range(0, len(inputs), MIXED_TAKE):
                outs = asyncio.run(
                    runner.run(plan, inputs[start : start + MIXED_TAKE], first=stage.index)
                )
                if any(isinstance(o, StageError) for o in outs):
                    raise next(o for o in outs if isinstance(o, StageError))
            figures[f"text_mixed_{label}_ips"] = round(
                len(inputs) / (time.perf_counter() - started), 2
            )
    measured = lengths_of(stage.model)
    assert measured is not None
    lengths = sorted(measured.lengths(texts))
    figures["text_mixed_tokens_median"] = lengths[len(lengths) // 2]
    figures["text_mixed_tokens_max"] = lengths[-1]
    return figures


def _device_decode(plan: Plan) -> Stage | None:
    """A model stage before the measured one (JPEG decode on the GPU), if the plan has one."""
    measured = _measured(plan)
    return next((s for s in plan.models if s.index < measured.index), None)


def _prepare_ceiling(plan: Plan, payloads: Sequence[bytes], threads: int, seconds: float) -> float:
    """Items/s of the CPU path between fetch and the model (decode, the model's transform) on
    ``threads`` threads, for as long as ``seconds``."""
    runner = Runner.with_threads(threads, 1, name="bench-cpu")
    try:
        _prepared(runner, plan, payloads[:threads], 1, plan.model_index)  # threads started
        done, started = 0, time.perf_counter()
        while done == 0 or time.perf_counter() - started < seconds:
            done += len(_prepared(runner, plan, payloads, 1, plan.model_index))
        return done / (time.perf_counter() - started)
    finally:
        runner.close()


#: the end-to-end worker's log (its processes' too), under the stack's state folder, where the
#: GPU check looks
WORKER_LOG = "bench-ingest-worker.log"
#: photos the workers are warmed with (before any phase is timed): enough that every
#: partition of the uploads topic almost surely gets one (4 partitions: all but 0.4 % of runs)
WARM_PHOTOS = 24
#: texts of mixed length are timed in takes of this many (a worker's take of texts on a 2-core
#: machine)
MIXED_TAKE = 96


@contextlib.contextmanager
def _where(
    metrics: Sequence[WorkerMetrics], medium: str, figures: dict[str, Any]
) -> Iterator[None]:
    """Where a phase's time went in the workers: their metrics read before and after the
    block, the difference (summed over the workers) put under ``<medium>_e2e_where``. A worker
    that cannot be read costs the run nothing but that figure."""
    try:
        before = StageTimes.combined([m.read() for m in metrics])
    except OSError as exc:
        log.warning("worker metrics unreadable: %s", exc)
        yield
        return
    started = time.perf_counter()
    yield
    wall_s = time.perf_counter() - started
    try:
        after = StageTimes.combined([m.read() for m in metrics])
        figures[f"{medium}_e2e_where"] = after.since(before, wall_s)
    except OSError as exc:
        log.warning("worker metrics unreadable: %s", exc)


def _first_of(topologies: Sequence[Topology], media_type: str) -> Topology:
    """The first served topology of ``media_type`` with a model stage to measure."""
    for topology in topologies:
        if topology.media_type == media_type and any(
            isinstance(s, ModelOperator) for s in topology.stages
        ):
            return topology
    raise ConfigError(f"the benchmark needs a served {media_type} topology with a model stage")


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


def run_ingest_bench(
    base: Settings,
    sizes: BenchSizes | None = None,
    *,
    topologies: Sequence[Topology] | None = None,
    chart: Path | None = Path("streamer-bench.png"),
    media_dir: Path | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """Run every phase; ``topologies`` are those served (default: the settings'), of which
    the first image and the first text topology are measured."""
    from streamer.runner.served import load_topologies

    if chart is not None:
        require_chart()
    sizes = sizes or BenchSizes()
    served = list(topologies or load_topologies(base.runtime.topologies))
    measured = {medium: _first_of(served, medium) for medium in sizes.media}
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

    state, started_stack = stack_up(base)
    run_id = f"ib{int(time.time()) % 10**7}"
    media = media_dir or base.stack.state_dir / "bench-media"
    settings = namespaced(recorded_settings(base), run_id, (media,))
    store = VectorStore(settings.milvus)
    client = redis_client(settings.redis)
    counters = Counters(client, settings.redis.key_prefix)
    workers: list[subprocess.Popen[bytes]] = []
    sampler: RssSampler | None = None
    figures: dict[str, Any] = {
        "machine": machine(),
        # the stack's Milvus (milvus-lite or a server), or the one the settings name instead
        "milvus": base.stack.milvus if settings.milvus.uri == state.milvus_uri else "external",
    }
    memory_trace: list[tuple[int, float]] = []
    try:
        asyncio.run(ensure_topics(settings.kafka))
        phase(f"writing {sizes.images + sizes.naive_images + WARM_PHOTOS} distinct 1920x1280 JPEGs")
        cores = available_cores()  # before any model: no process is forked after CUDA starts
        photos = write_bench_photos(media, sizes.images, seed=1, workers=cores)
        naive_photos = write_bench_photos(media, sizes.naive_images, seed=2, workers=cores)
        warm_photos = write_bench_photos(media, WARM_PHOTOS, seed=3, workers=cores)

        # 1. calibration (measured now, on demand; the worker reads the cache)
        phase("loading models and calibrating batch sizes")
        import torch

        from streamer.runner.device import resolve_device

        runtime = settings.runtime
        streams = runtime.streams_for(resolve_device(runtime.device))
        torch.set_num_threads(runtime.threads_per_stream(resolve_device(runtime.device)))
        figures["model_streams"] = streams
        figures["threads_per_stream"] = torch.get_num_threads()
        context = Context.from_settings(settings)
        cache = CalibrationCache(settings.batching.calibration_cache)
        plans: dict[str, Plan] = {}
        calibrations: dict[str, Calibration] = {}
        for name, topology in measured.items():
            plan = bind(topology, None, context)
            stage = _measured(plan)
            assert stage.model is not None
            calibration = calibrated_batch_size(
                stage.model.model,
                label=stage_label(plan, stage),
                mode="always",
                candidates=settings.batching.calibration_sizes,
                cache=cache,
                streams=streams,
            )
            assert calibration is not None
            plans[name], calibrations[name] = plan, calibration
        figures["device"] = f"{plans['image'].device} ({plans['image'].precision})"
        for name, calibration in calibrations.items():
            figures[f"{name}_batch_size"] = calibration.batch_size
            figures[f"{name}_calibration"] = calibration.items_per_s

        # 2. ceilings: each stage alone, on inputs the topologies prepared
        phase("ceilings: model only, CPU prepare, GPU decode")
        texts = bench_texts(sizes.texts, seed=1) if sizes.text else []
        samples = {
            "image": [Source(uri=path_to_uri(p)) for p in photos[:48]],
            "text": [Source(text=t) for t in texts[:1024]],
        }
        prepare = Runner.with_threads(available_cores(), 1, name="bench-prepare")
        try:
            raw = {n: _prepared(prepare, p, samples[n], 0, 1) for n, p in plans.items()}
            inputs = {
                n: _prepared(prepare, p, raw[n], 1, _measured(p).index) for n, p in plans.items()
            }
        finally:
            prepare.close()
        for name, plan in plans.items():
            figures[f"{name}_model_ips"] = _model_ceiling(
                _measured(plan), inputs[name], calibrations[name].batch_size, sizes.model_seconds,
                streams,
            )  # fmt: skip
        mixed = sizes.mixed_texts if "text" in plans else 0
        if mixed and lengths_of(_measured(plans["text"]).model) is not None:
            phase(f"text of mixed lengths: {mixed} in arrival order, then cut by length")
            batch = calibrations["text"].batch_size
            figures.update(_by_length(plans["text"], mixed, batch, streams))
        if "image" in plans:
            image = plans["image"]
            on_cpu = bind(measured["image"], None, replace(context, decode_on_device="off"))
            figures["image_prepare_ips"] = _prepare_ceiling(
                on_cpu, raw["image"], settings.batching.decode_workers, sizes.model_seconds
            )
            figures["image_prepare_threads"] = settings.batching.decode_workers
            if (decode := _device_decode(image)) is not None:
                figures["image_device_decode_ips"] = _model_ceiling(
                    decode, raw["image"], calibrations["image"].batch_size, sizes.model_seconds,
                    streams,
                )  # fmt: skip
            del on_cpu
        sink_dim = plans[sizes.media[0]].dim
        del inputs, raw

        # the naive runtime has one stream: give it every core
        torch.set_num_threads(available_cores())

        # 3. naive baselines: each topology's baseline, one item at a time
        naive_runner = Runner.inline()  # one item at a time, every stage in this thread
        try:
            naive = {
                "image": _image_uploads(naive_photos, "naive"),
                "text": _text_uploads(bench_texts(sizes.naive_texts, seed=2), "naive"),
            }
            for name in sizes.media:
                uploads = naive[name]
                phase(f"naive baseline: {len(uploads)} {name} items one by one")
                topic = f"{run_id}.naive.{name}"
                asyncio.run(ensure_topics(settings.kafka, extra=(topic,)))
                asyncio.run(publish(settings.kafka, uploads, topic=topic))
                collection = f"{settings.milvus.collection_prefix}naive_{name}"
                baseline = bind(measured[name].baseline(), None, context)
                # a warm model, as the calibrated one the other phases use
                warm_source = (
                    Source(uri=path_to_uri(warm_photos[0])) if name == "image" else
                    Source(text="warm up")
                )  # fmt: skip
                for _ in range(3):
                    asyncio.run(naive_runner.run(baseline, [warm_source]))
                store.ensure_collection(collection, baseline.dim)
                with progress(console, f"naive {name}", len(uploads)) as advance:
                    figures[f"{name}_naive_ips"] = asyncio.run(
                        run_naive(
                            settings.kafka,
                            topic,
                            len(uploads),
                            plan=baseline,
                            runner=naive_runner,
                            store=store,
                            collection=collection,
                            group=f"{run_id}-naive-{name}",
                            progress=advance,
                        )
                    )
                del baseline
        finally:
            naive_runner.close()
        del plans

        # 4. end to end through worker processes (one consumer group)
        n = sizes.workers
        phase(f"starting {n} worker{'s' if n > 1 else ''} (ingest agent) and warming up")
        # several: one `streamer worker --processes n`, as a GPU host runs them in production
        port = free_port(run=n + 1)
        own = {
            "STREAMER_METRICS_PORT": str(port),
            "STREAMER_WORKER_NAME": "bench",
            "STREAMER_WORKER_PROCESSES": str(n),
        }
        log_path = settings.stack.state_dir / WORKER_LOG
        workers = [start_worker({**settings_env(settings), **own}, log_path, agents="ingest")]
        metrics = [WorkerMetrics(p) for p in (process_ports(port, n) if n > 1 else [port])]
        wait_ready(metrics, workers, timeout_s=300)
        figures["workers"] = n
        # the memory figures are the first worker process's
        rss_pid = workers[0].pid if n == 1 else group_children(workers[0].pid)[0]
        sampler = RssSampler(rss_pid)
        sampler.start()
        # a warm photo on (almost surely) every partition: each worker has had its
        # assignment and run a batch before the clock starts
        warm = _image_uploads(warm_photos, "warm")
        if sizes.text:
            warm += _text_uploads(["warm up"], "warm")
        asyncio.run(publish(settings.kafka, warm))
        wait_received(counters, len(warm), workers=workers, timeout_s=300)

        def through_worker(label: str, uploads: Sequence[UploadMessage]) -> float:
            target = counters.received() + len(uploads)
            with progress(console, label, len(uploads)) as advance:
                first = target - len(uploads)
                started = time.perf_counter()
                asyncio.run(publish(settings.kafka, uploads))
                done = wait_received(
                    counters,
                    target,
                    workers=workers,
                    timeout_s=600,
                    on_tick=lambda received: advance(received - first),
                )
            return len(uploads) / (done - started)

        phase(f"end to end: {len(photos)} images")
        image_uploads = _image_uploads(photos, "img")
        with GpuBusy() as gpu, _where(metrics, "image", figures):
            figures["image_e2e_ips"] = through_worker("images", image_uploads)
        if gpu.pct is not None:
            figures["gpu_busy_pct"] = gpu.pct
        if sizes.text:
            phase(f"end to end: {len(texts)} texts")
            with _where(metrics, "text", figures):
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
        if sizes.text:
            phase(f"memory: {sizes.memory_items} new texts through the same worker")
            memory_texts = bench_texts(sizes.memory_items, seed=4)
            first = counters.received()

            def sample(received: int) -> None:
                done = received - first
                if not memory_trace or done - memory_trace[-1][0] >= sizes.memory_items / 200:
                    memory_trace.append((done, status_mb(rss_pid, "VmRSS")))
                advance(done)

            with progress(console, "memory run", sizes.memory_items) as advance:
                started = time.perf_counter()
                asyncio.run(publish(settings.kafka, _text_uploads(memory_texts, "mem")))
                done = wait_received(
                    counters,
                    first + sizes.memory_items,
                    workers=workers,
                    timeout_s=900,
                    on_tick=sample,
                )
            sample(first + sizes.memory_items)
            figures["memory_run_ips"] = sizes.memory_items / (done - started)
            figures.update(memory_figures(memory_trace, sizes.memory_items))
        figures["peak_rss_mb"] = max(status_mb(rss_pid, "VmHWM"), sampler.peak_mb)

        # 7. the sink alone, last: milvus-lite keeps working for a while after a big write
        # and a drop, which would slow whatever phase came next
        phase(f"sink alone: {sizes.sink_rows} rows, {sizes.sink_chunk} a call")
        figures["sink_rows_per_s"] = sink_alone(
            store, rows=sizes.sink_rows, dim=sink_dim, chunk=sizes.sink_chunk
        )
        figures["bench_process_peak_rss_mb"] = own_peak_mb()
        totals = counters.snapshot()
        figures["dead_lettered"] = totals.get("dead_lettered", 0)
    finally:
        if sampler is not None:
            sampler.stop()
        for worker in workers:
            terminate(worker)
        for name in store.collections(settings.milvus.collection_prefix):
            store.drop(name)
        for key in client.scan_iter(match=f"{settings.redis.key_prefix}:*"):
            client.delete(key)
        store.close()
        if started_stack:
            stack_down(base)
    figures.update(ratios(figures))
    figures["seconds"] = round(time.perf_counter() - began, 1)
    figures = {k: round(v, 2) if isinstance(v, float) else v for k, v in figures.items()}
    if chart is not None:
        figures["chart"] = str(write_chart(chart, figures, memory_trace))
    print_figures(console, figures)
    return figures

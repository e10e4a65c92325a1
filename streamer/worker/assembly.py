"""Assemble and run one worker process: plans bound (models loaded and calibrated) first,
then the faust agents around the ingest pipeline and the search service."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import redis

from streamer.config.connections import redis_client
from streamer.config.logs import configure_logging
from streamer.config.settings import Settings
from streamer.core.metrics import Health, Metrics, WorkerEndpoints, serve
from streamer.core.stats import Stats
from streamer.ingest.dedupe import DedupeCache
from streamer.ingest.labels import AttachedClassifiers
from streamer.ingest.pipeline import IngestPipeline
from streamer.kafka.topics import ensure_topics
from streamer.models.loading import load_plans
from streamer.query.service import SearchService
from streamer.rollout.registry import Registry
from streamer.runner.device import resolve_device
from streamer.runner.executors import ModelThreads
from streamer.runner.plans import Plans
from streamer.runner.runner import Runner
from streamer.runner.topology import Topology
from streamer.storage.store import VectorStore
from streamer.trainer.saved import SavedClassifiers
from streamer.worker.app import AGENTS, create_app
from streamer.worker.process import GracefulWorker, run_until_stopped
from streamer.worker.shares import worker_name
from streamer.worker.shutdown import Shutdown
from streamer.worker.warmup import Warmer

__all__ = ["build_pipeline", "build_searcher", "model_threads", "run_worker"]

log = logging.getLogger(__name__)


def registry_for(settings: Settings, client: redis.Redis) -> Registry:
    return Registry(
        client,
        VectorStore(settings.milvus),
        prefix=settings.redis.key_prefix,
        collection_prefix=settings.milvus.collection_prefix,
    )


def build_pipeline(
    settings: Settings,
    topologies: Sequence[Topology],
    plans: Plans,
    client: redis.Redis,
    metrics: Metrics | None = None,
    threads: ModelThreads | None = None,
) -> IngestPipeline:
    """The ingest path: fetch and decode on as many threads as the worker has cores, model
    calls on the ingest lane of the model threads, writes to the versions the registry names
    (less the retired ones, whose tombstones it reads too), rows labelled by the classifiers
    attached to the stream."""
    registry = registry_for(settings, client)
    prefix = settings.redis.key_prefix

    def versions(topology: Topology) -> list[str]:
        targets = registry.read(topology).targets()
        if metrics is not None:
            for version in topology.versions():
                metrics.serving.labels(topology.name, version).set(version == targets[0])
        return targets

    threads = threads or model_threads(settings)
    return IngestPipeline(
        topologies=topologies,
        plans=plans,
        runner=Runner(
            ThreadPoolExecutor(settings.batching.decode_workers, "ingest-cpu"),
            threads.lane("ingest"),
            batch_size=plans.batch_size,
            prepare_pool=threads.lane("prepare"),
        ),
        store=VectorStore(settings.milvus),
        cache=DedupeCache(client, prefix=prefix),
        stats=Stats(client, prefix=prefix, worker=worker_name(settings)),
        collection_prefix=settings.milvus.collection_prefix,
        max_retry_pause_s=settings.runtime.sink_retry_max_s,
        versions=versions,
        retired=registry.retired,
        classifiers=AttachedClassifiers(
            SavedClassifiers(client, prefix).attached,
            refresh_s=settings.trainer.attached_refresh_s,
        ),
    )


def model_threads(settings: Settings) -> ModelThreads:
    """The model threads of a worker on its device (one shared thread on a GPU)."""
    device = resolve_device(settings.runtime.device)
    return ModelThreads(device, settings.runtime.streams_for(device))


def build_searcher(
    settings: Settings,
    topologies: Sequence[Topology],
    plans: Plans,
    threads: ModelThreads | None = None,
) -> SearchService:
    threads = threads or model_threads(settings)
    return SearchService(
        topologies=topologies,
        plans=plans,
        # queries go first on the model threads: a GPU's one thread, or a CPU thread of their
        # own, so they never wait behind an ingest batch
        runner=Runner(
            ThreadPoolExecutor(2, "query-cpu"),
            threads.lane("query"),
            batch_size=plans.batch_size,
            prepare_pool=threads.lane("prepare"),
        ),
        store=VectorStore(settings.milvus),
        stats=Stats(redis_client(settings.redis), prefix=settings.redis.key_prefix),
        default_reply_to=settings.kafka.search_results_topic,
        max_top_k=settings.search.max_top_k,
        collection_prefix=settings.milvus.collection_prefix,
        max_retry_pause_s=settings.runtime.sink_retry_max_s,
    )


def run_worker(
    settings: Settings, topologies: Sequence[Topology], agents: Sequence[str] = AGENTS
) -> int:
    """Run the agents until SIGINT/SIGTERM; returns the exit code (see
    :mod:`streamer.worker.shutdown`)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    configure_logging(settings.runtime.log_level, settings.runtime.log_format)
    metrics, health = Metrics(), Health(stall_s=settings.runtime.stall_s)
    threads = model_threads(settings)
    plans = load_plans(settings, topologies, threads=threads, metrics=metrics)
    asyncio.run(ensure_topics(settings.kafka))
    pipeline = (
        build_pipeline(settings, topologies, plans, redis_client(settings.redis), metrics, threads)
        if "ingest" in agents
        else None
    )
    searcher = build_searcher(settings, topologies, plans, threads) if "search" in agents else None
    if settings.runtime.metrics_port:
        serve(settings.runtime.metrics_port, WorkerEndpoints(metrics, health))
    shutdown = Shutdown(settings.runtime.shutdown_grace_s)
    app = create_app(
        settings, topologies, pipeline, searcher, metrics=metrics, health=health, shutdown=shutdown
    )
    log.info(
        "worker starting",
        extra={
            "worker": worker_name(settings),
            "bootstrap": settings.kafka.bootstrap_servers,
            "milvus": settings.milvus.uri,
            "topologies": [t.name for t in topologies],
            "agents": list(agents),
            "shutdown_grace_s": shutdown.grace_s,
        },
    )
    worker = GracefulWorker(
        app,
        shutdown=shutdown,
        health=health,
        loglevel=settings.runtime.log_level,
        override_logging=False,
        quiet=True,
    )
    # binds rollout versions before they are asked for, and reports this worker as live
    registry = registry_for(settings, redis_client(settings.redis))
    warmer = Warmer(worker_name(settings), agents, topologies, plans, registry)
    warmer.start()
    shutdown.on_begin(warmer.stop)  # a stopping worker is no longer waited for by `promote`
    try:
        return run_until_stopped(worker)
    finally:
        warmer.stop()
        for runner in (p.runner for p in (pipeline, searcher) if p is not None):
            runner.close()
        threads.close()

"""Assemble and run one worker process: models loaded first, then the faust agents."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import faust
import redis

from operators.device import resolve_device
from streamer.worker.app import AGENTS, create_app
from streamer.models.calibration import CalibrationCache, calibrated_batch_size
from streamer.config.connections import redis_client
from streamer.ingest.dedupe import DedupeCache
from streamer.models.embedders import Embedder, EmbedderPool, load_embedder
from streamer.config.fetching import fetcher_for
from streamer.ingest.pipeline import IngestPipeline
from streamer.config.logs import configure_logging
from streamer.core.metrics import Health, Metrics, serve
from streamer.rollout.registry import Registry
from streamer.query.service import SearchService
from streamer.config.settings import Settings
from streamer.core.stats import Stats
from streamer.storage.store import VectorStore
from streamer.config.topics import ensure_topics
from topologies.base import Topology

__all__ = ["build_pipeline", "load_embedders", "run_worker"]

log = logging.getLogger(__name__)


def load_embedders(settings: Settings, topologies: Sequence[Topology]) -> EmbedderPool:
    """A pool with every topology's declared model loaded now; rollout versions load later."""
    import torch

    torch.set_num_threads(
        settings.runtime.threads_per_stream(resolve_device(settings.runtime.device))
    )

    runtime, batching = settings.runtime, settings.batching

    def load(topology: Topology, version: str) -> Embedder:
        start = time.perf_counter()
        embedder = load_embedder(
            topology, settings.fetch, runtime.device, version, runtime.precision
        )
        log.info(
            "model loaded",
            extra={
                "topology": topology.name,
                "model_version": version,
                "dim": embedder.dim,
                "device": embedder.device,
                "precision": embedder.precision,
                "seconds": round(time.perf_counter() - start, 2),
            },
        )
        return embedder

    def tune(embedder: Embedder) -> int | None:
        if batching.max_batch_size is not None:  # pinned by the operator
            return None
        calibration = calibrated_batch_size(
            embedder,
            mode=batching.calibrate,
            candidates=batching.calibration_sizes,
            cache=CalibrationCache(batching.calibration_cache),
            streams=runtime.streams_for(embedder.device),
        )
        return calibration.batch_size if calibration is not None else None

    pool = EmbedderPool(load, tune)
    for topology in topologies:
        pool.get(topology)
    return pool


def worker_name(settings: Settings) -> str:
    """This process, as named in per-worker counters and logs."""
    return settings.runtime.worker_name or f"{socket.gethostname()}-{os.getpid()}"


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
    embedders: EmbedderPool,
    client: redis.Redis,
    metrics: Metrics | None = None,
) -> IngestPipeline:
    registry = registry_for(settings, client)
    prefix = settings.redis.key_prefix

    def versions(topology: Topology) -> list[str]:
        targets = registry.read(topology).targets()
        if metrics is not None:
            for version in topology.versions():
                metrics.serving.labels(topology.name, version).set(version == targets[0])
        return targets

    return IngestPipeline(
        topologies=topologies,
        embedders=embedders,
        store=VectorStore(settings.milvus),
        cache=DedupeCache(client, prefix=prefix),
        fetcher=fetcher_for(settings.fetch),
        stats=Stats(client, prefix=prefix, worker=worker_name(settings)),
        decode_pool=ThreadPoolExecutor(settings.batching.decode_workers, "decode"),
        model_pool=ThreadPoolExecutor(
            settings.runtime.streams_for(resolve_device(settings.runtime.device)), "model"
        ),
        policies={
            t.name: t.batch.overridden(
                settings.batching.max_batch_size, settings.batching.max_wait_ms
            )
            for t in topologies
        },
        collection_prefix=settings.milvus.collection_prefix,
        max_retry_pause_s=settings.runtime.sink_retry_max_s,
        versions=versions,
    )


def build_searcher(
    settings: Settings, topologies: Sequence[Topology], embedders: EmbedderPool
) -> SearchService:
    return SearchService(
        topologies=topologies,
        embedders=embedders,
        store=VectorStore(settings.milvus),
        fetcher=fetcher_for(settings.fetch),
        stats=Stats(redis_client(settings.redis), prefix=settings.redis.key_prefix),
        decode_pool=ThreadPoolExecutor(2, "query-decode"),
        # queries get their own model thread, so they never wait behind an ingest batch
        model_pool=ThreadPoolExecutor(1, "query-model"),
        default_reply_to=settings.kafka.search_results_topic,
        max_top_k=settings.search.max_top_k,
        collection_prefix=settings.milvus.collection_prefix,
        max_retry_pause_s=settings.runtime.sink_retry_max_s,
    )


def run_worker(
    settings: Settings, topologies: Sequence[Topology], agents: Sequence[str] = AGENTS
) -> None:
    """Block running the agents until SIGINT/SIGTERM."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    configure_logging(settings.runtime.log_level, settings.runtime.log_format)
    embedders = load_embedders(settings, topologies)
    asyncio.run(ensure_topics(settings.kafka))
    metrics, health = Metrics(), Health(stall_s=settings.runtime.stall_s)
    pipeline = (
        build_pipeline(settings, topologies, embedders, redis_client(settings.redis), metrics)
        if "ingest" in agents
        else None
    )
    searcher = build_searcher(settings, topologies, embedders) if "search" in agents else None
    if settings.runtime.metrics_port:
        serve(settings.runtime.metrics_port, metrics, health)
    app = create_app(settings, topologies, pipeline, searcher, metrics=metrics, health=health)
    log.info(
        "worker starting",
        extra={
            "bootstrap": settings.kafka.bootstrap_servers,
            "milvus": settings.milvus.uri,
            "topologies": [t.name for t in topologies],
            "agents": list(agents),
        },
    )
    faust.Worker(
        app, loglevel=settings.runtime.log_level, override_logging=False, quiet=True
    ).execute_from_commandline()

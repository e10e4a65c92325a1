"""Typed, frozen settings: one model per concern, read from ``STREAMER_*`` variables in one place.

Each model names its environment prefix; a field ``bootstrap_servers`` of :class:`KafkaSettings`
is read from ``STREAMER_KAFKA_BOOTSTRAP_SERVERS``. :func:`load_settings` is the only code that
reads the environment. When ``streamer up`` has recorded an embedded stack, its addresses fill
the fields the environment leaves unset, so every command finds the running stack.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from streamer.config.cpus import available_cores
from streamer.core.errors import ConfigError

__all__ = [
    "BatchingSettings",
    "FetchSettings",
    "KafkaSettings",
    "MilvusSettings",
    "RedisSettings",
    "RuntimeSettings",
    "SearchSettings",
    "Settings",
    "StackSettings",
    "TrainerSettings",
    "VideoSettings",
    "available_cores",
    "load_settings",
    "namespaced",
    "settings_env",
]


class _Concern(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    env_prefix: ClassVar[str]


class KafkaSettings(_Concern):
    env_prefix = "STREAMER_KAFKA_"
    bootstrap_servers: str = "127.0.0.1:19092"
    app_id: str = Field("streamer", description="faust app id, also the consumer group id")
    uploads_topic: str = "media.uploads"
    deadletter_topic: str = "media.deadletter"
    labels_topic: str = "media.labels"
    search_requests_topic: str = "search.requests"
    search_results_topic: str = "search.results"
    partitions: int = Field(4, ge=1, description="partitions of the topics streamer creates")
    replication_factor: int = Field(
        1,
        ge=1,
        le=32,
        description="replicas of every topic streamer creates (its own and faust's); 3 on a "
        "production cluster, 1 on the embedded stack",
    )
    min_insync_replicas: int = Field(
        1,
        ge=1,
        le=32,
        description="min.insync.replicas of the topics streamer creates; producers use "
        "acks=all, so a write needs this many replicas",
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = Field(None, description="CA bundle for TLS to the brokers")
    session_timeout_s: float = Field(10.0, gt=0)
    rebalance_timeout_s: float = Field(10.0, gt=0)
    heartbeat_interval_s: float = Field(1.0, gt=0)
    fetch_max_wait_ms: int = Field(
        100, ge=1, le=60_000, description="longest a fetch waits on the broker for new records"
    )
    search_fetch_max_wait_ms: int = Field(
        10,
        ge=1,
        le=60_000,
        description="the same for the search consumers (the worker's request reader, the "
        "client's result reader). The embedded broker (Tansu) answers a fetch that found "
        "nothing only when this wait is over, never when data arrives, so each hop of a "
        "search waits up to this long; Apache Kafka answers at once and can take 500",
    )

    @model_validator(mode="after")
    def _isr_within_replicas(self) -> KafkaSettings:
        if self.min_insync_replicas > self.replication_factor:
            raise ValueError(
                f"min_insync_replicas ({self.min_insync_replicas}) exceeds replication_factor "
                f"({self.replication_factor}): no write could succeed"
            )
        return self


class RedisSettings(_Concern):
    env_prefix = "STREAMER_REDIS_"
    url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = Field("streamer", min_length=1)
    password: SecretStr | None = None
    tls_cafile: Path | None = Field(None, description="CA bundle for rediss:// URLs")


class MilvusSettings(_Concern):
    env_prefix = "STREAMER_MILVUS_"
    uri: str = "http://127.0.0.1:19530"
    token: SecretStr | None = None
    collection_prefix: str = Field("", description="prepended to every collection and alias name")
    flush_rows: int = Field(
        5000,
        ge=0,
        description="flush a collection after this many upserted rows (0: never). milvus-lite "
        "searches unflushed rows by brute force, ~35x slower than flushed ones; a Milvus "
        "server seals segments itself, so 0 suits it",
    )
    consistency_level: Literal["Strong", "Bounded", "Session", "Eventually"] = Field(
        "Bounded",
        description="of the searches users issue. Bounded (Milvus's own default) answers at "
        "once and sees writes older than the server's common.gracefulTime (5 s by default); "
        "Strong sees every acknowledged write but waits for the server's next time tick "
        "(~200 ms a search on a Milvus server). milvus-lite is always Strong. Lookups the "
        "ingest path depends on (dedupe, read_rows, count, ids) are always Strong",
    )
    upsert_max_rows: int = Field(
        1024,
        ge=1,
        description="most rows one upsert call sends; a larger batch goes in several calls, "
        "each acknowledged. Measured by `streamer bench sink` (1280-d rows, 2 cores): "
        "milvus-lite writes ~2.5k rows/s and gains little from larger calls; a Milvus 2.3 "
        "server is fastest at 1,024 (5.7k rows/s; 3.3-4.7k at 64 to 4,096)",
    )
    upsert_max_bytes: int = Field(
        16 * 1024 * 1024,
        ge=1,
        description="most bytes one upsert call sends, estimated (float32 vectors, UTF-8 "
        "strings, JSON metadata). A Milvus 2.3 proxy refuses gRPC messages over 64 MiB "
        "(proxy.grpc.serverMaxRecvSize), milvus-lite over 256 MiB; a quarter of the smaller "
        "leaves room for the estimate's error and holds 3,000 rows of 1280-d vectors",
    )


class BatchingSettings(_Concern):
    """Overrides of the batching policy declared by each topology (unset: the topology's own)."""

    env_prefix = "STREAMER_BATCH_"
    max_batch_size: int | None = Field(
        None, ge=1, description="pins the model batch size (no calibration)"
    )
    max_wait_ms: int | None = Field(None, ge=0)
    decode_workers: int = Field(
        default_factory=lambda: available_cores(),
        ge=1,
        description="fetch/decode threads (default: cores)",
    )
    calibrate: Literal["off", "cached", "always"] = Field(
        "cached", description="measure the fastest model batch size per device (cached per machine)"
    )
    calibration_sizes: tuple[int, ...] = Field(
        (1, 2, 4, 8, 16, 32, 64, 128, 256), description="candidate batch sizes, ascending"
    )
    calibration_cache: Path = Field(
        default_factory=lambda: Path.home() / ".cache" / "streamer" / "calibration.json"
    )
    max_in_flight: int | None = Field(
        None,
        ge=1,
        le=16,
        description="micro-batches in the pipeline at once (decode overlaps model); unset: sized "
        "to the device (2 on a CPU, where decode and model share the cores; 3 on a GPU)",
    )
    take_size: int | None = Field(
        None,
        ge=1,
        le=16384,
        description="messages per micro-batch taken from the stream; unset: sized to the "
        "measured model speed (about target_batch_ms of model time, whole model batches)",
    )
    target_batch_ms: int = Field(
        250,
        ge=1,
        le=60_000,
        description="model time a micro-batch is sized to when take_size is unset: per-batch "
        "costs (Kafka, Redis, Milvus round trips) are paid once per this much model work",
    )
    buckets: int | None = Field(
        None,
        ge=0,
        le=8,
        description="batch sizes a model stage runs at (its batch size and halves; calls padded "
        "up to one), all warmed at start-up; unset: 4 on a GPU, 0 on a CPU (every size as it "
        "comes: a CPU has no first-call stall and padding would cost compute)",
    )

    def buckets_on(self, device: str) -> int:
        if self.buckets is not None:
            return self.buckets
        return 4 if device.startswith("cuda") else 0

    @field_validator("calibration_sizes", mode="before")
    @classmethod
    def _split_sizes(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(int(v) for v in value.split(",") if v.strip())
        return value

    @field_validator("calibration_sizes")
    @classmethod
    def _positive_sizes(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or min(value) < 1 or max(value) > 4096:
            raise ValueError("batch sizes must be in 1..4096")
        return tuple(sorted(set(value)))


class FetchSettings(_Concern):
    env_prefix = "STREAMER_FETCH_"
    media_roots: tuple[Path, ...] = Field(
        default_factory=lambda: (Path.cwd(),),
        description="file:// URIs must resolve under one of these folders",
    )
    max_bytes: int = Field(50 * 1024 * 1024, gt=0)
    max_text_bytes: int = Field(60_000, gt=0, le=60_000)
    max_image_pixels: int = Field(64_000_000, gt=0)
    http_enabled: bool = True
    http_timeout_s: float = Field(10.0, gt=0)
    http_max_redirects: int = Field(3, ge=0, le=10)
    allow_hosts: tuple[str, ...] = Field(
        (), description="if set, only these hosts (``.example.com`` matches subdomains)"
    )
    deny_hosts: tuple[str, ...] = ()
    allow_networks: tuple[str, ...] = Field(
        (), description="CIDRs fetched from although private (an internal media server)"
    )
    s3_enabled: bool = True
    s3_endpoint_url: str | None = Field(None, description="an S3-compatible store (MinIO, Ceph)")
    allow_buckets: tuple[str, ...] = Field((), description="if set, only these buckets")

    @field_validator("allow_hosts", "deny_hosts", "allow_networks", "allow_buckets", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        return value

    @field_validator("media_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(Path(p).expanduser() for p in value.split(os.pathsep) if p)
        return value

    @field_validator("media_roots")
    @classmethod
    def _resolve_roots(cls, value: tuple[Path, ...]) -> tuple[Path, ...]:
        return tuple(p.expanduser().resolve() for p in value)


class VideoSettings(_Concern):
    """How videos are fetched, decoded and sampled (the ``video`` topology)."""

    env_prefix = "STREAMER_VIDEO_"
    max_bytes: int = Field(
        256 * 1024 * 1024, gt=0, description="largest video fetched (its own cap, not FETCH's)"
    )
    max_duration_s: float = Field(3600.0, gt=0, description="longer videos are refused")
    max_pixels: int = Field(8_294_400, gt=0, description="largest frame (default 3840x2160)")
    frame_every_s: float = Field(1.0, gt=0, description="one frame sampled every this many s")
    max_frames: int = Field(
        32, ge=1, le=1024, description="at most this many frames, spread over a longer video"
    )
    decode_timeout_s: float = Field(
        60.0, gt=0, description="a video not decoded in this time is refused (decoder hangs)"
    )
    segment_s: float = Field(
        0.0,
        ge=0,
        description="also store one vector per segment of this many seconds (its time range "
        "in the row's metadata); 0: one vector per video only",
    )


class TrainerSettings(_Concern):
    """The query trainer: a linear classifier learnt from labels on search results."""

    env_prefix = "STREAMER_TRAINER_"
    learning_rate: float = Field(10.0, gt=0, le=1000, description="gradient step of a round")
    steps: int = Field(500, ge=1, le=100_000, description="gradient steps over the labels a round")
    round_size: int = Field(10, ge=1, le=200, description="results shown (to label) a round")
    explore: float = Field(
        0.5,
        ge=0,
        le=1,
        description="share of a round's results taken at the decision boundary rather than "
        "at the top: the labels that teach the classifier most",
    )
    balanced: bool = Field(
        True, description="weigh positive and negative labels alike, however many of each"
    )
    attached_refresh_s: float = Field(
        5.0,
        gt=0,
        le=3600,
        description="how often a worker reads which classifiers are attached to the stream",
    )


class SearchSettings(_Concern):
    env_prefix = "STREAMER_SEARCH_"
    window_ms: int = Field(
        2,
        ge=0,
        le=1000,
        description="coalescing window: how long a batch of several requests waits for more "
        "to join; a lone request is answered at once",
    )
    max_batch: int = Field(256, ge=1, le=4096, description="most requests answered together")
    max_top_k: int = Field(100, ge=1, le=16384)
    timeout_s: float = Field(30.0, gt=0, description="client wait for an answer")


class RuntimeSettings(_Concern):
    env_prefix = "STREAMER_"
    topologies: tuple[str, ...] = Field(
        ("topologies:DEFAULT_TOPOLOGIES",),
        description="the topologies served, as module:NAME (a Topology or a sequence of them; "
        "the module may also be a path to a .py file), comma-separated",
    )
    device: str = Field(
        "auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$", description="auto, cpu, cuda or cuda:N"
    )
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16/fp16 autocast on a GPU, fp32 on a CPU"
    )
    decode_on_device: Literal["auto", "on", "off"] = Field(
        "auto",
        description="decode and resize JPEGs on the model's device (nvJPEG on a GPU), in "
        "batches; auto: when the model runs on cuda; on: on a CPU too; off: in the CPU pool",
    )
    torch_threads: int = Field(0, ge=0, description="threads per model stream; 0: cores/streams")
    model_streams: int = Field(
        0, ge=0, le=64, description="model calls run at once; 0: 1 on a GPU, 2 on a multi-core CPU"
    )

    def streams_for(self, device: str) -> int:
        """How many model calls a worker runs at once on ``device``.

        On a CPU, two single-threaded streams keep both cores busy even while decode threads
        take turns; one stream with two threads stalls at every barrier when a core is taken.
        """
        if self.model_streams:
            return self.model_streams
        return 1 if device.startswith("cuda") else min(2, available_cores())

    def threads_per_stream(self, device: str) -> int:
        if self.torch_threads:
            return self.torch_threads
        return max(1, available_cores() // self.streams_for(device))

    @field_validator("topologies", mode="before")
    @classmethod
    def _split_topologies(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        return value

    @field_validator("topologies")
    @classmethod
    def _named_topologies(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for spec in value:
            module, sep, name = spec.rpartition(":")
            if not sep or not module or not name.isidentifier():
                raise ValueError(f"{spec!r} is not module:NAME")
        if not value:
            raise ValueError("name at least one topology")
        return value

    log_level: str = "INFO"
    log_format: Literal["console", "json"] = "console"
    web_port: int = Field(6066, ge=0, le=65535)
    worker_name: str | None = Field(None, description="default: <hostname>-<pid>")
    metrics_port: int = Field(
        0, ge=0, le=65535, description="/metrics, /healthz and /readyz (0: not served)"
    )
    worker_processes: int = Field(
        1,
        ge=1,
        le=64,
        description="`streamer worker` runs this many worker processes in one group (one "
        "interpreter lock each: several keep a GPU busy); they split the fetch and torch threads",
    )
    stall_s: float = Field(600.0, gt=0, description="a batch in flight longer fails /healthz")
    sink_retry_max_s: float = Field(30.0, gt=0, description="longest pause between sink retries")
    shutdown_grace_s: float = Field(
        15.0,
        gt=0,
        description="SIGTERM/SIGINT stop a worker within this: batches in flight finish for "
        "most of it, then faust stops; what is still unfinished is left for redelivery",
    )


class StackSettings(_Concern):
    env_prefix = "STREAMER_STACK_"
    state_dir: Path = Field(default_factory=lambda: Path.home() / ".streamer")
    milvus: Literal["lite", "server"] = Field(
        "lite",
        description="the embedded stack's Milvus: milvus-lite, or a Milvus 2.3 standalone "
        "server (the milvus-server extra; several times milvus-lite's write rate)",
    )
    kafka_port: int = Field(19092, ge=0, le=65535)
    milvus_port: int = Field(19530, ge=0, le=65535)
    redis_port: int = Field(16379, ge=0, le=65535, description="used when streamer starts Redis")


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    milvus: MilvusSettings = Field(default_factory=MilvusSettings)
    batching: BatchingSettings = Field(default_factory=BatchingSettings)
    fetch: FetchSettings = Field(default_factory=FetchSettings)
    video: VideoSettings = Field(default_factory=VideoSettings)
    search: SearchSettings = Field(default_factory=SearchSettings)
    trainer: TrainerSettings = Field(default_factory=TrainerSettings)
    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)
    stack: StackSettings = Field(default_factory=StackSettings)


_C = TypeVar("_C", bound=_Concern)

_CONCERNS: dict[str, type[_Concern]] = {
    "kafka": KafkaSettings,
    "redis": RedisSettings,
    "milvus": MilvusSettings,
    "batching": BatchingSettings,
    "fetch": FetchSettings,
    "video": VideoSettings,
    "search": SearchSettings,
    "trainer": TrainerSettings,
    "runtime": RuntimeSettings,
    "stack": StackSettings,
}


def _from_env(model: type[_Concern], env: Mapping[str, str]) -> dict[str, str]:
    values = {}
    for name in model.model_fields:
        key = f"{model.env_prefix}{name.upper()}"
        if key in env:
            values[name] = env[key]
    return values


def stack_state_file(state_dir: Path) -> Path:
    return state_dir / "stack.json"


def _stack_addresses(state_dir: Path) -> dict[str, dict[str, str]]:
    """Addresses recorded by ``streamer up``, shaped like the settings concerns."""
    path = stack_state_file(state_dir)
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {
        "kafka": {"bootstrap_servers": state["kafka_bootstrap"]},
        "redis": {"url": state["redis_url"]},
        "milvus": {"uri": state["milvus_uri"]},
    }


def load_settings(env: Mapping[str, str] | None = None, *, use_stack: bool = True) -> Settings:
    """Read every concern from ``env`` (default: the process environment), once."""
    env = os.environ if env is None else env
    raw = {name: _from_env(model, env) for name, model in _CONCERNS.items()}
    stack = _build(StackSettings, raw["stack"])
    if use_stack:
        for concern, values in _stack_addresses(stack.state_dir).items():
            raw[concern] = {**values, **raw[concern]}
    built = {name: _build(_CONCERNS[name], values) for name, values in raw.items()}
    return Settings(**built)


def _build(model: type[_C], values: Mapping[str, str]) -> _C:
    try:
        return model(**values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{model.env_prefix}{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            if err["loc"]
            else f"{model.env_prefix}*: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from exc


def settings_env(settings: Settings) -> dict[str, str]:
    """The ``STREAMER_*`` variables that make another process load exactly ``settings``."""
    env: dict[str, str] = {}
    for name, model in _CONCERNS.items():
        concern = getattr(settings, name)
        for field in model.model_fields:
            value = getattr(concern, field)
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            elif isinstance(value, tuple):
                separator = os.pathsep if field == "media_roots" else ","
                value = separator.join(str(v) for v in value)
            env[f"{model.env_prefix}{field.upper()}"] = str(value)
    return env


def namespaced(settings: Settings, namespace: str, media_roots: tuple[Path, ...]) -> Settings:
    """The same servers, with topics, consumer group, collections and Redis keys of their own."""
    kafka = settings.kafka
    return settings.model_copy(
        update={
            "kafka": kafka.model_copy(
                update={
                    "app_id": f"streamer-{namespace}",
                    "uploads_topic": f"{namespace}.{kafka.uploads_topic}",
                    "deadletter_topic": f"{namespace}.{kafka.deadletter_topic}",
                    "labels_topic": f"{namespace}.{kafka.labels_topic}",
                    "search_requests_topic": f"{namespace}.{kafka.search_requests_topic}",
                    "search_results_topic": f"{namespace}.{kafka.search_results_topic}",
                }
            ),
            "milvus": settings.milvus.model_copy(update={"collection_prefix": f"{namespace}_"}),
            "redis": settings.redis.model_copy(update={"key_prefix": f"streamer-{namespace}"}),
            "fetch": settings.fetch.model_copy(
                update={"media_roots": tuple(p.resolve() for p in media_roots)}
            ),
        }
    )

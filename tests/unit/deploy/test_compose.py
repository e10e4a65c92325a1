"""docker-compose.yml as an engine reads it, and what operating it relies on.

``podman-compose config`` resolves the file (anchors and merges, ``${VAR:-default}``, the gpu
profile) the way ``up`` would; the checks run on its output. No engine starts anything here:
where podman itself is missing, ``--dry-run`` skips podman-compose's check for it.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.deploy.test_kubernetes import RELEASE

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = ROOT / "docker-compose.yml"

#: stop_grace_period of each worker service: the worker's own grace and 10 s to spare
WORKERS = {"worker": "30s", "worker-gpu": "30s", "search": "30s"}
ONE_SHOT = {"topics"}
#: where each stateful service keeps what a recreate must not lose
STATE = {
    "kafka": ["/var/lib/kafka/data"],
    "redis": ["/data"],
    "etcd": ["/etcd"],
    "minio": ["/minio_data"],
    "milvus": ["/var/lib/milvus"],
    "prometheus": ["/prometheus"],
    **{name: ["/var/lib/streamer", "/var/cache/streamer"] for name in WORKERS},
}
#: variables the file reads from the environment; unset, the defaults are checked
OVERRIDES = ("MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD", "WORKER_CPUS", "SEARCH_CPUS")


def _config(**env: str) -> dict[str, Any]:
    if importlib.util.find_spec("podman_compose") is None:
        pytest.skip("podman-compose is not installed: pip install -e '.[dev]'")
    command = [sys.executable, "-m", "podman_compose", "-f", str(COMPOSE), "--profile", "gpu"]
    if shutil.which("podman") is None:
        command.append("--dry-run")  # `config` needs no engine, only its version check does
    command.append("config")
    environ = {
        k: v
        for k, v in os.environ.items()
        if k not in OVERRIDES and not k.startswith("WORKER_GPU_")
    }
    done = subprocess.run(
        command, cwd=ROOT, env={**environ, **env}, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"podman-compose config failed:\n{done.stderr}"
    config = yaml.safe_load(done.stdout)
    assert isinstance(config, dict) and config.get("services"), done.stdout
    return config


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return _config()


@pytest.fixture(scope="module")
def services(config: dict[str, Any]) -> dict[str, Any]:
    return dict(config["services"])


def _mounts(service: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of each volume, short or long syntax."""
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, _, rest = volume.partition(":")
            mounts.append((source, rest.split(":")[0]))
        else:
            mounts.append((str(volume.get("source", "")), str(volume["target"])))
    return mounts


def _named(source: str) -> bool:
    return bool(source) and not source.startswith((".", "/", "~", "$"))


def _ports(service: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(host ip, published, target) of each published port, short or long syntax."""
    ports = []
    for port in service.get("ports", []):
        if isinstance(port, str):
            parts = port.split("/")[0].split(":")
            host_ip = parts[0] if len(parts) == 3 else ""
            ports.append((host_ip, parts[-2] if len(parts) > 1 else "", parts[-1]))
        else:
            ports.append(
                (str(port.get("host_ip", "")), str(port.get("published", "")), str(port["target"]))
            )
    return ports


def _env(service: Mapping[str, Any]) -> dict[str, str]:
    environment = service.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {k: str(v) for k, v in environment.items()}


def _seconds(duration: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration))


def test_compose_parses_pins_images_and_checks_health(services: dict[str, Any]) -> None:
    assert {"kafka", "redis", "milvus", "etcd", "minio", "worker", "worker-gpu", "search",
            "prometheus", "topics"} <= set(services)  # fmt: skip
    for name, service in services.items():
        image = service.get("image", "")
        assert image, f"{name} has no image"
        tag = image.rsplit(":", 1)[-1] if ":" in image.split("/")[-1] else ""
        assert tag and tag != "latest", f"{name}: unpinned image {image}"
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
        if name not in ONE_SHOT:
            assert "healthcheck" in service, f"{name} has no health check"
    gpu = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["capabilities"] == ["gpu"]
    assert services["worker-gpu"]["profiles"] == ["gpu"]
    assert (ROOT / "Dockerfile").is_file()
    assert (ROOT / "deploy" / "prometheus.yml").is_file()


def test_the_streamer_images_are_built_here(services: dict[str, Any]) -> None:
    images = {services[name]["image"] for name in ("topics", "worker", "search")}
    assert images == {f"streamer:{RELEASE}"}
    assert services["worker-gpu"]["image"] == f"streamer:{RELEASE}-gpu"
    built = {
        service["image"]: service["build"]
        for service in services.values()
        if "build" in service and service["image"].startswith("streamer:")
    }
    assert built.keys() == {f"streamer:{RELEASE}", f"streamer:{RELEASE}-gpu"}
    assert built[f"streamer:{RELEASE}"]["target"] == "cpu"
    assert built[f"streamer:{RELEASE}-gpu"]["target"] == "gpu"


def test_every_long_running_service_restarts(services: dict[str, Any]) -> None:
    for name, service in services.items():
        if name in ONE_SHOT:
            assert str(service.get("restart", "no")) in {"no", "on-failure", "False"}, name
        else:
            # a worker whose agent crashed exits by design and must be started again
            assert service.get("restart") in {"unless-stopped", "on-failure", "always"}, name


def test_state_lives_in_declared_named_volumes(config: dict[str, Any]) -> None:
    services, declared = config["services"], set(config.get("volumes") or {})
    used = set()
    for name, targets in STATE.items():
        mounts = dict((target, source) for source, target in _mounts(services[name]))
        for target in targets:
            assert target in mounts, f"{name}: nothing mounted at {target}"
            assert _named(mounts[target]), f"{name}: {target} is not a named volume"
    for service in services.values():
        used |= {source for source, _ in _mounts(service) if _named(source)}
    assert used <= declared, f"volumes used but not declared: {used - declared}"
    assert declared <= used, f"volumes declared but not used: {declared - used}"
    assert _env(services["kafka"])["KAFKA_LOG_DIRS"] == "/var/lib/kafka/data"
    assert "/etcd" in str(services["etcd"]["command"])
    assert services["redis"]["command"][-2:] == ["--appendonly", "yes"]


def test_kafka_listens_for_containers_and_the_host(services: dict[str, Any]) -> None:
    kafka = _env(services["kafka"])
    listeners = dict(
        item.split("://", 1) for item in kafka["KAFKA_ADVERTISED_LISTENERS"].split(",")
    )
    protocols = dict(
        item.split(":") for item in kafka["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    bound = dict(item.split("://", 1) for item in kafka["KAFKA_LISTENERS"].split(","))
    assert set(bound) == set(protocols) == {*listeners, kafka["KAFKA_CONTROLLER_LISTENER_NAMES"]}
    assert listeners[kafka["KAFKA_INTER_BROKER_LISTENER_NAME"]] == "kafka:9092"
    host, port = listeners["EXTERNAL"].rsplit(":", 1)
    assert host in {"127.0.0.1", "localhost"}
    assert ("127.0.0.1", port, bound["EXTERNAL"].rsplit(":", 1)[1]) in _ports(services["kafka"])
    for name in ("topics", *WORKERS):
        assert _env(services[name])["STREAMER_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"


def test_only_the_broker_and_prometheus_are_published_on_loopback(
    services: dict[str, Any],
) -> None:
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"kafka", "prometheus"}
    for name in published:
        assert all(ip == "127.0.0.1" for ip, _, _ in _ports(services[name])), name


def test_replication_is_one_on_one_broker(services: dict[str, Any]) -> None:
    kafka = _env(services["kafka"])
    for key in (
        "KAFKA_DEFAULT_REPLICATION_FACTOR",
        "KAFKA_MIN_INSYNC_REPLICAS",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert kafka[key] == "1", key
    assert kafka["KAFKA_CONTROLLER_QUORUM_VOTERS"].count("@") == 1
    for name in ("topics", *WORKERS):
        env = _env(services[name])
        assert env["STREAMER_KAFKA_REPLICATION_FACTOR"] == "1", name
        assert env["STREAMER_KAFKA_MIN_INSYNC_REPLICAS"] == "1", name


def test_dependencies_wait_for_health(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for dependency, spec in service.get("depends_on", {}).items():
            condition = spec["condition"]
            assert condition in {"service_healthy", "service_completed_successfully"}, name
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits on {dependency}"
            else:
                assert dependency in ONE_SHOT
    wanted = {
        "topics": "service_completed_successfully",
        "kafka": "service_healthy",
        "redis": "service_healthy",
        "milvus": "service_healthy",
    }
    for name in WORKERS:
        conditions = {k: v["condition"] for k, v in services[name]["depends_on"].items()}
        assert conditions == wanted, name
    assert services["topics"]["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    assert set(services["milvus"]["depends_on"]) == {"etcd", "minio"}


def test_workers_stop_gracefully_within_limits_on_a_read_only_root(
    services: dict[str, Any],
) -> None:
    for name, grace in WORKERS.items():
        service = services[name]
        assert _seconds(service["stop_grace_period"]) == _seconds(grace), name
        own = float(service["environment"]["STREAMER_SHUTDOWN_GRACE_S"])
        assert _seconds(grace) >= own + 10, name  # the worker ends first, with its last line
        limits = service["deploy"]["resources"]["limits"]
        assert float(limits["cpus"]) >= 1, name
        assert re.fullmatch(r"\d+[kmg]b?", str(limits["memory"]).lower()), name
        assert service["read_only"] is True, name
        assert any(t.split(":")[0] == "/tmp" for t in service["tmpfs"]), name
        assert service["labels"]["io.streamer.component"] in {"ingest", "search"}, name
        assert "9400" in " ".join(service["healthcheck"]["test"]), name
        env = _env(service)
        assert env["STREAMER_METRICS_PORT"] == "9400"
        assert env["STREAMER_STACK_STATE_DIR"] == "/var/lib/streamer"
        assert env["STREAMER_BATCH_CALIBRATION_CACHE"].startswith("/var/cache/streamer/")
    assert services["topics"]["read_only"] is True


def test_milvus_3_0_with_its_etcd_and_minio(services: dict[str, Any]) -> None:
    assert services["milvus"]["image"] == "milvusdb/milvus:v3.0.1"
    assert services["etcd"]["image"] == "quay.io/coreos/etcd:v3.5.25"
    assert services["minio"]["image"] == "minio/minio:RELEASE.2024-05-28T17-19-04Z"
    minio, milvus = _env(services["minio"]), _env(services["milvus"])
    assert milvus["MINIO_ADDRESS"] == "minio:9000"
    assert milvus["ETCD_ENDPOINTS"] == "etcd:2379"
    assert milvus["MINIO_ACCESS_KEY_ID"] == minio["MINIO_ROOT_USER"]
    assert milvus["MINIO_SECRET_ACCESS_KEY"] == minio["MINIO_ROOT_PASSWORD"]


def test_minio_credentials_come_from_the_environment() -> None:
    raw = COMPOSE.read_text()
    for line in raw.splitlines():
        code = line.split("#", 1)[0]
        if "minioadmin" in code:
            assert re.search(r"\$\{MINIO_ROOT_(USER|PASSWORD):-minioadmin\}", code), line
    config = _config(MINIO_ROOT_USER="ops", MINIO_ROOT_PASSWORD="s3cret", WORKER_CPUS="3")
    services = config["services"]
    assert _env(services["minio"])["MINIO_ROOT_PASSWORD"] == "s3cret"
    assert _env(services["milvus"])["MINIO_SECRET_ACCESS_KEY"] == "s3cret"
    assert float(services["worker"]["deploy"]["resources"]["limits"]["cpus"]) == 3


def test_prometheus_scrapes_the_worker_services(services: dict[str, Any]) -> None:
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    (job,) = prometheus["scrape_configs"]
    (sd,) = job["dns_sd_configs"]
    assert set(sd["names"]) == set(WORKERS)
    assert set(sd["names"]) <= set(services)
    assert sd["port"] == 9400
    mounts = _mounts(services["prometheus"])
    assert ("./deploy/prometheus.yml", "/etc/prometheus/prometheus.yml") in [
        (source.replace(str(ROOT), "."), target) for source, target in mounts
    ]

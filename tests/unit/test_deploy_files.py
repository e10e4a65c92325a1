"""docker-compose.yml and k8s/ parse, and pin every image (no engine runs here to start them)."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_compose_parses_and_pins_images() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"kafka", "redis", "milvus", "etcd", "minio", "worker"} <= set(services)
    for name, service in services.items():
        image = service.get("image", "")
        assert image, f"{name} has no image"
        assert ":" in image and not image.endswith(":latest"), f"{name}: unpinned {image}"
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"


def test_k8s_manifests_parse() -> None:
    documents = [
        doc
        for path in sorted((ROOT / "k8s").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]
    assert {d["kind"] for d in documents} >= {"Deployment", "ConfigMap"}
    for doc in documents:
        assert doc["apiVersion"] and doc["metadata"]["name"]

"""docker-compose.yml and k8s/ are valid and pinned (no engine runs here to start them)."""

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
MANIFESTS = sorted((ROOT / "k8s").glob("*.yaml"))


def test_compose_parses_pins_images_and_checks_health() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"kafka", "redis", "milvus", "etcd", "minio", "worker", "worker-gpu", "search",
            "prometheus", "topics"} <= set(services)  # fmt: skip
    for name, service in services.items():
        image = service.get("image", "")
        assert image, f"{name} has no image"
        tag = image.rsplit(":", 1)[-1] if ":" in image.split("/")[-1] else ""
        assert tag and tag != "latest", f"{name}: unpinned image {image}"
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
        if name != "topics":
            assert "healthcheck" in service, f"{name} has no health check"
    gpu = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["capabilities"] == ["gpu"]
    assert (ROOT / "Dockerfile").is_file()
    assert (ROOT / "deploy" / "prometheus.yml").is_file()


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_validates_against_the_kubernetes_schemas(path: Path) -> None:
    for document in yaml.safe_load_all(path.read_text()):
        if not document:
            continue
        kubernetes_validate.validate(document, "1.31.0", strict=True)
        image_specs = (
            document.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
        )
        for container in image_specs:
            assert not container["image"].endswith(":latest")
            assert ":" in container["image"]


def test_the_shape_of_production() -> None:
    kinds = {
        (doc["kind"], doc["metadata"]["name"])
        for path in MANIFESTS
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    }
    assert {
        ("Deployment", "streamer-ingest"),
        ("Deployment", "streamer-search"),
        ("ConfigMap", "streamer-settings"),
        ("Secret", "streamer-secrets"),
        ("HorizontalPodAutoscaler", "streamer-ingest"),
        ("PodDisruptionBudget", "streamer-ingest"),
        ("Job", "streamer-topics"),
    } <= kinds

"""k8s/ as a platform engineer applies it (no cluster runs here: this is what CI can check).

Built-in kinds validate strictly against the Kubernetes 1.31 schemas; custom resources, which
those schemas cannot know, are checked for their kind and required fields (the manifests were
checked once by hand against the CRDs of Strimzi 1.2.0, Milvus Operator 1.3.8, KEDA 2.20 and
Prometheus Operator 0.93). Every reference resolves to an object defined under k8s/ or to a
prerequisite that docs/kubernetes.md installs, every pod passes Pod Security "restricted", and
the addresses in the ConfigMap are those of the services the prerequisites create.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from streamer.config.settings import KafkaSettings, Settings, load_settings

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "k8s"
DOCS = ROOT / "docs" / "kubernetes.md"
KUBERNETES_VERSION = "1.31.0"

NAMESPACE = "streamer"
IMAGE = "ghcr.io/streamer/streamer"
#: the manifests run the release this checkout builds
RELEASE = tomllib.loads((Path(__file__).parents[3] / "pyproject.toml").read_text())["project"][
    "version"
]
IMAGE_UID = 10001
WRITABLE_PATHS = ("/var/lib/streamer", "/var/cache/streamer", "/tmp")
METRICS_PORT = 9400
MILVUS_VERSION = "v3.0.1"

# (apiVersion, kind) of the custom resources, with the fields their CRDs require (dotted paths)
CUSTOM_RESOURCES: dict[tuple[str, str], tuple[str, ...]] = {
    ("kafka.strimzi.io/v1", "Kafka"): ("spec.kafka.listeners",),
    ("kafka.strimzi.io/v1", "KafkaNodePool"): ("spec.replicas", "spec.roles", "spec.storage"),
    ("milvus.io/v1beta1", "Milvus"): ("spec.components.image",),
    ("keda.sh/v1alpha1", "ScaledObject"): ("spec.scaleTargetRef.name", "spec.triggers"),
    ("monitoring.coreos.com/v1", "PodMonitor"): ("spec.selector", "spec.podMetricsEndpoints"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"): ("spec.selector", "spec.endpoints"),
}
# what installs each custom resource's operator, as docs/kubernetes.md names it
OPERATORS = {
    "kafka.strimzi.io": "strimzi-kafka-operator",
    "milvus.io": "milvus-operator",
    "keda.sh": "kedacore/keda",
    "monitoring.coreos.com": "kube-prometheus-stack",
}
# objects the manifests refer to without defining them: (kind, namespace, name), each created
# as docs/kubernetes.md says
PREREQUISITES = frozenset(
    {
        ("StorageClass", None, "nfs-client"),
        ("Secret", "streamer", "streamer-s3"),
        ("Secret", "streamer-data", "redis-auth"),
    }
)
CLUSTER_SCOPED = frozenset({"Namespace", "StorageClass", "PersistentVolume", "ClusterRole"})
WORKLOADS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "Job"})
# volume types Pod Security "restricted" allows
RESTRICTED_VOLUMES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)


@dataclass(frozen=True)
class Doc:
    path: Path
    body: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.body["kind"])

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    @property
    def namespace(self) -> str | None:
        return self.body["metadata"].get("namespace")

    @property
    def key(self) -> tuple[str, str | None, str]:
        return (self.kind, self.namespace, self.name)

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}: {self.kind} {self.name}"


def _manifest_files() -> list[Path]:
    """Every manifest under k8s/ (Helm values files are not manifests)."""
    return sorted(p for p in K8S.rglob("*.yaml") if not p.name.endswith("-values.yaml"))


@functools.cache
def _docs() -> tuple[Doc, ...]:
    return tuple(
        Doc(path, body)
        for path in _manifest_files()
        for body in yaml.safe_load_all(path.read_text())
        if body
    )


def _defined() -> set[tuple[str, str | None, str]]:
    return {doc.key for doc in _docs()}


def _one(kind: str, name: str | None = None) -> Doc:
    found = [d for d in _docs() if d.kind == kind and (name is None or d.name == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def _dig(body: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(body, dict) or part not in body:
            return None
        body = body[part]
    return body


def _pods() -> Iterator[tuple[Doc, dict[str, Any], dict[str, Any]]]:
    """(workload, pod template labels, pod spec) of every workload."""
    for doc in _docs():
        if doc.kind in WORKLOADS:
            template = doc.body["spec"]["template"]
            yield doc, template.get("metadata", {}).get("labels", {}), template["spec"]


def _containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def _is_streamer(container: dict[str, Any]) -> bool:
    return str(container["image"]).startswith(f"{IMAGE}:")


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _settings_data() -> dict[str, str]:
    return dict(_one("ConfigMap", "streamer-settings").body["data"])


@pytest.mark.parametrize("path", _manifest_files(), ids=lambda p: str(p.relative_to(K8S)))
def test_builtin_kinds_validate_strictly(path: Path) -> None:
    for doc in (d for d in _docs() if d.path == path):
        if (doc.body["apiVersion"], doc.kind) in CUSTOM_RESOURCES:
            continue
        # an unknown kind (a custom resource missing from CUSTOM_RESOURCES) raises here too
        kubernetes_validate.validate(doc.body, KUBERNETES_VERSION, strict=True)


def test_custom_resources_have_their_required_fields_and_a_documented_operator() -> None:
    docs = DOCS.read_text()
    custom = [d for d in _docs() if (d.body["apiVersion"], d.kind) in CUSTOM_RESOURCES]
    assert {(d.body["apiVersion"], d.kind) for d in custom} == set(CUSTOM_RESOURCES)
    for doc in custom:
        assert doc.namespace, f"{doc.where}: no namespace"
        assert set(doc.body) <= {"apiVersion", "kind", "metadata", "spec"}, doc.where
        for field in CUSTOM_RESOURCES[(doc.body["apiVersion"], doc.kind)]:
            assert _dig(doc.body, field) not in (None, "", [], {}), f"{doc.where}: no {field}"
        group = doc.body["apiVersion"].split("/")[0]
        assert OPERATORS[group] in docs, f"docs/kubernetes.md does not install {group}"


def test_namespaced_objects_live_in_defined_namespaces_once() -> None:
    keys = [doc.key for doc in _docs()]
    assert len(keys) == len(set(keys)), "an object is defined twice"
    namespaces = {d.name for d in _docs() if d.kind == "Namespace"}
    assert {NAMESPACE, "streamer-data"} <= namespaces
    for doc in _docs():
        if doc.kind not in CLUSTER_SCOPED:
            assert doc.namespace in namespaces, f"{doc.where}: namespace {doc.namespace!r}"
    app = _one("Namespace", NAMESPACE).body["metadata"]["labels"]
    assert app["pod-security.kubernetes.io/enforce"] == "restricted"


def _pod_references(doc: Doc, spec: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(kind, name) of every object a pod spec refers to."""
    if "serviceAccountName" in spec:
        yield "ServiceAccount", spec["serviceAccountName"]
    for container in _containers(spec):
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                yield "ConfigMap", source["configMapRef"]["name"]
            if "secretRef" in source:
                yield "Secret", source["secretRef"]["name"]
        for variable in container.get("env", []):
            source = variable.get("valueFrom", {})
            if "configMapKeyRef" in source:
                yield "ConfigMap", source["configMapKeyRef"]["name"]
            if "secretKeyRef" in source:
                yield "Secret", source["secretKeyRef"]["name"]
    for volume in spec.get("volumes", []):
        if "configMap" in volume:
            yield "ConfigMap", volume["configMap"]["name"]
        if "secret" in volume:
            yield "Secret", volume["secret"]["secretName"]
        if "persistentVolumeClaim" in volume:
            yield "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"]
    if doc.kind == "StatefulSet":
        yield "Service", doc.body["spec"]["serviceName"]


def _references(doc: Doc) -> Iterator[tuple[str, str | None, str]]:
    """(kind, namespace, name) of every object ``doc`` refers to by name."""
    spec = doc.body.get("spec", {})
    if doc.kind in WORKLOADS:
        for kind, name in _pod_references(doc, spec["template"]["spec"]):
            yield kind, doc.namespace, name
    if doc.kind in {"HorizontalPodAutoscaler", "ScaledObject"}:
        target = spec["scaleTargetRef"]
        yield target.get("kind", "Deployment"), doc.namespace, target["name"]
    if doc.kind == "PersistentVolumeClaim" and "storageClassName" in spec:
        yield "StorageClass", None, spec["storageClassName"]
    if doc.kind == "KafkaNodePool":
        yield "Kafka", doc.namespace, doc.body["metadata"]["labels"]["strimzi.io/cluster"]


def _ports(pod: dict[str, Any]) -> set[str | int]:
    declared = [port for c in pod["containers"] for port in c.get("ports", [])]
    return {p["name"] for p in declared if "name" in p} | {p["containerPort"] for p in declared}


def _selector_problems(doc: Doc) -> Iterator[str]:
    """A selector that selects nothing, or objects without the port it names."""
    spec = doc.body.get("spec", {})
    pods = [(d, labels, pod) for d, labels, pod in _pods() if d.namespace == doc.namespace]
    if doc.kind in WORKLOADS - {"Job"}:
        labels = spec["template"]["metadata"]["labels"]
        if not _selects(spec["selector"]["matchLabels"], labels):
            yield f"{doc.where}: its selector does not select its own pods"
    if doc.kind == "PodDisruptionBudget":
        selector = spec["selector"]["matchLabels"]
        if not any(_selects(selector, labels) for _, labels, _ in pods):
            yield f"{doc.where}: selects no pods"
    if doc.kind == "Service":
        selected = [pod for _, labels, pod in pods if _selects(spec["selector"], labels)]
        if not selected:
            yield f"{doc.where}: selects no pods"
        for port in spec["ports"]:
            if any(port["targetPort"] not in _ports(pod) for pod in selected):
                yield f"{doc.where}: a selected pod has no port {port['targetPort']}"
    if doc.kind == "ServiceMonitor":
        services = [
            d
            for d in _docs()
            if d.kind == "Service"
            and d.namespace == doc.namespace
            and _selects(spec["selector"]["matchLabels"], d.body["metadata"].get("labels", {}))
        ]
        ports = {p.get("name") for service in services for p in service.body["spec"]["ports"]}
        if not services or not {e["port"] for e in spec["endpoints"]} <= ports:
            yield f"{doc.where}: selects no Service with its port"


def _reference_problems() -> Iterator[str]:
    known = _defined() | PREREQUISITES
    for doc in _docs():
        for kind, namespace, name in _references(doc):
            if (kind, namespace, name) not in known:
                yield f"{doc.where}: {kind} {namespace}/{name} is not defined, nor a prerequisite"
        yield from _selector_problems(doc)


def test_every_reference_resolves() -> None:
    problems = list(_reference_problems())
    assert not problems, "\n".join(problems)


def test_every_prerequisite_is_documented() -> None:
    docs = DOCS.read_text()
    for kind, _, name in PREREQUISITES:
        assert name in docs, f"docs/kubernetes.md does not say how to create {kind} {name}"
    for path in [*_manifest_files(), K8S / "prerequisites" / "prometheus-adapter-values.yaml"]:
        assert str(path.relative_to(ROOT)) in docs, f"docs/kubernetes.md never applies {path}"


def _restricted_problems(where: str, spec: dict[str, Any]) -> Iterator[str]:
    """Violations of Pod Security "restricted" (and of a read-only root filesystem)."""
    pod = spec.get("securityContext", {})
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            yield f"{where}: {field}"
    for volume in spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            yield f"{where}: volume {volume['name']} is {kinds}"
    if pod.get("sysctls"):
        yield f"{where}: sysctls"
    for container in _containers(spec):
        context = container.get("securityContext", {})
        name = f"{where} container {container['name']}"
        if context.get("privileged"):
            yield f"{name}: privileged"
        if context.get("allowPrivilegeEscalation") is not False:
            yield f"{name}: allowPrivilegeEscalation is not false"
        capabilities = context.get("capabilities", {})
        if "ALL" not in capabilities.get("drop", []):
            yield f"{name}: does not drop ALL capabilities"
        if not set(capabilities.get("add", [])) <= {"NET_BIND_SERVICE"}:
            yield f"{name}: adds capabilities"
        if context.get("runAsNonRoot", pod.get("runAsNonRoot")) is not True:
            yield f"{name}: runAsNonRoot is not true"
        if context.get("runAsUser", pod.get("runAsUser")) == 0:
            yield f"{name}: runs as root"
        seccomp = context.get("seccompProfile", pod.get("seccompProfile", {}))
        if seccomp.get("type") not in {"RuntimeDefault", "Localhost"}:
            yield f"{name}: seccompProfile is not RuntimeDefault"
        if context.get("procMount", "Default") != "Default":
            yield f"{name}: procMount"
        if any("hostPort" in port for port in container.get("ports", [])):
            yield f"{name}: hostPort"
        if context.get("readOnlyRootFilesystem") is not True:
            yield f"{name}: the root filesystem is writable"


def test_every_pod_passes_pod_security_restricted() -> None:
    problems = [p for doc, _, spec in _pods() for p in _restricted_problems(doc.where, spec)]
    assert not problems, "\n".join(problems)


def _streamer_pods() -> list[tuple[Doc, dict[str, Any]]]:
    pods = [(doc, spec) for doc, _, spec in _pods() if any(map(_is_streamer, spec["containers"]))]
    names = {doc.name for doc, _ in pods}
    assert names == {"streamer-ingest", "streamer-search", "streamer-topics"}
    return pods


def test_streamer_pods_run_as_the_image_user_with_writable_emptydirs() -> None:
    for doc, spec in _streamer_pods():
        pod = spec["securityContext"]
        assert (pod["runAsUser"], pod["runAsGroup"], pod["fsGroup"]) == (IMAGE_UID,) * 3, doc.where
        assert spec["serviceAccountName"] == "streamer", doc.where
        assert spec["automountServiceAccountToken"] is False, doc.where
        empty_dirs = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        for container in spec["containers"]:
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            for path in WRITABLE_PATHS:
                assert mounts.get(path) in empty_dirs, f"{doc.where}: {path} is not an emptyDir"
    account = _one("ServiceAccount", "streamer").body
    assert account["automountServiceAccountToken"] is False
    assert _settings_data()["STREAMER_STACK_STATE_DIR"] == "/var/lib/streamer"


def _port(container: dict[str, Any], port: str | int) -> int:
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in container["ports"] if p.get("name") == port)


@pytest.mark.parametrize(("name", "grace"), [("streamer-ingest", 30), ("streamer-search", 30)])
def test_workers_probe_a_slow_start_and_have_cpu_limits(name: str, grace: int) -> None:
    spec = _one("Deployment", name).body["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] == grace
    settings = _one("ConfigMap", "streamer-settings").body["data"]
    # the worker ends first, with its last line, before the kubelet kills it
    assert grace >= float(settings["STREAMER_SHUTDOWN_GRACE_S"]) + 10
    (container,) = spec["containers"]
    paths = {"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"}
    for probe, path in paths.items():
        check = container[probe]["httpGet"]
        assert check["path"] == path, f"{name} {probe}"
        assert _port(container, check["port"]) == METRICS_PORT, f"{name} {probe}"
    startup = container["startupProbe"]
    # models load before the health server starts: at least 5 minutes before liveness counts
    budget = startup.get("periodSeconds", 10) * startup.get("failureThreshold", 3)
    assert budget >= 300, f"{name}: the startup probe gives up after {budget} s"
    assert container["livenessProbe"].get("initialDelaySeconds", 0) <= 60
    resources = container["resources"]
    # the worker sizes its thread pools from the cgroup CPU quota, which the CPU limit sets
    assert resources["limits"]["cpu"] == resources["requests"]["cpu"], name
    assert "memory" in resources["limits"], name


def test_images_are_pinned_to_one_release() -> None:
    tags = {}
    for doc, _, spec in _pods():
        for container in _containers(spec):
            image = container["image"]
            tag = image.rpartition(":")[2]
            assert "/" not in tag and tag and tag != "latest", f"{doc.where}: unpinned {image}"
            if _is_streamer(container):
                tags[doc.name] = tag
    assert {tag.removesuffix("-gpu") for tag in tags.values()} == {RELEASE}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["version"] == RELEASE, "the manifests run another release than pyproject's"
    assert tags["streamer-ingest"] == f"{RELEASE}-gpu"
    assert tags["streamer-search"] == tags["streamer-topics"] == RELEASE
    ingest = _one("Deployment", "streamer-ingest").body["spec"]["template"]["spec"]
    assert ingest["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert ingest["nodeSelector"] == {"nvidia.com/gpu.present": "true"}


def test_the_configmap_loads_as_settings() -> None:
    data = _settings_data()
    concerns = [field.annotation for field in Settings.model_fields.values()]
    known = {f"{c.env_prefix}{name.upper()}" for c in concerns for name in c.model_fields}
    unknown = {key for key in data if key.startswith("STREAMER_")} - known
    assert not unknown, f"the ConfigMap sets variables no setting reads: {unknown}"
    settings = load_settings(data, use_stack=False)
    assert (settings.kafka.replication_factor, settings.kafka.min_insync_replicas) == (3, 2)
    assert data["HF_HUB_OFFLINE"] == "1"


def _kafka() -> tuple[Doc, int]:
    """The Strimzi Kafka CR and the port of its plaintext listener."""
    kafka = _one("Kafka")
    (listener,) = [x for x in kafka.body["spec"]["kafka"]["listeners"] if x["tls"] is False]
    return kafka, listener["port"]


def test_bootstrap_servers_name_the_strimzi_cluster() -> None:
    kafka, port = _kafka()
    bootstrap = f"{kafka.name}-kafka-bootstrap.{kafka.namespace}:{port}"
    assert _settings_data()["STREAMER_KAFKA_BOOTSTRAP_SERVERS"] == bootstrap
    (trigger,) = _one("ScaledObject").body["spec"]["triggers"]
    assert trigger["metadata"]["bootstrapServers"] == bootstrap


def test_kafka_is_kraft_with_three_brokers_and_the_configmaps_replication() -> None:
    kafka, _ = _kafka()
    pools = [
        d
        for d in _docs()
        if d.kind == "KafkaNodePool"
        and d.body["metadata"]["labels"]["strimzi.io/cluster"] == kafka.name
    ]
    brokers = sum(p.body["spec"]["replicas"] for p in pools if "broker" in p.body["spec"]["roles"])
    controllers = [p for p in pools if "controller" in p.body["spec"]["roles"]]
    assert brokers == 3 and controllers
    config = kafka.body["spec"]["kafka"]["config"]
    data = _settings_data()
    assert config["min.insync.replicas"] == int(data["STREAMER_KAFKA_MIN_INSYNC_REPLICAS"]) == 2
    assert config["default.replication.factor"] == int(data["STREAMER_KAFKA_REPLICATION_FACTOR"])
    assert config["default.replication.factor"] == 3


def test_redis_and_milvus_addresses_name_their_services() -> None:
    data = _settings_data()
    redis = urlsplit(data["STREAMER_REDIS_URL"])
    service, namespace = str(redis.hostname).split(".")
    ports = {p["port"] for p in _one("Service", service).body["spec"]["ports"]}
    assert _one("Service", service).namespace == namespace and redis.port in ports
    assert _one("StatefulSet", service).body["spec"]["volumeClaimTemplates"]
    milvus = _one("Milvus")
    uri = urlsplit(data["STREAMER_MILVUS_URI"])
    assert (uri.hostname, uri.port) == (f"{milvus.name}-milvus.{milvus.namespace}", 19530)
    assert milvus.body["spec"]["components"]["image"].endswith(f":{MILVUS_VERSION}")


def test_lag_autoscaling_is_one_or_the_other() -> None:
    kafka = KafkaSettings()
    hpa = _one("HorizontalPodAutoscaler", "streamer-ingest")
    keda = _one("ScaledObject", "streamer-ingest")
    assert hpa.path != keda.path
    for doc in (hpa, keda):
        assert doc.path.parent != K8S, f"{doc.where}: `kubectl apply -f k8s/` would apply it"
        assert "never both" in doc.path.read_text(), f"{doc.where}: say to apply one, not both"
        assert doc.body["spec"]["scaleTargetRef"]["name"] == "streamer-ingest"
    (metric,) = hpa.body["spec"]["metrics"]
    selector = metric["external"]["metric"]["selector"]["matchLabels"]
    assert selector == {"consumergroup": kafka.app_id, "topic": kafka.uploads_topic}
    (trigger,) = keda.body["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    assert trigger["metadata"]["consumerGroup"] == kafka.app_id
    assert trigger["metadata"]["topic"] == kafka.uploads_topic
    assert trigger["metadata"]["lagThreshold"] == metric["external"]["target"]["averageValue"]
    partitions = int(_settings_data()["STREAMER_KAFKA_PARTITIONS"])
    # every consumer of the most pods has a partition: pods times processes a pod
    ingest = _one("Deployment", "streamer-ingest").body["spec"]["template"]["spec"]
    (container,) = ingest["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    consumers = int(env.get("STREAMER_WORKER_PROCESSES") or 1)
    most = hpa.body["spec"]["maxReplicas"]
    assert most == keda.body["spec"]["maxReplicaCount"]
    assert most * consumers <= partitions


def test_prometheus_adapter_serves_the_lag_metric_from_the_kafka_exporter() -> None:
    hpa = _one("HorizontalPodAutoscaler", "streamer-ingest")
    metric = hpa.body["spec"]["metrics"][0]["external"]["metric"]["name"]
    values = yaml.safe_load((K8S / "prerequisites" / "prometheus-adapter-values.yaml").read_text())
    (rule,) = [r for r in values["rules"]["external"] if r["name"]["as"] == metric]
    assert metric in rule["seriesQuery"]
    kafka, _ = _kafka()
    assert "kafkaExporter" in kafka.body["spec"]
    if kafka.namespace != hpa.namespace:
        assert rule["resources"]["namespaced"] is False
    monitor = _one("PodMonitor")
    assert monitor.namespace == kafka.namespace
    exporter = f"{kafka.name}-kafka-exporter"
    assert monitor.body["spec"]["selector"]["matchLabels"] == {"strimzi.io/name": exporter}


def test_the_topics_job_can_be_applied_again() -> None:
    job = _one("Job", "streamer-topics").body["spec"]
    assert job["ttlSecondsAfterFinished"] > 0
    assert job["template"]["spec"]["restartPolicy"] in {"Never", "OnFailure"}


def test_the_media_claim_is_shared_and_mounted_read_only() -> None:
    claim = _one("PersistentVolumeClaim", "streamer-media").body["spec"]
    assert set(claim["accessModes"]) & {"ReadWriteMany", "ReadOnlyMany"}
    assert claim["storageClassName"]
    ingest = _one("Deployment", "streamer-ingest").body["spec"]["template"]["spec"]
    (mount,) = [m for m in ingest["containers"][0]["volumeMounts"] if m["mountPath"] == "/media"]
    assert mount["readOnly"] is True


def test_the_shape_of_production() -> None:
    assert {
        ("Namespace", None, "streamer"),
        ("ServiceAccount", "streamer", "streamer"),
        ("ConfigMap", "streamer", "streamer-settings"),
        ("Secret", "streamer", "streamer-secrets"),
        ("PersistentVolumeClaim", "streamer", "streamer-media"),
        ("Deployment", "streamer", "streamer-ingest"),
        ("Deployment", "streamer", "streamer-search"),
        ("PodDisruptionBudget", "streamer", "streamer-ingest"),
        ("PodDisruptionBudget", "streamer", "streamer-search"),
        ("HorizontalPodAutoscaler", "streamer", "streamer-ingest"),
        ("HorizontalPodAutoscaler", "streamer", "streamer-search"),
        ("ScaledObject", "streamer", "streamer-ingest"),
        ("Service", "streamer", "streamer-metrics"),
        ("Job", "streamer", "streamer-topics"),
        ("Kafka", "streamer-data", "streamer"),
        ("StatefulSet", "streamer-data", "redis"),
        ("Milvus", "streamer-data", "streamer"),
    } <= _defined()

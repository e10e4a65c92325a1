import time
import urllib.error
import urllib.request

from streamer.core.metrics import Health, Metrics, WorkerEndpoints, serve
from streamer.stack.processes import free_port


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_endpoints() -> None:
    metrics, health = Metrics(), Health(stall_s=0.2)
    port = free_port()
    server = serve(port, WorkerEndpoints(metrics, health))
    assert server is not None
    base = f"http://127.0.0.1:{port}"
    try:
        assert get(f"{base}/readyz")[0] == 503
        health.ready = True
        assert get(f"{base}/readyz")[0] == 200
        metrics.batch("ingest", 8, {"embedded": 8, "skipped": 0})
        metrics.stages({"embed": 0.25})
        metrics.serving.labels("text", "minilm-l6@1").set(1)
        status, body = get(f"{base}/metrics")
        assert status == 200
        assert 'streamer_items_total{outcome="embedded"} 8.0' in body
        assert 'streamer_stage_seconds_count{stage="embed"} 1.0' in body
        assert 'streamer_serving_version{topology="text",version="minilm-l6@1"} 1.0' in body
        assert get(f"{base}/healthz")[0] == 200
        token = health.started()  # a batch that never finishes
        time.sleep(0.3)
        status, body = get(f"{base}/healthz")
        assert status == 503 and "in flight" in body
        health.finished(token)
        assert get(f"{base}/healthz")[0] == 200
        assert (
            serve(port, WorkerEndpoints(metrics, health)) is None
        )  # the port is taken: a warning, no crash
    finally:
        server.shutdown()
        server.server_close()

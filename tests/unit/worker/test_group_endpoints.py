"""The group's endpoints gather its processes' own: two real endpoint servers (as each
process of a group serves) behind one."""

from __future__ import annotations

import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streamer.core.metrics import Health, Metrics, WorkerEndpoints, serve
from streamer.stack.processes import free_port
from streamer.worker.group_endpoints import GroupEndpoints


class Process:
    def __init__(self) -> None:
        self.metrics = Metrics()
        self.health = Health(stall_s=0.2)
        self.port = free_port()
        server = serve(self.port, WorkerEndpoints(self.metrics, self.health))
        assert server is not None
        self.server: ThreadingHTTPServer | None = server
        self.running = True

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    made = [Process(), Process()]
    try:
        yield made
    finally:
        for p in made:
            p.stop()


def endpoints(processes: list[Process]) -> GroupEndpoints:
    return GroupEndpoints(
        [p.port for p in processes], lambda i: processes[i].running, timeout_s=1.0
    )


def samples(body: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def test_metrics_of_every_process_in_one_exposition(processes: list[Process]) -> None:
    processes[0].metrics.batch("ingest", 8, {"upserted": 8})
    processes[1].metrics.batch("ingest", 4, {"upserted": 3, "dead_lettered": 1})
    processes[1].metrics.stages({"embed": 0.25})
    group = endpoints(processes)
    got = samples(group.exposition())
    assert got[("streamer_items_total", (("outcome", "upserted"), ("process", "0")))] == 8
    assert got[("streamer_items_total", (("outcome", "upserted"), ("process", "1")))] == 3
    assert got[("streamer_items_total", (("outcome", "dead_lettered"), ("process", "1")))] == 1
    assert got[("streamer_stage_seconds_count", (("process", "1"), ("stage", "embed")))] == 1
    assert got[("streamer_worker_process_up", (("process", "0"),))] == 1
    assert got[("streamer_worker_process_up", (("process", "1"),))] == 1
    # a process that does not answer is down, the others still gathered
    processes[0].stop()
    got = samples(group.exposition())
    assert got[("streamer_worker_process_up", (("process", "0"),))] == 0
    assert ("streamer_items_total", (("outcome", "upserted"), ("process", "0"))) not in got
    assert got[("streamer_items_total", (("outcome", "upserted"), ("process", "1")))] == 3
    group.close()


def test_ready_once_every_process_is(processes: list[Process]) -> None:
    group = endpoints(processes)
    assert group.ready() == (False, "process 0: starting")
    processes[0].health.ready = True
    assert group.ready() == (False, "process 1: starting")
    processes[1].health.ready = True
    assert group.ready() == (True, "ready: 2 processes")
    group.close()


def test_live_while_every_process_runs_and_makes_progress(processes: list[Process]) -> None:
    group = endpoints(processes)
    assert group.live() == (True, "ok: 2 processes")
    token = processes[1].health.started()  # a batch that never finishes
    time.sleep(0.3)
    ok, why = group.live()
    assert not ok and why.startswith("process 1: a batch has been in flight")
    processes[1].health.finished(token)
    processes[0].running = False
    assert group.live() == (False, "process 0 is not running")
    processes[0].running = True
    processes[0].stop()  # running, but its endpoints do not answer
    ok, why = group.live()
    assert not ok and why.startswith("process 0: not answering")
    group.close()


def test_served_on_the_group_port(processes: list[Process]) -> None:
    from tests.unit.core.test_metrics import get

    for p in processes:
        p.health.ready = True
    group = endpoints(processes)
    port = free_port()
    server = serve(port, group)
    assert server is not None
    try:
        assert get(f"http://127.0.0.1:{port}/readyz") == (200, "ready: 2 processes")
        assert get(f"http://127.0.0.1:{port}/healthz") == (200, "ok: 2 processes")
        status, body = get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200 and 'streamer_worker_process_up{process="1"} 1.0' in body
    finally:
        server.shutdown()
        server.server_close()
        group.close()

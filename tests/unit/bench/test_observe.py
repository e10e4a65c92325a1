"""The GPU busy sampler, against a stand-in nvidia-smi (none on a CPU machine), and the reading
of a worker's own metrics (the registry a worker serves, and its real HTTP endpoint)."""

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from streamer.bench.observe import GpuBusy, StageTimes, WorkerMetrics, group_children
from streamer.core.errors import StreamerError
from streamer.core.metrics import Health, Metrics, WorkerEndpoints, serve
from streamer.stack.processes import free_port


def test_gpu_busy_is_the_mean_of_nvidia_smis_samples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    smi = tmp_path / "nvidia-smi"
    smi.write_text(
        '#!/bin/sh\necho "$@" > "$(dirname "$0")/args"\nprintf "40\\n60\\n80\\n"\nexec sleep 30\n'
    )
    smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    with GpuBusy(every_ms=50) as busy:
        deadline = time.monotonic() + 10
        while len(busy.samples) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert busy.pct == 60.0
    args = (tmp_path / "args").read_text()
    assert "utilization.gpu" in args and "--loop-ms=" in args and "--id=0" in args


def test_without_nvidia_smi_nothing_is_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with GpuBusy() as busy:
        pass
    assert busy.pct is None


def test_stage_times_are_what_a_worker_spent_between_two_readings() -> None:
    metrics = Metrics()
    metrics.stages({"fetch": 0.5, "embed": 2.0}, {"embed": 1.0})
    metrics.batch("ingest", 64, {})
    before = StageTimes.parse(generate_latest(metrics.registry).decode())
    metrics.stages({"fetch": 0.25, "embed": 3.0, "sink": 1.0}, {"embed": 1.5, "decode": 0.5})
    metrics.stages({"fetch": 0.25, "embed": 3.0}, {"embed": 1.5})
    metrics.batch("ingest", 64, {})
    metrics.batch("ingest", 32, {})
    metrics.model_cold_calls.labels("image", "effnet@1", "embed").inc()
    after = StageTimes.parse(generate_latest(metrics.registry).decode())

    where = after.since(before, wall_s=4.0)

    assert where["stages"] == {  # busiest first, then the longest
        "embed": {"seconds": 6.0, "busy_s": 3.0, "busy_pct": 75.0},
        "decode": {"seconds": 0.0, "busy_s": 0.5, "busy_pct": 12.5},
        "sink": {"seconds": 1.0, "busy_s": 0.0, "busy_pct": 0.0},
        "fetch": {"seconds": 0.5, "busy_s": 0.0, "busy_pct": 0.0},
    }
    assert list(where["stages"]) == ["embed", "decode", "sink", "fetch"]
    assert where["batches"] == 2 and where["mean_batch"] == 48.0
    assert where["cold_calls"] == 1 and where["wall_s"] == 4.0


def test_a_workers_metrics_are_read_over_http() -> None:
    metrics = Metrics()
    port = free_port()
    server = serve(port, WorkerEndpoints(metrics, Health(stall_s=60)))
    assert server is not None
    try:
        metrics.stages({"decode": 1.5})
        assert WorkerMetrics(port).read().stages == {"decode": 1.5}
    finally:
        server.shutdown()


def test_several_workers_figures_are_summed() -> None:
    one = StageTimes({"fetch": 1.0, "embed": 2.0}, {"embed": 1.5}, 3, 300, 1)
    two = StageTimes({"embed": 0.5, "sink": 4.0}, {"embed": 0.5, "decode": 2.0}, 2, 100, 0)
    both = StageTimes.combined([one, two])
    assert both.stages == {"fetch": 1.0, "embed": 2.5, "sink": 4.0}
    assert both.busy == {"embed": 2.0, "decode": 2.0}
    assert (both.batches, both.messages, both.cold_calls) == (5, 400, 1)
    assert StageTimes.combined([]) == StageTimes()


def test_a_worker_is_ready_when_its_readyz_passes() -> None:
    health = Health(stall_s=60)
    port = free_port()
    assert not WorkerMetrics(port).ready()  # nothing serving: not ready, no error
    server = serve(port, WorkerEndpoints(Metrics(), health))
    assert server is not None
    try:
        assert not WorkerMetrics(port).ready()  # 503 while starting
        health.ready = True
        assert WorkerMetrics(port).ready()
    finally:
        server.shutdown()


def test_a_groups_processes_are_found_from_proc() -> None:
    parent = subprocess.Popen(
        [
            sys.executable, "-c",
            "import subprocess, sys, time\n"
            "kids = [subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])"
            " for _ in range(2)]\n"
            "print(' '.join(str(k.pid) for k in kids), flush=True)\n"
            "time.sleep(30)\n",
        ],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert parent.stdout is not None
        kids = sorted(int(pid) for pid in parent.stdout.readline().split())
        assert group_children(parent.pid) == kids
    finally:
        for pid in group_children(parent.pid):
            os.kill(pid, signal.SIGKILL)
        parent.kill()
        parent.wait()
    with pytest.raises(StreamerError, match="no children"):  # it has ended: none left
        group_children(parent.pid)

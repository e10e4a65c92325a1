"""A group of worker processes runs and stops as one.

The processes here are small Python programs standing in for ``streamer worker`` (real
processes, real signals): each writes what it receives to a file of its own and behaves as
told (stop cleanly, stop forced, ignore SIGTERM, fail at once). The real command in a group on
the embedded stack is tests/integration/test_worker_group.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from streamer.config.settings import RuntimeSettings, Settings
from streamer.stack.processes import ManagedProcess, free_port
from streamer.worker.group import WorkerGroup, group_exit_code
from streamer.worker.shutdown import EXIT_CLEAN, EXIT_FAILED, EXIT_FORCED

FAKE_WORKER = r"""
import os, signal, sys, time
mode, log = sys.argv[1], sys.argv[2]
def say(what):
    with open(log, "a") as f:
        f.write(what + "\n")
def on_term(*_):
    say("SIGTERM")
    if mode == "clean":
        sys.exit(0)
    if mode == "forced":
        sys.exit(3)
signal.signal(signal.SIGTERM, on_term)
say("started " + os.environ["STREAMER_WORKER_NAME"])
port = int(os.environ.get("STREAMER_METRICS_PORT", "0"))
if port:  # ready at once
    import http.server, threading
    class Ready(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200); self.end_headers(); self.wfile.write(b"ready")
        def log_message(self, *_):
            pass
    server = http.server.HTTPServer(("127.0.0.1", port), Ready)
    threading.Thread(target=server.serve_forever, daemon=True).start()
if mode == "fail":  # once every process of the group has started
    others = [os.path.join(os.path.dirname(log), f"p{i}.log") for i in range(int(sys.argv[3]))]
    while not all(os.path.exists(o) for o in others):
        time.sleep(0.02)
    sys.exit(1)
while True:
    time.sleep(0.02)
"""


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


#: every stand-in started, so a test that fails half way leaves none running
STARTED: list[subprocess.Popen[bytes]] = []


@pytest.fixture(autouse=True)
def _none_left() -> Iterator[None]:
    yield
    while STARTED:
        proc = STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def spawner(
    tmp_path: Path, modes: Sequence[str]
) -> Callable[[int, dict[str, str]], subprocess.Popen[bytes]]:
    def spawn(index: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                FAKE_WORKER,
                modes[index],
                str(tmp_path / f"p{index}.log"),
                str(len(modes)),
            ],
            env={**os.environ, **env},
            start_new_session=True,
        )
        STARTED.append(proc)
        return proc

    return spawn


def said(tmp_path: Path, index: int) -> list[str]:
    path = tmp_path / f"p{index}.log"
    return path.read_text().splitlines() if path.exists() else []


def group(
    tmp_path: Path, modes: Sequence[str], clock: Clock | None = None, *, metrics_port: int = 0
) -> WorkerGroup:
    settings = Settings(
        runtime=RuntimeSettings(
            device="cpu", worker_name="pod-7", shutdown_grace_s=1.0, metrics_port=metrics_port
        )
    )
    return WorkerGroup(
        settings, len(modes), spawner(tmp_path, modes), poll_s=0.02, clock=clock or time.monotonic
    )


def started(g: WorkerGroup, tmp_path: Path) -> None:
    """Start the group and wait until every process has its handler in place."""
    g.start()
    deadline = time.monotonic() + 30
    while not all(said(tmp_path, i) for i in range(g.processes)):
        assert time.monotonic() < deadline, "the processes did not start"
        time.sleep(0.02)


def until_ended(g: WorkerGroup, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while g.step():
        assert time.monotonic() < deadline, "the group did not end"
        time.sleep(0.02)


def test_a_signal_stops_every_process_once_and_the_group_is_clean(tmp_path: Path) -> None:
    g = group(tmp_path, ["clean", "clean", "clean"])
    started(g, tmp_path)
    assert [said(tmp_path, i)[0] for i in range(3)] == [f"started pod-7-{i}" for i in range(3)]
    assert all(g.running(i) for i in range(3))
    g.on_signal(signal.SIGTERM)
    until_ended(g)
    assert [said(tmp_path, i).count("SIGTERM") for i in range(3)] == [1, 1, 1]
    assert g.exit_code() == EXIT_CLEAN


def test_with_calibration_the_first_process_starts_alone_until_it_is_ready(
    tmp_path: Path,
) -> None:
    g = group(tmp_path, ["clean", "clean", "clean"], metrics_port=free_port(run=4))
    assert g.staggered  # calibration is on (cached) and the group serves metrics
    g.start()
    assert len(g.procs) == 1 and not g.running(1)
    deadline = time.monotonic() + 30
    while len(g.procs) < 3:
        assert time.monotonic() < deadline, "the others were never started"
        g.step()
        time.sleep(0.02)
    deadline = time.monotonic() + 30
    while not all(said(tmp_path, i) for i in range(3)):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    g.on_signal(signal.SIGTERM)
    until_ended(g)
    assert g.exit_code() == EXIT_CLEAN
    assert g.endpoints is not None
    g.endpoints.close()


def test_a_second_signal_is_passed_on(tmp_path: Path) -> None:
    g = group(tmp_path, ["ignore", "ignore"])
    started(g, tmp_path)
    for _ in range(3):  # the third changes nothing: the second already ends them
        g.on_signal(signal.SIGINT)
    for times in (1, 2, 2):  # one passed on a turn (two sent at once would arrive as one)
        g.step()
        deadline = time.monotonic() + 10
        while not all(said(tmp_path, i).count("SIGTERM") == times for i in range(2)):
            assert time.monotonic() < deadline, [said(tmp_path, i) for i in range(2)]
            time.sleep(0.02)


def test_a_process_past_the_grace_is_killed_and_the_group_forced(tmp_path: Path) -> None:
    clock = Clock()
    g = group(tmp_path, ["clean", "ignore"], clock)
    started(g, tmp_path)
    g.on_signal(signal.SIGTERM)
    assert g.step()  # the signal passed on; the second process ignores it
    deadline = time.monotonic() + 10
    while g.procs[0].poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert g.step() and g.running(1)  # within the grace: still waited for
    clock.now = 100.0  # past the grace and the margin
    assert not g.step()
    assert g.killed == {1}
    assert g.exit_code() == EXIT_FORCED


def test_a_process_that_fails_stops_the_others_and_fails_the_group(tmp_path: Path) -> None:
    g = group(tmp_path, ["clean", "fail", "clean"])
    code = g.run()
    assert code == EXIT_FAILED
    assert g.failed == "process 1 ended with 1"
    assert said(tmp_path, 0)[-1] == "SIGTERM" and said(tmp_path, 2)[-1] == "SIGTERM"
    assert all(not g.running(i) for i in range(3))


def test_the_group_exit_code_is_the_worst_of_its_processes() -> None:
    assert group_exit_code([0, 0, None]) == EXIT_CLEAN
    assert group_exit_code([0, 3, 0]) == EXIT_FORCED
    assert group_exit_code([3, 1, 0]) == EXIT_FAILED
    assert group_exit_code([0, -9], killed={1}) == EXIT_FORCED
    assert group_exit_code([0, -9]) == EXIT_FAILED  # killed by someone else: a failure
    # stopped by the group's SIGTERM before it could stop cleanly (still loading its models)
    assert group_exit_code([-signal.SIGTERM], signalled=True) == EXIT_FORCED
    assert group_exit_code([-signal.SIGTERM]) == EXIT_FAILED


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal")
def test_a_process_of_the_group_ends_when_the_group_is_killed(tmp_path: Path) -> None:
    # a middle process spawns a child with end_with_parent, then is killed with SIGKILL
    middle = subprocess.Popen(
        [
            sys.executable, "-c",
            "import functools, os, subprocess, sys, time\n"
            "from streamer.worker.group import end_with_parent\n"
            f"p = subprocess.Popen([sys.executable, '-c', {FAKE_WORKER!r}, 'clean', "
            f"{str(tmp_path / 'p0.log')!r}], env=dict(os.environ, STREAMER_WORKER_NAME='x'), "
            "preexec_fn=functools.partial(end_with_parent, os.getpid()))\n"
            "print(p.pid, flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    assert middle.stdout is not None
    child = int(middle.stdout.readline())
    deadline = time.monotonic() + 30
    while not said(tmp_path, 0):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    middle.kill()
    middle.wait()
    # running and not a zombie, as the stack's own processes are told apart
    while ManagedProcess("child", child, marker="mode, log", log="").alive():
        assert time.monotonic() < deadline, "the child outlived its killed parent"
        time.sleep(0.02)
    assert said(tmp_path, 0)[-1] == "SIGTERM"

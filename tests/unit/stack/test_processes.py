import shutil
import time
from pathlib import Path

from streamer.stack.processes import exit_status, free_port, port_open, spawn, stop


def test_a_spawned_process_is_alive_at_once_and_stop_ends_it(tmp_path: Path) -> None:
    sleep = shutil.which("sleep")
    assert sleep
    for _ in range(30):  # Popen may return before the new command line is visible
        process = spawn("sleeper", [sleep, "30"], log_dir=tmp_path, marker="sleep")
        assert process.alive()
        stop(process, grace_s=2)
        assert not process.alive()


def test_exit_status_says_how_a_child_ended(tmp_path: Path) -> None:
    # long enough that a loaded machine still finds it running right after the spawn
    process = spawn("short", ["sh", "-c", "sleep 2; exit 3"], log_dir=tmp_path, marker="sh")
    assert exit_status(process.pid) == "running"
    deadline = time.monotonic() + 10
    while process.alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert exit_status(process.pid) == "exited with code 3"


def test_free_port_is_free_and_outside_the_ephemeral_range() -> None:
    port = free_port()
    assert 20_000 <= port <= 32_000
    assert not port_open("127.0.0.1", port)

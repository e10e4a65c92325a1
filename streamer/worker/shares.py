"""Several worker processes on one machine: the settings each one runs with.

One worker process is bound by its interpreter lock long before a GPU is (measured on an H200:
one process ~600 photos/s with no thread saturated and the GPU ~10 % busy; four processes in
one consumer group 1,459 photos/s). Processes sharing a machine share its cores: each gets an
even share of the fetch threads and of the torch threads (at least one of each), a worker name
of its own and, when the group serves metrics, a port of its own next to the group's.
"""

from __future__ import annotations

import os
import socket

from streamer.config.settings import Settings, settings_env

__all__ = ["process_env", "process_ports", "shared_env", "worker_name"]


def worker_name(settings: Settings) -> str:
    """The worker's name in logs, stats and the rollout registry (a group's: its processes'
    prefix)."""
    return settings.runtime.worker_name or f"{socket.gethostname()}-{os.getpid()}"


def shared_env(settings: Settings, processes: int) -> dict[str, str]:
    """The settings of each of ``processes`` worker processes: ``settings`` as they are for
    one; for several, the fetch threads and the torch threads of the machine split between
    them (at least one of each)."""
    from streamer.runner.device import resolve_device

    env = settings_env(settings)
    if processes > 1:
        runtime = settings.runtime
        device = resolve_device(runtime.device)
        env["STREAMER_BATCH_DECODE_WORKERS"] = str(
            max(1, settings.batching.decode_workers // processes)
        )
        env["STREAMER_TORCH_THREADS"] = str(max(1, runtime.threads_per_stream(device) // processes))
    return env


def process_ports(port: int, processes: int) -> list[int]:
    """The metrics ports of a group's processes when the group serves on ``port``."""
    return [port + 1 + index for index in range(processes)]


def process_env(settings: Settings, processes: int, index: int, *, group: str) -> dict[str, str]:
    """The settings of process ``index`` (0-based) of a group named ``group``: its share of the
    machine, the name ``<group>-<index>``, metrics on the group's port + 1 + ``index`` (none
    when the group serves none) and one process of its own (it starts no group)."""
    port = settings.runtime.metrics_port
    return {
        **shared_env(settings, processes),
        "STREAMER_WORKER_NAME": f"{group}-{index}",
        "STREAMER_METRICS_PORT": str(process_ports(port, processes)[index] if port else 0),
        "STREAMER_WORKER_PROCESSES": "1",
    }

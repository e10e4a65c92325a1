"""CPU cores this process may use: its CPU set, bounded by its cgroup's CPU quota.

A container started with ``--cpus 2`` (``deploy.resources.limits.cpus`` in compose, a CPU limit
in Kubernetes) on a 64-core host still sees all 64 cores in its affinity mask; the limit is a
CFS quota in its cgroup. Thread pools and torch threads sized from the mask alone would run 32
threads on 2 cores' worth of time and be throttled. :func:`available_cores` takes the smaller
of the two.

The quota is read from cgroup v2 (``cpu.max``: ``"max 100000"`` or ``"200000 100000"``) and,
where the cpu controller is mounted as cgroup v1, from ``cpu.cfs_quota_us`` and
``cpu.cfs_period_us`` (``-1``: no quota). The process's own cgroup is found in
``/proc/self/cgroup`` and every ancestor up to the mount is read: the tightest quota on the
path is the one that binds. Inside a container with its own cgroup namespace the path is ``/``
and the mount's own files are the container's. Every path is taken under ``root`` so tests can
build fake trees; a file that is missing or unreadable, or holds what is not a quota, is no
limit.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

__all__ = ["MAX_CORES", "affinity_cores", "available_cores", "cgroup_cpu_limit"]

MAX_CORES = 32
"""Pools are never sized past this many threads, however large the machine."""

_V1_CPU_MOUNTS = ("cpu,cpuacct", "cpuacct,cpu", "cpu")


def available_cores(
    root: Path | str = "/", *, affinity: int | None = None, cap: int = MAX_CORES
) -> int:
    """Cores to size pools by: ``min(affinity, ceil(quota / period))``, in ``1..cap``.

    ``root`` is where ``/proc`` and ``/sys/fs/cgroup`` are looked up (``/`` in production, a
    fake tree in tests); ``affinity`` overrides the CPU set (default: this process's).
    """
    cores = affinity_cores() if affinity is None else affinity
    limit = cgroup_cpu_limit(root)
    if limit is not None:
        cores = min(cores, math.ceil(limit))
    return max(1, min(cap, cores))


def affinity_cores() -> int:
    """CPUs in this process's affinity mask (the CPU count where there is no mask)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def cgroup_cpu_limit(root: Path | str = "/") -> float | None:
    """The tightest CPU quota on this process's cgroup path, in CPUs (None: no quota found)."""
    base = Path(root)
    paths = _own_cgroups(base / "proc" / "self" / "cgroup")
    mount = base / "sys" / "fs" / "cgroup"
    limits = [
        limit
        for directory in _walk(mount, paths.get("", PurePosixPath("/")))
        if (limit := _v2_limit(directory)) is not None
    ]
    v1_path = paths.get("cpu", PurePosixPath("/"))
    for name in _V1_CPU_MOUNTS:
        if (mount / name).is_dir():
            limits += [
                limit
                for directory in _walk(mount / name, v1_path)
                if (limit := _v1_limit(directory)) is not None
            ]
            break
    return min(limits, default=None)


def _own_cgroups(path: Path) -> dict[str, PurePosixPath]:
    """``/proc/self/cgroup`` as controller -> path; ``""`` is the cgroup v2 entry."""
    found: dict[str, PurePosixPath] = {}
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError):
        return found
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, cgroup = parts
        if not cgroup.startswith("/"):
            continue
        location = PurePosixPath(cgroup)
        if controllers == "":
            found[""] = location
        for controller in controllers.split(","):
            if controller == "cpu":
                found["cpu"] = location
    return found


def _walk(mount: Path, cgroup: PurePosixPath) -> Iterator[Path]:
    """The directories of ``cgroup`` and its ancestors under ``mount`` that exist, leaf first.

    A path that leaves its namespace (``/../..``) is read from the mount alone.
    """
    parts = cgroup.parts[1:]
    if ".." in parts:
        parts = ()
    for depth in range(len(parts), -1, -1):
        directory = mount.joinpath(*parts[:depth])
        if directory.is_dir():
            yield directory


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _quota(quota: int, period: int) -> float | None:
    if quota <= 0 or period <= 0:
        return None
    return quota / period


def _v2_limit(directory: Path) -> float | None:
    text = _read(directory / "cpu.max")
    if text is None:
        return None
    fields = text.split()
    if not fields or fields[0] == "max":
        return None
    try:
        quota = int(fields[0])
        period = int(fields[1]) if len(fields) > 1 else 100_000
    except ValueError:
        return None
    return _quota(quota, period)


def _v1_limit(directory: Path) -> float | None:
    quota_text = _read(directory / "cpu.cfs_quota_us")
    period_text = _read(directory / "cpu.cfs_period_us")
    if quota_text is None or period_text is None:
        return None
    try:
        return _quota(int(quota_text), int(period_text))
    except ValueError:
        return None

"""Cores from the CPU set and the cgroup quota, on fake cgroup trees."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamer.config import settings
from streamer.config.cpus import MAX_CORES, affinity_cores, available_cores, cgroup_cpu_limit


def _write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _v2(root: Path, cpu_max: str | None, *, own: str = "/") -> Path:
    _write(root, "proc/self/cgroup", f"0::{own}\n")
    directory = root / "sys/fs/cgroup" / own.lstrip("/")
    directory.mkdir(parents=True, exist_ok=True)
    if cpu_max is not None:
        (directory / "cpu.max").write_text(cpu_max + "\n")
    return directory


def _v1(root: Path, quota: str, period: str = "100000", *, own: str = "/") -> None:
    _write(root, "proc/self/cgroup", f"5:memory:{own}\n4:cpu,cpuacct:{own}\n0::/\n")
    directory = root / "sys/fs/cgroup/cpu,cpuacct" / own.lstrip("/")
    _write(directory, "cpu.cfs_quota_us", quota + "\n")
    _write(directory, "cpu.cfs_period_us", period + "\n")


def test_v2_without_a_quota_is_the_cpu_set(tmp_path: Path) -> None:
    _v2(tmp_path, "max 100000")
    assert cgroup_cpu_limit(tmp_path) is None
    assert available_cores(tmp_path, affinity=64) == MAX_CORES
    assert available_cores(tmp_path, affinity=6) == 6


def test_v2_quota_bounds_a_large_cpu_set(tmp_path: Path) -> None:
    _v2(tmp_path, "200000 100000")
    assert cgroup_cpu_limit(tmp_path) == 2.0
    assert available_cores(tmp_path, affinity=64) == 2


def test_a_smaller_cpu_set_wins_over_the_quota(tmp_path: Path) -> None:
    _v2(tmp_path, "800000 100000")
    assert available_cores(tmp_path, affinity=3) == 3


@pytest.mark.parametrize(
    ("cpu_max", "cores"),
    [("150000 100000", 2), ("50000 100000", 1), ("1000 100000", 1), ("250000 50000", 5)],
)
def test_a_fractional_quota_rounds_up(tmp_path: Path, cpu_max: str, cores: int) -> None:
    _v2(tmp_path, cpu_max)
    assert available_cores(tmp_path, affinity=64) == cores


def test_v2_walks_the_own_cgroup_and_its_ancestors(tmp_path: Path) -> None:
    """On a host namespace the own cgroup is a sub-path; the tightest quota on it binds."""
    leaf = _v2(tmp_path, "max 100000", own="/system.slice/streamer.service")
    _write(tmp_path, "sys/fs/cgroup/system.slice/cpu.max", "300000 100000")
    _write(tmp_path, "sys/fs/cgroup/cpu.max", "max 100000")
    assert available_cores(tmp_path, affinity=64) == 3
    (leaf / "cpu.max").write_text("150000 100000")
    assert available_cores(tmp_path, affinity=64) == 2


def test_v2_a_path_outside_the_namespace_reads_the_mount(tmp_path: Path) -> None:
    _write(tmp_path, "proc/self/cgroup", "0::/../../elsewhere\n")
    _write(tmp_path, "sys/fs/cgroup/cpu.max", "400000 100000")
    assert available_cores(tmp_path, affinity=64) == 4


def test_v1_quota(tmp_path: Path) -> None:
    _v1(tmp_path, "250000")
    assert cgroup_cpu_limit(tmp_path) == 2.5
    assert available_cores(tmp_path, affinity=64) == 3


def test_v1_without_a_quota(tmp_path: Path) -> None:
    _v1(tmp_path, "-1")
    assert cgroup_cpu_limit(tmp_path) is None
    assert available_cores(tmp_path, affinity=8) == 8


def test_v1_docker_path_under_the_mount_or_the_mount_itself(tmp_path: Path) -> None:
    """Without a cgroup namespace /proc names /docker/<id>, but the mount may be that cgroup."""
    _v1(tmp_path, "200000", own="/docker/abc")
    assert available_cores(tmp_path, affinity=64) == 2

    other = tmp_path / "other"
    _write(other, "proc/self/cgroup", "4:cpu,cpuacct:/docker/abc\n")
    _write(other, "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "100000")
    _write(other, "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000")
    assert available_cores(other, affinity=64) == 1


def test_v1_cpu_mounted_alone(tmp_path: Path) -> None:
    _write(tmp_path, "proc/self/cgroup", "3:cpu:/\n")
    _write(tmp_path, "sys/fs/cgroup/cpu/cpu.cfs_quota_us", "600000")
    _write(tmp_path, "sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000")
    assert available_cores(tmp_path, affinity=64) == 6


def test_v2_is_read_before_v1_and_the_tighter_binds(tmp_path: Path) -> None:
    _v1(tmp_path, "400000")
    _write(tmp_path, "sys/fs/cgroup/cpu.max", "200000 100000")
    assert available_cores(tmp_path, affinity=64) == 2


def test_no_cgroup_files_is_the_cpu_set(tmp_path: Path) -> None:
    assert cgroup_cpu_limit(tmp_path) is None
    assert available_cores(tmp_path, affinity=5) == 5
    _write(tmp_path, "proc/self/cgroup", "0::/\n")
    assert available_cores(tmp_path, affinity=5) == 5
    _v1(tmp_path / "v1", "200000")
    (tmp_path / "v1/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us").unlink()
    assert available_cores(tmp_path / "v1", affinity=5) == 5


@pytest.mark.parametrize(
    "cpu_max",
    ["", "garbage", "two hundred 100000", "200000 zero", "0 100000", "-5 100000", "200000 0"],
)
def test_garbage_in_cpu_max_is_no_limit(tmp_path: Path, cpu_max: str) -> None:
    _v2(tmp_path, cpu_max)
    assert cgroup_cpu_limit(tmp_path) is None
    assert available_cores(tmp_path, affinity=7) == 7


@pytest.mark.parametrize(("quota", "period"), [("x", "100000"), ("200000", ""), ("200000", "0")])
def test_garbage_in_v1_is_no_limit(tmp_path: Path, quota: str, period: str) -> None:
    _v1(tmp_path, quota, period)
    assert available_cores(tmp_path, affinity=7) == 7


def test_garbage_proc_self_cgroup_reads_the_mount(tmp_path: Path) -> None:
    _write(tmp_path, "proc/self/cgroup", "nonsense\n::\n1:cpu:relative\n")
    _write(tmp_path, "sys/fs/cgroup/cpu.max", "300000 100000")
    assert available_cores(tmp_path, affinity=64) == 3
    (tmp_path / "proc/self/cgroup").write_bytes(b"\xff\xfe")
    assert available_cores(tmp_path, affinity=64) == 3


def test_bounds(tmp_path: Path) -> None:
    assert available_cores(tmp_path, affinity=0) == 1
    assert available_cores(tmp_path, affinity=128) == MAX_CORES
    assert available_cores(tmp_path, affinity=128, cap=8) == 8


def test_this_machine_and_the_settings_function_agree() -> None:
    cores = settings.available_cores()
    assert 1 <= cores <= min(MAX_CORES, affinity_cores())
    assert cores == available_cores()

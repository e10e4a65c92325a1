"""The GPU busy sampler, against a stand-in nvidia-smi (none on a CPU machine)."""

import os
import stat
import time
from pathlib import Path

import pytest

from streamer.bench.observe import GpuBusy


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
    assert "utilization.gpu" in (tmp_path / "args").read_text()


def test_without_nvidia_smi_nothing_is_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with GpuBusy() as busy:
        pass
    assert busy.pct is None

import json
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from streamer.models.calibration import (
    Calibration,
    CalibrationCache,
    calibrate,
    calibrated_batch_size,
    fingerprint,
    pick_batch_size,
    warm_up,
)
from streamer.testing import FakeModel, Tally

LABEL = "text|minilm-l6@1|embed:0123456789"


class TimedModel(FakeModel):
    """A model whose call costs ``overhead + per_item * n`` on a fake clock, growing past
    ``knee`` items (as a CPU's caches overflow)."""

    def __init__(self, overhead: float, per_item: float, knee: int = 10**6) -> None:
        super().__init__(8, Tally())
        self.now = 0.0
        self.overhead, self.per_item, self.knee = overhead, per_item, knee
        self.sizes: list[int] = []

    def clock(self) -> float:
        return self.now

    def __call__(self, prepared: Sequence[Any], /) -> npt.NDArray[np.float32]:
        n = len(prepared)
        self.sizes.append(n)
        slowdown = 1.0 if n <= self.knee else 2.0
        self.now += self.overhead + self.per_item * n * slowdown
        return np.zeros((n, self.dim), dtype=np.float32)


def test_batching_model_picks_the_size_where_the_overhead_is_amortised() -> None:
    model = TimedModel(overhead=0.05, per_item=0.001, knee=64)
    result = calibrate(
        model, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024], label=LABEL, clock=model.clock
    )
    # 64: 64/(0.05+0.064)=561/s; 128, 256 and 512 are slower past the knee; 32: 390/s
    assert result.batch_size == 64
    assert result.items_per_s[64] > result.items_per_s[32] > result.items_per_s[1]
    assert 1024 not in result.items_per_s  # stopped after three sizes clearly slower


def test_a_model_that_batching_does_not_help_gets_the_smallest_size() -> None:
    model = TimedModel(overhead=0.0, per_item=0.04, knee=1)  # batching only costs
    result = calibrate(model, [1, 2, 4, 8, 16, 32], label=LABEL, clock=model.clock)
    assert result.batch_size == 1
    assert max(model.sizes) <= 8  # the search ended early


def test_equal_speeds_prefer_the_smaller_batch() -> None:
    assert pick_batch_size({1: 100.0, 8: 103.0, 16: 104.0}) == 1
    assert pick_batch_size({1: 50.0, 8: 100.0, 16: 120.0}) == 16


def test_the_cache_keeps_one_entry_per_fingerprint(tmp_path: Path) -> None:
    cache = CalibrationCache(tmp_path / "sub" / "calibration.json")
    model = TimedModel(overhead=0.05, per_item=0.001, knee=64)
    first = calibrated_batch_size(
        model, label=LABEL, mode="cached", candidates=[1, 8, 64], cache=cache
    )
    assert first is not None and first.batch_size == 64
    calls = len(model.sizes)
    again = calibrated_batch_size(
        model, label=LABEL, mode="cached", candidates=[1, 8, 64], cache=cache
    )
    assert again == first and len(model.sizes) == calls  # served from the cache
    remeasured = calibrated_batch_size(
        model, label=LABEL, mode="always", candidates=[1, 8], cache=cache
    )
    assert remeasured is not None and remeasured.batch_size == 8
    assert cache.get(fingerprint(LABEL, model)) == remeasured
    # a run that may not measure reads the cache, and finds nothing for another stage
    assert (
        calibrated_batch_size(
            model, label=LABEL, mode="always", candidates=[1], cache=cache, measure=False
        )
        == remeasured
    )
    assert (
        calibrated_batch_size(
            model, label="other", mode="cached", candidates=[1], cache=cache, measure=False
        )
        is None
    )
    assert (
        calibrated_batch_size(model, label=LABEL, mode="off", candidates=[1], cache=cache) is None
    )


def test_a_corrupt_cache_counts_as_empty(tmp_path: Path) -> None:
    path = tmp_path / "calibration.json"
    path.write_text("{not json")
    cache = CalibrationCache(path)
    assert cache.get("anything") is None
    path.write_text(json.dumps({"k": {"batch_size": "x"}}))
    assert cache.get("k") is None
    cache.put(Calibration("k", 4, {4: 10.0}, 1.0, 0.0))
    assert cache.get("k") == Calibration("k", 4, {4: 10.0}, 1.0, 0.0)


def test_a_cache_that_cannot_be_written_is_logged_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    cache = CalibrationCache(blocker / "calibration.json")  # its folder cannot be created
    model = TimedModel(overhead=0.05, per_item=0.001, knee=64)
    result = calibrated_batch_size(
        model, label=LABEL, mode="cached", candidates=[1, 8], cache=cache
    )
    assert result is not None and result.batch_size == 8  # the measurement still serves
    assert "calibration not saved to" in caplog.text
    assert "STREAMER_BATCH_CALIBRATION_CACHE" in caplog.text


def test_fingerprint_names_model_device_and_precision() -> None:
    key = fingerprint(LABEL, FakeModel(8, Tally()))
    assert key.startswith(f"{LABEL}|cpu x")
    assert "|fp32|" in key and "torch=" in key


def test_torch_threads_key_a_cpus_measurement_not_a_gpus(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch

    from streamer.runner import device

    monkeypatch.setattr(device, "device_label", lambda name: f"{name} (NVIDIA H200)")
    on_cpu, on_gpu = FakeModel(8, Tally()), FakeModel(8, Tally())
    on_gpu.device = "cuda"
    threads = torch.get_num_threads()
    try:
        keys = []
        for n in (1, 2):
            torch.set_num_threads(n)
            keys.append((fingerprint(LABEL, on_cpu), fingerprint(LABEL, on_gpu)))
    finally:
        torch.set_num_threads(threads)
    (cpu_1, gpu_1), (cpu_2, gpu_2) = keys
    assert cpu_1 != cpu_2 and "threads=1" in cpu_1
    # workers sharing a GPU, the cores split between them, share the bench's measurement
    assert gpu_1 == gpu_2 and "threads=" not in gpu_1 and "NVIDIA H200" in gpu_1


def test_out_of_memory_at_a_large_size_keeps_the_smaller_ones() -> None:
    class Small(TimedModel):
        def __call__(self, prepared: Sequence[Any], /) -> npt.NDArray[np.float32]:
            if len(prepared) > 8:
                raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return super().__call__(prepared)

    model = Small(overhead=0.05, per_item=0.001)
    assert calibrate(model, [1, 4, 8, 16, 32], label=LABEL, clock=model.clock).batch_size == 8


def test_bad_candidates_are_refused() -> None:
    with pytest.raises(ValueError):
        calibrate(FakeModel(8, Tally()), [], label=LABEL)


class StallingModel(TimedModel):
    """A GPU-like model: the first call of each shape in each thread stalls ``stall_s`` (cuDNN
    builds its execution plans per thread and per shape)."""

    def __init__(self, stall_s: float, **cost: Any) -> None:
        super().__init__(**cost)
        self.stall_s = stall_s
        self.seen: set[tuple[int, int]] = set()
        self.lock = threading.Lock()

    def __call__(self, prepared: Sequence[Any], /) -> npt.NDArray[np.float32]:
        with self.lock:
            pair = (threading.get_ident(), len(prepared))
            if pair not in self.seen:
                self.seen.add(pair)
                self.now += self.stall_s
            return super().__call__(prepared)


def test_first_call_stalls_are_warmed_up_not_measured() -> None:
    model = StallingModel(stall_s=2.0, overhead=0.05, per_item=0.001)
    result = calibrate(model, [1, 8, 64], label=LABEL, clock=model.clock, min_time_s=0.4)
    assert result.batch_size == 64
    # the figures are the model's steady speed, not the stalls: 64 / (0.05 + 0.064) items/s
    assert result.items_per_s[64] == pytest.approx(64 / 0.114, rel=0.01)
    assert result.items_per_s[1] == pytest.approx(1 / 0.051, rel=0.01)


def test_every_stream_thread_is_warmed_for_every_size() -> None:
    model = StallingModel(stall_s=2.0, overhead=0.01, per_item=0.001)
    with ThreadPoolExecutor(2) as pool:
        calibrate(model, [1, 4], label=LABEL, clock=model.clock, streams=2, pool=pool)
        threads = {ident for ident, _ in model.seen}
        assert len(threads) == 2, "both of the pool's threads ran the model"
        assert {(t, n) for t in threads for n in (1, 4)} == model.seen
        stalls = model.now
        # the serving threads are warm: a call of a calibrated shape no longer stalls
        before = model.now
        list(pool.map(model, [[0] * 4, [0] * 4]))
        assert model.now - before == pytest.approx(2 * (0.01 + 0.004))
    assert stalls > 4 * 2.0  # four (thread, size) pairs stalled, in warm-up


def test_warm_up_refuses_a_pool_smaller_than_its_threads() -> None:
    model = TimedModel(overhead=0.0, per_item=0.0)
    with ThreadPoolExecutor(1) as pool, pytest.raises(threading.BrokenBarrierError):
        warm_up(model, [0], pool, 2, timeout_s=0.2)

"""Bucketed batch shapes: padded calls, outputs trimmed, cold calls after warm-up counted."""

import threading
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pytest

from streamer.runner.shapes import ShapedModel, bucket_for, buckets, padded


class Recorder:
    device = "cuda"
    precision = "bf16"

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def __call__(self, batch: Sequence[int]) -> npt.NDArray[np.float32]:
        self.calls.append((threading.current_thread().name, len(batch)))
        return np.array([[float(x)] for x in batch], dtype=np.float32)

    def sample_inputs(self, n: int) -> list[int]:
        return list(range(n))


def test_buckets_are_the_batch_size_and_its_halves() -> None:
    assert buckets(256, 4) == (32, 64, 128, 256)
    assert buckets(16, 4) == (2, 4, 8, 16)
    assert buckets(3, 4) == (1, 3)
    assert buckets(64, 0) == ()
    assert [bucket_for(n, (8, 16, 32)) for n in (1, 8, 9, 17, 32, 40)] == [8, 8, 16, 32, 32, 40]
    assert bucket_for(5, ()) == 5


def test_padding_repeats_the_last_item() -> None:
    assert padded([1, 2], 4) == [1, 2, 2, 2]
    with pytest.raises(ValueError, match="empty"):
        padded([], 4)


def test_calls_run_at_bucket_sizes_and_give_one_output_per_real_item() -> None:
    model = Recorder()
    shaped = ShapedModel(model, buckets(32, 3), label="t@1:embed")
    for n in (1, 5, 8, 9, 17, 32):
        out = shaped(list(range(n)))
        assert [float(v[0]) for v in out] == list(range(n))
    assert {size for _, size in model.calls} == {8, 16, 32}


def test_only_shapes_a_thread_has_not_run_after_warm_up_are_cold() -> None:
    cold: list[int] = []
    shaped = ShapedModel(Recorder(), (8, 16), label="t@1:embed", on_cold=cold.append)
    shaped([1] * 8)
    shaped([1] * 16)  # before warm-up: warming, not cold
    shaped.warmed(1.5)
    shaped([1] * 3)  # bucket 8: this thread ran it
    assert cold == [] and shaped.cold_calls == 0
    other = threading.Thread(target=shaped, args=([1] * 12,))  # a thread never warmed
    other.start()
    other.join()
    assert cold == [16] and shaped.cold_calls == 1


def test_without_buckets_every_size_runs_as_it_comes_and_nothing_is_cold() -> None:
    model = Recorder()
    shaped = ShapedModel(model, (), label="t@1:embed")
    shaped.warmed(0.1)
    for n in (3, 7):
        assert len(shaped(list(range(n)))) == n
    assert [size for _, size in model.calls] == [3, 7]
    assert shaped.cold_calls == 0
    assert shaped.shapes_to_warm(16) == (16,)

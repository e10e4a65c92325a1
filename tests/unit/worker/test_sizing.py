"""Pipeline sizing: take, wait and window from the device and the measured model speed."""

import pytest

from streamer.config.settings import BatchingSettings
from streamer.worker.sizing import MAX_TAKE, ModelSpeed, size_pipeline


def _batching(**values: object) -> BatchingSettings:
    return BatchingSettings.model_validate(values)


def test_a_gpu_takes_a_quarter_second_of_model_work_in_whole_batches() -> None:
    gpu = ModelSpeed("image", 256, 7000.0, 50)
    size = size_pipeline([gpu], device="cuda", batching=_batching())
    assert size.take == 1792 and size.take % 256 == 0  # 7 batches, 256 ms of model time
    assert size.in_flight == 3
    assert size.wait_s == 0.05
    assert "7 batches of 256" in size.why


def test_a_cpu_takes_what_it_embeds_in_a_quarter_second_two_in_flight() -> None:
    cpu = ModelSpeed("image", 2, 100.0, 50)
    size = size_pipeline([cpu], device="cpu", batching=_batching())
    assert size.take == 26 and size.in_flight == 2


def test_the_take_is_capped_and_never_below_one_model_batch() -> None:
    fast = ModelSpeed("image", 512, 10**6, 50)
    assert size_pipeline([fast], device="cuda", batching=_batching()).take == MAX_TAKE
    huge = ModelSpeed("image", 4096, 10**6, 50)
    assert size_pipeline([huge], device="cuda", batching=_batching()).take == 4096
    slow = ModelSpeed("image", 64, 10.0, 50)
    assert size_pipeline([slow], device="cpu", batching=_batching()).take == 64


def test_without_a_measured_speed_one_model_batch_is_taken() -> None:
    size = size_pipeline([ModelSpeed("text", 64, None, 50)], device="cpu", batching=_batching())
    assert size.take == 64 and "not measured" in size.why


def test_several_topologies_share_one_stream_the_largest_take_and_shortest_wait() -> None:
    models = [ModelSpeed("image", 4, 100.0, 80), ModelSpeed("text", 64, 1000.0, 20)]
    size = size_pipeline(models, device="cpu", batching=_batching())
    assert size.take == 256 and size.wait_s == 0.02


def test_settings_pin_the_take_and_the_window() -> None:
    batching = _batching(take_size=100, max_in_flight=5, target_batch_ms=1000)
    size = size_pipeline([ModelSpeed("image", 256, 7000.0, 50)], device="cuda", batching=batching)
    assert (size.take, size.in_flight) == (100, 5)
    longer = _batching(target_batch_ms=1000)
    assert size_pipeline([ModelSpeed("i", 10, 100.0, 5)], device="cpu", batching=longer).take == 100


def test_sizing_needs_a_model() -> None:
    with pytest.raises(ValueError, match="at least one"):
        size_pipeline([], device="cpu", batching=_batching())

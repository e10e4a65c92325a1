"""The operator contract: N in, N out, each slot a value or that item's typed error."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from operators import Normalize, l2_normalize
from streamer.config.settings import FetchSettings
from streamer.core.errors import BatchContractError, ConfigError, DecodeError, EmbedError
from streamer.runner.context import Context
from streamer.runner.operator import (
    VECTOR,
    BatchPolicy,
    BoundModel,
    CpuOperator,
    ModelOperator,
    Source,
    check_batch,
)

CONTEXT = Context(FetchSettings(), device="cpu")


class Half(CpuOperator[int, float]):
    name = "half"
    takes = int
    gives = float
    error = DecodeError

    def apply(self, item: int) -> float:
        if item < 0:
            raise DecodeError("negative")
        if item == 0:
            raise ZeroDivisionError("a bug")
        return item / 2


class Rows:
    """A model answering with ``n`` rows whatever it is given (``n`` None: one per input)."""

    device = "cpu"
    precision = "fp32"

    def __init__(self, n: int | None = None) -> None:
        self.n = n
        self.calls: list[int] = []

    def __call__(self, batch: Sequence[float], /) -> np.ndarray:
        self.calls.append(len(batch))
        if any(x > 100 for x in batch):
            raise RuntimeError("too big for the model")
        count = len(batch) if self.n is None else self.n
        return np.ones((count, 3), dtype=np.float32)

    def sample_inputs(self, n: int) -> list[float]:
        return [1.0] * n


@dataclass(frozen=True)
class Model(ModelOperator[float, Any]):
    name = "embed"
    takes = float
    gives = VECTOR
    error = EmbedError

    rows: int | None = None

    def load(self, device: str, precision: str) -> Rows:
        return Rows(self.rows)


def test_batch_contract() -> None:
    assert check_batch("op", [1, 2], ["a", "b"]) == ["a", "b"]
    with pytest.raises(BatchContractError, match="returned 1 results for 2 inputs"):
        check_batch("op", [1, 2], ["a"])


def test_a_cpu_stage_turns_each_failure_into_that_items_error() -> None:
    results = Half().bind(CONTEXT)([2, -1, 0, 4])
    assert results[0] == 1.0 and results[3] == 2.0
    assert isinstance(results[1], DecodeError) and results[1].cause == "negative"
    # an unforeseen exception is the item's error of the operator's stage, naming the operator
    assert isinstance(results[2], DecodeError)
    assert results[2].cause == "half: ZeroDivisionError: a bug"


def test_a_model_stage_isolates_the_item_that_fails() -> None:
    bound = Model().bind(CONTEXT)
    assert isinstance(bound, BoundModel)
    results = bound([1.0, 200.0, 3.0])
    assert [type(r).__name__ for r in results] == ["ndarray", "EmbedError", "ndarray"]
    assert "too big for the model" in str(results[1])
    assert bound.model.calls == [3, 1, 1, 1]  # the batch, then item by item


def test_a_model_that_breaks_the_contract_fails_every_item_of_the_call() -> None:
    results = Model(rows=1).bind(CONTEXT)([1.0, 2.0])
    assert all(isinstance(r, EmbedError) for r in results)
    assert "returned 1 results for 2 inputs" in str(results[0])


def test_a_model_declares_batching_device_and_precision() -> None:
    model = Model(batch=BatchPolicy(8, 5), precision="bf16")
    assert (model.batch.max_batch_size, model.device, model.precision) == (8, "auto", "bf16")
    with pytest.raises(ConfigError, match="device"):
        Model(device="tpu")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="precision"):
        Model(precision="int4")  # type: ignore[arg-type]
    assert "rows=None" in Model().describe()


@pytest.mark.parametrize(("size", "wait"), [(0, 10), (5000, 10), (8, -1), (8, 120_000)])
def test_batch_policy_is_validated_when_declared(size: int, wait: int) -> None:
    with pytest.raises(ConfigError):
        BatchPolicy(max_batch_size=size, max_wait_ms=wait)


def test_policy_overrides() -> None:
    policy = BatchPolicy(16, 50).overridden(None, 0)
    assert (policy.max_batch_size, policy.max_wait_ms) == (16, 0)


def test_a_source_is_a_uri_or_a_text() -> None:
    assert Source(uri="file:///a.jpg").describe() == "file:///a.jpg"
    assert Source(text="x" * 50).describe().endswith("…'")
    for bad in ({}, {"uri": "file:///a", "text": "a"}):
        with pytest.raises(ValueError):
            Source(**bad)  # type: ignore[arg-type]


def test_normalize() -> None:
    bound = Normalize().bind(CONTEXT)
    unit, zero, nan = bound([np.array([3.0, 4.0]), np.zeros(2), np.array([np.nan, 1.0])])
    assert np.allclose(unit, [0.6, 0.8]) and unit.dtype == np.float32
    assert isinstance(zero, EmbedError) and isinstance(nan, EmbedError)
    out = l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert np.allclose(out[0], [0.6, 0.8]) and np.allclose(out[1], [0.0, 0.0])

import numpy as np
import pytest

from operators import check_batch, l2_normalize, map_items
from streamer.core.errors import BatchContractError, DecodeError


def test_batch_contract() -> None:
    assert check_batch("op", [1, 2], ["a", "b"]) == ["a", "b"]
    with pytest.raises(BatchContractError, match="returned 1 results for 2 inputs"):
        check_batch("op", [1, 2], ["a"])


def test_map_items_isolates_failures() -> None:
    def half(x: int) -> float:
        if x < 0:
            raise DecodeError("negative")
        return x / 2

    results = map_items(half, [2, -1, 4])
    assert results[0] == 1.0
    assert isinstance(results[1], DecodeError)
    assert results[2] == 2.0


def test_l2_normalize() -> None:
    out = l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert np.allclose(out[0], [0.6, 0.8])
    assert np.allclose(out[1], [0.0, 0.0])
    assert out.dtype == np.float32

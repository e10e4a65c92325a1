"""An asset's parts (:class:`WithParts`): normalised each on its own, checked at the end of the
plan like the asset's vector, and handed to whoever asks, by input index."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from operators import Fetch, Normalize
from streamer.config.settings import FetchSettings
from streamer.core.errors import EmbedError
from streamer.runner.context import Context
from streamer.runner.operator import VECTOR, CpuOperator, Embedded, Part, Source, WithParts
from streamer.runner.plan import Plan, bind
from streamer.runner.runner import Runner
from streamer.runner.topology import ModelVersion, Topology
from streamer.testing import FakeDecode, FakeEmbed

DIM = 4


def vec(*values: float) -> npt.NDArray[np.float32]:
    return np.asarray(values, dtype=np.float32)


class Lookup(CpuOperator[bytes, Embedded]):
    """Gives what ``given`` holds for the content: a plain vector or one with parts."""

    name = "parted"
    takes = bytes
    gives = VECTOR
    error = EmbedError
    gives_parts = True

    def __init__(self, given: Mapping[bytes, Embedded]) -> None:
        self.given = given

    def apply(self, item: bytes) -> Embedded:
        return self.given[item]

    def vector_dim(self, upstream: int | None) -> int | None:
        return DIM


class Plain(Lookup):
    gives_parts = False


class WholeAsPart(CpuOperator[Any, Embedded]):
    """The vector with itself as its one part."""

    name = "normalize"
    takes = VECTOR
    gives = VECTOR
    error = EmbedError
    gives_parts = True

    def apply(self, item: Any) -> Embedded:
        return WithParts(item, (Part("all", item),))


def plan(tmp_path: Path, given: Mapping[bytes, Embedded], *, normalize: bool = True) -> Plan:
    stages: tuple[Any, ...] = (Fetch(), Lookup(given))
    topology = Topology(
        name="parted",
        media_type="video",
        stages=(*stages, Normalize()) if normalize else stages,
        model_version="parted@1",
    )
    return bind(topology, None, Context(FetchSettings(media_roots=(tmp_path,)), device="cpu"))


def run(p: Plan, contents: list[bytes], **kwargs: Any) -> list[Any]:
    runner = Runner.inline()
    try:
        sources = [Source(text=c.decode()) for c in contents]
        ids = [c.decode() for c in contents]
        return asyncio.run(runner.run(p, sources, ids=ids, **kwargs))
    finally:
        runner.close()


def parted(vector: npt.NDArray[np.float32], **parts: npt.NDArray[np.float32]) -> WithParts:
    return WithParts(
        vector,
        tuple(
            Part(k, v, {"start_s": float(i), "end_s": i + 1.0})
            for i, (k, v) in enumerate(parts.items())
        ),
    )


GIVEN: dict[bytes, Embedded] = {
    b"video": parted(vec(3, 4, 0, 0), s0=vec(0, 2, 0, 0), s1=vec(1, 1, 1, 1)),
    b"plain": vec(0, 0, 5, 0),
    b"other": parted(vec(0, 0, 0, 2), s3=vec(0, 0, 3, 4)),
}


def test_outputs_are_unit_vectors_and_the_parts_go_by_input_index(tmp_path: Path) -> None:
    parts: dict[int, tuple[Part, ...]] = {}
    out = run(plan(tmp_path, GIVEN), [b"video", b"plain", b"other"], parts=parts)
    for vector, expected in zip(out, ([0.6, 0.8, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]), strict=True):
        assert isinstance(vector, np.ndarray) and vector.dtype == np.float32
        np.testing.assert_allclose(vector, expected, rtol=1e-6)
    assert sorted(parts) == [0, 2]  # the plain vector has none
    assert [p.key for p in parts[0]] == ["s0", "s1"]
    np.testing.assert_allclose(parts[0][0].vector, [0, 1, 0, 0], rtol=1e-6)
    np.testing.assert_allclose(parts[0][1].vector, [0.5, 0.5, 0.5, 0.5], rtol=1e-6)
    assert [p.metadata for p in parts[0]] == [
        {"start_s": 0.0, "end_s": 1.0},
        {"start_s": 1.0, "end_s": 2.0},
    ]
    (s3,) = parts[2]
    assert s3.key == "s3" and s3.vector.dtype == np.float32
    np.testing.assert_allclose(s3.vector, [0, 0, 0.6, 0.8], rtol=1e-6)


def test_without_parts_asked_the_outputs_are_still_plain_vectors(tmp_path: Path) -> None:
    out = run(plan(tmp_path, GIVEN), [b"video", b"other"])
    assert all(type(o) is np.ndarray for o in out)
    np.testing.assert_allclose(out[0], [0.6, 0.8, 0, 0], rtol=1e-6)
    np.testing.assert_allclose(out[1], [0, 0, 0, 1], rtol=1e-6)


@pytest.mark.parametrize(
    ("spoiled", "message"),
    [
        (vec(1, 2, 3), "(part 'bad') a vector of shape (3,), expected (4,)"),
        (vec(1, np.nan, 0, 0), "(part 'bad') non-finite values"),
        (vec(1, np.inf, 0, 0), "(part 'bad') non-finite values"),
    ],
)
def test_a_spoiled_part_fails_its_item_alone(
    tmp_path: Path, spoiled: npt.NDArray[np.float32], message: str
) -> None:
    given = {**GIVEN, b"spoiled": parted(vec(1, 0, 0, 0), ok=vec(0, 1, 0, 0), bad=spoiled)}
    parts: dict[int, tuple[Part, ...]] = {}
    # no Normalize after it: what the topology gives is checked as it is
    out = run(plan(tmp_path, given, normalize=False), [b"video", b"spoiled", b"plain"], parts=parts)
    error = out[1]
    assert isinstance(error, EmbedError)
    assert f"topology 'parted' gave {message}" in str(error)
    assert error.asset_id == "spoiled"
    np.testing.assert_allclose(out[0], [3, 4, 0, 0])
    np.testing.assert_allclose(out[2], [0, 0, 5, 0])
    assert sorted(parts) == [0]  # nothing of the failed item


def test_a_part_of_the_wrong_length_fails_after_normalize_too(tmp_path: Path) -> None:
    given = {b"short": parted(vec(1, 0, 0, 0), s2=vec(0, 2, 0))}
    parts: dict[int, tuple[Part, ...]] = {}
    (error,) = run(plan(tmp_path, given), [b"short"], parts=parts)
    assert isinstance(error, EmbedError)
    assert "(part 's2') a vector of shape (3,), expected (4,)" in str(error)
    assert parts == {}


def test_a_zero_part_is_normalizes_error_naming_the_part(tmp_path: Path) -> None:
    given = {**GIVEN, b"dark": parted(vec(1, 0, 0, 0), s0=vec(1, 0, 0, 0), s5=np.zeros(4))}
    parts: dict[int, tuple[Part, ...]] = {}
    out = run(plan(tmp_path, given), [b"dark", b"video"], parts=parts)
    error = out[0]
    assert isinstance(error, EmbedError) and error.asset_id == "dark"
    assert "cannot normalise a vector (part 's5') of norm 0.0" in str(error)
    np.testing.assert_allclose(out[1], [0.6, 0.8, 0, 0], rtol=1e-6)
    assert sorted(parts) == [1]


def test_a_zero_asset_vector_names_no_part(tmp_path: Path) -> None:
    given = {b"dark": parted(np.zeros(4, dtype=np.float32), s0=vec(1, 0, 0, 0))}
    (error,) = run(plan(tmp_path, given), [b"dark"])
    assert isinstance(error, EmbedError)
    assert "cannot normalise a vector of norm 0.0" in str(error)
    assert "part" not in str(error)


def test_normalize_scales_each_part_keeping_its_key_and_metadata() -> None:
    given = parted(vec(0, 3, 4, 0), s1=vec(2, 0, 0, 0))
    out = Normalize().apply(given)
    assert isinstance(out, WithParts)
    np.testing.assert_allclose(out.vector, [0, 0.6, 0.8, 0], rtol=1e-6)
    (part,) = out.parts
    assert part.key == "s1" and part.metadata == {"start_s": 0.0, "end_s": 1.0}
    np.testing.assert_allclose(part.vector, [1, 0, 0, 0])
    np.testing.assert_allclose(given.parts[0].vector, [2, 0, 0, 0])  # the input is untouched


def test_a_plan_and_a_topology_say_whether_they_give_parts(tmp_path: Path) -> None:
    parted_plan = plan(tmp_path, GIVEN)
    assert parted_plan.gives_parts and parted_plan.topology.gives_parts()
    context = Context(FetchSettings(media_roots=(tmp_path,)), device="cpu")
    plain = Topology(
        name="plain",
        media_type="video",
        stages=(Fetch(), Plain(GIVEN), Normalize()),
        model_version="plain@1",
    )
    assert not plain.gives_parts()
    assert not bind(plain, None, context).gives_parts
    # a version that gives parts makes the topology's rows have parts, whichever serves
    later = Topology(
        name="later",
        media_type="text",
        stages=(Fetch(), FakeDecode(), FakeEmbed(DIM), Normalize()),
        model_version="later@1",
        alternatives=(ModelVersion("later@2", {"normalize": WholeAsPart()}),),
    )
    assert later.gives_parts()
    assert not bind(later, None, context).gives_parts
    second = bind(later, "later@2", context)
    assert second.gives_parts
    parts: dict[int, tuple[Part, ...]] = {}
    (vector,) = run(second, [b"text"], parts=parts)
    (whole,) = parts[0]
    assert whole.key == "all" and vector.shape == (DIM,)
    np.testing.assert_array_equal(whole.vector, vector)

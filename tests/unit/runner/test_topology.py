"""A topology is a composition, checked when it is declared."""

from typing import Any

import numpy as np
import pytest

from operators import DecodeText, Fetch, Normalize
from streamer.core.errors import ConfigError, EmbedError
from streamer.runner.operator import VECTOR, CpuOperator
from streamer.runner.topology import ModelVersion, Topology
from streamer.testing import FakeDecode, FakeEmbed, fake_topology
from topologies import IMAGE, TEXT


class Double(CpuOperator[Any, Any]):
    name = "double"
    takes = VECTOR
    gives = VECTOR
    error = EmbedError

    def apply(self, item: Any) -> Any:
        return np.concatenate([item, item])

    def vector_dim(self, upstream: int | None) -> int | None:
        return None if upstream is None else 2 * upstream


def test_the_built_in_topologies() -> None:
    assert [s.name for s in IMAGE.stages] == ["fetch", "decode", "preprocess", "embed", "normalize"]
    assert [s.name for s in TEXT.stages] == ["fetch", "decode", "embed", "normalize"]
    assert IMAGE.versions() == ["effnet-lite0@1", "effnet-lite0-b5@2"]
    assert IMAGE.stages_for("effnet-lite0-b5@2")[3].layer == "blocks.5"  # type: ignore[attr-defined]
    assert IMAGE.stages_for("effnet-lite0-b5@2")[:3] == IMAGE.stages[:3]
    assert IMAGE.collection_name() == "image__effnet_lite0_1"
    assert TEXT.alias() == "text"
    assert IMAGE.collection_name("effnet-lite0@2", prefix="demo_") == "demo_image__effnet_lite0_2"
    assert TEXT.batch_policy().max_batch_size == 64


def _topology(*stages: Any, **kwargs: Any) -> Topology:
    return Topology(name="t", media_type="text", stages=stages, model_version="v1", **kwargs)


def test_names_and_versions_are_checked() -> None:
    stages = (Fetch(), FakeDecode(), FakeEmbed())
    with pytest.raises(ConfigError, match="name"):
        Topology(name="Bad Name", media_type="text", stages=stages, model_version="v1")
    with pytest.raises(ConfigError, match="media_type"):
        Topology(name="t", media_type="Text!", stages=stages, model_version="v1")
    with pytest.raises(ConfigError, match="model version 'has space'"):
        Topology(name="t", media_type="text", stages=stages, model_version="has space")
    with pytest.raises(ConfigError, match="versions repeat"):
        _topology(*stages, alternatives=(ModelVersion("v1", {}),))
    with pytest.raises(ConfigError, match="metadata field"):
        _topology(*stages, metadata_fields=("ok", "not ok"))


def test_adjacent_stages_must_fit() -> None:
    with pytest.raises(ConfigError, match="'decode' gives str but the next stage 'embed' takes"):
        _topology(Fetch(), DecodeText(), FakeEmbed())
    with pytest.raises(ConfigError, match="first stage must take a Source and give bytes"):
        _topology(FakeDecode(), FakeEmbed())
    with pytest.raises(ConfigError, match="last stage 'decode' must give a vector"):
        _topology(Fetch(), FakeDecode())
    with pytest.raises(ConfigError, match="stage names repeat"):
        _topology(Fetch(), FakeDecode(), FakeEmbed(), Normalize(), Normalize())
    with pytest.raises(ConfigError, match="at least one stage"):
        _topology()
    with pytest.raises(ConfigError, match="is not an Operator"):
        _topology(Fetch(), len)

    class Undeclared(CpuOperator[Any, Any]):
        name = "undeclared"

    with pytest.raises(ConfigError, match="Undeclared must declare name"):
        _topology(Fetch(), Undeclared())


def test_one_vector_producing_tail() -> None:
    class Describe(CpuOperator[Any, Any]):
        name = "describe"
        takes = VECTOR
        gives = object
        error = EmbedError

    class Again(CpuOperator[Any, Any]):
        name = "again"
        takes = object
        gives = VECTOR
        error = EmbedError

    with pytest.raises(ConfigError, match="one vector-producing tail"):
        _topology(Fetch(), FakeDecode(), FakeEmbed(), Describe(), Again())
    ok = _topology(Fetch(), FakeDecode(), FakeEmbed(), Double(), Normalize())
    assert [s.name for s in ok.stages][-2:] == ["double", "normalize"]


def test_a_version_replaces_stages_by_name_and_still_fits() -> None:
    stages = (Fetch(), FakeDecode(), FakeEmbed(4), Normalize())
    ok = _topology(*stages, alternatives=(ModelVersion("v2", {"embed": FakeEmbed(6)}),))
    assert ok.stages_for("v2")[2] == FakeEmbed(6)
    assert ok.stages_for("v1")[2] == FakeEmbed(4)
    with pytest.raises(ConfigError, match="replaces unknown stages"):
        _topology(*stages, alternatives=(ModelVersion("v2", {"project": Double()}),))
    with pytest.raises(ConfigError, match="may not replace the first stage"):
        _topology(*stages, alternatives=(ModelVersion("v2", {"fetch": Fetch()}),))
    with pytest.raises(ConfigError, match=r"version 'v2'.*gives str"):
        _topology(*stages, alternatives=(ModelVersion("v2", {"decode": DecodeText()}),))
    with pytest.raises(ConfigError, match="declares no model version 'v9'"):
        ok.stages_for("v9")


def test_replacing_and_baseline() -> None:
    fake = fake_topology("f", "text")
    swapped = fake.replacing(normalize=Double())
    assert [s.name for s in swapped.stages] == ["fetch", "decode", "embed", "double"]
    with pytest.raises(ConfigError, match="no stages"):
        fake.replacing(project=Double())
    baseline = IMAGE.baseline()
    assert baseline.stages[1].min_side is None  # type: ignore[attr-defined]
    assert baseline.stages[2].fused is False  # type: ignore[attr-defined]
    assert baseline.alternatives == ()

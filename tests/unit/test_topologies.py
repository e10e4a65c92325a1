from pathlib import Path

import pytest

from streamer.core.errors import ConfigError
from topologies import IMAGE, TEXT, BatchPolicy, TextModelSpec, TimmModelSpec, Topology


def test_declared_topologies() -> None:
    assert IMAGE.media_type == "image"
    assert TEXT.media_type == "text"
    assert IMAGE.collection_name() == "image__effnet_lite0_1"
    assert TEXT.alias() == "text"
    assert IMAGE.collection_name("effnet-lite0@2", prefix="demo_") == "demo_image__effnet_lite0_2"


@pytest.mark.parametrize(("size", "wait"), [(0, 10), (5000, 10), (8, -1), (8, 120_000)])
def test_batch_policy_is_validated_when_declared(size: int, wait: int) -> None:
    with pytest.raises(ConfigError):
        BatchPolicy(max_batch_size=size, max_wait_ms=wait)


def test_policy_overrides() -> None:
    policy = BatchPolicy(16, 50).overridden(None, 0)
    assert (policy.max_batch_size, policy.max_wait_ms) == (16, 0)


def test_topology_is_validated_when_declared() -> None:
    spec = TextModelSpec(model_dir=Path("/m"))
    with pytest.raises(ConfigError, match="name"):
        Topology(name="Bad Name", media_type="text", model=spec, model_version="v1")
    with pytest.raises(ConfigError, match="model_version"):
        Topology(name="t", media_type="text", model=spec, model_version="has space")
    with pytest.raises(ConfigError, match="TimmModelSpec"):
        Topology(name="t", media_type="image", model=spec, model_version="v1")
    ok = Topology(
        name="t",
        media_type="image",
        model=TimmModelSpec("resnet18", Path("/w")),
        model_version="v1",
    )
    assert ok.device == "auto"

"""Planning: bound stages, fused CPU segments, the vector length, the source validator."""

from pathlib import Path

import pytest

from operators import Normalize
from streamer.config.settings import FetchSettings
from streamer.core.errors import ConfigError
from streamer.runner.context import Context
from streamer.runner.operator import Source
from streamer.runner.plan import bind
from streamer.runner.plans import Plans
from streamer.testing import FakeDecode, FakeEmbed, fake_topology
from tests.unit.runner.test_topology import Double


def test_consecutive_cpu_stages_are_one_segment(tmp_path: Path) -> None:
    topology = fake_topology("t", "text", dim=4).replacing(normalize=Double())
    plan = bind(topology, None, Context(FetchSettings(media_roots=(tmp_path,)), device="cpu"))
    names = [[s.name for s in seg.stages] for seg in plan.segments()]
    assert names == [["fetch", "decode"], ["embed"], ["double"]]
    assert [seg.label for seg in plan.segments()] == ["fetch", "embed", "embed"]
    assert [[s.name for s in seg.stages] for seg in plan.segments(1)] == [
        ["decode"], ["embed"], ["double"]
    ]  # fmt: skip
    assert plan.segments(0, 1)[0].stages[0].name == "fetch"
    assert plan.dim == 8  # the model's 4, doubled
    assert plan.model_index == 2
    assert plan.device == "cpu"


def test_the_plan_knows_its_vector_length_or_refuses(tmp_path: Path) -> None:
    from streamer.runner.operator import VECTOR, CpuOperator, ModelOperator

    class Anonymous(ModelOperator[bytes, object]):  # says nothing of its vectors
        name = "embed"
        takes = bytes
        gives = VECTOR
        error = FakeEmbed.error

        def load(self, device: str, precision: str) -> object:  # type: ignore[override]
            return object()

    assert issubclass(Anonymous, ModelOperator) and issubclass(Normalize, CpuOperator)
    topology = fake_topology("t", "text").replacing(embed=Anonymous())
    with pytest.raises(ConfigError, match="length of its vectors is unknown"):
        bind(topology, None, Context(FetchSettings(media_roots=(tmp_path,)), device="cpu"))


def test_the_first_stage_tells_whether_a_local_file_changed(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("x")
    plan = bind(fake_topology("t", "text"), None, Context(FetchSettings(media_roots=(tmp_path,))))
    assert plan.validator(Source(text="inline")) is None
    # written just now: a rewrite within one timestamp tick could keep it, so it gives none
    assert plan.validator(Source(uri=path.as_uri())) is None


def test_plans_are_bound_once_per_version(tmp_path: Path) -> None:
    bound: list[str] = []

    def binder(topology, version, context):  # type: ignore[no-untyped-def]
        bound.append(version)
        return bind(topology, version, context)

    topology = fake_topology("t", "text", dim=4)
    plans = Plans(Context(FetchSettings(media_roots=(tmp_path,))), binder=binder, tuner=None)
    first = plans.get(topology)
    assert plans.get(topology, "t@1") is first
    assert plans.get(topology, "t@2").dim == 6
    assert bound == ["t@1", "t@2"]
    pinned = Plans(Context(FetchSettings()), pinned_batch_size=5, tuner=lambda p, s: 3)
    plan = pinned.get(topology)
    assert pinned.batch_size(plan, plan.models[0]) == 5
    assert FakeDecode().name == "decode"

"""Worker plans: bucketed shapes warmed in the serving threads, no cold call afterwards; a
model stage that is not calibrated follows the next one's batch size."""

import asyncio
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from streamer.config.settings import FetchSettings
from streamer.core.metrics import Metrics
from streamer.models.loading import warm_shapes
from streamer.runner.context import Context
from streamer.runner.executors import ModelThreads
from streamer.runner.operator import BatchPolicy, ModelOperator, Source
from streamer.runner.plans import Plans, Tuned
from streamer.runner.runner import Runner
from streamer.runner.shapes import ShapedModel
from streamer.runner.topology import Topology
from streamer.testing import FakeDecode, FakeEmbed, FakeModel, Tally, fake_topology, tally


class ThreadTally(Tally):
    def __init__(self) -> None:
        super().__init__()
        self.pairs: set[tuple[str, int]] = set()


def _plans(tmp_path: Path, threads: ModelThreads, metrics: Metrics, **kwargs: Any) -> Plans:
    return Plans(
        Context(FetchSettings(media_roots=(tmp_path,)), device="cpu"),
        tuner=lambda plan, stage: Tuned(16, 400.0),
        buckets=lambda device: 3,
        warm=lambda plans, plan: warm_shapes(plans, plan, threads, metrics),
        on_cold=lambda plan, stage, size: metrics.model_cold_calls.labels(
            plan.topology.name, plan.version, stage.name
        ).inc(),
        **kwargs,
    )


def test_every_bucket_is_warmed_in_the_serving_thread_and_serving_stays_warm(
    tmp_path: Path,
) -> None:
    threads, metrics = ModelThreads("cuda", 1), Metrics()
    topology = fake_topology("t", "text", dim=4, batch=4)
    try:
        plans = _plans(tmp_path, threads, metrics)
        plan = plans.get(topology)
        stage = plan.models[0]
        shaped = stage.model.model  # type: ignore[union-attr]
        assert isinstance(shaped, ShapedModel)
        assert plans.batch_size(plan, stage) == 16 and plans.speed(plan, stage) == 400.0
        assert shaped.sizes == (4, 8, 16) and shaped.warm
        assert sorted(tally(topology).batches) == [4, 8, 16]  # one warm-up call per bucket
        warmup = metrics.model_warmup_seconds.labels("t", "t@1", "embed")._value.get()
        assert warmup == shaped.warmup_s >= 0

        runner = Runner(threads.lane("ingest"), threads.lane("ingest"), batch_size=plans.batch_size)
        for n in (1, 3, 5, 9, 16, 23, 40):  # every partial size a stream makes
            out = asyncio.run(runner.run(plan, [Source(text=f"x{i}") for i in range(n)]))
            assert len(out) == n
        assert set(tally(topology).batches) == {4, 8, 16}
        assert shaped.cold_calls == 0
        assert metrics.model_cold_calls.labels("t", "t@1", "embed")._value.get() == 0
    finally:
        threads.close()


def test_a_call_in_a_thread_that_was_not_warmed_is_counted(tmp_path: Path) -> None:
    threads, metrics = ModelThreads("cuda", 1), Metrics()
    try:
        plan = _plans(tmp_path, threads, metrics).get(fake_topology("t", "text", batch=4))
        model = plan.models[0].model
        assert model is not None
        stray = threading.Thread(target=model, args=([b"a"],))
        stray.start()
        stray.join()
        assert metrics.model_cold_calls.labels("t", "t@1", "embed")._value.get() == 1
    finally:
        threads.close()


@dataclass(frozen=True)
class DeviceDecode(ModelOperator[bytes, bytes]):
    """A model stage that is not calibrated: it follows the embed stage's size."""

    name = "decode"
    takes = bytes
    gives = bytes
    error = FakeDecode.error
    prepares: ClassVar[bool] = True

    def load(self, device: str, precision: str) -> Any:
        class Identity(FakeModel):
            def __call__(self, batch: Any) -> Any:
                self.tally.batches.append(len(batch))
                THREADS.append(threading.current_thread().name)
                return list(batch)

        return Identity(1, Tally())


THREADS: list[str] = []


def test_an_uncalibrated_model_stage_takes_the_next_model_stages_size(tmp_path: Path) -> None:
    base = fake_topology("t", "text", batch=4)
    fetch, _, embed, normalize = base.stages
    topology = Topology(
        name="t",
        media_type="text",
        stages=(fetch, DeviceDecode(batch=BatchPolicy(2, 10)), embed, normalize),
        model_version="t@1",
    )
    tuned: list[str] = []

    def tuner(plan: Any, stage: Any) -> int:
        tuned.append(stage.name)
        return 8

    threads, metrics = ModelThreads("cuda", 1), Metrics()
    try:
        plans = Plans(
            Context(FetchSettings(media_roots=(tmp_path,)), device="cpu"),
            tuner=tuner,
            buckets=lambda device: 2,
            warm=lambda plans, plan: warm_shapes(plans, plan, threads, metrics),
        )
        THREADS.clear()
        plan = plans.get(topology)
        decode, model = plan.models
        assert tuned == ["embed"]  # the decode stage is not measured
        assert plans.batch_size(plan, decode) == plans.batch_size(plan, model) == 8
        # warmed, and run, on the device's prepare thread: it overlaps the model's
        assert THREADS == ["device-prepare-0", "device-prepare-0"]  # buckets 4 and 8
        runner = Runner(
            threads.lane("ingest"),
            threads.lane("ingest"),
            batch_size=plans.batch_size,
            prepare_pool=threads.lane("prepare"),
        )
        out = asyncio.run(runner.run(plan, [Source(text=f"x{i}") for i in range(11)]))
        assert len(out) == 11 and set(THREADS) == {"device-prepare-0"}
        assert isinstance(embed, FakeEmbed) and set(tally(topology).batches) <= {4, 8}
    finally:
        threads.close()

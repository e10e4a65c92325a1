"""Planning fuses decode and preprocess into one stage on the model's device when it may:
``decode_on_device`` on (any device) or auto on a GPU; never off, never auto on a CPU."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import torch
from PIL import Image
from skimage import data

from operators import DecodeImage, Fetch, Normalize, path_to_uri
from operators.device_decode import DeviceImagePrepare
from operators.preprocess import TimmPreprocess
from operators.timm_model import TimmModel
from streamer.config.settings import FetchSettings, load_settings
from streamer.core.errors import ConfigError, DecodeError, EmbedError
from streamer.runner import plan as planning
from streamer.runner.context import Context
from streamer.runner.device import to_device
from streamer.runner.operator import VECTOR, BatchPolicy, LoadedModel, ModelOperator, Source
from streamer.runner.plan import Plan, bind
from streamer.runner.runner import Runner
from streamer.runner.topology import Topology
from streamer.testing import fake_topology

#: the architecture's data configuration is all these tests read: no weights are loaded
SPEC = TimmModel("efficientnet_lite0", Path("never-loaded.pth"))


class Thumbnails:
    """A stand-in image model: each crop's 4x4 thumbnail, centred (48 values)."""

    device = "cpu"
    precision = "fp32"

    def __call__(self, batch: Sequence[torch.Tensor]) -> npt.NDArray[np.float32]:
        crops = to_device(torch.stack(list(batch)), torch.device("cpu")).float()
        thumbnails = torch.nn.functional.adaptive_avg_pool2d(crops, 4) - 128
        return thumbnails.flatten(1).numpy()

    def sample_inputs(self, n: int) -> list[torch.Tensor]:
        return [torch.zeros(3, 224, 224, dtype=torch.uint8)] * n


@dataclass(frozen=True)
class ThumbnailEmbed(ModelOperator[torch.Tensor, npt.NDArray[np.float32]]):
    name = "embed"
    takes = torch.Tensor
    gives = VECTOR
    error = EmbedError

    def load(self, device: str, precision: str) -> Thumbnails:
        return Thumbnails()

    def output_dim(self, model: LoadedModel[Any, Any], upstream: int | None) -> int:
        return 48


EMBED = ThumbnailEmbed(batch=BatchPolicy(max_batch_size=5, max_wait_ms=20))
PHOTOS = Topology(
    name="photos",
    media_type="image",
    stages=(Fetch(), DecodeImage(min_side=SPEC), TimmPreprocess(SPEC), EMBED, Normalize()),
    model_version="photos@1",
)


def context(tmp_path: Path, decode_on_device: Any, device: str = "cpu") -> Context:
    return Context(FetchSettings(media_roots=(tmp_path,)), device, "auto", decode_on_device)


def names(plan: Plan) -> list[str]:
    return [stage.name for stage in plan.stages]


def test_on_fuses_decode_and_preprocess_into_one_model_stage(tmp_path: Path) -> None:
    plan = bind(PHOTOS, None, context(tmp_path, "on"))
    assert names(plan) == ["fetch", "decode", "embed", "normalize"]
    assert [s.index for s in plan.stages] == [0, 1, 2, 3]
    decode = plan.stages[1].model
    assert decode is not None and isinstance(decode.operator, DeviceImagePrepare)
    # it runs where the model runs, batched as the model is
    assert decode.operator.batch == EMBED.batch
    assert decode.device == "cpu" and decode.precision == "fp32"
    assert plan.dim == 48 and plan.model_index == 1
    assert [[s.name for s in seg.stages] for seg in plan.segments()] == [
        ["fetch"], ["decode"], ["embed"], ["normalize"]
    ]  # fmt: skip
    assert [seg.label for seg in plan.segments()] == ["fetch", "decode", "embed", "embed"]


@pytest.mark.parametrize("setting", ["off", "auto"])
def test_off_and_auto_on_a_cpu_keep_the_declared_stages(tmp_path: Path, setting: str) -> None:
    plan = bind(PHOTOS, None, context(tmp_path, setting))
    assert names(plan) == ["fetch", "decode", "preprocess", "embed", "normalize"]
    assert plan.model_index == 3 and plan.dim == 48
    assert not any(isinstance(s.bound.operator, DeviceImagePrepare) for s in plan.stages)


def test_auto_fuses_when_the_model_runs_on_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    # binding on cuda needs a GPU: the planner's decision is checked on the declarations
    from streamer.runner import device

    monkeypatch.setattr(device, "resolve_device", lambda requested="auto": "cuda")
    declared = PHOTOS.stages_for()
    gpu = Context(FetchSettings(), "auto", "auto", "auto")
    fused = planning._fused_on_device(declared, gpu)
    assert [type(s).__name__ for s in fused] == [
        "Fetch", "DeviceImagePrepare", "ThumbnailEmbed", "Normalize"
    ]  # fmt: skip
    off = Context(FetchSettings(), "auto", "auto", "off")
    assert planning._fused_on_device(declared, off) == declared


def test_only_the_fused_transform_is_moved_and_other_chains_stay(tmp_path: Path) -> None:
    as_timm = PHOTOS.replacing(preprocess=TimmPreprocess(SPEC, fused=False))
    assert "preprocess" in names(bind(as_timm, None, context(tmp_path, "on")))
    text = fake_topology("t", "text", dim=4)
    plan = bind(text, None, context(tmp_path, "on"))
    assert [s.bound.operator for s in plan.stages] == list(text.stages)


def test_the_setting_reaches_the_context() -> None:
    env = {"STREAMER_DECODE_ON_DEVICE": "off"}
    assert Context.from_settings(load_settings(env, use_stack=False)).decode_on_device == "off"
    assert Context.from_settings(load_settings({}, use_stack=False)).decode_on_device == "auto"
    with pytest.raises(ConfigError):
        load_settings({"STREAMER_DECODE_ON_DEVICE": "gpu"}, use_stack=False)
    with pytest.raises(ConfigError, match="decode_on_device"):
        Context(FetchSettings(), decode_on_device="yes")  # type: ignore[arg-type]


def jpeg(path: Path, size: tuple[int, int]) -> Path:
    Image.fromarray(data.astronaut()).resize(size, Image.Resampling.BICUBIC).save(path, "JPEG")
    return path


def test_a_fused_image_topology_runs_end_to_end(tmp_path: Path) -> None:
    sizes = [(64, 48), (48, 64), (300, 200), (640, 480), (100, 100), (77, 300)]
    photos = [jpeg(tmp_path / f"p{i}.jpg", size) for i, size in enumerate(sizes)]
    (tmp_path / "bad.jpg").write_bytes(photos[0].read_bytes()[:200])
    sources = [Source(uri=path_to_uri(p)) for p in [*photos, tmp_path / "bad.jpg"]]
    ids = [f"a{i}" for i in range(len(sources))]
    fused = bind(PHOTOS, None, context(tmp_path, "on"))
    declared = bind(PHOTOS, None, context(tmp_path, "off"))
    runner = Runner.with_threads(2, 1, name="fusing")
    try:
        timings: dict[str, float] = {}
        ours = asyncio.run(runner.run(fused, sources, ids=ids, timings=timings))
        theirs = asyncio.run(runner.run(declared, sources, ids=ids))
    finally:
        runner.close()
    assert set(timings) == {"fetch", "decode", "embed"}
    error = ours[-1]
    assert isinstance(error, DecodeError) and error.asset_id == "a6"
    assert str(error) == str(theirs[-1])  # the same error as the CPU path
    for i, (a, b) in enumerate(zip(ours[:-1], theirs[:-1], strict=True)):
        assert a.shape == (48,) and abs(float(np.linalg.norm(a)) - 1) < 1e-5
        assert float(a @ b) > 0.999, (photos[i].name, float(a @ b))


def test_a_batch_already_on_the_device_is_moved_without_pinning() -> None:
    batch = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    assert to_device(batch, torch.device("cpu")) is batch
    if torch.cuda.is_available():  # on a GPU: crops decoded there are not pinned again
        on_gpu = batch.cuda()
        assert to_device(on_gpu, torch.device("cuda")) is on_gpu

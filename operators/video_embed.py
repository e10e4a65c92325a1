"""Video frames through an image model, pooled into one vector per video.

:class:`ClipPreprocess` gives each kept frame the image model's own resize and center crop
(the fused transform of :mod:`operators.preprocess`, the photos' exact pixels path), and
:class:`FrameEmbed` embeds the frames with the very model a photo topology loads (one copy of
the weights per process, shared through the binding context), packing the frames of every
video of a micro-batch into model calls of the photo stage's batch size, then pools them: the
mean of the frames' unit vectors. Frames and photos are in one embedding space, so a photo
finds the video it came from, and a video finds photos of its scenes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image

from operators.image_embed import TimmEmbed, TimmImageEmbedder, shared_embedder
from operators.preprocess import fuse, timm_transform
from operators.timm_model import TimmModel
from operators.video import Clip
from streamer.core.errors import DecodeError, EmbedError
from streamer.runner.operator import VECTOR, BoundCpu, BoundModel, CpuOperator, ModelOperator

if TYPE_CHECKING:
    from streamer.runner.context import Context

__all__ = ["ClipPreprocess", "FrameEmbed", "FramePooler", "Frames"]


@dataclass(frozen=True, slots=True)
class Frames:
    """A video's frames as the image model's inputs (one tensor per frame, ``uint8`` crops
    from the fused transform or normalised floats), and when each was shown."""

    crops: tuple[torch.Tensor, ...]
    times_s: tuple[float, ...]
    duration_s: float

    def __len__(self) -> int:
        return len(self.crops)


@dataclass(frozen=True)
class ClipPreprocess(CpuOperator[Clip, Frames]):
    """Each frame of a clip to the input of ``model``, as :class:`~operators.preprocess.
    TimmPreprocess` does for a photo."""

    name = "preprocess"
    takes = Clip
    gives = Frames
    error = DecodeError

    model: TimmModel

    def bind(self, context: Context) -> BoundCpu[Clip, Frames]:
        transform = timm_transform(self.model)
        fused = fuse(transform)

        def frames(clip: Clip) -> Frames:
            crops = []
            for frame in clip.frames:
                image = Image.fromarray(frame)
                crop = fused[0](image) if fused is not None else transform(image)
                crops.append(crop)
            return Frames(tuple(crops), clip.times_s, clip.duration_s)

        return BoundCpu(self, frames)


class FramePooler:
    """The loaded stage: the frames of a batch of videos embedded ``frames_per_call`` at a time
    (on a GPU the last call is padded to that size, so the model runs at one warmed shape),
    each frame's vector made unit length, their mean per video."""

    def __init__(self, embedder: TimmImageEmbedder, frames_per_call: int) -> None:
        self.embedder = embedder
        self.frames_per_call = max(1, frames_per_call)
        self.pad = embedder.device.startswith("cuda")

    def follow_batch_size(self, size: int) -> None:
        """Call the model ``size`` frames at a time (the photo stage's batch size)."""
        self.frames_per_call = max(1, size)

    @property
    def device(self) -> str:
        return self.embedder.device

    @property
    def precision(self) -> str:
        return self.embedder.precision

    def __call__(self, videos: Sequence[Frames]) -> list[npt.NDArray[np.float32] | EmbedError]:
        crops = [crop for video in videos for crop in video.crops]
        rows: list[npt.NDArray[np.float32]] = []
        size = self.frames_per_call
        for start in range(0, len(crops), size):
            part = crops[start : start + size]
            real = len(part)
            if self.pad and real < size:
                part = part + [part[-1]] * (size - real)
            rows.append(np.asarray(self.embedder(part), dtype=np.float32)[:real])
        vectors = (
            np.concatenate(rows) if rows else np.zeros((0, self.embedder.dim), dtype=np.float32)
        )
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        unit = vectors / np.maximum(norms, 1e-12)
        pooled: list[npt.NDArray[np.float32] | EmbedError] = []
        start = 0
        for video in videos:
            if not len(video):
                pooled.append(EmbedError("the video has no frames to embed"))
                continue
            pooled.append(unit[start : start + len(video)].mean(axis=0).astype(np.float32))
            start += len(video)
        return pooled

    def sample_inputs(self, n: int) -> list[Frames]:
        """Videos of one frame each, shaped like :class:`ClipPreprocess`'s output (warming a
        call warms the model's shape: on a GPU every call is padded to ``frames_per_call``)."""
        (crop,) = self.embedder.sample_inputs(1)
        return [Frames((crop,), (0.0,), 0.0) for _ in range(n)]


@dataclass(frozen=True)
class FrameEmbed(ModelOperator[Frames, npt.NDArray[np.float32]]):
    """Embed a video's frames with the image stage ``embed`` (the same weights, loaded once per
    process) and pool them into one vector. The batch policy counts videos; the frames of a
    batch go to the model the photo stage's batch size at a time (as it runs in a plan bound
    before, calibrated; else as ``embed`` declares it), unless ``frames_per_call`` says."""

    name = "embed"
    takes = Frames
    gives = VECTOR
    error = EmbedError
    calibrates = False

    embed: TimmEmbed
    frames_per_call: int | None = None

    def sized_like(self) -> ModelOperator[Any, Any] | None:
        return self.embed if self.frames_per_call is None else None

    def bind(self, context: Context) -> BoundModel[Frames, npt.NDArray[np.float32]]:
        return BoundModel(
            self, self._pooler(shared_embedder(context, self.embed, *self.placement(context)))
        )

    def load(self, device: str, precision: str) -> FramePooler:
        return self._pooler(self.embed.load(device, precision))

    def _pooler(self, embedder: TimmImageEmbedder) -> FramePooler:
        return FramePooler(embedder, self.frames_per_call or self.embed.batch.max_batch_size)

    def output_dim(self, model: Any, upstream: int | None) -> int:
        assert isinstance(model, FramePooler)
        return model.embedder.dim

"""Video frames through an image model, pooled into one vector per video.

:class:`ClipPreprocess` gives each kept frame the image model's own resize and center crop
(the fused transform of :mod:`operators.preprocess`, the photos' exact pixels path), and
:class:`FrameEmbed` embeds the frames with the very model a photo topology loads (one copy of
the weights per process, shared through the binding context), packing the frames of every
video of a micro-batch into model calls of the photo stage's batch size, then pools them: the
mean of the frames' unit vectors. Frames and photos are in one embedding space, so a photo
finds the video it came from, and a video finds photos of its scenes.

With a segment length (``STREAMER_VIDEO_SEGMENT_S``, or ``segment_s`` declared), each video
also gives one vector per segment of that many seconds that holds sampled frames (the same
pooling over its frames), with the segment's time range: stored as rows of their own
(``<id>#s<k>``, ``segment_of``, ``start_s``, ``end_s`` in the metadata), so a search finds
the moment of a video, not only the video.
"""

from __future__ import annotations

import math
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
from streamer.core.errors import ConfigError, DecodeError, EmbedError, StageError
from streamer.runner.operator import (
    VECTOR,
    BoundCpu,
    BoundModel,
    CpuOperator,
    Embedded,
    ModelOperator,
    Part,
    WithParts,
)

if TYPE_CHECKING:
    from streamer.runner.context import Context

__all__ = ["ClipPreprocess", "FrameEmbed", "FramePooler", "Frames", "segments"]


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


def segments(
    unit: npt.NDArray[np.float32], times_s: Sequence[float], duration_s: float, segment_s: float
) -> tuple[Part, ...]:
    """The parts of one video: for each ``segment_s``-long stretch holding sampled frames, the
    mean of those frames' ``unit`` vectors, keyed ``s<k>`` (the k-th stretch from the start),
    with its time range (the last one ends with the video)."""
    groups: dict[int, list[int]] = {}
    for row, time_s in enumerate(times_s):
        # a frame on a boundary starts the later segment, whatever float division rounds to
        groups.setdefault(math.floor(time_s / segment_s + 1e-9), []).append(row)
    end = max(duration_s, max(times_s, default=0.0))
    return tuple(
        Part(
            f"s{k}",
            unit[rows].mean(axis=0).astype(np.float32),
            {"start_s": round(k * segment_s, 3), "end_s": round(min((k + 1) * segment_s, end), 3)},
        )
        for k, rows in sorted(groups.items())
    )


class FramePooler:
    """The loaded stage: the frames of a batch of videos embedded ``frames_per_call`` at a time
    (on a GPU the last call is padded to that size, so the model runs at one warmed shape),
    each frame's vector made unit length, their mean per video (and per segment of
    ``segment_s`` seconds when that is set)."""

    def __init__(
        self, embedder: TimmImageEmbedder, frames_per_call: int, segment_s: float = 0.0
    ) -> None:
        self.embedder = embedder
        self.frames_per_call = max(1, frames_per_call)
        self.pad = embedder.device.startswith("cuda")
        self.segment_s = segment_s

    def follow_batch_size(self, size: int) -> None:
        """Call the model ``size`` frames at a time (the photo stage's batch size)."""
        self.frames_per_call = max(1, size)

    @property
    def device(self) -> str:
        return self.embedder.device

    @property
    def precision(self) -> str:
        return self.embedder.precision

    def __call__(self, videos: Sequence[Frames]) -> list[Embedded | StageError]:
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
        pooled: list[Embedded | StageError] = []
        start = 0
        for video in videos:
            if not len(video):
                pooled.append(EmbedError("the video has no frames to embed"))
                continue
            frames = unit[start : start + len(video)]
            start += len(video)
            vector = frames.mean(axis=0).astype(np.float32)
            if self.segment_s > 0:
                parts = segments(frames, video.times_s, video.duration_s, self.segment_s)
                pooled.append(WithParts(vector, parts))
            else:
                pooled.append(vector)
        return pooled

    def sample_inputs(self, n: int) -> list[Frames]:
        """Videos of one frame each, shaped like :class:`ClipPreprocess`'s output (warming a
        call warms the model's shape: on a GPU every call is padded to ``frames_per_call``)."""
        (crop,) = self.embedder.sample_inputs(1)
        return [Frames((crop,), (0.0,), 0.0) for _ in range(n)]


@dataclass(frozen=True)
class FrameEmbed(ModelOperator[Frames, Embedded]):
    """Embed a video's frames with the image stage ``embed`` (the same weights, loaded once per
    process) and pool them into one vector. The batch policy counts videos; the frames of a
    batch go to the model the photo stage's batch size at a time (as it runs in a plan bound
    before, calibrated; else as ``embed`` declares it), unless ``frames_per_call`` says. With
    ``segment_s`` (default: ``STREAMER_VIDEO_SEGMENT_S``; 0 for none) each video also gives
    the vectors of its segments."""

    name = "embed"
    takes = Frames
    gives = VECTOR
    error = EmbedError
    calibrates = False
    gives_parts = True

    embed: TimmEmbed
    frames_per_call: int | None = None
    segment_s: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.segment_s is not None and self.segment_s < 0:
            raise ConfigError(f"segment_s must be 0 (none) or more, got {self.segment_s}")

    def sized_like(self) -> ModelOperator[Any, Any] | None:
        return self.embed if self.frames_per_call is None else None

    def bind(self, context: Context) -> BoundModel[Frames, Embedded]:
        segment_s = context.video.segment_s if self.segment_s is None else self.segment_s
        embedder = shared_embedder(context, self.embed, *self.placement(context))
        return BoundModel(self, self._pooler(embedder, segment_s))

    def load(self, device: str, precision: str) -> FramePooler:
        return self._pooler(self.embed.load(device, precision), self.segment_s or 0.0)

    def _pooler(self, embedder: TimmImageEmbedder, segment_s: float) -> FramePooler:
        size = self.frames_per_call or self.embed.batch.max_batch_size
        return FramePooler(embedder, size, segment_s)

    def output_dim(self, model: Any, upstream: int | None) -> int:
        assert isinstance(model, FramePooler)
        return model.embedder.dim

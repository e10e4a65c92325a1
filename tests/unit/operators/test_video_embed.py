"""A video's frames pooled into one vector, and into one per segment of ``segment_s`` seconds
(its parts, with their time ranges), with a fake embedder in place of the image model."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import torch

from operators.image_embed import TimmEmbed
from operators.timm_model import TimmModel
from operators.video_embed import FrameEmbed, FramePooler, Frames, segments
from streamer.config.settings import FetchSettings, VideoSettings
from streamer.core.errors import ConfigError, EmbedError
from streamer.runner.context import Context
from streamer.runner.operator import WithParts

DIM = 3


class FakeEmbedder:
    """Gives each crop's own values as its vector (not unit length), noting each call's size."""

    precision = "fp32"
    dim = DIM

    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self.calls: list[int] = []

    def __call__(self, crops: Sequence[torch.Tensor]) -> npt.NDArray[np.float32]:
        self.calls.append(len(crops))
        return np.stack([c.numpy() for c in crops]).astype(np.float32)


def unit_rows(rows: list[list[float]]) -> npt.NDArray[np.float32]:
    array = np.asarray(rows, dtype=np.float32)
    return array / np.linalg.norm(array, axis=1, keepdims=True)


def video(rows: list[list[float]], times_s: Sequence[float], duration_s: float) -> Frames:
    crops = tuple(torch.tensor(r, dtype=torch.float32) for r in rows)
    return Frames(crops, tuple(times_s), duration_s)


def declared_embed() -> TimmEmbed:
    """A photo stage's declaration, as topologies/video.py takes it: no weights load."""

    def no_weights() -> Path:
        raise AssertionError("declaring a stage must not load weights")

    return TimmEmbed(TimmModel("efficientnet_lite0", no_weights, map_keys_by_order=True))


ROWS = [[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [3.0, 4.0, 0.0], [0.0, 0.0, 5.0], [1.0, 1.0, 1.0]]
TIMES = [0.0, 0.5, 1.0, 2.5, 7.0]


def test_segments_hold_the_frames_of_their_stretch_the_last_ending_with_the_video() -> None:
    unit = unit_rows(ROWS)
    parts = segments(unit, TIMES, 8.0, 2.0)
    assert [p.key for p in parts] == ["s0", "s1", "s3"]
    assert [(p.metadata["start_s"], p.metadata["end_s"]) for p in parts] == [
        (0.0, 2.0),
        (2.0, 4.0),
        (6.0, 8.0),
    ]
    for part, rows in zip(parts, ([0, 1, 2], [3], [4]), strict=True):
        assert part.vector.dtype == np.float32
        np.testing.assert_allclose(part.vector, unit[rows].mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(parts[0].vector, [(1 + 0 + 0.6) / 3, (0 + 1 + 0.8) / 3, 0.0])


def test_a_frame_on_a_boundary_belongs_to_the_later_segment() -> None:
    unit = unit_rows([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    parts = segments(unit, [1.0, 2.0], 4.0, 2.0)
    assert [p.key for p in parts] == ["s0", "s1"]
    np.testing.assert_array_equal(parts[0].vector, unit[0])
    np.testing.assert_array_equal(parts[1].vector, unit[1])
    assert (parts[1].metadata["start_s"], parts[1].metadata["end_s"]) == (2.0, 4.0)


def test_a_boundary_holds_for_segment_lengths_that_floats_cannot_represent() -> None:
    unit = unit_rows([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    parts = segments(unit, [0.0, 0.6, 1.2], 1.5, 0.2)  # 0.6 / 0.2 is 2.9999999999999996
    assert [p.key for p in parts] == ["s0", "s3", "s6"]
    assert parts[1].metadata == {"start_s": 0.6, "end_s": 0.8}


def test_a_duration_short_of_the_last_frame_ends_at_that_frame_within_its_segment() -> None:
    unit = unit_rows([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    # a duration under the last frame's time (unknown, or declared wrong): the last segment
    # ends at that frame; the segments before still end at their own bound
    parts = segments(unit, [0.0, 3.0, 5.0], 1.0, 2.0)
    assert [(p.key, p.metadata["start_s"], p.metadata["end_s"]) for p in parts] == [
        ("s0", 0.0, 2.0),
        ("s1", 2.0, 4.0),
        ("s2", 4.0, 5.0),
    ]
    (only,) = segments(unit[:2], [0.0, 0.5], 0.0, 2.0)
    assert (only.metadata["start_s"], only.metadata["end_s"]) == (0.0, 0.5)


def test_without_segments_the_pooler_gives_the_mean_of_unit_frame_vectors() -> None:
    embedder = FakeEmbedder()
    pooler = FramePooler(embedder, frames_per_call=2)  # type: ignore[arg-type]
    out = pooler([video(ROWS[:3], TIMES[:3], 2.0), video(ROWS[3:], TIMES[3:], 8.0)])
    assert len(out) == 2
    for vector, rows in zip(out, (ROWS[:3], ROWS[3:]), strict=True):
        assert isinstance(vector, np.ndarray) and vector.dtype == np.float32
        np.testing.assert_allclose(vector, unit_rows(rows).mean(axis=0), rtol=1e-6)
    assert embedder.calls == [2, 2, 1]  # five frames, two per call, the last not padded on a CPU


def test_with_segments_the_pooler_gives_the_video_and_its_parts() -> None:
    pooler = FramePooler(FakeEmbedder(), frames_per_call=4, segment_s=2.0)  # type: ignore[arg-type]
    short = video([[0.0, 3.0, 4.0]], [0.0], 1.0)
    whole, one = pooler([video(ROWS, TIMES, 8.0), short])
    assert isinstance(whole, WithParts) and isinstance(one, WithParts)
    unit = unit_rows(ROWS)
    np.testing.assert_allclose(whole.vector, unit.mean(axis=0), rtol=1e-6)
    assert [p.key for p in whole.parts] == ["s0", "s1", "s3"]
    for part, rows in zip(whole.parts, ([0, 1, 2], [3], [4]), strict=True):
        np.testing.assert_allclose(part.vector, unit[rows].mean(axis=0), rtol=1e-6)
    assert whole.parts[-1].metadata == {"start_s": 6.0, "end_s": 8.0}
    np.testing.assert_allclose(one.vector, [0.0, 0.6, 0.8], rtol=1e-6)
    assert [(p.key, p.metadata) for p in one.parts] == [("s0", {"start_s": 0.0, "end_s": 1.0})]
    np.testing.assert_allclose(one.parts[0].vector, [0.0, 0.6, 0.8], rtol=1e-6)


def test_a_video_without_frames_is_its_own_error_and_its_neighbours_go_on() -> None:
    pooler = FramePooler(FakeEmbedder(), frames_per_call=4, segment_s=2.0)  # type: ignore[arg-type]
    empty = Frames((), (), 3.0)
    before, none, after = pooler([video(ROWS[:1], [0.0], 1.0), empty, video(ROWS[1:2], [2.5], 3.0)])
    assert isinstance(none, EmbedError) and "no frames" in str(none)
    assert isinstance(before, WithParts) and isinstance(after, WithParts)
    np.testing.assert_allclose(before.vector, [1.0, 0.0, 0.0])
    np.testing.assert_allclose(after.vector, [0.0, 1.0, 0.0])  # its own frame, not the empty's
    assert [p.key for p in after.parts] == ["s1"]
    (alone,) = FramePooler(FakeEmbedder(), 4)([empty])  # type: ignore[arg-type]
    assert isinstance(alone, EmbedError)


def test_on_a_gpu_the_last_call_is_padded_and_the_padding_dropped() -> None:
    embedder = FakeEmbedder(device="cuda:0")
    out = FramePooler(embedder, frames_per_call=4)([video(ROWS, TIMES, 8.0)])  # type: ignore[arg-type]
    assert embedder.calls == [4, 4]
    np.testing.assert_allclose(out[0], unit_rows(ROWS).mean(axis=0), rtol=1e-6)


def test_a_negative_segment_length_is_refused_when_declared() -> None:
    embed = declared_embed()
    with pytest.raises(ConfigError, match="segment_s"):
        FrameEmbed(embed, segment_s=-1)
    assert FrameEmbed(embed, segment_s=0).segment_s == 0
    assert FrameEmbed(embed).segment_s is None
    assert FrameEmbed.gives_parts and not TimmEmbed.gives_parts


def test_the_segment_length_is_the_declared_one_else_the_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    embedder = FakeEmbedder()
    monkeypatch.setattr(TimmEmbed, "load", lambda self, device, precision: embedder)
    context = Context(FetchSettings(), device="cpu", video=VideoSettings(segment_s=5.0))
    embed = declared_embed()
    for declared, expected in ((None, 5.0), (0.0, 0.0), (2.0, 2.0)):
        bound = FrameEmbed(embed, segment_s=declared).bind(context)
        assert isinstance(bound.model, FramePooler)
        assert bound.model.embedder is embedder
        assert bound.model.segment_s == expected
    assert FrameEmbed(embed, segment_s=3.0).load("cpu", "fp32").segment_s == 3.0
    assert FrameEmbed(embed).load("cpu", "fp32").segment_s == 0.0

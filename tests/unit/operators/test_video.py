"""Video decoding with opencv: sampling, shrinking, and every bad kind of video as a typed
decode error (clips written here with opencv)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from operators import video
from operators.fetch import FetchVideo
from operators.video import DecodeVideo, VideoDecoder, sample_times, sniff_container
from streamer.config.settings import FetchSettings, VideoSettings
from streamer.core.errors import DecodeError, FetchError
from streamer.demo.video import write_video
from streamer.runner.context import Context
from streamer.runner.operator import Source

COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """6 s at 8 fps, 480x360: 2 s red, 2 s green, 2 s blue."""
    path = tmp_path_factory.mktemp("video") / "rgb.mp4"
    write_video(path, [Image.new("RGB", (640, 480), c) for c in COLOURS], zoom=0.0)
    return path.read_bytes()


def decoder(**settings: float) -> VideoDecoder:
    return VideoDecoder(VideoSettings(**settings))  # type: ignore[arg-type]


def test_containers_are_told_by_their_first_bytes(clip: bytes) -> None:
    assert sniff_container(clip[:512]) == "mp4"
    assert sniff_container(b"\x1a\x45\xdf\xa3" + bytes(20)) == "mkv"
    assert sniff_container(b"RIFF\x00\x00\x00\x00AVI LIST") == "avi"
    assert sniff_container(b"\xff\xd8\xff\xe0 a jpeg") is None
    assert sniff_container(b"") is None


def test_frames_every_n_seconds_or_spread_over_a_long_video() -> None:
    assert sample_times(6.0, 1.0, 32) == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert sample_times(0.5, 1.0, 32) == [0.0]
    spread = sample_times(100.0, 1.0, 4)
    assert spread == [0.0, 25.0, 50.0, 75.0]


def test_a_clip_gives_its_frames_in_order_with_their_times(clip: bytes) -> None:
    decoded = decoder(frame_every_s=2.0).decode(clip)
    assert decoded.times_s == (0.0, 2.0, 4.0)
    assert (decoded.width, decoded.height) == (480, 360)
    assert decoded.duration_s == pytest.approx(6.0, abs=0.2)
    for frame, colour in zip(decoded.frames, COLOURS, strict=True):
        assert frame.dtype == np.uint8 and frame.shape == (360, 480, 3)
        mean = frame.reshape(-1, 3).mean(axis=0)  # RGB, not opencv's BGR
        assert np.abs(mean - np.array(colour)).max() < 12, (mean, colour)


def test_at_most_max_frames_spread_over_the_whole_video(clip: bytes) -> None:
    decoded = decoder(frame_every_s=0.25, max_frames=3).decode(clip)
    assert len(decoded) == 3
    assert decoded.times_s[-1] >= 3.5  # the last third of the video is sampled too


def test_frames_shrink_by_halves_never_below_the_side_the_model_needs(clip: bytes) -> None:
    small = VideoDecoder(VideoSettings(), min_side=80).decode(clip)
    assert (small.width, small.height) == (120, 90)  # 360 / 4 = 90 >= 80; / 8 would be < 80
    exact = VideoDecoder(VideoSettings(), min_side=360).decode(clip)
    assert exact.height == 360


@pytest.mark.parametrize(
    ("data", "cause"),
    [
        (b"", "empty"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF" + bytes(600), "not a video"),
        (b"%PDF-1.7\n" + bytes(600), "not a video"),
        (bytes(4) + b"ftypisom" + bytes(2000), "cannot open"),
    ],
)
def test_what_is_not_a_video_is_a_decode_error(data: bytes, cause: str) -> None:
    with pytest.raises(DecodeError, match=cause):
        decoder().decode(data)


def test_a_truncated_video_is_a_decode_error(clip: bytes) -> None:
    with pytest.raises(DecodeError, match="cannot open the mp4 video"):  # its index was cut off
        decoder().decode(clip[: len(clip) // 2])


def test_a_truncated_avi_that_opens_is_refused_as_truncated(tmp_path: Path) -> None:
    path = tmp_path / "long.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10, (64, 48))
    for i in range(100):
        writer.write(np.full((48, 64, 3), i * 2, np.uint8))
    writer.release()
    data = path.read_bytes()
    with pytest.raises(DecodeError, match="truncated video: 19 of 100"):
        decoder(frame_every_s=1.0).decode(data[: len(data) // 3])


def test_a_video_without_frames_is_a_decode_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10, (64, 48))
    writer.release()
    with pytest.raises(DecodeError, match="no frames"):
        decoder().decode(path.read_bytes())


def test_caps_on_length_size_and_time(clip: bytes) -> None:
    with pytest.raises(DecodeError, match="over 3 s"):
        decoder(max_duration_s=3.0).decode(clip)
    with pytest.raises(DecodeError, match="pixels, over 1000"):
        decoder(max_pixels=1000).decode(clip)
    with pytest.raises(DecodeError, match="DECODE_TIMEOUT_S"):
        decoder(decode_timeout_s=1e-6).decode(clip)


class StuckCapture:
    """A capture whose next frame never comes: ffmpeg blocked inside one call, where no check
    between frames can see the time pass."""

    release_all = threading.Event()
    calls = 0

    def __init__(self, *args: object) -> None:
        pass

    def isOpened(self) -> bool:
        return True

    def get(self, prop: int) -> float:
        return {cv2.CAP_PROP_FPS: 8.0, cv2.CAP_PROP_FRAME_COUNT: 48.0}.get(prop, 64.0)

    def grab(self) -> bool:
        type(self).calls += 1
        self.release_all.wait(120)
        return False

    def release(self) -> None:
        pass


def test_a_decoder_stuck_in_a_call_is_abandoned_at_the_time_cap(
    clip: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(video.cv2, "VideoCapture", StuckCapture)
    abandoned = video.abandoned_decoders()
    started = time.monotonic()
    try:
        with pytest.raises(DecodeError, match=r"the decoder hung: no frame or answer in 0\.2 s"):
            decoder(decode_timeout_s=0.2).decode(clip)
        waited = time.monotonic() - started
        assert StuckCapture.calls == 1  # it was inside the call, not between frames
        assert video.abandoned_decoders() == abandoned + 1
        assert waited < 30, waited  # the cap and its grace, not the stuck call's 120 s
        stuck = [t for t in threading.enumerate() if t.name == "video-decode"]
        assert stuck, "the stuck decoder's thread is left behind"
    finally:
        StuckCapture.release_all.set()  # let the abandoned thread end


def test_the_decode_stage_binds_the_context_s_video_settings(clip: bytes) -> None:
    context = Context(FetchSettings(), video=VideoSettings(frame_every_s=3.0))
    bound = DecodeVideo().bind(context)
    decoded = bound.one(clip)
    assert (
        not isinstance(decoded, DecodeError) and decoded.times_s == (0.0, 3.0, 6.0)[: len(decoded)]
    )
    assert isinstance(bound.one(b"junk" * 200), DecodeError)


def test_videos_are_fetched_under_their_own_cap(clip: bytes, tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    path.write_bytes(clip)
    source = Source(uri=path.as_uri())
    small_fetch = FetchSettings(media_roots=(tmp_path,), max_bytes=100)
    roomy = Context(small_fetch, video=VideoSettings(max_bytes=len(clip)))
    assert FetchVideo().bind(roomy).one(source) == clip  # over FETCH's cap, under VIDEO's
    tight = Context(FetchSettings(media_roots=(tmp_path,)), video=VideoSettings(max_bytes=100))
    refused = FetchVideo().bind(tight).one(source)
    assert isinstance(refused, FetchError) and "over 100" in refused.cause

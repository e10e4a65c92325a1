"""Decode a video with opencv and sample its frames: bytes in, a :class:`Clip` out.

A video is checked before anything is decoded: its first bytes must be those of a known
container (MP4/MOV, Matroska/WebM, AVI, MPEG-TS/PS, FLV, Ogg), its frame size under the pixel
cap and its declared duration under the length cap. Frames are then read in order and one is
kept every ``frame_every_s`` seconds; a video longer than ``max_frames`` such steps has its
``max_frames`` frames spread evenly over its whole length instead (a long video is covered
end to end, not only its start). Kept frames are shrunk by halves (never below ``min_side``,
like the reduced-size JPEG decode of photos), so a 4K clip does not hold gigabytes.

Every failure is a :class:`~streamer.core.errors.DecodeError` naming the cause: not a video,
a container opencv cannot open, a truncated file, no frames, too long, too large, and a
decoder that runs past ``decode_timeout_s`` (ffmpeg's own open and read timeouts, and a
deadline checked between frames). A decoder stuck inside one call, which no check between
frames reaches, is not waited for: each video decodes in a thread of its own, given the time
cap and a little more; past that its video is a decode error, the thread is abandoned (and
counted) and the worker goes on. opencv reads videos from a file, so the bytes are written to a
private temporary file (``TMPDIR``) that is removed at once.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING

# ffmpeg's own messages ("moov atom not found") are the decode error's cause, not log lines;
# read when opencv first opens a video
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

import cv2
import numpy as np
import numpy.typing as npt

from streamer.core.errors import DecodeError
from streamer.runner.operator import BoundCpu, CpuOperator

if TYPE_CHECKING:
    from operators.decode import SizeHint
    from streamer.config.settings import VideoSettings
    from streamer.runner.context import Context

__all__ = [
    "Clip",
    "DecodeVideo",
    "VideoDecoder",
    "abandoned_decoders",
    "sample_times",
    "sniff_container",
]

log = logging.getLogger(__name__)

cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)

#: a share of the declared frames a video must deliver, else it is truncated
_COMPLETE = 0.9
# how long past the time cap a decode thread is waited for (its own deadline fires first)
_HANG_GRACE_S = 1.0
_abandoned = 0
_abandoned_lock = threading.Lock()


def abandoned_decoders() -> int:
    """How many decode threads this process gave up on (each stuck in a decoder call)."""
    return _abandoned


def sniff_container(head: bytes) -> str | None:
    """The container of a video by its first bytes, or ``None`` when it is none we know."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return "mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "mkv"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "avi"
    if head.startswith(b"FLV"):
        return "flv"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"\x00\x00\x01\xba"):
        return "mpg"
    if len(head) >= 377 and head[0] == head[188] == head[376] == 0x47:
        return "ts"
    return None


def sample_times(duration_s: float, every_s: float, max_frames: int) -> list[float]:
    """When to keep a frame: every ``every_s`` seconds from the start, or ``max_frames``
    instants spread evenly over ``duration_s`` when that would be more."""
    steps = int(duration_s // every_s) + 1
    if steps <= max_frames:
        return [k * every_s for k in range(steps)]
    return [k * duration_s / max_frames for k in range(max_frames)]


@dataclass(frozen=True, slots=True)
class Clip:
    """The frames kept from one video (RGB ``uint8`` arrays, height x width x 3) and when each
    was shown, in seconds from the start."""

    frames: tuple[npt.NDArray[np.uint8], ...]
    times_s: tuple[float, ...]
    duration_s: float
    fps: float
    width: int
    height: int

    def __len__(self) -> int:
        return len(self.frames)


class VideoDecoder:
    """Bytes of a video to a :class:`Clip`, by ``settings`` (caps, sampling, time limit);
    ``min_side``: frames are shrunk by halves while their shorter side stays at least this."""

    def __init__(self, settings: VideoSettings, *, min_side: int | None = None) -> None:
        self.settings = settings
        self.min_side = min_side

    def decode(self, data: bytes) -> Clip:
        """The clip of ``data``, decoded in a thread of its own that is waited for up to the
        time cap (and :data:`_HANG_GRACE_S`): past it, a :class:`DecodeError` says the decoder
        hung, and its thread is left behind."""
        results: list[Clip | BaseException] = []
        done = threading.Event()

        def work() -> None:
            try:
                results.append(self._decode(data))
            except BaseException as exc:  # handed to the caller, whatever it is
                results.append(exc)
            finally:
                done.set()

        timeout_s = self.settings.decode_timeout_s
        threading.Thread(target=work, name="video-decode", daemon=True).start()
        if not done.wait(timeout_s + _HANG_GRACE_S):
            global _abandoned
            with _abandoned_lock:
                _abandoned += 1
            log.warning(
                "video decoder abandoned",
                extra={"timeout_s": timeout_s, "abandoned_threads": _abandoned},
            )
            raise DecodeError(
                f"the decoder hung: no frame or answer in {timeout_s:g} s "
                "(STREAMER_VIDEO_DECODE_TIMEOUT_S); its thread is abandoned"
            )
        result = results[0]
        if isinstance(result, BaseException):
            raise result
        return result

    def _decode(self, data: bytes) -> Clip:
        if not data:
            raise DecodeError("empty video file")
        container = sniff_container(data[:512])
        if container is None:
            raise DecodeError(
                "not a video: the bytes start like no known container "
                "(MP4/MOV, Matroska/WebM, AVI, MPEG-TS/PS, FLV, Ogg)"
            )
        deadline = time.monotonic() + self.settings.decode_timeout_s
        with _file_of(data, container) as path:
            timeout_ms = int(self.settings.decode_timeout_s * 1000)
            capture = cv2.VideoCapture(
                path,
                cv2.CAP_FFMPEG,
                [
                    cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                    timeout_ms,
                    cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                    timeout_ms,
                ],
            )
            try:
                if not capture.isOpened():
                    raise DecodeError(f"cannot open the {container} video (corrupt or truncated)")
                return self._read(capture, deadline)
            finally:
                capture.release()

    def _read(self, capture: cv2.VideoCapture, deadline: float) -> Clip:
        settings = self.settings
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        declared = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        if width * height > settings.max_pixels:
            raise DecodeError(
                f"{width}x{height} frames have {width * height} pixels, over {settings.max_pixels}"
            )
        sane = math.isfinite(fps) and 0 < fps <= 1000 and declared > 0
        duration = declared / fps if sane else 0.0
        if duration > settings.max_duration_s:
            raise DecodeError(
                f"video is {duration:.0f} s long, over {settings.max_duration_s:.0f} s"
            )
        last_shown = max(0.0, (declared - 1) / fps) if sane else 0.0
        wanted = (
            sample_times(last_shown, settings.frame_every_s, settings.max_frames)
            if sane
            else [k * settings.frame_every_s for k in range(settings.max_frames)]
        )
        frames: list[npt.NDArray[np.uint8]] = []
        times: list[float] = []
        index = 0
        while len(frames) < len(wanted):
            if time.monotonic() > deadline:
                raise DecodeError(
                    f"decoding took over {settings.decode_timeout_s:g} s "
                    f"({index} frames read); STREAMER_VIDEO_DECODE_TIMEOUT_S"
                )
            if not capture.grab():
                break
            shown = index / fps if fps > 0 else capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            index += 1
            if shown > settings.max_duration_s:
                raise DecodeError(f"video runs past {settings.max_duration_s:.0f} s")
            if shown + 1e-6 < wanted[len(frames)]:
                continue
            ok, frame = capture.retrieve()
            if not ok or frame is None:
                raise DecodeError(f"frame {index - 1} could not be decoded (corrupt video)")
            frames.append(self._rgb(np.asarray(frame, dtype=np.uint8)))
            times.append(round(shown, 3))
        if not frames:
            raise DecodeError("the video has no frames that decode")
        if sane and len(frames) < len(wanted) and index < _COMPLETE * declared:
            raise DecodeError(f"truncated video: {index} of {declared} declared frames decode")
        if not sane:
            duration = times[-1]
        shape = frames[0].shape
        return Clip(tuple(frames), tuple(times), duration, fps, int(shape[1]), int(shape[0]))

    def _rgb(self, frame: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        """A decoded BGR frame as RGB, shrunk by halves while its shorter side stays at least
        ``min_side``."""
        height, width = frame.shape[:2]
        if frame.ndim != 3 or frame.shape[2] != 3 or width * height > self.settings.max_pixels:
            raise DecodeError(f"frame of shape {frame.shape} is not a colour frame within the cap")
        factor = 1
        if self.min_side:
            while min(width, height) // (factor * 2) >= self.min_side:
                factor *= 2
        if factor > 1:
            size = (math.ceil(width / factor), math.ceil(height / factor))
            frame = np.asarray(cv2.resize(frame, size, interpolation=cv2.INTER_AREA), np.uint8)
        return np.asarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), dtype=np.uint8)


@contextmanager
def _file_of(data: bytes, container: str) -> Iterator[str]:
    """``data`` in a private temporary file (``TMPDIR``), removed on exit."""
    handle, path = tempfile.mkstemp(prefix="streamer-video-", suffix=f".{container}")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        yield path
    finally:
        with suppress(FileNotFoundError):
            os.unlink(path)


@dataclass(frozen=True)
class DecodeVideo(CpuOperator[bytes, Clip]):
    """Bytes to the sampled frames of a video (:class:`Clip`), with the caps and sampling of
    ``STREAMER_VIDEO_*``. ``min_side``: frames may be shrunk by halves, never below this side
    (an int, or the model whose transform follows)."""

    name = "decode"
    takes = bytes
    gives = Clip
    error = DecodeError

    min_side: int | SizeHint | None = None

    def bind(self, context: Context) -> BoundCpu[bytes, Clip]:
        side = (
            self.min_side if isinstance(self.min_side, int | None) else self.min_side.resize_side()
        )
        return BoundCpu(self, VideoDecoder(context.video, min_side=side).decode)

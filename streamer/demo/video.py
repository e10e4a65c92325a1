"""Short videos written at run time with opencv, for the demo and the tests: each scene is a
photo shown for a few seconds with a slow zoom (so no two frames are the same)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

__all__ = ["DEMO_VIDEOS", "SCENE_S", "frame_at", "write_video", "write_videos"]

#: the demo's videos: three scenes each, from its sample photos
DEMO_VIDEOS = {
    "space": ("astronaut", "rocket", "moon"),
    "desk": ("coffee", "clock", "camera"),
    "yard": ("chelsea", "brick", "grass"),
}
#: seconds each scene of a demo video lasts
SCENE_S = 2.0


def write_video(
    path: Path,
    scenes: Sequence[Image.Image],
    *,
    seconds_each: float = 2.0,
    fps: float = 8.0,
    size: tuple[int, int] = (480, 360),
    zoom: float = 0.12,
) -> Path:
    """Write ``scenes`` one after another as an MPEG-4 (``mp4v``) video of ``size`` (width,
    height) at ``fps``; each photo is cropped to the frame's shape and zooms in by ``zoom``
    over its ``seconds_each`` seconds. Returns ``path``."""
    width, height = size
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, size)
    if not writer.isOpened():
        raise RuntimeError(f"opencv cannot write an mp4v video at {path}")
    try:
        per_scene = max(1, round(seconds_each * fps))
        for photo in scenes:
            rgb = photo.convert("RGB")
            for k in range(per_scene):
                scale = 1.0 + zoom * k / per_scene
                frame = _framed(rgb, width, height, scale)
                writer.write(cv2.cvtColor(np.asarray(frame), cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return path


def _framed(photo: Image.Image, width: int, height: int, scale: float) -> Image.Image:
    """The center of ``photo`` cut to ``width``:``height`` and magnified by ``scale``."""
    w, h = photo.size
    aspect = width / height
    cut_w, cut_h = (w, w / aspect) if w / h < aspect else (h * aspect, h)
    cut_w, cut_h = cut_w / scale, cut_h / scale
    left, top = (w - cut_w) / 2, (h - cut_h) / 2
    box = (round(left), round(top), round(left + cut_w), round(top + cut_h))
    return photo.resize((width, height), Image.Resampling.BILINEAR, box=box)


def write_videos(folder: Path) -> dict[str, Path]:
    """Write each of :data:`DEMO_VIDEOS` under ``folder`` (once); returns name -> path."""
    from streamer.demo.samples import sample_photo

    paths = {}
    for name, scenes in DEMO_VIDEOS.items():
        path = folder / f"{name}.mp4"
        if not path.exists():
            write_video(path, [sample_photo(s) for s in scenes], seconds_each=SCENE_S)
        paths[name] = path
    return paths


def frame_at(path: Path, seconds: float) -> Image.Image:
    """The frame of the video at ``path`` shown at ``seconds``, as an RGB image."""
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        capture.set(cv2.CAP_PROP_POS_MSEC, seconds * 1000.0)
        ok, frame = capture.read()
    finally:
        capture.release()
    if not ok or frame is None:
        raise ValueError(f"{path} has no frame at {seconds} s")
    return Image.fromarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))

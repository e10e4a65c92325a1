"""``streamer run`` on a folder, with the real models and no server at all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from streamer.demo.samples import PHOTOS, write_photos

CORRUPT_JPEG = b"\xff\xd8\xff\xe0 this is not really a jpeg"


def streamer_run(tmp_path: Path, *args: str, **env: str) -> tuple[int, list[dict[str, Any]], str]:
    """``streamer run ARGS --json`` in a process of its own: exit code, JSON lines, stderr."""
    environment = {
        **os.environ,
        "STREAMER_STACK_STATE_DIR": str(tmp_path / "no-stack"),  # no embedded stack is used
        "STREAMER_BATCH_CALIBRATION_CACHE": str(tmp_path / "calibration.json"),
        **env,
    }
    proc = subprocess.run(
        [sys.executable, "-m", "streamer", "run", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        env=environment,
    )
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    return proc.returncode, lines, proc.stderr


def test_the_demo_photos_and_a_corrupt_jpeg(tmp_path: Path) -> None:
    photos = write_photos(tmp_path / "photos")
    assert len(photos) == len(PHOTOS) == 18
    (tmp_path / "photos" / "corrupt.jpg").write_bytes(CORRUPT_JPEG)
    index = tmp_path / "photos.db"
    code, lines, stderr = streamer_run(
        tmp_path, str(tmp_path / "photos"), "--index", str(index), "--query", str(photos["coffee"])
    )
    *rows, summary = lines
    assert (summary["items"], summary["ok"], summary["errors"], summary["dim"]) == (19, 18, 1, 1280)
    assert code == 1, stderr  # an item failed
    (corrupt,) = [r for r in rows if r["source"].endswith("corrupt.jpg")]
    assert corrupt["stage"] == "decode" and "corrupt or truncated image" in corrupt["error"]
    assert all(abs(r["norm"] - 1) < 1e-5 for r in rows if "norm" in r)
    # stored in a milvus-lite file as a worker stores them, and searchable
    assert summary["indexed"] == 18 and index.exists()
    assert summary["hits"][0]["uri"] == photos["coffee"].absolute().as_uri()
    assert summary["hits"][0]["score"] > 0.999


def test_texts_and_no_topology_for_a_medium(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("A barista pours steamed milk into a cup.")
    code, lines, stderr = streamer_run(
        tmp_path, str(tmp_path / "notes.txt"), "--text", "a cat on a sofa", "--vectors",
        STREAMER_TOPOLOGIES="topologies:TEXT",
    )  # fmt: skip
    *rows, summary = lines
    assert code == 0, stderr
    assert (summary["ok"], summary["dim"]) == (2, 384)
    assert all(len(r["vector"]) == 384 for r in rows)
    code, lines, _ = streamer_run(
        tmp_path, str(tmp_path / "notes.txt"), "--topologies", "topologies:IMAGE"
    )
    assert (
        code == 1 and lines[0]["stage"] == "validate" and "no topology takes" in lines[0]["error"]
    )
